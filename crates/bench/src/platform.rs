//! `ditto bench platform`: the platform over real HTTP on loopback, with the built-in load
//! generator (`ureq` clients on threads): warm no-op blocking invoke latency, sustained
//! invocations/s with 1, 2 and 4 workers (closed loop), and cold first-invoke latency.

use crate::micro::BenchError;
use crate::summary::Summary;
use base64::Engine as _;
use ditto_platform::config::ServeConfig;
use ditto_platform::local::LocalServer;
use indicatif::ProgressBar;
use serde::Serialize;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// Options.
#[derive(Clone, Debug)]
pub struct PlatformOptions {
    /// Warm latency samples.
    pub requests: u32,
    /// Seconds per throughput run.
    pub seconds: f64,
    /// Cold-start samples.
    pub cold: u32,
    /// Progress output.
    pub progress: bool,
    /// SQLite durability of the servers under test.
    pub durability: ditto_platform::store::Durability,
}

/// Results.
#[derive(Clone, Debug, Serialize)]
pub struct PlatformReport {
    /// SQLite durability setting of the run.
    pub durability: String,
    /// Warm no-op blocking invoke, one client, ns.
    pub warm_latency_ns: Summary,
    /// Warm no-op non-blocking invoke (time to the 202: admission + one journal commit),
    /// one client, ns.
    pub accept_latency_ns: Summary,
    /// Sustained no-op invocations/s, keyed by workers per VM.
    pub invocations_per_s: BTreeMap<u32, f64>,
    /// Client threads used for throughput.
    pub client_threads: u32,
    /// Latency under that load, keyed by workers, ns.
    pub loaded_latency_ns: BTreeMap<u32, Summary>,
    /// First invoke of a fresh action (VM start + module init + run), ns.
    pub cold_first_invoke_ns: Summary,
    /// The `initTime` annotation of those cold invocations, ns.
    pub cold_init_ns: Summary,
}

/// An HTTP client for one namespace.
#[derive(Clone)]
pub struct Api {
    agent: ureq::Agent,
    base: String,
    auth: String,
}

impl Api {
    /// A client for `base` with credentials `uuid:key`.
    pub fn new(base: &str, auth: &str) -> Api {
        Api {
            agent: ureq::AgentBuilder::new()
                .timeout(Duration::from_secs(120))
                .build(),
            base: format!("{base}/api/v1/namespaces/_"),
            auth: format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(auth)
            ),
        }
    }

    /// Send; returns status and JSON body.
    pub fn send(&self, method: &str, path: &str, body: &Value) -> Result<(u16, Value), BenchError> {
        let r = self
            .agent
            .request(method, &format!("{}{path}", self.base))
            .set("Authorization", &self.auth)
            .send_json(body.clone());
        let r = match r {
            Ok(r) | Err(ureq::Error::Status(_, r)) => r,
            Err(e) => return Err(BenchError::Measure(format!("HTTP: {e}"))),
        };
        let status = r.status();
        let v = r.into_json::<Value>().unwrap_or(Value::Null);
        Ok((status, v))
    }

    /// Create or replace an action from a module, with annotations.
    pub fn deploy(&self, name: &str, wasm: &[u8], annotations: Value) -> Result<(), BenchError> {
        let body = json!({"exec": {"kind": "wasm", "code": base64::engine::general_purpose::STANDARD.encode(wasm)}, "annotations": annotations});
        match self.send("PUT", &format!("/actions/{name}?overwrite=true"), &body)? {
            (200, _) => Ok(()),
            (s, v) => Err(BenchError::Measure(format!("deploy {name}: HTTP {s}: {v}"))),
        }
    }

    /// A blocking invoke; returns status and the activation.
    pub fn invoke(&self, name: &str, params: &Value) -> Result<(u16, Value), BenchError> {
        self.send("POST", &format!("/actions/{name}?blocking=true"), params)
    }
}

fn server(
    tweak: impl FnOnce(&mut ServeConfig),
) -> Result<(LocalServer, Api, std::path::PathBuf), BenchError> {
    let dir =
        std::env::temp_dir().join(format!("ditto-bench-{}-{}", std::process::id(), rand_tag()));
    let mut cfg = ServeConfig {
        data_dir: dir.clone(),
        ..ServeConfig::default()
    };
    tweak(&mut cfg);
    let s = LocalServer::start(cfg).map_err(|e| BenchError::Measure(e.to_string()))?;
    let auth = s
        .auth
        .clone()
        .ok_or_else(|| BenchError::Measure("no credentials".into()))?;
    let api = Api::new(&s.base, &auth);
    Ok((s, api, dir))
}

fn rand_tag() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

fn noop() -> Result<&'static [u8], BenchError> {
    ditto_catalog::get("noop")
        .map(|f| f.wasm)
        .ok_or_else(|| BenchError::Measure("noop missing".into()))
}

fn annotation(act: &Value, key: &str) -> Option<u64> {
    act["annotations"]
        .as_array()?
        .iter()
        .find(|kv| kv["key"] == key)?["value"]
        .as_u64()
}

/// Run the platform benchmarks.
pub fn run(opts: &PlatformOptions) -> Result<PlatformReport, BenchError> {
    let bar = if opts.progress {
        ProgressBar::new_spinner()
    } else {
        ProgressBar::hidden()
    };
    // Warm latency: one client, sequential blocking invokes.
    bar.set_message("warm latency");
    let durability = opts.durability;
    let (srv, api, dir) = server(|c| c.durability = durability)?;
    api.deploy("noop", noop()?, json!([]))?;
    api.invoke("noop", &json!({}))?;
    let mut warm = Vec::new();
    for _ in 0..opts.requests {
        let t = Instant::now();
        let (s, _) = api.invoke("noop", &json!({}))?;
        warm.push(t.elapsed().as_nanos() as u64);
        if s != 200 {
            return Err(BenchError::Measure(format!("warm invoke: HTTP {s}")));
        }
        bar.tick();
    }
    // Non-blocking: time to the 202.
    let mut accept = Vec::new();
    for _ in 0..opts.requests {
        let t = Instant::now();
        let (s, _) = api.send("POST", "/actions/noop", &json!({}))?;
        accept.push(t.elapsed().as_nanos() as u64);
        if s != 202 {
            return Err(BenchError::Measure(format!(
                "non-blocking invoke: HTTP {s}"
            )));
        }
    }
    // Cold: a fresh action per sample (each starts its own VM).
    bar.set_message("cold starts");
    let (mut cold, mut init) = (Vec::new(), Vec::new());
    for i in 0..opts.cold {
        let name = format!("cold{i}");
        api.deploy(&name, noop()?, json!([]))?;
        let t = Instant::now();
        let (s, act) = api.invoke(&name, &json!({}))?;
        cold.push(t.elapsed().as_nanos() as u64);
        if s != 200 {
            return Err(BenchError::Measure(format!("cold invoke: HTTP {s}: {act}")));
        }
        init.push(annotation(&act, "initTime").unwrap_or(0) * 1_000_000);
        bar.tick();
    }
    drop(srv);
    let _ = std::fs::remove_dir_all(&dir);

    // Throughput: one VM with k workers, all awake (fixed policy), closed loop.
    let threads = 8u32;
    let mut rates = BTreeMap::new();
    let mut loaded = BTreeMap::new();
    for k in [1u32, 2, 4] {
        bar.set_message(format!("throughput, {k} workers"));
        let (srv, api, dir) = server(|c| {
            c.durability = durability;
            c.pool.workers = k;
            c.pool.initial_active = k;
            c.pool.max_vms_per_action = 1;
        })?;
        api.deploy(
            "noop",
            noop()?,
            json!([{"key": "policy", "value": "fixed"}]),
        )?;
        api.invoke("noop", &json!({}))?;
        let deadline = Instant::now() + Duration::from_secs_f64(opts.seconds);
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                let api = api.clone();
                std::thread::spawn(move || -> Result<Vec<u64>, BenchError> {
                    let mut lat = Vec::new();
                    while Instant::now() < deadline {
                        let t = Instant::now();
                        let (s, _) = api.invoke("noop", &json!({}))?;
                        if s == 200 {
                            lat.push(t.elapsed().as_nanos() as u64);
                        }
                    }
                    Ok(lat)
                })
            })
            .collect();
        let t0 = Instant::now();
        let mut all = Vec::new();
        for h in handles {
            all.extend(
                h.join()
                    .map_err(|_| BenchError::Measure("client thread panicked".into()))??,
            );
        }
        let secs = t0.elapsed().as_secs_f64();
        rates.insert(k, all.len() as f64 / secs);
        loaded.insert(k, Summary::of(&all));
        drop(srv);
        let _ = std::fs::remove_dir_all(&dir);
    }
    bar.finish_and_clear();
    Ok(PlatformReport {
        durability: format!("{durability:?}").to_lowercase(),
        warm_latency_ns: Summary::of(&warm),
        accept_latency_ns: Summary::of(&accept),
        invocations_per_s: rates,
        client_threads: threads,
        loaded_latency_ns: loaded,
        cold_first_invoke_ns: Summary::of(&cold),
        cold_init_ns: Summary::of(&init),
    })
}

impl PlatformReport {
    /// Markdown.
    pub fn markdown(&self) -> String {
        let ms = |s: &Summary| format!("{:.3} | {:.3}", s.p50 as f64 / 1e6, s.p99 as f64 / 1e6);
        let mut m = String::from(
            "# ditto bench platform\n\n| measure | p50 ms | p99 ms |\n|---|---|---|\n",
        );
        m = m.replace(
            "# ditto bench platform\n",
            &format!(
                "# ditto bench platform\n\nSQLite durability: {}.\n",
                self.durability
            ),
        );
        m += &format!(
            "| warm no-op blocking invoke (1 client, {} samples) | {} |\n",
            self.warm_latency_ns.n,
            ms(&self.warm_latency_ns)
        );
        m += &format!(
            "| warm no-op non-blocking invoke, time to 202 (1 client) | {} |\n",
            ms(&self.accept_latency_ns)
        );
        m += &format!(
            "| cold first invoke (VM start + init + run, {} samples) | {} |\n",
            self.cold_first_invoke_ns.n,
            ms(&self.cold_first_invoke_ns)
        );
        m += &format!("| its initTime annotation | {} |\n", ms(&self.cold_init_ns));
        m += &format!("\n| workers | no-op invocations/s ({} client threads) | latency p50 ms | p99 ms |\n|---|---|---|---|\n", self.client_threads);
        for (k, r) in &self.invocations_per_s {
            let l = self.loaded_latency_ns.get(k).copied().unwrap_or_default();
            m += &format!("| {k} | {r:.0} | {} |\n", ms(&l));
        }
        m
    }
}
