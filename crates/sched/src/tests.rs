//! Cross-module tests: simulator invariants on random traces (proptest) and policy
//! behaviour under steps and bursts.

use crate::sim::{compare, simulate, SimConfig, SimOutcome, Workload};
use crate::trace::Trace;
use crate::units::{NS_PER_MS, NS_PER_S, NS_PER_US};
use crate::{build_policy, Action, Trigger};
use proptest::prelude::*;

fn opts(kv: &[(&str, &str)]) -> Vec<(String, String)> {
    kv.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn run(cfg: &SimConfig, wl: &Workload, policy: &str, o: &[(&str, &str)]) -> SimOutcome {
    let mut p = build_policy(policy, &opts(o)).unwrap();
    simulate(cfg, wl, p.as_mut()).unwrap()
}

/// Checks every task-level invariant of one outcome.
fn check_tasks(cfg: &SimConfig, wl: &Workload, out: &SimOutcome) {
    let r = &out.report;
    assert_eq!(out.tasks.len(), wl.trace.arrivals.len());
    assert_eq!(r.completed, r.tasks);
    for (i, t) in out.tasks.iter().enumerate() {
        assert_eq!(t.arrival_ns, wl.trace.arrivals[i]);
        assert!(
            t.start_ns >= t.arrival_ns,
            "task {i} started before arriving"
        );
        // Never interrupted: a draining worker finishes its task.
        assert_eq!(
            t.end_ns - t.start_ns,
            wl.service_ns[i],
            "task {i} cut short"
        );
        assert!((t.worker as usize) < cfg.workers);
    }
    // FIFO: tasks start in arrival order.
    assert!(out.tasks.windows(2).all(|w| w[0].start_ns <= w[1].start_ns));
    // No worker runs two tasks at once (no duplication onto a busy worker).
    let mut per: Vec<Vec<(u64, u64)>> = vec![Vec::new(); cfg.workers];
    for t in &out.tasks {
        per[t.worker as usize].push((t.start_ns, t.end_ns));
    }
    for v in &mut per {
        v.sort_unstable();
        assert!(
            v.windows(2).all(|w| w[0].1 <= w[1].0),
            "overlapping tasks on a worker"
        );
    }
    assert!(r.reserved_worker_vcpu_s + 1e-9 >= r.busy_vcpu_s);
    assert!(r.reserved_vcpu_s + 1e-9 >= r.busy_vcpu_s);
    assert!(r.peak_awake_workers <= cfg.workers);
    for d in out.log.records() {
        assert!(d.count >= 1 && d.count <= d.requested);
        assert!(d.active_after as usize <= cfg.workers);
        assert!(d.active_after as usize >= cfg.min_active);
    }
}

fn arb_policy() -> impl Strategy<Value = (&'static str, Vec<(String, String)>)> {
    prop_oneof![
        Just(("fixed", opts(&[("count", "2")]))),
        Just(("fixed", vec![])),
        (1u64..50).prop_map(|p| ("ditto", opts(&[("period", &format!("{p}ms"))]))),
        (1u64..20_000).prop_map(|t| ("queue", opts(&[("idle_timeout", &format!("{t}us"))]))),
        (1u64..50, 0u64..3).prop_map(|(p, h)| (
            "predictive",
            opts(&[
                ("period", &format!("{p}ms")),
                ("hysteresis", &h.to_string()),
                ("idle_timeout", "2ms")
            ])
        )),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn simulator_invariants(
        gaps in prop::collection::vec(0u64..3_000_000, 0..400),
        services in prop::collection::vec(1u64..20_000_000, 400),
        workers in 1usize..6,
        min_active in 0usize..2,
        wake_us in 0u64..300,
        (policy, popts) in arb_policy(),
    ) {
        let mut t = 0;
        let arrivals: Vec<u64> = gaps.iter().map(|g| { t += g; t }).collect();
        let n = arrivals.len();
        let wl = Workload::from_parts(
            Trace { arrivals, duration_ns: t + 1 },
            services[..n].to_vec(),
        ).unwrap();
        let cfg = SimConfig {
            workers,
            min_active: min_active.min(workers),
            wake_latency_ns: wake_us * NS_PER_US,
            audit: true,
            ..SimConfig::default()
        };
        let mut p = build_policy(policy, &popts).unwrap();
        let out = simulate(&cfg, &wl, p.as_mut()).unwrap();
        check_tasks(&cfg, &wl, &out);
    }
}

#[test]
fn deterministic_for_a_seed() {
    let cfg = SimConfig::default();
    let spec = "onoff:on=2s,off=8s,rate=800/s,base=20/s,duration=30s";
    let a = Workload::generate(spec, "exp:5ms", 7).unwrap();
    let b = Workload::generate(spec, "exp:5ms", 7).unwrap();
    assert_eq!(a, b);
    let ra = serde_json::to_string(&run(&cfg, &a, "queue", &[]).report).unwrap();
    let rb = serde_json::to_string(&run(&cfg, &b, "queue", &[]).report).unwrap();
    assert_eq!(ra, rb);
    let c = Workload::generate(spec, "exp:5ms", 8).unwrap();
    assert_ne!(a.trace, c.trace);
}

/// First time (ns) at which the decision log shows `n` active workers.
fn time_full(out: &SimOutcome, n: usize) -> Option<u64> {
    out.log
        .records()
        .iter()
        .find(|d| d.active_after as usize == n)
        .map(|d| d.time_ns)
}

#[test]
fn step_up_ditto_within_n_periods_queue_within_one_arrival() {
    let cfg = SimConfig {
        audit: true,
        ..SimConfig::default()
    };
    let n = cfg.workers as u64;
    // 2000/s x 5 ms = 10 workers of load: saturates all 8.
    let wl =
        Workload::generate("step:from=0/s,to=2000/s,at=5s,duration=20s", "const:5ms", 1).unwrap();
    let step = 5 * NS_PER_S;

    let d = run(&cfg, &wl, "ditto", &[]);
    check_tasks(&cfg, &wl, &d);
    let full = time_full(&d, cfg.workers).expect("ditto reaches n");
    assert!(
        full - step <= n * NS_PER_S,
        "ditto took {} ms",
        (full - step) / NS_PER_MS
    );
    assert!(full - step >= (n - 2) * NS_PER_S, "one step per period");
    assert!(d.log.records().iter().all(|r| r.trigger == Trigger::Period));

    let q = run(&cfg, &wl, "queue", &[]);
    check_tasks(&cfg, &wl, &q);
    let first_wake = q
        .log
        .records()
        .iter()
        .find(|r| r.action == Action::Wake)
        .unwrap();
    // The wake happens at the very arrival that had to queue: the arrival just after the
    // one that took the only awake worker.
    let after_step: Vec<u64> = wl
        .trace
        .arrivals
        .iter()
        .copied()
        .filter(|&a| a >= step)
        .collect();
    assert_eq!(first_wake.time_ns, after_step[1]);
    assert_eq!(first_wake.trigger, Trigger::Arrival);
    let full = time_full(&q, cfg.workers).expect("queue reaches n");
    assert!(
        full - step < 20 * NS_PER_MS,
        "queue took {} us",
        (full - step) / 1000
    );
    assert_eq!(
        q.report.reaction.time.max_ms,
        cfg.wake_latency_ns as f64 / 1e6
    );

    let p = run(&cfg, &wl, "predictive", &[]);
    check_tasks(&cfg, &wl, &p);
    let full = time_full(&p, cfg.workers).expect("predictive reaches n");
    assert!(full - step < 20 * NS_PER_MS);
    let burst = p
        .log
        .records()
        .iter()
        .find(|r| r.action == Action::Wake)
        .unwrap();
    assert_eq!(burst.trigger, Trigger::Arrival);

    let f = run(&cfg, &wl, "fixed", &[]);
    assert!(f.log.records().is_empty());
    assert_eq!(f.report.wakes + f.report.sleeps, 0);
}

#[test]
fn step_down_workers_sleep() {
    let cfg = SimConfig {
        audit: true,
        ..SimConfig::default()
    };
    let wl = Workload::generate(
        "step:from=0/s,to=1200/s,at=0s,back=10s,duration=30s",
        "exp:5ms",
        3,
    )
    .unwrap();
    for policy in ["ditto", "queue", "predictive"] {
        let out = run(&cfg, &wl, policy, &[]);
        check_tasks(&cfg, &wl, &out);
        let recs = out.log.records();
        let last = recs.last().unwrap();
        assert_eq!(last.action, Action::Sleep, "{policy}");
        assert_eq!(last.active_after as usize, cfg.min_active, "{policy}");
        assert!(recs
            .iter()
            .any(|r| r.action == Action::Sleep && r.time_ns > 10 * NS_PER_S));
        assert!(last.time_ns < 20 * NS_PER_S, "{policy} slept late");
        assert!(out.report.peak_awake_workers >= 5, "{policy}");
    }
}

#[test]
fn min_active_zero_still_serves_everything() {
    let cfg = SimConfig {
        min_active: 0,
        audit: true,
        ..SimConfig::default()
    };
    let wl = Workload::generate("poisson:rate=50/s,duration=20s", "exp:2ms", 5).unwrap();
    for policy in ["ditto", "queue", "predictive", "fixed"] {
        let out = run(&cfg, &wl, policy, &[]);
        check_tasks(&cfg, &wl, &out);
    }
    let q = run(&cfg, &wl, "queue", &[]);
    assert!(q.report.mean_awake_workers < 1.0);
    let mut never = build_policy("fixed", &opts(&[("count", "0")])).unwrap();
    let e = simulate(&cfg, &wl, never.as_mut()).err().unwrap();
    assert!(matches!(e, crate::sim::SimError::Stalled { .. }), "{e}");
}

#[test]
fn burst_comparison_meets_goal() {
    let cfg = SimConfig::default();
    let wl = Workload::generate(
        "onoff:on=10s,off=50s,rate=1000/s,base=20/s,duration=5m",
        "exp:5ms",
        42,
    )
    .unwrap();
    let names: Vec<(String, Vec<(String, String)>)> = ["ditto", "queue", "predictive"]
        .iter()
        .map(|n| (n.to_string(), vec![]))
        .collect();
    let c = compare(&cfg, &wl, &names).unwrap();
    let q = c.relative.iter().find(|r| r.policy == "queue").unwrap();
    assert!(q.meets_goal, "{q:?}");
    let d = c.relative.iter().find(|r| r.policy == "ditto").unwrap();
    assert!(!d.meets_goal, "{d:?}");
    assert!(c.best.is_some());
    let json = serde_json::to_value(&c).unwrap();
    assert!(json["runs"][0]["latency"]["p99_ms"].is_number());
}

#[test]
fn azure_sample_replays_through_the_simulator() {
    let path = format!("{}/data/azure_sample.csv", env!("CARGO_MANIFEST_DIR"));
    let cfg = SimConfig {
        audit: true,
        ..SimConfig::default()
    };
    let wl = Workload::generate(
        &format!("azure:{path},row=2,minutes=10,speed=10"),
        "exp:1ms",
        1,
    )
    .unwrap();
    assert!(wl.trace.arrivals.len() > 1000);
    let out = run(&cfg, &wl, "queue", &[]);
    check_tasks(&cfg, &wl, &out);
}
