//! `ditto admin` end to end on a data directory: users and limits, clear errors.

use std::process::Command;

fn ditto(dir: &std::path::Path, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_ditto"))
        .args(["admin"])
        .args(args)
        .arg("--data-dir")
        .arg(dir)
        .output()
        .expect("ditto runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn users_and_limits() {
    use std::os::unix::fs::PermissionsExt;
    let dir = std::env::temp_dir().join(format!("ditto-admin-{}", std::process::id()));
    let (ok, out, err) = ditto(&dir, &["user", "create", "alice"]);
    assert!(ok, "{err}");
    let auth = out.trim();
    let (uuid, key) = auth.split_once(':').expect("uuid:key");
    assert_eq!((uuid.len(), key.len()), (36, 64), "{auth}");
    assert_eq!(
        std::fs::metadata(&dir).expect("dir").permissions().mode() & 0o777,
        0o700
    );
    let (ok, _, err) = ditto(&dir, &["user", "create", "bob", "--namespace", "alice"]);
    assert!(!ok && err.contains("already exists"), "{err}");
    let (ok, _, err) = ditto(&dir, &["user", "create", "bad name"]);
    assert!(!ok && err.contains("invalid subject"), "{err}");
    let (ok, out, _) = ditto(&dir, &["user", "list"]);
    assert!(ok && out.contains("alice") && out.contains(uuid), "{out}");
    assert!(!out.contains(key), "keys are never shown again");
    let (ok, out, _) = ditto(&dir, &["user", "get", "alice"]);
    assert!(ok && out.contains(uuid), "{out}");
    let (ok, _, err) = ditto(
        &dir,
        &[
            "limits",
            "set",
            "alice",
            "--invocations-per-minute",
            "60",
            "--concurrent-invocations",
            "5",
            "--fires-per-minute",
            "7",
        ],
    );
    assert!(ok, "{err}");
    let (ok, out, _) = ditto(&dir, &["limits", "get", "alice"]);
    let v: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    assert!(ok);
    assert_eq!(v["invocationsPerMinute"], 60);
    assert_eq!(v["concurrentInvocations"], 5);
    assert_eq!(v["firesPerMinute"], 7);
    let (ok, _, err) = ditto(&dir, &["limits", "set", "nobody", "--weight", "2"]);
    assert!(!ok && err.contains("no namespace"), "{err}");
    let (ok, _, _) = ditto(&dir, &["user", "delete", "alice"]);
    assert!(ok);
    let (ok, _, err) = ditto(&dir, &["user", "get", "alice"]);
    assert!(!ok && err.contains("no subject"), "{err}");
    std::fs::remove_dir_all(dir).ok();
}
