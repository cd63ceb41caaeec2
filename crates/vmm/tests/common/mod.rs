//! Shared helpers for tests that boot real VMs: the one "is KVM usable" check (fails loudly
//! under CI, skips loudly elsewhere) and VM construction with the embedded guest.
#![allow(dead_code)]

use ditto_vmm::{Vm, VmConfig};

/// Whether KVM can be used. Under CI (`CI` set) a missing KVM is a test failure; elsewhere
/// the test is skipped with a loud message.
pub fn kvm_ok() -> bool {
    match ditto_vmm::kvm::unusable_reason("/dev/kvm") {
        None => true,
        Some(why) if std::env::var_os("CI").is_some() => {
            panic!("KVM is required under CI but is unusable: {why}")
        }
        Some(why) => {
            eprintln!("\n*** SKIPPING: KVM is unusable here: {why} ***\n");
            false
        }
    }
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
