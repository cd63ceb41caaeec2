//! WebAssembly functions inside the guest, end to end on real KVM, with small modules
//! written in WAT: the WASI subset, the function contract, limits, traps and recovery.
mod common;

use ditto_vmm::function::{FunctionLimits, InvokeError};
use ditto_vmm::Vm;
use std::time::Duration;

const ECHO: &str = r#"(module
  (import "wasi_snapshot_preview1" "fd_read" (func $fd_read (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 2)
  (func (export "_start")
    (i32.store (i32.const 0) (i32.const 64))
    (i32.store (i32.const 4) (i32.const 100000))
    (drop (call $fd_read (i32.const 0) (i32.const 0) (i32.const 1) (i32.const 8)))
    (i32.store (i32.const 4) (i32.load (i32.const 8)))
    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 12)))))"#;

/// A module whose `_start` runs `body` after importing the usual WASI calls.
fn module(body: &str) -> Vec<u8> {
    let src = format!(
        r#"(module
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $proc_exit (param i32)))
  (import "wasi_snapshot_preview1" "random_get" (func $random_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "clock_time_get" (func $clock (param i32 i64 i32) (result i32)))
  (import "wasi_snapshot_preview1" "path_open" (func $path_open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 100) "{{\"ok\":true}}")
  (data (i32.const 200) "log line one\nlog line two\n")
  (data (i32.const 300) "42")
  (func $write (param $fd i32) (param $ptr i32) (param $len i32)
    (i32.store (i32.const 0) (local.get $ptr))
    (i32.store (i32.const 4) (local.get $len))
    (drop (call $fd_write (local.get $fd) (i32.const 0) (i32.const 1) (i32.const 8))))
  (func $recurse (param i32) (result i32) (call $recurse (i32.add (local.get 0) (i32.const 1))))
  (func (export "_start") {body}))"#
    );
    wat::parse_str(src).expect("test module assembles")
}

fn vm_with(module: &[u8]) -> Vm {
    let vm = common::vm(1, 2, 2);
    common::load(&vm, module).expect("module loads");
    vm
}

fn limits() -> FunctionLimits {
    FunctionLimits {
        timeout: Duration::from_secs(10),
        ..FunctionLimits::default()
    }
}

#[test]
fn echo_returns_its_parameters_and_instances_are_fresh() {
    if !common::kvm_ok() {
        return;
    }
    let vm = vm_with(&wat::parse_str(ECHO).expect("assembles"));
    for i in 0..20 {
        let params = format!("{{\"i\":{i},\"pad\":\"{}\"}}", "x".repeat(i * 100));
        let inv = vm.invoke(params.as_bytes(), limits()).expect("submit");
        let v = inv.result.expect("echo succeeds");
        assert_eq!(v["i"], i, "invocation {i} returned its own parameters");
    }
}

#[test]
fn wasi_subset_works_and_unknown_calls_get_enosys() {
    if !common::kvm_ok() {
        return;
    }
    // Logs on stderr, random bytes, a clock, an ENOSYS call, then the JSON result.
    let vm = vm_with(&module(
        r#"(call $write (i32.const 2) (i32.const 200) (i32.const 26))
           (if (i32.ne (call $random_get (i32.const 400) (i32.const 32)) (i32.const 0)) (then unreachable))
           (if (i64.eqz (i64.or (i64.load (i32.const 400)) (i64.load (i32.const 408)))) (then unreachable))
           (if (i32.ne (call $clock (i32.const 1) (i64.const 1) (i32.const 500)) (i32.const 0)) (then unreachable))
           (if (i64.eqz (i64.load (i32.const 500))) (then unreachable))
           (if (i32.ne (call $path_open (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i64.const 0) (i64.const 0) (i32.const 0) (i32.const 0)) (i32.const 52)) (then unreachable))
           (call $write (i32.const 1) (i32.const 100) (i32.const 11))"#,
    ));
    let inv = vm.invoke(b"{}", limits()).expect("submit");
    assert_eq!(inv.result.expect("ok"), serde_json::json!({"ok": true}));
    assert_eq!(inv.logs, vec!["log line one", "log line two"]);
}

#[test]
fn contract_violations_and_traps_are_clear_errors_and_the_vm_keeps_serving() {
    if !common::kvm_ok() {
        return;
    }
    let cases: Vec<(&str, &str)> = vec![
        (
            "(call $write (i32.const 1) (i32.const 300) (i32.const 2))",
            "did not return a dictionary or array",
        ),
        (
            "(call $write (i32.const 1) (i32.const 200) (i32.const 12))",
            "valid json",
        ),
        ("(nop)", "empty"),
        ("unreachable", "unreachable"),
        ("(drop (i32.load (i32.const 70000)))", "out of bounds"),
        (
            "(drop (i32.div_s (i32.const 1) (i32.const 0)))",
            "divide by zero",
        ),
        ("(drop (call $recurse (i32.const 0)))", "stack"),
        ("(call $proc_exit (i32.const 3))", "exited with status 3"),
    ];
    for (body, expect) in cases {
        let vm = vm_with(&module(body));
        let inv = vm.invoke(b"{}", limits()).expect("submit");
        let err = inv.result.expect_err(body).to_string().to_lowercase();
        assert!(err.contains(expect), "{body}: {err}");
        // The same VM serves the next invocation (and the module is still loaded).
        let again = vm.invoke(b"{}", limits()).expect("submit");
        assert!(
            again.result.is_err(),
            "deterministic module fails again: {body}"
        );
    }
    // proc_exit(0) after a result is a success.
    let vm = vm_with(&module("(call $write (i32.const 1) (i32.const 100) (i32.const 11)) (call $proc_exit (i32.const 0))"));
    assert!(vm.invoke(b"{}", limits()).expect("submit").result.is_ok());
}

#[test]
fn limits_apply_to_that_invocation_only() {
    if !common::kvm_ok() {
        return;
    }
    let looping = module("(loop $l (br $l))");
    let vm = vm_with(&looping);
    let fuel = vm.invoke(
        b"{}",
        FunctionLimits {
            fuel: 1_000_000,
            ..limits()
        },
    );
    assert!(
        fuel.err()
            .map(|e| e.to_string())
            .unwrap_or_default()
            .contains("not supported"),
        "instruction budgets are refused, not silently ignored"
    );
    let timed = vm
        .invoke(
            b"{}",
            FunctionLimits {
                timeout: Duration::from_millis(200),
                ..limits()
            },
        )
        .expect("submit");
    assert_eq!(
        timed.result.expect_err("timeout"),
        InvokeError::Application("The action exceeded its time limits of 200 milliseconds.".into())
    );

    // A function may grow its memory page by page to its limit, and no further.
    let growing = module(
        "(loop $l (br_if $l (i32.ne (memory.grow (i32.const 1)) (i32.const -1))))
         (call $proc_exit (i32.shr_u (memory.size) (i32.const 4)))",
    );
    let reached_mib = |vm: &Vm, max_mib: u64| -> u64 {
        let inv = vm
            .invoke(
                b"{}",
                FunctionLimits {
                    max_memory: max_mib << 20,
                    ..limits()
                },
            )
            .expect("submit");
        let msg = inv
            .result
            .expect_err("exits with its memory size")
            .to_string();
        msg.trim_start_matches("The function exited with status ")
            .trim_end_matches('.')
            .parse()
            .unwrap_or_else(|_| panic!("unexpected outcome: {msg}"))
    };
    let vm = vm_with(&growing);
    assert_eq!(
        reached_mib(&vm, 32),
        32,
        "grows to exactly its 32 MiB limit"
    );
    assert_eq!(reached_mib(&vm, 8), 8, "the limit is per invocation");
    let big = Vm::launch(
        ditto_vmm::VmConfig {
            regular: 1,
            workers: 2,
            active: 2,
            ..Default::default()
        }
        .with_linear_memory(512 + 8),
        ditto_guest_image::GUEST_ELF,
    )
    .expect("VM launches");
    common::load(&big, &growing).expect("loads");
    assert_eq!(
        reached_mib(&big, 512),
        512,
        "a 512 MiB action reaches its limit"
    );

    let chatty =
        module("(loop $l (call $write (i32.const 1) (i32.const 100) (i32.const 11)) (br $l))");
    let vm = vm_with(&chatty);
    let big = vm
        .invoke(
            b"{}",
            FunctionLimits {
                max_output: 1000,
                ..limits()
            },
        )
        .expect("submit");
    assert!(big
        .result
        .expect_err("too big")
        .to_string()
        .contains("more than 1000 bytes"));
    let echo = common::vm(1, 1, 1);
    common::load(&echo, &wat::parse_str(ECHO).expect("assembles")).expect("loads");
    assert!(echo
        .invoke(b"{\"still\":\"serving\"}", limits())
        .expect("submit")
        .result
        .is_ok());
}

#[test]
fn bad_modules_are_rejected_at_load() {
    if !common::kvm_ok() {
        return;
    }
    let vm = common::vm(1, 1, 1);
    // The host compiler refuses what is not a valid Ditto function, before any VM sees it.
    let e = common::load(&vm, b"\0asm garbage").expect_err("invalid");
    assert!(matches!(e, InvokeError::Developer(_)), "{e}");
    let no_start = wat::parse_str("(module (memory (export \"memory\") 1))").expect("assembles");
    let e = common::load(&vm, &no_start).expect_err("no _start");
    assert!(e.to_string().contains("_start"), "{e}");
    let unknown_import =
        wat::parse_str(r#"(module (import "env" "nope" (func)) (func (export "_start")))"#)
            .expect("assembles");
    let e = common::load(&vm, &unknown_import).expect_err("non-WASI import");
    assert!(e.to_string().contains("env"), "{e}");

    // A damaged or foreign artifact is refused by the guest and never runs.
    let echo = wat::parse_str(ECHO).expect("assembles");
    let artifact = ditto_compile::compile(&echo).expect("compiles").bytes;
    let mut damaged = artifact.clone();
    damaged[..64].fill(0);
    let e = vm
        .load_compiled(&echo, &damaged)
        .expect("alive")
        .expect_err("damaged artifact");
    assert!(e.to_string().contains("artifact"), "{e}");
    let e = vm
        .load_compiled(&echo, &artifact[..artifact.len() / 2])
        .expect("alive")
        .expect_err("truncated artifact");
    assert!(e.to_string().contains("artifact"), "{e}");
    // The VM is still usable: the intact artifact loads, is measured, and runs.
    let loaded = vm
        .load_compiled(&echo, &artifact)
        .expect("alive")
        .expect("loads");
    assert_eq!(loaded.artifact_sha384, ditto_compile::sha384(&artifact));
    assert_eq!(loaded.module_sha384, ditto_compile::sha384(&echo));
    assert!(loaded.code_bytes > 0, "code was sealed executable");
    let log = vm.runtime_log().expect("log");
    let last = &log[log.len() - 2..];
    assert_eq!(
        (last[0].kind, last[0].sha384),
        ("module", loaded.module_sha384)
    );
    assert_eq!(
        (last[1].kind, last[1].sha384),
        ("artifact", loaded.artifact_sha384)
    );
    assert!(vm
        .invoke(b"{\"x\":1}", limits())
        .expect("submit")
        .result
        .is_ok());
    let e = vm
        .load_compiled(&echo, &artifact)
        .expect("alive")
        .expect_err("already loaded");
    assert!(e.to_string().contains("already loaded"), "{e}");
}

#[test]
fn modules_larger_than_a_mailbox_load_in_chunks() {
    if !common::kvm_ok() {
        return;
    }
    // A 3 MiB data segment: module and artifact both exceed the 1 MiB mailbox.
    let pad = "x".repeat(3 << 20);
    let src = format!(
        r#"(module
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 64)
  (data (i32.const 100) "{{\"ok\":true}}")
  (data (i32.const 4096) "{pad}")
  (func (export "_start")
    (i32.store (i32.const 0) (i32.const 100))
    (i32.store (i32.const 4) (i32.load8_u (i32.const 4096)))
    (i32.store (i32.const 4) (i32.const 11))
    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))"#
    );
    let module = wat::parse_str(src).expect("assembles");
    assert!(module.len() > 3 << 20);
    let vm = common::vm(1, 1, 1);
    let loaded = common::load(&vm, &module).expect("a 3 MiB module loads");
    assert_eq!(loaded.module_sha384, ditto_compile::sha384(&module));
    let v = vm
        .invoke(b"{}", limits())
        .expect("submit")
        .result
        .expect("runs");
    assert_eq!(v["ok"], true);
}
