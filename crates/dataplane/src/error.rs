use std::path::PathBuf;

/// Why `dataplaneapi.yml` could not be used. Every variant names the file;
/// the line is given when known.
#[derive(Debug, thiserror::Error)]
pub enum ConfError {
    #[error("{}: cannot read: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: invalid YAML: {message}", at(path, *line))]
    Syntax {
        path: PathBuf,
        line: Option<u64>,
        message: String,
    },
    /// Valid YAML with a value dataplaneapi would not accept.
    #[error("{}: {key}: {message}", at(path, *line))]
    Invalid {
        path: PathBuf,
        line: Option<u64>,
        /// Dotted key path, e.g. `dataplaneapi.tls.tls_port`.
        key: String,
        message: String,
    },
}

impl ConfError {
    pub fn line(&self) -> Option<u64> {
        match self {
            ConfError::Io { .. } => None,
            ConfError::Syntax { line, .. } | ConfError::Invalid { line, .. } => *line,
        }
    }
}

pub(crate) fn at(path: &std::path::Path, line: Option<u64>) -> String {
    match line {
        Some(l) if l > 0 => format!("{}:{l}", path.display()),
        _ => path.display().to_string(),
    }
}
