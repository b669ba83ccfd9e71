//! The master's HAProxy helper (Wazuh's HAPHelper): keeps agents balanced over the cluster's
//! nodes through a load balancer's Data Plane API.
//!
//! `plan` is the pure core: one call per cycle turns what was observed (cluster nodes, backend
//! servers, connected agents, the time) into an ordered list of actions. `observe` builds that
//! observation from the cluster, the registry and the API's answers (pure too); `shell` is the
//! loop that gathers them, plans and runs the actions in order through `client` (the Data Plane
//! API v2) and the master's reconnect paths.

pub mod client;
pub mod observe;
pub mod plan;
pub mod shell;

pub use client::{AdminState, DpaClient, HelperError, RuntimeInfo, ServerConf, ServerStats};
pub use plan::{
    above_mean, excess, is_balanced, plan, Action, BackendServer, ClusterNode, HelperState, Level,
    Observed, LOG_TAG, UP_WAIT_LIMIT_S,
};
