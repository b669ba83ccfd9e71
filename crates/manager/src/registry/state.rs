//! The registry as a pure state machine: `State::apply` depends only on the current state and the
//! command (never on the clock or randomness), so every replica that applies the same log reaches
//! the same state. Times come inside the commands.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// One registered agent (a `client.keys` line plus what workers report about it).
/// `Debug` leaves the key out, so no log line or error text can carry it.
#[derive(Serialize, Deserialize, Clone, PartialEq)]
pub struct Agent {
    pub id: u32,
    pub name: String,
    /// `"any"` or an address (optionally with a CIDR suffix), as Wazuh stores it.
    pub ip: String,
    /// 64 hex chars.
    pub key: String,
    pub groups: Vec<String>,
    /// Registration time, unix seconds.
    pub registered: i64,
    pub version: Option<String>,
    pub os: Option<String>,
    pub labels: BTreeMap<String, String>,
    pub status: AgentStatus,
    pub last_keepalive: Option<i64>,
    /// The cluster node the agent last reported through.
    pub node: Option<String>,
}

impl std::fmt::Debug for Agent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Agent")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("ip", &self.ip)
            .field("key", &"<redacted>")
            .field("groups", &self.groups)
            .field("status", &self.status)
            .field("node", &self.node)
            .finish_non_exhaustive()
    }
}

/// Wazuh's `connection_status`.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum AgentStatus {
    NeverConnected,
    Pending,
    Active,
    Disconnected,
}

impl AgentStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            AgentStatus::NeverConnected => "never_connected",
            AgentStatus::Pending => "pending",
            AgentStatus::Active => "active",
            AgentStatus::Disconnected => "disconnected",
        }
    }
}

impl fmt::Display for AgentStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for AgentStatus {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "never_connected" => Ok(AgentStatus::NeverConnected),
            "pending" => Ok(AgentStatus::Pending),
            "active" => Ok(AgentStatus::Active),
            "disconnected" => Ok(AgentStatus::Disconnected),
            other => Err(format!("unknown agent status: {other}")),
        }
    }
}

/// authd's `<force>` block: when a new enrollment may replace an agent with the same name or IP.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
pub struct ForcePolicy {
    pub enabled: bool,
    pub key_mismatch: bool,
    /// Seconds the old agent must have been disconnected (or never connected); `None` = disabled.
    pub disconnected_time: Option<u64>,
    /// Seconds since the old agent's registration.
    pub after_registration_time: u64,
}

/// What a worker knows about one agent connected through it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct AgentReport {
    pub id: u32,
    /// When given it must match the registry's name, else the report is treated as unknown.
    pub name: Option<String>,
    pub version: Option<String>,
    pub os: Option<String>,
    pub labels: BTreeMap<String, String>,
    pub status: AgentStatus,
    pub last_keepalive: Option<i64>,
    pub groups: Option<Vec<String>>,
}

/// One entry of the durable log. Externally tagged serde; the names are the on-disk format, so
/// never rename a variant or field (add new fields with `#[serde(default)]`).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub enum Command {
    Register {
        name: String,
        ip: String,
        key: String,
        groups: Vec<String>,
        time: i64,
        force: ForcePolicy,
        key_hash: Option<String>,
    },
    Delete {
        id: u32,
    },
    SetGroups {
        id: u32,
        groups: Vec<String>,
    },
    AgentInfo {
        node: String,
        time: i64,
        items: Vec<AgentReport>,
    },
}

#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    Registered(Agent),
    /// A `<force>` replacement: agent `old` was removed and `agent` registered.
    Replaced {
        old: u32,
        agent: Agent,
    },
    Deleted(Agent),
    GroupsSet(Agent),
    InfoApplied {
        applied: usize,
        /// Report ids the registry does not hold (or whose name differs); the caller logs them.
        unknown: Vec<u32>,
        /// Agents that had no groups and took the worker-reported ones.
        groups_adopted: Vec<u32>,
    },
    Rejected(RejectReason),
}

impl Outcome {
    pub fn is_rejected(&self) -> bool {
        matches!(self, Outcome::Rejected(_))
    }
}

/// Why a command was refused; `Display` is the text Wazuh's authd puts after `ERROR: `.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RejectReason {
    #[error("Duplicate agent name: {0}")]
    DuplicateName(String),
    #[error("Duplicate IP: {0}")]
    DuplicateIp(String),
    #[error("Agent {0:03} doesn't exist")]
    NoSuchAgent(u32),
}

/// The registry contents plus the index of the last applied log entry.
#[derive(Clone, Debug, PartialEq)]
pub struct State {
    agents: BTreeMap<u32, Agent>,
    /// Secondary indexes; rebuilt from `agents`, never serialized.
    names: BTreeMap<String, u32>,
    ips: BTreeMap<String, u32>,
    next_id: u32,
    applied: u64,
}

impl Default for State {
    fn default() -> Self {
        State::new()
    }
}

impl State {
    /// An empty registry: the first agent gets id 1 (0 is the manager itself).
    pub fn new() -> State {
        State {
            agents: BTreeMap::new(),
            names: BTreeMap::new(),
            ips: BTreeMap::new(),
            next_id: 1,
            applied: 0,
        }
    }

    /// Rebuilds a state from stored rows (a snapshot or the store's tables).
    pub fn from_parts(
        applied: u64,
        next_id: u32,
        agents: impl IntoIterator<Item = Agent>,
    ) -> State {
        let mut s = State::new();
        s.applied = applied;
        s.next_id = next_id.max(1);
        for a in agents {
            // Keep ids unique even if the stored next_id lags behind (it never should).
            s.next_id = s.next_id.max(a.id.saturating_add(1));
            s.insert(a);
        }
        s
    }

    pub fn get(&self, id: u32) -> Option<&Agent> {
        self.agents.get(&id)
    }

    pub fn by_name(&self, name: &str) -> Option<&Agent> {
        self.names.get(name).and_then(|id| self.agents.get(id))
    }

    /// The agent registered with this exact IP (never matches `"any"`).
    pub fn by_ip(&self, ip: &str) -> Option<&Agent> {
        self.ips.get(ip).and_then(|id| self.agents.get(id))
    }

    /// Agents in id order.
    pub fn agents(&self) -> impl Iterator<Item = &Agent> {
        self.agents.values()
    }

    pub fn len(&self) -> usize {
        self.agents.len()
    }

    pub fn is_empty(&self) -> bool {
        self.agents.is_empty()
    }

    /// Index of the last applied (non-rejected) command.
    pub fn applied(&self) -> u64 {
        self.applied
    }

    /// The id the next registration will get.
    pub fn next_id(&self) -> u32 {
        self.next_id
    }

    /// Applies `cmd` as log entry `index`. Rejected outcomes change nothing (not even
    /// `applied`); any other outcome sets `applied = index`. Callers feed increasing indexes.
    pub fn apply(&mut self, index: u64, cmd: &Command) -> Outcome {
        self.apply_tracked(index, cmd).0
    }

    /// `apply`, also returning the ids whose rows changed (the store rewrites just those).
    pub(crate) fn apply_tracked(&mut self, index: u64, cmd: &Command) -> (Outcome, Vec<u32>) {
        let (outcome, touched) = match cmd {
            Command::Register {
                name,
                ip,
                key,
                groups,
                time,
                force,
                key_hash,
            } => self.register(name, ip, key, groups, *time, force, key_hash.as_deref()),
            Command::Delete { id } => match self.remove(*id) {
                Some(a) => (Outcome::Deleted(a), vec![*id]),
                None => (Outcome::Rejected(RejectReason::NoSuchAgent(*id)), vec![]),
            },
            Command::SetGroups { id, groups } => match self.agents.get_mut(id) {
                Some(a) => {
                    a.groups = groups.clone();
                    (Outcome::GroupsSet(a.clone()), vec![*id])
                }
                None => (Outcome::Rejected(RejectReason::NoSuchAgent(*id)), vec![]),
            },
            Command::AgentInfo { node, time, items } => self.agent_info(node, *time, items),
        };
        if !outcome.is_rejected() {
            self.applied = index;
        }
        (outcome, touched)
    }

    /// Marks `index` applied without a state change: a replica must stay in the log's index
    /// space even if an entry is (unexpectedly) rejected locally.
    pub(crate) fn set_applied(&mut self, index: u64) {
        self.applied = index;
    }

    fn insert(&mut self, a: Agent) {
        self.names.insert(a.name.clone(), a.id);
        if a.ip != "any" {
            self.ips.insert(a.ip.clone(), a.id);
        }
        self.agents.insert(a.id, a);
    }

    fn remove(&mut self, id: u32) -> Option<Agent> {
        let a = self.agents.remove(&id)?;
        if self.names.get(&a.name) == Some(&id) {
            self.names.remove(&a.name);
        }
        if self.ips.get(&a.ip) == Some(&id) {
            self.ips.remove(&a.ip);
        }
        Some(a)
    }

    // Mirrors authd's w_auth_validate_data: the IP duplicate is checked first, then the name.
    #[allow(clippy::too_many_arguments)]
    fn register(
        &mut self,
        name: &str,
        ip: &str,
        key: &str,
        groups: &[String],
        time: i64,
        force: &ForcePolicy,
        key_hash: Option<&str>,
    ) -> (Outcome, Vec<u32>) {
        let mut victim = None;
        if ip != "any" {
            if let Some(old) = self.by_ip(ip) {
                if !may_replace(old, time, force, key_hash) {
                    return reject(RejectReason::DuplicateIp(ip.to_string()));
                }
                victim = Some(old.id);
            }
        }
        if let Some(old) = self.by_name(name) {
            // Two different agents in the way: refuse rather than remove both for one enrollment.
            if victim.is_some_and(|v| v != old.id) || !may_replace(old, time, force, key_hash) {
                return reject(RejectReason::DuplicateName(name.to_string()));
            }
            victim = Some(old.id);
        }
        let mut touched = Vec::with_capacity(2);
        if let Some(old) = victim {
            self.remove(old);
            touched.push(old);
        }
        let id = self.next_id;
        self.next_id = self.next_id.saturating_add(1);
        let agent = Agent {
            id,
            name: name.to_string(),
            ip: ip.to_string(),
            key: key.to_string(),
            groups: groups.to_vec(),
            registered: time,
            version: None,
            os: None,
            labels: BTreeMap::new(),
            status: AgentStatus::NeverConnected,
            last_keepalive: None,
            node: None,
        };
        self.insert(agent.clone());
        touched.push(id);
        let outcome = match victim {
            Some(old) => Outcome::Replaced { old, agent },
            None => Outcome::Registered(agent),
        };
        (outcome, touched)
    }

    fn agent_info(&mut self, node: &str, time: i64, items: &[AgentReport]) -> (Outcome, Vec<u32>) {
        let mut applied = 0;
        let mut unknown = Vec::new();
        let mut groups_adopted = Vec::new();
        let mut touched = Vec::new();
        for r in items {
            let Some(a) = self.agents.get_mut(&r.id) else {
                unknown.push(r.id);
                continue;
            };
            if r.name.as_deref().is_some_and(|n| n != a.name) {
                unknown.push(r.id);
                continue;
            }
            // An agent that moved to another node stays active there: a late "disconnected"
            // from the node it left must not override it.
            let other_node = a.node.as_deref().is_some_and(|n| n != node);
            if other_node && a.status == AgentStatus::Active && r.status != AgentStatus::Active {
                continue;
            }
            if r.version.is_some() {
                a.version.clone_from(&r.version);
            }
            if r.os.is_some() {
                a.os.clone_from(&r.os);
            }
            a.labels.clone_from(&r.labels);
            a.status = r.status;
            match r.last_keepalive {
                Some(t) => a.last_keepalive = Some(t),
                None if r.status == AgentStatus::Active => a.last_keepalive = Some(time),
                None => {}
            }
            a.node = Some(node.to_string());
            if let Some(g) = &r.groups {
                if !g.is_empty() && a.groups.is_empty() {
                    a.groups.clone_from(g);
                    groups_adopted.push(r.id);
                }
            }
            applied += 1;
            touched.push(r.id);
        }
        let outcome = Outcome::InfoApplied {
            applied,
            unknown,
            groups_adopted,
        };
        (outcome, touched)
    }
}

fn reject(r: RejectReason) -> (Outcome, Vec<u32>) {
    (Outcome::Rejected(r), Vec::new())
}

/// Seconds from `then` to `now`, 0 when the clock went backwards.
fn elapsed(now: i64, then: i64) -> u64 {
    u64::try_from(now.saturating_sub(then)).unwrap_or(0)
}

/// authd's w_auth_replace_agent, with the time measured by the command's `time`.
///
/// `key_hash` is compared verbatim with the stored key: the enrollment front end passes what
/// the agent proves it holds. With `key_mismatch`, a differing key replaces regardless of the
/// time conditions, and an equal one is refused (Wazuh: "key already exists on the manager").
fn may_replace(old: &Agent, now: i64, force: &ForcePolicy, key_hash: Option<&str>) -> bool {
    if !force.enabled {
        return false;
    }
    if force.key_mismatch {
        if let Some(h) = key_hash {
            return h != old.key;
        }
    }
    if elapsed(now, old.registered) < force.after_registration_time {
        return false;
    }
    if let Some(min) = force.disconnected_time {
        match old.status {
            AgentStatus::Disconnected | AgentStatus::NeverConnected => {
                let since = old.last_keepalive.unwrap_or(old.registered);
                if elapsed(now, since) < min {
                    return false;
                }
            }
            AgentStatus::Active | AgentStatus::Pending => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_key() {
        let mut st = State::new();
        let Outcome::Registered(a) = st.apply(1, &reg("a1", "any", 0, ForcePolicy::default()))
        else {
            panic!("registered");
        };
        let shown = format!("{a:?} {:?}", Outcome::Registered(a.clone()));
        assert!(!shown.contains(&a.key), "{shown}");
        assert!(shown.contains("a1"));
    }

    fn reg(name: &str, ip: &str, time: i64, force: ForcePolicy) -> Command {
        Command::Register {
            name: name.into(),
            ip: ip.into(),
            key: "k".repeat(64),
            groups: vec![],
            time,
            force,
            key_hash: None,
        }
    }

    fn force_all() -> ForcePolicy {
        ForcePolicy {
            enabled: true,
            ..ForcePolicy::default()
        }
    }

    #[test]
    fn ids_start_at_one_and_are_never_reused() {
        let mut s = State::new();
        assert!(
            matches!(s.apply(1, &reg("a1", "any", 0, force_all())), Outcome::Registered(a) if a.id == 1)
        );
        assert!(matches!(
            s.apply(2, &Command::Delete { id: 1 }),
            Outcome::Deleted(_)
        ));
        assert!(
            matches!(s.apply(3, &reg("a1", "any", 0, force_all())), Outcome::Registered(a) if a.id == 2)
        );
        assert_eq!(s.next_id(), 3);
        assert_eq!(s.applied(), 3);
    }

    #[test]
    fn rejected_leaves_state_untouched() {
        let mut s = State::new();
        s.apply(1, &reg("a1", "10.0.0.1", 0, ForcePolicy::default()));
        let before = s.clone();
        let out = s.apply(2, &reg("a1", "any", 100, ForcePolicy::default()));
        assert_eq!(
            out,
            Outcome::Rejected(RejectReason::DuplicateName("a1".into()))
        );
        let out = s.apply(2, &reg("b1", "10.0.0.1", 100, ForcePolicy::default()));
        assert_eq!(
            out,
            Outcome::Rejected(RejectReason::DuplicateIp("10.0.0.1".into()))
        );
        assert_eq!(s, before);
    }

    #[test]
    fn reject_messages_match_authd() {
        assert_eq!(
            RejectReason::NoSuchAgent(5).to_string(),
            "Agent 005 doesn't exist"
        );
        assert_eq!(
            RejectReason::NoSuchAgent(1234).to_string(),
            "Agent 1234 doesn't exist"
        );
        assert_eq!(
            RejectReason::DuplicateName("x".into()).to_string(),
            "Duplicate agent name: x"
        );
        assert_eq!(
            RejectReason::DuplicateIp("1.2.3.4".into()).to_string(),
            "Duplicate IP: 1.2.3.4"
        );
    }

    #[test]
    fn name_and_ip_on_two_agents_is_refused() {
        let mut s = State::new();
        s.apply(1, &reg("a1", "any", 0, force_all()));
        s.apply(2, &reg("b1", "10.0.0.2", 0, force_all()));
        let out = s.apply(3, &reg("a1", "10.0.0.2", 10, force_all()));
        assert!(matches!(
            out,
            Outcome::Rejected(RejectReason::DuplicateName(_))
        ));
        assert_eq!(s.len(), 2);
    }

    #[test]
    fn status_text_roundtrips() {
        for st in [
            AgentStatus::NeverConnected,
            AgentStatus::Pending,
            AgentStatus::Active,
            AgentStatus::Disconnected,
        ] {
            assert_eq!(st.to_string().parse::<AgentStatus>(), Ok(st));
            let json = serde_json::to_string(&st).unwrap_or_default();
            assert_eq!(json, format!("\"{st}\""));
        }
    }
}
