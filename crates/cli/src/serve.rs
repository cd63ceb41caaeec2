//! `ditto serve`: run the platform (OpenWhisk-compatible API on elastic VMs).

use anyhow::{Context, Result};
use clap::Args;
use ditto_platform::config::{ConfigFile, ServeConfig};
use ditto_platform::Platform;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// Arguments of `ditto serve`. Precedence: flags > environment > config file > defaults.
#[derive(Args)]
pub struct ServeArgs {
    /// TOML configuration file (every key optional; see docs/ARCHITECTURE.md).
    #[arg(long, env = "DITTO_CONFIG")]
    config: Option<PathBuf>,
    /// Listen address [default: 127.0.0.1:3233].
    #[arg(long, env = "DITTO_LISTEN")]
    listen: Option<String>,
    /// Data directory for the SQLite database [default: ~/.local/share/ditto].
    #[arg(long, env = "DITTO_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Worker vCPUs per VM [default: 4].
    #[arg(long)]
    workers: Option<u32>,
    /// Host-wide awake vCPUs = host cores × this [default: 4].
    #[arg(long)]
    overcommit: Option<f64>,
    /// Seconds an idle VM is kept before it is retired [default: 60].
    #[arg(long)]
    keep_alive_s: Option<f64>,
    /// SQLite durability: "normal" survives any process kill (kill -9 included) but an OS
    /// crash or power loss may lose the last commits; "full" fsyncs every commit (survives
    /// those too, at about twice the cost per invocation) [default: normal].
    #[arg(long, env = "DITTO_DURABILITY")]
    durability: Option<ditto_platform::store::Durability>,
}

/// Build the configuration from file, environment and flags.
pub fn config(a: &ServeArgs) -> Result<ServeConfig> {
    let mut c = ServeConfig::default();
    if let Some(path) = &a.config {
        ConfigFile::load(path)
            .and_then(|f| f.apply(&mut c))
            .map_err(anyhow::Error::msg)?;
    }
    if let Some(v) = &a.listen {
        c.listen = v.clone();
    }
    if let Some(v) = &a.data_dir {
        c.data_dir = v.clone();
    }
    if let Some(v) = a.workers {
        c.pool.workers = v;
    }
    if let Some(v) = a.overcommit {
        ditto_platform::config::set_overcommit(&mut c, v).map_err(anyhow::Error::msg)?;
    }
    if let Some(v) = a.keep_alive_s {
        anyhow::ensure!(
            v.is_finite() && v >= 0.0,
            "--keep-alive-s must be a non-negative number"
        );
        c.pool.keep_alive = Duration::from_secs_f64(v);
    }
    if let Some(v) = a.durability {
        c.durability = v;
    }
    c.validate().map_err(anyhow::Error::msg)?;
    Ok(c)
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => {
            let _ = ctrl_c.await;
            return;
        }
    };
    tokio::select! {
        _ = ctrl_c => {},
        _ = term.recv() => {},
    }
    eprintln!("ditto: shutting down: draining in-flight invocations");
}

/// Write a file only its owner can read (mode 0600, also when it already existed).
fn write_private(path: &std::path::Path, data: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    f.write_all(data)
}

/// Run `ditto serve`.
pub fn run(a: ServeArgs) -> Result<ExitCode> {
    let c = config(&a)?;
    ditto_vmm::kvm::unusable_reason("/dev/kvm")
        .map_or(Ok(()), |why| Err(anyhow::anyhow!("{why}")))?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let listen = c.listen.clone();
        let platform = Platform::open(c)?;
        let listener = tokio::net::TcpListener::bind(&listen)
            .await
            .with_context(|| format!("cannot listen on {listen}"))?;
        let addr = listener.local_addr()?;
        if let Some(cred) = &platform.new_credentials {
            let props = platform.config.data_dir.join("wskprops");
            write_private(
                &props,
                format!("APIHOST=http://{addr}\nAUTH={}\n", cred.auth()).as_bytes(),
            )
            .with_context(|| format!("cannot write {}", props.display()))?;
            println!(
                "Created namespace '{}'. Its key is shown only this once:",
                cred.namespace
            );
            println!("  AUTH={}", cred.auth());
            println!(
                "Also written to {} (use: export WSK_CONFIG_FILE={})",
                props.display(),
                props.display()
            );
        }
        println!(
            "ditto serving the OpenWhisk API on http://{addr} (data in {}, vCPU budget {})",
            platform.config.data_dir.display(),
            platform.config.pool.vcpu_budget
        );
        ditto_platform::serve(platform, listener, shutdown_signal()).await?;
        eprintln!("ditto: stopped");
        Ok(ExitCode::SUCCESS)
    })
}
