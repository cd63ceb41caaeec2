//! `ditto bench fair`: a second tenant's latency while the first floods, as a ratio to an
//! idle host, in one run on an in-process platform over real HTTP.
//!
//! Tenant B invokes a warm echo action (blocking, one client, sequential) first on an idle
//! host, then while tenant A floods non-blocking invocations of a CPU-bound function
//! (`spin`, 1 s each by default) from several threads, which is what used to starve every
//! other namespace (429 for minutes).

use crate::micro::BenchError;
use crate::platform::Api;
use crate::summary::Summary;
use ditto_platform::config::ServeConfig;
use ditto_platform::local::LocalServer;
use serde::Serialize;
use serde_json::json;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Options.
#[derive(Clone, Debug)]
pub struct FairOptions {
    /// Tenant B's samples per phase.
    pub samples: u32,
    /// Length of each flooding invocation, ms.
    pub flood_ms: u64,
    /// Flooding client threads.
    pub flood_threads: u32,
}

/// Results.
#[derive(Clone, Debug, Serialize)]
pub struct FairReport {
    /// Tenant B on an idle host, ns.
    pub idle_ns: Summary,
    /// Tenant B while A floods, ns.
    pub flooded_ns: Summary,
    /// flooded p50 / idle p50.
    pub p50_ratio: f64,
    /// flooded p99 / idle p99.
    pub p99_ratio: f64,
    /// Tenant B's requests that were not answered 200 while A flooded.
    pub b_failures: u64,
    /// A's requests accepted (202) and refused (429) during the flood.
    pub a_accepted: u64,
    /// A's refusals.
    pub a_refused: u64,
}

fn measure(e: impl std::fmt::Display) -> BenchError {
    BenchError::Measure(e.to_string())
}

fn sample(b: &Api, n: u32, fails: &mut u64) -> Result<Vec<u64>, BenchError> {
    let mut v = Vec::with_capacity(n as usize);
    for i in 0..n {
        let t = Instant::now();
        let (s, _) = b.invoke("echo", &json!({ "i": i }))?;
        v.push(t.elapsed().as_nanos() as u64);
        if s != 200 {
            *fails += 1;
        }
    }
    Ok(v)
}

/// Run it.
pub fn run(o: &FairOptions) -> Result<FairReport, BenchError> {
    let dir = std::env::temp_dir().join(format!(
        "ditto-bench-fair-{}-{}",
        std::process::id(),
        rand::random::<u32>()
    ));
    let srv = LocalServer::start(ServeConfig {
        data_dir: dir.clone(),
        ..ServeConfig::default()
    })
    .map_err(measure)?;
    let a = Api::new(
        &srv.base,
        srv.auth.as_deref().ok_or_else(|| measure("no key"))?,
    );
    let b_cred = srv.platform.store.create_user("b", "b").map_err(measure)?;
    let b = Api::new(&srv.base, &b_cred.auth());
    let wasm = |n: &str| {
        ditto_catalog::get(n)
            .map(|f| f.wasm)
            .ok_or_else(|| measure(format!("{n} missing")))
    };
    a.deploy("spin", wasm("spin")?, json!([]))?;
    b.deploy("echo", wasm("echo")?, json!([]))?;
    let mut fails = 0;
    sample(&b, 20, &mut fails)?; // warm up
    let idle = sample(&b, o.samples, &mut fails)?;
    fails = 0;
    let stop = Arc::new(AtomicBool::new(false));
    let (acc, refd) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let flood: Vec<_> = (0..o.flood_threads)
        .map(|_| {
            let (a, stop, acc, refd) = (a.clone(), stop.clone(), acc.clone(), refd.clone());
            let ms = o.flood_ms;
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    match a.send("POST", "/actions/spin", &json!({ "ms": ms })) {
                        Ok((202, _)) => acc.fetch_add(1, Ordering::Relaxed),
                        Ok(_) => {
                            std::thread::sleep(Duration::from_millis(5));
                            refd.fetch_add(1, Ordering::Relaxed)
                        }
                        Err(_) => break,
                    };
                }
            })
        })
        .collect();
    // Let the flood fill its share first.
    std::thread::sleep(Duration::from_secs(3));
    let flooded = sample(&b, o.samples, &mut fails);
    stop.store(true, Ordering::Relaxed);
    for t in flood {
        let _ = t.join();
    }
    let flooded = flooded?;
    // Stopping drains what A has running; queued work stays journaled and is discarded
    // with the temporary directory.
    drop(srv);
    let _ = std::fs::remove_dir_all(&dir);
    let (idle_ns, flooded_ns) = (Summary::of(&idle), Summary::of(&flooded));
    Ok(FairReport {
        p50_ratio: flooded_ns.p50 as f64 / idle_ns.p50.max(1) as f64,
        p99_ratio: flooded_ns.p99 as f64 / idle_ns.p99.max(1) as f64,
        idle_ns,
        flooded_ns,
        b_failures: fails,
        a_accepted: acc.load(Ordering::Relaxed),
        a_refused: refd.load(Ordering::Relaxed),
    })
}

impl FairReport {
    /// Markdown table.
    pub fn markdown(&self, o: &FairOptions) -> String {
        let ms = |ns: u64| ns as f64 / 1e6;
        format!(
            "# ditto bench fair\n\nTenant B: warm blocking echo, one client; tenant A: {} threads flooding \
             non-blocking `spin` of {} ms.\n\n| tenant B | p50 ms | p99 ms |\n|---|---|---|\n\
             | idle host | {:.3} | {:.3} |\n| while A floods | {:.3} | {:.3} |\n| ratio | {:.2}× | {:.2}× |\n\n\
             B's failures while A flooded: {}. A: {} accepted, {} refused (429).\n",
            o.flood_threads,
            o.flood_ms,
            ms(self.idle_ns.p50),
            ms(self.idle_ns.p99),
            ms(self.flooded_ns.p50),
            ms(self.flooded_ns.p99),
            self.p50_ratio,
            self.p99_ratio,
            self.b_failures,
            self.a_accepted,
            self.a_refused
        )
    }
}
