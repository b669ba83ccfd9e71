//! First slice of HAProxy's Data Plane API v2: read-only configuration
//! endpoints behind HTTP basic auth, plain HTTP only.

mod auth;
mod error;
mod handlers;
mod models;

use std::io;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::SystemTime;

use axum::routing::get;
use axum::Router;

use crate::model::DataplaneConf;

pub use error::ApiError;

/// Why the server state could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("invalid HAProxy configuration:\n{0}")]
    Config(#[from] lb::config::ConfigError),
}

/// The configuration as one consistent unit, so a reader never pairs the
/// text of one version with the parse of another.
#[derive(Debug)]
pub struct Snapshot {
    /// HAProxy's `_version`, bumped on every committed change.
    pub version: u64,
    /// The haproxy.cfg text as on disk.
    pub text: String,
    pub config: lb::config::Config,
}

/// Shared state of the API server.
#[derive(Debug)]
pub struct ApiState {
    conf: DataplaneConf,
    config: RwLock<Arc<Snapshot>>,
    started: SystemTime,
}

impl ApiState {
    /// Builds the state from haproxy.cfg text; `file` names it in messages.
    pub fn new(conf: DataplaneConf, file: &str, text: String) -> Result<Self, ServerError> {
        let config = lb::config::parse_str(file, &text)?;
        let version = read_version(&text).unwrap_or(1);
        Ok(ApiState {
            conf,
            config: RwLock::new(Arc::new(Snapshot {
                version,
                text,
                config,
            })),
            started: SystemTime::now(),
        })
    }

    /// Reads `conf.config_file` and builds the state from it.
    pub fn load(conf: DataplaneConf) -> Result<Self, ServerError> {
        let path = conf.config_file.clone();
        let text = std::fs::read_to_string(&path).map_err(|source| ServerError::Io {
            path: path.clone(),
            source,
        })?;
        Self::new(conf, &path.display().to_string(), text)
    }

    pub fn conf(&self) -> &DataplaneConf {
        &self.conf
    }

    /// The current configuration.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        // A writer that panicked cannot leave a half-swapped Arc behind, so a
        // poisoned lock still holds a consistent snapshot.
        match self.config.read() {
            Ok(guard) => Arc::clone(&guard),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }
}

/// HAProxy's Data Plane API keeps the version on the first line as
/// `# _version=N`.
pub fn read_version(text: &str) -> Option<u64> {
    let first = text.lines().next()?.trim();
    let rest = first.strip_prefix('#')?.trim_start();
    rest.strip_prefix("_version=")?.trim().parse().ok()
}

/// All routes, each behind basic auth.
pub fn router(state: Arc<ApiState>) -> Router {
    const CONF: &str = "/v2/services/haproxy/configuration";
    Router::new()
        .route("/v2/info", get(handlers::info))
        .route("/v2/health", get(handlers::health))
        .route(&format!("{CONF}/version"), get(handlers::version))
        .route(&format!("{CONF}/frontends"), get(handlers::frontends))
        .route(
            &format!("{CONF}/frontends/{{name}}"),
            get(handlers::frontend),
        )
        .route(&format!("{CONF}/backends"), get(handlers::backends))
        .route(&format!("{CONF}/backends/{{name}}"), get(handlers::backend))
        .route(&format!("{CONF}/servers"), get(handlers::servers))
        .route(&format!("{CONF}/servers/{{name}}"), get(handlers::server))
        .route(&format!("{CONF}/binds"), get(handlers::binds))
        .route(&format!("{CONF}/binds/{{name}}"), get(handlers::bind))
        .fallback(handlers::not_found)
        .layer(axum::middleware::from_fn_with_state(
            Arc::clone(&state),
            auth::require_basic,
        ))
        .with_state(state)
}

/// Serves the API on `listener` until the listener fails.
pub async fn serve(listener: tokio::net::TcpListener, state: Arc<ApiState>) -> io::Result<()> {
    axum::serve(listener, router(state)).await
}

#[cfg(test)]
mod tests {
    use super::read_version;

    #[test]
    fn version_line() {
        assert_eq!(read_version("# _version=42\nglobal\n"), Some(42));
        assert_eq!(read_version("#_version=7"), Some(7));
        assert_eq!(read_version("global\n# _version=3\n"), None);
        assert_eq!(read_version("# _version=x\n"), None);
        assert_eq!(read_version(""), None);
    }
}
