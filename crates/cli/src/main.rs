//! The `ditto` command line: run elastic VMs, benchmarks and the scheduler simulator.

mod admin;
mod bench;
mod client;
mod compile;
mod entities;
mod serve;
mod sim;
mod vm;

use clap::{Parser, Subcommand};

/// Ditto: elastic confidential micro-VMs for serverless computing.
///
/// A Ditto VM starts with M regular vCPUs and up to N worker vCPUs that the hypervisor
/// sleeps and wakes in microseconds as load changes. The guest is Ditto's own no-OS
/// runtime, running at CPL3 on real /dev/kvm.
#[derive(Parser)]
#[command(name = "ditto", version, propagate_version = true)]
struct Cli {
    /// Log format on stderr (logs are filtered by RUST_LOG, default "warn").
    #[arg(long, global = true, value_enum, default_value = "text")]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Run elastic VMs.
    #[command(subcommand)]
    Vm(vm::VmCommand),
    /// Run benchmarks.
    #[command(subcommand)]
    Bench(bench::BenchCommand),
    /// Simulate scheduling policies on an arrival trace in virtual time.
    Sim(sim::SimArgs),
    /// Validate a WebAssembly module and compile it (offline) into the artifact the guest
    /// loads; print the SHA-384 of the module and of the artifact.
    ///
    /// Reproduces, byte for byte, the artifact the platform compiles at deploy time, so a
    /// tenant can check the hashes a VM's measurement log reports.
    Compile(compile::CompileArgs),
    /// Run the serverless platform: the OpenWhisk-compatible API on elastic VMs.
    Serve(serve::ServeArgs),
    /// Manage and invoke actions on a platform (like `wsk action`).
    Action {
        #[command(flatten)]
        conn: client::Conn,
        #[command(subcommand)]
        cmd: client::ActionCommand,
    },
    /// The built-in function catalog: list, deploy to a platform, export modules.
    Catalog {
        #[command(flatten)]
        conn: client::Conn,
        #[command(subcommand)]
        cmd: client::CatalogCommand,
    },
    /// Administer tenants: users (subjects, namespaces, keys) and namespace limits
    /// (like OpenWhisk's `wskadmin`), directly in the data directory.
    Admin {
        #[command(flatten)]
        data: admin::DataDir,
        #[command(subcommand)]
        cmd: admin::AdminCommand,
    },
    /// Inspect activations (like `wsk activation`).
    Activation {
        #[command(flatten)]
        conn: client::Conn,
        #[command(subcommand)]
        cmd: client::ActivationCommand,
    },
    /// Manage packages and bindings (like `wsk package`).
    Package {
        #[command(flatten)]
        conn: client::Conn,
        #[command(subcommand)]
        cmd: entities::PackageCommand,
    },
    /// Manage and fire triggers, with feeds such as /whisk.system/alarms/alarm (like `wsk trigger`).
    Trigger {
        #[command(flatten)]
        conn: client::Conn,
        #[command(subcommand)]
        cmd: entities::TriggerCommand,
    },
    /// Connect triggers to actions (like `wsk rule`).
    Rule {
        #[command(flatten)]
        conn: client::Conn,
        #[command(subcommand)]
        cmd: entities::RuleCommand,
    },
    /// Route HTTP paths and verbs to web actions (like `wsk api`).
    Api {
        #[command(flatten)]
        conn: client::Conn,
        #[command(subcommand)]
        cmd: entities::ApiCommand,
    },
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match cli.log_format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
    let result = match cli.command {
        Command::Vm(c) => vm::run(c),
        Command::Bench(c) => bench::run(c),
        Command::Serve(a) => serve::run(a),
        Command::Compile(a) => compile::run(a),
        Command::Sim(a) => sim::run(&a).map(|()| std::process::ExitCode::SUCCESS),

        Command::Action { conn, cmd } => client::action(&conn, cmd),
        Command::Activation { conn, cmd } => client::activation(&conn, cmd),
        Command::Admin { data, cmd } => admin::run(&data, cmd),
        Command::Catalog { conn, cmd } => client::catalog(&conn, cmd),
        Command::Package { conn, cmd } => entities::package(&conn, cmd),
        Command::Trigger { conn, cmd } => entities::trigger(&conn, cmd),
        Command::Rule { conn, cmd } => entities::rule(&conn, cmd),
        Command::Api { conn, cmd } => entities::api(&conn, cmd),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::from(1)
        }
    }
}
