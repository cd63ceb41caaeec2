//! Tenants over real HTTP against real VMs: fair share while another namespace floods,
//! namespace limits with OpenWhisk's 429 messages, cold bursts that wait for starting VMs,
//! keys at rest, the negative cache of failed module init, and journal recovery.

use base64::Engine as _;
use ditto_platform::config::ServeConfig;
use ditto_platform::journal::{Entry, Journal, State};
use ditto_platform::local::LocalServer;
use ditto_platform::store::{Durability, Store};
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
const NO_START: &str = r#"(module (memory (export "memory") 1))"#;

fn wasm(src: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(wat::parse_str(src).expect("assembles"))
}

fn spin_module() -> String {
    base64::engine::general_purpose::STANDARD.encode(
        ditto_catalog::get("spin")
            .expect("spin in the catalog")
            .wasm,
    )
}

fn temp_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "ditto-tenants-{tag}-{}-{:x}",
        std::process::id(),
        rand::random::<u32>()
    ));
    std::fs::create_dir_all(&d).expect("temp dir");
    d
}

fn start(dir: &std::path::Path, tweak: impl FnOnce(&mut ServeConfig)) -> LocalServer {
    let mut c = ServeConfig {
        data_dir: dir.to_path_buf(),
        ..ServeConfig::default()
    };
    tweak(&mut c);
    LocalServer::start(c).expect("server starts")
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
        Some(b) => r
            .set("Content-Type", "application/json")
            .send_string(&b.to_string()),
        None => r.call(),
    };
    let resp = match resp {
        Ok(r) | Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("request failed: {e}"),
    };
    let status = resp.status();
    let text = resp.into_string().expect("body");
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

fn create(base: &str, auth: &str, name: &str, code: String) -> (u16, Value) {
    call(
        base,
        auth,
        "PUT",
        &format!("/api/v1/namespaces/_/actions/{name}?overwrite=true"),
        Some(json!({"exec": {"kind": "wasm", "code": code}})),
    )
}

fn wait_activation(base: &str, auth: &str, id: &str) -> Value {
    let t0 = Instant::now();
    loop {
        let (s, v) = call(
            base,
            auth,
            "GET",
            &format!("/api/v1/namespaces/_/activations/{id}"),
            None,
        );
        if s == 200 {
            return v;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "activation {id} never recorded"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn metric(base: &str, name: &str) -> f64 {
    let m = ureq::get(&format!("{base}/metrics"))
        .call()
        .expect("metrics")
        .into_string()
        .expect("text");
    m.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}

#[test]
fn a_second_tenant_keeps_working_while_the_first_floods() {
    if !ditto_vmm::kvm::usable_for_tests() {
        return;
    }
    let dir = temp_dir("fair");
    let srv = start(&dir, |c| {
        c.fair.tenant_max_inflight = 40;
        c.fair.capacity = 8;
    });
    let a = srv.auth.clone().expect("first key");
    let b = srv
        .platform
        .store
        .create_user("bob", "bob")
        .expect("second tenant")
        .auth();
    assert_eq!(create(&srv.base, &a, "slow", spin_module()).0, 200);
    assert_eq!(create(&srv.base, &b, "echo", wasm(ECHO)).0, 200);
    // Tenant a floods non-blocking 100 ms invocations from 4 threads.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flooders: Vec<_> = (0..4)
        .map(|_| {
            let (base, a, stop) = (srv.base.clone(), a.clone(), stop.clone());
            std::thread::spawn(move || {
                let (mut ok, mut refused, mut msg) = (0, 0, String::new());
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let (s, v) = call(
                        &base,
                        &a,
                        "POST",
                        "/api/v1/namespaces/_/actions/slow",
                        Some(json!({"ms": 100})),
                    );
                    match s {
                        202 => ok += 1,
                        429 => {
                            refused += 1;
                            msg = v["error"].as_str().unwrap_or_default().to_string();
                        }
                        other => panic!("flooder got {other}: {v}"),
                    }
                }
                (ok, refused, msg)
            })
        })
        .collect();
    // Let the flood fill a's bound, then b invokes (blocking) and must always get through.
    let t0 = Instant::now();
    while srv.platform.fair.tenant("guest").0 < 40 {
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "the flood never filled its bound"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    for i in 0..20 {
        let (s, v) = call(
            &srv.base,
            &b,
            "POST",
            "/api/v1/namespaces/_/actions/echo?blocking=true&result=true",
            Some(json!({"i": i})),
        );
        assert_eq!((s, v), (200, json!({"i": i})), "tenant b, invocation {i}");
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (mut ok, mut refused, mut msg) = (0, 0, String::new());
    for f in flooders {
        let (o, r, m) = f.join().expect("flooder");
        ok += o;
        refused += r;
        if !m.is_empty() {
            msg = m;
        }
    }
    assert!(ok >= 40 && refused > 0, "accepted {ok}, refused {refused}");
    assert!(
        msg.starts_with("Too many concurrent requests in flight (count: 41, allowed: 40)"),
        "{msg}"
    );
    let (inflight, bytes, _) = srv.platform.fair.tenant("guest");
    assert!(
        inflight <= 40 && bytes <= 40 * (4096 + 64),
        "{inflight} {bytes}"
    );
    srv.stop().expect("stops");
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn namespace_limits_refuse_with_openwhisk_messages() {
    if !ditto_vmm::kvm::usable_for_tests() {
        return;
    }
    let dir = temp_dir("limits");
    let srv = start(&dir, |_| {});
    let a = srv.auth.clone().expect("key");
    assert_eq!(create(&srv.base, &a, "echo", wasm(ECHO)).0, 200);
    let limits = ditto_platform::tenants::NamespaceLimits {
        invocations_per_minute: Some(3),
        ..Default::default()
    };
    srv.platform
        .store
        .set_namespace_limits("guest", &limits)
        .expect("set");
    std::thread::sleep(ditto_platform::tenants::LIMITS_TTL);
    let mut codes = Vec::new();
    let mut last = Value::Null;
    for _ in 0..4 {
        let (s, v) = call(
            &srv.base,
            &a,
            "POST",
            "/api/v1/namespaces/_/actions/echo?blocking=true",
            Some(json!({})),
        );
        codes.push(s);
        last = v;
    }
    // The minute may roll over between calls; then fewer are refused, never more.
    assert!(codes[..3].iter().all(|c| *c == 200), "{codes:?}");
    if codes[3] == 429 {
        assert_eq!(
            last["error"],
            "Too many requests in the last minute (count: 4, allowed: 3)."
        );
    }
    let limits = ditto_platform::tenants::NamespaceLimits {
        concurrent_invocations: Some(1),
        ..Default::default()
    };
    srv.platform
        .store
        .set_namespace_limits("guest", &limits)
        .expect("set");
    assert_eq!(create(&srv.base, &a, "slow", spin_module()).0, 200);
    std::thread::sleep(ditto_platform::tenants::LIMITS_TTL);
    let (s, v) = call(
        &srv.base,
        &a,
        "POST",
        "/api/v1/namespaces/_/actions/slow",
        Some(json!({"ms": 2000})),
    );
    assert_eq!(s, 202, "{v}");
    let (s, v) = call(
        &srv.base,
        &a,
        "POST",
        "/api/v1/namespaces/_/actions/slow",
        Some(json!({"ms": 1})),
    );
    assert_eq!(s, 429, "{v}");
    assert_eq!(
        v["error"],
        "Too many concurrent requests in flight (count: 2, allowed: 1)."
    );
    srv.stop().expect("stops");
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn a_cold_burst_waits_for_the_vm_that_is_starting() {
    if !ditto_vmm::kvm::usable_for_tests() {
        return;
    }
    let dir = temp_dir("cold");
    let srv = start(&dir, |_| {});
    let a = srv.auth.clone().expect("key");
    assert_eq!(create(&srv.base, &a, "echo", wasm(ECHO)).0, 200);
    let burst: Vec<_> = (0..50)
        .map(|i| {
            let (base, a) = (srv.base.clone(), a.clone());
            std::thread::spawn(move || {
                call(
                    &base,
                    &a,
                    "POST",
                    "/api/v1/namespaces/_/actions/echo?blocking=true&result=true",
                    Some(json!({"i": i})),
                )
            })
        })
        .collect();
    for (i, t) in burst.into_iter().enumerate() {
        let (s, v) = t.join().expect("joins");
        assert_eq!((s, v), (200, json!({"i": i})), "invocation {i}");
    }
    srv.stop().expect("stops");
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn keys_are_stored_as_salted_hashes_in_private_files() {
    use std::os::unix::fs::PermissionsExt;
    let dir = temp_dir("keys");
    let db = dir.join("ditto.db");
    let store = Store::open(&db).expect("opens");
    let c = store.create_user("alice", "alice-ns").expect("created");
    let d = store
        .create_user("alice", "alice-2")
        .expect("second namespace");
    assert!(matches!(
        store.create_user("bob", "alice-ns"),
        Err(ditto_platform::store::StoreError::Conflict)
    ));
    assert_eq!(
        store.authenticate(&c.uuid, &c.key).expect("ok"),
        Some("alice-ns".into())
    );
    assert_eq!(store.authenticate(&c.uuid, &d.key).expect("ok"), None);
    assert_eq!(store.list_users(Some("alice")).expect("list").len(), 2);
    drop(store);
    for f in std::fs::read_dir(&dir).expect("dir") {
        let f = f.expect("entry").path();
        let bytes = std::fs::read(&f).expect("read");
        assert!(
            !bytes.windows(c.key.len()).any(|w| w == c.key.as_bytes()),
            "{} holds the plaintext key",
            f.display()
        );
    }
    assert_eq!(
        std::fs::metadata(&db).expect("db").permissions().mode() & 0o777,
        0o600
    );
    let store = Store::open(&db).expect("reopens");
    assert_eq!(store.delete_user("alice").expect("deleted"), 2);
    assert_eq!(store.authenticate(&c.uuid, &c.key).expect("ok"), None);
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn the_data_dir_is_private_and_a_failed_module_init_is_not_retried() {
    use std::os::unix::fs::PermissionsExt;
    if !ditto_vmm::kvm::usable_for_tests() {
        return;
    }
    let dir = temp_dir("negative");
    let srv = start(&dir, |_| {});
    assert_eq!(
        std::fs::metadata(&dir).expect("dir").permissions().mode() & 0o777,
        0o700
    );
    let a = srv.auth.clone().expect("key");
    // An invalid module is refused when the action is created: it never reaches a VM.
    let (s, v) = create(&srv.base, &a, "bad", wasm(NO_START));
    assert_eq!(s, 400, "{v}");
    // A valid one whose stored artifact then fails the guest's checks (damaged, with a
    // digest that matches the damage, so the host ships it): its VM init fails.
    assert_eq!(create(&srv.base, &a, "bad", wasm(ECHO)).0, 200);
    srv.stop().expect("stops");
    {
        let conn = rusqlite::Connection::open(dir.join("ditto.db")).expect("db");
        let junk = b"not a compiled artifact".to_vec();
        let n = conn
            .execute(
                "UPDATE artifacts SET bytes = ?1, artifact_sha384 = ?2",
                rusqlite::params![&junk, &ditto_compile::sha384(&junk)[..]],
            )
            .expect("damage the artifact");
        assert_eq!(n, 1);
    }
    let srv = start(&dir, |_| {});
    for _ in 0..3 {
        let (s, v) = call(
            &srv.base,
            &a,
            "POST",
            "/api/v1/namespaces/_/actions/bad?blocking=true",
            Some(json!({})),
        );
        assert_eq!(s, 502, "{v}");
        assert_eq!(v["response"]["status"], "action developer error", "{v}");
    }
    assert_eq!(
        metric(&srv.base, "ditto_vm_start_failures_total"),
        1.0,
        "one VM start for three invocations"
    );
    // A new version (another module, so another artifact) is tried again.
    let other = ECHO.replace(
        "(memory (export \"memory\") 20)",
        "(memory (export \"memory\") 21)",
    );
    assert_ne!(other, ECHO);
    assert_eq!(create(&srv.base, &a, "bad", wasm(&other)).0, 200);
    let (s, v) = call(
        &srv.base,
        &a,
        "POST",
        "/api/v1/namespaces/_/actions/bad?blocking=true&result=true",
        Some(json!({"ok": 1})),
    );
    assert_eq!((s, v), (200, json!({"ok": 1})));
    srv.stop().expect("stops");
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn journaled_invocations_are_finished_after_a_restart() {
    if !ditto_vmm::kvm::usable_for_tests() {
        return;
    }
    let dir = temp_dir("resume");
    let srv = start(&dir, |_| {});
    let a = srv.auth.clone().expect("key");
    let (s, v) = create(&srv.base, &a, "echo", wasm(ECHO));
    assert_eq!(s, 200);
    let version = v["version"].as_str().expect("version").to_string();
    srv.stop().expect("stops");
    // What a killed server leaves behind: one invocation queued, one running.
    let db = dir.join("ditto.db");
    let (queued, running) = ("a".repeat(32), "b".repeat(32));
    {
        let j = Journal::open(&db, Durability::Full).expect("journal");
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("rt");
        for (id, state) in [(&queued, State::Queued), (&running, State::Started)] {
            rt.block_on(j.accept(Entry {
                id: id.clone(),
                namespace: "guest".into(),
                action_namespace: "guest".into(),
                action: "echo".into(),
                version: version.clone(),
                params: br#"{"left":"behind"}"#.to_vec(),
                state,
                accepted_ms: ditto_platform::model::now_ms(),
            }))
            .expect("journaled");
        }
        j.close(Duration::from_secs(5));
    }
    let srv = start(&dir, |_| {});
    let ran = wait_activation(&srv.base, &a, &queued);
    assert_eq!(ran["response"]["result"], json!({"left": "behind"}));
    let cut = wait_activation(&srv.base, &a, &running);
    assert_eq!(cut["response"]["status"], "whisk internal error");
    assert!(
        cut["response"]["result"]["error"]
            .as_str()
            .unwrap_or_default()
            .contains("stopped while this invocation was running"),
        "{cut}"
    );
    assert!(srv
        .platform
        .store
        .pending_invocations()
        .expect("read")
        .is_empty());
    srv.stop().expect("stops");
    std::fs::remove_dir_all(dir).ok();
}
