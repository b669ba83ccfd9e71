//! The validated configuration handed to the Data Plane API server.

use std::path::PathBuf;
use std::time::Duration;

/// Listener scheme, as in dataplaneapi's `scheme:` list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    Http,
    Https,
}

/// TLS listener settings; present only when complete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tls {
    pub tls_port: u16,
    pub tls_certificate: PathBuf,
    pub tls_key: PathBuf,
    /// When set, clients must present a certificate signed by this CA.
    pub tls_ca: Option<PathBuf>,
}

/// A user's password as stored in the file.
#[derive(Clone, PartialEq, Eq)]
pub enum Password {
    /// `insecure: true`: the password is stored as is.
    Plain(String),
    /// A crypt(3)-style hash (`$5$`, `$6$`, `$2y$` …).
    Hashed(String),
}

// Passwords must not end up in logs through `{:?}`.
impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Password::Plain(_) => f.write_str("Plain(<redacted>)"),
            Password::Hashed(h) => write!(f, "Hashed({h})"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub name: String,
    pub password: Password,
}

/// `dataplaneapi.yml`, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct DataplaneConf {
    /// The file this was read from.
    pub path: PathBuf,
    pub host: String,
    pub port: u16,
    pub schemes: Vec<Scheme>,
    pub tls: Option<Tls>,
    pub users: Vec<User>,
    pub transaction_dir: PathBuf,
    pub max_open_transactions: u32,
    pub config_file: PathBuf,
    pub haproxy_bin: Option<PathBuf>,
    pub reload_delay: Duration,
    pub reload_cmd: Option<String>,
    pub restart_cmd: Option<String>,
    /// Things that loaded but look wrong: unknown keys, repaired indentation.
    pub warnings: Vec<String>,
}

pub const DEFAULT_HOST: &str = "0.0.0.0";
pub const DEFAULT_PORT: u16 = 5555;
pub const DEFAULT_TRANSACTION_DIR: &str = "/tmp/haproxy";
pub const DEFAULT_MAX_OPEN_TRANSACTIONS: u32 = 20;
pub const DEFAULT_CONFIG_FILE: &str = "/etc/haproxy/haproxy.cfg";
pub const DEFAULT_RELOAD_DELAY: Duration = Duration::from_secs(5);
