#![forbid(unsafe_code)]
//! HAProxy Data Plane API support: reading and validating `dataplaneapi.yml`,
//! and the API server itself ([`server`]).

mod build;
mod crypt;
pub mod edit;
mod engine_link;
mod error;
mod model;
mod node;
mod repair;
pub mod server;

use std::path::Path;

pub use crypt::check_password;
pub use engine_link::{start_hook, EngineLink};
pub use error::ConfError;
pub use model::*;
pub use server::{
    router, serve, serve_conf, AdminState, ApiError, ApiState, Balancer, ConfigOnly, ListenError,
    Listeners, Reload, RuntimeServer, ServerError, StatRow, Transaction,
};

/// Reads and validates a `dataplaneapi.yml`.
pub fn load(path: &Path) -> Result<DataplaneConf, ConfError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    parse_str(&text, path)
}

/// Validates `text`; `path` is only used in messages and stored in the result.
pub fn parse_str(text: &str, path: &Path) -> Result<DataplaneConf, ConfError> {
    let (root, warnings) = match node::parse(text) {
        Ok(root) => (root, Vec::new()),
        Err((line, message)) => {
            let original = ConfError::Syntax {
                path: path.to_path_buf(),
                line,
                message,
            };
            // Only a repair that yields valid YAML is worth mentioning;
            // otherwise the operator needs the original error.
            let Some((fixed, fixes)) = repair::align_item_keys(text) else {
                return Err(original);
            };
            let Ok(root) = node::parse(&fixed) else {
                return Err(original);
            };
            let warnings = fixes
                .iter()
                .map(|f| {
                    let cols = if f.extra == 1 { "column" } else { "columns" };
                    format!(
                        "{}:{}: `{}` is indented {} {cols} deeper than `{}` in the same list item; read as aligned",
                        path.display(),
                        f.line,
                        f.key,
                        f.extra,
                        f.first_key
                    )
                })
                .collect();
            (root, warnings)
        }
    };
    build::build(&root, path, warnings)
}
