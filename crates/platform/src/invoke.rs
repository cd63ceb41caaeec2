//! The one invocation path. Every invocation — `POST .../actions/{name}`, a web action, a
//! trigger firing a rule, a sequence running a component, an alarm — goes through
//! [`Platform::resolve`] (name → action, package and binding parameters, access check) and
//! [`Platform::invoke`] (parameter merge, admission, placement or native run, one recorded
//! activation). Admission and durability steps belong here, once: VM-run actions go
//! through [`Platform::submit`] (namespace rate limit, fair share, journal before 202);
//! platform-run ones (sequences, `whisk.system` builtins) are rate-limited per namespace and
//! bounded in flight here, and their components come back through this path.

use crate::api::{err, internal, not_found, ApiError};
use crate::entity::{collection, Package};
use crate::model::{Action, Activation, KeyValue, KIND_BUILTIN, KIND_SEQUENCE};
use crate::names::{EntityPath, SYSTEM_NAMESPACE};
use crate::Platform;
use axum::http::StatusCode;
use serde_json::{json, Map, Value};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Most actions a sequence may run, nested sequences included (OpenWhisk: 50).
pub const MAX_SEQUENCE_ACTIONS: usize = 50;

/// A resolved action with the parameters it inherits from its package (and binding).
#[derive(Clone)]
pub(crate) struct Target {
    /// The action.
    pub action: Arc<Action>,
    /// Package parameters (binding over bound package), the lowest precedence.
    pub inherited: Vec<KeyValue>,
}

/// An accepted invocation: its activation id and the recorded activation when it ends.
pub(crate) use crate::Accepted as Started;

/// An outcome of a platform-run (builtin or sequence) action: result or (status code,
/// message), and log lines.
pub(crate) type Outcome = (Result<Value, (u8, String)>, Vec<String>);

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

fn forbidden(ns: &str) -> ApiError {
    err(
        StatusCode::FORBIDDEN,
        format!("The supplied authentication is not authorized to access '{ns}'."),
    )
}

impl Platform {
    /// A package, from `whisk.system` or the store.
    pub(crate) fn package(&self, ns: &str, name: &str) -> Result<Option<Package>, ApiError> {
        if ns == SYSTEM_NAMESPACE {
            return Ok(crate::system::package(name));
        }
        Ok(self
            .store
            .get_entity::<Package>(collection::PACKAGES, ns, name)
            .map_err(internal)?
            .map(|s| {
                let mut p = s.doc;
                p.common.version = s.version;
                p
            }))
    }

    /// Whether `caller` may read `package` of namespace `ns` (own, shared, or system).
    pub(crate) fn may_read(caller: &str, ns: &str, package: &Package) -> bool {
        caller == ns || ns == SYSTEM_NAMESPACE || package.common.publish
    }

    /// Resolve an action path for `caller`: follows a package binding, checks that another
    /// namespace's package is shared, and collects the package parameters.
    pub(crate) fn resolve(&self, caller: &str, path: &EntityPath) -> Result<Target, ApiError> {
        let mut inherited = Vec::new();
        let (ns, store_name) = match &path.package {
            None => {
                if path.namespace != caller {
                    return Err(forbidden(&path.namespace));
                }
                (path.namespace.clone(), path.name.clone())
            }
            Some(pkg) => {
                let p = self.package(&path.namespace, pkg)?.ok_or_else(not_found)?;
                if !Self::may_read(caller, &path.namespace, &p) {
                    return Err(forbidden(&path.namespace));
                }
                match &p.binding {
                    Some(b) => {
                        let bound = self.package(&b.namespace, &b.name)?.ok_or_else(|| {
                            err(
                                StatusCode::NOT_FOUND,
                                format!(
                                    "The binding '{}' refers to '/{}/{}', which does not exist.",
                                    p.common.name, b.namespace, b.name
                                ),
                            )
                        })?;
                        if !Self::may_read(&path.namespace, &b.namespace, &bound) {
                            return Err(forbidden(&b.namespace));
                        }
                        inherited.extend(bound.parameters.iter().cloned());
                        inherited.extend(p.parameters.iter().cloned());
                        (b.namespace.clone(), format!("{}/{}", b.name, path.name))
                    }
                    None => {
                        inherited.extend(p.parameters.iter().cloned());
                        (path.namespace.clone(), format!("{pkg}/{}", path.name))
                    }
                }
            }
        };
        let action = if ns == SYSTEM_NAMESPACE {
            crate::system::action(&store_name)
        } else {
            self.action(&ns, &store_name)?
        };
        Ok(Target {
            action: action.ok_or_else(not_found)?,
            inherited,
        })
    }

    /// Invoke a resolved action for `caller` with the request's parameters (which win over
    /// the action's, which win over the package's). Returns once the invocation is
    /// accepted; refusals (429, 503) create no activation.
    pub(crate) async fn invoke(
        self: &Arc<Self>,
        target: Target,
        caller: String,
        request: Map<String, Value>,
    ) -> Result<Started, ApiError> {
        let accepted_at = Instant::now();
        let Target { action, inherited } = target;
        let mut params = request;
        for KeyValue { key, value } in action.parameters.iter().chain(inherited.iter().rev()) {
            params.entry(key.clone()).or_insert_with(|| value.clone());
        }
        match action.kind.as_str() {
            KIND_SEQUENCE => {
                self.admit_native(&caller)?;
                let fut = run_sequence(self.clone(), action.clone(), caller.clone(), params);
                Ok(self.start_native(action, caller, accepted_at, fut))
            }
            KIND_BUILTIN => {
                self.admit_native(&caller)?;
                let (p, a, c) = (self.clone(), action.clone(), caller.clone());
                let fut = Box::pin(async move { crate::system::run(&p, &a, &c, params).await });
                Ok(self.start_native(action, caller, accepted_at, fut))
            }
            // Limits, fair share, journal, placement: refusals (429/503) create no activation.
            _ => {
                self.submit(crate::InvokeRequest {
                    action,
                    namespace: caller,
                    params,
                    accepted_at,
                })
                .await
            }
        }
    }

    /// Admission of a platform-run action: the namespace's invocations per minute and the
    /// platform's bound on work in flight.
    fn admit_native(&self, caller: &str) -> Result<(), ApiError> {
        let limits = self.limits(caller);
        self.limiter
            .check(
                caller,
                crate::tenants::Kind::Invocation,
                limits.invocations_per_minute,
            )
            .map_err(|m| self.throttle(m))?;
        if self.fair.is_closed() {
            return Err(err(
                StatusCode::SERVICE_UNAVAILABLE,
                "The platform is shutting down.",
            ));
        }
        if self.inflight.load(Ordering::Acquire) >= self.config.max_inflight {
            return Err(self.throttle("Too many requests in flight; retry later.".into()));
        }
        Ok(())
    }

    /// Invoke and wait for the recorded activation.
    pub(crate) async fn invoke_and_wait(
        self: &Arc<Self>,
        target: Target,
        caller: String,
        request: Map<String, Value>,
    ) -> Result<Activation, ApiError> {
        let started = self.invoke(target, caller, request).await?;
        started
            .done
            .await
            .map_err(|_| internal("the invocation was lost"))
    }

    /// Run background work that must finish before shutdown completes (counted in flight).
    pub(crate) fn spawn_tracked(self: &Arc<Self>, fut: impl Future<Output = ()> + Send + 'static) {
        self.inflight.fetch_add(1, Ordering::AcqRel);
        let p = self.clone();
        tokio::spawn(async move {
            fut.await;
            if p.inflight.fetch_sub(1, Ordering::AcqRel) == 1 {
                p.drained.notify_waiters();
            }
        });
    }

    /// Run a platform-side action (builtin or sequence) in the background and record it.
    fn start_native(
        self: &Arc<Self>,
        action: Arc<Action>,
        caller: String,
        accepted_at: Instant,
        fut: BoxFuture<Outcome>,
    ) -> Started {
        let id = crate::model::new_activation_id();
        let (tx, done) = tokio::sync::oneshot::channel();
        self.inflight.fetch_add(1, Ordering::AcqRel);
        let (p, id2) = (self.clone(), id.clone());
        tokio::spawn(async move {
            let (result, logs) = fut.await;
            let act = p.activation(
                &action,
                &caller,
                id2.clone(),
                accepted_at,
                None,
                result,
                logs,
                Duration::ZERO,
            );
            match p.journal.finish(act.clone()).await {
                Ok(()) => {
                    let _ = tx.send(act);
                }
                Err(e) => {
                    tracing::error!(error = %e, id = %id2, "cannot record an activation")
                }
            }
            if p.inflight.fetch_sub(1, Ordering::AcqRel) == 1 {
                p.drained.notify_waiters();
            }
        });
        Started { id, done }
    }

    /// Check a sequence's components for `caller`: each exists and is readable, the
    /// sequence `own` is not reachable from them (no cycle), and at most
    /// [`MAX_SEQUENCE_ACTIONS`] actions run in all. Returns the components fully qualified.
    pub(crate) fn check_sequence(
        &self,
        caller: &str,
        own: &EntityPath,
        components: &[String],
    ) -> Result<Vec<String>, ApiError> {
        if components.is_empty() {
            return Err(err(
                StatusCode::BAD_REQUEST,
                "A sequence needs at least one component.",
            ));
        }
        let mut out = Vec::new();
        let mut count = 0usize;
        for c in components {
            let path = EntityPath::parse(c, caller).map_err(|m| err(StatusCode::BAD_REQUEST, m))?;
            self.walk_sequence(caller, own, &path, &mut count, 0)?;
            out.push(path.to_string());
        }
        Ok(out)
    }

    fn walk_sequence(
        &self,
        caller: &str,
        own: &EntityPath,
        path: &EntityPath,
        count: &mut usize,
        depth: usize,
    ) -> Result<(), ApiError> {
        if path == own {
            return Err(err(
                StatusCode::BAD_REQUEST,
                format!("The sequence '{own}' may not refer to itself (a cycle through '{path}')."),
            ));
        }
        let target = self.resolve(caller, path).map_err(|e| {
            if e.0 == StatusCode::NOT_FOUND {
                err(
                    StatusCode::BAD_REQUEST,
                    format!("The sequence component '{path}' does not exist."),
                )
            } else {
                e
            }
        })?;
        let resolved = EntityPath::from_store(&target.action.namespace, &target.action.name);
        if &resolved == own {
            return Err(err(
                StatusCode::BAD_REQUEST,
                format!("The sequence '{own}' may not refer to itself (a cycle through '{path}')."),
            ));
        }
        if target.action.kind == KIND_SEQUENCE {
            if depth > MAX_SEQUENCE_ACTIONS {
                return Err(err(
                    StatusCode::BAD_REQUEST,
                    "The sequence nests too deeply.",
                ));
            }
            for c in target.action.components() {
                let p = EntityPath::parse(&c, &target.action.namespace)
                    .map_err(|m| err(StatusCode::BAD_REQUEST, m))?;
                self.walk_sequence(caller, own, &p, count, depth + 1)?;
            }
        } else {
            *count += 1;
            if *count > MAX_SEQUENCE_ACTIONS {
                return Err(err(
                    StatusCode::BAD_REQUEST,
                    format!("Too many actions in the sequence (at most {MAX_SEQUENCE_ACTIONS})."),
                ));
            }
        }
        Ok(())
    }
}

/// Run a sequence: each component's result is the next one's parameters; the first error
/// stops the chain and is the sequence's result. The logs list the component activation ids.
fn run_sequence(
    p: Arc<Platform>,
    action: Arc<Action>,
    caller: String,
    params: Map<String, Value>,
) -> BoxFuture<Outcome> {
    Box::pin(async move {
        let mut logs = Vec::new();
        let mut current = params;
        let components = action.components();
        for c in components {
            let step = async {
                let path = EntityPath::parse(&c, &action.namespace)
                    .map_err(|m| (2u8, format!("Bad sequence component: {m}")))?;
                // Components run with the sequence owner's access (it checked them at create).
                let target = p.resolve(&action.namespace, &path).map_err(|e| {
                    (
                        2u8,
                        format!("Sequence component '{path}' cannot run: {}", e.1),
                    )
                })?;
                let (p2, who, input) = (p.clone(), caller.clone(), current.clone());
                let started: BoxFuture<Result<Started, ApiError>> =
                    Box::pin(async move { p2.invoke(target, who, input).await });
                let started = started
                    .await
                    .map_err(|e| (3u8, format!("Sequence component '{path}': {}", e.1)))?;
                let id = started.id.clone();
                let act = started
                    .done
                    .await
                    .map_err(|_| (3u8, "A sequence component was lost.".to_string()))?;
                Ok::<_, (u8, String)>((id, act))
            };
            match step.await {
                Ok((id, act)) => {
                    logs.push(id);
                    if act.status_code != 0 {
                        return (Err((act.status_code, error_text(&act.result))), logs);
                    }
                    current = match act.result {
                        Value::Object(m) => m,
                        other => {
                            let mut m = Map::new();
                            m.insert("value".into(), other);
                            m
                        }
                    };
                }
                Err(e) => return (Err(e), logs),
            }
        }
        (Ok(Value::Object(current)), logs)
    })
}

fn error_text(result: &Value) -> String {
    match result.get("error") {
        Some(Value::String(s)) => s.clone(),
        Some(v) => v.to_string(),
        None => json!(result).to_string(),
    }
}
