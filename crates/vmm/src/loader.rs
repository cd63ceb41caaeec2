//! Guest ELF loading: validates a static x86-64 executable, yields its loadable segments
//! (which must lie inside the image region) and the addresses of the CPL0 exception stubs
//! (`ditto_isr_0` .. `ditto_isr_31`) that the IDT points at.

use crate::error::{Result, VmmError};
use ditto_protocol::memory::{GUEST_IMAGE_BASE, IDT_ENTRIES, PRIVATE_MEMORY_MAX};
use object::elf::{FileHeader64, PT_LOAD};
use object::read::elf::{FileHeader, ProgramHeader};
use object::{Endianness, Object, ObjectSymbol};

/// One loadable segment.
pub struct Segment {
    /// Guest address.
    pub gpa: u64,
    /// Bytes from the file.
    pub data: Vec<u8>,
    /// Total size in memory (the rest is zero).
    pub mem_size: u64,
    /// ELF `p_flags` (`PF_R`, `PF_W`, `PF_X`): the page rights the VMM maps it with.
    pub flags: u32,
}

/// A parsed guest image.
pub struct GuestImage {
    /// Entry point.
    pub entry: u64,
    /// Loadable segments.
    pub segments: Vec<Segment>,
    /// First address past the image.
    pub end: u64,
    /// IDT handler addresses, one per exception vector.
    pub isr: [u64; IDT_ENTRIES as usize],
    /// Address of the code-sealing gate (`ditto_seal_gate`).
    pub seal_gate: u64,
    /// SHA-384 of every page the image's file bytes occupy (page number -> digest),
    /// computed once at parse time: a pure function of the image bytes, which launch
    /// copies verbatim, so launches reuse it instead of re-hashing the same pages.
    pub page_digests: std::collections::BTreeMap<u64, crate::measure::Measurement>,
}

fn bad(msg: impl Into<String>) -> VmmError {
    VmmError::Image(msg.into())
}

/// Parse and validate `elf` (any alignment: it is copied to an aligned buffer first).
pub fn parse(elf: &[u8]) -> Result<GuestImage> {
    let mut aligned = vec![0u64; elf.len().div_ceil(8)];
    let buf: &mut [u8] = bytemuck::cast_slice_mut(&mut aligned);
    buf[..elf.len()].copy_from_slice(elf);
    parse_aligned(&buf[..elf.len()])
}

fn parse_aligned(elf: &[u8]) -> Result<GuestImage> {
    let header = FileHeader64::<Endianness>::parse(elf)
        .map_err(|e| bad(format!("not an ELF64 file: {e}")))?;
    let endian = header.endian().map_err(|e| bad(e.to_string()))?;
    if header.e_machine(endian) != object::elf::EM_X86_64 {
        return Err(bad("not an x86-64 executable"));
    }
    let entry = header.e_entry(endian);
    let mut segments = Vec::new();
    let mut end = GUEST_IMAGE_BASE;
    for ph in header
        .program_headers(endian, elf)
        .map_err(|e| bad(e.to_string()))?
    {
        if ph.p_type(endian) != PT_LOAD {
            continue;
        }
        let gpa = ph.p_vaddr(endian);
        let mem_size = ph.p_memsz(endian);
        let data = ph
            .data(endian, elf)
            .map_err(|_| bad("segment data lies outside the file"))?;
        let seg_end = gpa
            .checked_add(mem_size)
            .ok_or_else(|| bad("segment wraps around"))?;
        if gpa < GUEST_IMAGE_BASE || seg_end > PRIVATE_MEMORY_MAX || (data.len() as u64) > mem_size
        {
            return Err(bad(format!(
                "segment at {gpa:#x}..{seg_end:#x} lies outside the image region (link at {GUEST_IMAGE_BASE:#x})"
            )));
        }
        end = end.max(seg_end);
        segments.push(Segment {
            gpa,
            data: data.to_vec(),
            mem_size,
            flags: ph.p_flags(endian),
        });
    }
    if segments.is_empty() {
        return Err(bad("no loadable segments"));
    }
    if !segments
        .iter()
        .any(|s| entry >= s.gpa && entry < s.gpa + s.mem_size)
    {
        return Err(bad(format!(
            "entry point {entry:#x} is not inside a loadable segment"
        )));
    }
    let file = object::File::parse(elf).map_err(|e| bad(e.to_string()))?;
    let mut isr = [0u64; IDT_ENTRIES as usize];
    let mut seal_gate = 0;
    for sym in file.symbols() {
        if sym.name() == Ok("ditto_seal_gate") {
            seal_gate = sym.address();
        }
        if let Some(v) = sym
            .name()
            .ok()
            .and_then(|n| n.strip_prefix("ditto_isr_"))
            .and_then(|v| v.parse::<usize>().ok())
        {
            if v < isr.len() {
                isr[v] = sym.address();
            }
        }
    }
    if let Some(v) = isr.iter().position(|&a| a == 0) {
        return Err(bad(format!(
            "symbol ditto_isr_{v} (exception stub) is missing"
        )));
    }
    if seal_gate == 0 {
        return Err(bad("symbol ditto_seal_gate (code-sealing gate) is missing"));
    }
    let page_digests = page_digests(&segments);
    Ok(GuestImage {
        entry,
        segments,
        end,
        isr,
        seal_gate,
        page_digests,
    })
}

/// Digest every page that holds file bytes of some segment, assembling each page from all
/// segments that touch it (zero elsewhere), exactly as launch writes them.
fn page_digests(
    segments: &[Segment],
) -> std::collections::BTreeMap<u64, crate::measure::Measurement> {
    use sha2::{Digest, Sha384};
    let page = ditto_protocol::memory::PAGE_SIZE;
    let mut pages: std::collections::BTreeMap<u64, Vec<u8>> = std::collections::BTreeMap::new();
    for seg in segments {
        let mut at = 0u64;
        while at < seg.data.len() as u64 {
            let gpa = seg.gpa + at;
            let (pn, off) = (gpa / page, gpa % page);
            let n = (page - off).min(seg.data.len() as u64 - at);
            let buf = pages.entry(pn).or_insert_with(|| vec![0u8; page as usize]);
            buf[off as usize..(off + n) as usize]
                .copy_from_slice(&seg.data[at as usize..(at + n) as usize]);
            at += n;
        }
    }
    pages
        .into_iter()
        .map(|(pn, bytes)| (pn, Sha384::digest(&bytes).into()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_real_guest() {
        let img = parse(ditto_guest_image::GUEST_ELF).expect("guest parses");
        assert!(img.entry >= GUEST_IMAGE_BASE && img.entry < img.end);
        assert!(img
            .isr
            .iter()
            .all(|&a| a >= GUEST_IMAGE_BASE && a < img.end));
    }

    #[test]
    fn rejects_garbage_and_truncation() {
        assert!(parse(b"not an elf").is_err());
        assert!(parse(&[]).is_err());
        let elf = ditto_guest_image::GUEST_ELF;
        for cut in [16, 64, 200, elf.len() / 2] {
            assert!(parse(&elf[..cut]).is_err(), "truncated at {cut}");
        }
    }
}
