//! The validated configuration model. The parser produces it; the engine reads it.
//! Nothing downstream ever sees unvalidated text: addresses are resolved, units
//! converted, defaults applied, and references (`default_backend`) checked.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Where a directive came from, for messages like `parsing [haproxy.cfg:12]`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Loc {
    pub file: Arc<str>,
    pub line: usize,
}

impl fmt::Display for Loc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file, self.line)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    Warning,
    Alert,
}

/// One HAProxy-style message: `[WARNING] config : parsing [f:3] : ...`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub severity: Severity,
    pub loc: Option<Loc>,
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let tag = match self.severity {
            Severity::Warning => "[WARNING]",
            Severity::Alert => "[ALERT]",
        };
        match &self.loc {
            Some(loc) => write!(f, "{tag} config : parsing [{loc}] : {}", self.message),
            None => write!(f, "{tag} config : {}", self.message),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    #[default]
    Tcp,
    Http,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Tcp => "tcp",
            Mode::Http => "http",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Algorithm {
    #[default]
    RoundRobin,
    StaticRr,
    LeastConn,
    First,
    Source,
}

impl Algorithm {
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::RoundRobin => "roundrobin",
            Algorithm::StaticRr => "static-rr",
            Algorithm::LeastConn => "leastconn",
            Algorithm::First => "first",
            Algorithm::Source => "source",
        }
    }

    /// Algorithms whose weights can change at runtime and which accept `add server`.
    pub fn is_dynamic(self, hash: HashType) -> bool {
        match self {
            Algorithm::RoundRobin | Algorithm::LeastConn | Algorithm::First => true,
            Algorithm::StaticRr => false,
            Algorithm::Source => hash == HashType::Consistent,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HashType {
    #[default]
    MapBased,
    Consistent,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, PartialOrd, Ord)]
pub enum Level {
    User,
    Operator,
    #[default]
    Admin,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Level::User => "user",
            Level::Operator => "operator",
            Level::Admin => "admin",
        }
    }
}

/// `stats socket PATH [level L] [mode M] [expose-fd listeners]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatsSocket {
    pub path: PathBuf,
    pub level: Level,
    /// File mode in octal as written (`mode 660`), applied after bind.
    pub mode: Option<u32>,
    pub expose_fd_listeners: bool,
    pub loc: Loc,
}

/// Syslog facility number (local0 = 16 …).
pub type Facility = u8;

/// Syslog severity, 0 emerg … 7 debug.
pub type LogLevel = u8;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogAddr {
    /// `log 127.0.0.1[:514] …` or `udp@host:port`.
    Udp(SocketAddr),
    /// `log /dev/log …`: a Unix datagram socket.
    Unix(PathBuf),
    /// `log stdout …` / `log stderr …`.
    Stdout,
    Stderr,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    #[default]
    Rfc3164,
    Rfc5424,
    /// Message only, no syslog header (`format raw`).
    Raw,
    /// Syslog header without PRI, as `format short` does it.
    Short,
}

/// `log ADDR [len N] [format F] FACILITY [LEVEL [MINLEVEL]]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogTarget {
    pub addr: LogAddr,
    pub format: LogFormat,
    pub facility: Facility,
    /// Messages more severe than or equal to this are sent (default 7, debug: all).
    pub max_level: LogLevel,
    /// Messages less severe than this are raised to it (default 0).
    pub min_level: LogLevel,
    pub max_len: usize,
    pub loc: Loc,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Global {
    /// 0 means unlimited.
    pub maxconn: u32,
    /// Worker threads; `None` means one per available core.
    pub nbthread: Option<usize>,
    pub daemon: bool,
    pub pidfile: Option<PathBuf>,
    pub chroot: Option<PathBuf>,
    pub user: Option<String>,
    pub group: Option<String>,
    pub stats_sockets: Vec<StatsSocket>,
    /// Idle timeout of a runtime API connection (`stats timeout`), default 10s.
    pub stats_timeout: Duration,
    pub logs: Vec<LogTarget>,
    /// Tag in syslog headers (`log-tag`), default "haproxy" so existing parsers keep working.
    pub log_tag: String,
    /// Longest a soft stop may wait for sessions before closing them.
    pub hard_stop_after: Option<Duration>,
}

impl Default for Global {
    fn default() -> Self {
        Global {
            maxconn: 0,
            nbthread: None,
            daemon: false,
            pidfile: None,
            chroot: None,
            user: None,
            group: None,
            stats_sockets: Vec::new(),
            stats_timeout: Duration::from_secs(10),
            logs: Vec::new(),
            log_tag: "haproxy".to_string(),
            hard_stop_after: None,
        }
    }
}

/// Timeouts of one proxy. `None` means not set (infinite, and a warning at check time
/// for client/server/connect as HAProxy does).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Timeouts {
    pub connect: Option<Duration>,
    pub client: Option<Duration>,
    pub server: Option<Duration>,
    pub queue: Option<Duration>,
    pub check: Option<Duration>,
    pub tunnel: Option<Duration>,
    pub client_fin: Option<Duration>,
    pub server_fin: Option<Duration>,
}

/// The `option` flags rampart understands for logging.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LogOptions {
    pub tcplog: bool,
    pub httplog: bool,
    pub dontlognull: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bind {
    pub addr: SocketAddr,
    /// `name NAME` on the bind line, or `None`.
    pub name: Option<String>,
    pub loc: Loc,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frontend {
    pub name: String,
    pub id: u32,
    pub mode: Mode,
    pub binds: Vec<Bind>,
    pub default_backend: Option<String>,
    /// Effective per-frontend maxconn; 0 means unlimited (bounded by global).
    pub maxconn: u32,
    pub timeouts: Timeouts,
    pub log_options: LogOptions,
    /// Effective targets (`log global` already expanded to the global ones).
    pub logs: Vec<LogTarget>,
    /// Set when this frontend came from a `listen` section.
    pub from_listen: bool,
    pub loc: Loc,
}

/// `option redispatch [interval]`: redispatch on every Nth retry (N > 0) or on the
/// Nth retry before the last one (N < 0). HAProxy's default interval is -1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Redispatch {
    pub interval: i32,
}

/// What a `server` line can set, as `default-server` sets it for later lines too.
/// `Default` is HAProxy's built-in defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerSettings {
    pub check: bool,
    pub inter: Duration,
    pub fastinter: Option<Duration>,
    pub downinter: Option<Duration>,
    pub rise: u32,
    pub fall: u32,
    /// Port health checks connect to, when not the traffic port.
    pub check_port: Option<u16>,
    /// 0..=256, default 1.
    pub weight: u32,
    /// 0 means unlimited.
    pub maxconn: u32,
    /// 0 means unlimited.
    pub maxqueue: u32,
    pub backup: bool,
    pub disabled: bool,
}

impl Default for ServerSettings {
    fn default() -> Self {
        ServerSettings {
            check: false,
            inter: Duration::from_secs(2),
            fastinter: None,
            downinter: None,
            rise: 2,
            fall: 3,
            check_port: None,
            weight: 1,
            maxconn: 0,
            maxqueue: 0,
            backup: false,
            disabled: false,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Server {
    pub name: String,
    pub id: u32,
    /// Host as written (IP or DNS name), for `show servers state` and messages.
    pub host: String,
    pub addr: SocketAddr,
    pub settings: ServerSettings,
    pub loc: Loc,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backend {
    pub name: String,
    pub id: u32,
    pub mode: Mode,
    pub algorithm: Algorithm,
    pub hash_type: HashType,
    pub servers: Vec<Server>,
    pub timeouts: Timeouts,
    /// Connection retries after the first attempt (default 3).
    pub retries: u32,
    pub redispatch: Option<Redispatch>,
    pub allbackups: bool,
    pub log_options: LogOptions,
    pub logs: Vec<LogTarget>,
    pub from_listen: bool,
    pub loc: Loc,
}

/// A whole, validated configuration.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Config {
    pub global: Global,
    pub frontends: Vec<Frontend>,
    pub backends: Vec<Backend>,
    /// Warnings gathered while parsing (accepted-but-ignored directives, missing timeouts…).
    pub warnings: Vec<Diagnostic>,
}

impl Config {
    pub fn backend(&self, name: &str) -> Option<&Backend> {
        self.backends.iter().find(|b| b.name == name)
    }

    pub fn frontend(&self, name: &str) -> Option<&Frontend> {
        self.frontends.iter().find(|f| f.name == name)
    }
}
