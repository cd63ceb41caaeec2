//! Per-namespace fair share of the platform's in-flight capacity.
//!
//! Every accepted invocation holds a [`Ticket`] until its activation is recorded. A ticket
//! counts against its namespace's bounds: invocations accepted and unfinished
//! (`tenant_max_inflight`, or the namespace's `concurrentInvocations` if lower) and bytes
//! held (`tenant_max_bytes`: parameters plus a fixed overhead per invocation), so no tenant
//! can make the server hold more than that. The host-wide `max_inflight` is a soft bound: a
//! tenant still under its weighted share of it is admitted even when others filled it.
//!
//! Before its VM may run it, an invocation takes one of `capacity` **running slots**. A
//! namespace may hold at most its weighted share of them (`capacity × w / Σw` over the
//! namespaces with work); alone, all but a headroom of `capacity / 8` (at least 1), which is
//! what lets a newcomer start at once while another tenant floods. Freed slots go to the
//! waiting namespace with the fewest slots per unit of weight (FIFO within a namespace).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

/// Bounds of the fair scheduler.
#[derive(Clone, Copy, Debug)]
pub struct FairConfig {
    /// Invocations handed to VMs at once, all tenants together.
    pub capacity: u32,
    /// Invocations accepted and unfinished, all tenants (soft, see the module doc).
    pub max_inflight: u32,
    /// Invocations accepted and unfinished per namespace.
    pub tenant_max_inflight: u32,
    /// Bytes held by a namespace's unfinished invocations.
    pub tenant_max_bytes: u64,
}

impl Default for FairConfig {
    fn default() -> Self {
        Self {
            capacity: 32,
            max_inflight: 1000,
            tenant_max_inflight: 500,
            tenant_max_bytes: 64 << 20,
        }
    }
}

/// Bytes an invocation is charged beyond its parameters (task, record, bookkeeping).
pub const OVERHEAD_BYTES: u64 = 4096;

/// Why an invocation was not admitted (all 429 but `Closed`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The namespace has too many invocations unfinished.
    #[error("{}", crate::tenants::too_many_concurrent(*.0, *.1))]
    Concurrent(u32, u32),
    /// The namespace's unfinished invocations hold too many bytes.
    #[error("The unfinished invocations of this namespace hold {0} bytes of parameters; the limit is {1} bytes. Retry later.")]
    Bytes(u64, u64),
    /// The host is full and the namespace has at least its share.
    #[error("System is overloaded, try again later.")]
    Overloaded,
    /// The platform is stopping.
    #[error("The platform is shutting down.")]
    Closed,
}

#[derive(Default)]
struct Tenant {
    weight: u32,
    inflight: u32,
    bytes: u64,
    running: u32,
    waiters: VecDeque<tokio::sync::oneshot::Sender<Grant>>,
}

/// A slot handed to a waiter. If the waiter is gone before it takes it (its future was
/// dropped), dropping the grant gives the slot back.
struct Grant {
    fair: Arc<Fair>,
    ns: String,
    claimed: bool,
}

impl Drop for Grant {
    fn drop(&mut self) {
        if self.claimed {
            return;
        }
        let mut s = self.fair.lock();
        s.running = s.running.saturating_sub(1);
        if let Some(t) = s.tenants.get_mut(&self.ns) {
            t.running = t.running.saturating_sub(1);
        }
        if !s.closed {
            self.fair.dispatch(&mut s);
        }
    }
}

#[derive(Default)]
struct State {
    tenants: HashMap<String, Tenant>,
    inflight: u32,
    running: u32,
    closed: bool,
}

/// The fair scheduler.
pub struct Fair {
    cfg: FairConfig,
    state: Mutex<State>,
}

/// One admitted invocation's claim; dropping it releases everything it holds.
pub struct Ticket {
    fair: Arc<Fair>,
    ns: String,
    bytes: u64,
    running: bool,
}

impl State {
    fn weights(&self) -> u64 {
        self.tenants
            .values()
            .filter(|t| t.inflight > 0)
            .map(|t| t.weight.max(1) as u64)
            .sum()
    }
}

impl Fair {
    /// A scheduler with these bounds.
    pub fn new(cfg: FairConfig) -> Arc<Fair> {
        Arc::new(Fair {
            cfg,
            state: Mutex::new(State::default()),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Most running slots namespace `t` may hold now.
    fn slot_cap(&self, s: &State, t: &Tenant) -> u32 {
        let cap = self.cfg.capacity.max(1);
        let active = s.tenants.values().filter(|t| t.inflight > 0).count();
        if active <= 1 {
            return cap.saturating_sub((cap / 8).max(1)).max(1);
        }
        let share = cap as u64 * t.weight.max(1) as u64 / s.weights().max(1);
        (share as u32).max(1)
    }

    /// Admit one invocation of `ns` holding `params_bytes`; `concurrent` is the namespace's
    /// own limit. `forced` admits regardless of bounds (resuming journaled work).
    pub fn admit(
        self: &Arc<Self>,
        ns: &str,
        weight: u32,
        params_bytes: usize,
        concurrent: Option<u32>,
        forced: bool,
    ) -> Result<Ticket, Refusal> {
        let bytes = params_bytes as u64 + OVERHEAD_BYTES;
        let mut s = self.lock();
        if s.closed {
            return Err(Refusal::Closed);
        }
        let total_inflight = s.inflight;
        let weights = s.weights();
        let t = s.tenants.entry(ns.to_string()).or_default();
        t.weight = weight.max(1);
        if !forced {
            let allowed = concurrent
                .unwrap_or(u32::MAX)
                .min(self.cfg.tenant_max_inflight);
            if t.inflight >= allowed {
                return Err(Refusal::Concurrent(t.inflight + 1, allowed));
            }
            if t.bytes + bytes > self.cfg.tenant_max_bytes {
                return Err(Refusal::Bytes(t.bytes + bytes, self.cfg.tenant_max_bytes));
            }
            if total_inflight >= self.cfg.max_inflight {
                let w = if t.inflight > 0 {
                    weights
                } else {
                    weights + t.weight as u64
                };
                let share = self.cfg.max_inflight as u64 * t.weight as u64 / w.max(1);
                if t.inflight as u64 >= share {
                    return Err(Refusal::Overloaded);
                }
            }
        }
        t.inflight += 1;
        t.bytes += bytes;
        s.inflight += 1;
        Ok(Ticket {
            fair: self.clone(),
            ns: ns.to_string(),
            bytes,
            running: false,
        })
    }

    /// Hand free slots to waiters, least-served namespace first.
    fn dispatch(self: &Arc<Self>, s: &mut State) {
        while s.running < self.cfg.capacity.max(1) {
            let mut best: Option<(u64, u64, String)> = None;
            for (ns, t) in &s.tenants {
                if t.waiters.is_empty() || t.running >= self.slot_cap(s, t) {
                    continue;
                }
                // Compare running/weight as fractions: a/b < c/d ⇔ a·d < c·b.
                let (r, w) = (t.running as u64, t.weight.max(1) as u64);
                if best.as_ref().is_none_or(|(br, bw, _)| r * bw < *br * w) {
                    best = Some((r, w, ns.clone()));
                }
            }
            let Some((_, _, ns)) = best else { return };
            let Some(t) = s.tenants.get_mut(&ns) else {
                return;
            };
            if let Some(w) = t.waiters.pop_front() {
                t.running += 1;
                s.running += 1;
                let grant = Grant {
                    fair: self.clone(),
                    ns,
                    claimed: false,
                };
                if let Err(mut g) = w.send(grant) {
                    // The waiter is gone: undo (under the lock we hold).
                    g.claimed = true;
                    s.running -= 1;
                    if let Some(t) = s.tenants.get_mut(&g.ns) {
                        t.running -= 1;
                    }
                }
            }
        }
    }

    /// Refuse new work and wake every waiter with [`Refusal::Closed`].
    pub fn close(&self) {
        let mut s = self.lock();
        s.closed = true;
        for t in s.tenants.values_mut() {
            t.waiters.clear();
        }
    }

    /// Whether [`Fair::close`] was called.
    pub fn is_closed(&self) -> bool {
        self.lock().closed
    }

    /// (accepted and unfinished, running) over all namespaces.
    pub fn totals(&self) -> (u32, u32) {
        let s = self.lock();
        (s.inflight, s.running)
    }

    /// (accepted and unfinished, bytes held, running) of one namespace.
    pub fn tenant(&self, ns: &str) -> (u32, u64, u32) {
        let s = self.lock();
        s.tenants
            .get(ns)
            .map(|t| (t.inflight, t.bytes, t.running))
            .unwrap_or_default()
    }
}

impl Ticket {
    /// Take a running slot now if one is free for this namespace and nobody of it waits.
    pub fn try_slot(&mut self) -> bool {
        if self.running {
            return true;
        }
        let mut s = self.fair.lock();
        if s.closed || s.running >= self.fair.cfg.capacity.max(1) {
            return false;
        }
        let Some(t) = s.tenants.get(&self.ns) else {
            return false;
        };
        if !t.waiters.is_empty() || t.running >= self.fair.slot_cap(&s, t) {
            return false;
        }
        // Someone else with fewer slots per weight is waiting: let them go first.
        let (r, w) = (t.running as u64, t.weight.max(1) as u64);
        let starved = s.tenants.values().any(|o| {
            !o.waiters.is_empty()
                && o.running < self.fair.slot_cap(&s, o)
                && (o.running as u64) * w < r * o.weight.max(1) as u64
        });
        if starved {
            return false;
        }
        if let Some(t) = s.tenants.get_mut(&self.ns) {
            t.running += 1;
        }
        s.running += 1;
        self.running = true;
        true
    }

    /// Wait for a running slot.
    pub async fn slot(&mut self) -> Result<(), Refusal> {
        if self.try_slot() {
            return Ok(());
        }
        let rx = {
            let mut s = self.fair.lock();
            if s.closed {
                return Err(Refusal::Closed);
            }
            let (tx, rx) = tokio::sync::oneshot::channel();
            if let Some(t) = s.tenants.get_mut(&self.ns) {
                t.waiters.push_back(tx);
            }
            self.fair.dispatch(&mut s);
            rx
        };
        match rx.await {
            Ok(mut g) => {
                g.claimed = true;
                self.running = true;
                Ok(())
            }
            Err(_) => Err(Refusal::Closed),
        }
    }

    /// Whether this ticket holds a running slot.
    pub fn is_running(&self) -> bool {
        self.running
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let mut s = self.fair.lock();
        if self.running {
            s.running = s.running.saturating_sub(1);
        }
        s.inflight = s.inflight.saturating_sub(1);
        let empty = match s.tenants.get_mut(&self.ns) {
            Some(t) => {
                t.inflight = t.inflight.saturating_sub(1);
                t.bytes = t.bytes.saturating_sub(self.bytes);
                if self.running {
                    t.running = t.running.saturating_sub(1);
                }
                t.inflight == 0 && t.waiters.is_empty()
            }
            None => false,
        };
        if empty {
            s.tenants.remove(&self.ns);
        }
        if !s.closed {
            self.fair.dispatch(&mut s);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fair(capacity: u32) -> Arc<Fair> {
        Fair::new(FairConfig {
            capacity,
            max_inflight: 100,
            tenant_max_inflight: 50,
            tenant_max_bytes: 1 << 20,
        })
    }

    #[test]
    fn bounds_per_tenant_and_openwhisk_message() {
        let f = fair(8);
        let mut held = Vec::new();
        for _ in 0..3 {
            held.push(f.admit("a", 1, 10, Some(3), false).expect("under"));
        }
        let e = f.admit("a", 1, 10, Some(3), false).err().expect("over");
        assert_eq!(
            e.to_string(),
            "Too many concurrent requests in flight (count: 4, allowed: 3)."
        );
        assert!(f.admit("b", 1, 10, Some(3), false).is_ok(), "per namespace");
        let e = f.admit("c", 1, 2 << 20, None, false).err().expect("bytes");
        assert!(matches!(e, Refusal::Bytes(_, _)), "{e}");
        drop(held);
        assert_eq!(f.tenant("a"), (0, 0, 0), "released on drop");
    }

    #[test]
    fn a_lone_tenant_leaves_headroom_and_a_newcomer_gets_a_slot_at_once() {
        let f = fair(8);
        let mut a: Vec<Ticket> = (0..20)
            .map(|_| f.admit("a", 1, 0, None, false).expect("admit"))
            .collect();
        let got = a.iter_mut().map(|t| t.try_slot()).filter(|ok| *ok).count();
        assert_eq!(got, 7, "all but capacity/8");
        let mut b = f.admit("b", 1, 0, None, false).expect("admit b");
        assert!(b.try_slot(), "the newcomer runs at once");
    }

    #[tokio::test]
    async fn freed_slots_go_to_the_least_served_tenant() {
        let f = fair(4);
        let mut a: Vec<Ticket> = (0..3)
            .map(|_| f.admit("a", 1, 0, None, false).expect("admit"))
            .collect();
        for t in a.iter_mut() {
            assert!(t.try_slot());
        }
        let mut b1 = f.admit("b", 1, 0, None, false).expect("b");
        assert!(b1.try_slot(), "the 4th slot");
        // Two tenants: share 2 each. a holds 3, so a's next waits even after a slot frees.
        let mut a4 = f.admit("a", 1, 0, None, false).expect("a4");
        let mut b2 = f.admit("b", 1, 0, None, false).expect("b2");
        assert!(!a4.try_slot() && !b2.try_slot(), "full");
        let fa = f.clone();
        let wa = tokio::spawn(async move {
            a4.slot().await.expect("a4 runs eventually");
            let _ = fa;
            a4
        });
        let wb = tokio::spawn(async move {
            b2.slot().await.expect("b2 runs");
            b2
        });
        tokio::task::yield_now().await;
        drop(a.pop()); // a: 2 running, b: 1 running → the slot goes to b.
        let b2 = tokio::time::timeout(std::time::Duration::from_secs(5), wb)
            .await
            .expect("b2 got the freed slot")
            .expect("joins");
        assert!(b2.is_running());
        assert!(!wa.is_finished(), "a is at its share");
        drop(a);
        let a4 = tokio::time::timeout(std::time::Duration::from_secs(5), wa)
            .await
            .expect("a4 runs once a is under its share")
            .expect("joins");
        assert!(a4.is_running());
        f.close();
        assert_eq!(f.admit("a", 1, 0, None, false).err(), Some(Refusal::Closed));
    }

    #[test]
    fn a_full_host_still_admits_a_tenant_under_its_share() {
        let f = Fair::new(FairConfig {
            capacity: 4,
            max_inflight: 10,
            tenant_max_inflight: 10,
            tenant_max_bytes: 1 << 30,
        });
        let _a: Vec<Ticket> = (0..10)
            .map(|_| f.admit("a", 1, 0, None, false).expect("admit"))
            .collect();
        assert_eq!(
            f.admit("a", 1, 0, None, false).err(),
            Some(Refusal::Concurrent(11, 10))
        );
        assert!(
            f.admit("b", 1, 0, None, false).is_ok(),
            "b is under its share"
        );
        assert!(f.admit("a", 1, 0, None, true).is_ok(), "forced");
    }
}
