//! `ditto bench soak`: sustained mixed load against a real `ditto serve` process.
//!
//! Two tenants (the second made with `ditto admin user create`): tenant A sends a mix of good
//! functions (echo, fib, spin) and hostile ones (traps, stack exhaustion, oversized output,
//! an endless loop cut by a 300 ms limit); tenant B sends good functions only. A short
//! closed-loop calibration measures the mix's capacity; the soak then offers ~80% of it
//! open-loop (Poisson arrivals), 70% blocking (latency measured per tenant) and 30%
//! non-blocking (each id must end with an activation: anything missing is *lost*). Every
//! second it samples the server's RSS (`/proc/PID/status`) and open descriptors
//! (`/proc/PID/fd`). Output: Markdown + JSON + an SVG plot of RSS and fds over time.

use crate::micro::BenchError;
use crate::platform::Api;
use crate::summary::Summary;
use plotters::prelude::*;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Options.
#[derive(Clone, Debug)]
pub struct SoakOptions {
    /// The `ditto` binary to run as the server.
    pub ditto: PathBuf,
    /// Soak length, minutes.
    pub minutes: f64,
    /// Fraction of the measured capacity to offer.
    pub load: f64,
    /// Client threads.
    pub threads: usize,
    /// Seed of the arrival process and the mix.
    pub seed: u64,
}

/// One resource sample of the server process.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct Sample {
    /// Seconds since the soak began.
    pub t_s: f64,
    /// Resident set size, KiB.
    pub rss_kib: u64,
    /// Open file descriptors.
    pub fds: u64,
}

/// Results.
#[derive(Clone, Debug, Serialize)]
pub struct SoakReport {
    /// Soak length, s.
    pub seconds: f64,
    /// Calibrated capacity of the mix, invocations/s.
    pub capacity_per_s: f64,
    /// Offered rate, invocations/s.
    pub offered_per_s: f64,
    /// Requests sent per tenant.
    pub sent: BTreeMap<String, u64>,
    /// HTTP statuses seen per tenant.
    pub statuses: BTreeMap<String, BTreeMap<u16, u64>>,
    /// Blocking latency per tenant (successful, i.e. 200 and 502), ns.
    pub latency_ns: BTreeMap<String, Summary>,
    /// Non-blocking invocations accepted (202).
    pub accepted_async: u64,
    /// Of those, ids with no activation 60 s after the soak.
    pub lost: u64,
    /// RSS and fds over time.
    pub samples: Vec<Sample>,
    /// RSS after the first 10% of the soak, KiB (the baseline of the drift).
    pub rss_baseline_kib: u64,
    /// RSS at the end, KiB.
    pub rss_end_kib: u64,
    /// Largest RSS, KiB.
    pub rss_max_kib: u64,
    /// Open fds: (min, max, end).
    pub fds: (u64, u64, u64),
}

const MIX_A: &[(&str, &str, f64)] = &[
    ("echo", r#"{"hello":"soak"}"#, 0.25),
    ("fib", r#"{"n":20}"#, 0.2),
    ("spin", r#"{"ms":5}"#, 0.2),
    ("trap_unreachable", "{}", 0.1),
    ("trap_stack", "{}", 0.08),
    ("big_output", "{}", 0.07),
    ("loop_forever", "{}", 0.05),
    ("not_dict", "{}", 0.05),
];
const MIX_B: &[(&str, &str, f64)] = &[
    ("echo", r#"{"hello":"b"}"#, 0.5),
    ("fib", r#"{"n":20}"#, 0.3),
    ("spin", r#"{"ms":5}"#, 0.2),
];

struct Server {
    child: Child,
    base: String,
    dir: PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs(30) {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn measure(e: impl std::fmt::Display) -> BenchError {
    BenchError::Measure(e.to_string())
}

fn start_server(ditto: &Path) -> Result<(Server, String, String), BenchError> {
    let dir = std::env::temp_dir().join(format!(
        "ditto-soak-{}-{}",
        std::process::id(),
        rand::random::<u32>()
    ));
    let mut child = Command::new(ditto)
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| measure(format!("cannot run {}: {e}", ditto.display())))?;
    let out = child.stdout.take().ok_or_else(|| measure("no stdout"))?;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
            if let Some(rest) = line.split("OpenWhisk API on ").nth(1) {
                let _ = tx.send(rest.split_whitespace().next().unwrap_or("").to_string());
            }
        }
    });
    let base = rx
        .recv_timeout(Duration::from_secs(60))
        .map_err(|_| measure("ditto serve did not start"))?;
    let server = Server { child, base, dir };
    let props = std::fs::read_to_string(server.dir.join("wskprops")).map_err(measure)?;
    let a = props
        .lines()
        .find_map(|l| l.strip_prefix("AUTH="))
        .ok_or_else(|| measure("no AUTH in wskprops"))?
        .to_string();
    let out = Command::new(ditto)
        .args(["admin", "user", "create", "bob", "--data-dir"])
        .arg(&server.dir)
        .output()
        .map_err(measure)?;
    if !out.status.success() {
        return Err(measure(format!(
            "ditto admin user create failed: {}",
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    let b = String::from_utf8_lossy(&out.stdout).trim().to_string();
    Ok((server, a, b))
}

fn deploy(api: &Api, mix: &[(&str, &str, f64)]) -> Result<(), BenchError> {
    for (name, _, _) in mix {
        let f = ditto_catalog::get(name).ok_or_else(|| measure(format!("{name} missing")))?;
        let code = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, f.wasm);
        let body = json!({"exec": {"kind": "wasm", "code": code}, "limits": {"timeout": 300}});
        match api.send("PUT", &format!("/actions/{name}?overwrite=true"), &body)? {
            (200, _) => {}
            (s, v) => return Err(measure(format!("deploy {name}: HTTP {s}: {v}"))),
        }
    }
    Ok(())
}

fn pick<'a>(mix: &'a [(&'a str, &'a str, f64)], x: f64) -> (&'a str, &'a str) {
    let mut acc = 0.0;
    for (n, p, w) in mix {
        acc += w;
        if x < acc {
            return (n, p);
        }
    }
    (mix[0].0, mix[0].1)
}

fn sample(pid: u32) -> (u64, u64) {
    let rss = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
        })
        .unwrap_or(0);
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count() as u64)
        .unwrap_or(0);
    (rss, fds)
}

struct Job {
    tenant: usize,
    name: &'static str,
    params: &'static str,
    blocking: bool,
}

#[derive(Default)]
struct Tally {
    sent: [u64; 2],
    statuses: [BTreeMap<u16, u64>; 2],
    latency: [Vec<u64>; 2],
    ids: Vec<(usize, String)>,
}

/// Run the soak.
pub fn run(o: &SoakOptions) -> Result<SoakReport, BenchError> {
    let (server, auth_a, auth_b) = start_server(&o.ditto)?;
    let apis = [
        Api::new(&server.base, &auth_a),
        Api::new(&server.base, &auth_b),
    ];
    deploy(&apis[0], MIX_A)?;
    deploy(&apis[1], MIX_B)?;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(o.seed);
    // Calibration: closed loop, blocking, the whole mix, 5 s.
    let calib = Duration::from_secs(5);
    let done = Arc::new(Mutex::new(0u64));
    let t0 = Instant::now();
    std::thread::scope(|s| {
        for i in 0..o.threads {
            let (apis, done) = (&apis, done.clone());
            let mut r = rand_chacha::ChaCha8Rng::seed_from_u64(o.seed ^ (i as u64 + 1));
            s.spawn(move || {
                while t0.elapsed() < calib {
                    let tenant = usize::from(r.gen_bool(0.3));
                    let mix = if tenant == 0 { MIX_A } else { MIX_B };
                    let (name, params) = pick(mix, r.gen());
                    let body: Value = serde_json::from_str(params).unwrap_or(json!({}));
                    if apis[tenant].invoke(name, &body).is_ok() {
                        *done.lock().unwrap_or_else(|e| e.into_inner()) += 1;
                    }
                }
            });
        }
    });
    let capacity = *done.lock().unwrap_or_else(|e| e.into_inner()) as f64 / calib.as_secs_f64();
    let rate = (capacity * o.load).max(1.0);
    // The soak: a scheduler thread paces Poisson arrivals into a queue the clients drain.
    let length = Duration::from_secs_f64(o.minutes * 60.0);
    let (tx, rx) = std::sync::mpsc::sync_channel::<Job>(10_000);
    let rx = Arc::new(Mutex::new(rx));
    let tally = Arc::new(Mutex::new(Tally::default()));
    let samples = Arc::new(Mutex::new(Vec::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let pid = server.child.id();
    let start = Instant::now();
    std::thread::scope(|s| {
        {
            let (samples, stop) = (samples.clone(), stop.clone());
            s.spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let (rss_kib, fds) = sample(pid);
                    samples
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push(Sample {
                            t_s: start.elapsed().as_secs_f64(),
                            rss_kib,
                            fds,
                        });
                    std::thread::sleep(Duration::from_secs(1));
                }
            });
        }
        for _ in 0..o.threads {
            let (rx, tally, apis) = (rx.clone(), tally.clone(), &apis);
            s.spawn(move || loop {
                let job = match rx.lock().unwrap_or_else(|e| e.into_inner()).recv() {
                    Ok(j) => j,
                    Err(_) => return,
                };
                let body: Value = serde_json::from_str(job.params).unwrap_or(json!({}));
                let t = Instant::now();
                let path = format!(
                    "/actions/{}?blocking={}&timeout=30000",
                    job.name, job.blocking
                );
                let r = apis[job.tenant].send("POST", &path, &body);
                let ns = t.elapsed().as_nanos() as u64;
                let mut g = tally.lock().unwrap_or_else(|e| e.into_inner());
                g.sent[job.tenant] += 1;
                let status = r.as_ref().map(|(s, _)| *s).unwrap_or(0);
                *g.statuses[job.tenant].entry(status).or_default() += 1;
                match (&r, job.blocking) {
                    (Ok((200 | 502, _)), true) => g.latency[job.tenant].push(ns),
                    (Ok((202, v)), false) => {
                        if let Some(id) = v["activationId"].as_str() {
                            g.ids.push((job.tenant, id.to_string()));
                        }
                    }
                    _ => {}
                }
            });
        }
        let mut next = Instant::now();
        while start.elapsed() < length {
            let gap = -(1.0 - rng.gen::<f64>()).ln() / rate;
            next += Duration::from_secs_f64(gap);
            if let Some(d) = next.checked_duration_since(Instant::now()) {
                std::thread::sleep(d);
            }
            let tenant = usize::from(rng.gen_bool(0.3));
            let mix = if tenant == 0 { MIX_A } else { MIX_B };
            let (name, params) = pick(mix, rng.gen());
            let job = Job {
                tenant,
                name,
                params,
                blocking: rng.gen_bool(0.7),
            };
            // A full queue means the clients fell behind: drop (counted as not sent).
            let _ = tx.try_send(job);
        }
        drop(tx);
        // Clients drain the queue and exit; then stop sampling.
        while Arc::strong_count(&rx) > 1 {
            std::thread::sleep(Duration::from_millis(20));
        }
        stop.store(true, Ordering::Relaxed);
    });
    let seconds = start.elapsed().as_secs_f64();
    let tally = std::mem::take(&mut *tally.lock().unwrap_or_else(|e| e.into_inner()));
    // Every accepted id must end with an activation.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut lost = 0;
    for (tenant, id) in &tally.ids {
        let found = loop {
            let a = apis[*tenant].send("GET", &format!("/activations/{id}"), &Value::Null);
            if matches!(a, Ok((200, _))) {
                break true;
            }
            if Instant::now() > deadline {
                break false;
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        lost += u64::from(!found);
    }
    drop(server);
    let samples = std::mem::take(&mut *samples.lock().unwrap_or_else(|e| e.into_inner()));
    let base_at = seconds * 0.1;
    let rss_baseline_kib = samples
        .iter()
        .find(|s| s.t_s >= base_at)
        .or(samples.first())
        .map_or(0, |s| s.rss_kib);
    let names = ["a", "b"];
    Ok(SoakReport {
        seconds,
        capacity_per_s: capacity,
        offered_per_s: rate,
        sent: names
            .iter()
            .zip(tally.sent)
            .map(|(n, v)| (n.to_string(), v))
            .collect(),
        statuses: names
            .iter()
            .zip(tally.statuses.iter())
            .map(|(n, v)| (n.to_string(), v.clone()))
            .collect(),
        latency_ns: names
            .iter()
            .zip(tally.latency.iter())
            .map(|(n, v)| (n.to_string(), Summary::of(v)))
            .collect(),
        accepted_async: tally.ids.len() as u64,
        lost,
        rss_baseline_kib,
        rss_end_kib: samples.last().map_or(0, |s| s.rss_kib),
        rss_max_kib: samples.iter().map(|s| s.rss_kib).max().unwrap_or(0),
        fds: (
            samples.iter().map(|s| s.fds).min().unwrap_or(0),
            samples.iter().map(|s| s.fds).max().unwrap_or(0),
            samples.last().map_or(0, |s| s.fds),
        ),
        samples,
    })
}

impl SoakReport {
    /// The Markdown report (`plot` is the SVG's file name beside it).
    pub fn markdown(&self, plot: &str) -> String {
        let ms = |ns: u64| ns as f64 / 1e6;
        let mut s = format!(
            "# ditto bench soak\n\n{:.0} s of mixed load (tenant a: good and hostile functions; tenant b: good \
             only) against a `ditto serve` process, offered {:.1} inv/s = {:.0}% of the calibrated {:.1} inv/s.\n\n\
             | tenant | sent | blocking p50 | p99 | statuses |\n|---|---|---|---|---|\n",
            self.seconds,
            self.offered_per_s,
            100.0 * self.offered_per_s / self.capacity_per_s.max(1e-9),
            self.capacity_per_s
        );
        for (t, l) in &self.latency_ns {
            s += &format!(
                "| {t} | {} | {:.2} ms | {:.2} ms | {:?} |\n",
                self.sent.get(t).copied().unwrap_or(0),
                ms(l.p50),
                ms(l.p99),
                self.statuses.get(t).cloned().unwrap_or_default()
            );
        }
        s += &format!(
            "\nNon-blocking invocations accepted: {}; lost (no activation 60 s later): **{}**.\n\n\
             Server RSS: {:.1} MiB after 10% of the run, {:.1} MiB at the end (drift {:+.1} MiB), max {:.1} MiB. \
             Open fds: min {}, max {}, end {}.\n\n![RSS and fds]({plot})\n",
            self.accepted_async,
            self.lost,
            self.rss_baseline_kib as f64 / 1024.0,
            self.rss_end_kib as f64 / 1024.0,
            (self.rss_end_kib as f64 - self.rss_baseline_kib as f64) / 1024.0,
            self.rss_max_kib as f64 / 1024.0,
            self.fds.0,
            self.fds.1,
            self.fds.2
        );
        s
    }

    /// Plot RSS (MiB) and open fds over time.
    pub fn plot(&self, path: &Path) -> std::io::Result<()> {
        let err = |e: &dyn std::fmt::Display| std::io::Error::other(e.to_string());
        let root = SVGBackend::new(path, (900, 480)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| err(&e))?;
        let t_max = self.samples.last().map_or(1.0, |s| s.t_s).max(1.0);
        let rss_max = self.rss_max_kib as f64 / 1024.0 * 1.2 + 1.0;
        let fd_max = self.fds.1 as f64 * 1.2 + 1.0;
        let mut chart = ChartBuilder::on(&root)
            .caption(
                "Server RSS and open fds during the soak",
                ("sans-serif", 22),
            )
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .right_y_label_area_size(60)
            .build_cartesian_2d(0f64..t_max, 0f64..rss_max)
            .map_err(|e| err(&e))?
            .set_secondary_coord(0f64..t_max, 0f64..fd_max);
        chart
            .configure_mesh()
            .x_desc("time (s)")
            .y_desc("RSS (MiB)")
            .draw()
            .map_err(|e| err(&e))?;
        chart
            .configure_secondary_axes()
            .y_desc("open fds")
            .draw()
            .map_err(|e| err(&e))?;
        chart
            .draw_series(LineSeries::new(
                self.samples
                    .iter()
                    .map(|s| (s.t_s, s.rss_kib as f64 / 1024.0)),
                RED.stroke_width(2),
            ))
            .map_err(|e| err(&e))?
            .label("RSS (MiB)")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], RED.stroke_width(2)));
        chart
            .draw_secondary_series(LineSeries::new(
                self.samples.iter().map(|s| (s.t_s, s.fds as f64)),
                BLUE.stroke_width(2),
            ))
            .map_err(|e| err(&e))?
            .label("open fds")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], BLUE.stroke_width(2)));
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .position(SeriesLabelPosition::LowerRight)
            .draw()
            .map_err(|e| err(&e))?;
        root.present().map_err(|e| err(&e))
    }
}
