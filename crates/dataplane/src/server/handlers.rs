//! Route handlers: thin lookups over the current snapshot.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::{Path, Query, State};
use axum::http::{HeaderName, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use serde_json::{json, Value};

use super::models::{bind_name, Backend, Bind, Frontend, Server};
use super::{ApiError, ApiState, Snapshot};

type Params = Query<HashMap<String, String>>;

/// Configuration routes under `/v2/services/haproxy/configuration`.
pub(crate) fn routes() -> Router<Arc<ApiState>> {
    const CONF: &str = "/v2/services/haproxy/configuration";
    Router::new()
        .route(&format!("{CONF}/version"), get(version))
        .route(&format!("{CONF}/frontends"), get(frontends))
        .route(&format!("{CONF}/frontends/{{name}}"), get(frontend))
        .route(&format!("{CONF}/backends"), get(backends))
        .route(&format!("{CONF}/backends/{{name}}"), get(backend))
        .route(&format!("{CONF}/servers"), get(servers))
        .route(&format!("{CONF}/servers/{{name}}"), get(server))
        .route(&format!("{CONF}/binds"), get(binds))
        .route(&format!("{CONF}/binds/{{name}}"), get(bind))
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

fn parent<'a>(q: &'a HashMap<String, String>, key: &str) -> Result<&'a str, ApiError> {
    q.get(key)
        .map(String::as_str)
        .filter(|v| !v.is_empty())
        .ok_or_else(|| ApiError::BadRequest(format!("{key} in query is required")))
}

fn lookup_backend<'a>(snap: &'a Snapshot, name: &str) -> Result<&'a lb::config::Backend, ApiError> {
    snap.config
        .backend(name)
        .ok_or_else(|| ApiError::NotFound(format!("backend {name} does not exist")))
}

fn lookup_frontend<'a>(
    snap: &'a Snapshot,
    name: &str,
) -> Result<&'a lb::config::Frontend, ApiError> {
    snap.config
        .frontend(name)
        .ok_or_else(|| ApiError::NotFound(format!("frontend {name} does not exist")))
}

pub(crate) async fn info(State(state): State<Arc<ApiState>>) -> Json<Value> {
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

pub(crate) async fn version(State(state): State<Arc<ApiState>>) -> Json<u64> {
    Json(state.snapshot().version)
}

pub(crate) async fn frontends(State(state): State<Arc<ApiState>>) -> Response {
    let snap = state.snapshot();
    let list: Vec<Frontend> = snap.config.frontends.iter().map(Frontend::from).collect();
    versioned(&snap, list)
}

pub(crate) async fn frontend(
    State(state): State<Arc<ApiState>>,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let snap = state.snapshot();
    let f = Frontend::from(lookup_frontend(&snap, &name)?);
    Ok(versioned(&snap, f))
}

pub(crate) async fn backends(State(state): State<Arc<ApiState>>) -> Response {
    let snap = state.snapshot();
    let list: Vec<Backend> = snap.config.backends.iter().map(Backend::from).collect();
    versioned(&snap, list)
}

pub(crate) async fn backend(
    State(state): State<Arc<ApiState>>,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let snap = state.snapshot();
    let b = Backend::from(lookup_backend(&snap, &name)?);
    Ok(versioned(&snap, b))
}

pub(crate) async fn servers(
    State(state): State<Arc<ApiState>>,
    Query(q): Params,
) -> Result<Response, ApiError> {
    let snap = state.snapshot();
    let b = lookup_backend(&snap, parent(&q, "backend")?)?;
    let list: Vec<Server> = b.servers.iter().map(Server::from).collect();
    Ok(versioned(&snap, list))
}

pub(crate) async fn server(
    State(state): State<Arc<ApiState>>,
    Path(name): Path<String>,
    Query(q): Params,
) -> Result<Response, ApiError> {
    let snap = state.snapshot();
    let b = lookup_backend(&snap, parent(&q, "backend")?)?;
    let s = b.servers.iter().find(|s| s.name == name).ok_or_else(|| {
        ApiError::NotFound(format!(
            "server {name} does not exist in backend {}",
            b.name
        ))
    })?;
    Ok(versioned(&snap, Server::from(s)))
}

pub(crate) async fn binds(
    State(state): State<Arc<ApiState>>,
    Query(q): Params,
) -> Result<Response, ApiError> {
    let snap = state.snapshot();
    let f = lookup_frontend(&snap, parent(&q, "frontend")?)?;
    let list: Vec<Bind> = f.binds.iter().map(Bind::from).collect();
    Ok(versioned(&snap, list))
}

pub(crate) async fn bind(
    State(state): State<Arc<ApiState>>,
    Path(name): Path<String>,
    Query(q): Params,
) -> Result<Response, ApiError> {
    let snap = state.snapshot();
    let f = lookup_frontend(&snap, parent(&q, "frontend")?)?;
    let b = f
        .binds
        .iter()
        .find(|b| bind_name(b) == name)
        .ok_or_else(|| {
            ApiError::NotFound(format!("bind {name} does not exist in frontend {}", f.name))
        })?;
    Ok(versioned(&snap, Bind::from(b)))
}

pub(crate) async fn not_found() -> ApiError {
    ApiError::NotFound("path not found".to_string())
}
