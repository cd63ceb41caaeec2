//! VM configuration and its validation (pure; no KVM needed).

use crate::error::{Result, VmmError};
use ditto_protocol::memory::{
    GUEST_IMAGE_BASE, LARGE_PAGE_SIZE, PRIVATE_MEMORY_MAX, USER_STACK_SIZE, VCPU_HEAP_SIZE,
};
use ditto_protocol::MAX_VCPUS;
use std::time::Duration;

/// How to build a VM.
#[derive(Clone, Debug)]
pub struct VmConfig {
    /// Regular vCPUs (always awake, run no tasks). At least 1.
    pub regular: u32,
    /// Worker vCPUs (run tasks, can sleep).
    pub workers: u32,
    /// Workers awake at launch (the rest start asleep). At most `workers`.
    pub active: u32,
    /// Private guest memory in MiB (rounded up to 2 MiB). What is left after the image,
    /// stacks, per-vCPU heaps, the code arena and the VM heap is split evenly among the
    /// workers as their linear-memory regions (the most one invocation's memories may
    /// use). The host backs guest memory lazily: untouched memory costs nothing.
    pub memory_mib: u64,
    /// Size of the code arena in MiB (the loaded function's compiled code); the VM heap
    /// gets the same plus [`VM_HEAP_EXTRA_MIB`]. Must exceed the artifact's size.
    pub code_mib: u64,
    /// The device to open.
    pub kvm_path: String,
    /// How long launch may take before it is abandoned.
    pub launch_timeout: Duration,
    /// Faults in a row before the vCPU registers that mark a vCPU as failed.
    pub max_boot_faults: u32,
}

impl Default for VmConfig {
    fn default() -> Self {
        Self {
            regular: 1,
            workers: 4,
            active: 4,
            memory_mib: 256,
            code_mib: DEFAULT_CODE_MIB,
            kvm_path: "/dev/kvm".into(),
            launch_timeout: Duration::from_secs(10),
            max_boot_faults: 3,
        }
    }
}

/// Default code arena size, MiB (catalog artifacts are well under 4 MiB).
pub const DEFAULT_CODE_MIB: u64 = 16;
/// VM heap beyond the code arena's size, MiB (engine, module metadata, linker).
pub const VM_HEAP_EXTRA_MIB: u64 = 16;
/// Smallest linear-memory region per worker, MiB.
pub const MIN_LINEAR_MIB: u64 = 2;
/// Largest guest image the memory sizing helpers budget for, bytes.
pub const IMAGE_BUDGET: u64 = 8 << 20;

/// A code arena (MiB) with room for an artifact of `artifact_bytes`.
pub fn code_mib_for(artifact_bytes: usize) -> u64 {
    ((artifact_bytes as u64).div_ceil(1 << 20) + 4).max(DEFAULT_CODE_MIB)
}

impl VmConfig {
    /// Total vCPUs.
    pub fn vcpus(&self) -> u32 {
        self.regular + self.workers
    }

    /// Private memory size in bytes, rounded up to a large page.
    pub fn memory_bytes(&self) -> u64 {
        (self.memory_mib << 20).div_ceil(LARGE_PAGE_SIZE) * LARGE_PAGE_SIZE
    }

    /// Bytes of private memory that are not linear memory, for an image of
    /// `image_bytes` bytes.
    pub fn fixed_bytes(&self, image_bytes: u64) -> u64 {
        let image = image_bytes.div_ceil(LARGE_PAGE_SIZE) * LARGE_PAGE_SIZE;
        let per_vcpu = 2 * USER_STACK_SIZE + VCPU_HEAP_SIZE;
        GUEST_IMAGE_BASE
            + image
            + self.vcpus() as u64 * per_vcpu
            + (2 * self.code_mib + VM_HEAP_EXTRA_MIB) * (1 << 20)
    }

    /// Smallest private memory (MiB) for this shape and an image of `image_bytes` bytes.
    pub fn min_memory_mib(&self, image_bytes: u64) -> u64 {
        (self.fixed_bytes(image_bytes) + self.workers as u64 * (MIN_LINEAR_MIB << 20))
            .div_ceil(1 << 20)
    }

    /// Set `memory_mib` so that every worker's linear-memory region holds `linear_mib`.
    pub fn with_linear_memory(mut self, linear_mib: u64) -> Self {
        let fixed = self.fixed_bytes(IMAGE_BUDGET).div_ceil(1 << 20);
        self.memory_mib = fixed + self.workers as u64 * linear_mib.max(MIN_LINEAR_MIB);
        self
    }

    /// Each worker's linear-memory region for an image of `image_bytes`, bytes.
    pub fn linear_bytes(&self, image_bytes: u64) -> u64 {
        let free = self
            .memory_bytes()
            .saturating_sub(self.fixed_bytes(image_bytes));
        (free / (self.workers as u64).max(1)) & !(LARGE_PAGE_SIZE - 1)
    }

    /// Check the configuration; `image_bytes` is the span of the guest image.
    pub fn validate(&self, image_bytes: u64) -> Result<()> {
        let bad = |m: String| Err(VmmError::Config(m));
        if self.regular == 0 {
            return bad("at least one regular vCPU is required (--regular must be >= 1)".into());
        }
        if self.vcpus() as usize > MAX_VCPUS {
            return bad(format!(
                "{} regular + {} worker vCPUs = {} exceeds the maximum of {MAX_VCPUS}",
                self.regular,
                self.workers,
                self.vcpus()
            ));
        }
        if self.active > self.workers {
            return bad(format!(
                "{} active workers requested but the VM has only {} workers",
                self.active, self.workers
            ));
        }
        if self.code_mib == 0 || self.code_mib > 256 {
            return bad(format!(
                "a code arena of {} MiB is outside 1..=256 MiB",
                self.code_mib
            ));
        }
        let min = self.min_memory_mib(image_bytes);
        if self.memory_mib < min {
            return bad(format!(
                "{} MiB of memory is too little for {} vCPUs; at least {min} MiB is needed",
                self.memory_mib,
                self.vcpus()
            ));
        }
        if self.memory_bytes() > PRIVATE_MEMORY_MAX {
            return bad(format!(
                "{} MiB of memory exceeds the maximum of {} MiB",
                self.memory_mib,
                PRIVATE_MEMORY_MAX >> 20
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_valid() {
        VmConfig::default()
            .validate(1 << 20)
            .expect("default config is valid");
    }

    #[test]
    fn rejects_bad_configs_with_clear_messages() {
        let c = VmConfig {
            regular: 0,
            ..Default::default()
        };
        assert!(c
            .validate(0)
            .unwrap_err()
            .to_string()
            .contains("at least one regular"));
        let c = VmConfig {
            regular: 1,
            workers: 64,
            active: 0,
            ..Default::default()
        };
        assert!(c
            .validate(0)
            .unwrap_err()
            .to_string()
            .contains("exceeds the maximum of 64"));
        let c = VmConfig {
            memory_mib: 4,
            ..Default::default()
        };
        assert!(c
            .validate(0)
            .unwrap_err()
            .to_string()
            .contains("too little"));
        let c = VmConfig {
            active: 5,
            ..Default::default()
        };
        assert!(c
            .validate(0)
            .unwrap_err()
            .to_string()
            .contains("only 4 workers"));
        let c = VmConfig {
            memory_mib: 128 << 10,
            ..Default::default()
        };
        assert!(c
            .validate(0)
            .unwrap_err()
            .to_string()
            .contains("exceeds the maximum"));
        let c = VmConfig {
            regular: 1,
            workers: 63,
            active: 63,
            memory_mib: 1024,
            ..Default::default()
        };
        c.validate(1 << 20).expect("64 vCPUs fit in 1 GiB");
        let c = VmConfig::default().with_linear_memory(512);
        c.validate(1 << 20).expect("sized for 512 MiB per worker");
        assert!(c.linear_bytes(1 << 20) >= 512 << 20);
    }
}
