//! `queue`: event-driven. A task that arrives when no active worker is idle (it had to
//! queue) wakes one sleeping worker at once, unless enough workers are already waking for
//! the queued tasks; a worker that stays idle for `idle_timeout` goes to sleep.
//!
//! Dispatch to the most recently idled worker (the drivers' rule) lets surplus workers
//! reach their timeout while a few stay hot.

use super::{OptionInfo, Opts, PolicyError, PolicyInfo};
use crate::policy::{Decision, IdleTimer, LoadView, Policy};
use crate::units::{fmt_ns, NS_PER_MS};

pub(super) const INFO: PolicyInfo = PolicyInfo {
    name: "queue",
    summary:
        "event-driven: a queued arrival wakes a worker at once; idle workers sleep after a timeout",
    options: &[
        OptionInfo {
            key: "idle_timeout",
            default: "10ms",
            help: "sleep a worker idle for this long (> 0)",
        },
        OptionInfo {
            key: "initial",
            default: "0",
            help: "workers awake at start (raised to min_active)",
        },
    ],
};

/// Parameters of [`QueuePolicy`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueParams {
    /// Idle time after which a worker sleeps (ns, > 0).
    pub idle_timeout_ns: u64,
    /// Workers awake at start.
    pub initial: usize,
}

impl Default for QueueParams {
    fn default() -> Self {
        QueueParams {
            idle_timeout_ns: 10 * NS_PER_MS,
            initial: 0,
        }
    }
}

impl QueueParams {
    pub(super) fn from_opts(o: &Opts<'_>) -> Result<Self, PolicyError> {
        let d = QueueParams::default();
        Ok(QueueParams {
            idle_timeout_ns: o.duration("idle_timeout", d.idle_timeout_ns, 1)?,
            initial: o.count("initial", d.initial, 0, false)?,
        })
    }
}

/// The event-driven policy (see the module docs).
#[derive(Debug, Clone)]
pub struct QueuePolicy {
    p: QueueParams,
}

impl QueuePolicy {
    /// A policy with these parameters.
    pub fn new(p: QueueParams) -> Self {
        QueuePolicy { p }
    }
}

impl Policy for QueuePolicy {
    fn name(&self) -> &'static str {
        "queue"
    }

    fn params(&self) -> String {
        format!(
            "idle_timeout={} initial={}",
            fmt_ns(self.p.idle_timeout_ns),
            self.p.initial
        )
    }

    fn initial_active(&self, workers: usize) -> usize {
        self.p.initial.min(workers)
    }

    fn on_arrival(&mut self, v: &LoadView) -> Decision {
        if v.queued > v.waking && (v.sleeping > 0 || v.draining > 0) {
            Decision::wake(
                1,
                format!(
                    "task queued ({} waiting, {} waking, no idle worker)",
                    v.queued, v.waking
                ),
            )
        } else {
            Decision::hold()
        }
    }

    fn on_worker_idle(&mut self, _worker: usize, v: &LoadView) -> Option<IdleTimer> {
        Some(IdleTimer {
            at_ns: v.now_ns.saturating_add(self.p.idle_timeout_ns),
            reason: format!("idle for {}", fmt_ns(self.p.idle_timeout_ns)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::Action;

    #[test]
    fn wakes_only_when_a_task_waits() {
        let mut p = QueuePolicy::new(QueueParams::default());
        let mut v = LoadView {
            workers: 4,
            busy: 1,
            sleeping: 3,
            ..LoadView::default()
        };
        assert!(p.on_arrival(&v).is_hold());
        v.queued = 1;
        let d = p.on_arrival(&v);
        assert_eq!((d.action, d.count), (Action::Wake, 1));
        v.waking = 1;
        assert!(p.on_arrival(&v).is_hold());
        v.now_ns = 5;
        let t = p.on_worker_idle(0, &v).unwrap();
        assert_eq!(t.at_ns, 5 + 10 * NS_PER_MS);
    }
}
