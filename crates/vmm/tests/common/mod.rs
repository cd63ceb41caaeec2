//! Shared helpers for tests that boot real VMs: the one "is KVM usable" check (fails loudly
//! under CI, skips loudly elsewhere) and VM construction with the embedded guest.
#![allow(dead_code)]

use ditto_vmm::{Vm, VmConfig};

/// Whether KVM can be used (fails under CI, skips loudly elsewhere).
pub fn kvm_ok() -> bool {
    ditto_vmm::kvm::usable_for_tests()
}

/// Launch a VM with `regular` + `workers` vCPUs, `active` awake.
pub fn vm(regular: u32, workers: u32, active: u32) -> Vm {
    let cfg = VmConfig {
        regular,
        workers,
        active,
        ..VmConfig::default()
    };
    Vm::launch(cfg, ditto_guest_image::GUEST_ELF).expect("VM launches")
}
