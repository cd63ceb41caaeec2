//! `fixed`: a constant number of awake workers, like today's fixed-size confidential VM.
//! Never wakes or sleeps after start.

use super::{OptionInfo, Opts, PolicyError, PolicyInfo};
use crate::policy::Policy;

pub(super) const INFO: PolicyInfo = PolicyInfo {
    name: "fixed",
    summary: "a constant number of awake workers (today's fixed-size VM)",
    options: &[OptionInfo {
        key: "count",
        default: "all",
        help: "workers kept awake (a number, or `all` = n)",
    }],
};

/// A constant number of awake workers.
#[derive(Debug, Clone)]
pub struct FixedPolicy {
    count: usize,
}

impl FixedPolicy {
    /// Keep `count` workers awake (`usize::MAX` = all of them).
    pub fn new(count: usize) -> Self {
        FixedPolicy { count }
    }

    pub(super) fn from_opts(o: &Opts<'_>) -> Result<Self, PolicyError> {
        Ok(FixedPolicy::new(o.count("count", usize::MAX, 0, true)?))
    }
}

impl Policy for FixedPolicy {
    fn name(&self) -> &'static str {
        "fixed"
    }

    fn params(&self) -> String {
        if self.count == usize::MAX {
            "count=all".to_string()
        } else {
            format!("count={}", self.count)
        }
    }

    fn initial_active(&self, workers: usize) -> usize {
        self.count.min(workers)
    }
}
