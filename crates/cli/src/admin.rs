//! `ditto admin`: tenants and their limits, straight in the data directory's database (like
//! OpenWhisk's `wskadmin`). Safe while `ditto serve` runs on the same directory: SQLite
//! (WAL) serialises the writers, and the server reads keys on every request and limits
//! within a second.

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use ditto_platform::store::{Store, StoreError};
use ditto_platform::tenants::NamespaceLimits;
use std::path::PathBuf;
use std::process::ExitCode;

/// Where the database is.
#[derive(Args)]
pub struct DataDir {
    /// The server's data directory [default: ~/.local/share/ditto].
    #[arg(long, env = "DITTO_DATA_DIR", global = true)]
    data_dir: Option<PathBuf>,
}

/// `ditto admin ...`
#[derive(Subcommand)]
pub enum AdminCommand {
    /// Subjects (users) and their namespaces' keys.
    #[command(subcommand)]
    User(UserCommand),
    /// Per-namespace limits.
    #[command(subcommand)]
    Limits(LimitsCommand),
}

/// `ditto admin user ...`
#[derive(Subcommand)]
pub enum UserCommand {
    /// Create SUBJECT's namespace (default: named SUBJECT) with a fresh key; prints
    /// `uuid:key` on stdout. Only a salted hash of the key is stored: this is the only time
    /// it is shown.
    Create {
        /// The subject (user) name.
        subject: String,
        /// The namespace to create [default: SUBJECT].
        #[arg(long, short)]
        namespace: Option<String>,
    },
    /// List subjects, namespaces and key uuids (never keys).
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show a subject's namespaces and key uuids (keys cannot be shown: only hashes are
    /// stored; create a new namespace key with `user create` if one is lost).
    Get {
        /// The subject.
        subject: String,
    },
    /// Delete a subject's namespaces and keys (their actions and activations stay).
    Delete {
        /// The subject.
        subject: String,
    },
}

/// `ditto admin limits ...`
#[derive(Subcommand)]
pub enum LimitsCommand {
    /// Set a namespace's limits (OpenWhisk's per-namespace limits, refused with its 429
    /// messages). Limits not given are removed (back to the platform default).
    Set {
        /// The namespace.
        namespace: String,
        /// Invocations accepted per minute.
        #[arg(long)]
        invocations_per_minute: Option<u32>,
        /// Invocations accepted and unfinished at once.
        #[arg(long)]
        concurrent_invocations: Option<u32>,
        /// Trigger fires per minute.
        #[arg(long)]
        fires_per_minute: Option<u32>,
        /// Share weight in the fair scheduler (running slots and vCPU budget; default 1).
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..=1000))]
        weight: Option<u32>,
    },
    /// Show a namespace's limits as JSON (absent = platform default).
    Get {
        /// The namespace.
        namespace: String,
    },
}

fn open(d: &DataDir) -> Result<Store> {
    use std::os::unix::fs::PermissionsExt;
    let dir = d
        .data_dir
        .clone()
        .unwrap_or_else(ditto_platform::config::default_data_dir);
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))
        .with_context(|| format!("cannot set the mode of {}", dir.display()))?;
    let db = dir.join("ditto.db");
    Store::open(&db).with_context(|| format!("cannot open the database {}", db.display()))
}

fn valid_name(kind: &str, s: &str) -> Result<()> {
    anyhow::ensure!(
        !s.is_empty()
            && s.len() <= 256
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || "_-.@".contains(c))
            && !s.starts_with('.')
            && s != "_",
        "invalid {kind} '{s}': use 1-256 letters, digits and _ - . @ (not starting with '.')"
    );
    Ok(())
}

/// Run `ditto admin`.
pub fn run(d: &DataDir, cmd: AdminCommand) -> Result<ExitCode> {
    let store = open(d)?;
    match cmd {
        AdminCommand::User(UserCommand::Create { subject, namespace }) => {
            let ns = namespace.unwrap_or_else(|| subject.clone());
            valid_name("subject", &subject)?;
            valid_name("namespace", &ns)?;
            match store.create_user(&subject, &ns) {
                Ok(c) => println!("{}", c.auth()),
                Err(StoreError::Conflict) => anyhow::bail!("the namespace '{ns}' already exists"),
                Err(e) => return Err(e.into()),
            }
        }
        AdminCommand::User(UserCommand::List { json }) => {
            let list = store.list_users(None)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&list)?);
            } else {
                println!("{:<24} {:<24} UUID", "SUBJECT", "NAMESPACE");
                for u in list {
                    println!("{:<24} {:<24} {}", u.subject, u.namespace, u.uuid);
                }
            }
        }
        AdminCommand::User(UserCommand::Get { subject }) => {
            let list = store.list_users(Some(&subject))?;
            anyhow::ensure!(!list.is_empty(), "no subject '{subject}'");
            println!("{}", serde_json::to_string_pretty(&list)?);
        }
        AdminCommand::User(UserCommand::Delete { subject }) => {
            let n = store.delete_user(&subject)?;
            anyhow::ensure!(n > 0, "no subject '{subject}'");
            println!("Subject '{subject}' deleted ({n} namespace(s)).");
        }
        AdminCommand::Limits(LimitsCommand::Set {
            namespace,
            invocations_per_minute,
            concurrent_invocations,
            fires_per_minute,
            weight,
        }) => {
            anyhow::ensure!(
                !store
                    .list_users(None)?
                    .iter()
                    .all(|u| u.namespace != namespace),
                "no namespace '{namespace}'"
            );
            let l = NamespaceLimits {
                invocations_per_minute,
                concurrent_invocations,
                fires_per_minute,
                weight,
            };
            store.set_namespace_limits(&namespace, &l)?;
            println!("Limits set for namespace '{namespace}'.");
        }
        AdminCommand::Limits(LimitsCommand::Get { namespace }) => {
            println!(
                "{}",
                serde_json::to_string_pretty(&store.namespace_limits(&namespace)?)?
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
