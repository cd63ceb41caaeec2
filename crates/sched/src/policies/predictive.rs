//! `predictive`: sizes the awake set from an estimate of offered load (Little's law).
//!
//! * Every `period` it updates an EWMA of the arrival rate (`alpha`) and of the service time
//!   (busy time per completion; starts at `service`), computes
//!   `target = ceil(rate × service × headroom) + spare` and wakes up to `target` at once.
//!   It sleeps down to `target` only when more than `hysteresis` workers have been surplus
//!   for at least `cooldown` (a scale-down stabilisation window: quick up, slow down).
//! * On every arrival it also tracks a fast EWMA of inter-arrival gaps (`fast_alpha`); when a
//!   task has to queue it wakes, at once, enough workers for both the queue and the
//!   fast-rate target: several at once on a burst.
//! * Optionally (`idle_timeout` > 0) an idle worker also sleeps after that timeout.

use super::{OptionInfo, Opts, PolicyError, PolicyInfo};
use crate::policy::{Decision, IdleTimer, LoadView, PeriodMetrics, Policy};
use crate::units::{fmt_ns, NS_PER_MS};

pub(super) const INFO: PolicyInfo = PolicyInfo {
    name: "predictive",
    summary: "EWMA arrival rate x service time (Little's law) with hysteresis; wakes several at once on a burst",
    options: &[
        OptionInfo { key: "period", default: "100ms", help: "estimation period (at least 1ms)" },
        OptionInfo { key: "alpha", default: "0.3", help: "EWMA weight of the newest period, in (0, 1]" },
        OptionInfo { key: "fast_alpha", default: "0.2", help: "EWMA weight of the newest inter-arrival gap, in (0, 1]" },
        OptionInfo { key: "headroom", default: "1.25", help: "capacity multiplier over the estimated load (>= 1)" },
        OptionInfo { key: "spare", default: "1", help: "extra workers kept above the estimate" },
        OptionInfo { key: "hysteresis", default: "0", help: "surplus workers tolerated indefinitely" },
        OptionInfo { key: "cooldown", default: "300ms", help: "how long a surplus must last before sleeping" },
        OptionInfo { key: "service", default: "5ms", help: "initial service-time estimate" },
        OptionInfo { key: "idle_timeout", default: "0", help: "also sleep a worker idle this long (0 = off)" },
    ],
};

/// Parameters of [`PredictivePolicy`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PredictiveParams {
    /// Estimation period (ns).
    pub period_ns: u64,
    /// EWMA weight of the newest period's rate and service time.
    pub alpha: f64,
    /// EWMA weight of the newest inter-arrival gap.
    pub fast_alpha: f64,
    /// Capacity multiplier over the estimated load.
    pub headroom: f64,
    /// Extra workers above the estimate.
    pub spare: usize,
    /// Surplus workers tolerated indefinitely.
    pub hysteresis: usize,
    /// How long a surplus must last before sleeping (ns).
    pub cooldown_ns: u64,
    /// Initial service-time estimate (ns).
    pub service_ns: u64,
    /// Idle timeout (ns), 0 = off.
    pub idle_timeout_ns: u64,
}

impl Default for PredictiveParams {
    fn default() -> Self {
        PredictiveParams {
            period_ns: 100 * NS_PER_MS,
            alpha: 0.3,
            fast_alpha: 0.2,
            headroom: 1.25,
            spare: 1,
            hysteresis: 0,
            cooldown_ns: 300 * NS_PER_MS,
            service_ns: 5 * NS_PER_MS,
            idle_timeout_ns: 0,
        }
    }
}

impl PredictiveParams {
    pub(super) fn from_opts(o: &Opts<'_>) -> Result<Self, PolicyError> {
        let d = PredictiveParams::default();
        let p = PredictiveParams {
            period_ns: o.duration("period", d.period_ns, NS_PER_MS)?,
            alpha: o.number("alpha", d.alpha, 0.0, 1.0)?,
            fast_alpha: o.number("fast_alpha", d.fast_alpha, 0.0, 1.0)?,
            headroom: o.number("headroom", d.headroom, 1.0, 1000.0)?,
            spare: o.count("spare", d.spare, 0, false)?,
            hysteresis: o.count("hysteresis", d.hysteresis, 0, false)?,
            cooldown_ns: o.duration("cooldown", d.cooldown_ns, 0)?,
            service_ns: o.duration("service", d.service_ns, 1)?,
            idle_timeout_ns: o.duration("idle_timeout", d.idle_timeout_ns, 0)?,
        };
        if p.alpha == 0.0 || p.fast_alpha == 0.0 {
            return Err(o.inconsistent("alpha and fast_alpha must be above 0".to_string()));
        }
        Ok(p)
    }
}

/// The predictive policy (see the module docs).
#[derive(Debug, Clone)]
pub struct PredictivePolicy {
    p: PredictiveParams,
    rate: f64,
    service_ns: f64,
    last_arrival_ns: Option<u64>,
    gap_ns: Option<f64>,
    surplus_since: Option<u64>,
}

impl PredictivePolicy {
    /// A policy with these parameters.
    pub fn new(p: PredictiveParams) -> Self {
        PredictivePolicy {
            p,
            rate: 0.0,
            service_ns: p.service_ns as f64,
            last_arrival_ns: None,
            gap_ns: None,
            surplus_since: None,
        }
    }

    /// Workers needed for `rate` arrivals per second.
    fn target(&self, rate: f64) -> usize {
        // The 0.05-worker tolerance lets a decaying EWMA reach 0 (it never does exactly).
        let need = (rate * self.service_ns / 1e9 * self.p.headroom - 0.05)
            .max(0.0)
            .ceil();
        // Saturating float-to-int conversion; the driver clamps to n anyway.
        (need.min(1e9) as usize).saturating_add(self.p.spare)
    }
}

fn to_u32(x: usize) -> u32 {
    u32::try_from(x).unwrap_or(u32::MAX)
}

impl Policy for PredictivePolicy {
    fn name(&self) -> &'static str {
        "predictive"
    }

    fn params(&self) -> String {
        let p = &self.p;
        format!(
            "period={} alpha={} fast_alpha={} headroom={} spare={} hysteresis={} cooldown={} service={} idle_timeout={}",
            fmt_ns(p.period_ns),
            p.alpha,
            p.fast_alpha,
            p.headroom,
            p.spare,
            p.hysteresis,
            fmt_ns(p.cooldown_ns),
            fmt_ns(p.service_ns),
            if p.idle_timeout_ns == 0 { "off".to_string() } else { fmt_ns(p.idle_timeout_ns) }
        )
    }

    fn initial_active(&self, workers: usize) -> usize {
        self.p.spare.min(workers)
    }

    fn period_ns(&self) -> Option<u64> {
        Some(self.p.period_ns)
    }

    fn on_period(&mut self, m: &PeriodMetrics) -> Decision {
        let a = self.p.alpha;
        self.rate = a * m.arrival_rate() + (1.0 - a) * self.rate;
        if let Some(s) = m.mean_service_ns() {
            self.service_ns = a * s + (1.0 - a) * self.service_ns;
        }
        let target = self.target(self.rate);
        let active = m.load.active();
        let why = || {
            format!(
                "rate ~{:.0}/s x service {} x {} + {} -> target {}",
                self.rate,
                fmt_ns(self.service_ns as u64),
                self.p.headroom,
                self.p.spare,
                target
            )
        };
        if active <= target.saturating_add(self.p.hysteresis) {
            self.surplus_since = None;
        }
        if target > active && (m.load.sleeping > 0 || m.load.draining > 0) {
            Decision::wake(
                to_u32(target - active),
                format!("{}, {active} active", why()),
            )
        } else if active > target.saturating_add(self.p.hysteresis) {
            let since = *self.surplus_since.get_or_insert(m.now_ns);
            if m.now_ns - since >= self.p.cooldown_ns {
                self.surplus_since = None;
                Decision::sleep(
                    to_u32(active - target),
                    format!(
                        "{}, {active} active for {}",
                        why(),
                        fmt_ns(m.now_ns - since)
                    ),
                )
            } else {
                Decision::hold()
            }
        } else {
            Decision::hold()
        }
    }

    fn on_arrival(&mut self, v: &LoadView) -> Decision {
        if let Some(last) = self.last_arrival_ns {
            let gap = v.now_ns.saturating_sub(last).max(1) as f64;
            let fa = self.p.fast_alpha;
            self.gap_ns = Some(match self.gap_ns {
                Some(g) => fa * gap + (1.0 - fa) * g,
                None => gap,
            });
        }
        self.last_arrival_ns = Some(v.now_ns);
        if v.queued <= v.waking || (v.sleeping == 0 && v.draining == 0) {
            return Decision::hold();
        }
        let fast_rate = self.gap_ns.map_or(0.0, |g| 1e9 / g);
        let for_queue = v.queued - v.waking;
        let for_rate = self.target(fast_rate).saturating_sub(v.active());
        let k = for_queue.max(for_rate);
        Decision::wake(
            to_u32(k),
            format!(
                "burst: {} queued, {} waking, arrival rate ~{:.0}/s needs {} workers",
                v.queued,
                v.waking,
                fast_rate,
                self.target(fast_rate)
            ),
        )
    }

    fn on_worker_idle(&mut self, _worker: usize, v: &LoadView) -> Option<IdleTimer> {
        (self.p.idle_timeout_ns > 0).then(|| IdleTimer {
            at_ns: v.now_ns.saturating_add(self.p.idle_timeout_ns),
            reason: format!("idle for {}", fmt_ns(self.p.idle_timeout_ns)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::Action;
    use crate::units::NS_PER_S;

    #[test]
    fn burst_wakes_several_at_once() {
        let mut p = PredictivePolicy::new(PredictiveParams::default());
        let mut v = LoadView {
            workers: 8,
            busy: 1,
            sleeping: 7,
            ..LoadView::default()
        };
        // 1000/s arrivals x 5 ms = 5 workers of load.
        for i in 0..20 {
            v.now_ns = i * NS_PER_MS;
            assert!(p.on_arrival(&v).is_hold());
        }
        v.queued = 1;
        let d = p.on_arrival(&v);
        assert_eq!(d.action, Action::Wake);
        assert!(d.count >= 5, "{d:?}");
    }

    #[test]
    fn period_sizes_to_load_with_hysteresis() {
        let mut p = PredictivePolicy::new(PredictiveParams {
            alpha: 1.0,
            hysteresis: 1,
            cooldown_ns: 0,
            ..PredictiveParams::default()
        });
        let mut m = PeriodMetrics {
            start_ns: 0,
            now_ns: NS_PER_S / 10,
            busy_ns: vec![0; 8],
            awake_ns: vec![0; 8],
            check_ins: vec![0; 8],
            arrivals: 100, // 1000/s
            completions: 0,
            load: LoadView {
                workers: 8,
                idle: 1,
                sleeping: 7,
                ..LoadView::default()
            },
        };
        let d = p.on_period(&m);
        // target = ceil(1000/s x 5 ms x 1.25) + 1 = 8; 1 active -> wake 7.
        assert_eq!((d.action, d.count), (Action::Wake, 7), "{d:?}");
        m.arrivals = 0;
        m.load.idle = 3;
        m.load.sleeping = 5;
        let d = p.on_period(&m); // target 1, active 3 > 1 + 1
        assert_eq!((d.action, d.count), (Action::Sleep, 2), "{d:?}");
        m.load.idle = 2;
        assert!(p.on_period(&m).is_hold()); // 2 <= 1 + 1
    }

    #[test]
    fn cooldown_delays_sleep() {
        let mut p = PredictivePolicy::new(PredictiveParams::default());
        let period = p.p.period_ns;
        let mut m = PeriodMetrics {
            busy_ns: vec![0; 4],
            awake_ns: vec![0; 4],
            check_ins: vec![0; 4],
            load: LoadView {
                workers: 4,
                idle: 4,
                ..LoadView::default()
            },
            ..PeriodMetrics::default()
        };
        let mut slept_at = None;
        for i in 1..10 {
            m.start_ns = (i - 1) * period;
            m.now_ns = i * period;
            let d = p.on_period(&m);
            if !d.is_hold() {
                assert_eq!((d.action, d.count), (Action::Sleep, 3), "{d:?}");
                slept_at = Some(m.now_ns);
                break;
            }
        }
        // Surplus first seen at 100 ms; sleeps once it has lasted 300 ms.
        assert_eq!(slept_at, Some(4 * period));
    }
}
