//! The I/O shell of one manager node: the cluster channel (master or worker side),
//! enrollment, the control socket and the background tasks, wired around the pure cores.

pub mod control;
pub mod enroll;
pub mod keys_file;
mod master;
mod piece_cache;
pub mod proto;
pub mod remoted;
mod status;
mod worker;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context;

use crate::clusterlog::ClusterLog;
use crate::config::{self, NodeType, OssecConf};
use crate::home::Home;
use crate::registry::{AgentReport, Registry};

pub use master::Master;
pub use worker::Worker;

/// Everything a node's tasks share.
pub struct Node {
    pub home: Home,
    pub conf: OssecConf,
    pub log: Arc<ClusterLog>,
    pub registry: Arc<Registry>,
    /// Agents currently reporting to this node, by id: filled by the reporting service,
    /// read by the agent-info task.
    pub connected: Mutex<HashMap<u32, AgentReport>>,
    pub remoted: remoted::Remoted,
    pub role: Role,
}

pub enum Role {
    Master(Arc<Master>),
    Worker(Arc<Worker>),
    Standalone,
}

impl Node {
    /// The tag Wazuh puts first on each cluster.log line: `[Master]` or `[Worker NAME]`.
    pub fn tag(&self) -> String {
        match self.role {
            Role::Worker(_) => format!("Worker {}", self.conf.cluster.node_name),
            Role::Master(_) => "Master".to_string(),
            Role::Standalone => "Local".to_string(),
        }
    }

    pub fn is_master(&self) -> bool {
        !matches!(self.role, Role::Worker(_))
    }
}

pub struct RunOptions {
    pub home: PathBuf,
    pub debug: u8,
}

/// Locks ignoring poisoning: no critical section in the node leaves its data half-changed.
pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Validate the home's ossec.conf: the `--check` path.
pub fn check(home: &std::path::Path) -> Result<OssecConf, config::ConfigErrors> {
    config::load(home)
}

/// Run a node until SIGTERM/SIGINT.
pub async fn run(opts: RunOptions) -> anyhow::Result<()> {
    let home = Home::new(opts.home);
    let conf = config::load(&home.root).map_err(|e| anyhow::anyhow!("{e}"))?;
    home.ensure_layout()
        .with_context(|| format!("cannot lay out {}", home.root.display()))?;
    let log = ClusterLog::open(&home.cluster_log(), opts.debug)
        .with_context(|| format!("cannot open {}", home.cluster_log().display()))?;
    let registry = Arc::new(
        Registry::open(&home.registry_db())
            .with_context(|| format!("cannot open {}", home.registry_db().display()))?,
    );
    let role = if conf.cluster.disabled {
        Role::Standalone
    } else {
        match conf.cluster.node_type {
            NodeType::Master => Role::Master(Arc::new(Master::default())),
            NodeType::Worker => Role::Worker(Arc::new(Worker::default())),
        }
    };
    let archives =
        crate::archives::Archives::open(&home, &conf.cluster.name, &conf.cluster.node_name)
            .with_context(|| format!("cannot open {}", home.archives().display()))?;
    let node = Arc::new(Node {
        home,
        conf,
        log,
        registry,
        connected: Mutex::new(HashMap::new()),
        remoted: remoted::Remoted::new(archives),
        role,
    });

    keys_file::spawn_writer(node.clone());
    control::spawn(node.clone()).await?;
    if !node.conf.auth.disabled {
        enroll::spawn_server(node.clone()).await?;
    }
    match &node.role {
        Role::Master(m) => master::start(node.clone(), m.clone()).await?,
        Role::Worker(w) => worker::start(node.clone(), w.clone()),
        Role::Standalone => {}
    }
    if node.is_master() {
        status::spawn(node.clone());
    }
    remoted::spawn(node.clone()).await?;

    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    node.log.info(
        &node.tag(),
        "Main",
        "Received a stop signal; shutting down.",
    );
    let _ = std::fs::remove_file(node.home.control_socket());
    node.remoted.archives.close();
    Ok(())
}
