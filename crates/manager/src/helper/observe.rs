//! Builds the planner's inputs from what the master knows (its workers and their advertised
//! reporting addresses, its own remoted settings, the agent registry) and from the Data Plane
//! API's answers. Pure: the shell fetches, these functions only translate.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use crate::config::OssecConf;
use crate::node::proto::NodeInfo;
use crate::registry::{Agent, AgentStatus};

use super::client::{ServerConf, ServerStats};
use super::plan::{BackendServer, ClusterNode};

/// The address agents use to reach the master: its remoted `local_ip` when set, else its
/// cluster `bind_addr` when set, else the first `<nodes><node>` (the master's address as
/// the whole cluster knows it). `None` when nothing names it.
pub fn master_reporting(conf: &OssecConf) -> Option<(String, u16)> {
    let port = conf.remote.port;
    if let Some(ip) = conf.remote.local_ip.filter(|ip| !ip.is_unspecified()) {
        return Some((ip.to_string(), port));
    }
    if !conf.cluster.bind_addr.is_unspecified() {
        return Some((conf.cluster.bind_addr.to_string(), port));
    }
    conf.cluster
        .nodes
        .first()
        .map(|n| n.trim())
        .filter(|n| !n.is_empty())
        .map(|n| (n.to_string(), port))
}

/// `ip:port`, `[v6]:port` or `host:port` → (address, port).
pub fn parse_reporting(s: &str) -> Option<(String, u16)> {
    if let Ok(sa) = s.parse::<SocketAddr>() {
        return Some((sa.ip().to_string(), sa.port()));
    }
    let (host, port) = s.rsplit_once(':')?;
    if host.is_empty() || host.contains(':') {
        return None;
    }
    Some((host.to_string(), port.parse().ok()?))
}

/// The cluster's nodes as backend servers should reach them. `nodes` is `Master::nodes`
/// (the master first); the master's own entry takes `master` (its reporting address), each
/// worker its advertised `reporting`. Nodes whose address is unknown are returned apart, so
/// the caller can say why they are missing.
pub fn cluster_nodes(
    nodes: &[NodeInfo],
    master: Option<(String, u16)>,
) -> (Vec<ClusterNode>, Vec<String>) {
    let mut out = Vec::new();
    let mut unknown = Vec::new();
    for n in nodes {
        let addr = if n.node_type == "master" {
            master.clone()
        } else {
            n.reporting.as_deref().and_then(parse_reporting)
        };
        match addr {
            Some((address, port)) => out.push(ClusterNode {
                name: n.name.clone(),
                address,
                port,
            }),
            None => unknown.push(n.name.clone()),
        }
    }
    (out, unknown)
}

/// Connected (active) agents per node, ids ascending.
pub fn agents_by_node<'a>(
    agents: impl IntoIterator<Item = &'a Agent>,
) -> BTreeMap<String, Vec<u32>> {
    let mut out: BTreeMap<String, Vec<u32>> = BTreeMap::new();
    for a in agents {
        if a.status != AgentStatus::Active {
            continue;
        }
        if let Some(node) = &a.node {
            out.entry(node.clone()).or_default().push(a.id);
        }
    }
    for ids in out.values_mut() {
        ids.sort_unstable();
    }
    out
}

/// The backend's servers with their stats: UP when the status is `UP`; a server the running
/// HAProxy does not report (no stats) is down with no sessions; a missing port reads as 0 so
/// that the planner sees it differ from the node's.
/// Whether HAProxy's stat `status` means the server holds and takes connections: `UP`, `UP 1/3`
/// (failing checks, not yet down), `no check`, and the drain a helper cycle itself may have set
/// (`DRAIN`, `NOLB`): its agents are still there and count for the balance.
pub fn serving(status: &str) -> bool {
    status == "UP" || status.starts_with("UP ") || matches!(status, "DRAIN" | "NOLB" | "no check")
}

pub fn backend_servers(
    confs: &[ServerConf],
    stats: &BTreeMap<String, Option<ServerStats>>,
) -> Vec<BackendServer> {
    confs
        .iter()
        .map(|c| {
            let st = stats.get(&c.name).and_then(Option::as_ref);
            BackendServer {
                name: c.name.clone(),
                address: c.address.clone(),
                port: c.port.unwrap_or(0),
                up: st.is_some_and(|s| serving(&s.status)),
                scur: st.map_or(0, |s| s.scur),
                drained: st.is_some_and(|s| s.status == "DRAIN"),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr};
    use std::path::PathBuf;

    use super::*;
    use crate::config::{Auth, Cluster, Remote};

    fn conf() -> OssecConf {
        OssecConf {
            path: PathBuf::from("ossec.conf"),
            cluster: Cluster {
                nodes: vec!["master.example".into()],
                ..Cluster::default()
            },
            auth: Auth::default(),
            remote: Remote::default(),
        }
    }

    fn info(name: &str, ty: &str, reporting: Option<&str>) -> NodeInfo {
        NodeInfo {
            name: name.into(),
            node_type: ty.into(),
            address: "ignored".into(),
            version: "x".into(),
            last_keepalive: None,
            reporting: reporting.map(String::from),
        }
    }

    fn agent(id: u32, node: Option<&str>, status: AgentStatus) -> Agent {
        Agent {
            id,
            name: format!("a{id}"),
            ip: "any".into(),
            key: "k".repeat(64),
            groups: vec![],
            registered: 0,
            version: None,
            os: None,
            labels: BTreeMap::new(),
            status,
            last_keepalive: None,
            node: node.map(String::from),
        }
    }

    #[test]
    fn master_address_prefers_local_ip_then_bind_then_nodes() {
        let mut c = conf();
        assert_eq!(
            master_reporting(&c),
            Some(("master.example".to_string(), 1514))
        );
        c.cluster.bind_addr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 9));
        assert_eq!(master_reporting(&c), Some(("10.0.0.9".to_string(), 1514)));
        c.remote.local_ip = Some(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)));
        c.remote.port = 1600;
        assert_eq!(master_reporting(&c), Some(("10.0.0.1".to_string(), 1600)));
        // 0.0.0.0 names no address.
        c.remote.local_ip = Some(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        assert_eq!(master_reporting(&c), Some(("10.0.0.9".to_string(), 1600)));
        let mut c = conf();
        c.cluster.nodes.clear();
        assert_eq!(master_reporting(&c), None);
    }

    #[test]
    fn reporting_addresses_parse() {
        assert_eq!(
            parse_reporting("10.0.0.2:1514"),
            Some(("10.0.0.2".into(), 1514))
        );
        assert_eq!(
            parse_reporting("[fd00::2]:1515"),
            Some(("fd00::2".into(), 1515))
        );
        assert_eq!(
            parse_reporting("w1.lan:1514"),
            Some(("w1.lan".into(), 1514))
        );
        assert_eq!(parse_reporting("10.0.0.2"), None);
        assert_eq!(parse_reporting("fd00::2"), None);
        assert_eq!(parse_reporting(":1514"), None);
        assert_eq!(parse_reporting("h:99999"), None);
    }

    #[test]
    fn cluster_nodes_use_reporting_addresses() {
        let nodes = [
            info("master", "master", None),
            info("w1", "worker", Some("10.0.0.2:1514")),
            info("w2", "worker", None),
        ];
        let (ok, unknown) = cluster_nodes(&nodes, Some(("10.0.0.1".into(), 1514)));
        assert_eq!(
            ok,
            vec![
                ClusterNode {
                    name: "master".into(),
                    address: "10.0.0.1".into(),
                    port: 1514
                },
                ClusterNode {
                    name: "w1".into(),
                    address: "10.0.0.2".into(),
                    port: 1514
                },
            ]
        );
        assert_eq!(unknown, vec!["w2".to_string()]);
        let (ok, unknown) = cluster_nodes(&nodes[..1], None);
        assert!(ok.is_empty());
        assert_eq!(unknown, vec!["master".to_string()]);
    }

    #[test]
    fn agents_are_grouped_by_node_when_active() {
        let agents = [
            agent(7, Some("w1"), AgentStatus::Active),
            agent(3, Some("w1"), AgentStatus::Active),
            agent(4, Some("w1"), AgentStatus::Disconnected),
            agent(5, Some("master"), AgentStatus::Active),
            agent(6, None, AgentStatus::Active),
            agent(8, Some("w2"), AgentStatus::NeverConnected),
        ];
        let by = agents_by_node(&agents);
        assert_eq!(by.len(), 2);
        assert_eq!(by["w1"], vec![3, 7]);
        assert_eq!(by["master"], vec![5]);
    }

    #[test]
    fn serving_statuses() {
        for s in ["UP", "UP 1/3", "DRAIN", "NOLB", "no check"] {
            assert!(serving(s), "{s}");
        }
        for s in ["DOWN", "DOWN 1/2", "MAINT", "MAINT (resolution)", "", "UPX"] {
            assert!(!serving(s), "{s}");
        }
    }

    #[test]
    fn servers_are_up_only_when_their_status_is_up() {
        let confs = [
            ServerConf {
                name: "w1".into(),
                address: "10.0.0.2".into(),
                port: Some(1514),
            },
            ServerConf {
                name: "w2".into(),
                address: "10.0.0.3".into(),
                port: Some(1514),
            },
            ServerConf {
                name: "w3".into(),
                address: "h".into(),
                port: None,
            },
        ];
        let st = |s: &str, scur| {
            Some(ServerStats {
                scur,
                status: s.into(),
                lastchg: Some(1),
            })
        };
        let stats = BTreeMap::from([
            ("w1".to_string(), st("UP", 40)),
            ("w2".to_string(), st("DOWN", 2)),
            ("w3".to_string(), None),
        ]);
        let out = backend_servers(&confs, &stats);
        assert_eq!(
            out,
            vec![
                BackendServer {
                    name: "w1".into(),
                    address: "10.0.0.2".into(),
                    port: 1514,
                    up: true,
                    scur: 40,
                    drained: false,
                },
                BackendServer {
                    name: "w2".into(),
                    address: "10.0.0.3".into(),
                    port: 1514,
                    up: false,
                    scur: 2,
                    drained: false,
                },
                BackendServer {
                    name: "w3".into(),
                    address: "h".into(),
                    port: 0,
                    up: false,
                    scur: 0,
                    drained: false,
                },
            ]
        );
    }
}
