//! Unit tests: the embedded modules are well-formed wasm32-wasip1 programs that import only
//! the guest's WASI subset, and the native kernels honour the parameter contract.

use super::*;
use serde_json::json;

/// The WASI functions the guest implements (everything else gets ENOSYS).
const WASI_SUBSET: &[&str] = &[
    "args_sizes_get",
    "args_get",
    "environ_sizes_get",
    "environ_get",
    "fd_read",
    "fd_write",
    "clock_time_get",
    "random_get",
    "proc_exit",
];

fn leb(b: &[u8], at: &mut usize) -> u32 {
    let (mut v, mut shift) = (0u32, 0);
    loop {
        let byte = b[*at];
        *at += 1;
        v |= u32::from(byte & 0x7f) << shift;
        if byte < 0x80 {
            return v;
        }
        shift += 7;
    }
}

fn name<'a>(b: &'a [u8], at: &mut usize) -> &'a str {
    let len = leb(b, at) as usize;
    let s = std::str::from_utf8(&b[*at..*at + len]).unwrap();
    *at += len;
    s
}

/// (imports as "module.name", function exports, memory exports) of a module.
fn interface(b: &[u8]) -> (Vec<String>, Vec<String>, Vec<String>) {
    let (mut imports, mut funcs, mut mems) = (vec![], vec![], vec![]);
    let mut at = 8;
    while at < b.len() {
        let id = b[at];
        at += 1;
        let len = leb(b, &mut at) as usize;
        let end = at + len;
        let mut p = at;
        match id {
            2 => {
                for _ in 0..leb(b, &mut p) {
                    let module = name(b, &mut p).to_string();
                    let field = name(b, &mut p);
                    assert_eq!(b[p], 0, "only function imports expected");
                    p += 1;
                    leb(b, &mut p);
                    imports.push(format!("{module}.{field}"));
                }
            }
            7 => {
                for _ in 0..leb(b, &mut p) {
                    let field = name(b, &mut p).to_string();
                    let kind = b[p];
                    p += 1;
                    leb(b, &mut p);
                    match kind {
                        0 => funcs.push(field),
                        2 => mems.push(field),
                        _ => {}
                    }
                }
            }
            _ => {}
        }
        at = end;
    }
    (imports, funcs, mems)
}

#[test]
fn every_module_is_a_small_wasip1_program_within_the_wasi_subset() {
    for f in all().iter().chain(test_modules()) {
        assert_eq!(&f.wasm[..8], b"\0asm\x01\0\0\0", "{}", f.name);
        // The guest takes modules of at most 1 MiB (ditto_protocol::IN_BUF_SIZE).
        assert!(
            f.wasm.len() < 1 << 20,
            "{} is {} bytes",
            f.name,
            f.wasm.len()
        );
        let (imports, funcs, mems) = interface(f.wasm);
        for import in &imports {
            let field = import
                .strip_prefix("wasi_snapshot_preview1.")
                .unwrap_or_else(|| panic!("{}: foreign import {import}", f.name));
            assert!(
                WASI_SUBSET.contains(&field),
                "{}: imports {import}, outside the guest's WASI subset",
                f.name
            );
        }
        assert!(funcs.iter().any(|e| e == "_start"), "{}: no _start", f.name);
        assert!(mems.iter().any(|e| e == "memory"), "{}: no memory", f.name);
    }
}

#[test]
fn names_are_unique_and_lookup_finds_everything() {
    let mut names: Vec<_> = all().iter().chain(test_modules()).map(|f| f.name).collect();
    let n = names.len();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), n);
    for f in all().iter().chain(test_modules()) {
        assert_eq!(get(f.name), Some(f));
    }
    assert_eq!(get("nope"), None);
    assert!(
        run_native("trap_oob", &json!({})).is_err(),
        "test modules have no native run"
    );
    assert_eq!(all().len(), native::CATALOG.len());
}

#[test]
fn every_function_runs_natively_on_its_defaults() {
    for f in all() {
        let defaults = f.default_params_json();
        assert!(
            defaults.is_object(),
            "{}: default params not an object",
            f.name
        );
        let out = run_native(f.name, &defaults).unwrap_or_else(|e| panic!("{}: {e}", f.name));
        assert!(out.is_object(), "{}: {out}", f.name);
        // An empty stdin (null) and `{}` mean the defaults.
        for empty in [Value::Null, json!({})] {
            let again = run_native(f.name, &empty).unwrap();
            if f.name != "spin" && f.name != "echo" {
                assert_eq!(again, out, "{}", f.name);
            }
        }
    }
}

#[test]
fn results_are_deterministic_and_sane() {
    let r = |name: &str, p: Value| run_native(name, &p).unwrap();
    assert_eq!(r("noop", json!({})), json!({}));
    let p = json!({"a": [1, 2, {"b": null}], "s": "x"});
    assert_eq!(r("echo", p.clone()), p);
    assert_eq!(r("fib", json!({"n": 20}))["fib"], 6765);
    assert_eq!(r("fib", json!({"n": 0}))["fib"], 0);
    let lin = r("linpack", json!({"n": 50}));
    assert!(lin["residual"].as_f64().unwrap() < 1e-10, "{lin}");
    assert!(lin["max_error"].as_f64().unwrap() < 1e-8, "{lin}");
    let mm = r("matmul", json!({"n": 1}));
    assert_eq!(mm["checksum"], mm["c_first"]);
    assert_eq!(r("matmul", json!({"n": 64})), r("matmul", json!({"n": 64})));
    let c = r("compress", json!({"size": 100000}));
    assert!(c["compressed_size"].as_u64().unwrap() < 50000, "{c}");
    assert_eq!(
        r("aes", json!({"length": 1, "iterations": 1}))["verified"],
        true
    );
    let h = r("html_template", json!({"rows": 2, "cols": 3}));
    assert_eq!(h, r("html_template", json!({"rows": 2, "cols": 3})));
    let s = r("spin", json!({"ms": 5}));
    assert!(s["elapsed_us"].as_u64().unwrap() >= 5000, "{s}");
    assert!(s["iterations"].as_u64().unwrap() > 0, "{s}");
    let j = r("json", json!({"rounds": 2}));
    assert!(j["bytes"].as_u64().unwrap() > 4000, "{j}");
}

#[test]
fn bad_params_are_errors_not_panics() {
    let bad = |name: &str, p: Value| {
        let e = run_native(name, &p).expect_err(&format!("{name} accepted {p}"));
        assert!(!e.is_empty());
        e
    };
    for f in all() {
        bad(f.name, json!(42));
        bad(f.name, json!("text"));
        bad(f.name, json!([1, 2]));
        if f.name != "echo" {
            bad(f.name, json!({"no_such_param": 1}));
        }
    }
    for (name, key) in [
        ("float_operation", "n"),
        ("matmul", "n"),
        ("linpack", "n"),
        ("aes", "length"),
        ("aes", "iterations"),
        ("json", "rounds"),
        ("compress", "size"),
        ("html_template", "rows"),
        ("html_template", "cols"),
        ("fib", "n"),
        ("spin", "ms"),
    ] {
        for v in [
            json!(-1),
            json!("7"),
            json!(1.5),
            json!(true),
            json!(1e300),
            json!(u64::MAX),
        ] {
            let e = bad(name, json!({ key: v }));
            assert!(e.contains(key), "{name}: {e}");
        }
    }
    for (name, p) in [
        ("matmul", json!({"n": 0})),
        ("matmul", json!({"n": 1025})),
        ("linpack", json!({"n": 100000})),
        ("fib", json!({"n": 41})),
        ("aes", json!({"length": 8_388_608, "iterations": 100_000})),
        ("html_template", json!({"rows": 100_000, "cols": 1000})),
        ("compress", json!({"size": 1u64 << 40})),
    ] {
        bad(name, p);
    }
}
