//! `ditto`: the paper's threshold policy. Every sampling period it computes the utilisation
//! of the awake worker vCPUs (busy time / awake time), wakes `step` workers above `high` and
//! sleeps `step` (at their next check-in) below `low`.

use super::{OptionInfo, Opts, PolicyError, PolicyInfo};
use crate::policy::{Decision, PeriodMetrics, Policy};
use crate::units::{fmt_ns, NS_PER_MS, NS_PER_S};

pub(super) const INFO: PolicyInfo = PolicyInfo {
    name: "ditto",
    summary: "the paper's policy: per-period utilisation of awake workers vs two thresholds",
    options: &[
        OptionInfo {
            key: "period",
            default: "1s",
            help: "sampling period (paper: 0.5s-2s; at least 1ms)",
        },
        OptionInfo {
            key: "high",
            default: "0.8",
            help: "wake `step` workers when utilisation is above this",
        },
        OptionInfo {
            key: "low",
            default: "0.3",
            help: "sleep `step` workers when utilisation is below this",
        },
        OptionInfo {
            key: "step",
            default: "1",
            help: "workers woken or slept per period",
        },
        OptionInfo {
            key: "initial",
            default: "0",
            help: "workers awake at start (raised to min_active)",
        },
    ],
};

/// Parameters of [`DittoPolicy`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DittoParams {
    /// Sampling period (ns).
    pub period_ns: u64,
    /// Wake threshold on utilisation.
    pub high: f64,
    /// Sleep threshold on utilisation.
    pub low: f64,
    /// Workers changed per period.
    pub step: u32,
    /// Workers awake at start.
    pub initial: usize,
}

impl Default for DittoParams {
    fn default() -> Self {
        DittoParams {
            period_ns: NS_PER_S,
            high: 0.8,
            low: 0.3,
            step: 1,
            initial: 0,
        }
    }
}

impl DittoParams {
    pub(super) fn from_opts(o: &Opts<'_>) -> Result<Self, PolicyError> {
        let d = DittoParams::default();
        let p = DittoParams {
            period_ns: o.duration("period", d.period_ns, NS_PER_MS)?,
            high: o.number("high", d.high, 0.0, 1.0)?,
            low: o.number("low", d.low, 0.0, 1.0)?,
            step: u32::try_from(o.count("step", 1, 1, false)?).unwrap_or(u32::MAX),
            initial: o.count("initial", d.initial, 0, false)?,
        };
        if p.low >= p.high {
            return Err(o.inconsistent(format!("low ({}) must be below high ({})", p.low, p.high)));
        }
        Ok(p)
    }
}

/// The paper's threshold policy (see the module docs).
#[derive(Debug, Clone)]
pub struct DittoPolicy {
    p: DittoParams,
}

impl DittoPolicy {
    /// A policy with these parameters.
    pub fn new(p: DittoParams) -> Self {
        DittoPolicy { p }
    }
}

impl Policy for DittoPolicy {
    fn name(&self) -> &'static str {
        "ditto"
    }

    fn params(&self) -> String {
        format!(
            "period={} high={} low={} step={} initial={}",
            fmt_ns(self.p.period_ns),
            self.p.high,
            self.p.low,
            self.p.step,
            self.p.initial
        )
    }

    fn initial_active(&self, workers: usize) -> usize {
        self.p.initial.min(workers)
    }

    fn period_ns(&self) -> Option<u64> {
        Some(self.p.period_ns)
    }

    fn on_period(&mut self, m: &PeriodMetrics) -> Decision {
        match m.utilisation() {
            None => {
                if m.arrivals > 0 || m.load.queued > 0 {
                    Decision::wake(
                        self.p.step,
                        format!(
                            "no awake worker and {} arrivals, {} queued",
                            m.arrivals, m.load.queued
                        ),
                    )
                } else {
                    Decision::hold()
                }
            }
            Some(u) if u > self.p.high && m.load.sleeping > 0 => Decision::wake(
                self.p.step,
                format!(
                    "utilisation {:.0}% > high {:.0}% over {}",
                    u * 100.0,
                    self.p.high * 100.0,
                    fmt_ns(m.len_ns())
                ),
            ),
            Some(u) if u < self.p.low && m.load.active() > 0 => Decision::sleep(
                self.p.step,
                format!(
                    "utilisation {:.0}% < low {:.0}% over {}",
                    u * 100.0,
                    self.p.low * 100.0,
                    fmt_ns(m.len_ns())
                ),
            ),
            Some(_) => Decision::hold(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{Action, LoadView};

    fn metrics(busy: &[u64], awake: &[u64], sleeping: usize) -> PeriodMetrics {
        PeriodMetrics {
            start_ns: 0,
            now_ns: NS_PER_S,
            busy_ns: busy.to_vec(),
            awake_ns: awake.to_vec(),
            check_ins: vec![0; busy.len()],
            arrivals: 10,
            completions: 10,
            load: LoadView {
                idle: 1,
                sleeping,
                workers: busy.len(),
                ..LoadView::default()
            },
        }
    }

    #[test]
    fn thresholds() {
        let mut p = DittoPolicy::new(DittoParams::default());
        let s = NS_PER_S;
        let d = p.on_period(&metrics(&[s * 9 / 10, 0], &[s, 0], 1));
        assert_eq!((d.action, d.count), (Action::Wake, 1));
        assert!(d.reason.contains("90% > high 80%"), "{}", d.reason);
        let d = p.on_period(&metrics(&[s / 10, s / 10], &[s, s], 0));
        assert_eq!((d.action, d.count), (Action::Sleep, 1));
        assert!(p.on_period(&metrics(&[s / 2, 0], &[s, 0], 1)).is_hold());
        // Saturated but nothing left to wake: hold.
        assert!(p.on_period(&metrics(&[s, s], &[s, s], 0)).is_hold());
    }
}
