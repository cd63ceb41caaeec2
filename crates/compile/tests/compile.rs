//! The compiler end to end on the real catalog modules and on hand-written bad modules:
//! validation errors, the artifact's engine record against the protocol constants,
//! determinism across processes, and no float builtin calls in compiled code.

use ditto_compile::{compile, inspect, validate, CompileError};
use ditto_protocol::engine as e;
use std::process::Command;

fn wat(src: &str) -> Vec<u8> {
    wat::parse_str(src).expect("test module parses")
}

const OK_START: &str = r#"(module (func (export "_start")))"#;

#[test]
fn every_catalog_module_validates_and_compiles() {
    for f in ditto_catalog::all()
        .iter()
        .chain(ditto_catalog::test_modules())
    {
        let info = validate(f.wasm).unwrap_or_else(|err| panic!("{}: {err}", f.name));
        assert_eq!(info.size, f.wasm.len());
        assert!(info.exports.iter().any(|x| x == "_start"), "{}", f.name);
        assert!(info.functions > 0, "{}", f.name);
        let a = compile(f.wasm).unwrap_or_else(|err| panic!("{}: {err}", f.name));
        assert!(!a.bytes.is_empty());
        assert_eq!(a.module_sha384, ditto_compile::sha384(f.wasm));
        assert_eq!(a.artifact_sha384, ditto_compile::sha384(&a.bytes));
        assert_ne!(a.module_sha384, a.artifact_sha384);
    }
    let fib = ditto_catalog::get("fib").expect("fib");
    let info = validate(fib.wasm).expect("fib validates");
    for import in &info.wasi_imports {
        assert!(
            [
                "environ_get",
                "environ_sizes_get",
                "fd_read",
                "fd_write",
                "clock_time_get",
                "proc_exit"
            ]
            .contains(&import.as_str()),
            "unexpected WASI import {import}"
        );
    }
}

#[test]
fn the_artifact_records_the_protocol_configuration() {
    let a = compile(ditto_catalog::get("fib").expect("fib").wasm).expect("compiles");
    let r = inspect(&a.bytes).expect("engine record");
    assert_eq!(r.version, e::MODULE_VERSION);
    assert_eq!(r.target, e::TARGET);
    let mut on = r.isa_flags_on.clone();
    on.sort();
    let mut want: Vec<String> = e::ISA_FLAGS_ENABLED.iter().map(|s| s.to_string()).collect();
    want.sort();
    assert_eq!(on, want, "exactly the protocol's ISA flags are on");
    for flag in e::ISA_FLAGS_DISABLED {
        assert!(r.isa_flags_off.iter().any(|f| f == flag), "{flag} off");
    }
    // Every x86 flag Cranelift records is named by the protocol (a new one in a wasmtime
    // upgrade must be decided on, not defaulted).
    for flag in r.isa_flags_on.iter().chain(&r.isa_flags_off) {
        assert!(
            e::ISA_FLAGS_ENABLED.contains(&flag.as_str())
                || e::ISA_FLAGS_DISABLED.contains(&flag.as_str()),
            "Cranelift flag {flag} is not in the protocol"
        );
    }
    let t = r.tunables;
    assert_eq!(t.memory_reservation, e::MEMORY_RESERVATION);
    assert_eq!(t.memory_guard_size, e::MEMORY_GUARD_SIZE);
    assert_eq!(
        t.memory_reservation_for_growth,
        e::MEMORY_RESERVATION_FOR_GROWTH
    );
    assert_eq!(t.memory_may_move, e::MEMORY_MAY_MOVE);
    assert_eq!(t.guard_before_linear_memory, e::GUARD_BEFORE_LINEAR_MEMORY);
    assert_eq!(t.signals_based_traps, e::SIGNALS_BASED_TRAPS);
    assert_eq!(t.memory_init_cow, e::MEMORY_INIT_COW);
    assert_eq!(t.table_lazy_init, e::TABLE_LAZY_INIT);
    assert_eq!(t.consume_fuel, e::CONSUME_FUEL);
    assert_eq!(t.epoch_interruption, e::EPOCH_INTERRUPTION);
    assert_eq!(t.relaxed_simd_deterministic, e::RELAXED_SIMD_DETERMINISTIC);
    assert_eq!(t.debug_native, e::DEBUG_INFO);
    assert_eq!(t.debug_symbols, e::DEBUG_SYMBOLS);
    assert_eq!(t.parse_wasm_debuginfo, e::WASM_BACKTRACE_DETAILS);

    assert!(
        inspect(b"\0asm\x01\0\0\0").is_err(),
        "a module is not an artifact"
    );
    let mut cut = a.bytes.clone();
    cut.truncate(cut.len() / 3);
    assert!(inspect(&cut).is_err(), "a truncated artifact");
}

fn refused(module: &[u8]) -> CompileError {
    let err = validate(module).expect_err("refused");
    let err2 = compile(module).expect_err("compile refuses too");
    assert_eq!(err.to_string(), err2.to_string());
    err
}

#[test]
fn bad_modules_are_refused_with_clear_errors() {
    assert!(validate(&wat(OK_START)).is_ok(), "the minimal good module");

    let e1 = refused(b"\0asX\x01\0\0\0");
    assert!(matches!(e1, CompileError::NotWasm), "{e1}");
    assert!(e1.to_string().contains("not a WebAssembly module"), "{e1}");
    let e1b = refused(b"\0asm\x02\0\0\0");
    assert!(matches!(e1b, CompileError::Invalid { .. }), "{e1b}");
    assert!(e1b.to_string().contains("version"), "{e1b}");

    // A body that pops from an empty stack (encoded by hand: wat would refuse it).
    let mut m = b"\0asm\x01\0\0\0".to_vec();
    m.extend([0x01, 0x04, 0x01, 0x60, 0x00, 0x00]); // type section: () -> ()
    m.extend([0x03, 0x02, 0x01, 0x00]); // function section: one func of type 0
    m.extend([0x07, 0x0a, 0x01, 0x06]); // export section: one export, name len 6
    m.extend(b"_start");
    m.extend([0x00, 0x00]); // func 0
    m.extend([0x0a, 0x05, 0x01, 0x03, 0x00, 0x6a, 0x0b]); // code: i32.add; end
    let e2 = refused(&m);
    assert!(matches!(e2, CompileError::Invalid { .. }), "{e2}");
    assert!(e2.to_string().contains("type mismatch"), "{e2}");
    // The same module with a valid body passes: the failure above is the body's.
    let n = m.len();
    m[n - 2] = 0x01; // nop
    validate(&m).expect("the fixed body validates");

    let e3 = refused(&wat(r#"(module (func (export "main")))"#));
    assert!(matches!(e3, CompileError::NoStart), "{e3}");
    assert!(e3.to_string().contains("_start"), "{e3}");

    let e4 = refused(&wat(r#"(module (func (export "_start") (param i32)))"#));
    assert!(matches!(e4, CompileError::BadStart(_)), "{e4}");
    let e4b = refused(&wat(
        r#"(module (global (export "_start") i32 (i32.const 0)))"#,
    ));
    assert!(matches!(e4b, CompileError::BadStart(_)), "{e4b}");

    let e5 = refused(&wat(
        r#"(module (import "env" "host_call" (func)) (func (export "_start")))"#,
    ));
    assert!(
        matches!(&e5, CompileError::ForeignImport { module, name } if module == "env" && name == "host_call"),
        "{e5}"
    );
    assert!(e5.to_string().contains("wasi_snapshot_preview1"), "{e5}");
    let e5b = refused(&wat(
        r#"(module (import "wasi_snapshot_preview1" "mem" (memory 1)) (func (export "_start")))"#,
    ));
    assert!(matches!(e5b, CompileError::NonFunctionImport(_)), "{e5b}");
    let ok = validate(&wat(
        r#"(module (import "wasi_snapshot_preview1" "fd_write" (func (param i32 i32 i32 i32) (result i32))) (func (export "_start")))"#,
    ))
    .expect("WASI imports are fine");
    assert_eq!(ok.wasi_imports, vec!["fd_write".to_string()]);

    let big = vec![0u8; e::MAX_MODULE_BYTES + 1];
    let e6 = refused(&big);
    assert!(matches!(e6, CompileError::TooLarge { .. }), "{e6}");
    assert!(e6.to_string().contains("64 MiB"), "{e6}");

    // Features Ditto does not enable: shared memory (threads), and a component.
    let e7 = refused(&wat(
        r#"(module (memory 1 1 shared) (func (export "_start")))"#,
    ));
    assert!(matches!(e7, CompileError::Invalid { .. }), "{e7}");
    assert!(e7.to_string().contains("threads"), "{e7}");
    let e8 = refused(b"\0asm\x0d\0\x01\0");
    assert!(matches!(e8, CompileError::Component), "{e8}");

    // Truncated good module.
    let good = ditto_catalog::get("noop").expect("noop").wasm;
    let e9 = refused(&good[..good.len() / 2]);
    assert!(matches!(e9, CompileError::Invalid { .. }), "{e9}");
}

/// Child side of the determinism test: compiles the module named by the environment and
/// writes the artifact to the path given. A no-op in a normal test run.
#[test]
fn determinism_child() {
    let (Ok(name), Ok(out)) = (
        std::env::var("DITTO_COMPILE_CHILD_MODULE"),
        std::env::var("DITTO_COMPILE_CHILD_OUT"),
    ) else {
        return;
    };
    let f = ditto_catalog::get(&name).expect("catalog module");
    let a = compile(f.wasm).expect("compiles");
    std::fs::write(out, &a.bytes).expect("write artifact");
}

#[test]
fn two_processes_give_identical_artifacts() {
    let exe = std::env::current_exe().expect("test binary path");
    let dir = std::env::temp_dir().join(format!("ditto-compile-det-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    for name in ["json", "aes"] {
        let mut outs = Vec::new();
        for run in 0..2 {
            let out = dir.join(format!("{name}-{run}.cwasm"));
            let child = Command::new(&exe)
                .args(["--exact", "determinism_child", "--test-threads", "1"])
                .env("DITTO_COMPILE_CHILD_MODULE", name)
                .env("DITTO_COMPILE_CHILD_OUT", &out)
                .output()
                .expect("spawn the test binary");
            assert!(
                child.status.success(),
                "child compile of {name}: {}",
                String::from_utf8_lossy(&child.stdout)
            );
            outs.push(std::fs::read(&out).expect("child wrote the artifact"));
        }
        assert!(!outs[0].is_empty());
        assert!(
            outs[0] == outs[1],
            "{name}: two processes gave different bytes"
        );
        let here = compile(ditto_catalog::get(name).expect("module").wasm).expect("compiles");
        assert!(here.bytes == outs[0], "{name}: this process differs");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Every rounding and relaxed/SIMD operation that wasmtime lowers to a builtin call when an
/// ISA feature is missing.
const FLOAT_OPS: &str = r#"(module
  (func (export "_start"))
  (func (export "rounding") (param f64 f32) (result f64 f32)
    (f64.add (f64.add (f64.floor (local.get 0)) (f64.ceil (local.get 0)))
             (f64.add (f64.trunc (local.get 0)) (f64.nearest (local.get 0))))
    (f32.add (f32.add (f32.floor (local.get 1)) (f32.ceil (local.get 1)))
             (f32.add (f32.trunc (local.get 1)) (f32.nearest (local.get 1)))))
  (func (export "vectors") (param v128 v128 v128) (result v128 v128 v128 v128)
    (f32x4.relaxed_madd (local.get 0) (local.get 1) (local.get 2))
    (f64x2.relaxed_madd (local.get 0) (local.get 1) (local.get 2))
    (i8x16.swizzle (local.get 0) (local.get 1))
    (f64x2.floor (local.get 0))))"#;

/// The CLIF of the module's own functions (not wasmtime's trampolines) compiled from
/// `module` with `config`, concatenated.
fn clif_of(mut config: wasmtime::Config, module: &[u8], tag: &str) -> String {
    let dir = std::env::temp_dir().join(format!("ditto-clif-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("clif dir");
    config.emit_clif(&dir);
    let engine = wasmtime::Engine::new(&config).expect("engine");
    engine.precompile_module(module).expect("compiles");
    let mut all = String::new();
    for entry in std::fs::read_dir(&dir).expect("clif files") {
        let path = entry.expect("entry").path();
        let text = std::fs::read_to_string(&path).expect("clif text");
        for part in text.split(";; Intermediate Representation of function <") {
            if part.starts_with("wasm[0]::function[") {
                all += part;
            }
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    all
}

/// The signatures of the functions that `clif` calls, e.g. `sig0 = (i64 vmctx, f64) -> f64 tail`.
fn callee_signatures(clif: &str) -> Vec<&str> {
    clif.lines()
        .map(str::trim)
        .filter(|l| l.starts_with("sig") && l.contains(" = ("))
        .collect()
}

fn has_float_or_vector(sig: &str) -> bool {
    ["f32", "f64", "x16", "x8", "x4", "x2"]
        .iter()
        .any(|t| sig.contains(t))
}

#[test]
fn float_rounding_and_relaxed_simd_compile_to_instructions_not_calls() {
    let module = wat(FLOAT_OPS);
    validate(&module).expect("the float module is within the feature set");
    let clif = clif_of(
        ditto_compile::engine_config().expect("config"),
        &module,
        "ok",
    );
    for op in [
        "floor", "ceil", "trunc", "nearest", "swizzle", "fmul", "fadd",
    ] {
        assert!(
            clif.contains(&format!(" = {op} ")) || clif.contains(&format!(" = {op}.")),
            "`{op}` is an instruction:\n{clif}"
        );
    }
    // The only calls left are the cold stack-overflow trap paths (vmctx and an i8 code):
    // nothing takes or returns a float or a vector across a call.
    let sigs = callee_signatures(&clif);
    assert!(
        !sigs.is_empty(),
        "the parser sees the trap builtins' signatures"
    );
    for sig in sigs {
        assert!(!has_float_or_vector(sig), "a float/vector call: {sig}");
    }
    // The same module without SSE4.1: the test sees the rounding builtins appear.
    let mut no_sse41 = ditto_compile::engine_config().expect("config");
    // SAFETY: only compiled, never run.
    unsafe {
        no_sse41.cranelift_flag_set("has_sse41", "false");
    }
    let clif = clif_of(no_sse41, &module, "nosse41");
    assert!(
        callee_signatures(&clif)
            .into_iter()
            .any(has_float_or_vector),
        "without SSE4.1 rounding becomes float calls:\n{clif}"
    );
}
