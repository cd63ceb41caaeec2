//! The `wsk`-shaped client commands: `ditto action ...` and `ditto activation ...`, talking
//! to a Ditto (or OpenWhisk) API host. Credentials come from flags, then `DITTO_APIHOST` /
//! `DITTO_AUTH`, then the wskprops file (`WSK_CONFIG_FILE`, default `~/.wskprops`).

use anyhow::{bail, Context, Result};
use base64::Engine as _;
use clap::{Args, Subcommand};
use serde_json::{json, Value};
use std::path::PathBuf;
use std::process::ExitCode;

/// Where and who.
#[derive(Args, Clone)]
pub struct Conn {
    /// API host, e.g. http://127.0.0.1:3233 (or APIHOST in the wskprops file).
    #[arg(long, global = true, env = "DITTO_APIHOST")]
    apihost: Option<String>,
    /// Credentials uuid:key (or AUTH in the wskprops file).
    #[arg(long, short = 'u', global = true, env = "DITTO_AUTH")]
    auth: Option<String>,
}

/// `ditto action ...`
#[derive(Subcommand)]
pub enum ActionCommand {
    /// Create an action from a WebAssembly module (wasm32-wasip1).
    Create(ActionPutArgs),
    /// Update an action (module, parameters, limits).
    Update(ActionPutArgs),
    /// Show an action.
    Get {
        /// Action name.
        name: String,
    },
    /// List actions.
    List {
        /// Most to list.
        #[arg(long, default_value_t = 30)]
        limit: u32,
    },
    /// Delete an action.
    Delete {
        /// Action name.
        name: String,
    },
    /// Invoke an action.
    Invoke(InvokeArgs),
}

/// Arguments of create/update.
#[derive(Args)]
pub struct ActionPutArgs {
    /// Action name.
    name: String,
    /// The module file (required for create).
    file: Option<PathBuf>,
    /// Default parameter KEY VALUE (VALUE parsed as JSON, else a string); repeatable.
    #[arg(short = 'p', long = "param", num_args = 2, value_names = ["KEY", "VALUE"])]
    param: Vec<String>,
    /// Annotation KEY VALUE; repeatable (e.g. -a prewarm true).
    #[arg(short = 'a', long = "annotation", num_args = 2, value_names = ["KEY", "VALUE"])]
    annotation: Vec<String>,
    /// Timeout limit, ms (100..300000).
    #[arg(short = 't', long)]
    timeout: Option<u64>,
    /// Memory limit, MB (128..512).
    #[arg(short = 'm', long)]
    memory: Option<u64>,
    /// Make it a sequence of these actions (comma-separated; no module file).
    #[arg(long, value_delimiter = ',', conflicts_with = "file")]
    sequence: Vec<String>,
    /// Export it as a web action (true, false, raw).
    #[arg(long, value_parser = ["true", "false", "raw", "yes", "no"])]
    web: Option<String>,
}

/// Arguments of invoke.
#[derive(Args)]
pub struct InvokeArgs {
    /// Action name.
    name: String,
    /// Parameter KEY VALUE (VALUE parsed as JSON, else a string); repeatable.
    #[arg(short = 'p', long = "param", num_args = 2, value_names = ["KEY", "VALUE"])]
    param: Vec<String>,
    /// A JSON file of parameters.
    #[arg(short = 'P', long = "param-file")]
    param_file: Option<PathBuf>,
    /// Wait for the result.
    #[arg(short = 'b', long)]
    blocking: bool,
    /// Print only the result (implies --blocking).
    #[arg(short = 'r', long)]
    result: bool,
}

/// `ditto activation ...`
#[derive(Subcommand)]
pub enum ActivationCommand {
    /// List recent activations.
    List {
        /// Only this action's.
        name: Option<String>,
        /// Most to list.
        #[arg(long, default_value_t = 30)]
        limit: u32,
        /// Skip this many.
        #[arg(long, default_value_t = 0)]
        skip: u32,
    },
    /// Show an activation.
    Get {
        /// Activation id.
        id: String,
    },
    /// Show an activation's result.
    Result {
        /// Activation id.
        id: String,
    },
    /// Show an activation's logs.
    Logs {
        /// Activation id.
        id: String,
    },
}

/// Read KEY=VALUE lines of a wskprops file.
pub fn read_wskprops() -> Vec<(String, String)> {
    let path = std::env::var_os("WSK_CONFIG_FILE")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".wskprops")));
    let Some(text) = path.and_then(|p| std::fs::read_to_string(p).ok()) else {
        return Vec::new();
    };
    text.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

pub(crate) struct Client {
    base: String,
    auth: String,
    /// `uuid:key` (a feed action's `authKey`).
    pub(crate) key: String,
}

impl Client {
    pub(crate) fn new(c: &Conn) -> Result<Client> {
        let props = read_wskprops();
        let prop = |k: &str| {
            props
                .iter()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.clone())
        };
        let host = c.apihost.clone().or_else(|| prop("APIHOST")).context(
            "no API host: pass --apihost, set DITTO_APIHOST, or put APIHOST in ~/.wskprops (or WSK_CONFIG_FILE)",
        )?;
        let auth = c.auth.clone().or_else(|| prop("AUTH")).context(
            "no credentials: pass --auth uuid:key, set DITTO_AUTH, or put AUTH in ~/.wskprops (or WSK_CONFIG_FILE)",
        )?;
        let host = if host.contains("://") {
            host
        } else {
            format!("http://{host}")
        };
        Ok(Client {
            base: format!("{}/api/v1/namespaces/_", host.trim_end_matches('/')),
            auth: format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(&auth)
            ),
            key: auth,
        })
    }

    /// Send a request under `/api/v1/namespaces/_`; returns (status, JSON body).
    pub(crate) fn send(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<(u16, Value)> {
        self.send_url(method, &format!("{}{path}", self.base), body)
    }

    /// The API host's root URL.
    pub(crate) fn root(&self) -> &str {
        self.base.trim_end_matches("/api/v1/namespaces/_")
    }

    /// Send a request to a full URL; returns (status, JSON body).
    pub(crate) fn send_url(
        &self,
        method: &str,
        url: &str,
        body: Option<&Value>,
    ) -> Result<(u16, Value)> {
        let req = ureq::request(method, url).set("Authorization", &self.auth);
        let resp = match body {
            Some(b) => req.send_json(b),
            None => req.call(),
        };
        let resp = match resp {
            Ok(r) => r,
            Err(ureq::Error::Status(_, r)) => r,
            Err(e) => bail!("cannot reach {}: {e}", self.base),
        };
        let status = resp.status();
        let text = resp.into_string().context("reading the response")?;
        Ok((
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        ))
    }
}

pub(crate) fn kv_map(pairs: &[String]) -> serde_json::Map<String, Value> {
    pairs
        .chunks(2)
        .filter(|c| c.len() == 2)
        .map(|c| {
            (
                c[0].clone(),
                serde_json::from_str(&c[1]).unwrap_or_else(|_| Value::String(c[1].clone())),
            )
        })
        .collect()
}

pub(crate) fn kv_list(pairs: &[String]) -> Value {
    Value::Array(
        kv_map(pairs)
            .into_iter()
            .map(|(k, v)| json!({"key": k, "value": v}))
            .collect(),
    )
}

pub(crate) fn print(status: u16, body: &Value) -> ExitCode {
    println!("{}", serde_json::to_string_pretty(body).unwrap_or_default());
    if (200..300).contains(&status) {
        ExitCode::SUCCESS
    } else {
        eprintln!("error: HTTP {status}");
        ExitCode::from(1)
    }
}

fn put(client: &Client, a: &ActionPutArgs, overwrite: bool) -> Result<ExitCode> {
    let mut body = serde_json::Map::new();
    if let Some(file) = &a.file {
        let code =
            std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
        body.insert(
            "exec".into(),
            json!({"kind": "wasm", "code": base64::engine::general_purpose::STANDARD.encode(code), "binary": true}),
        );
    } else if !a.sequence.is_empty() {
        body.insert(
            "exec".into(),
            json!({"kind": "sequence", "components": a.sequence}),
        );
    } else if !overwrite {
        bail!("a module file (or --sequence) is required to create an action");
    }
    if !a.param.is_empty() {
        body.insert("parameters".into(), kv_list(&a.param));
    }
    let mut annotations = a.annotation.clone();
    if let Some(w) = &a.web {
        let on = matches!(w.as_str(), "true" | "yes" | "raw");
        annotations.extend(["web-export".into(), on.to_string()]);
        annotations.extend(["raw-http".into(), (w == "raw").to_string()]);
    }
    if !annotations.is_empty() {
        body.insert("annotations".into(), kv_list(&annotations));
    }
    let mut limits = serde_json::Map::new();
    if let Some(t) = a.timeout {
        limits.insert("timeout".into(), json!(t));
    }
    if let Some(m) = a.memory {
        limits.insert("memory".into(), json!(m));
    }
    if !limits.is_empty() {
        body.insert("limits".into(), Value::Object(limits));
    }
    let (s, v) = client.send(
        "PUT",
        &format!("/actions/{}?overwrite={overwrite}", a.name),
        Some(&Value::Object(body)),
    )?;
    Ok(print(s, &v))
}

/// Run `ditto action ...`.
pub fn action(conn: &Conn, cmd: ActionCommand) -> Result<ExitCode> {
    let client = Client::new(conn)?;
    match cmd {
        ActionCommand::Create(a) => put(&client, &a, false),
        ActionCommand::Update(a) => put(&client, &a, true),
        ActionCommand::Get { name } => {
            let url = crate::entities::entity_url(&client, "actions", &name);
            let (s, v) = client.send_url("GET", &format!("{url}?code=false"), None)?;
            Ok(print(s, &v))
        }
        ActionCommand::List { limit } => {
            let (s, v) = client.send("GET", &format!("/actions?limit={limit}"), None)?;
            Ok(print(s, &v))
        }
        ActionCommand::Delete { name } => {
            let url = crate::entities::entity_url(&client, "actions", &name);
            let (s, v) = client.send_url("DELETE", &url, None)?;
            Ok(print(s, &v))
        }
        ActionCommand::Invoke(a) => {
            let mut params = match &a.param_file {
                Some(f) => {
                    let text = std::fs::read_to_string(f)
                        .with_context(|| format!("cannot read {}", f.display()))?;
                    match serde_json::from_str(&text)
                        .with_context(|| format!("{} is not JSON", f.display()))?
                    {
                        Value::Object(m) => m,
                        _ => bail!("{} must hold a JSON object", f.display()),
                    }
                }
                None => serde_json::Map::new(),
            };
            params.extend(kv_map(&a.param));
            let blocking = a.blocking || a.result;
            let url = crate::entities::entity_url(&client, "actions", &a.name);
            let (s, v) = client.send_url(
                "POST",
                &format!("{url}?blocking={blocking}&result={}", a.result),
                Some(&Value::Object(params)),
            )?;
            Ok(print(s, &v))
        }
    }
}

/// `ditto catalog ...`
#[derive(Subcommand)]
pub enum CatalogCommand {
    /// List the built-in catalog functions and their parameters.
    List,
    /// Create (or update) every catalog function as an action on the platform.
    Deploy,
    /// Write every catalog module as NAME.wasm into a directory.
    Export {
        /// Target directory.
        dir: PathBuf,
    },
}

/// Run `ditto catalog ...`.
pub fn catalog(conn: &Conn, cmd: CatalogCommand) -> Result<ExitCode> {
    match cmd {
        CatalogCommand::List => {
            for f in ditto_catalog::all() {
                println!(
                    "{:<16} {:>4} KiB  {}  (default {})",
                    f.name,
                    f.wasm.len() / 1024,
                    f.params,
                    f.default_params
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        CatalogCommand::Export { dir } => {
            std::fs::create_dir_all(&dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            for f in ditto_catalog::all() {
                let path = dir.join(format!("{}.wasm", f.name));
                std::fs::write(&path, f.wasm)
                    .with_context(|| format!("cannot write {}", path.display()))?;
                println!("{}", path.display());
            }
            Ok(ExitCode::SUCCESS)
        }
        CatalogCommand::Deploy => {
            let client = Client::new(conn)?;
            let mut failed = 0;
            for f in ditto_catalog::all() {
                let body = json!({"exec": {"kind": "wasm", "code": base64::engine::general_purpose::STANDARD.encode(f.wasm), "binary": true}});
                let (s, v) = client.send(
                    "PUT",
                    &format!("/actions/{}?overwrite=true", f.name),
                    Some(&body),
                )?;
                if (200..300).contains(&s) {
                    println!(
                        "deployed {:<16} version {}",
                        f.name,
                        v["version"].as_str().unwrap_or("?")
                    );
                } else {
                    failed += 1;
                    eprintln!("error: {}: HTTP {s}: {v}", f.name);
                }
            }
            Ok(if failed == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
    }
}

/// Run `ditto activation ...`.
pub fn activation(conn: &Conn, cmd: ActivationCommand) -> Result<ExitCode> {
    let client = Client::new(conn)?;
    let path = match &cmd {
        ActivationCommand::List { name, limit, skip } => {
            let filter = name
                .as_deref()
                .map(|n| format!("&name={n}"))
                .unwrap_or_default();
            format!("/activations?limit={limit}&skip={skip}{filter}")
        }
        ActivationCommand::Get { id } => format!("/activations/{id}"),
        ActivationCommand::Result { id } => format!("/activations/{id}/result"),
        ActivationCommand::Logs { id } => format!("/activations/{id}/logs"),
    };
    let (s, v) = client.send("GET", &path, None)?;
    Ok(print(s, &v))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_parse_json_or_fall_back_to_strings() {
        let m = kv_map(&[
            "n".into(),
            "5".into(),
            "s".into(),
            "hello".into(),
            "o".into(),
            "{\"a\":1}".into(),
        ]);
        assert_eq!(m["n"], json!(5));
        assert_eq!(m["s"], json!("hello"));
        assert_eq!(m["o"], json!({"a": 1}));
    }
}
