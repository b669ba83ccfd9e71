//! Pure planner of one HAPHelper cycle (no I/O, no clock: the time comes in `Observed::now_s`).
//!
//! Rules (Wazuh 4.14 `hap_helper`):
//! - every cluster node (master included) except `excluded_nodes` is a backend server named after
//!   the node, reached at its reporting address and port;
//! - a new node is added, a node whose address or port changed is replaced, a node gone from the
//!   cluster is removed only after `remove_disconnected_node_after`;
//! - after a backend change the planner waits (over later cycles) for the new servers to be UP,
//!   then reconnects the agents above the mean of the loaded nodes and every agent of a removed
//!   node, in chunks of `agent_chunk_size` separated by `agent_reconnection_time`, then waits
//!   `agent_reconnection_stability_time`; a node still in the backend is drained while its
//!   agents move (rampart's addition: leastconn could otherwise hand them straight back);
//! - otherwise, when the backend is unbalanced, it reconnects the excess of the loaded nodes.
//!
//! Balance is measured on `scur` of the servers that are UP and belong to a connected,
//! non-excluded node: a gone node's DOWN server would otherwise drag the mean down and make the
//! helper move agents for nothing.
//!
//! Which agents move: the highest agent ids of a node first (newest registrations, so long-lived
//! agents are disturbed last). Nodes are served most loaded first, ties by name; a removed
//! node's agents all move, in registry order, after the loaded nodes'.

use std::collections::{BTreeMap, BTreeSet};

use crate::config::HaproxyHelper;

/// Tag every `Action::Log` message is logged under.
pub const LOG_TAG: &str = "HAPHelper";

/// How long to wait for added servers to be UP before balancing anyway (rampart's choice: a
/// server that never comes UP must not block balancing forever).
pub const UP_WAIT_LIMIT_S: u64 = 300;

/// A cluster node as the cluster sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterNode {
    pub name: String,
    /// Address agents should use to reach it (its reporting IP or host name).
    pub address: String,
    /// Port agents should use to reach it (its remoted port).
    pub port: u16,
}

/// A backend server as the Data Plane API reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackendServer {
    pub name: String,
    pub address: String,
    pub port: u16,
    pub up: bool,
    /// Current sessions, i.e. connected agents.
    pub scur: u64,
    /// In drain (`admin_state` drain): left so by an interrupted cycle, since a cycle always
    /// makes the servers it drains ready again before it ends.
    pub drained: bool,
}

/// What one cycle observed.
#[derive(Debug, Clone, Copy)]
pub struct Observed<'a> {
    /// Current time, seconds on any monotonic scale.
    pub now_s: u64,
    /// Port of the frontend created with a missing backend (the agents' connection port).
    pub agent_port: u16,
    /// Nodes currently connected to the cluster (master included).
    pub nodes: &'a [ClusterNode],
    pub backend_exists: bool,
    /// The backend's servers (ignored when the backend does not exist).
    pub servers: &'a [BackendServer],
    /// Connected agent ids per node, from the registry.
    pub agents_by_node: &'a BTreeMap<String, Vec<u32>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Debug,
    Info,
    Warning,
}

/// One step for the I/O shell, run in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// `balance leastconn`, `mode tcp`.
    CreateBackend {
        name: String,
    },
    CreateFrontend {
        name: String,
        port: u16,
        backend: String,
    },
    AddServer {
        name: String,
        address: String,
        port: u16,
    },
    ReplaceServer {
        name: String,
        address: String,
        port: u16,
    },
    RemoveServer {
        name: String,
    },
    /// `admin_state` drain (`drain: true`) or ready: a drained server keeps its agents but gets
    /// no new ones, so agents moved off it land on the others.
    SetDrain {
        name: String,
        drain: bool,
    },
    /// Ask `node` to reconnect these agents (one chunk, at most `agent_chunk_size` ids).
    Reconnect {
        node: String,
        agents: Vec<u32>,
    },
    Wait {
        seconds: u64,
        reason: String,
    },
    Log {
        level: Level,
        message: String,
    },
}

/// What the planner remembers between cycles.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HelperState {
    /// When each backend server's node was first seen missing from the cluster.
    gone_since: BTreeMap<String, u64>,
    /// A backend change whose balancing has not run yet.
    pending: Option<Pending>,
    /// No balance check before this time (end of the last reconnection's stability wait).
    quiet_until_s: u64,
    /// When the backend last changed.
    last_change_s: Option<u64>,
}

#[derive(Debug, Clone, Default, PartialEq)]
struct Pending {
    /// When the servers still awaited were asked for.
    since_s: u64,
    /// Added or replaced servers that must be UP before balancing.
    awaiting_up: BTreeSet<String>,
    /// Agents of removed nodes, all to be reconnected.
    orphans: BTreeMap<String, Vec<u32>>,
}

impl HelperState {
    pub fn new() -> Self {
        Self::default()
    }

    /// When `node`'s disappearance was first seen, if it is being timed.
    pub fn gone_since(&self, node: &str) -> Option<u64> {
        self.gone_since.get(node).copied()
    }

    /// Whether a backend change still waits for its balancing.
    pub fn change_pending(&self) -> bool {
        self.pending.is_some()
    }

    pub fn quiet_until_s(&self) -> u64 {
        self.quiet_until_s
    }

    pub fn last_change_s(&self) -> Option<u64> {
        self.last_change_s
    }

    /// After a cycle whose actions did not all run: the balancing it had planned is owed
    /// again (the state as `before` the cycle), while the timers of gone nodes keep counting.
    pub fn cycle_failed(&mut self, before: &HelperState) {
        self.pending = before.pending.clone();
        self.quiet_until_s = before.quiet_until_s;
    }
}

/// Wazuh's balance test: with `mean = floor(total / n)`, balanced when
/// `max <= mean * (1 + t)` and `min >= mean * (1 - t)`, or when `max - min <= 1`.
/// No server or a single one is balanced.
pub fn is_balanced(counts: &[u64], tolerance: f64) -> bool {
    let (Some(&max), Some(&min)) = (counts.iter().max(), counts.iter().min()) else {
        return true;
    };
    if max - min <= 1 {
        return true;
    }
    let mean = mean(counts.iter().copied(), counts.len()) as f64;
    max as f64 <= mean * (1.0 + tolerance) && min as f64 >= mean * (1.0 - tolerance)
}

/// How many connections each server holds above `floor(total / n)` (servers at or below the
/// mean are left out).
pub fn above_mean(counts_by_server: &BTreeMap<String, u64>) -> BTreeMap<String, u64> {
    let mean = mean(counts_by_server.values().copied(), counts_by_server.len());
    counts_by_server
        .iter()
        .filter(|(_, &c)| c > mean)
        .map(|(name, &c)| (name.clone(), c - mean))
        .collect()
}

/// How many connections to move off each server: nothing when balanced, else `above_mean`.
pub fn excess(counts_by_server: &BTreeMap<String, u64>, tolerance: f64) -> BTreeMap<String, u64> {
    let counts: Vec<u64> = counts_by_server.values().copied().collect();
    if is_balanced(&counts, tolerance) {
        BTreeMap::new()
    } else {
        above_mean(counts_by_server)
    }
}

fn mean(values: impl Iterator<Item = u64>, n: usize) -> u64 {
    match n {
        0 => 0,
        n => values.sum::<u64>() / n as u64,
    }
}

/// Plans one cycle. Deterministic: the same config, state and observation give the same actions.
pub fn plan(cfg: &HaproxyHelper, state: &mut HelperState, obs: &Observed) -> Vec<Action> {
    let mut out = Vec::new();
    let now = obs.now_s;
    let excluded: BTreeSet<&str> = cfg.excluded_nodes.iter().map(String::as_str).collect();
    let desired: BTreeMap<&str, &ClusterNode> = obs
        .nodes
        .iter()
        .filter(|n| !excluded.contains(n.name.as_str()))
        .map(|n| (n.name.as_str(), n))
        .collect();
    let servers: BTreeMap<&str, &BackendServer> = if obs.backend_exists {
        obs.servers.iter().map(|s| (s.name.as_str(), s)).collect()
    } else {
        BTreeMap::new()
    };

    if !obs.backend_exists {
        log(
            &mut out,
            Level::Info,
            format!(
                "Backend '{}' not found, creating it with its frontend",
                cfg.backend
            ),
        );
        out.push(Action::CreateBackend {
            name: cfg.backend.clone(),
        });
        out.push(Action::CreateFrontend {
            name: format!("{}_front", cfg.backend),
            port: obs.agent_port,
            backend: cfg.backend.clone(),
        });
    }

    // The helper owns the drain state of its backend's servers (maintenance is `maint`): a
    // server still draining was left so by a cycle cut short (API error, master restart).
    for s in servers.values().filter(|s| s.drained) {
        log(
            &mut out,
            Level::Warning,
            format!(
                "Server {} was left draining by an interrupted cycle, making it ready",
                s.name
            ),
        );
        out.push(Action::SetDrain {
            name: s.name.clone(),
            drain: false,
        });
    }

    let mut added = BTreeSet::new();
    let mut removed = BTreeSet::new();

    let new: Vec<&ClusterNode> = desired
        .iter()
        .filter(|(name, _)| !servers.contains_key(*name))
        .map(|(_, n)| *n)
        .collect();
    if !new.is_empty() {
        let names: Vec<&str> = new.iter().map(|n| n.name.as_str()).collect();
        log(
            &mut out,
            Level::Info,
            format!("Detected new nodes: {}", names.join(", ")),
        );
        for n in new {
            out.push(Action::AddServer {
                name: n.name.clone(),
                address: n.address.clone(),
                port: n.port,
            });
            added.insert(n.name.clone());
        }
    }

    for (name, node) in &desired {
        let Some(server) = servers.get(name) else {
            continue;
        };
        if server.address != node.address || server.port != node.port {
            log(
                &mut out,
                Level::Info,
                format!(
                    "Detected a change of address of node {name}: {}:{} -> {}:{}",
                    server.address, server.port, node.address, node.port
                ),
            );
            out.push(Action::ReplaceServer {
                name: node.name.clone(),
                address: node.address.clone(),
                port: node.port,
            });
            added.insert(node.name.clone());
        }
    }

    // Forget timers of nodes that came back or whose server is already gone.
    state
        .gone_since
        .retain(|n, _| servers.contains_key(n.as_str()) && !desired.contains_key(n.as_str()));
    let remove_after = cfg.remove_disconnected_node_after.as_secs();
    for name in servers.keys().filter(|n| !desired.contains_key(*n)) {
        if excluded.contains(name) {
            // The operator wants it out now; no grace period applies.
            log(
                &mut out,
                Level::Info,
                format!("Removing excluded node {name} from the backend"),
            );
        } else {
            let first = !state.gone_since.contains_key(*name);
            let since = *state.gone_since.entry(name.to_string()).or_insert(now);
            let elapsed = now.saturating_sub(since);
            if elapsed < remove_after {
                if first {
                    log(
                        &mut out,
                        Level::Info,
                        format!(
                            "Detected disconnected node {name}, it will be removed from the \
                             backend in {} minutes",
                            (remove_after - elapsed).div_ceil(60)
                        ),
                    );
                }
                continue;
            }
            state.gone_since.remove(*name);
            log(
                &mut out,
                Level::Info,
                format!(
                    "Node {name} has been disconnected for {} minutes, removing it from the \
                     backend",
                    elapsed / 60
                ),
            );
        }
        out.push(Action::RemoveServer {
            name: name.to_string(),
        });
        removed.insert(name.to_string());
    }

    if !added.is_empty() || !removed.is_empty() {
        state.last_change_s = Some(now);
        let pending = state.pending.get_or_insert_with(Pending::default);
        if !added.is_empty() {
            pending.since_s = now;
        }
        pending.awaiting_up.extend(added.iter().cloned());
        for name in &removed {
            pending.awaiting_up.remove(name);
            if let Some(agents) = obs.agents_by_node.get(name) {
                pending.orphans.insert(name.clone(), agents.clone());
            }
        }
    }

    // Servers whose balance counts: UP and belonging to a connected, wanted node.
    let counts: BTreeMap<String, u64> = servers
        .iter()
        .filter(|(name, s)| s.up && desired.contains_key(*name) && !added.contains(**name))
        .map(|(name, s)| (name.to_string(), s.scur))
        .collect();

    if let Some(pending) = state.pending.as_mut() {
        if !added.is_empty() {
            // The servers were only requested this cycle: their state is known next cycle.
            log(
                &mut out,
                Level::Debug,
                "Waiting for the new servers to be UP before balancing".to_string(),
            );
            return out;
        }
        pending
            .awaiting_up
            .retain(|n| desired.contains_key(n.as_str()));
        let down: Vec<&str> = pending
            .awaiting_up
            .iter()
            .filter(|n| !servers.get(n.as_str()).is_some_and(|s| s.up))
            .map(String::as_str)
            .collect();
        if !down.is_empty() {
            let waited = now.saturating_sub(pending.since_s);
            if waited < UP_WAIT_LIMIT_S {
                log(
                    &mut out,
                    Level::Debug,
                    format!("Waiting for new servers to be UP: {}", down.join(", ")),
                );
                return out;
            }
            log(
                &mut out,
                Level::Warning,
                format!(
                    "Servers not UP after {waited}s, balancing anyway: {}",
                    down.join(", ")
                ),
            );
        }
        let orphans = std::mem::take(&mut pending.orphans);
        state.pending = None;
        log(
            &mut out,
            Level::Info,
            "Balancing exceeding connections after changes on the backend".to_string(),
        );
        let mut batches = pick_agents(&above_mean(&counts), obs.agents_by_node);
        batches.extend(orphans);
        reconnect(cfg, state, now, batches, &counts, &mut out);
        return out;
    }

    if now < state.quiet_until_s {
        log(
            &mut out,
            Level::Debug,
            format!(
                "Waiting {}s more for agent connections to stabilize",
                state.quiet_until_s - now
            ),
        );
        return out;
    }
    if counts.is_empty() {
        log(
            &mut out,
            Level::Debug,
            "No UP server in the backend, nothing to balance".to_string(),
        );
        return out;
    }
    let to_move = excess(&counts, cfg.imbalance_tolerance);
    if to_move.is_empty() {
        log(
            &mut out,
            Level::Info,
            "Load balancer backend is balanced".to_string(),
        );
        return out;
    }
    log(
        &mut out,
        Level::Info,
        "Load balancer backend is unbalanced, balancing exceeding connections".to_string(),
    );
    let batches = pick_agents(&to_move, obs.agents_by_node);
    reconnect(cfg, state, now, batches, &counts, &mut out);
    out
}

fn log(out: &mut Vec<Action>, level: Level, message: String) {
    out.push(Action::Log { level, message });
}

/// Agents to move per node, most loaded node first: the `n` highest ids of each.
fn pick_agents(
    to_move: &BTreeMap<String, u64>,
    agents_by_node: &BTreeMap<String, Vec<u32>>,
) -> Vec<(String, Vec<u32>)> {
    let mut order: Vec<(&String, u64)> = to_move.iter().map(|(n, &c)| (n, c)).collect();
    order.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0)));
    order
        .into_iter()
        .filter_map(|(node, n)| {
            let mut ids = agents_by_node.get(node)?.clone();
            ids.sort_unstable_by(|a, b| b.cmp(a));
            ids.dedup();
            ids.truncate(usize::try_from(n).unwrap_or(usize::MAX));
            Some((node.clone(), ids))
        })
        .collect()
}

/// Chunked reconnections with pauses between chunks, then the stability wait. A node still in
/// the backend (`in_backend`) is drained while its agents move, so leastconn cannot hand them
/// straight back to it, and made ready again one pause after its last chunk.
fn reconnect(
    cfg: &HaproxyHelper,
    state: &mut HelperState,
    now: u64,
    batches: Vec<(String, Vec<u32>)>,
    in_backend: &BTreeMap<String, u64>,
    out: &mut Vec<Action>,
) {
    // The config enforces >= 100; guard anyway so `chunks` never gets 0.
    let chunk = (cfg.agent_chunk_size as usize).max(1);
    let pause = cfg.agent_reconnection_time.as_secs();
    let mut waited = 0u64;
    let mut any = false;
    // A pause is owed after every chunk, before whatever reconnects or un-drains next.
    let mut owe_pause = false;
    for (node, agents) in batches.into_iter().filter(|(_, a)| !a.is_empty()) {
        log(
            out,
            Level::Info,
            format!("Reconnecting {} agents from {node}", agents.len()),
        );
        let drain = in_backend.contains_key(&node);
        if drain {
            out.push(Action::SetDrain {
                name: node.clone(),
                drain: true,
            });
        }
        for ids in agents.chunks(chunk) {
            if owe_pause {
                out.push(Action::Wait {
                    seconds: pause,
                    reason: "Waiting before reconnecting the next chunk of agents".to_string(),
                });
                waited += pause;
            }
            any = true;
            owe_pause = true;
            out.push(Action::Reconnect {
                node: node.clone(),
                agents: ids.to_vec(),
            });
        }
        if drain {
            if owe_pause {
                out.push(Action::Wait {
                    seconds: pause,
                    reason: format!("Waiting for {node}'s agents to reconnect elsewhere"),
                });
                waited += pause;
                owe_pause = false;
            }
            out.push(Action::SetDrain {
                name: node.clone(),
                drain: false,
            });
        }
    }
    if !any {
        log(out, Level::Info, "No agents to reconnect".to_string());
        return;
    }
    let stability = cfg.agent_reconnection_stability_time.as_secs();
    out.push(Action::Wait {
        seconds: stability,
        reason: "Waiting for agent connections to stabilize".to_string(),
    });
    state.quiet_until_s = now + waited + stability;
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn cfg() -> HaproxyHelper {
        HaproxyHelper {
            agent_chunk_size: 100,
            ..HaproxyHelper::default()
        }
    }

    fn node(name: &str, address: &str) -> ClusterNode {
        ClusterNode {
            name: name.to_string(),
            address: address.to_string(),
            port: 1514,
        }
    }

    fn server(name: &str, address: &str, up: bool, scur: u64) -> BackendServer {
        BackendServer {
            name: name.to_string(),
            address: address.to_string(),
            port: 1514,
            up,
            scur,
            drained: false,
        }
    }

    /// Agents `from..from+n` on each node, matching the servers' scur.
    fn agents(spec: &[(&str, u32, u32)]) -> BTreeMap<String, Vec<u32>> {
        spec.iter()
            .map(|(n, from, count)| (n.to_string(), (*from..*from + *count).collect()))
            .collect()
    }

    fn obs<'a>(
        now_s: u64,
        nodes: &'a [ClusterNode],
        servers: &'a [BackendServer],
        agents_by_node: &'a BTreeMap<String, Vec<u32>>,
    ) -> Observed<'a> {
        Observed {
            now_s,
            agent_port: 1514,
            nodes,
            backend_exists: true,
            servers,
            agents_by_node,
        }
    }

    fn reconnects(actions: &[Action]) -> Vec<(String, Vec<u32>)> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::Reconnect { node, agents } => Some((node.clone(), agents.clone())),
                _ => None,
            })
            .collect()
    }

    fn waits(actions: &[Action]) -> Vec<u64> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::Wait { seconds, .. } => Some(*seconds),
                _ => None,
            })
            .collect()
    }

    fn has_log(actions: &[Action], text: &str) -> bool {
        actions
            .iter()
            .any(|a| matches!(a, Action::Log { message, .. } if message.contains(text)))
    }

    fn counts(spec: &[(&str, u64)]) -> BTreeMap<String, u64> {
        spec.iter().map(|(n, c)| (n.to_string(), *c)).collect()
    }

    #[test]
    fn no_server_or_one_server_is_balanced() {
        assert!(is_balanced(&[], 0.1));
        assert!(is_balanced(&[5000], 0.0));
    }

    #[test]
    fn zero_agents_is_balanced() {
        assert!(is_balanced(&[0, 0, 0], 0.1));
        assert!(excess(&counts(&[("a", 0), ("b", 0)]), 0.1).is_empty());
    }

    #[test]
    fn difference_of_one_is_balanced_even_without_tolerance() {
        // mean = 1, max 2 > 1 * 1.0 but max - min = 1.
        assert!(is_balanced(&[1, 2], 0.0));
        assert!(is_balanced(&[0, 1, 1], 0.0));
        assert!(!is_balanced(&[0, 2], 0.0));
    }

    #[test]
    fn tolerance_bounds_are_inclusive() {
        // mean 100: max 110 and min 90 sit exactly on the bounds.
        assert!(is_balanced(&[110, 90], 0.1));
        assert!(!is_balanced(&[111, 89], 0.1));
        assert!(is_balanced(&[100, 105, 95], 0.1));
        assert!(!is_balanced(&[100, 130, 70], 0.1));
    }

    #[test]
    fn low_side_alone_can_unbalance() {
        // mean 66: max 100 > 72.6, and min 0 < 59.4.
        assert!(!is_balanced(&[100, 100, 0], 0.1));
        // mean 10, min 8 < 9 while max 11 <= 11.
        assert!(!is_balanced(&[11, 11, 11, 8, 11, 8], 0.1));
    }

    #[test]
    fn mean_is_floored() {
        // total 7 over 2 -> mean 3; 4 - 3 = 1 above the mean.
        assert_eq!(
            above_mean(&counts(&[("a", 4), ("b", 3)])),
            counts(&[("a", 1)])
        );
        assert!(above_mean(&BTreeMap::new()).is_empty());
    }

    #[test]
    fn excess_is_empty_when_balanced_and_above_mean_otherwise() {
        assert!(excess(&counts(&[("a", 105), ("b", 95)]), 0.1).is_empty());
        let got = excess(&counts(&[("a", 600), ("b", 300), ("c", 0)]), 0.1);
        assert_eq!(got, counts(&[("a", 300)]));
    }

    #[test]
    fn first_cycle_creates_backend_frontend_and_servers() {
        let mut cfg = cfg();
        cfg.excluded_nodes = vec!["w9".to_string()];
        let nodes = [
            node("master", "10.0.0.1"),
            node("w1", "10.0.0.2"),
            node("w9", "10.0.0.9"),
        ];
        let ag = BTreeMap::new();
        let mut o = obs(0, &nodes, &[], &ag);
        o.backend_exists = false;
        let mut st = HelperState::new();
        let acts = plan(&cfg, &mut st, &o);
        let structural: Vec<&Action> = acts
            .iter()
            .filter(|a| !matches!(a, Action::Log { .. }))
            .collect();
        assert_eq!(
            structural,
            vec![
                &Action::CreateBackend {
                    name: "wazuh_reporting".into()
                },
                &Action::CreateFrontend {
                    name: "wazuh_reporting_front".into(),
                    port: 1514,
                    backend: "wazuh_reporting".into()
                },
                &Action::AddServer {
                    name: "master".into(),
                    address: "10.0.0.1".into(),
                    port: 1514
                },
                &Action::AddServer {
                    name: "w1".into(),
                    address: "10.0.0.2".into(),
                    port: 1514
                },
            ]
        );
        assert!(has_log(&acts, "Detected new nodes: master, w1"));
        assert!(st.change_pending());
    }

    #[test]
    fn servers_reported_with_a_missing_backend_are_ignored() {
        let nodes = [node("w1", "10.0.0.2")];
        let stale = [server("w1", "10.0.0.2", true, 0)];
        let ag = BTreeMap::new();
        let mut o = obs(0, &nodes, &stale, &ag);
        o.backend_exists = false;
        let acts = plan(&cfg(), &mut HelperState::new(), &o);
        assert!(acts
            .iter()
            .any(|a| matches!(a, Action::AddServer { name, .. } if name == "w1")));
    }

    #[test]
    fn after_creation_balancing_runs_once_servers_are_up() {
        let cfg = cfg();
        let nodes = [node("w1", "10.0.0.2"), node("w2", "10.0.0.3")];
        let ag = BTreeMap::new();
        let mut st = HelperState::new();
        let mut o = obs(0, &nodes, &[], &ag);
        o.backend_exists = false;
        plan(&cfg, &mut st, &o);
        let servers = [
            server("w1", "10.0.0.2", true, 0),
            server("w2", "10.0.0.3", true, 0),
        ];
        let acts = plan(&cfg, &mut st, &obs(60, &nodes, &servers, &ag));
        assert!(has_log(
            &acts,
            "Balancing exceeding connections after changes on the backend"
        ));
        assert!(reconnects(&acts).is_empty());
        assert!(has_log(&acts, "No agents to reconnect"));
        assert!(!st.change_pending());
    }

    #[test]
    fn new_worker_is_added_then_loaded_nodes_are_drained_in_chunks() {
        let cfg = cfg();
        let ag = agents(&[("w1", 1000, 600), ("w2", 2000, 600)]);
        let mut st = HelperState::new();

        // Cycle 1: w3 joins.
        let nodes = [
            node("w1", "10.0.0.1"),
            node("w2", "10.0.0.2"),
            node("w3", "10.0.0.3"),
        ];
        let before = [
            server("w1", "10.0.0.1", true, 600),
            server("w2", "10.0.0.2", true, 600),
        ];
        let acts = plan(&cfg, &mut st, &obs(0, &nodes, &before, &ag));
        assert!(has_log(&acts, "Detected new nodes: w3"));
        assert!(acts.contains(&Action::AddServer {
            name: "w3".into(),
            address: "10.0.0.3".into(),
            port: 1514
        }));
        assert!(reconnects(&acts).is_empty());

        // Cycle 2: w3 still DOWN -> nothing but waiting.
        let mut after = before.to_vec();
        after.push(server("w3", "10.0.0.3", false, 0));
        let acts = plan(&cfg, &mut st, &obs(60, &nodes, &after, &ag));
        assert!(reconnects(&acts).is_empty());
        assert!(has_log(&acts, "Waiting for new servers to be UP: w3"));

        // Cycle 3: w3 UP -> mean 400, 200 off each of w1 and w2.
        after[2].up = true;
        let acts = plan(&cfg, &mut st, &obs(120, &nodes, &after, &ag));
        assert!(has_log(
            &acts,
            "Balancing exceeding connections after changes on the backend"
        ));
        assert!(has_log(&acts, "Reconnecting 200 agents from w1"));
        assert!(has_log(&acts, "Reconnecting 200 agents from w2"));
        let rc = reconnects(&acts);
        assert_eq!(rc.len(), 4);
        assert!(rc.iter().all(|(n, ids)| n != "w3" && ids.len() <= 100));
        // Highest ids first.
        assert_eq!(rc[0].0, "w1");
        assert_eq!(rc[0].1[0], 1599);
        assert_eq!(rc[1].1.last(), Some(&1400));
        assert_eq!(rc[2].0, "w2");
        assert_eq!(rc[2].1[0], 2599);
        // 5 s after each chunk (the pause that ends a node's drain included), then the 60 s
        // stability wait, last.
        assert_eq!(waits(&acts), vec![5, 5, 5, 5, 60]);
        // Each loaded node is drained while its agents move, and made ready again after.
        let drains: Vec<(&str, bool)> = acts
            .iter()
            .filter_map(|a| match a {
                Action::SetDrain { name, drain } => Some((name.as_str(), *drain)),
                _ => None,
            })
            .collect();
        assert_eq!(
            drains,
            vec![("w1", true), ("w1", false), ("w2", true), ("w2", false)]
        );
        let w1_ready = acts
            .iter()
            .position(|a| {
                a == &Action::SetDrain {
                    name: "w1".into(),
                    drain: false,
                }
            })
            .unwrap();
        assert!(matches!(
            acts[w1_ready - 1],
            Action::Wait { seconds: 5, .. }
        ));
        assert!(matches!(
            acts.last(),
            Some(Action::Wait { seconds: 60, .. })
        ));
        // Waits sit between chunks, never before the first one.
        let first_rc = acts
            .iter()
            .position(|a| matches!(a, Action::Reconnect { .. }))
            .unwrap();
        assert!(!acts[..first_rc]
            .iter()
            .any(|a| matches!(a, Action::Wait { .. })));
        assert_eq!(st.quiet_until_s(), 120 + 20 + 60);
        assert!(!st.change_pending());
    }

    #[test]
    fn stability_window_suppresses_balancing() {
        let cfg = cfg();
        let nodes = [node("w1", "a"), node("w2", "b")];
        let servers = [server("w1", "a", true, 500), server("w2", "b", true, 0)];
        let ag = agents(&[("w1", 1, 500)]);
        let mut st = HelperState::new();
        let acts = plan(&cfg, &mut st, &obs(0, &nodes, &servers, &ag));
        assert_eq!(reconnects(&acts).len(), 3);
        let quiet = st.quiet_until_s();
        let acts = plan(&cfg, &mut st, &obs(quiet - 1, &nodes, &servers, &ag));
        assert!(reconnects(&acts).is_empty());
        assert!(has_log(&acts, "stabilize"));
        let acts = plan(&cfg, &mut st, &obs(quiet, &nodes, &servers, &ag));
        assert!(!reconnects(&acts).is_empty());
    }

    #[test]
    fn up_wait_gives_up_after_the_limit() {
        let cfg = cfg();
        let nodes = [node("w1", "a"), node("w2", "b")];
        let ag = agents(&[("w1", 1, 300)]);
        let mut st = HelperState::new();
        plan(
            &cfg,
            &mut st,
            &obs(0, &nodes, &[server("w1", "a", true, 300)], &ag),
        );
        let servers = [server("w1", "a", true, 300), server("w2", "b", false, 0)];
        let acts = plan(
            &cfg,
            &mut st,
            &obs(UP_WAIT_LIMIT_S - 1, &nodes, &servers, &ag),
        );
        assert!(st.change_pending());
        assert!(reconnects(&acts).is_empty());
        let acts = plan(&cfg, &mut st, &obs(UP_WAIT_LIMIT_S, &nodes, &servers, &ag));
        assert!(acts.iter().any(
            |a| matches!(a, Action::Log { level: Level::Warning, message } if message.contains("w2"))
        ));
        assert!(!st.change_pending());
    }

    #[test]
    fn gone_node_is_removed_only_after_the_delay_and_its_agents_reconnected() {
        let cfg = cfg();
        let after = cfg.remove_disconnected_node_after.as_secs();
        let nodes = [node("w1", "a"), node("w2", "b")];
        let servers = [
            server("w1", "a", true, 50),
            server("w2", "b", true, 50),
            server("w3", "c", false, 0),
        ];
        let ag = agents(&[("w1", 1, 50), ("w2", 100, 50), ("w3", 500, 150)]);
        let mut st = HelperState::new();

        let acts = plan(&cfg, &mut st, &obs(1000, &nodes, &servers, &ag));
        assert!(has_log(
            &acts,
            "Detected disconnected node w3, it will be removed from the backend in 240 minutes"
        ));
        assert!(!acts
            .iter()
            .any(|a| matches!(a, Action::RemoveServer { .. })));
        assert_eq!(st.gone_since("w3"), Some(1000));
        // The DOWN server of the gone node does not count: w1/w2 are balanced.
        assert!(has_log(&acts, "Load balancer backend is balanced"));

        let acts = plan(&cfg, &mut st, &obs(1000 + after - 1, &nodes, &servers, &ag));
        assert!(!acts
            .iter()
            .any(|a| matches!(a, Action::RemoveServer { .. })));
        assert!(!has_log(&acts, "Detected disconnected node"));

        let acts = plan(&cfg, &mut st, &obs(1000 + after, &nodes, &servers, &ag));
        assert!(acts.contains(&Action::RemoveServer { name: "w3".into() }));
        let rc = reconnects(&acts);
        let w3: Vec<u32> = rc
            .iter()
            .filter(|(n, _)| n == "w3")
            .flat_map(|(_, ids)| ids.clone())
            .collect();
        assert_eq!(w3, (500..650).collect::<Vec<u32>>());
        assert!(rc.iter().all(|(n, _)| n == "w3"));
        assert_eq!(st.gone_since("w3"), None);
        assert!(!st.change_pending());
        assert!(matches!(
            acts.last(),
            Some(Action::Wait { seconds: 60, .. })
        ));
    }

    #[test]
    fn returning_node_resets_its_removal_timer() {
        let cfg = cfg();
        let servers = [server("w1", "a", true, 0), server("w2", "b", true, 0)];
        let ag = BTreeMap::new();
        let mut st = HelperState::new();
        let only_w1 = [node("w1", "a")];
        plan(&cfg, &mut st, &obs(0, &only_w1, &servers, &ag));
        assert_eq!(st.gone_since("w2"), Some(0));
        let both = [node("w1", "a"), node("w2", "b")];
        plan(&cfg, &mut st, &obs(100, &both, &servers, &ag));
        assert_eq!(st.gone_since("w2"), None);
        let acts = plan(&cfg, &mut st, &obs(20_000, &only_w1, &servers, &ag));
        assert!(!acts
            .iter()
            .any(|a| matches!(a, Action::RemoveServer { .. })));
        assert_eq!(st.gone_since("w2"), Some(20_000));
    }

    #[test]
    fn zero_removal_delay_removes_at_once() {
        let mut cfg = cfg();
        cfg.remove_disconnected_node_after = Duration::ZERO;
        let servers = [server("w1", "a", true, 0), server("w2", "b", false, 0)];
        let ag = BTreeMap::new();
        let acts = plan(
            &cfg,
            &mut HelperState::new(),
            &obs(5, &[node("w1", "a")], &servers, &ag),
        );
        assert!(acts.contains(&Action::RemoveServer { name: "w2".into() }));
    }

    #[test]
    fn address_change_replaces_the_server_and_waits_for_it() {
        let cfg = cfg();
        let nodes = [node("w1", "a"), node("w2", "10.9.9.9")];
        let servers = [server("w1", "a", true, 10), server("w2", "b", true, 10)];
        let ag = BTreeMap::new();
        let mut st = HelperState::new();
        let acts = plan(&cfg, &mut st, &obs(0, &nodes, &servers, &ag));
        assert!(acts.contains(&Action::ReplaceServer {
            name: "w2".into(),
            address: "10.9.9.9".into(),
            port: 1514
        }));
        assert!(!acts.iter().any(|a| matches!(a, Action::AddServer { .. })));
        assert!(has_log(&acts, "Detected a change of address of node w2"));
        assert!(st.change_pending());

        // A port change alone also counts.
        let mut moved = servers.to_vec();
        moved[1].address = "10.9.9.9".into();
        moved[1].port = 1515;
        let acts = plan(&cfg, &mut HelperState::new(), &obs(0, &nodes, &moved, &ag));
        assert!(acts
            .iter()
            .any(|a| matches!(a, Action::ReplaceServer { name, port: 1514, .. } if name == "w2")));
    }

    #[test]
    fn excluded_nodes_are_never_added_and_removed_if_present() {
        let mut cfg = cfg();
        cfg.excluded_nodes = vec!["master".to_string()];
        let nodes = [node("master", "m"), node("w1", "a")];
        let ag = agents(&[("master", 1, 20), ("w1", 100, 20)]);
        let servers = [server("w1", "a", true, 20)];
        let acts = plan(
            &cfg,
            &mut HelperState::new(),
            &obs(0, &nodes, &servers, &ag),
        );
        assert!(!acts.iter().any(|a| matches!(
            a,
            Action::AddServer { .. } | Action::ReplaceServer { .. } | Action::RemoveServer { .. }
        )));
        assert!(has_log(&acts, "Load balancer backend is balanced"));

        // Excluded after the fact: removed at once, its agents moved off.
        let servers = [server("master", "m", true, 20), server("w1", "a", true, 20)];
        let mut st = HelperState::new();
        let acts = plan(&cfg, &mut st, &obs(0, &nodes, &servers, &ag));
        assert!(acts.contains(&Action::RemoveServer {
            name: "master".into()
        }));
        assert!(has_log(&acts, "Removing excluded node master"));
        assert_eq!(st.gone_since("master"), None);
        assert_eq!(
            reconnects(&acts),
            vec![("master".to_string(), (1..21).collect::<Vec<u32>>())]
        );
    }

    #[test]
    fn unbalanced_without_changes_reconnects_the_excess_of_the_loaded() {
        let cfg = cfg();
        let nodes = [node("master", "m"), node("w1", "a"), node("w2", "b")];
        // total 900 -> mean 300: master +150, w1 +0, w2 below.
        let servers = [
            server("master", "m", true, 450),
            server("w1", "a", true, 300),
            server("w2", "b", true, 150),
        ];
        let ag = agents(&[("master", 1, 450), ("w1", 1000, 300), ("w2", 2000, 150)]);
        let mut st = HelperState::new();
        let acts = plan(&cfg, &mut st, &obs(0, &nodes, &servers, &ag));
        assert!(has_log(&acts, "Load balancer backend is unbalanced"));
        assert!(has_log(&acts, "Reconnecting 150 agents from master"));
        let rc = reconnects(&acts);
        assert_eq!(rc.len(), 2);
        assert!(rc.iter().all(|(n, _)| n == "master"));
        assert_eq!(rc[0].1, (351..451).rev().collect::<Vec<u32>>());
        assert_eq!(rc[1].1, (301..351).rev().collect::<Vec<u32>>());
        assert_eq!(waits(&acts), vec![5, 5, 60]);
        assert!(!acts
            .iter()
            .any(|a| matches!(a, Action::AddServer { .. } | Action::RemoveServer { .. })));
    }

    #[test]
    fn most_loaded_node_goes_first() {
        let cfg = cfg();
        let nodes = [node("a", "a"), node("b", "b"), node("c", "c")];
        // mean 300: b +250, a +50.
        let servers = [
            server("a", "a", true, 350),
            server("b", "b", true, 550),
            server("c", "c", true, 0),
        ];
        let ag = agents(&[("a", 1, 350), ("b", 1000, 550)]);
        let rc = reconnects(&plan(
            &cfg,
            &mut HelperState::new(),
            &obs(0, &nodes, &servers, &ag),
        ));
        let order: Vec<&str> = rc.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(order, vec!["b", "b", "b", "a"]);
    }

    #[test]
    fn registry_with_fewer_agents_than_sessions_moves_what_it_knows() {
        let cfg = cfg();
        let nodes = [node("w1", "a"), node("w2", "b")];
        let servers = [server("w1", "a", true, 400), server("w2", "b", true, 0)];
        // scur says 200 to move but the registry only knows 30 agents on w1.
        let ag = agents(&[("w1", 1, 30)]);
        let rc = reconnects(&plan(
            &cfg,
            &mut HelperState::new(),
            &obs(0, &nodes, &servers, &ag),
        ));
        assert_eq!(
            rc,
            vec![("w1".to_string(), (1..31).rev().collect::<Vec<u32>>())]
        );
    }

    #[test]
    fn balanced_backend_yields_a_single_log_line() {
        let cfg = cfg();
        let nodes = [node("w1", "a"), node("w2", "b")];
        let servers = [server("w1", "a", true, 100), server("w2", "b", true, 104)];
        let ag = agents(&[("w1", 1, 100), ("w2", 200, 104)]);
        let acts = plan(
            &cfg,
            &mut HelperState::new(),
            &obs(0, &nodes, &servers, &ag),
        );
        assert_eq!(
            acts,
            vec![Action::Log {
                level: Level::Info,
                message: "Load balancer backend is balanced".into()
            }]
        );
    }

    #[test]
    fn down_servers_are_not_measured() {
        let cfg = cfg();
        let nodes = [node("w1", "a"), node("w2", "b")];
        let servers = [server("w1", "a", true, 300), server("w2", "b", false, 0)];
        let ag = agents(&[("w1", 1, 300)]);
        let acts = plan(
            &cfg,
            &mut HelperState::new(),
            &obs(0, &nodes, &servers, &ag),
        );
        assert!(reconnects(&acts).is_empty());
        assert!(has_log(&acts, "Load balancer backend is balanced"));

        let none_up = [server("w1", "a", false, 0)];
        let acts = plan(
            &cfg,
            &mut HelperState::new(),
            &obs(0, &nodes[..1], &none_up, &ag),
        );
        assert!(has_log(&acts, "nothing to balance"));
    }

    #[test]
    fn a_server_left_draining_is_made_ready_first() {
        let cfg = cfg();
        let nodes = [node("w1", "a"), node("w2", "b")];
        let mut servers = [server("w1", "a", true, 50), server("w2", "b", true, 50)];
        servers[1].drained = true;
        let ag = agents(&[("w1", 1, 50), ("w2", 1000, 50)]);
        let acts = plan(
            &cfg,
            &mut HelperState::new(),
            &obs(0, &nodes, &servers, &ag),
        );
        let first = acts
            .iter()
            .find(|a| !matches!(a, Action::Log { .. }))
            .cloned();
        assert_eq!(
            first,
            Some(Action::SetDrain {
                name: "w2".into(),
                drain: false
            })
        );
        assert!(has_log(&acts, "left draining"));
        assert!(reconnects(&acts).is_empty());
    }

    #[test]
    fn chunk_size_is_honoured() {
        let mut cfg = cfg();
        cfg.agent_chunk_size = 300;
        cfg.agent_reconnection_time = Duration::from_secs(7);
        let nodes = [node("w1", "a"), node("w2", "b")];
        let servers = [server("w1", "a", true, 1400), server("w2", "b", true, 0)];
        let ag = agents(&[("w1", 1, 1400)]);
        let acts = plan(
            &cfg,
            &mut HelperState::new(),
            &obs(0, &nodes, &servers, &ag),
        );
        let sizes: Vec<usize> = reconnects(&acts).iter().map(|(_, a)| a.len()).collect();
        assert_eq!(sizes, vec![300, 300, 100]);
        assert_eq!(waits(&acts), vec![7, 7, 7, 60]);
    }

    #[test]
    fn planning_is_deterministic() {
        let cfg = cfg();
        let nodes = [node("w1", "a"), node("w2", "b"), node("w3", "c")];
        let servers = [
            server("w1", "a", true, 700),
            server("w2", "b", true, 200),
            server("w4", "d", false, 0),
        ];
        let ag = agents(&[("w1", 1, 700), ("w2", 1000, 200)]);
        let o = obs(42, &nodes, &servers, &ag);
        let mut s1 = HelperState::new();
        let mut s2 = HelperState::new();
        assert_eq!(plan(&cfg, &mut s1, &o), plan(&cfg, &mut s2, &o));
        assert_eq!(s1, s2);
    }
}
