//! JSON shapes of haproxytech/dataplaneapi-specification's models, built from
//! rampart's HAProxy config model. Unset optional fields are left out, as the
//! Data Plane API does.

use serde::Serialize;

use lb::config::{
    Backend as LbBackend, Bind as LbBind, Frontend as LbFrontend, Server as LbServer,
};

#[derive(Debug, Serialize)]
pub struct Frontend {
    pub name: String,
    pub mode: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub maxconn: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default_backend: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct Balance {
    pub algorithm: &'static str,
}

#[derive(Debug, Serialize)]
pub struct Backend {
    pub name: String,
    pub mode: &'static str,
    pub balance: Balance,
}

#[derive(Debug, Serialize)]
pub struct Server {
    pub name: String,
    pub address: String,
    pub port: u16,
    pub check: &'static str,
    pub weight: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub maxconn: Option<u32>,
    pub backup: &'static str,
}

#[derive(Debug, Serialize)]
pub struct Bind {
    pub name: String,
    pub address: String,
    pub port: u16,
}

fn enabled(on: bool) -> &'static str {
    if on {
        "enabled"
    } else {
        "disabled"
    }
}

/// 0 means unlimited in rampart's model, which the API expresses by absence.
fn limit(n: u32) -> Option<u32> {
    (n != 0).then_some(n)
}

impl From<&LbFrontend> for Frontend {
    fn from(f: &LbFrontend) -> Self {
        Frontend {
            name: f.name.clone(),
            mode: f.mode.as_str(),
            maxconn: limit(f.maxconn),
            default_backend: f.default_backend.clone(),
        }
    }
}

impl From<&LbBackend> for Backend {
    fn from(b: &LbBackend) -> Self {
        Backend {
            name: b.name.clone(),
            mode: b.mode.as_str(),
            balance: Balance {
                algorithm: b.algorithm.as_str(),
            },
        }
    }
}

impl From<&LbServer> for Server {
    fn from(s: &LbServer) -> Self {
        Server {
            name: s.name.clone(),
            address: s.host.clone(),
            port: s.addr.port(),
            check: enabled(s.settings.check),
            weight: s.settings.weight,
            maxconn: limit(s.settings.maxconn),
            backup: enabled(s.settings.backup),
        }
    }
}

impl From<&LbBind> for Bind {
    fn from(b: &LbBind) -> Self {
        Bind {
            name: bind_name(b),
            address: b.addr.ip().to_string(),
            port: b.addr.port(),
        }
    }
}

/// Unnamed binds are named `address:port`, as the Data Plane API names them.
pub fn bind_name(b: &LbBind) -> String {
    b.name.clone().unwrap_or_else(|| b.addr.to_string())
}
