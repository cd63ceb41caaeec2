//! `ditto package|trigger|rule|api` against a real platform over HTTP.

use std::process::Command;

fn ditto(base: &str, auth: &str, args: &[&str]) -> (bool, serde_json::Value, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_ditto"))
        .args(args)
        .env("DITTO_APIHOST", base)
        .env("DITTO_AUTH", auth)
        .env("WSK_CONFIG_FILE", "/nonexistent")
        .output()
        .expect("ditto runs");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let v = serde_json::from_str(&stdout).unwrap_or(serde_json::Value::String(stdout));
    (
        out.status.success(),
        v,
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

#[test]
fn package_trigger_rule_and_api_commands() {
    if !ditto_vmm::kvm::usable_for_tests() {
        return;
    }
    let dir = std::env::temp_dir().join(format!("ditto-cli-entities-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let srv = ditto_platform::local::LocalServer::start(ditto_platform::config::ServeConfig {
        data_dir: dir.clone(),
        ..Default::default()
    })
    .expect("server");
    let auth = srv.auth.clone().expect("credentials");
    let d = |args: &[&str]| ditto(&srv.base, &auth, args);

    let (ok, v, e) = d(&["package", "list", "/whisk.system"]);
    assert!(ok, "{e}");
    assert_eq!(v.as_array().map(Vec::len), Some(2));
    let (ok, v, e) = d(&[
        "package",
        "bind",
        "/whisk.system/utils",
        "u",
        "-p",
        "lines",
        "[\"b\",\"a\"]",
    ]);
    assert!(ok, "{e}");
    assert_eq!(v["binding"]["name"], "utils");
    let (ok, v, e) = d(&["action", "invoke", "u/sort", "-r"]);
    assert!(ok, "{e}");
    assert_eq!(
        v,
        serde_json::json!({"lines": ["a", "b"], "length": 2}),
        "binding parameters reach the action"
    );
    let (ok, v, e) = d(&["action", "invoke", "/whisk.system/utils/namespace", "-r"]);
    assert!(ok, "{e}");
    assert_eq!(
        v,
        serde_json::json!({"namespace": "guest"}),
        "fully qualified names work"
    );
    let (ok, v, e) = d(&["action", "get", "/whisk.system/utils/echo"]);
    assert!(ok, "{e}");
    assert_eq!(v["namespace"], "whisk.system/utils");
    let (ok, _, e) = d(&["package", "create", "p", "--shared", "yes"]);
    assert!(ok, "{e}");
    let (ok, _, _) = d(&["package", "create", "p"]);
    assert!(!ok, "create refuses an existing package");
    let (ok, v, e) = d(&["package", "update", "p", "-p", "k", "1"]);
    assert!(ok, "{e}");
    assert_eq!(
        (v["publish"].clone(), v["parameters"][0]["value"].clone()),
        (serde_json::json!(true), serde_json::json!(1))
    );
    let (ok, _, _) = d(&["package", "bind", "/whisk.system/nothing", "x"]);
    assert!(!ok, "binding to a missing package fails");

    let (ok, _, e) = d(&["trigger", "create", "t", "-p", "from", "trigger"]);
    assert!(ok, "{e}");
    let (ok, _, e) = d(&["rule", "create", "r", "t", "/whisk.system/utils/echo"]);
    assert!(ok, "{e}");
    let (ok, _, _) = d(&["rule", "create", "r2", "t", "missing"]);
    assert!(!ok, "rule to a missing action fails");
    let (ok, v, e) = d(&["trigger", "fire", "t", "-p", "x", "1"]);
    assert!(ok, "{e}");
    assert_eq!(v["activationId"].as_str().map(str::len), Some(32));
    let (ok, v, e) = d(&["trigger", "get", "t"]);
    assert!(ok, "{e}");
    assert_eq!(v["rules"]["guest/r"]["status"], "active");
    let (ok, _, e) = d(&["rule", "disable", "r"]);
    assert!(ok, "{e}");
    let (ok, v, _) = d(&["rule", "status", "r"]);
    assert!(ok);
    assert_eq!(v, serde_json::json!("inactive\n"));

    // A trigger with a feed: the feed's CREATE runs; a bad cron removes the trigger again.
    let (ok, _, e) = d(&[
        "trigger",
        "create",
        "tick",
        "--feed",
        "/whisk.system/alarms/alarm",
        "-p",
        "cron",
        "*/5 * * * * *",
    ]);
    assert!(ok, "{e}");
    let (ok, _, _) = d(&[
        "trigger",
        "create",
        "bad",
        "--feed",
        "/whisk.system/alarms/alarm",
        "-p",
        "cron",
        "nope",
    ]);
    assert!(!ok, "a cron that does not parse is refused");
    let (ok, _, _) = d(&["trigger", "get", "bad"]);
    assert!(!ok, "the refused trigger is gone");
    let (ok, _, e) = d(&["trigger", "delete", "tick"]);
    assert!(ok, "{e}");

    let (ok, _, e) = d(&[
        "api",
        "create",
        "/shop",
        "/hi",
        "get",
        "/whisk.system/utils/echo",
    ]);
    assert!(!ok, "only the caller's own web actions can be routed");
    assert!(e.contains("HTTP 403"), "{e}");
    let (ok, v, e) = d(&["api", "list"]);
    assert!(ok, "{e}");
    assert_eq!(v["apis"], serde_json::json!([]));
    srv.stop().expect("stops");
    std::fs::remove_dir_all(&dir).ok();
}
