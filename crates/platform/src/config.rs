//! `ditto serve` configuration: a TOML file (every key optional), overridden by flags and
//! environment variables in the CLI. Defaults just work on one host.

use crate::fair::FairConfig;
use crate::pool::PoolConfig;
use crate::store::Durability;
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The platform's settings.
#[derive(Clone, Debug)]
pub struct ServeConfig {
    /// Listen address.
    pub listen: String,
    /// Where the SQLite database lives.
    pub data_dir: PathBuf,
    /// The namespace created on first start.
    pub default_namespace: String,
    /// Most invocations accepted and unfinished at once, all namespaces (soft: a namespace
    /// under its share is still admitted; see `fair`). Same as `fair.max_inflight`.
    pub max_inflight: u32,
    /// VM pools.
    pub pool: PoolConfig,
    /// Fair share and per-namespace bounds.
    pub fair: FairConfig,
    /// SQLite durability of the database and the invocation journal.
    pub durability: Durability,
}

impl Default for ServeConfig {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:3233".into(),
            data_dir: default_data_dir(),
            default_namespace: "guest".into(),
            max_inflight: 1_000,
            pool: PoolConfig::default(),
            fair: FairConfig::default(),
            durability: Durability::Normal,
        }
    }
}

/// `$XDG_DATA_HOME/ditto`, else `~/.local/share/ditto`, else `./ditto-data`.
pub fn default_data_dir() -> PathBuf {
    if let Some(x) = std::env::var_os("XDG_DATA_HOME") {
        return PathBuf::from(x).join("ditto");
    }
    match std::env::var_os("HOME") {
        Some(h) => PathBuf::from(h).join(".local/share/ditto"),
        None => PathBuf::from("ditto-data"),
    }
}

/// The TOML file's shape.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    /// Listen address, e.g. "127.0.0.1:3233".
    pub listen: Option<String>,
    /// Data directory.
    pub data_dir: Option<PathBuf>,
    /// Default namespace name.
    pub default_namespace: Option<String>,
    /// Most invocations in flight.
    pub max_inflight: Option<u32>,
    /// Regular vCPUs per VM.
    pub regular_vcpus: Option<u32>,
    /// Worker vCPUs per VM.
    pub worker_vcpus: Option<u32>,
    /// Workers awake when a VM starts.
    pub initial_active_workers: Option<u32>,
    /// Most VMs per action.
    pub max_vms_per_action: Option<u32>,
    /// Keep-alive of an idle VM, seconds.
    pub keep_alive_s: Option<f64>,
    /// Idle time before a surplus worker sleeps, ms.
    pub worker_idle_ms: Option<u64>,
    /// Host-wide awake vCPUs = host cores × this.
    pub overcommit: Option<f64>,
    /// Most invocations queued per action beyond its capacity.
    pub max_queue_per_action: Option<u32>,
    /// "normal" (default: survives any process kill) or "full" (every commit fsynced: also
    /// survives power loss and OS crashes).
    pub durability: Option<Durability>,
    /// Invocations handed to VMs at once, all namespaces (fair-share slots).
    pub max_running: Option<u32>,
    /// Invocations accepted and unfinished per namespace.
    pub tenant_max_inflight: Option<u32>,
    /// Bytes (parameters + 4 KiB each) held by one namespace's unfinished invocations.
    pub tenant_max_bytes: Option<u64>,
    /// Longest an invocation waits for a VM that is starting (or budget to start one), s.
    pub cold_wait_s: Option<f64>,
}

impl ConfigFile {
    /// Read a TOML file.
    pub fn load(path: &Path) -> Result<ConfigFile, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        toml::from_str(&text)
            .map_err(|e| format!("invalid configuration in {}: {e}", path.display()))
    }

    /// Apply this file over `c`.
    pub fn apply(&self, c: &mut ServeConfig) -> Result<(), String> {
        if let Some(v) = &self.listen {
            c.listen = v.clone();
        }
        if let Some(v) = &self.data_dir {
            c.data_dir = v.clone();
        }
        if let Some(v) = &self.default_namespace {
            c.default_namespace = v.clone();
        }
        if let Some(v) = self.max_inflight {
            c.max_inflight = v;
            c.fair.max_inflight = v;
        }
        if let Some(v) = self.durability {
            c.durability = v;
        }
        if let Some(v) = self.max_running {
            c.fair.capacity = v;
        }
        if let Some(v) = self.tenant_max_inflight {
            c.fair.tenant_max_inflight = v;
        }
        if let Some(v) = self.tenant_max_bytes {
            c.fair.tenant_max_bytes = v;
        }
        if let Some(v) = self.cold_wait_s {
            if !(v.is_finite() && v >= 0.0) {
                return Err(format!(
                    "cold_wait_s must be a non-negative number, not {v}"
                ));
            }
            c.pool.cold_wait = Duration::from_secs_f64(v);
        }
        let p = &mut c.pool;
        if let Some(v) = self.regular_vcpus {
            p.regular = v;
        }
        if let Some(v) = self.worker_vcpus {
            p.workers = v;
        }
        if let Some(v) = self.initial_active_workers {
            p.initial_active = v;
        }
        if let Some(v) = self.max_vms_per_action {
            p.max_vms_per_action = v;
        }
        if let Some(v) = self.keep_alive_s {
            if !(v.is_finite() && v >= 0.0) {
                return Err(format!(
                    "keep_alive_s must be a non-negative number, not {v}"
                ));
            }
            p.keep_alive = Duration::from_secs_f64(v);
        }
        if let Some(v) = self.worker_idle_ms {
            p.worker_idle = Duration::from_millis(v);
        }
        if let Some(v) = self.overcommit {
            set_overcommit(c, v)?;
        }
        if let Some(v) = self.max_queue_per_action {
            c.pool.max_queue_per_action = v;
        }
        Ok(())
    }
}

/// Set the vCPU budget to host cores × `factor`.
pub fn set_overcommit(c: &mut ServeConfig, factor: f64) -> Result<(), String> {
    if !(factor.is_finite() && factor > 0.0) {
        return Err(format!(
            "overcommit must be a positive number, not {factor}"
        ));
    }
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2) as f64;
    c.pool.vcpu_budget = (cores * factor).round().max(1.0) as u32;
    Ok(())
}

impl ServeConfig {
    /// Check the settings make sense together.
    pub fn validate(&self) -> Result<(), String> {
        let p = &self.pool;
        if p.regular == 0 {
            return Err("regular_vcpus must be at least 1".into());
        }
        if p.workers == 0 || p.regular + p.workers > 64 {
            return Err(format!(
                "worker_vcpus must be 1..={} (regular + workers <= 64)",
                64 - p.regular
            ));
        }
        if p.initial_active == 0 || p.initial_active > p.workers {
            return Err(format!("initial_active_workers must be 1..={}", p.workers));
        }
        if self.fair.capacity == 0 || self.fair.tenant_max_inflight == 0 {
            return Err("max_running and tenant_max_inflight must be at least 1".into());
        }
        if p.max_vms_per_action == 0 {
            return Err("max_vms_per_action must be at least 1".into());
        }
        if p.vcpu_budget < p.regular + p.initial_active {
            return Err(format!(
                "the vCPU budget ({}) cannot hold even one VM ({} regular + {} active)",
                p.vcpu_budget, p.regular, p.initial_active
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_overrides_defaults_and_rejects_unknown_keys() {
        let f: ConfigFile =
            toml::from_str("listen = \"127.0.0.1:9\"\nworker_vcpus = 8\nkeep_alive_s = 1.5")
                .expect("parses");
        let mut c = ServeConfig::default();
        f.apply(&mut c).expect("applies");
        assert_eq!(c.listen, "127.0.0.1:9");
        assert_eq!(c.pool.workers, 8);
        assert_eq!(c.pool.keep_alive, Duration::from_millis(1500));
        assert!(c.validate().is_ok());
        assert!(toml::from_str::<ConfigFile>("bogus = 1").is_err());
        let bad: ConfigFile = toml::from_str("keep_alive_s = -1.0").expect("parses");
        assert!(bad.apply(&mut c).is_err());
        c.pool.initial_active = 9;
        assert!(c.validate().is_err());
    }
}
