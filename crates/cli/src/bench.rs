//! `ditto bench ...`: benchmarks that print medians and p99 and write a report file.

use anyhow::Result;
use clap::{Args, Subcommand};
use ditto_bench::micro::{self, MicroOptions};
use std::path::PathBuf;
use std::process::ExitCode;

/// `ditto bench ...`
#[derive(Subcommand)]
pub enum BenchCommand {
    /// Micro-benchmarks of the elastic VM: doorbell exit round trip, worker wake latency,
    /// cold start (1+4 vCPUs, 64 MiB), no-op dispatch throughput with 1/2/4 active
    /// workers, and the CPU a sleeping worker uses in 1 s.
    Micro(MicroArgs),
    /// Every catalog function in the guest against the same Rust code native on the host:
    /// medians of run time, their ratio, instantiation, warm and cold invocation latency.
    Functions(FunctionsArgs),
    /// The platform over real HTTP on loopback: warm no-op invoke latency, sustained
    /// invocations/s with 1, 2 and 4 workers, cold first-invoke latency.
    Platform(PlatformArgs),
    /// The rest of OpenWhisk on the platform: invoke vs sequence, web action, trigger fire
    /// to rule activation, and activation list summaries vs docs=true.
    Entities(EntitiesArgs),
    /// Reproduce the paper's claim on real VMs: one trace replayed open-loop against
    /// ditto, ditto-fast, fixed-peak, fixed-mean and scale-out; writes a Markdown report,
    /// SVG plots and raw JSON.
    Elastic(ElasticArgs),
    /// Sustained mixed load (good and hostile functions, two tenants) at ~80% of the
    /// calibrated capacity against a `ditto serve` process: RSS and open fds over time
    /// (SVG plot), lost invocations, latency per tenant.
    Soak(SoakArgs),
    /// A second tenant's warm latency while the first floods non-blocking CPU-bound
    /// invocations, as a ratio to an idle host (fair share of running slots and vCPUs).
    Fair(FairArgs),
}

/// Arguments of `ditto bench fair`.
#[derive(Args)]
pub struct FairArgs {
    /// Tenant B's samples per phase.
    #[arg(long, default_value_t = 300)]
    samples: u32,
    /// Length of each flooding invocation, ms.
    #[arg(long, default_value_t = 1000)]
    flood_ms: u64,
    /// Flooding client threads.
    #[arg(long, default_value_t = 4)]
    flood_threads: u32,
    /// Directory for the report files.
    #[arg(long, default_value = "reports")]
    out: PathBuf,
}

/// Arguments of `ditto bench soak`.
#[derive(Args)]
pub struct SoakArgs {
    /// Length of the soak, minutes.
    #[arg(long, default_value_t = 10.0)]
    minutes: f64,
    /// Fraction of the calibrated capacity to offer.
    #[arg(long, default_value_t = 0.8)]
    load: f64,
    /// Client threads.
    #[arg(long, default_value_t = 16)]
    threads: usize,
    /// Seed of the arrivals and the mix.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Directory for the report (a subdirectory per run).
    #[arg(long, default_value = "reports")]
    out: PathBuf,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

/// Arguments of `ditto bench elastic`.
#[derive(Args)]
pub struct ElasticArgs {
    /// The short suite (about a minute) instead of the default (about eight).
    #[arg(long)]
    quick: bool,
    /// Trace spec (see `ditto sim --help`), e.g. onoff:on=4s,off=8s,rate=400/s,base=10/s,duration=60s.
    #[arg(long)]
    trace: Option<String>,
    /// Catalog function to invoke.
    #[arg(long)]
    function: Option<String>,
    /// Its JSON parameters.
    #[arg(long)]
    params: Option<String>,
    /// Trace seed.
    #[arg(long)]
    seed: Option<u64>,
    /// Latency SLO in ms.
    #[arg(long)]
    slo_ms: Option<f64>,
    /// Modelled confidential-VM launch + attestation delay added to each scale-out VM
    /// start, ms (off by default; labelled in the report when used).
    #[arg(long, default_value_t = 0)]
    launch_delay_ms: u64,
    /// Configurations to run (comma-separated).
    #[arg(long, value_delimiter = ',')]
    configs: Option<Vec<String>>,
    /// Directory for the report (a subdirectory per run).
    #[arg(long, default_value = "reports")]
    out: PathBuf,
    /// Print the summary table as JSON.
    #[arg(long)]
    json: bool,
}

/// Arguments of `ditto bench platform`.
#[derive(Args)]
pub struct PlatformArgs {
    /// Warm latency samples.
    #[arg(long, default_value_t = 2000)]
    requests: u32,
    /// Seconds per throughput run.
    #[arg(long, default_value_t = 5.0)]
    seconds: f64,
    /// Cold-start samples (each deploys a fresh action).
    #[arg(long, default_value_t = 30)]
    cold: u32,
    /// SQLite durability of the servers under test ("full" or "normal").
    #[arg(long, default_value = "normal")]
    durability: ditto_platform::store::Durability,
    /// Directory for the report files.
    #[arg(long, default_value = "reports")]
    out: PathBuf,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// Arguments of `ditto bench entities`.
#[derive(Args)]
pub struct EntitiesArgs {
    /// Samples per latency figure.
    #[arg(long, default_value_t = 300)]
    samples: u32,
    /// Directory for the report files.
    #[arg(long, default_value = "reports")]
    out: PathBuf,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// Arguments of `ditto bench functions`.
#[derive(Args)]
pub struct FunctionsArgs {
    /// Measured runs per function and side.
    #[arg(long, default_value_t = 20)]
    runs: u32,
    /// Directory for the report files (JSON + Markdown).
    #[arg(long, default_value = "reports")]
    out: PathBuf,
    /// Print the results as JSON.
    #[arg(long)]
    json: bool,
}

/// Arguments of `ditto bench micro`.
#[derive(Args)]
pub struct MicroArgs {
    /// Samples per latency benchmark.
    #[arg(long, default_value_t = 1000)]
    samples: u32,
    /// No-op tasks per throughput run.
    #[arg(long, default_value_t = 20_000)]
    dispatch_tasks: u32,
    /// Directory for the report files (JSON + Markdown).
    #[arg(long, default_value = "reports")]
    out: PathBuf,
    /// Print the results as one JSON object.
    #[arg(long)]
    json: bool,
}

/// Run a `ditto bench` command.
pub fn run(cmd: BenchCommand) -> Result<ExitCode> {
    match cmd {
        BenchCommand::Elastic(a) => {
            let mut o = if a.quick {
                ditto_bench::elastic::ElasticOptions::quick()
            } else {
                ditto_bench::elastic::ElasticOptions::default_suite()
            };
            if let Some(t) = a.trace {
                o.trace = t;
            }
            if let Some(f) = a.function {
                o.function = f;
            }
            if let Some(p) = a.params {
                o.params = serde_json::from_str(&p)
                    .map_err(|e| anyhow::anyhow!("--params is not JSON: {e}"))?;
            }
            if let Some(s) = a.seed {
                o.seed = s;
            }
            if let Some(s) = a.slo_ms {
                o.slo_ms = s;
            }
            if let Some(c) = a.configs {
                o.configs = c;
            }
            o.launch_delay_ms = a.launch_delay_ms;
            o.progress = !a.json;
            let (dir, report) = elastic(&o, &a.out)?;
            if a.json {
                let rows: Vec<serde_json::Value> = report
                    .configs
                    .iter()
                    .map(|c| {
                        serde_json::json!({
                            "name": c.name, "p50_ms": c.p50_ms, "p90_ms": c.p90_ms, "p99_ms": c.p99_ms, "max_ms": c.max_ms,
                            "reserved_vcpu_s": c.reserved_vcpu_s, "host_cpu_s": c.host_cpu_s, "completed": c.completed,
                            "failed": c.failed, "slo_violations": c.slo_violations, "wakes": c.wakes, "sleeps": c.sleeps,
                            "vm_starts": c.vm_starts, "throughput": c.throughput,
                        })
                    })
                    .collect();
                println!(
                    "{}",
                    serde_json::to_string_pretty(
                        &serde_json::json!({"report_dir": dir, "configs": rows})
                    )?
                );
            } else {
                println!("{}", std::fs::read_to_string(dir.join("report.md"))?);
                println!("report: {}", dir.display());
            }
            Ok(ExitCode::SUCCESS)
        }

        BenchCommand::Fair(a) => {
            anyhow::ensure!(
                a.samples > 0 && a.flood_threads > 0,
                "--samples and --flood-threads must be positive"
            );
            let o = ditto_bench::fair::FairOptions {
                samples: a.samples,
                flood_ms: a.flood_ms,
                flood_threads: a.flood_threads,
            };
            let r = ditto_bench::fair::run(&o)?;
            let md = r.markdown(&o);
            let (j, m) = ditto_bench::report::write(&a.out, "fair", &r, &md)?;
            println!("{md}\nreport: {} and {}", j.display(), m.display());
            Ok(ExitCode::SUCCESS)
        }

        BenchCommand::Soak(a) => {
            anyhow::ensure!(
                a.minutes > 0.0 && a.minutes.is_finite() && a.load > 0.0 && a.threads > 0,
                "--minutes, --load and --threads must be positive"
            );
            let o = ditto_bench::soak::SoakOptions {
                ditto: std::env::current_exe()?,
                minutes: a.minutes,
                load: a.load,
                threads: a.threads,
                seed: a.seed,
            };
            let r = ditto_bench::soak::run(&o)?;
            let stamp = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0);
            let dir = a.out.join(format!("soak-{stamp}"));
            std::fs::create_dir_all(&dir)?;
            r.plot(&dir.join("rss_fds.svg"))?;
            std::fs::write(dir.join("report.json"), serde_json::to_vec_pretty(&r)?)?;
            let md = r.markdown("rss_fds.svg");
            std::fs::write(dir.join("report.md"), &md)?;
            if a.json {
                println!("{}", serde_json::to_string_pretty(&r)?);
            } else {
                println!("{md}\nreport: {}", dir.display());
            }
            Ok(if r.lost == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(2)
            })
        }

        BenchCommand::Platform(a) => {
            anyhow::ensure!(
                a.requests > 0 && a.cold > 0 && a.seconds > 0.0,
                "counts and --seconds must be positive"
            );
            let opts = ditto_bench::platform::PlatformOptions {
                requests: a.requests,
                seconds: a.seconds,
                cold: a.cold,
                progress: !a.json,
                durability: a.durability,
            };
            let r = ditto_bench::platform::run(&opts)?;
            let md = r.markdown();
            let (j, m) = ditto_bench::report::write(&a.out, "platform", &r, &md)?;
            if a.json {
                println!("{}", serde_json::to_string_pretty(&r)?);
            } else {
                println!("{md}\nreport: {} and {}", j.display(), m.display());
            }
            Ok(ExitCode::SUCCESS)
        }

        BenchCommand::Entities(a) => {
            anyhow::ensure!(a.samples > 0, "--samples must be at least 1");
            let r = ditto_bench::entities::run(a.samples)?;
            let md = r.markdown();
            let (j, m) = ditto_bench::report::write(&a.out, "entities", &r, &md)?;
            if a.json {
                println!("{}", serde_json::to_string_pretty(&r)?);
            } else {
                println!("{md}\nreport: {} and {}", j.display(), m.display());
            }
            Ok(ExitCode::SUCCESS)
        }

        BenchCommand::Functions(a) => {
            anyhow::ensure!(a.runs > 0, "--runs must be at least 1");
            let rows = ditto_bench::functions::run(a.runs, !a.json)?;
            let md = ditto_bench::functions::markdown(&rows);
            let (j, m) = ditto_bench::report::write(&a.out, "functions", &rows, &md)?;
            if a.json {
                println!("{}", serde_json::to_string_pretty(&rows)?);
            } else {
                println!("{md}\nreport: {} and {}", j.display(), m.display());
            }
            Ok(ExitCode::SUCCESS)
        }

        BenchCommand::Micro(a) => {
            if a.samples == 0 || a.dispatch_tasks == 0 {
                anyhow::bail!("--samples and --dispatch-tasks must be at least 1");
            }
            let opts = MicroOptions {
                samples: a.samples,
                dispatch_tasks: a.dispatch_tasks,
                progress: !a.json,
            };
            let report = micro::run(&opts)?;
            let md = report.markdown();
            let (json_path, md_path) = ditto_bench::report::write(&a.out, "micro", &report, &md)?;
            if a.json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                println!("{md}");
                println!("report: {} and {}", json_path.display(), md_path.display());
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Run the elastic experiment and write `report.md`, `report.json` and two SVG plots into
/// a fresh directory under `out`.
fn elastic(
    o: &ditto_bench::elastic::ElasticOptions,
    out: &std::path::Path,
) -> Result<(PathBuf, ditto_bench::elastic::ElasticReport)> {
    let report = ditto_bench::elastic::run(o)?;
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let dir = out.join(format!("elastic-{stamp}"));
    std::fs::create_dir_all(&dir)?;
    ditto_bench::plot::latency_cdf(&report, &dir.join("latency_cdf.svg"))?;
    ditto_bench::plot::timeline(&report, &dir.join("awake_vcpus.svg"))?;
    std::fs::write(dir.join("report.json"), serde_json::to_vec_pretty(&report)?)?;
    std::fs::write(
        dir.join("report.md"),
        report.markdown("latency_cdf.svg", "awake_vcpus.svg"),
    )?;
    Ok((dir, report))
}
