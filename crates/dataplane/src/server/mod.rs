//! HAProxy's Data Plane API v2 behind HTTP basic auth: configuration endpoints
//! (`handlers`), runtime and statistics endpoints (`runtime`), both over the
//! [`Balancer`] the API drives.

mod auth;
pub mod balancer;
mod error;
mod handlers;
mod listen;
mod models;
mod reloads;
mod runtime;
mod transactions;
mod write;

use std::io;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::SystemTime;

use axum::routing::get;
use axum::Router;

use crate::model::DataplaneConf;

pub use balancer::{AdminState, Balancer, ConfigOnly, RuntimeServer, StatRow};
pub use error::ApiError;
pub use listen::{serve_conf, ListenError, Listeners};
pub use reloads::Reload;
pub use transactions::Transaction;

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
pub struct ApiState {
    conf: DataplaneConf,
    config: RwLock<Arc<Snapshot>>,
    started: SystemTime,
    balancer: Arc<dyn Balancer>,
    /// Serializes writers from reading the snapshot to swapping in the next;
    /// readers only take the `config` lock.
    writer: tokio::sync::Mutex<()>,
    reloads: reloads::Reloads,
    transactions: transactions::Transactions,
}

impl std::fmt::Debug for ApiState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiState")
            .field("conf", &self.conf)
            .field("version", &self.snapshot().version)
            .finish_non_exhaustive()
    }
}

impl ApiState {
    /// Builds the state from haproxy.cfg text; `file` names it in messages.
    pub fn new(conf: DataplaneConf, file: &str, text: String) -> Result<Self, ServerError> {
        let config = lb::config::parse_str(file, &text)?;
        let version = read_version(&text).unwrap_or(1);
        Ok(ApiState {
            config: RwLock::new(Arc::new(Snapshot {
                version,
                text,
                config,
            })),
            started: SystemTime::now(),
            balancer: Arc::new(ConfigOnly),
            writer: tokio::sync::Mutex::new(()),
            reloads: reloads::Reloads::default(),
            transactions: transactions::Transactions::new(
                conf.transaction_dir.clone(),
                conf.max_open_transactions,
            ),
            conf,
        })
    }

    /// Drives `balancer` instead of only writing the configuration.
    pub fn with_balancer(mut self, balancer: Arc<dyn Balancer>) -> Self {
        self.balancer = balancer;
        self
    }

    pub fn balancer(&self) -> &Arc<dyn Balancer> {
        &self.balancer
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
    Router::new()
        .route("/v2/info", get(handlers::info))
        .route("/v2/health", get(handlers::health))
        .merge(handlers::routes())
        .merge(runtime::routes())
        .fallback(handlers::not_found)
        .layer(axum::middleware::from_fn_with_state(
            Arc::clone(&state),
            auth::require_basic,
        ))
        .with_state(state)
}

/// Serves the API on `listener` as plain HTTP, with the limits of
/// [`Listeners`] (header timeout, connection cap); runs until dropped.
pub async fn serve(listener: tokio::net::TcpListener, state: Arc<ApiState>) -> io::Result<()> {
    listen::serve_loop(listener, None, router(state), listen::ConnLimits::default())
        .await
        .map_err(io::Error::other)
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
