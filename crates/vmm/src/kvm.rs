//! Opening `/dev/kvm` with clear errors, the one shared "is KVM usable here" check that
//! tests and the CLI use, and the CPUID table given to every vCPU.

use crate::error::{kvm_err, Result, VmmError};
use kvm_bindings::{CpuId, KVM_MAX_CPUID_ENTRIES};
use kvm_ioctls::Kvm;
use std::path::Path;
use std::sync::OnceLock;

/// Open the KVM device at `path`.
pub fn open(path: &str) -> Result<Kvm> {
    if !Path::new(path).exists() {
        return Err(VmmError::KvmMissing { path: path.into() });
    }
    // Open it ourselves first for a precise error (permission vs. anything else).
    if let Err(source) = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
    {
        return Err(VmmError::KvmOpen {
            path: path.into(),
            source,
        });
    }
    let kvm = Kvm::new_with_path(
        std::ffi::CString::new(path)
            .map_err(|_| VmmError::Config("KVM path contains NUL".into()))?,
    )
    .map_err(|e| VmmError::KvmOpen {
        path: path.into(),
        source: e.into(),
    })?;
    let version = kvm.get_api_version();
    if version != kvm_bindings::KVM_API_VERSION as i32 {
        return Err(VmmError::KvmOpen {
            path: path.into(),
            source: std::io::Error::other(format!(
                "not a KVM device (API version query gave {version})"
            )),
        });
    }
    Ok(kvm)
}

/// Why KVM cannot be used here, or `None` if it can (opens the device and creates a VM).
pub fn unusable_reason(path: &str) -> Option<String> {
    match open(path).and_then(|k| k.create_vm().map(|_| ()).map_err(kvm_err("create VM"))) {
        Ok(()) => None,
        Err(e) => Some(e.to_string()),
    }
}

/// The host's supported CPUID (queried once per process).
pub fn supported_cpuid(kvm: &Kvm) -> Result<CpuId> {
    static CPUID: OnceLock<CpuId> = OnceLock::new();
    if let Some(c) = CPUID.get() {
        return Ok(c.clone());
    }
    let c = kvm
        .get_supported_cpuid(KVM_MAX_CPUID_ENTRIES)
        .map_err(kvm_err("get supported CPUID"))?;
    Ok(CPUID.get_or_init(|| c).clone())
}

/// The one "is KVM usable" check for tests that boot VMs: true if it is; otherwise, under
/// CI (`CI` set) it panics so the missing KVM fails the run, and elsewhere it prints a loud
/// skip message and returns false.
pub fn usable_for_tests() -> bool {
    match unusable_reason("/dev/kvm") {
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
