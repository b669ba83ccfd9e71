//! The write path shared by every configuration change: version or
//! transaction checks, validation with rampart's parser, the atomic file
//! write, and applying the change to the balancer (runtime server changes, an
//! immediate reload, or a deferred one).

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;

use crate::edit;

use super::{ApiError, ApiState, Snapshot};

/// The query parameters of a write.
#[derive(Debug, Clone, Default)]
pub(crate) struct WriteQuery {
    pub version: Option<u64>,
    pub transaction_id: Option<String>,
    pub force_reload: bool,
}

impl WriteQuery {
    pub fn parse(q: &HashMap<String, String>) -> Result<Self, ApiError> {
        let version = match q.get("version").filter(|v| !v.is_empty()) {
            None => None,
            Some(v) => Some(v.parse::<u64>().map_err(|_| {
                ApiError::BadRequest(format!("version in query must be an integer, got '{v}'"))
            })?),
        };
        let force_reload = match q.get("force_reload").map(String::as_str) {
            None | Some("" | "false" | "False" | "0") => false,
            Some("true" | "True" | "1") => true,
            Some(v) => {
                return Err(ApiError::BadRequest(format!(
                    "force_reload in query must be true or false, got '{v}'"
                )))
            }
        };
        let transaction_id = q.get("transaction_id").filter(|t| !t.is_empty()).cloned();
        if version.is_none() && transaction_id.is_none() {
            return Err(ApiError::BadRequest(
                "version or transaction_id in query is required".into(),
            ));
        }
        Ok(WriteQuery {
            version,
            transaction_id,
            force_reload,
        })
    }
}

/// How a change reaches the running balancer.
pub(crate) enum Apply {
    Reload,
    AddServer {
        backend: String,
        name: String,
        args: Vec<String>,
    },
    DelServer {
        backend: String,
        name: String,
    },
}

/// The result of an edit: the new text, how to apply it, what to answer.
pub(crate) struct Edited<T> {
    pub text: String,
    pub apply: Apply,
    pub out: T,
}

pub(crate) enum Outcome {
    /// In effect before the answer.
    Applied,
    /// Written; a reload follows under this id.
    Deferred(String),
    /// Kept in a transaction.
    InTransaction,
}

/// The answer to a write: `done` when applied, 202 otherwise (with
/// `Reload-ID` for a deferred reload).
pub(crate) fn answer<T: Serialize>(
    outcome: Outcome,
    done: StatusCode,
    body: Option<&T>,
) -> Response {
    let status = match outcome {
        Outcome::Applied => done,
        _ => StatusCode::ACCEPTED,
    };
    let mut resp = match body {
        Some(b) => (status, Json(b)).into_response(),
        None => status.into_response(),
    };
    if let Outcome::Deferred(id) = outcome {
        if let Ok(v) = HeaderValue::from_str(&id) {
            resp.headers_mut()
                .insert(HeaderName::from_static("reload-id"), v);
        }
    }
    resp
}

impl ApiState {
    fn file_name(&self) -> String {
        self.conf.config_file.display().to_string()
    }

    /// Parses `text` as rampart would load it; an error is the client's 400.
    /// The parser may resolve host names, so it runs off the async workers.
    pub(crate) async fn validate(&self, text: &str) -> Result<lb::config::Config, ApiError> {
        let file = self.file_name();
        let text = text.to_string();
        tokio::task::spawn_blocking(move || lb::config::parse_str(&file, &text))
            .await
            .map_err(|e| ApiError::Internal(format!("validation did not finish: {e}")))?
            .map_err(|e| ApiError::BadRequest(e.to_string()))
    }

    /// Writes `snap` to the configuration file and makes it current.
    fn install(&self, snap: Arc<Snapshot>) -> Result<(), ApiError> {
        write_atomic(&self.conf.config_file, &snap.text, None)
            .map_err(|e| ApiError::Internal(format!("cannot write {}: {e}", self.file_name())))?;
        match self.config.write() {
            Ok(mut g) => *g = snap,
            Err(p) => *p.into_inner() = snap,
        }
        Ok(())
    }

    /// Puts `before`'s configuration back after a failed reload, under a new
    /// version: a client still holding the failed version must get a 409,
    /// so versions are never reused.
    fn restore(&self, before: &Snapshot) -> Result<(), ApiError> {
        let version = self.snapshot().version.max(before.version) + 1;
        self.install(Arc::new(Snapshot {
            version,
            text: edit::set_version(&before.text, version),
            config: before.config.clone(),
        }))
    }

    /// Validates and installs `text` as the next version; returns the
    /// snapshot it replaced.
    async fn commit_text(&self, snap: &Arc<Snapshot>, text: &str) -> Result<u64, ApiError> {
        let version = snap.version + 1;
        let text = edit::set_version(text, version);
        let config = self.validate(&text).await?;
        self.install(Arc::new(Snapshot {
            version,
            text,
            config,
        }))?;
        Ok(version)
    }

    /// The current snapshot, after adopting the file if someone changed it
    /// outside the API (an operator's edit and reload): it becomes the next
    /// version, so a client's older version gets a 409 instead of the edit
    /// being silently overwritten. Callers hold the writer lock.
    pub(crate) async fn sync_with_file(&self) -> Result<Arc<Snapshot>, ApiError> {
        let snap = self.snapshot();
        let on_disk = std::fs::read_to_string(&self.conf.config_file)
            .map_err(|e| ApiError::Internal(format!("cannot read {}: {e}", self.file_name())))?;
        if on_disk == snap.text {
            return Ok(snap);
        }
        let version = snap.version + 1;
        let text = edit::set_version(&on_disk, version);
        let config = self.validate(&text).await.map_err(|e| {
            ApiError::Internal(format!(
                "{} was changed outside the API and is not valid, nothing was written \
                 (fix the file, then retry): {e}",
                self.file_name()
            ))
        })?;
        tracing::info!(
            "{} was changed outside the API; adopted as version {version}",
            self.file_name()
        );
        let snap = Arc::new(Snapshot {
            version,
            text,
            config,
        });
        self.install(Arc::clone(&snap))?;
        Ok(snap)
    }
}

/// Whether `add server` at runtime would build exactly the server the new
/// file has: the runtime ignores `default-server` lines (and refuses some
/// keywords), in which case only a reload gives the file's server.
async fn runtime_matches_file(
    config: &lb::config::Config,
    backend: &str,
    name: &str,
    args: &[String],
) -> bool {
    let Some(in_file) = config
        .backend(backend)
        .and_then(|b| b.servers.iter().find(|s| s.name == name))
        .cloned()
    else {
        return false;
    };
    let (name, args) = (name.to_string(), args.to_vec());
    // The runtime parse may resolve a host name, as the engine's would.
    tokio::task::spawn_blocking(move || {
        let words: Vec<&str> = args.iter().map(String::as_str).collect();
        lb::config::parse_server_spec(&name, &words, None)
            .is_ok_and(|rt| rt.addr == in_file.addr && rt.settings == in_file.settings)
    })
    .await
    .unwrap_or(false)
}

/// Runs one configuration change, in the transaction or on the file.
pub(crate) async fn write<T>(
    state: &Arc<ApiState>,
    wq: &WriteQuery,
    edit_fn: impl FnOnce(&str, &lb::config::Config) -> Result<Edited<T>, ApiError>,
) -> Result<(Outcome, T), ApiError> {
    let _writer = state.writer.lock().await;
    if let Some(id) = &wq.transaction_id {
        let (tx, text) = state.transactions.open(id)?;
        let config = state.validate(&text).await?;
        let edited = edit_fn(&text, &config)?;
        let text = edit::set_version(&edited.text, tx.version);
        state.validate(&text).await?;
        state.transactions.store(id, &text)?;
        return Ok((Outcome::InTransaction, edited.out));
    }
    let snap = state.sync_with_file().await?;
    if let Some(v) = wq.version {
        if v != snap.version {
            return Err(version_mismatch(v, snap.version));
        }
    }
    let edited = edit_fn(&snap.text, &snap.config)?;
    state.commit_text(&snap, &edited.text).await?;
    let mut how = edited.apply;
    if let Apply::AddServer {
        backend,
        name,
        args,
    } = &how
    {
        if !runtime_matches_file(&state.snapshot().config, backend, name, args).await {
            how = Apply::Reload;
        }
    }
    let outcome = apply(state, snap, how, wq.force_reload).await?;
    Ok((outcome, edited.out))
}

pub(crate) fn version_mismatch(given: u64, current: u64) -> ApiError {
    ApiError::Conflict(format!(
        "version mismatch: version {given} given, current version is {current}"
    ))
}

/// Commits transaction `id` (the caller holds no lock).
pub(crate) async fn commit_transaction(
    state: &Arc<ApiState>,
    id: &str,
    force_reload: bool,
) -> Result<(Outcome, super::transactions::Transaction), ApiError> {
    let _writer = state.writer.lock().await;
    let (mut tx, text) = state.transactions.open(id)?;
    let snap = state.sync_with_file().await?;
    if tx.version != snap.version {
        state.transactions.close(id, "outdated");
        return Err(ApiError::NotAcceptable(format!(
            "transaction {id} is outdated: it started at version {}, current version is {}",
            tx.version, snap.version
        )));
    }
    let version = match state.commit_text(&snap, &text).await {
        Ok(v) => v,
        Err(e) => {
            state.transactions.close(id, "failed");
            return Err(e);
        }
    };
    match apply(state, snap, Apply::Reload, force_reload).await {
        Ok(outcome) => {
            state.transactions.close(id, "success");
            tx.status = "success";
            tx.version = version;
            Ok((outcome, tx))
        }
        Err(e) => {
            state.transactions.close(id, "failed");
            Err(e)
        }
    }
}

/// Applies a written change; `before` is restored if a forced reload fails.
async fn apply(
    state: &Arc<ApiState>,
    before: Arc<Snapshot>,
    how: Apply,
    force: bool,
) -> Result<Outcome, ApiError> {
    // With a reload pending, a runtime change would be answered as done yet
    // dropped from the file if that reload fails and restores; joining the
    // reload keeps file and balancer in step.
    let pending = state.reloads.has_pending();
    let at_runtime = match &how {
        Apply::Reload => false,
        _ if pending => false,
        Apply::AddServer {
            backend,
            name,
            args,
        } => state.balancer.add_server(backend, name, args).is_ok(),
        Apply::DelServer { backend, name } => state.balancer.del_server(backend, name).is_ok(),
    };
    if at_runtime {
        return Ok(Outcome::Applied);
    }
    if !force {
        let (id, started) = state.reloads.join_or_start(before);
        if started {
            tokio::spawn(deferred_reload(Arc::clone(state), id.clone()));
        }
        return Ok(Outcome::Deferred(id));
    }
    match state.balancer.reload().await {
        Ok(()) => {
            // The reload just done covers any change still waiting for one.
            if let Some(id) = state.reloads.take_any_pending() {
                state.reloads.finish(&id, Ok(()));
            }
            Ok(Outcome::Applied)
        }
        Err(e) => {
            let restored = state.restore(&before);
            Err(ApiError::Internal(match restored {
                Ok(()) => format!("reload failed: {e}; the previous configuration was restored"),
                Err(r) => format!(
                    "reload failed: {e}; restoring the previous configuration failed too: {r}"
                ),
            }))
        }
    }
}

/// The coalesced reload: after `reload_delay`, unless a forced reload came first.
async fn deferred_reload(state: Arc<ApiState>, id: String) {
    tokio::time::sleep(state.conf.reload_delay).await;
    let _writer = state.writer.lock().await;
    let Some(before) = state.reloads.take_pending(&id) else {
        return;
    };
    let result = state.balancer.reload().await;
    let result = match result {
        Ok(()) => Ok(()),
        Err(e) => Err(match state.restore(&before) {
            Ok(()) => format!("{e}; the previous configuration was restored"),
            Err(r) => format!("{e}; restoring the previous configuration failed too: {r}"),
        }),
    };
    state.reloads.finish(&id, result);
}

static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Replaces `path` atomically: a temporary file in the same directory,
/// written and fsynced, then renamed over it. `mode` sets the permissions;
/// without it the current file's are kept.
pub(crate) fn write_atomic(path: &Path, text: &str, mode: Option<u32>) -> std::io::Result<()> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(
        ".{name}.{}.{}.tmp",
        std::process::id(),
        TMP_COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let mode = mode.unwrap_or_else(|| {
        std::fs::metadata(path).map_or(0o644, |m| m.permissions().mode() & 0o7777)
    });
    let result = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)?;
        f.write_all(text.as_bytes())?;
        // The umask may have narrowed the mode asked for at creation.
        f.set_permissions(std::fs::Permissions::from_mode(mode))?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result?;
    // The rename itself is durable once the directory is synced.
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
            .collect()
    }

    #[test]
    fn write_query() {
        assert!(WriteQuery::parse(&q(&[])).is_err());
        assert!(WriteQuery::parse(&q(&[("version", "x")])).is_err());
        assert!(WriteQuery::parse(&q(&[("version", "1"), ("force_reload", "maybe")])).is_err());
        let w = WriteQuery::parse(&q(&[("version", "3"), ("force_reload", "True")])).unwrap();
        assert_eq!((w.version, w.force_reload), (Some(3), true));
        let w = WriteQuery::parse(&q(&[("transaction_id", "t")])).unwrap();
        assert_eq!(w.transaction_id.as_deref(), Some("t"));
    }

    #[test]
    fn atomic_write_keeps_mode() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("haproxy.cfg");
        write_atomic(&p, "a\n", Some(0o600)).unwrap();
        write_atomic(&p, "b\n", None).unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "b\n");
        let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
