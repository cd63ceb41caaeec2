//! `ditto bench entities`: what the rest of OpenWhisk costs on the platform, over real
//! HTTP on loopback, all on the platform-internal `whisk.system/utils/echo` so that no VM
//! time is mixed in: a direct blocking invoke (the baseline), a three-step sequence, a web
//! action, a trigger fire answered (202) and fired through to its rule's recorded
//! activation; and listing 200 activations with ~1 MB results as summaries vs `docs=true`
//! (latency, response bytes, server peak memory growth).

use crate::micro::BenchError;
use crate::platform::Api;
use crate::summary::Summary;
use ditto_platform::config::ServeConfig;
use ditto_platform::local::LocalServer;
use ditto_platform::model::{new_activation_id, now_ms, Activation};
use serde::Serialize;
use serde_json::{json, Value};
use std::io::Read as _;
use std::time::{Duration, Instant};

/// Results (latencies in ns).
#[derive(Clone, Debug, Serialize)]
pub struct EntitiesReport {
    /// Blocking invoke of `/whisk.system/utils/echo`.
    pub invoke_ns: Summary,
    /// Blocking invoke of a sequence of three echoes.
    pub sequence3_ns: Summary,
    /// GET of a web action (a one-echo sequence, `.json`).
    pub web_ns: Summary,
    /// `POST /triggers/{name}` until its 202.
    pub fire_ns: Summary,
    /// From the fire request until the rule's action activation is readable.
    pub fire_to_rule_activation_ns: Summary,
    /// `GET /activations?limit=200` (summaries) over 200 activations of ~1 MB results.
    pub list_summaries_ns: Summary,
    /// The same with `docs=true`.
    pub list_docs_ns: Summary,
    /// Response bytes of each list.
    pub list_bytes: (usize, usize),
    /// Growth of the process's peak resident memory (KiB) during each list phase (the
    /// summaries phase runs first; peak growth cannot go down, so the second figure is
    /// what `docs=true` added on top).
    pub list_peak_rss_growth_kib: (u64, u64),
}

fn measure(n: u32, mut f: impl FnMut() -> Result<(), BenchError>) -> Result<Summary, BenchError> {
    for _ in 0..n.div_ceil(10) {
        f()?;
    }
    let mut s = Vec::with_capacity(n as usize);
    for _ in 0..n {
        let t = Instant::now();
        f()?;
        s.push(t.elapsed().as_nanos() as u64);
    }
    Ok(Summary::of(&s))
}

/// A writer that only counts bytes.
struct CountingSink<'a>(&'a mut u64);

impl std::io::Write for CountingSink<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        *self.0 += buf.len() as u64;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

fn expect(what: &str, got: (u16, Value), want: u16) -> Result<Value, BenchError> {
    if got.0 == want {
        Ok(got.1)
    } else {
        Err(BenchError::Measure(format!(
            "{what}: HTTP {} (wanted {want}): {}",
            got.0, got.1
        )))
    }
}

/// Run with `n` samples per latency figure.
pub fn run(n: u32) -> Result<EntitiesReport, BenchError> {
    let dir = std::env::temp_dir().join(format!(
        "ditto-bench-entities-{}-{}",
        std::process::id(),
        now_ms()
    ));
    let srv = LocalServer::start(ServeConfig {
        data_dir: dir.clone(),
        max_inflight: 100_000,
        ..ServeConfig::default()
    })
    .map_err(|e| BenchError::Measure(e.to_string()))?;
    let auth = srv
        .auth
        .clone()
        .ok_or_else(|| BenchError::Measure("no credentials".into()))?;
    let api = Api::new(&srv.base, &auth);
    let echo = "/whisk.system/utils/echo";
    let x = json!({"x": 1});
    let agent = ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(60))
        .build();
    let basic = format!(
        "Basic {}",
        base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &auth)
    );
    let echo_url = format!(
        "{}/api/v1/namespaces/whisk.system/actions/utils/echo?blocking=true",
        srv.base
    );
    let invoke_ns = measure(n, || {
        agent
            .post(&echo_url)
            .set("Authorization", &basic)
            .send_json(x.clone())
            .map(|_| ())
            .map_err(|e| BenchError::Measure(format!("invoke: {e}")))
    })?;
    expect(
        "sequence",
        api.send(
            "PUT",
            "/actions/seq3",
            &json!({"exec": {"kind": "sequence", "components": [echo, echo, echo]}}),
        )?,
        200,
    )?;
    let sequence3_ns = measure(n, || {
        expect("seq3", api.invoke("seq3", &x)?, 200).map(|_| ())
    })?;
    expect(
        "web",
        api.send(
            "PUT",
            "/actions/web1",
            &json!({"exec": {"kind": "sequence", "components": [echo]},
                    "annotations": [{"key": "web-export", "value": true}]}),
        )?,
        200,
    )?;
    let web_url = format!("{}/api/v1/web/guest/default/web1.json?x=1", srv.base);
    let web_ns = measure(n, || {
        agent
            .get(&web_url)
            .call()
            .map(|_| ())
            .map_err(|e| BenchError::Measure(format!("web: {e}")))
    })?;
    expect("trigger", api.send("PUT", "/triggers/t", &json!({}))?, 200)?;
    expect(
        "rule",
        api.send(
            "PUT",
            "/rules/r",
            &json!({"trigger": "/_/t", "action": echo}),
        )?,
        200,
    )?;
    let fire_ns = measure(n, || {
        expect("fire", api.send("POST", "/triggers/t", &x)?, 202).map(|_| ())
    })?;
    let get = |id: &str| -> Result<(u16, Value), BenchError> {
        let url = format!("{}/api/v1/namespaces/_/activations/{id}", srv.base);
        match agent.get(&url).set("Authorization", &basic).call() {
            Ok(r) => Ok((200, r.into_json().unwrap_or(Value::Null))),
            Err(ureq::Error::Status(s, _)) => Ok((s, Value::Null)),
            Err(e) => Err(BenchError::Measure(format!("poll: {e}"))),
        }
    };
    let fire_to_rule_activation_ns = measure(n, || {
        let v = expect("fire", api.send("POST", "/triggers/t", &x)?, 202)?;
        let id = v["activationId"].as_str().unwrap_or_default().to_string();
        let t0 = Instant::now();
        let trigger = loop {
            let (s, v) = get(&id)?;
            if s == 200 {
                break v;
            }
            if t0.elapsed() > Duration::from_secs(30) {
                return Err(BenchError::Measure("trigger activation missing".into()));
            }
        };
        let line: Value = trigger["logs"][0]
            .as_str()
            .and_then(|l| serde_json::from_str(l).ok())
            .unwrap_or(Value::Null);
        let rule_id = line["activationId"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        loop {
            if get(&rule_id)?.0 == 200 {
                return Ok(());
            }
            if t0.elapsed() > Duration::from_secs(30) {
                return Err(BenchError::Measure("rule activation missing".into()));
            }
        }
    })?;

    // 200 activations with ~1 MB results, written straight into the store.
    let big = "x".repeat(1 << 20);
    for i in 0..200 {
        let a = Activation {
            activation_id: new_activation_id(),
            namespace: "guest".into(),
            name: "big".into(),
            version: "0.0.1".into(),
            subject: "guest".into(),
            start: now_ms() + 10_000 + i,
            end: now_ms() + 10_001 + i,
            status_code: 0,
            result: json!({"pad": big}),
            logs: vec![],
            annotations: vec![],
        };
        srv.platform
            .store
            .put_activation(&a)
            .map_err(|e| BenchError::Measure(e.to_string()))?;
    }
    let list = |docs: bool| -> Result<usize, BenchError> {
        let url = format!(
            "{}/api/v1/namespaces/_/activations?limit=200&docs={docs}",
            srv.base
        );
        let r = agent
            .get(&url)
            .set("Authorization", &basic)
            .call()
            .map_err(|e| BenchError::Measure(format!("list: {e}")))?;
        let mut n = 0u64;
        std::io::copy(
            &mut r.into_reader().take(u64::MAX),
            &mut CountingSink(&mut n),
        )
        .map_err(|e| BenchError::Measure(format!("list body: {e}")))?;
        Ok(n as usize)
    };
    let reps = (n / 20).max(3);
    let rss0 = peak_rss_kib();
    let mut bytes = (0, 0);
    let list_summaries_ns = measure(reps, || {
        bytes.0 = list(false)?;
        Ok(())
    })?;
    let rss1 = peak_rss_kib();
    let list_docs_ns = measure(reps, || {
        bytes.1 = list(true)?;
        Ok(())
    })?;
    let rss2 = peak_rss_kib();
    srv.stop().map_err(|e| BenchError::Measure(e.to_string()))?;
    std::fs::remove_dir_all(&dir).ok();
    Ok(EntitiesReport {
        invoke_ns,
        sequence3_ns,
        web_ns,
        fire_ns,
        fire_to_rule_activation_ns,
        list_summaries_ns,
        list_docs_ns,
        list_bytes: bytes,
        list_peak_rss_growth_kib: (rss1.saturating_sub(rss0), rss2.saturating_sub(rss1)),
    })
}

impl EntitiesReport {
    /// The Markdown report.
    pub fn markdown(&self) -> String {
        let row = |name: &str, s: &Summary| {
            format!(
                "| {name} | {:.1} | {:.1} | {:.2}× |\n",
                s.p50 as f64 / 1e3,
                s.p99 as f64 / 1e3,
                s.p50 as f64 / self.invoke_ns.p50.max(1) as f64
            )
        };
        let mut md = String::from(
            "# ditto bench entities\n\nLoopback HTTP, platform-internal `whisk.system/utils/echo` (no VM).\n\n\
             | what | p50 µs | p99 µs | p50 vs invoke |\n|---|---|---|---|\n",
        );
        md += &row("blocking invoke of echo", &self.invoke_ns);
        md += &row("sequence of 3 echoes", &self.sequence3_ns);
        md += &row("web action (.json)", &self.web_ns);
        md += &row("trigger fire (202)", &self.fire_ns);
        md += &row(
            "fire → rule's activation readable",
            &self.fire_to_rule_activation_ns,
        );
        md += &format!(
            "\nListing 200 activations with ~1 MB results:\n\n| list | p50 ms | p99 ms | response bytes | server peak RSS growth |\n|---|---|---|---|---|\n\
             | summaries (default) | {:.1} | {:.1} | {} | {} KiB |\n| docs=true | {:.1} | {:.1} | {} | {} KiB |\n\
             \nRatio docs/summaries, p50: {:.0}×.\n",
            self.list_summaries_ns.p50 as f64 / 1e6,
            self.list_summaries_ns.p99 as f64 / 1e6,
            self.list_bytes.0,
            self.list_peak_rss_growth_kib.0,
            self.list_docs_ns.p50 as f64 / 1e6,
            self.list_docs_ns.p99 as f64 / 1e6,
            self.list_bytes.1,
            self.list_peak_rss_growth_kib.1,
            self.list_docs_ns.p50 as f64 / self.list_summaries_ns.p50.max(1) as f64,
        );
        md
    }
}
