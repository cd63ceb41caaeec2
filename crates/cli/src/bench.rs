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
