//! End-to-end tests of the elastic VM on real /dev/kvm: boot, dispatch, sleep/wake,
//! recovery from faults, deadlines and malformed messages, and configuration errors.
mod common;

use ditto_protocol::{bad_message, TaskKind};
use ditto_vmm::{TaskError, TaskSpec, VcpuState, Vm, VmConfig, VmmError};
use std::time::{Duration, Instant};

fn noop() -> TaskSpec {
    TaskSpec::new(TaskKind::Noop, 0)
}

/// The guest's integer workload, computed natively.
fn spin_native(n: u64) -> u64 {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    for _ in 0..n {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
    }
    x
}

/// The guest's floating-point workload, computed natively.
fn float_native(n: u64) -> f64 {
    let mut x = 1.0f64;
    let mut acc = 0.0f64;
    for i in 0..n {
        x = x * 1.000_001 + 1.0 / ((i + 1) as f64);
        acc += x / (1.0 + acc * 1e-9);
    }
    acc
}

/// CPU time (ns) consumed so far by OS thread `tid` of this process.
fn thread_cpu_ns(tid: i32) -> u64 {
    ditto_vmm::thread_cpu_ns(tid).expect("schedstat readable")
}

fn wait_for_state(vm: &Vm, id: usize, want: VcpuState) {
    let t0 = Instant::now();
    while vm.states()[id] != want {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "vCPU {id} never reached {want:?}: {:?}",
            vm.states()
        );
        std::thread::yield_now();
    }
}

#[test]
fn boots_every_vcpu_and_shuts_down() {
    if !common::kvm_ok() {
        return;
    }
    let vm = common::vm(2, 3, 3);
    assert_eq!(vm.measurement_hex().len(), 96);
    let states = vm.states();
    assert_eq!(&states[..2], &[VcpuState::Regular, VcpuState::Regular]);
    assert!(
        states[2..].iter().all(|s| *s == VcpuState::ActiveIdle),
        "{states:?}"
    );
    let stats = vm.shutdown();
    assert!(
        stats.iter().all(|s| s.state == Some(VcpuState::Stopped)),
        "{stats:?}"
    );
    assert!(stats.iter().all(|s| s.resets == 0));
}

#[test]
fn measurement_is_deterministic_and_config_sensitive() {
    if !common::kvm_ok() {
        return;
    }
    let a = common::vm(1, 2, 2).measurement();
    let b = common::vm(1, 2, 2).measurement();
    let c = common::vm(1, 3, 3).measurement();
    assert_eq!(a, b, "same image and config, same measurement");
    assert_ne!(a, c, "a different vCPU count changes the measurement");
}

#[test]
fn builtin_workloads_match_native_results() {
    if !common::kvm_ok() {
        return;
    }
    let vm = common::vm(1, 2, 2);
    let spin = vm
        .run(TaskSpec::new(TaskKind::Spin, 100_000))
        .expect("submit")
        .outcome
        .expect("spin ok");
    assert_eq!(spin.value, spin_native(100_000));
    let float = vm
        .run(TaskSpec::new(TaskKind::Float, 50_000))
        .expect("submit")
        .outcome
        .expect("float ok");
    assert_eq!(f64::from_bits(float.value), float_native(50_000));
    let payload: Vec<u8> = (0..ditto_protocol::IN_BUF_SIZE)
        .map(|i| (i * 7 % 251) as u8)
        .collect();
    let echo = vm
        .run(TaskSpec::new(TaskKind::Echo, 0).with_input(payload.clone()))
        .expect("submit");
    assert_eq!(
        echo.outcome.expect("echo ok").output,
        payload,
        "1 MiB echo round-trips"
    );
    let too_big = vec![0u8; ditto_protocol::IN_BUF_SIZE + 1];
    assert!(matches!(
        vm.submit(TaskSpec::new(TaskKind::Echo, 0).with_input(too_big)),
        Err(VmmError::InvalidArgument(_))
    ));
}

#[test]
fn one_exit_per_task_in_steady_state() {
    if !common::kvm_ok() {
        return;
    }
    let vm = common::vm(1, 1, 1);
    let before = vm.stats()[1].exits;
    let tickets: Vec<_> = (0..500)
        .map(|_| vm.submit(noop()).expect("submit"))
        .collect();
    for t in tickets {
        assert!(t.wait().outcome.is_ok());
    }
    let s = &vm.stats()[1];
    assert_eq!(s.tasks, 500);
    assert_eq!(s.exits - before, 500, "exactly one VM exit per task");
}

#[test]
fn tasks_go_only_to_active_workers() {
    if !common::kvm_ok() {
        return;
    }
    let vm = common::vm(1, 4, 2);
    let tickets: Vec<_> = (0..200)
        .map(|_| {
            vm.submit(TaskSpec::new(TaskKind::Spin, 2000))
                .expect("submit")
        })
        .collect();
    for t in tickets {
        let r = t.wait();
        assert!(
            matches!(r.vcpu, Some(1) | Some(2)),
            "task ran on {:?}",
            r.vcpu
        );
        assert!(r.outcome.is_ok());
    }
    let stats = vm.stats();
    assert_eq!(stats[0].tasks, 0, "regular vCPU runs no tasks");
    assert_eq!(
        stats[3].tasks + stats[4].tasks,
        0,
        "sleeping workers run no tasks"
    );
    assert_eq!(stats[1].tasks + stats[2].tasks, 200);
    assert_eq!(stats[3].state, Some(VcpuState::Sleeping));
}

#[test]
fn sleeping_worker_takes_no_task_and_no_cpu() {
    if !common::kvm_ok() {
        return;
    }
    let vm = common::vm(1, 2, 1);
    wait_for_state(&vm, 2, VcpuState::Sleeping);
    let tid = vm.vcpu_tids()[2];
    let cpu0 = thread_cpu_ns(tid);
    let t0 = Instant::now();
    let mut n = 0;
    while t0.elapsed() < Duration::from_millis(300) {
        assert_eq!(
            vm.run(TaskSpec::new(TaskKind::Spin, 20_000))
                .expect("submit")
                .vcpu,
            Some(1)
        );
        n += 1;
    }
    let used = thread_cpu_ns(tid) - cpu0;
    assert!(n > 0);
    assert_eq!(vm.stats()[2].tasks, 0);
    // A parked thread is never scheduled; allow a little for accounting noise.
    assert!(used < 1_000_000, "sleeping worker used {used} ns of CPU");
}

#[test]
fn wake_lets_a_queued_task_run() {
    if !common::kvm_ok() {
        return;
    }
    let vm = common::vm(1, 1, 0);
    wait_for_state(&vm, 1, VcpuState::Sleeping);
    let t = vm.submit(noop()).expect("submit");
    assert!(
        t.wait_timeout(Duration::from_millis(50)).is_none(),
        "no awake worker, so nothing runs"
    );
    assert_eq!(vm.queued(), 1);
    vm.wake(1).expect("wake");
    let r = t
        .wait_timeout(Duration::from_secs(10))
        .expect("task runs after wake");
    assert_eq!(r.vcpu, Some(1));
    assert_eq!(vm.stats()[1].wakes, 1);
    assert!(
        matches!(vm.wake(0), Err(VmmError::InvalidArgument(_))),
        "regular vCPUs cannot be woken"
    );
    assert!(vm.set_active_workers(2).is_err());
}

#[test]
fn a_busy_worker_is_never_slept_mid_task() {
    if !common::kvm_ok() {
        return;
    }
    let vm = common::vm(1, 1, 1);
    let t = vm
        .submit(TaskSpec::new(TaskKind::Spin, 200_000_000))
        .expect("submit");
    wait_for_state(&vm, 1, VcpuState::Busy);
    vm.sleep(1).expect("sleep");
    assert_eq!(vm.states()[1], VcpuState::Draining);
    let r = t.wait();
    assert_eq!(
        r.outcome
            .expect("task completes despite the sleep request")
            .value,
        spin_native(200_000_000)
    );
    wait_for_state(&vm, 1, VcpuState::Sleeping);
    let s = &vm.stats()[1];
    assert_eq!((s.tasks, s.tasks_failed, s.sleeps), (1, 0, 1));
}

#[test]
fn changing_active_count_under_load_loses_and_duplicates_nothing() {
    if !common::kvm_ok() {
        return;
    }
    let vm = common::vm(1, 4, 4);
    let n = 1500u32;
    let tickets: Vec<_> = (0..n)
        .map(|i| {
            if i % 50 == 0 {
                vm.set_active_workers(1 + (i / 50) % 4).expect("set active");
            }
            let input = i.to_le_bytes().to_vec();
            (
                i,
                vm.submit(TaskSpec::new(TaskKind::Echo, 0).with_input(input))
                    .expect("submit"),
            )
        })
        .collect();
    vm.set_active_workers(4).expect("set active");
    let mut seen = std::collections::HashSet::new();
    for (i, t) in tickets {
        let r = t.wait();
        let out = r.outcome.expect("every task succeeds");
        assert_eq!(
            out.output,
            i.to_le_bytes(),
            "task {i} got its own payload back"
        );
        assert!(seen.insert(r.seq), "sequence {} completed twice", r.seq);
    }
    let total: u64 = vm.stats().iter().map(|s| s.tasks).sum();
    assert_eq!(total, n as u64, "completions counted once each");
}

#[test]
fn guest_exceptions_fail_the_task_and_the_vm_keeps_serving() {
    if !common::kvm_ok() {
        return;
    }
    let vm = common::vm(1, 1, 1);
    for vector in [0u64, 3, 6, 13, 14] {
        let r = vm
            .run(TaskSpec::new(TaskKind::Fault, vector))
            .expect("submit");
        match r.outcome {
            // #BP raised by int3 at CPL3 is delivered as #BP (the gate has DPL 3).
            Err(TaskError::Fault { vector: v, .. }) => assert_eq!(v, vector, "vector reported"),
            other => panic!("vector {vector}: expected a fault, got {other:?}"),
        }
        assert!(
            vm.run(noop()).expect("submit").outcome.is_ok(),
            "serves after vector {vector}"
        );
    }
    let r = vm.run(TaskSpec::new(TaskKind::Panic, 0)).expect("submit");
    match r.outcome {
        Err(TaskError::Fault {
            vector: 0x100,
            message,
            ..
        }) => assert!(message.contains("panic requested"), "{message}"),
        other => panic!("expected a panic report, got {other:?}"),
    }
    assert!(vm.run(noop()).expect("submit").outcome.is_ok());
    assert_eq!(vm.stats()[1].resets, 6);
}

#[test]
fn w_xor_x_holds_and_breaking_it_costs_only_the_task() {
    if !common::kvm_ok() {
        return;
    }
    use ditto_protocol::fault_hook::*;
    let vm = common::vm(1, 1, 1);
    for hook in [EXEC_HEAP, EXEC_WINDOW, WRITE_TEXT, WRITE_BOOT_INFO] {
        let r = vm
            .run(TaskSpec::new(TaskKind::Fault, hook))
            .expect("submit");
        match r.outcome {
            Err(TaskError::Fault {
                vector: 14,
                rip,
                addr,
                ..
            }) => {
                // An instruction fetch faults at its own address; a write faults elsewhere.
                let fetch = hook == EXEC_HEAP || hook == EXEC_WINDOW;
                assert_eq!(
                    rip == addr,
                    fetch,
                    "hook {hook:#x}: rip {rip:#x} addr {addr:#x}"
                );
                if hook == EXEC_WINDOW {
                    assert!(addr >= ditto_protocol::memory::SHARED_WINDOW_GPA);
                }
            }
            other => panic!("hook {hook:#x}: expected a page fault, got {other:?}"),
        }
        assert!(
            vm.run(noop()).expect("submit").outcome.is_ok(),
            "serves after hook {hook:#x}"
        );
    }
    assert_eq!(vm.stats()[1].resets, 4);
}

#[test]
fn a_task_past_its_deadline_is_killed_and_others_carry_on() {
    if !common::kvm_ok() {
        return;
    }
    let vm = common::vm(1, 2, 2);
    let hang = vm
        .submit(TaskSpec::new(TaskKind::Hang, 0).with_timeout(Duration::from_millis(100)))
        .expect("submit");
    // The other worker keeps serving while one is stuck.
    for _ in 0..20 {
        assert!(vm.run(noop()).expect("submit").outcome.is_ok());
    }
    let r = hang.wait();
    assert!(
        matches!(r.outcome, Err(TaskError::Timeout(_))),
        "{:?}",
        r.outcome
    );
    assert!(r.run >= Duration::from_millis(100));
    let r = vm
        .run(TaskSpec::new(TaskKind::Spin, 1000).with_timeout(Duration::from_secs(5)))
        .expect("submit");
    assert!(r.outcome.is_ok());
    let resets: u64 = vm.stats().iter().map(|s| s.resets).sum();
    assert_eq!(resets, 1);
}

#[test]
fn malformed_guest_messages_are_rejected() {
    if !common::kvm_ok() {
        return;
    }
    let vm = common::vm(1, 1, 1);
    for variant in [
        bad_message::UNKNOWN_KIND,
        bad_message::OVERLONG,
        bad_message::BAD_STATUS,
        bad_message::WRONG_SEQ,
        bad_message::KIND_MISMATCH,
    ] {
        let r = vm
            .run(TaskSpec::new(TaskKind::BadMessage, variant))
            .expect("submit");
        assert!(
            matches!(r.outcome, Err(TaskError::Protocol(_))),
            "variant {variant}: {:?}",
            r.outcome
        );
        assert!(
            vm.run(noop()).expect("submit").outcome.is_ok(),
            "serves after variant {variant}"
        );
    }
}

#[test]
fn shutdown_fails_queued_and_running_tasks_cleanly() {
    if !common::kvm_ok() {
        return;
    }
    let vm = common::vm(1, 1, 1);
    let running = vm.submit(TaskSpec::new(TaskKind::Hang, 0)).expect("submit");
    let queued = vm.submit(noop()).expect("submit");
    wait_for_state(&vm, 1, VcpuState::Busy);
    vm.shutdown();
    assert!(matches!(running.wait().outcome, Err(TaskError::ShutDown)));
    assert!(matches!(queued.wait().outcome, Err(TaskError::ShutDown)));
}

#[test]
fn invalid_configurations_give_clear_errors() {
    let launch = |c: VmConfig| {
        Vm::launch(c, ditto_guest_image::GUEST_ELF)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default()
    };
    assert!(launch(VmConfig {
        regular: 0,
        ..Default::default()
    })
    .contains("at least one regular vCPU"));
    assert!(launch(VmConfig {
        regular: 4,
        workers: 61,
        active: 0,
        ..Default::default()
    })
    .contains("exceeds the maximum of 64"));
    assert!(launch(VmConfig {
        memory_mib: 8,
        ..Default::default()
    })
    .contains("too little"));
    assert!(launch(VmConfig {
        kvm_path: "/nonexistent/kvm".into(),
        ..Default::default()
    })
    .contains("does not exist"));
    let dir = std::env::temp_dir().join(format!("ditto-not-kvm-{}", std::process::id()));
    std::fs::write(&dir, b"").expect("temp file");
    let e = launch(VmConfig {
        kvm_path: dir.display().to_string(),
        ..Default::default()
    });
    std::fs::remove_file(&dir).ok();
    assert!(e.contains("Cannot open"), "{e}");
    assert!(Vm::launch(VmConfig::default(), b"garbage")
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default()
        .contains("Guest image"));
}

#[test]
fn a_policy_wakes_workers_under_load_and_sleeps_them_after() {
    if !common::kvm_ok() {
        return;
    }
    let vm = common::vm(1, 4, 1);
    let opts = vec![("idle_timeout".to_string(), "10ms".to_string())];
    let policy = ditto_sched::build_policy("queue", &opts).expect("queue policy");
    vm.set_policy(policy, None).expect("attach");
    let tickets: Vec<_> = (0..60)
        .map(|_| {
            vm.submit(TaskSpec::new(TaskKind::Spin, 300_000))
                .expect("submit")
        })
        .collect();
    for t in tickets {
        assert!(t.wait().outcome.is_ok());
    }
    let decisions = vm.decisions();
    assert!(
        decisions
            .iter()
            .any(|d| d.action == ditto_sched::Action::Wake
                && d.trigger == ditto_sched::Trigger::Arrival),
        "an arrival woke workers: {decisions:?}"
    );
    let used: Vec<u64> = vm.stats()[1..].iter().map(|s| s.tasks).collect();
    assert!(
        used.iter().filter(|&&n| n > 0).count() >= 2,
        "work spread over woken workers: {used:?}"
    );
    // After the load, idle workers go back to sleep (down to one awake).
    let t0 = Instant::now();
    while vm.active_workers() > 1 {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "workers never slept: {:?}",
            vm.states()
        );
        std::thread::yield_now();
    }
    assert!(vm
        .decisions()
        .iter()
        .any(|d| d.trigger == ditto_sched::Trigger::IdleTimeout));
    assert!(matches!(
        vm.set_policy(
            ditto_sched::build_policy("fixed", &[]).expect("fixed"),
            None
        ),
        Err(VmmError::InvalidArgument(_))
    ));
}
