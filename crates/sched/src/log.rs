//! The decision log: every applied wake/sleep decision with its time, trigger, size and
//! reason. Shared by the simulator and the VMM's control thread.

use crate::policy::Action;
use serde::Serialize;

/// Which hook produced a decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Trigger {
    /// [`crate::Policy::on_period`].
    Period,
    /// [`crate::Policy::on_arrival`].
    Arrival,
    /// An [`crate::IdleTimer`] armed by [`crate::Policy::on_worker_idle`] fired.
    IdleTimeout,
    /// The driver itself (e.g. an operator request).
    Driver,
}

impl std::fmt::Display for Trigger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Trigger::Period => "period",
            Trigger::Arrival => "arrival",
            Trigger::IdleTimeout => "idle-timeout",
            Trigger::Driver => "driver",
        })
    }
}

/// One applied decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DecisionRecord {
    /// When it was applied (ns, driver clock).
    pub time_ns: u64,
    /// Wake or sleep (holds are not recorded).
    pub action: Action,
    /// Workers actually affected, after clamping (> 0).
    pub count: u32,
    /// Workers the policy asked for.
    pub requested: u32,
    /// Which hook decided.
    pub trigger: Trigger,
    /// The policy's reason.
    pub reason: String,
    /// Active workers (idle + busy + waking) right after the decision.
    pub active_after: u32,
}

/// An append-only log of applied decisions with an optional cap on stored records (counts
/// keep going past the cap).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DecisionLog {
    records: Vec<DecisionRecord>,
    limit: Option<usize>,
    dropped: u64,
    wake_decisions: u64,
    sleep_decisions: u64,
}

impl DecisionLog {
    /// A log that keeps every record.
    pub fn new() -> Self {
        DecisionLog::default()
    }

    /// A log that stores at most `limit` records (later ones are only counted).
    pub fn with_limit(limit: usize) -> Self {
        DecisionLog {
            limit: Some(limit),
            ..DecisionLog::default()
        }
    }

    /// Append a record.
    pub fn push(&mut self, r: DecisionRecord) {
        match r.action {
            Action::Wake => self.wake_decisions += 1,
            Action::Sleep => self.sleep_decisions += 1,
            Action::Hold => {}
        }
        if self.limit.is_some_and(|l| self.records.len() >= l) {
            self.dropped += 1;
        } else {
            self.records.push(r);
        }
    }

    /// The stored records, oldest first.
    pub fn records(&self) -> &[DecisionRecord] {
        &self.records
    }

    /// Records not stored because of the cap.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Wake decisions applied (stored or not).
    pub fn wake_decisions(&self) -> u64 {
        self.wake_decisions
    }

    /// Sleep decisions applied (stored or not).
    pub fn sleep_decisions(&self) -> u64 {
        self.sleep_decisions
    }
}

impl std::fmt::Display for DecisionRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:>14.6}s {:<5} {:>2}/{:<2} {:<12} active={:<3} {}",
            self.time_ns as f64 / 1e9,
            self.action,
            self.count,
            self.requested,
            self.trigger,
            self.active_after,
            self.reason
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(action: Action) -> DecisionRecord {
        DecisionRecord {
            time_ns: 1_500_000_000,
            action,
            count: 1,
            requested: 2,
            trigger: Trigger::Arrival,
            reason: "test".into(),
            active_after: 3,
        }
    }

    #[test]
    fn cap_keeps_counting() {
        let mut l = DecisionLog::with_limit(1);
        l.push(rec(Action::Wake));
        l.push(rec(Action::Sleep));
        assert_eq!(l.records().len(), 1);
        assert_eq!(
            (l.dropped(), l.wake_decisions(), l.sleep_decisions()),
            (1, 1, 1)
        );
        let line = l.records()[0].to_string();
        assert!(
            line.contains("wake") && line.contains("1/2") && line.contains("test"),
            "{line}"
        );
        let j = serde_json::to_string(&l.records()[0]).unwrap();
        assert!(j.contains("\"action\":\"wake\""), "{j}");
    }
}
