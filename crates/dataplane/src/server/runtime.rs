//! Runtime and statistics endpoints: `/v2/services/haproxy/runtime/…` and
//! `/v2/services/haproxy/stats/native`, answered from the running [`super::Balancer`].
//! As in HAProxy's API these read and change the running process only, never the file, and
//! carry no `_version`.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::balancer::{AdminState, RuntimeServer, StatRow};
use super::{ApiError, ApiState};

/// What the answers name as the runtime API they came from.
const RUNTIME_API: &str = "rampart";

type Params = Query<HashMap<String, String>>;

pub(crate) fn routes() -> Router<Arc<ApiState>> {
    const RT: &str = "/v2/services/haproxy/runtime";
    Router::new()
        .route(&format!("{RT}/info"), get(info))
        .route(&format!("{RT}/servers"), get(servers))
        .route(
            &format!("{RT}/servers/{{name}}"),
            get(server).put(put_server),
        )
        .route("/v2/services/haproxy/stats/native", get(native_stats))
}

async fn info(State(state): State<Arc<ApiState>>) -> Json<Value> {
    let info: Map<String, Value> = state.balancer().info().into_iter().collect();
    Json(json!([{ "runtimeAPI": RUNTIME_API, "info": info }]))
}

fn backend_param(q: &HashMap<String, String>) -> Result<&str, ApiError> {
    q.get("backend")
        .map(String::as_str)
        .filter(|b| !b.is_empty())
        .ok_or_else(|| ApiError::BadRequest("backend in query is required".into()))
}

fn running(state: &ApiState, backend: &str) -> Result<Vec<RuntimeServer>, ApiError> {
    state
        .balancer()
        .runtime_servers(backend)
        .ok_or_else(|| ApiError::NotFound(format!("backend {backend} does not exist")))
}

fn one(state: &ApiState, backend: &str, name: &str) -> Result<RuntimeServer, ApiError> {
    running(state, backend)?
        .into_iter()
        .find(|s| s.name == name)
        .ok_or_else(|| {
            ApiError::NotFound(format!("server {name} does not exist in backend {backend}"))
        })
}

async fn servers(
    State(state): State<Arc<ApiState>>,
    Query(q): Params,
) -> Result<Json<Vec<RuntimeServer>>, ApiError> {
    Ok(Json(running(&state, backend_param(&q)?)?))
}

async fn server(
    State(state): State<Arc<ApiState>>,
    Path(name): Path<String>,
    Query(q): Params,
) -> Result<Json<RuntimeServer>, ApiError> {
    Ok(Json(one(&state, backend_param(&q)?, &name)?))
}

/// The writable part of a runtime server.
#[derive(Debug, Deserialize)]
struct ServerChange {
    admin_state: Option<String>,
}

/// `admin_state` is applied; the read-only fields a client echoes back are ignored, as
/// HAProxy's API ignores them.
async fn put_server(
    State(state): State<Arc<ApiState>>,
    Path(name): Path<String>,
    Query(q): Params,
    body: Bytes,
) -> Result<Json<RuntimeServer>, ApiError> {
    let backend = backend_param(&q)?;
    let change: ServerChange = serde_json::from_slice(&body)
        .map_err(|e| ApiError::BadRequest(format!("invalid runtime server: {e}")))?;
    let current = one(&state, backend, &name)?;
    if let Some(wanted) = change.admin_state {
        let wanted = parse_admin_state(&wanted)?;
        if wanted != current.admin_state {
            state
                .balancer()
                .set_admin_state(backend, &name, wanted)
                .map_err(ApiError::NotFound)?;
        }
    }
    Ok(Json(one(&state, backend, &name)?))
}

fn parse_admin_state(s: &str) -> Result<AdminState, ApiError> {
    match s {
        "ready" => Ok(AdminState::Ready),
        "drain" => Ok(AdminState::Drain),
        "maint" => Ok(AdminState::Maint),
        other => Err(ApiError::BadRequest(format!(
            "admin_state: '{other}' is not one of ready, drain, maint"
        ))),
    }
}

/// `type` picks frontends, backends or servers; `name` the object (servers are matched
/// without regard to case, as Wazuh's helper lowercases them); `parent` a server's backend.
async fn native_stats(
    State(state): State<Arc<ApiState>>,
    Query(q): Params,
) -> Result<Json<Value>, ApiError> {
    let kind = q.get("type").map(String::as_str).filter(|t| !t.is_empty());
    if let Some(k) = kind {
        if !["frontend", "backend", "server"].contains(&k) {
            return Err(ApiError::BadRequest(format!(
                "type: '{k}' is not one of frontend, backend, server"
            )));
        }
    }
    let name = q.get("name").filter(|n| !n.is_empty());
    let parent = q.get("parent").filter(|p| !p.is_empty());
    let stats: Vec<Value> = state
        .balancer()
        .stats()
        .into_iter()
        .filter(|r| kind.is_none_or(|k| r.kind == k))
        .filter(|r| name.is_none_or(|n| r.name.eq_ignore_ascii_case(n)))
        .filter(|r| parent.is_none_or(|p| r.parent.as_deref() == Some(p.as_str())))
        .map(stat_json)
        .collect();
    Ok(Json(json!([{ "runtimeAPI": RUNTIME_API, "stats": stats }])))
}

fn stat_json(r: StatRow) -> Value {
    let mut o = Map::new();
    o.insert("type".into(), r.kind.into());
    o.insert("name".into(), r.name.into());
    if let Some(p) = r.parent {
        o.insert("backend_name".into(), p.into());
    }
    o.insert("stats".into(), Value::Object(r.stats));
    Value::Object(o)
}
