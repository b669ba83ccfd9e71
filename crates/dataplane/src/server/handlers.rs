//! Configuration route handlers: reads are lookups over the current snapshot
//! (or a transaction's text); writes are text edits run through
//! [`super::write::write`].

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use serde_json::{json, Map, Value};

use crate::edit::{self, Section};

use super::models::{
    bind_name, body_object, diff, flatten, Backend, Bind, Directives, Frontend, Global, Server,
};
use super::write::{
    answer, commit_transaction, version_mismatch, write, Apply, Edited, WriteQuery,
};
use super::{ApiError, ApiState, Snapshot};

type Params = Query<HashMap<String, String>>;
type St = State<Arc<ApiState>>;

/// Configuration routes under `/v2/services/haproxy/configuration`, with
/// transactions and reloads.
pub(crate) fn routes() -> Router<Arc<ApiState>> {
    const CONF: &str = "/v2/services/haproxy/configuration";
    const SVC: &str = "/v2/services/haproxy";
    Router::new()
        .route(&format!("{CONF}/version"), get(version))
        .route(&format!("{CONF}/global"), get(global).put(put_global))
        .route(
            &format!("{CONF}/frontends"),
            get(list_proxies::<Frontend>).post(post_proxy::<Frontend>),
        )
        .route(
            &format!("{CONF}/frontends/{{name}}"),
            get(get_proxy::<Frontend>)
                .put(put_proxy::<Frontend>)
                .delete(delete_proxy::<Frontend>),
        )
        .route(
            &format!("{CONF}/backends"),
            get(list_proxies::<Backend>).post(post_proxy::<Backend>),
        )
        .route(
            &format!("{CONF}/backends/{{name}}"),
            get(get_proxy::<Backend>)
                .put(put_proxy::<Backend>)
                .delete(delete_proxy::<Backend>),
        )
        .route(&format!("{CONF}/servers"), get(servers).post(post_server))
        .route(
            &format!("{CONF}/servers/{{name}}"),
            get(server).put(put_server).delete(delete_server),
        )
        .route(&format!("{CONF}/binds"), get(binds).post(post_bind))
        .route(
            &format!("{CONF}/binds/{{name}}"),
            get(bind).put(put_bind).delete(delete_bind),
        )
        .route(
            &format!("{SVC}/transactions"),
            get(transactions).post(start_transaction),
        )
        .route(
            &format!("{SVC}/transactions/{{id}}"),
            get(transaction).put(commit).delete(delete_transaction),
        )
        .route(&format!("{SVC}/reloads"), get(reloads))
        .route(&format!("{SVC}/reloads/{{id}}"), get(reload))
}

/// Configuration reads carry the version in the body and, as HAProxy's API
/// does, in a `Configuration-Version` header.
fn versioned<T: Serialize>(snap: &Snapshot, data: T) -> Response {
    let mut resp = Json(json!({ "_version": snap.version, "data": data })).into_response();
    resp.headers_mut().insert(
        HeaderName::from_static("configuration-version"),
        HeaderValue::from(snap.version),
    );
    resp
}

/// The configuration a read sees: the current one, or a transaction's.
async fn view(state: &ApiState, q: &HashMap<String, String>) -> Result<Arc<Snapshot>, ApiError> {
    let Some(id) = q.get("transaction_id").filter(|t| !t.is_empty()) else {
        return Ok(state.snapshot());
    };
    let (tx, text) = state.transactions.open(id)?;
    let config = state.validate(&text).await?;
    Ok(Arc::new(Snapshot {
        version: tx.version,
        text,
        config,
    }))
}

fn parent<'a>(q: &'a HashMap<String, String>, key: &str) -> Result<&'a str, ApiError> {
    q.get(key)
        .map(String::as_str)
        .filter(|v| !v.is_empty())
        .ok_or_else(|| ApiError::BadRequest(format!("{key} in query is required")))
}

fn lookup_backend<'a>(
    config: &'a lb::config::Config,
    name: &str,
) -> Result<&'a lb::config::Backend, ApiError> {
    config
        .backend(name)
        .ok_or_else(|| ApiError::NotFound(format!("backend {name} does not exist")))
}

fn lookup_frontend<'a>(
    config: &'a lb::config::Config,
    name: &str,
) -> Result<&'a lb::config::Frontend, ApiError> {
    config
        .frontend(name)
        .ok_or_else(|| ApiError::NotFound(format!("frontend {name} does not exist")))
}

/// The section of `kind` named `name`; a `listen` section is refused by name
/// since one edit would change both its frontend and backend.
fn own_section(text: &str, kind: &str, name: &str) -> Result<Section, ApiError> {
    if let Some(s) = edit::find_section(text, &[kind], Some(name)) {
        return Ok(s);
    }
    if edit::find_section(text, &["listen"], Some(name)).is_some() {
        return Err(ApiError::BadRequest(format!(
            "{kind} {name} is a listen section; edit it in the file"
        )));
    }
    Err(ApiError::NotFound(format!("{kind} {name} does not exist")))
}

/// The section holding a backend's servers or a frontend's binds.
fn parent_section(text: &str, kind: &str, name: &str) -> Result<Section, ApiError> {
    edit::find_section(text, &[kind, "listen"], Some(name))
        .ok_or_else(|| ApiError::NotFound(format!("{kind} {name} does not exist")))
}

/// The line of a backend's `server` or a frontend's `bind` named `name` in `sec`.
fn child_line(
    text: &str,
    sec: &Section,
    find: fn(&str, &Section, &str) -> Option<usize>,
    (what, name): (&str, &str),
    parent_kind: &str,
) -> Result<usize, ApiError> {
    let parent = sec.name.as_deref().unwrap_or_default();
    find(text, sec, name).ok_or_else(|| {
        ApiError::NotFound(format!(
            "{what} {name} does not exist in {parent_kind} {parent}"
        ))
    })
}

/// The words of line `line` of `text`, as the model's line updates take them.
fn line_words(text: &str, line: usize) -> Vec<&str> {
    edit::words(text.split('\n').nth(line).unwrap_or_default())
}

fn exists(what: &str, name: &str) -> ApiError {
    ApiError::Conflict(format!("{what} {name} already exists"))
}

fn same_name(path: &str, body: &str) -> Result<(), ApiError> {
    if path == body {
        Ok(())
    } else {
        Err(ApiError::BadRequest(format!(
            "name in body ({body}) differs from the name in the path ({path}); renaming is not supported"
        )))
    }
}

pub(crate) async fn info(State(state): St) -> Json<Value> {
    let now = unix_secs(SystemTime::now());
    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_default();
    Json(json!({
        "api": {
            "version": concat!("rampart ", env!("CARGO_PKG_VERSION")),
            // A valid date-time keeps strict clients parsing when the build
            // does not stamp one.
            "build_date": option_env!("RAMPART_BUILD_DATE").unwrap_or("1970-01-01T00:00:00.000Z"),
        },
        "system": {
            "hostname": hostname,
            "os_string": std::env::consts::OS,
            "time": now,
            "uptime": now.saturating_sub(unix_secs(state.started)),
        },
    }))
}

fn unix_secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

pub(crate) async fn health() -> Json<Value> {
    Json(json!({ "haproxy": "up" }))
}

pub(crate) async fn version(State(state): St, Query(q): Params) -> Result<Json<u64>, ApiError> {
    Ok(Json(view(&state, &q).await?.version))
}

// ---- global ----

async fn global(State(state): St, Query(q): Params) -> Result<Response, ApiError> {
    let snap = view(&state, &q).await?;
    Ok(versioned(&snap, Global::from(&snap.config.global)))
}

async fn put_global(State(state): St, Query(q): Params, body: Bytes) -> Result<Response, ApiError> {
    let wq = WriteQuery::parse(&q)?;
    let new = Global::from_json(&body_object(&body)?)?;
    let (outcome, out) = write(&state, &wq, |text, config| {
        let old = Global::from(&config.global);
        let changes = diff(&old.directives(), &new.directives());
        let text = match edit::find_section(text, &["global"], None) {
            Some(sec) => edit::replace_keys(text, &sec, &changes),
            None => edit::prepend_section(text, "global", &flatten(&changes)),
        };
        Ok(Edited {
            text,
            apply: Apply::Reload,
            out: new,
        })
    })
    .await?;
    Ok(answer(outcome, StatusCode::OK, Some(&out)))
}

// ---- frontends and backends: the same handlers over either model ----

/// A proxy section the API edits as a whole: a frontend or a backend.
trait ProxyModel: Serialize + Send + Sync + Sized + 'static {
    /// `frontend` or `backend`, as in the file and in messages.
    const KIND: &'static str;
    fn parse(obj: &Map<String, Value>) -> Result<Self, ApiError>;
    fn name(&self) -> &str;
    fn lines(&self) -> Directives;
    fn all(config: &lb::config::Config) -> Vec<Self>;
    fn find(config: &lb::config::Config, name: &str) -> Result<Self, ApiError>;
}

impl ProxyModel for Frontend {
    const KIND: &'static str = "frontend";
    fn parse(obj: &Map<String, Value>) -> Result<Self, ApiError> {
        Frontend::from_json(obj)
    }
    fn name(&self) -> &str {
        &self.name
    }
    fn lines(&self) -> Directives {
        self.directives()
    }
    fn all(config: &lb::config::Config) -> Vec<Self> {
        config.frontends.iter().map(Frontend::from).collect()
    }
    fn find(config: &lb::config::Config, name: &str) -> Result<Self, ApiError> {
        lookup_frontend(config, name).map(Frontend::from)
    }
}

impl ProxyModel for Backend {
    const KIND: &'static str = "backend";
    fn parse(obj: &Map<String, Value>) -> Result<Self, ApiError> {
        Backend::from_json(obj)
    }
    fn name(&self) -> &str {
        &self.name
    }
    fn lines(&self) -> Directives {
        self.directives()
    }
    fn all(config: &lb::config::Config) -> Vec<Self> {
        config.backends.iter().map(Backend::from).collect()
    }
    fn find(config: &lb::config::Config, name: &str) -> Result<Self, ApiError> {
        lookup_backend(config, name).map(Backend::from)
    }
}

async fn list_proxies<M: ProxyModel>(
    State(state): St,
    Query(q): Params,
) -> Result<Response, ApiError> {
    let snap = view(&state, &q).await?;
    Ok(versioned(&snap, M::all(&snap.config)))
}

async fn get_proxy<M: ProxyModel>(
    State(state): St,
    Path(name): Path<String>,
    Query(q): Params,
) -> Result<Response, ApiError> {
    let snap = view(&state, &q).await?;
    let m = M::find(&snap.config, &name)?;
    Ok(versioned(&snap, m))
}

async fn post_proxy<M: ProxyModel>(
    State(state): St,
    Query(q): Params,
    body: Bytes,
) -> Result<Response, ApiError> {
    let wq = WriteQuery::parse(&q)?;
    let m = M::parse(&body_object(&body)?)?;
    let (outcome, out) = write(&state, &wq, |text, config| {
        if M::find(config, m.name()).is_ok()
            || edit::find_section(text, &[M::KIND, "listen"], Some(m.name())).is_some()
        {
            return Err(exists(M::KIND, m.name()));
        }
        let header = format!("{} {}", M::KIND, m.name());
        Ok(Edited {
            text: edit::append_section(text, &header, &flatten(&m.lines())),
            apply: Apply::Reload,
            out: m,
        })
    })
    .await?;
    Ok(answer(outcome, StatusCode::CREATED, Some(&out)))
}

async fn put_proxy<M: ProxyModel>(
    State(state): St,
    Path(name): Path<String>,
    Query(q): Params,
    body: Bytes,
) -> Result<Response, ApiError> {
    let wq = WriteQuery::parse(&q)?;
    let new = M::parse(&body_object(&body)?)?;
    let (outcome, out) = write(&state, &wq, |text, config| {
        let sec = own_section(text, M::KIND, &name)?;
        same_name(&name, new.name())?;
        let old = M::find(config, &name)?;
        let changes = diff(&old.lines(), &new.lines());
        Ok(Edited {
            text: edit::replace_keys(text, &sec, &changes),
            apply: Apply::Reload,
            out: new,
        })
    })
    .await?;
    Ok(answer(outcome, StatusCode::OK, Some(&out)))
}

async fn delete_proxy<M: ProxyModel>(
    State(state): St,
    Path(name): Path<String>,
    Query(q): Params,
) -> Result<Response, ApiError> {
    let wq = WriteQuery::parse(&q)?;
    let (outcome, ()) = write(&state, &wq, |text, _| {
        let sec = own_section(text, M::KIND, &name)?;
        Ok(Edited {
            text: edit::delete_section(text, &sec),
            apply: Apply::Reload,
            out: (),
        })
    })
    .await?;
    Ok(answer::<()>(outcome, StatusCode::NO_CONTENT, None))
}

// ---- servers ----

async fn servers(State(state): St, Query(q): Params) -> Result<Response, ApiError> {
    let snap = view(&state, &q).await?;
    let b = lookup_backend(&snap.config, parent(&q, "backend")?)?;
    let list: Vec<Server> = b.servers.iter().map(Server::from).collect();
    Ok(versioned(&snap, list))
}

fn find_server<'a>(
    b: &'a lb::config::Backend,
    name: &str,
) -> Result<&'a lb::config::Server, ApiError> {
    b.servers.iter().find(|s| s.name == name).ok_or_else(|| {
        ApiError::NotFound(format!(
            "server {name} does not exist in backend {}",
            b.name
        ))
    })
}

async fn server(
    State(state): St,
    Path(name): Path<String>,
    Query(q): Params,
) -> Result<Response, ApiError> {
    let snap = view(&state, &q).await?;
    let b = lookup_backend(&snap.config, parent(&q, "backend")?)?;
    let s = find_server(b, &name)?;
    Ok(versioned(&snap, Server::from(s)))
}

async fn post_server(
    State(state): St,
    Query(q): Params,
    body: Bytes,
) -> Result<Response, ApiError> {
    let backend = parent(&q, "backend")?.to_string();
    let wq = WriteQuery::parse(&q)?;
    let s = Server::from_json(&body_object(&body)?)?;
    let (outcome, out) = write(&state, &wq, |text, _| {
        let sec = parent_section(text, "backend", &backend)?;
        if edit::server_line(text, &sec, &s.name).is_some() {
            return Err(exists("server", &s.name));
        }
        Ok(Edited {
            text: edit::insert_line(text, &sec, "server", &s.line()),
            apply: Apply::AddServer {
                backend: backend.clone(),
                name: s.name.clone(),
                args: s.args(),
            },
            out: s,
        })
    })
    .await?;
    Ok(answer(outcome, StatusCode::CREATED, Some(&out)))
}

async fn put_server(
    State(state): St,
    Path(name): Path<String>,
    Query(q): Params,
    body: Bytes,
) -> Result<Response, ApiError> {
    let backend = parent(&q, "backend")?.to_string();
    let wq = WriteQuery::parse(&q)?;
    let new = Server::from_json(&body_object(&body)?)?;
    let (outcome, out) = write(&state, &wq, |text, config| {
        let sec = parent_section(text, "backend", &backend)?;
        let old = Server::from(find_server(lookup_backend(config, &backend)?, &name)?);
        let line = child_line(text, &sec, edit::server_line, ("server", &name), "backend")?;
        same_name(&name, &new.name)?;
        let updated = new.updated_line(&old, &line_words(text, line));
        Ok(Edited {
            text: edit::replace_line(text, line, &updated),
            apply: Apply::Reload,
            out: new,
        })
    })
    .await?;
    Ok(answer(outcome, StatusCode::OK, Some(&out)))
}

async fn delete_server(
    State(state): St,
    Path(name): Path<String>,
    Query(q): Params,
) -> Result<Response, ApiError> {
    let backend = parent(&q, "backend")?.to_string();
    let wq = WriteQuery::parse(&q)?;
    let (outcome, ()) = write(&state, &wq, |text, _| {
        let sec = parent_section(text, "backend", &backend)?;
        let line = child_line(text, &sec, edit::server_line, ("server", &name), "backend")?;
        Ok(Edited {
            text: edit::delete_line(text, line),
            apply: Apply::DelServer {
                backend: backend.clone(),
                name: name.clone(),
            },
            out: (),
        })
    })
    .await?;
    Ok(answer::<()>(outcome, StatusCode::NO_CONTENT, None))
}

// ---- binds ----

async fn binds(State(state): St, Query(q): Params) -> Result<Response, ApiError> {
    let snap = view(&state, &q).await?;
    let f = lookup_frontend(&snap.config, parent(&q, "frontend")?)?;
    let list: Vec<Bind> = f.binds.iter().map(Bind::from).collect();
    Ok(versioned(&snap, list))
}

fn find_bind<'a>(
    f: &'a lb::config::Frontend,
    name: &str,
) -> Result<&'a lb::config::Bind, ApiError> {
    f.binds
        .iter()
        .find(|b| bind_name(b) == name)
        .ok_or_else(|| {
            ApiError::NotFound(format!("bind {name} does not exist in frontend {}", f.name))
        })
}

async fn bind(
    State(state): St,
    Path(name): Path<String>,
    Query(q): Params,
) -> Result<Response, ApiError> {
    let snap = view(&state, &q).await?;
    let f = lookup_frontend(&snap.config, parent(&q, "frontend")?)?;
    Ok(versioned(&snap, Bind::from(find_bind(f, &name)?)))
}

async fn post_bind(State(state): St, Query(q): Params, body: Bytes) -> Result<Response, ApiError> {
    let frontend = parent(&q, "frontend")?.to_string();
    let wq = WriteQuery::parse(&q)?;
    let b = Bind::from_json(&body_object(&body)?)?;
    let (outcome, out) = write(&state, &wq, |text, _| {
        let sec = parent_section(text, "frontend", &frontend)?;
        if edit::bind_line(text, &sec, &b.name).is_some() {
            return Err(exists("bind", &b.name));
        }
        Ok(Edited {
            text: edit::insert_line(text, &sec, "bind", &b.line()),
            apply: Apply::Reload,
            out: b,
        })
    })
    .await?;
    Ok(answer(outcome, StatusCode::CREATED, Some(&out)))
}

async fn put_bind(
    State(state): St,
    Path(name): Path<String>,
    Query(q): Params,
    body: Bytes,
) -> Result<Response, ApiError> {
    let frontend = parent(&q, "frontend")?.to_string();
    let wq = WriteQuery::parse(&q)?;
    let new = Bind::from_json(&body_object(&body)?)?;
    let (outcome, out) = write(&state, &wq, |text, config| {
        let sec = parent_section(text, "frontend", &frontend)?;
        let old = Bind::from(find_bind(lookup_frontend(config, &frontend)?, &name)?);
        let line = child_line(text, &sec, edit::bind_line, ("bind", &name), "frontend")?;
        let updated = new.updated_line(&old, &line_words(text, line));
        Ok(Edited {
            text: edit::replace_line(text, line, &updated),
            apply: Apply::Reload,
            out: new,
        })
    })
    .await?;
    Ok(answer(outcome, StatusCode::OK, Some(&out)))
}

async fn delete_bind(
    State(state): St,
    Path(name): Path<String>,
    Query(q): Params,
) -> Result<Response, ApiError> {
    let frontend = parent(&q, "frontend")?.to_string();
    let wq = WriteQuery::parse(&q)?;
    let (outcome, ()) = write(&state, &wq, |text, _| {
        let sec = parent_section(text, "frontend", &frontend)?;
        let line = child_line(text, &sec, edit::bind_line, ("bind", &name), "frontend")?;
        Ok(Edited {
            text: edit::delete_line(text, line),
            apply: Apply::Reload,
            out: (),
        })
    })
    .await?;
    Ok(answer::<()>(outcome, StatusCode::NO_CONTENT, None))
}

// ---- transactions ----

async fn transactions(State(state): St, Query(q): Params) -> Json<Value> {
    let status = q
        .get("status")
        .map(String::as_str)
        .filter(|s| !s.is_empty());
    Json(json!(state.transactions.list(status)))
}

async fn start_transaction(State(state): St, Query(q): Params) -> Result<Response, ApiError> {
    let version = q
        .get("version")
        .ok_or_else(|| ApiError::BadRequest("version in query is required".into()))?
        .parse::<u64>()
        .map_err(|_| ApiError::BadRequest("version in query must be an integer".into()))?;
    let _writer = state.writer.lock().await;
    let snap = state.sync_with_file().await?;
    if version != snap.version {
        return Err(version_mismatch(version, snap.version));
    }
    let tx = state.transactions.start(snap.version, &snap.text)?;
    Ok((StatusCode::CREATED, Json(tx)).into_response())
}

async fn transaction(State(state): St, Path(id): Path<String>) -> Result<Response, ApiError> {
    let tx = state
        .transactions
        .get(&id)
        .ok_or_else(|| ApiError::NotFound(format!("transaction {id} does not exist")))?;
    Ok(Json(tx).into_response())
}

async fn commit(
    State(state): St,
    Path(id): Path<String>,
    Query(q): Params,
) -> Result<Response, ApiError> {
    let force = matches!(
        q.get("force_reload").map(String::as_str),
        Some("true" | "True" | "1")
    );
    let (outcome, tx) = commit_transaction(&state, &id, force).await?;
    Ok(answer(outcome, StatusCode::OK, Some(&tx)))
}

async fn delete_transaction(
    State(state): St,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    if state.transactions.delete(&id) {
        Ok(StatusCode::NO_CONTENT.into_response())
    } else {
        Err(ApiError::NotFound(format!(
            "transaction {id} does not exist"
        )))
    }
}

// ---- reloads ----

async fn reloads(State(state): St) -> Json<Value> {
    Json(json!(state.reloads.list()))
}

async fn reload(State(state): St, Path(id): Path<String>) -> Result<Response, ApiError> {
    let r = state
        .reloads
        .get(&id)
        .ok_or_else(|| ApiError::NotFound(format!("reload {id} does not exist")))?;
    Ok(Json(r).into_response())
}

pub(crate) async fn not_found() -> ApiError {
    ApiError::NotFound("path not found".to_string())
}
