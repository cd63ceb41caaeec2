//! The Ditto guest runtime image, built from `guest/` by this crate's build script and
//! embedded at compile time, so the host binary and its tests always carry a guest that
//! matches the protocol crate they were compiled with.

/// The guest runtime: a static x86-64 ELF linked at
/// `ditto_protocol::memory::GUEST_IMAGE_BASE`.
pub static GUEST_ELF: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/ditto-guest.elf"));

#[cfg(test)]
mod tests {
    #[test]
    fn image_is_an_x86_64_elf() {
        assert_eq!(&super::GUEST_ELF[..4], b"\x7fELF");
        assert_eq!(super::GUEST_ELF[4], 2, "64-bit");
        assert_eq!(
            u16::from_le_bytes([super::GUEST_ELF[18], super::GUEST_ELF[19]]),
            62,
            "x86-64"
        );
    }
}
