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

/// Compile `module` ahead of time on the host (as the platform does at deploy time) and
/// load it into `vm`. A module the compiler refuses is a developer error, as at deploy.
pub fn load(
    vm: &Vm,
    module: &[u8],
) -> Result<ditto_vmm::function::LoadedFunction, ditto_vmm::function::InvokeError> {
    let artifact = ditto_compile::compile(module)
        .map_err(|e| ditto_vmm::function::InvokeError::Developer(e.to_string()))?;
    vm.load_compiled(module, &artifact.bytes).expect("VM alive")
}
