//! The master's HAProxy helper (Wazuh's HAPHelper): keeps agents balanced over the cluster's
//! nodes through a load balancer's Data Plane API.
//!
//! `plan` is the pure core: one call per cycle turns what was observed (cluster nodes, backend
//! servers, connected agents, the time) into an ordered list of actions. The I/O shell that talks
//! to the Data Plane API and to the nodes runs those actions in order, sleeping on `Wait`.

pub mod plan;

pub use plan::{
    above_mean, excess, is_balanced, plan, Action, BackendServer, ClusterNode, HelperState, Level,
    Observed, LOG_TAG, UP_WAIT_LIMIT_S,
};
