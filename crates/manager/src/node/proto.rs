//! The cluster protocol between workers and the master: command names and payloads.
//! Payloads are JSON (small, debuggable) except file pieces and metadata, which are
//! compressed binary from `integrity`.

use serde::{Deserialize, Serialize};

use crate::integrity::meta::FileMeta;
use crate::registry::{AgentReport, Command, Snapshot};

/// Cluster protocol version: nodes must agree on major.minor (as Wazuh compares versions).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

pub const HELLO: &str = "hello";
pub const KEEPALIVE: &str = "keepalive";
pub const AGENT_INFO: &str = "agent_info";
pub const INTEGRITY: &str = "integrity";
pub const FILES: &str = "files";
pub const REG_SYNC: &str = "reg_sync";
/// Notice from the master: the registry moved on; pull with `REG_SYNC`.
pub const REG_CHANGED: &str = "reg_changed";
pub const ENROLL: &str = "enroll";
pub const ENROLL_CANCEL: &str = "enroll_cancel";
pub const NODES: &str = "nodes";
pub const AGENT_DELETE: &str = "agent_delete";
pub const AGENT_GROUP: &str = "agent_group";
/// Worker → master: how far has node N stored agent A's events ([`SeqQuery`] → [`SeqAnswer`]).
pub const SEQ_QUERY: &str = "seq_query";
/// Master → worker: this node's high-water mark for one agent (u32 → u64).
pub const SEQ_LOCAL: &str = "seq_local";
/// Master → worker: ask these connected agents to reconnect (Vec<u32> → count).
pub const AGENT_RECONNECT: &str = "agent_reconnect";

/// `"<node> <cluster_name> <type> <version>"` as Wazuh sends it, plus rampart's fifth field:
/// the worker's agent reporting address (`ip:port`), so the helper never guesses it.
#[derive(Clone, Debug, PartialEq)]
pub struct Hello {
    pub node: String,
    pub cluster: String,
    pub node_type: String,
    pub version: String,
    pub reporting: Option<String>,
}

impl Hello {
    pub fn encode(&self) -> String {
        let mut s = format!(
            "{} {} {} {}",
            self.node, self.cluster, self.node_type, self.version
        );
        if let Some(r) = &self.reporting {
            s.push(' ');
            s.push_str(r);
        }
        s
    }

    pub fn parse(s: &str) -> Result<Hello, String> {
        let parts: Vec<&str> = s.split(' ').collect();
        if !(4..=5).contains(&parts.len()) {
            return Err(format!("malformed hello '{s}'"));
        }
        Ok(Hello {
            node: parts[0].to_string(),
            cluster: parts[1].to_string(),
            node_type: parts[2].to_string(),
            version: parts[3].to_string(),
            reporting: parts.get(4).map(|r| r.to_string()),
        })
    }
}

/// Why the master refuses a worker's hello (pure, so both the master's check and its log
/// line are tested without sockets).
pub fn check_hello(
    hello: &Hello,
    cluster_name: &str,
    master_name: &str,
    connected: &dyn Fn(&str) -> bool,
) -> Result<(), String> {
    if hello.node.is_empty()
        || !hello
            .node
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        return Err(format!("invalid node name '{}'", hello.node));
    }
    if hello.cluster != cluster_name {
        return Err(format!(
            "worker '{}' belongs to cluster '{}', this is cluster '{}'",
            hello.node, hello.cluster, cluster_name
        ));
    }
    if hello.node_type != "worker" {
        return Err(format!(
            "node '{}' says it is a '{}'; only workers connect to the master",
            hello.node, hello.node_type
        ));
    }
    if !compatible(&hello.version, VERSION) {
        return Err(format!(
            "incompatible version {} of worker '{}' (master runs {})",
            hello.version, hello.node, VERSION
        ));
    }
    if hello.node == master_name || connected(&hello.node) {
        return Err(format!(
            "duplicate node name '{}': a node with this name is already connected",
            hello.node
        ));
    }
    Ok(())
}

/// Same major and minor version.
pub fn compatible(a: &str, b: &str) -> bool {
    let mm = |v: &str| {
        let mut it = v.split('.');
        (it.next().map(str::to_owned), it.next().map(str::to_owned))
    };
    let (x, y) = (mm(a), mm(b));
    x.0.is_some() && x.1.is_some() && x == y
}

/// The master's answer to a worker's metadata: what to fetch and what to delete.
#[derive(Serialize, Deserialize, Debug, Default)]
pub struct SyncPlan {
    pub missing: Vec<(String, FileMeta)>,
    pub changed: Vec<(String, FileMeta)>,
    pub extra: Vec<String>,
}

#[derive(Serialize, Deserialize, Debug)]
pub enum RegSync {
    Entries(Vec<(u64, Command)>),
    Snapshot(Snapshot),
}

/// An enrollment a worker forwards: the worker resolved the IP and made the key, so a
/// lost answer can be cancelled by key (no half-done enrollment survives).
#[derive(Serialize, Deserialize, Debug, Clone)]
pub struct EnrollFwd {
    pub name: String,
    pub ip: String,
    pub key: String,
    pub groups: Vec<String>,
    pub key_hash: Option<String>,
    pub via: String,
}

#[derive(Serialize, Deserialize, Debug, Clone)]
pub struct EnrollCancel {
    pub name: String,
    pub key: String,
}

#[derive(Serialize, Deserialize, Debug, Clone)]
pub struct NodeInfo {
    pub name: String,
    pub node_type: String,
    pub address: String,
    pub version: String,
    pub last_keepalive: Option<i64>,
    pub reporting: Option<String>,
}

#[derive(Serialize, Deserialize, Debug, Clone)]
pub struct AgentInfoBatch {
    pub items: Vec<AgentReport>,
}

#[derive(Serialize, Deserialize, Debug, Clone)]
pub struct GroupReq {
    pub id: u32,
    pub groups: Vec<String>,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct SeqQuery {
    pub node: String,
    pub agent: u32,
}

/// Where an agent's events stand on one node.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum SeqAnswer {
    /// The node has stored every seq up to this one it ever will (0 = none).
    Stored(u64),
    /// The node is part of the cluster but cannot be asked now.
    Unreachable,
    /// No such node in this cluster: nothing to wait for.
    Unknown,
}

pub fn encode_json_z<T: serde::Serialize>(v: &T) -> Result<Vec<u8>, String> {
    let json = serde_json::to_vec(v).map_err(|e| e.to_string())?;
    zstd::bulk::compress(&json, 1).map_err(|e| e.to_string())
}

/// Decompression is bounded by the wire's own message limit.
pub fn decode_json_z<T: serde::de::DeserializeOwned>(b: &[u8]) -> Result<T, String> {
    let json = zstd::bulk::decompress(b, wire::MAX_MESSAGE).map_err(|e| e.to_string())?;
    serde_json::from_slice(&json).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hello(node: &str, cluster: &str, ty: &str, v: &str) -> Hello {
        Hello {
            node: node.into(),
            cluster: cluster.into(),
            node_type: ty.into(),
            version: v.into(),
            reporting: None,
        }
    }

    #[test]
    fn hello_roundtrip() {
        let mut h = hello("worker-01", "wazuh", "worker", VERSION);
        h.reporting = Some("127.0.0.1:1514".into());
        assert_eq!(Hello::parse(&h.encode()).unwrap(), h);
        assert!(Hello::parse("a b c").is_err());
    }

    #[test]
    fn hello_rejections() {
        let none = |_: &str| false;
        let ok = hello("w1", "wazuh", "worker", VERSION);
        assert!(check_hello(&ok, "wazuh", "master", &none).is_ok());
        let e = check_hello(
            &hello("w1", "other", "worker", VERSION),
            "wazuh",
            "m",
            &none,
        );
        assert!(e.unwrap_err().contains("cluster 'other'"));
        let e = check_hello(
            &hello("w1", "wazuh", "worker", "9.9.0"),
            "wazuh",
            "m",
            &none,
        );
        assert!(e.unwrap_err().contains("incompatible version"));
        let e = check_hello(&ok, "wazuh", "m", &|n| n == "w1");
        assert!(e.unwrap_err().contains("duplicate node name"));
        let e = check_hello(
            &hello("w1", "wazuh", "worker", VERSION),
            "wazuh",
            "w1",
            &none,
        );
        assert!(e.unwrap_err().contains("duplicate"));
        let e = check_hello(
            &hello("w 1;", "wazuh", "worker", VERSION),
            "wazuh",
            "m",
            &none,
        );
        assert!(e.is_err());
        let e = check_hello(
            &hello("w1", "wazuh", "master", VERSION),
            "wazuh",
            "m",
            &none,
        );
        assert!(e.unwrap_err().contains("only workers"));
    }

    #[test]
    fn versions() {
        assert!(compatible("4.14.0", "4.14.3"));
        assert!(!compatible("4.13.0", "4.14.0"));
        assert!(!compatible("4", "4"));
    }
}
