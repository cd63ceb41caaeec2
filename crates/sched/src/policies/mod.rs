//! The shipped policies, their options, and [`build_policy`], the one constructor drivers
//! use (`--policy NAME --policy-opt key=value`).
//!
//! | policy | kind | options (default) |
//! | --- | --- | --- |
//! | `ditto` | periodic thresholds (the paper) | `period` (1s), `high` (0.8), `low` (0.3), `step` (1), `initial` (0) |
//! | `fixed` | constant | `count` (`all`) |
//! | `queue` | event-driven | `idle_timeout` (10ms), `initial` (0) |
//! | `predictive` | EWMA of arrival rate, hysteresis, burst wake | `period` (100ms), `alpha` (0.3), `fast_alpha` (0.2), `headroom` (1.25), `spare` (1), `hysteresis` (0), `cooldown` (300ms), `service` (5ms), `idle_timeout` (0 = off) |
//!
//! Durations take units (`500ms`, `1s`), fractions are plain numbers in `[0, 1]`.

mod ditto;
mod fixed;
mod predictive;
mod queue;

pub use ditto::{DittoParams, DittoPolicy};
pub use fixed::FixedPolicy;
pub use predictive::{PredictiveParams, PredictivePolicy};
pub use queue::{QueueParams, QueuePolicy};

use crate::policy::Policy;
use crate::units;
use thiserror::Error;

/// Why [`build_policy`] refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PolicyError {
    /// No policy has this name.
    #[error("Unknown policy {name:?} (known: {known})")]
    UnknownPolicy {
        /// The name asked for.
        name: String,
        /// The known names.
        known: String,
    },
    /// The policy has no such option.
    #[error("Policy {policy} has no option {key:?} (options: {known})")]
    UnknownOption {
        /// The policy.
        policy: &'static str,
        /// The option asked for.
        key: String,
        /// The policy's options.
        known: String,
    },
    /// An option's value does not parse or is out of range.
    #[error("Bad value {value:?} for {policy} option {key}: {why}")]
    BadValue {
        /// The policy.
        policy: &'static str,
        /// The option.
        key: String,
        /// The value given.
        value: String,
        /// What is expected.
        why: String,
    },
    /// The options are individually valid but inconsistent.
    #[error("Inconsistent options for {policy}: {why}")]
    Inconsistent {
        /// The policy.
        policy: &'static str,
        /// What is wrong.
        why: String,
    },
}

/// Description of one policy option, for help texts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OptionInfo {
    /// Option key.
    pub key: &'static str,
    /// Default value, as text.
    pub default: &'static str,
    /// What it does.
    pub help: &'static str,
}

/// Description of one policy, for help texts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PolicyInfo {
    /// Name given to [`build_policy`].
    pub name: &'static str,
    /// One-line summary.
    pub summary: &'static str,
    /// Its options.
    pub options: &'static [OptionInfo],
}

/// Every policy [`build_policy`] knows, in the order comparisons show them.
pub const POLICIES: &[PolicyInfo] = &[fixed::INFO, ditto::INFO, queue::INFO, predictive::INFO];

/// Build the policy called `name` with `key=value` options (unknown names, unknown keys and
/// bad values are errors; a key given twice takes the last value).
///
/// ```
/// let opts = vec![("high".to_string(), "0.9".to_string())];
/// let p = ditto_sched::build_policy("ditto", &opts).unwrap();
/// assert_eq!(p.name(), "ditto");
/// assert!(ditto_sched::build_policy("nope", &[]).is_err());
/// ```
pub fn build_policy(name: &str, opts: &[(String, String)]) -> Result<Box<dyn Policy>, PolicyError> {
    let info =
        POLICIES
            .iter()
            .find(|p| p.name == name)
            .ok_or_else(|| PolicyError::UnknownPolicy {
                name: name.to_string(),
                known: POLICIES
                    .iter()
                    .map(|p| p.name)
                    .collect::<Vec<_>>()
                    .join(", "),
            })?;
    let o = Opts::new(info, opts)?;
    Ok(match info.name {
        "ditto" => Box::new(DittoPolicy::new(DittoParams::from_opts(&o)?)),
        "fixed" => Box::new(FixedPolicy::from_opts(&o)?),
        "queue" => Box::new(QueuePolicy::new(QueueParams::from_opts(&o)?)),
        _ => Box::new(PredictivePolicy::new(PredictiveParams::from_opts(&o)?)),
    })
}

/// A multi-line help text listing every policy and its options.
pub fn policy_help() -> String {
    let mut s = String::new();
    for p in POLICIES {
        s.push_str(&format!("{}: {}\n", p.name, p.summary));
        for o in p.options {
            s.push_str(&format!("    {}={}  {}\n", o.key, o.default, o.help));
        }
    }
    s
}

/// Validated `key=value` options of one policy, with typed getters.
pub(crate) struct Opts<'a> {
    policy: &'static str,
    opts: &'a [(String, String)],
}

impl<'a> Opts<'a> {
    fn new(info: &PolicyInfo, opts: &'a [(String, String)]) -> Result<Self, PolicyError> {
        for (k, _) in opts {
            if !info.options.iter().any(|o| o.key == k) {
                return Err(PolicyError::UnknownOption {
                    policy: info.name,
                    key: k.clone(),
                    known: if info.options.is_empty() {
                        "none".to_string()
                    } else {
                        info.options
                            .iter()
                            .map(|o| o.key)
                            .collect::<Vec<_>>()
                            .join(", ")
                    },
                });
            }
        }
        Ok(Opts {
            policy: info.name,
            opts,
        })
    }

    fn raw(&self, key: &str) -> Option<&'a str> {
        self.opts
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    pub(crate) fn bad(&self, key: &str, value: &str, why: &str) -> PolicyError {
        PolicyError::BadValue {
            policy: self.policy,
            key: key.to_string(),
            value: value.to_string(),
            why: why.to_string(),
        }
    }

    pub(crate) fn inconsistent(&self, why: String) -> PolicyError {
        PolicyError::Inconsistent {
            policy: self.policy,
            why,
        }
    }

    /// A duration (`5ms`), at least `min_ns`.
    pub(crate) fn duration(
        &self,
        key: &str,
        default: u64,
        min_ns: u64,
    ) -> Result<u64, PolicyError> {
        let Some(v) = self.raw(key) else {
            return Ok(default);
        };
        let ns = units::parse_duration(v).map_err(|e| self.bad(key, v, &e.to_string()))?;
        if ns < min_ns {
            return Err(self.bad(
                key,
                v,
                &format!("must be at least {}", units::fmt_ns(min_ns)),
            ));
        }
        Ok(ns)
    }

    /// A number in `[min, max]`.
    pub(crate) fn number(
        &self,
        key: &str,
        default: f64,
        min: f64,
        max: f64,
    ) -> Result<f64, PolicyError> {
        let Some(v) = self.raw(key) else {
            return Ok(default);
        };
        let x = units::parse_number(v).map_err(|e| self.bad(key, v, &e.to_string()))?;
        if x < min || x > max {
            return Err(self.bad(key, v, &format!("must be in [{min}, {max}]")));
        }
        Ok(x)
    }

    /// A whole number in `[min, max]`; `all` means `usize::MAX` when `allow_all`.
    pub(crate) fn count(
        &self,
        key: &str,
        default: usize,
        min: usize,
        allow_all: bool,
    ) -> Result<usize, PolicyError> {
        let Some(v) = self.raw(key) else {
            return Ok(default);
        };
        if allow_all && v.trim() == "all" {
            return Ok(usize::MAX);
        }
        let x: usize = v.trim().parse().map_err(|_| {
            self.bad(
                key,
                v,
                if allow_all {
                    "expected a whole number or `all`"
                } else {
                    "expected a whole number"
                },
            )
        })?;
        if x < min {
            return Err(self.bad(key, v, &format!("must be at least {min}")));
        }
        Ok(x)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn o(k: &str, v: &str) -> (String, String) {
        (k.to_string(), v.to_string())
    }

    #[test]
    fn builds_every_policy_with_defaults() {
        for p in POLICIES {
            let built = build_policy(p.name, &[]).unwrap();
            assert_eq!(built.name(), p.name);
            assert!(!built.params().is_empty());
        }
    }

    #[test]
    fn clear_errors() {
        let e = build_policy("nope", &[]).err().unwrap();
        assert!(
            e.to_string()
                .contains("known: fixed, ditto, queue, predictive"),
            "{e}"
        );
        let e = build_policy("ditto", &[o("hihg", "0.9")]).err().unwrap();
        assert!(matches!(e, PolicyError::UnknownOption { .. }), "{e}");
        assert!(e.to_string().contains("period, high, low"), "{e}");
        let e = build_policy("ditto", &[o("high", "1.5")]).err().unwrap();
        assert!(matches!(e, PolicyError::BadValue { .. }), "{e}");
        let e = build_policy("ditto", &[o("period", "5")]).err().unwrap();
        assert!(matches!(e, PolicyError::BadValue { .. }), "{e}");
        let e = build_policy("ditto", &[o("low", "0.9"), o("high", "0.5")])
            .err()
            .unwrap();
        assert!(matches!(e, PolicyError::Inconsistent { .. }), "{e}");
        let e = build_policy("fixed", &[o("count", "many")]).err().unwrap();
        assert!(e.to_string().contains("or `all`"), "{e}");
        let e = build_policy("queue", &[o("idle_timeout", "0")])
            .err()
            .unwrap();
        assert!(matches!(e, PolicyError::BadValue { .. }), "{e}");
    }

    #[test]
    fn last_value_wins_and_params_echo() {
        let p = build_policy("ditto", &[o("high", "0.7"), o("high", "0.9")]).unwrap();
        assert!(p.params().contains("high=0.9"), "{}", p.params());
        let p = build_policy("fixed", &[o("count", "3")]).unwrap();
        assert_eq!(p.initial_active(8), 3);
        assert_eq!(p.initial_active(2), 2);
        assert!(policy_help().contains("idle_timeout=10ms"));
    }
}
