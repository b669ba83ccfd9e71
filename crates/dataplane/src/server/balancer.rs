//! What the API drives in the running balancer. `rampart lb` implements it over its engine
//! (`crate::engine_link`); [`ConfigOnly`] serves the configuration endpoints with no balancer
//! behind them (nothing to reload, no runtime state).

use std::future::Future;
use std::pin::Pin;

use serde::Serialize;

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// `admin_state` of a runtime server, as the Data Plane API names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AdminState {
    Ready,
    Drain,
    Maint,
}

impl AdminState {
    pub fn as_str(self) -> &'static str {
        match self {
            AdminState::Ready => "ready",
            AdminState::Drain => "drain",
            AdminState::Maint => "maint",
        }
    }
}

/// `operational_state` of a runtime server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OperationalState {
    Up,
    Down,
    Stopping,
}

/// One server of a running backend (`runtime_server` model of the specification).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RuntimeServer {
    pub name: String,
    pub id: String,
    pub address: String,
    pub port: u16,
    pub admin_state: AdminState,
    pub operational_state: OperationalState,
}

/// One row of `show stat`: its kind, names, and HAProxy's stat names with their values
/// (absent fields are empty strings in `show stat`; they are left out here).
#[derive(Debug, Clone, PartialEq)]
pub struct StatRow {
    /// `frontend`, `backend` or `server`.
    pub kind: &'static str,
    /// The proxy name for frontends and backends, the server name for servers.
    pub name: String,
    /// The backend of a server.
    pub parent: Option<String>,
    pub stats: serde_json::Map<String, serde_json::Value>,
}

/// The running balancer behind the API.
pub trait Balancer: Send + Sync + 'static {
    /// Applies the configuration file as just written (a seamless reload); `Err` carries the
    /// balancer's reason, after which the caller restores the previous file.
    fn reload(&self) -> BoxFuture<'_, Result<(), String>>;

    /// Adds `backend/name` at runtime with the words of its `server` line after the name
    /// (`127.0.0.1:1514 check weight 10`); `Err` when that is not possible at runtime (the
    /// caller reloads instead).
    fn add_server(&self, backend: &str, name: &str, args: &[String]) -> Result<(), String>;

    /// Removes `backend/name` at runtime; `Err` when it cannot be (the caller reloads).
    fn del_server(&self, backend: &str, name: &str) -> Result<(), String>;

    /// The servers of a running backend, `None` when there is no such backend.
    fn runtime_servers(&self, backend: &str) -> Option<Vec<RuntimeServer>>;

    /// Sets a server's admin state; `Err` names what was not found.
    fn set_admin_state(&self, backend: &str, name: &str, state: AdminState) -> Result<(), String>;

    /// `show info` as (field, value) pairs with HAProxy's field names.
    fn info(&self) -> Vec<(String, serde_json::Value)>;

    /// Every `show stat` row.
    fn stats(&self) -> Vec<StatRow>;
}

/// No balancer: configuration changes are only written, runtime calls find nothing.
#[derive(Debug, Default)]
pub struct ConfigOnly;

impl Balancer for ConfigOnly {
    fn reload(&self) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(async { Ok(()) })
    }

    fn add_server(&self, _: &str, _: &str, _: &[String]) -> Result<(), String> {
        Err("no running balancer".into())
    }

    fn del_server(&self, _: &str, _: &str) -> Result<(), String> {
        Err("no running balancer".into())
    }

    fn runtime_servers(&self, _: &str) -> Option<Vec<RuntimeServer>> {
        None
    }

    fn set_admin_state(&self, backend: &str, _: &str, _: AdminState) -> Result<(), String> {
        Err(format!("backend {backend} is not running"))
    }

    fn info(&self) -> Vec<(String, serde_json::Value)> {
        Vec::new()
    }

    fn stats(&self) -> Vec<StatRow> {
        Vec::new()
    }
}
