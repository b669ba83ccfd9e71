//! ossec.conf (Wazuh) -> validated model of the sections the manager uses:
//! `<cluster>` (with `<haproxy_helper>` and rampart's `<intervals>`), `<auth>` and the secure
//! `<remote>`. Everything else in the file is ignored. Several `<ossec_config>` blocks merge in
//! order, later values winning field by field. All errors are collected, each with its line.

pub mod parse;
pub mod values;

use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The whole validated configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct OssecConf {
    /// The file it was read from (for messages).
    pub path: PathBuf,
    pub cluster: Cluster,
    pub auth: Auth,
    pub remote: Remote,
}

/// A node's role in the cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NodeType {
    Master,
    Worker,
}

impl fmt::Display for NodeType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NodeType::Master => "master",
            NodeType::Worker => "worker",
        })
    }
}

/// `<cluster>`.
#[derive(Debug, Clone, PartialEq)]
pub struct Cluster {
    pub name: String,
    pub node_name: String,
    /// Empty when not configured (allowed only while the cluster is disabled).
    pub key: String,
    pub node_type: NodeType,
    pub port: u16,
    pub bind_addr: IpAddr,
    /// `<nodes><node>`: a worker uses only the first (the master's address).
    pub nodes: Vec<String>,
    pub hidden: bool,
    pub disabled: bool,
    pub helper: Option<HaproxyHelper>,
    pub intervals: Intervals,
}

impl Default for Cluster {
    /// Wazuh's defaults; a file without `<cluster>` gets these with `disabled = true`.
    fn default() -> Self {
        Cluster {
            name: "wazuh".to_string(),
            node_name: "node01".to_string(),
            key: String::new(),
            node_type: NodeType::Master,
            port: 1516,
            bind_addr: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            nodes: Vec::new(),
            hidden: false,
            disabled: false,
            helper: None,
            intervals: Intervals::default(),
        }
    }
}

/// Cluster timings (rampart extension `<cluster><intervals>`; defaults are Wazuh's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Intervals {
    pub keep_alive: Duration,
    /// The master drops a worker silent for this long.
    pub worker_timeout: Duration,
    pub agent_info: Duration,
    /// Worker integrity check period.
    pub integrity: Duration,
    /// Master integrity recalculation period.
    pub master_integrity: Duration,
    /// Maximum reconnect backoff.
    pub reconnect: Duration,
    pub request_timeout: Duration,
    /// How long a node holds an agent whose unacknowledged events may sit on an unreachable
    /// previous node before resuming anyway (and risking duplicates).
    pub in_doubt_wait: Duration,
}

impl Default for Intervals {
    fn default() -> Self {
        Intervals {
            keep_alive: Duration::from_secs(60),
            worker_timeout: Duration::from_secs(120),
            agent_info: Duration::from_secs(10),
            integrity: Duration::from_secs(9),
            master_integrity: Duration::from_secs(8),
            reconnect: Duration::from_secs(10),
            request_timeout: Duration::from_secs(20),
            in_doubt_wait: Duration::from_secs(30),
        }
    }
}

/// The HAProxy Data Plane API scheme.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HelperProtocol {
    Http,
    Https,
}

impl fmt::Display for HelperProtocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            HelperProtocol::Http => "http",
            HelperProtocol::Https => "https",
        })
    }
}

/// `<cluster><haproxy_helper>`.
#[derive(Debug, Clone, PartialEq)]
pub struct HaproxyHelper {
    pub disabled: bool,
    pub address: String,
    pub port: u16,
    pub protocol: HelperProtocol,
    pub user: String,
    pub password: String,
    pub backend: String,
    pub resolver: Option<String>,
    pub haproxy_cert: Option<PathBuf>,
    pub client_cert: Option<PathBuf>,
    pub client_cert_key: Option<PathBuf>,
    pub excluded_nodes: Vec<String>,
    pub frequency: Duration,
    pub agent_chunk_size: u32,
    pub agent_reconnection_time: Duration,
    pub agent_reconnection_stability_time: Duration,
    pub imbalance_tolerance: f64,
    pub remove_disconnected_node_after: Duration,
}

impl Default for HaproxyHelper {
    fn default() -> Self {
        HaproxyHelper {
            disabled: false,
            address: String::new(),
            port: 5555,
            protocol: HelperProtocol::Http,
            user: String::new(),
            password: String::new(),
            backend: "wazuh_reporting".to_string(),
            resolver: None,
            haproxy_cert: None,
            client_cert: None,
            client_cert_key: None,
            excluded_nodes: Vec::new(),
            frequency: Duration::from_secs(60),
            agent_chunk_size: 300,
            agent_reconnection_time: Duration::from_secs(5),
            agent_reconnection_stability_time: Duration::from_secs(60),
            imbalance_tolerance: 0.1,
            remove_disconnected_node_after: Duration::from_secs(240 * 60),
        }
    }
}

/// `<auth>` (the enrollment service). Relative ssl paths are stored as written (relative to
/// the home); `None` means "not configured".
#[derive(Debug, Clone, PartialEq)]
pub struct Auth {
    pub disabled: bool,
    pub port: u16,
    pub local_ip: Option<IpAddr>,
    pub use_password: bool,
    pub use_source_ip: bool,
    pub purge: bool,
    pub force: Force,
    pub ssl_manager_cert: Option<PathBuf>,
    pub ssl_manager_key: Option<PathBuf>,
    pub ssl_agent_ca: Option<PathBuf>,
    pub ssl_verify_host: bool,
    pub ssl_auto_negotiate: bool,
}

impl Default for Auth {
    fn default() -> Self {
        Auth {
            disabled: false,
            port: 1515,
            local_ip: None,
            use_password: false,
            use_source_ip: false,
            purge: false,
            force: Force::default(),
            ssl_manager_cert: None,
            ssl_manager_key: None,
            ssl_agent_ca: None,
            ssl_verify_host: false,
            ssl_auto_negotiate: false,
        }
    }
}

/// `<auth><force>`: when a new enrollment may replace an existing agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Force {
    pub enabled: bool,
    pub key_mismatch: bool,
    /// `None` when `<disconnected_time enabled="no">`.
    pub disconnected_time: Option<Duration>,
    pub after_registration_time: Duration,
}

impl Default for Force {
    fn default() -> Self {
        Force {
            enabled: true,
            key_mismatch: true,
            disconnected_time: Some(Duration::from_secs(3600)),
            after_registration_time: Duration::from_secs(3600),
        }
    }
}

/// The secure `<remote>` (agent events).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Remote {
    pub connection: String,
    pub port: u16,
    /// Lowercase, `tcp`, `udp` or `tcp,udp`.
    pub protocol: String,
    pub local_ip: Option<IpAddr>,
    pub queue_size: u32,
}

impl Default for Remote {
    fn default() -> Self {
        Remote {
            connection: "secure".to_string(),
            port: 1514,
            protocol: "tcp".to_string(),
            local_ip: None,
            queue_size: 131_072,
        }
    }
}

/// One problem in the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: PathBuf,
    /// 1-based; 0 when the problem is not tied to a line (e.g. the file is unreadable).
    pub line: u32,
    /// Slash-separated element path such as `cluster/key`; empty for file-level problems.
    pub element: String,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: ", self.file.display(), self.line)?;
        if !self.element.is_empty() {
            for part in self.element.split('/') {
                write!(f, "<{part}>")?;
            }
            f.write_str(": ")?;
        }
        f.write_str(&self.message)
    }
}

impl std::error::Error for ConfigError {}

/// Every problem found, in file order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// Reads and validates `home/etc/ossec.conf`.
pub fn load(home: &Path) -> Result<OssecConf, ConfigErrors> {
    let path = home.join("etc").join("ossec.conf");
    match std::fs::read_to_string(&path) {
        Ok(text) => parse_str(&text, &path),
        Err(e) => Err(ConfigErrors(vec![ConfigError {
            file: path,
            line: 0,
            element: String::new(),
            message: format!("cannot read the configuration file: {e}"),
        }])),
    }
}

/// Validates ossec.conf text; `path` is only used in messages and `OssecConf::path`.
pub fn parse_str(text: &str, path: &Path) -> Result<OssecConf, ConfigErrors> {
    parse::parse(text, path)
}
