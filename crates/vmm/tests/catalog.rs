//! Every catalog function run inside a real VM gives the same result as the same Rust code
//! run natively on the host; the misbehaving test modules give clear errors and the VM
//! goes on serving.
mod common;

use ditto_vmm::function::{FunctionLimits, InvokeError};
use std::time::Duration;

fn limits() -> FunctionLimits {
    FunctionLimits {
        timeout: Duration::from_secs(30),
        ..FunctionLimits::default()
    }
}

#[test]
fn catalog_results_equal_native_results() {
    if !common::kvm_ok() {
        return;
    }
    for f in ditto_catalog::all() {
        let vm = common::vm(1, 1, 1);
        common::load(&vm, f.wasm).unwrap_or_else(|e| panic!("{}: {e}", f.name));
        let params = f.default_params_json();
        let inv = vm
            .invoke(params.to_string().as_bytes(), limits())
            .expect("submit");
        let guest = inv
            .result
            .unwrap_or_else(|e| panic!("{} failed in the guest: {e}", f.name));
        let native = ditto_catalog::run_native(f.name, &params).expect("native run");
        if f.name == "spin" {
            // Time-driven: the iteration count differs, the shape must not.
            assert_eq!(guest["ms"], native["ms"], "spin");
            assert!(
                guest["iterations"].as_u64().unwrap_or(0) > 0,
                "spin did work: {guest}"
            );
        } else {
            assert_eq!(guest, native, "{}: guest and native results differ", f.name);
        }
    }
}

#[test]
fn misbehaving_modules_fail_clearly_and_the_vm_keeps_serving() {
    if !common::kvm_ok() {
        return;
    }
    let cases = [
        ("trap_unreachable", "unreachable"),
        ("trap_oob", "out of bounds"),
        ("trap_div0", "divide by zero"),
        // Rust's shadow stack lives in linear memory: deep recursion runs off its bottom
        // (out of bounds) before the native call-stack limit.
        ("trap_stack", "trapped"),
        ("no_json", "valid json"),
        ("not_dict", "dictionary or array"),
        ("big_output", "more than"),
    ];
    for (name, expect) in cases {
        let m = ditto_catalog::get(name).unwrap_or_else(|| panic!("{name} in catalog"));
        let vm = common::vm(1, 1, 1);
        common::load(&vm, m.wasm).expect("loads");
        let inv = vm.invoke(b"{}", limits()).expect("submit");
        let err = inv.result.expect_err(name).to_string().to_lowercase();
        assert!(err.contains(expect), "{name}: {err}");
        // The worker was not harmed: a second invocation behaves the same way.
        assert!(vm.invoke(b"{}", limits()).expect("submit").result.is_err());
        let s = &vm.stats()[1];
        assert_eq!(
            s.resets, 0,
            "{name}: a wasm trap is contained in the guest, no vCPU reset"
        );
    }
    // A runaway loop is stopped by its deadline and the VM serves the next invocation.
    let looping = ditto_catalog::get("loop_forever").expect("loop_forever");
    let vm = common::vm(1, 1, 1);
    common::load(&vm, looping.wasm).expect("loads");
    let inv = vm
        .invoke(
            b"{}",
            FunctionLimits {
                timeout: Duration::from_millis(200),
                ..limits()
            },
        )
        .expect("submit");
    assert!(
        matches!(inv.result, Err(InvokeError::Application(ref m)) if m.contains("time limits")),
        "{:?}",
        inv.result
    );
    // The next invocation on the same worker runs normally.
    assert!(matches!(
        vm.invoke(b"{}", FunctionLimits { timeout: Duration::from_millis(100), ..limits() })
            .expect("submit")
            .result,
        Err(InvokeError::Application(ref m)) if m.contains("time limits")
    ));
    assert!(vm.stats()[1].resets >= 2, "deadline kills reset the worker");
}
