//! The `ditto` binary end to end: exit codes, JSON output, clear errors.

use std::process::Command;

fn ditto(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_ditto"))
        .args(args)
        .output()
        .expect("ditto runs")
}

fn kvm_ok() -> bool {
    ditto_vmm::kvm::usable_for_tests()
}

#[test]
fn vm_run_json_reports_every_vcpu() {
    if !kvm_ok() {
        return;
    }
    let out = ditto(&[
        "vm",
        "run",
        "--regular",
        "1",
        "--workers",
        "3",
        "--active",
        "2",
        "--tasks",
        "50",
        "--task",
        "spin:1000",
        "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
    assert_eq!(v["tasks_completed"], 50);
    assert_eq!(v["tasks_failed"], 0);
    assert_eq!(v["measurement"].as_str().map(str::len), Some(96));
    let vcpus = v["vcpus"].as_array().expect("vcpus list");
    assert_eq!(vcpus.len(), 4);
    assert_eq!(vcpus[0]["kind"], "regular");
    assert_eq!(vcpus[3]["kind"], "worker");
    assert_eq!(vcpus[3]["tasks"], 0, "the sleeping worker ran nothing");
    for key in ["id", "state", "tasks", "checkins", "busy_ns", "asleep_ns"] {
        assert!(vcpus[1].get(key).is_some(), "missing {key}");
    }
    let total: u64 = vcpus.iter().map(|c| c["tasks"].as_u64().unwrap_or(0)).sum();
    assert_eq!(total, 50);
}

#[test]
fn failed_tasks_give_exit_status_2() {
    if !kvm_ok() {
        return;
    }
    let out = ditto(&[
        "vm",
        "run",
        "--workers",
        "1",
        "--tasks",
        "2",
        "--task",
        "hang",
        "--timeout-ms",
        "100",
        "--json",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(v["tasks_failed"], 2);
    assert!(v["errors"][0].as_str().unwrap_or("").contains("deadline"));
}

#[test]
fn invalid_configurations_exit_non_zero_with_a_clear_message() {
    for (args, msg) in [
        (
            vec!["vm", "run", "--regular", "0"],
            "at least one regular vCPU",
        ),
        (
            vec!["vm", "run", "--regular", "1", "--workers", "64"],
            "exceeds the maximum of 64",
        ),
        (vec!["vm", "run", "--memory-mib", "4"], "too little"),
        (
            vec!["vm", "run", "--kvm", "/nonexistent/kvm"],
            "does not exist",
        ),
        (vec!["vm", "run", "--task", "bogus"], "unknown task"),
        (
            vec!["vm", "run", "--wasm", "/nonexistent.wasm"],
            "cannot read",
        ),
    ] {
        let out = ditto(&args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(msg), "{args:?}: {err}");
    }
}

#[test]
fn help_explains_the_commands() {
    let out = ditto(&["vm", "run", "--help"]);
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for word in [
        "--regular",
        "--workers",
        "--active",
        "--tasks",
        "--task",
        "--json",
        "--wasm",
    ] {
        assert!(help.contains(word), "help lacks {word}");
    }
}

#[test]
fn bench_elastic_quick_checks_its_own_output() {
    if !kvm_ok() {
        return;
    }
    let out = std::env::temp_dir().join(format!("ditto-elastic-test-{}", std::process::id()));
    let o = ditto(&[
        "bench",
        "elastic",
        "--quick",
        "--trace",
        "onoff:on=1s,off=1s,rate=60/s,base=5/s,duration=3s",
        "--json",
        "--out",
        out.to_str().expect("utf-8 path"),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let summary: serde_json::Value = serde_json::from_slice(&o.stdout).expect("JSON summary");
    let dir = std::path::PathBuf::from(summary["report_dir"].as_str().expect("report dir"));
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("report.json")).expect("report.json"))
            .expect("parses");
    let requests = report["requests"].as_u64().expect("requests");
    assert!(requests > 0);
    let configs = report["configs"].as_array().expect("configs");
    let names: Vec<&str> = configs.iter().filter_map(|c| c["name"].as_str()).collect();
    assert_eq!(
        names,
        [
            "ditto",
            "ditto-fast",
            "fixed-peak",
            "fixed-mean",
            "scale-out"
        ]
    );
    for c in configs {
        assert_eq!(
            c["completed"].as_u64(),
            Some(requests),
            "{} completed every request",
            c["name"]
        );
        assert_eq!(c["failed"], 0);
        for key in ["p50_ms", "p99_ms", "reserved_vcpu_s", "host_cpu_s"] {
            assert!(c[key].as_f64().is_some(), "{key}");
        }
    }
    let peak = configs
        .iter()
        .find(|c| c["name"] == "fixed-peak")
        .expect("fixed-peak");
    let expected =
        peak["peak_vcpus"].as_f64().expect("vcpus") * peak["window_s"].as_f64().expect("window");
    let reserved = peak["reserved_vcpu_s"].as_f64().expect("reserved");
    assert!(
        (reserved - expected).abs() <= 0.05 * expected,
        "fixed-peak reserved {reserved} vs {expected} vCPU-s"
    );
    let md = std::fs::read_to_string(dir.join("report.md")).expect("report.md");
    assert!(md.contains("| fixed-peak |") && md.contains("latency_cdf.svg"));
    for svg in ["latency_cdf.svg", "awake_vcpus.svg"] {
        let text = std::fs::read_to_string(dir.join(svg)).expect("plot written");
        assert!(
            text.trim_start().starts_with("<svg") && text.trim_end().ends_with("</svg>"),
            "{svg} is an SVG document"
        );
        assert!(
            text.contains("<polyline") || text.contains("<path"),
            "{svg} has lines"
        );
    }
    let summary_rows = summary["configs"].as_array().expect("rows");
    assert!(summary_rows
        .iter()
        .all(|r| r.get("p50_ms").is_some() && r.get("reserved_vcpu_s").is_some()));
    std::fs::remove_dir_all(&out).ok();
}
