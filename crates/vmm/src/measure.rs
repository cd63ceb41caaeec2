//! The launch measurement: a SHA-384 digest chained over every initial guest page, with
//! its guest address and page type, in the shape of SEV-SNP's `LAUNCH_UPDATE`:
//!
//! ```text
//! d0 = 0^48
//! d' = SHA-384(d || type:u8 || gpa:u64le || len:u64le || SHA-384(contents) or 0^48)
//! ```
//!
//! Pages with contents (`Normal`) are hashed one 4 KiB page at a time; zero-filled private
//! ranges (`Zero`) and the shared window (`Shared`) are chained as ranges by address and
//! length only; each vCPU's initial register state is one `Vmsa` entry. The digest is
//! computed before the first vCPU runs.

use ditto_protocol::memory::PageType;
use sha2::{Digest, Sha384};

/// Size of a digest.
pub const DIGEST_LEN: usize = 48;

/// A launch digest.
pub type Measurement = [u8; DIGEST_LEN];

/// Builds the chained digest.
pub struct LaunchDigest {
    digest: Measurement,
    entries: u64,
}

impl Default for LaunchDigest {
    fn default() -> Self {
        Self::new()
    }
}

impl LaunchDigest {
    /// Start a chain.
    pub fn new() -> Self {
        Self {
            digest: [0; DIGEST_LEN],
            entries: 0,
        }
    }

    /// Chain one entry.
    pub fn update(&mut self, ty: PageType, gpa: u64, len: u64, contents: Option<&[u8]>) {
        let content_hash: Measurement = match contents {
            Some(c) => Sha384::digest(c).into(),
            None => [0; DIGEST_LEN],
        };
        self.update_digest(ty, gpa, len, &content_hash);
    }

    /// Chain one entry whose contents' SHA-384 is already known.
    pub fn update_digest(&mut self, ty: PageType, gpa: u64, len: u64, content_hash: &Measurement) {
        let mut h = Sha384::new();
        h.update(self.digest);
        h.update([ty as u8]);
        h.update(gpa.to_le_bytes());
        h.update(len.to_le_bytes());
        h.update(content_hash);
        self.digest = h.finalize().into();
        self.entries += 1;
    }

    /// Entries chained so far.
    pub fn entries(&self) -> u64 {
        self.entries
    }

    /// The digest.
    pub fn finish(&self) -> Measurement {
        self.digest
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_depends_on_order_type_address_and_contents() {
        let page = [7u8; 4096];
        let run = |f: &dyn Fn(&mut LaunchDigest)| {
            let mut d = LaunchDigest::new();
            f(&mut d);
            d.finish()
        };
        let base = run(&|d| {
            d.update(PageType::Normal, 0x1000, 4096, Some(&page));
            d.update(PageType::Zero, 0x2000, 4096, None);
        });
        assert_eq!(
            base,
            run(&|d| {
                d.update(PageType::Normal, 0x1000, 4096, Some(&page));
                d.update(PageType::Zero, 0x2000, 4096, None);
            })
        );
        assert_ne!(
            base,
            run(&|d| {
                d.update(PageType::Zero, 0x2000, 4096, None);
                d.update(PageType::Normal, 0x1000, 4096, Some(&page));
            })
        );
        assert_ne!(
            base,
            run(&|d| {
                d.update(PageType::Normal, 0x3000, 4096, Some(&page));
                d.update(PageType::Zero, 0x2000, 4096, None);
            })
        );
        assert_ne!(
            base,
            run(&|d| {
                d.update(PageType::Normal, 0x1000, 4096, Some(&[8u8; 4096]));
                d.update(PageType::Zero, 0x2000, 4096, None);
            })
        );
        assert_ne!(
            base,
            run(&|d| {
                d.update(PageType::Normal, 0x1000, 4096, Some(&page));
                d.update(PageType::Shared, 0x2000, 4096, None);
            })
        );
    }
}
