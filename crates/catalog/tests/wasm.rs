//! Runs the embedded modules on `wasmi` (the guest's interpreter) with a minimal WASI shim
//! like the guest's, without a VM: catalog results must equal the native ones bit for bit,
//! bad parameters must exit with code 1, and each test module must fail the way its name
//! says.

use serde_json::{json, Value};
use wasmi::{Caller, Config, Engine, Error, Extern, Linker, Module, Store, TrapCode};

const WASI: &str = "wasi_snapshot_preview1";
const EBADF: i32 = 8;
const EFAULT: i32 = 21;

#[derive(Default)]
struct Ctx {
    stdin: Vec<u8>,
    pos: usize,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
}

struct Outcome {
    /// `Ok(exit code)` or the trap.
    result: Result<i32, Error>,
    stdout: Vec<u8>,
    stderr: String,
}

fn mem(c: &Caller<'_, Ctx>) -> wasmi::Memory {
    c.get_export("memory")
        .and_then(Extern::into_memory)
        .expect("memory export")
}

fn u32_at(c: &Caller<'_, Ctx>, m: &wasmi::Memory, at: u32) -> u32 {
    let mut b = [0u8; 4];
    m.read(c, at as usize, &mut b).expect("in bounds");
    u32::from_le_bytes(b)
}

fn put(c: &mut Caller<'_, Ctx>, at: i32, bytes: &[u8]) -> i32 {
    let m = mem(c);
    match m.write(c, at as u32 as usize, bytes) {
        Ok(()) => 0,
        Err(_) => EFAULT,
    }
}

fn linker(engine: &Engine) -> Linker<Ctx> {
    let mut l = Linker::<Ctx>::new(engine);
    l.func_wrap(
        WASI,
        "environ_sizes_get",
        |mut c: Caller<'_, Ctx>, n: i32, s: i32| {
            put(&mut c, n, &0u32.to_le_bytes()) | put(&mut c, s, &0u32.to_le_bytes())
        },
    )
    .unwrap();
    l.func_wrap(WASI, "environ_get", |_: Caller<'_, Ctx>, _: i32, _: i32| 0)
        .unwrap();
    l.func_wrap(
        WASI,
        "fd_read",
        |mut c: Caller<'_, Ctx>, fd: i32, iovs: i32, n: i32, nread: i32| {
            if fd != 0 {
                return EBADF;
            }
            let m = mem(&c);
            let mut total = 0u32;
            for i in 0..n as u32 {
                let ptr = u32_at(&c, &m, iovs as u32 + 8 * i);
                let len = u32_at(&c, &m, iovs as u32 + 8 * i + 4) as usize;
                let ctx = c.data();
                let chunk = ctx.stdin[ctx.pos..(ctx.pos + len).min(ctx.stdin.len())].to_vec();
                m.write(&mut c, ptr as usize, &chunk).unwrap();
                c.data_mut().pos += chunk.len();
                total += chunk.len() as u32;
            }
            put(&mut c, nread, &total.to_le_bytes())
        },
    )
    .unwrap();
    l.func_wrap(
        WASI,
        "fd_write",
        |mut c: Caller<'_, Ctx>, fd: i32, iovs: i32, n: i32, nwritten: i32| {
            if fd != 1 && fd != 2 {
                return EBADF;
            }
            let m = mem(&c);
            let mut total = 0u32;
            for i in 0..n as u32 {
                let ptr = u32_at(&c, &m, iovs as u32 + 8 * i) as usize;
                let len = u32_at(&c, &m, iovs as u32 + 8 * i + 4) as usize;
                let (data, ctx) = m.data_and_store_mut(&mut c);
                let out = if fd == 1 {
                    &mut ctx.stdout
                } else {
                    &mut ctx.stderr
                };
                out.extend_from_slice(&data[ptr..ptr + len]);
                total += len as u32;
            }
            put(&mut c, nwritten, &total.to_le_bytes())
        },
    )
    .unwrap();
    l.func_wrap(
        WASI,
        "clock_time_get",
        |mut c: Caller<'_, Ctx>, _id: i32, _precision: i64, out: i32| {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64;
            put(&mut c, out, &now.to_le_bytes())
        },
    )
    .unwrap();
    l.func_wrap(
        WASI,
        "proc_exit",
        |_: Caller<'_, Ctx>, code: i32| -> Result<(), Error> { Err(Error::i32_exit(code)) },
    )
    .unwrap();
    l
}

fn run(name: &str, stdin: &str, fuel: u64) -> Outcome {
    let f = ditto_catalog::get(name).expect("known module");
    let mut config = Config::default();
    config.consume_fuel(true);
    let engine = Engine::new(&config);
    let module = Module::new(&engine, f.wasm).expect("valid module");
    let ctx = Ctx {
        stdin: stdin.as_bytes().to_vec(),
        ..Ctx::default()
    };
    let mut store = Store::new(&engine, ctx);
    store.set_fuel(fuel).unwrap();
    let instance = linker(&engine)
        .instantiate_and_start(&mut store, &module)
        .expect("instantiates with the WASI subset");
    let start = instance
        .get_typed_func::<(), ()>(&store, "_start")
        .expect("_start");
    let result = match start.call(&mut store, ()) {
        Ok(()) => Ok(0),
        Err(e) => match e.i32_exit_status() {
            Some(code) => Ok(code),
            None => Err(e),
        },
    };
    let ctx = store.into_data();
    Outcome {
        result,
        stdout: ctx.stdout,
        stderr: String::from_utf8_lossy(&ctx.stderr).into_owned(),
    }
}

fn json_out(o: &Outcome) -> Value {
    serde_json::from_slice(&o.stdout).expect("stdout is JSON")
}

/// Small parameters, so the interpreter (built with the test profile) stays fast.
fn small_params(name: &str) -> Value {
    match name {
        "float_operation" => json!({"n": 2000}),
        "matmul" => json!({"n": 24}),
        "linpack" => json!({"n": 30}),
        "aes" => json!({"length": 1000, "iterations": 2}),
        "json" => json!({"rounds": 2}),
        "compress" => json!({"size": 20000}),
        "html_template" => json!({"rows": 20, "cols": 5}),
        "fib" => json!({"n": 15}),
        "spin" => json!({"ms": 2}),
        "echo" => json!({"a": [1, 2.5, "x"], "b": {"c": null}}),
        _ => json!({}),
    }
}

const FUEL: u64 = 2_000_000_000;

#[test]
fn catalog_modules_give_the_native_results() {
    for f in ditto_catalog::all() {
        let params = small_params(f.name);
        let o = run(f.name, &params.to_string(), FUEL);
        assert_eq!(
            o.result.as_ref().ok(),
            Some(&0),
            "{}: {:?}",
            f.name,
            o.stderr
        );
        let got = json_out(&o);
        let want = ditto_catalog::run_native(f.name, &params).unwrap();
        if f.name == "spin" {
            assert!(got["elapsed_us"].as_u64().unwrap() >= 2000, "{got}");
            assert!(got["iterations"].as_u64().unwrap() > 0, "{got}");
        } else {
            assert_eq!(got, want, "{}: wasm and native differ", f.name);
        }
    }
    // An empty stdin means the defaults.
    let o = run("html_template", "", FUEL);
    let defaults = ditto_catalog::run_native("html_template", &Value::Null).unwrap();
    assert_eq!(json_out(&o), defaults);
}

#[test]
fn bad_params_exit_with_code_1_and_a_message() {
    for (name, stdin) in [
        ("fib", r#"{"n": 99}"#),
        ("matmul", r#"{"n": -3}"#),
        ("noop", "[1]"),
        ("aes", "{not json"),
    ] {
        let o = run(name, stdin, FUEL);
        assert_eq!(o.result.as_ref().ok(), Some(&1), "{name}");
        assert!(o.stdout.is_empty(), "{name}");
        assert!(
            o.stderr.starts_with(&format!("{name}: error: ")),
            "{name}: {}",
            o.stderr
        );
    }
}

fn trap(name: &str, fuel: u64) -> TrapCode {
    let o = run(name, "{}", fuel);
    let e = o.result.expect_err(name);
    e.as_trap_code()
        .unwrap_or_else(|| panic!("{name}: not a trap: {e}"))
}

#[test]
fn test_modules_misbehave_as_named() {
    assert_eq!(
        trap("trap_unreachable", FUEL),
        TrapCode::UnreachableCodeReached
    );
    assert_eq!(trap("trap_oob", FUEL), TrapCode::MemoryOutOfBounds);
    assert_eq!(trap("trap_div0", FUEL), TrapCode::IntegerDivisionByZero);
    let stack = trap("trap_stack", FUEL);
    assert!(
        matches!(stack, TrapCode::StackOverflow | TrapCode::MemoryOutOfBounds),
        "{stack:?}"
    );
    assert_eq!(trap("loop_forever", 10_000_000), TrapCode::OutOfFuel);

    let o = run("no_json", "{}", FUEL);
    assert_eq!(o.result.ok(), Some(0));
    assert!(serde_json::from_slice::<Value>(&o.stdout).is_err());
    let o = run("not_dict", "{}", FUEL);
    assert_eq!(json_out(&o), json!(42));
    let o = run("big_output", "{}", FUEL);
    assert!(o.stdout.len() > 1 << 20);
    assert!(json_out(&o).is_object());
}

/// Interpreter timings on the default parameters (median of 5 runs, each including
/// compilation and instantiation).
/// Run with `cargo test --release -p ditto-catalog --test wasm -- --ignored --nocapture`.
#[test]
#[ignore = "timing report"]
fn wasmi_timings_on_defaults() {
    println!("{:<16} {:>12}", "function", "wasmi_ms");
    for f in ditto_catalog::all() {
        let mut times: Vec<f64> = (0..5)
            .map(|_| {
                let t = std::time::Instant::now();
                let o = run(f.name, "", u64::MAX);
                assert_eq!(o.result.ok(), Some(0), "{}", f.name);
                t.elapsed().as_secs_f64() * 1e3
            })
            .collect();
        times.sort_by(f64::total_cmp);
        println!("{:<16} {:>12.3}", f.name, times[2]);
    }
}
