//! The `wsk`-shaped commands for the rest of OpenWhisk: `ditto package`, `ditto trigger`
//! (with `--feed`, which runs the feed action's lifecycle as `wsk` does), `ditto rule` and
//! `ditto api`. Names may be `name`, `pkg/name` or fully qualified `/namespace/pkg/name`.

use crate::client::{kv_list, kv_map, print, Client, Conn};
use anyhow::{bail, Result};
use clap::{Args, Subcommand};
use serde_json::{json, Value};
use std::process::ExitCode;

/// `/namespaces/{ns}/{collection}/{rest}` for a possibly fully qualified name.
pub(crate) fn entity_url(client: &Client, collection: &str, name: &str) -> String {
    let (ns, rest) = match name.strip_prefix('/') {
        Some(full) => full.split_once('/').unwrap_or(("_", full)),
        None => ("_", name),
    };
    format!(
        "{}/api/v1/namespaces/{ns}/{collection}/{rest}",
        client.root()
    )
}

fn send(client: &Client, method: &str, url: &str, body: Option<Value>) -> Result<ExitCode> {
    let (s, v) = client.send_url(method, url, body.as_ref())?;
    Ok(print(s, &v))
}

/// Parameters and annotations of create/update.
#[derive(Args)]
pub struct KvArgs {
    /// Parameter KEY VALUE (VALUE parsed as JSON, else a string); repeatable.
    #[arg(short = 'p', long = "param", num_args = 2, value_names = ["KEY", "VALUE"])]
    param: Vec<String>,
    /// Annotation KEY VALUE; repeatable.
    #[arg(short = 'a', long = "annotation", num_args = 2, value_names = ["KEY", "VALUE"])]
    annotation: Vec<String>,
}

impl KvArgs {
    fn body(&self) -> serde_json::Map<String, Value> {
        let mut b = serde_json::Map::new();
        if !self.param.is_empty() {
            b.insert("parameters".into(), kv_list(&self.param));
        }
        if !self.annotation.is_empty() {
            b.insert("annotations".into(), kv_list(&self.annotation));
        }
        b
    }
}

/// `ditto package ...`
#[derive(Subcommand)]
pub enum PackageCommand {
    /// Create a package.
    Create {
        /// Package name.
        name: String,
        #[command(flatten)]
        kv: KvArgs,
        /// Share it with every namespace (yes/no).
        #[arg(long, value_parser = ["yes", "no", "true", "false"])]
        shared: Option<String>,
    },
    /// Update a package.
    Update {
        /// Package name.
        name: String,
        #[command(flatten)]
        kv: KvArgs,
        /// Share it with every namespace (yes/no).
        #[arg(long, value_parser = ["yes", "no", "true", "false"])]
        shared: Option<String>,
    },
    /// Bind a package (e.g. /whisk.system/utils) under a new name, with parameters.
    Bind {
        /// The package to bind, `name` or `/namespace/name`.
        package: String,
        /// The binding's name.
        name: String,
        #[command(flatten)]
        kv: KvArgs,
    },
    /// Show a package and its actions.
    Get {
        /// Package name (`/whisk.system/utils` works).
        name: String,
    },
    /// List packages (of a namespace, e.g. /whisk.system).
    List {
        /// Namespace (default: yours).
        namespace: Option<String>,
        /// Most to list.
        #[arg(long, default_value_t = 30)]
        limit: u32,
    },
    /// Delete a package.
    Delete {
        /// Package name.
        name: String,
        /// Also delete its actions.
        #[arg(long)]
        force: bool,
    },
}

fn shared(s: &Option<String>) -> Option<bool> {
    s.as_deref().map(|v| matches!(v, "yes" | "true"))
}

fn put_package(
    c: &Client,
    name: &str,
    kv: &KvArgs,
    s: &Option<String>,
    overwrite: bool,
) -> Result<ExitCode> {
    let mut b = kv.body();
    if let Some(p) = shared(s) {
        b.insert("publish".into(), json!(p));
    }
    let url = entity_url(c, "packages", name);
    send(
        c,
        "PUT",
        &format!("{url}?overwrite={overwrite}"),
        Some(Value::Object(b)),
    )
}

/// Run `ditto package ...`.
pub fn package(conn: &Conn, cmd: PackageCommand) -> Result<ExitCode> {
    let c = Client::new(conn)?;
    match cmd {
        PackageCommand::Create {
            name,
            kv,
            shared: s,
        } => put_package(&c, &name, &kv, &s, false),
        PackageCommand::Update {
            name,
            kv,
            shared: s,
        } => put_package(&c, &name, &kv, &s, true),
        PackageCommand::Bind { package, name, kv } => {
            let (ns, pkg) = match package.strip_prefix('/') {
                Some(full) => full.split_once('/').unwrap_or(("_", full)),
                None => ("_", package.as_str()),
            };
            let mut b = kv.body();
            b.insert("binding".into(), json!({"namespace": ns, "name": pkg}));
            send(
                &c,
                "PUT",
                &entity_url(&c, "packages", &name),
                Some(Value::Object(b)),
            )
        }
        PackageCommand::Get { name } => send(&c, "GET", &entity_url(&c, "packages", &name), None),
        PackageCommand::List { namespace, limit } => {
            let ns = namespace
                .as_deref()
                .map(|n| n.trim_matches('/'))
                .unwrap_or("_");
            send(
                &c,
                "GET",
                &format!("{}/api/v1/namespaces/{ns}/packages?limit={limit}", c.root()),
                None,
            )
        }
        PackageCommand::Delete { name, force } => send(
            &c,
            "DELETE",
            &format!("{}?force={force}", entity_url(&c, "packages", &name)),
            None,
        ),
    }
}

/// `ditto trigger ...`
#[derive(Subcommand)]
pub enum TriggerCommand {
    /// Create a trigger, optionally fed by a feed (e.g. --feed /whisk.system/alarms/alarm
    /// -p cron "*/10 * * * * *").
    Create {
        /// Trigger name.
        name: String,
        #[command(flatten)]
        kv: KvArgs,
        /// A feed action; the parameters go to the feed.
        #[arg(short = 'f', long)]
        feed: Option<String>,
    },
    /// Update a trigger's parameters or annotations.
    Update {
        /// Trigger name.
        name: String,
        #[command(flatten)]
        kv: KvArgs,
    },
    /// Fire a trigger with a payload.
    Fire {
        /// Trigger name.
        name: String,
        /// Payload KEY VALUE; repeatable.
        #[arg(short = 'p', long = "param", num_args = 2, value_names = ["KEY", "VALUE"])]
        param: Vec<String>,
    },
    /// Show a trigger and its rules.
    Get {
        /// Trigger name.
        name: String,
    },
    /// List triggers.
    List {
        /// Most to list.
        #[arg(long, default_value_t = 30)]
        limit: u32,
    },
    /// Delete a trigger (and, if it has a feed, tell the feed).
    Delete {
        /// Trigger name.
        name: String,
    },
}

fn feed_call(
    c: &Client,
    feed: &str,
    event: &str,
    trigger: &str,
    params: serde_json::Map<String, Value>,
) -> Result<(u16, Value)> {
    let mut body = params;
    body.insert("lifecycleEvent".into(), json!(event));
    body.insert("triggerName".into(), json!(format!("/_/{trigger}")));
    body.insert("authKey".into(), json!(c.key));
    let url = format!("{}?blocking=true", entity_url(c, "actions", feed));
    c.send_url("POST", &url, Some(&Value::Object(body)))
}

/// Run `ditto trigger ...`.
pub fn trigger(conn: &Conn, cmd: TriggerCommand) -> Result<ExitCode> {
    let c = Client::new(conn)?;
    match cmd {
        TriggerCommand::Create {
            name,
            kv,
            feed: None,
        } => send(
            &c,
            "PUT",
            &entity_url(&c, "triggers", &name),
            Some(Value::Object(kv.body())),
        ),
        TriggerCommand::Create {
            name,
            kv,
            feed: Some(feed),
        } => {
            let mut ann = kv.annotation.clone();
            ann.extend(["feed".to_string(), feed.clone()]);
            let body = json!({"annotations": kv_list(&ann)});
            let (s, v) = c.send_url("PUT", &entity_url(&c, "triggers", &name), Some(&body))?;
            if !(200..300).contains(&s) {
                return Ok(print(s, &v));
            }
            let (fs, fv) = feed_call(&c, &feed, "CREATE", &name, kv_map(&kv.param))?;
            if !(200..300).contains(&fs) {
                // As wsk does: a trigger whose feed refused it is removed again.
                let _ = c.send_url("DELETE", &entity_url(&c, "triggers", &name), None);
                eprintln!("error: the feed {feed} refused the trigger");
                return Ok(print(fs, &fv));
            }
            Ok(print(s, &v))
        }
        TriggerCommand::Update { name, kv } => send(
            &c,
            "PUT",
            &format!("{}?overwrite=true", entity_url(&c, "triggers", &name)),
            Some(Value::Object(kv.body())),
        ),
        TriggerCommand::Fire { name, param } => send(
            &c,
            "POST",
            &entity_url(&c, "triggers", &name),
            Some(Value::Object(kv_map(&param))),
        ),
        TriggerCommand::Get { name } => send(&c, "GET", &entity_url(&c, "triggers", &name), None),
        TriggerCommand::List { limit } => {
            let (s, v) = c.send("GET", &format!("/triggers?limit={limit}"), None)?;
            Ok(print(s, &v))
        }
        TriggerCommand::Delete { name } => {
            let url = entity_url(&c, "triggers", &name);
            let (s, v) = c.send_url("GET", &url, None)?;
            if (200..300).contains(&s) {
                let feed = v["annotations"]
                    .as_array()
                    .and_then(|a| a.iter().find(|kv| kv["key"] == "feed"))
                    .and_then(|kv| kv["value"].as_str())
                    .map(str::to_owned);
                if let Some(feed) = feed {
                    let (fs, fv) = feed_call(&c, &feed, "DELETE", &name, serde_json::Map::new())?;
                    if !(200..300).contains(&fs) {
                        eprintln!("warning: the feed {feed} did not acknowledge the delete: {fv}");
                    }
                }
            }
            send(&c, "DELETE", &url, None)
        }
    }
}

/// `ditto rule ...`
#[derive(Subcommand)]
pub enum RuleCommand {
    /// Create a rule: when TRIGGER fires, invoke ACTION.
    Create {
        /// Rule name.
        name: String,
        /// Trigger name.
        trigger: String,
        /// Action name (`pkg/name` and `/whisk.system/utils/echo` work).
        action: String,
    },
    /// Change a rule's trigger and action.
    Update {
        /// Rule name.
        name: String,
        /// Trigger name.
        trigger: String,
        /// Action name.
        action: String,
    },
    /// Enable a rule.
    Enable {
        /// Rule name.
        name: String,
    },
    /// Disable a rule.
    Disable {
        /// Rule name.
        name: String,
    },
    /// Show a rule's status (active or inactive).
    Status {
        /// Rule name.
        name: String,
    },
    /// Show a rule.
    Get {
        /// Rule name.
        name: String,
    },
    /// List rules.
    List {
        /// Most to list.
        #[arg(long, default_value_t = 30)]
        limit: u32,
    },
    /// Delete a rule.
    Delete {
        /// Rule name.
        name: String,
    },
}

/// Run `ditto rule ...`.
pub fn rule(conn: &Conn, cmd: RuleCommand) -> Result<ExitCode> {
    let c = Client::new(conn)?;
    let fq = |n: &str| {
        if n.starts_with('/') {
            n.to_string()
        } else {
            format!("/_/{n}")
        }
    };
    match cmd {
        RuleCommand::Create {
            name,
            trigger,
            action,
        } => send(
            &c,
            "PUT",
            &entity_url(&c, "rules", &name),
            Some(json!({"trigger": fq(&trigger), "action": fq(&action)})),
        ),
        RuleCommand::Update {
            name,
            trigger,
            action,
        } => send(
            &c,
            "PUT",
            &format!("{}?overwrite=true", entity_url(&c, "rules", &name)),
            Some(json!({"trigger": fq(&trigger), "action": fq(&action)})),
        ),
        RuleCommand::Enable { name } => send(
            &c,
            "POST",
            &entity_url(&c, "rules", &name),
            Some(json!({"status": "active"})),
        ),
        RuleCommand::Disable { name } => send(
            &c,
            "POST",
            &entity_url(&c, "rules", &name),
            Some(json!({"status": "inactive"})),
        ),
        RuleCommand::Status { name } => {
            let (s, v) = c.send_url("GET", &entity_url(&c, "rules", &name), None)?;
            if (200..300).contains(&s) {
                println!("{}", v["status"].as_str().unwrap_or("unknown"));
                Ok(ExitCode::SUCCESS)
            } else {
                Ok(print(s, &v))
            }
        }
        RuleCommand::Get { name } => send(&c, "GET", &entity_url(&c, "rules", &name), None),
        RuleCommand::List { limit } => {
            let (s, v) = c.send("GET", &format!("/rules?limit={limit}"), None)?;
            Ok(print(s, &v))
        }
        RuleCommand::Delete { name } => send(&c, "DELETE", &entity_url(&c, "rules", &name), None),
    }
}

/// `ditto api ...`
#[derive(Subcommand)]
pub enum ApiCommand {
    /// Route BASE_PATH + API_PATH + VERB to a web action (BASE_PATH may be left out: `/`).
    Create {
        /// [BASE_PATH] API_PATH VERB ACTION, e.g. /shop /books/{id} get books/get.
        #[arg(num_args = 3..=4, value_names = ["BASE_PATH", "API_PATH", "VERB", "ACTION"])]
        args: Vec<String>,
        /// Response type: json, http, html, text.
        #[arg(long, default_value = "json")]
        response_type: String,
    },
    /// Show the routes of a base path.
    Get {
        /// Base path (or API name).
        basepath: String,
    },
    /// List every route.
    List,
    /// Delete a base path's routes (or one path, or one verb of it).
    Delete {
        /// Base path.
        basepath: String,
        /// Only this path.
        relpath: Option<String>,
        /// Only this verb.
        verb: Option<String>,
    },
}

fn apimgmt(c: &Client, op: &str, query: &str) -> String {
    format!("{}/api/v1/web/whisk.system/apimgmt/{op}?{query}", c.root())
}

fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            b => format!("%{b:02X}"),
        })
        .collect()
}

/// Run `ditto api ...`.
pub fn api(conn: &Conn, cmd: ApiCommand) -> Result<ExitCode> {
    let c = Client::new(conn)?;
    match cmd {
        ApiCommand::Create {
            args,
            response_type,
        } => {
            let (base, path, verb, action) = match args.as_slice() {
                [p, v, a] => ("/", p, v, a),
                [b, p, v, a] => (b.as_str(), p, v, a),
                _ => bail!("api create takes [BASE_PATH] API_PATH VERB ACTION"),
            };
            let (ns, name) = match action.strip_prefix('/') {
                Some(full) => full.split_once('/').unwrap_or(("_", full)),
                None => ("_", action.as_str()),
            };
            let body = json!({"apidoc": {
                "namespace": "_", "gatewayBasePath": base, "gatewayPath": path,
                "gatewayMethod": verb.to_ascii_uppercase(),
                "action": {"name": name, "namespace": ns},
            }});
            let (s, v) = c.send_url(
                "POST",
                &apimgmt(
                    &c,
                    "createApi",
                    &format!("responsetype={}", enc(&response_type)),
                ),
                Some(&body),
            )?;
            if (200..300).contains(&s) {
                println!(
                    "ok: created API {}{} {}",
                    v["gwApiUrl"].as_str().unwrap_or(""),
                    path,
                    verb.to_ascii_uppercase()
                );
                Ok(ExitCode::SUCCESS)
            } else {
                Ok(print(s, &v))
            }
        }
        ApiCommand::Get { basepath } => send(
            &c,
            "GET",
            &apimgmt(&c, "getApi", &format!("basepath={}", enc(&basepath))),
            None,
        ),
        ApiCommand::List => send(&c, "GET", &apimgmt(&c, "getApi", ""), None),
        ApiCommand::Delete {
            basepath,
            relpath,
            verb,
        } => {
            let mut q = format!("basepath={}&force=true", enc(&basepath));
            if let Some(r) = relpath {
                q.push_str(&format!("&relpath={}", enc(&r)));
            }
            if let Some(v) = verb {
                q.push_str(&format!("&operation={}", enc(&v.to_ascii_uppercase())));
            }
            send(&c, "DELETE", &apimgmt(&c, "deleteApi", &q), None)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_query_values() {
        assert_eq!(enc("/books/{id}"), "%2Fbooks%2F%7Bid%7D");
        assert_eq!(enc("json"), "json");
    }
}
