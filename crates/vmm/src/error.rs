//! The VMM's error type: every way creating or driving a VM can fail, with messages a
//! user can act on.

use std::io;

/// Errors from creating or driving a VM.
#[derive(Debug, thiserror::Error)]
pub enum VmmError {
    /// The configuration is invalid.
    #[error("Invalid VM configuration: {0}")]
    Config(String),
    /// `/dev/kvm` is missing.
    #[error("{path} does not exist: this host has no KVM (load the kvm module or run on a host with virtualisation)")]
    KvmMissing {
        /// The device path.
        path: String,
    },
    /// `/dev/kvm` cannot be opened.
    #[error("Cannot open {path}: {source} (is the user in the 'kvm' group?)")]
    KvmOpen {
        /// The device path.
        path: String,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// A KVM ioctl failed.
    #[error("KVM {op} failed")]
    Kvm {
        /// What was being done.
        op: &'static str,
        /// The OS error.
        #[source]
        source: vmm_sys_util::errno::Error,
    },
    /// Guest memory could not be set up.
    #[error("Guest memory: {0}")]
    Memory(String),
    /// The guest image is unusable.
    #[error("Guest image: {0}")]
    Image(String),
    /// The VM did not finish booting.
    #[error("VM launch failed: {0}")]
    Launch(String),
    /// A thread could not be spawned.
    #[error("Cannot spawn a vCPU thread")]
    Thread(#[source] io::Error),
    /// The VM is shutting down or stopped.
    #[error("The VM is shut down")]
    ShutDown,
    /// The guest answered a control task wrongly.
    #[error("{0}")]
    Guest(String),
    /// An argument to a control call was out of range.
    #[error("{0}")]
    InvalidArgument(String),
}

/// Result alias for the VMM.
pub type Result<T> = std::result::Result<T, VmmError>;

pub(crate) fn kvm_err(op: &'static str) -> impl FnOnce(vmm_sys_util::errno::Error) -> VmmError {
    move |source| VmmError::Kvm { op, source }
}
