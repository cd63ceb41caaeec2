//! The rest of OpenWhisk end to end over real HTTP: packages, bindings, `whisk.system`,
//! triggers, rules, feeds and alarms, sequences, web actions and API routes, driven by the
//! `openwhisk` npm client; and alarms that survive a restart.

use base64::Engine as _;
use ditto_platform::config::ServeConfig;
use ditto_platform::local::LocalServer;
use serde_json::{json, Value};
use std::path::PathBuf;
use std::time::{Duration, Instant};

const ECHO: &str = r#"(module
  (import "wasi_snapshot_preview1" "fd_read" (func $fd_read (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 20)
  (func (export "_start")
    (i32.store (i32.const 0) (i32.const 64))
    (i32.store (i32.const 4) (i32.const 1200000))
    (drop (call $fd_read (i32.const 0) (i32.const 0) (i32.const 1) (i32.const 8)))
    (i32.store (i32.const 4) (i32.load (i32.const 8)))
    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 12)))))"#;

fn temp_dir(tag: &str) -> PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let d = std::env::temp_dir().join(format!(
        "ditto-entities-{tag}-{}-{nanos:x}",
        std::process::id()
    ));
    std::fs::create_dir_all(&d).expect("temp dir");
    d
}

fn start(dir: &std::path::Path) -> LocalServer {
    LocalServer::start(ServeConfig {
        data_dir: dir.to_path_buf(),
        ..ServeConfig::default()
    })
    .expect("server starts")
}

fn call(base: &str, auth: &str, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let r = ureq::request(method, &format!("{base}{path}")).set(
        "Authorization",
        &format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(auth)
        ),
    );
    let resp = match body {
        Some(b) => r.send_json(b),
        None => r.call(),
    };
    let resp = match resp {
        Ok(r) | Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("request failed: {e}"),
    };
    let status = resp.status();
    let text = resp.into_string().expect("body");
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// Install the `openwhisk` npm package once into the target directory (shared with the
/// actions compatibility test).
fn npm_openwhisk() -> Option<PathBuf> {
    let works = |b: &str| {
        std::process::Command::new(b)
            .arg("--version")
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false)
    };
    if !works("node") || !works("npm") {
        if std::env::var_os("CI").is_some() {
            panic!("node and npm are required under CI for the openwhisk npm compatibility test");
        }
        eprintln!(
            "\n*** SKIPPING: node/npm not found; the openwhisk npm entity test needs them ***\n"
        );
        return None;
    }
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/npm-openwhisk");
    if !dir.join("node_modules/openwhisk").exists() {
        std::fs::create_dir_all(&dir).expect("npm dir");
        let out = std::process::Command::new("npm")
            .args(["install", "--no-audit", "--no-fund", "--prefix"])
            .arg(&dir)
            .arg("openwhisk@3")
            .output()
            .expect("npm runs");
        assert!(
            out.status.success(),
            "npm install openwhisk failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Some(dir)
}

#[test]
fn the_openwhisk_npm_client_drives_every_entity() {
    if !ditto_vmm::kvm::usable_for_tests() {
        return;
    }
    let Some(npm) = npm_openwhisk() else { return };
    let dir = temp_dir("npm");
    let srv = start(&dir);
    let auth = srv.auth.clone().expect("fresh credentials");
    let other = ditto_platform::store::Store::open(&dir.join("ditto.db"))
        .expect("db")
        .create_namespace("other")
        .expect("ns")
        .auth();
    let wasm_path = dir.join("echo.wasm");
    std::fs::write(&wasm_path, wat::parse_str(ECHO).expect("assembles")).expect("module file");
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/openwhisk_npm_entities.js");
    let out = std::process::Command::new("node")
        .arg(&script)
        .arg(&srv.base)
        .arg(&auth)
        .arg(&wasm_path)
        .arg(&other)
        .env("NODE_PATH", npm.join("node_modules"))
        .output()
        .expect("node runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("ok"),
        "openwhisk npm client failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    srv.stop().expect("stops");
}

/// Count the activations of `name` newer than `since` (ms since the epoch).
fn firings(base: &str, auth: &str, name: &str, since: i64) -> usize {
    let (s, v) = call(
        base,
        auth,
        "GET",
        &format!("/api/v1/namespaces/_/activations?name={name}&limit=200&since={since}"),
        None,
    );
    assert_eq!(s, 200, "{v}");
    v.as_array().map(Vec::len).unwrap_or(0)
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

#[test]
fn alarms_survive_a_restart() {
    if !ditto_vmm::kvm::usable_for_tests() {
        return;
    }
    let dir = temp_dir("alarms");
    let srv = start(&dir);
    let auth = srv.auth.clone().expect("fresh credentials");
    let base = srv.base.clone();
    let ok = |(s, v): (u16, Value)| assert!(s == 200 || s == 202, "{s} {v}");
    ok(call(
        &base,
        &auth,
        "PUT",
        "/api/v1/namespaces/_/triggers/beat",
        Some(json!({})),
    ));
    ok(call(
        &base,
        &auth,
        "PUT",
        "/api/v1/namespaces/_/rules/beat-echo",
        Some(json!({"trigger": "/_/beat", "action": "/whisk.system/utils/echo"})),
    ));
    ok(call(
        &base,
        &auth,
        "POST",
        "/api/v1/namespaces/whisk.system/actions/alarms/alarm?blocking=true",
        Some(
            json!({"lifecycleEvent": "CREATE", "triggerName": "/_/beat", "authKey": auth,
                    "cron": "* * * * * *", "trigger_payload": {"n": 1}}),
        ),
    ));
    srv.stop().expect("stops");

    // The alarm is stored: a new platform on the same data fires it every second.
    let restarted = now_ms();
    let srv = start(&dir);
    let base = srv.base.clone();
    let t0 = Instant::now();
    while firings(&base, &auth, "beat", restarted) < 2 {
        assert!(
            t0.elapsed() < Duration::from_secs(15),
            "the alarm did not fire after the restart"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // The rule ran the action with the alarm's payload.
    let t0 = Instant::now();
    loop {
        let (_, v) = call(
            &base,
            &auth,
            "GET",
            "/api/v1/namespaces/_/activations?name=echo&limit=1&docs=true",
            None,
        );
        if v[0]["response"]["result"] == json!({"n": 1}) {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(15),
            "no echo activation: {v}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // A bad cron is refused by the feed.
    let (s, v) = call(
        &base,
        &auth,
        "POST",
        "/api/v1/namespaces/whisk.system/actions/alarms/alarm?blocking=true",
        Some(
            json!({"lifecycleEvent": "CREATE", "triggerName": "/_/beat", "authKey": auth,
                    "cron": "every minute"}),
        ),
    );
    assert_eq!(s, 502, "{v}");
    srv.stop().expect("stops");
}
