//! The agent's ossec.conf (Wazuh) -> validated model of what rampart's agent uses: `<client>`
//! (servers and `<enrollment>`), `<client_buffer>`, `<localfile>` and `<labels>`. Other
//! sections (syscheck, rootcheck, wodle, sca, logging, active-response…) are ignored, as the
//! manager ignores the ones it does not use. Several `<ossec_config>` blocks merge in order
//! (see `parse` for the per-section rules). Every problem is collected with file, line and
//! element path, reusing the manager's error type and value parsers.

mod parse;
mod sections;
mod values;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use manager::config::{ConfigError, ConfigErrors};

/// The whole validated agent configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentConf {
    /// The file it was read from (for messages).
    pub path: PathBuf,
    pub client: Client,
    pub enrollment: Enrollment,
    pub buffer: ClientBuffer,
    pub localfiles: Vec<LocalFile>,
    /// `<labels><label key="K">V</label>`: sent with keep-alives.
    pub labels: BTreeMap<String, String>,
    /// Things Wazuh corrects or skips with a warning, formatted `file:line: <a><b>: message`.
    pub warnings: Vec<String>,
}

impl AgentConf {
    /// Where to enroll: `<enrollment><manager_address>`, else the first server's address.
    pub fn enrollment_address(&self) -> &str {
        match &self.enrollment.manager_address {
            Some(a) => a,
            None => self
                .client
                .servers
                .first()
                .map(|s| s.address.as_str())
                .unwrap_or(""),
        }
    }
}

/// `<client>`.
#[derive(Debug, Clone, PartialEq)]
pub struct Client {
    /// In failover order; at least one.
    pub servers: Vec<Server>,
    pub config_profile: Vec<String>,
    /// Keep-alive period.
    pub notify_time: Duration,
    /// Silence after which the agent reconnects; always larger than `notify_time`.
    pub time_reconnect: Duration,
    pub auto_restart: bool,
    pub crypto_method: CryptoMethod,
    /// `None` = never force a reconnection.
    pub force_reconnect_interval: Option<Duration>,
}

impl Default for Client {
    fn default() -> Self {
        Client {
            servers: Vec::new(),
            config_profile: Vec::new(),
            notify_time: Duration::from_secs(20),
            time_reconnect: Duration::from_secs(60),
            auto_restart: true,
            crypto_method: CryptoMethod::Aes,
            force_reconnect_interval: None,
        }
    }
}

/// `<client><server>`.
#[derive(Debug, Clone, PartialEq)]
pub struct Server {
    /// IP address or host name.
    pub address: String,
    pub port: u16,
    pub protocol: Protocol,
    pub max_retries: u32,
    pub retry_interval: Duration,
}

impl Server {
    /// A server at `address` with Wazuh's defaults.
    pub fn new(address: impl Into<String>) -> Server {
        Server {
            address: address.into(),
            port: 1514,
            protocol: Protocol::Tcp,
            max_retries: 5,
            retry_interval: Duration::from_secs(10),
        }
    }
}

/// `<server><protocol>`; Wazuh also has udp, which rampart does not implement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Tcp,
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("tcp")
    }
}

/// `<client><crypto_method>`; Wazuh also has blowfish, which rampart does not implement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CryptoMethod {
    Aes,
}

impl fmt::Display for CryptoMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("aes")
    }
}

/// `<client><enrollment>`.
#[derive(Debug, Clone, PartialEq)]
pub struct Enrollment {
    pub enabled: bool,
    /// `None` = the first server's address (see [`AgentConf::enrollment_address`]).
    pub manager_address: Option<String>,
    pub port: u16,
    /// `None` = the host name.
    pub agent_name: Option<String>,
    pub groups: Vec<String>,
    pub agent_address: Option<String>,
    /// Absolute: relative paths in the file are relative to the home.
    pub authorization_pass_path: PathBuf,
    /// Absolute, like `authorization_pass_path`.
    pub server_ca_path: Option<PathBuf>,
    pub delay_after_enrollment: Duration,
}

impl Enrollment {
    /// Wazuh's defaults for an agent installed in `home`.
    pub fn defaults(home: &Path) -> Enrollment {
        Enrollment {
            enabled: true,
            manager_address: None,
            port: 1515,
            agent_name: None,
            groups: Vec::new(),
            agent_address: None,
            authorization_pass_path: home.join("etc").join("authd.pass"),
            server_ca_path: None,
            delay_after_enrollment: Duration::from_secs(20),
        }
    }
}

/// `<client_buffer>`. In rampart `queue_size` bounds the on-disk spool (events not yet
/// acknowledged); past it the oldest are dropped and counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientBuffer {
    pub disabled: bool,
    pub queue_size: u64,
    /// 0 = unlimited.
    pub events_per_second: u32,
}

impl Default for ClientBuffer {
    fn default() -> Self {
        ClientBuffer {
            disabled: false,
            queue_size: 5000,
            events_per_second: 500,
        }
    }
}

/// One `<localfile>` rampart reads (line by line, whatever the format).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalFile {
    pub location: PathBuf,
    pub log_format: String,
    pub only_future_events: bool,
    /// Line of the `<localfile>` element, for messages.
    pub line: u32,
}

/// Reads and validates `home/etc/ossec.conf`.
pub fn load(home: &Path) -> Result<AgentConf, ConfigErrors> {
    let path = home.join("etc").join("ossec.conf");
    match std::fs::read_to_string(&path) {
        Ok(text) => parse_str(&text, &path, home),
        Err(e) => Err(ConfigErrors(vec![ConfigError {
            file: path,
            line: 0,
            element: String::new(),
            message: format!("cannot read the configuration file: {e}"),
        }])),
    }
}

/// Validates ossec.conf text; `path` is used in messages and `AgentConf::path`, `home`
/// anchors relative paths.
pub fn parse_str(text: &str, path: &Path, home: &Path) -> Result<AgentConf, ConfigErrors> {
    parse::parse(text, path, home)
}
