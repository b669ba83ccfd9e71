//! The local control socket (`queue/cluster/c-internal.sock`, as Wazuh's): one JSON request
//! per line, one JSON answer per line. `rampart cluster` and `rampart agents` speak it.
//! Agent keys never leave through it.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};

use crate::home::Home;
use crate::registry::{Agent, AgentReport};

use super::proto::{self, NodeInfo};
use super::{lock, master, Node, Role};

const MAX_LINE: usize = 1 << 20;

#[derive(Serialize, Deserialize, Debug, Clone)]
#[serde(tag = "cmd", rename_all = "snake_case")]
pub enum Request {
    Nodes,
    Status,
    Agents,
    Agent {
        id: u32,
    },
    Delete {
        id: u32,
    },
    Group {
        id: u32,
        group: String,
    },
    /// Run an integrity cycle now (worker) or recompute the metadata (master).
    Sync,
    /// An agent's status as this node sees it, as the reporting service records it (tests
    /// and tools can inject one).
    AgentStatus {
        report: AgentReport,
    },
    /// Ask these agents to reconnect through their failover path (wherever they are connected).
    Reconnect {
        ids: Vec<u32>,
    },
}

pub async fn spawn(node: Arc<Node>) -> anyhow::Result<()> {
    let path = node.home.control_socket();
    if UnixStream::connect(&path).await.is_ok() {
        anyhow::bail!(
            "another manager is running on this home ({} answers)",
            path.display()
        );
    }
    // A socket left by a killed process would make bind fail.
    let _ = std::fs::remove_file(&path);
    let listener = UnixListener::bind(&path)
        .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", path.display()))?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
    node.log.info(
        "Local Server",
        "Main",
        format!("Serving on {}", path.display()),
    );
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(serve(node.clone(), stream));
        }
    });
    Ok(())
}

async fn serve(node: Arc<Node>, stream: UnixStream) {
    let (r, mut w) = stream.into_split();
    let mut lines = BufReader::new(r.take(MAX_LINE as u64 * 64)).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        let answer = match serde_json::from_str::<Request>(&line) {
            Ok(req) => match handle(&node, req).await {
                Ok(data) => json!({ "ok": true, "data": data }),
                Err(e) => json!({ "ok": false, "error": e }),
            },
            Err(e) => json!({ "ok": false, "error": format!("bad request: {e}") }),
        };
        let mut out = answer.to_string();
        out.push('\n');
        if w.write_all(out.as_bytes()).await.is_err() {
            return;
        }
    }
}

/// An agent as operators see it: everything but the key.
pub fn public_view(a: &Agent) -> Value {
    let mut v = serde_json::to_value(a).unwrap_or(Value::Null);
    if let Some(o) = v.as_object_mut() {
        o.remove("key");
    }
    v
}

async fn forward(node: &Node, cmd: &str, payload: Vec<u8>) -> Result<Vec<u8>, String> {
    match &node.role {
        Role::Worker(w) => {
            w.request(cmd, payload, node.conf.cluster.intervals.request_timeout)
                .await
        }
        _ => Err("not a worker".into()),
    }
}

async fn handle(node: &Node, req: Request) -> Result<Value, String> {
    match req {
        Request::Nodes => {
            let nodes: Vec<NodeInfo> = match &node.role {
                Role::Master(m) => m.nodes(node),
                Role::Worker(_) => {
                    let b = forward(node, proto::NODES, Vec::new()).await?;
                    serde_json::from_slice(&b).map_err(|e| e.to_string())?
                }
                Role::Standalone => vec![NodeInfo {
                    name: node.conf.cluster.node_name.clone(),
                    node_type: "standalone".into(),
                    address: String::new(),
                    version: proto::VERSION.into(),
                    last_keepalive: None,
                    reporting: None,
                }],
            };
            serde_json::to_value(nodes).map_err(|e| e.to_string())
        }
        Request::Status => {
            let connected = match &node.role {
                Role::Worker(w) => w.peer().is_some(),
                _ => true,
            };
            Ok(json!({
                "node": node.conf.cluster.node_name,
                "type": match node.role { Role::Master(_) => "master", Role::Worker(_) => "worker", Role::Standalone => "standalone" },
                "cluster": node.conf.cluster.name,
                "version": proto::VERSION,
                "registry_index": node.registry.applied(),
                "agents": node.registry.list().len(),
                "connected_to_master": connected,
                "agents_connected": node.remoted.connected(),
                "agents_refused": node.remoted.rejected.load(std::sync::atomic::Ordering::Relaxed),
                "archives": node.remoted.archives.stats(),
            }))
        }
        Request::Agents => Ok(Value::Array(
            node.registry.list().iter().map(public_view).collect(),
        )),
        Request::Agent { id } => node
            .registry
            .get(id)
            .map(|a| public_view(&a))
            .ok_or_else(|| format!("Agent {id:03} doesn't exist")),
        Request::Delete { id } => {
            match &node.role {
                Role::Worker(_) => {
                    forward(
                        node,
                        proto::AGENT_DELETE,
                        serde_json::to_vec(&id).unwrap_or_default(),
                    )
                    .await?;
                }
                _ => master::delete_agent(node, id).await?,
            }
            Ok(json!({ "deleted": id }))
        }
        Request::Group { id, group } => {
            let groups: Vec<String> = group
                .split(',')
                .map(str::trim)
                .filter(|g| !g.is_empty())
                .map(String::from)
                .collect();
            if groups.is_empty() {
                return Err("no group given".into());
            }
            match &node.role {
                Role::Worker(_) => {
                    let p = serde_json::to_vec(&proto::GroupReq {
                        id,
                        groups: groups.clone(),
                    })
                    .unwrap_or_default();
                    forward(node, proto::AGENT_GROUP, p).await?;
                }
                _ => master::set_groups(node, id, groups.clone()).await?,
            }
            Ok(json!({ "id": id, "groups": groups }))
        }
        Request::Sync => match &node.role {
            Role::Worker(w) => {
                let r = w.sync_now(node).await?;
                serde_json::to_value(r).map_err(|e| e.to_string())
            }
            Role::Master(m) => {
                let (files, took) = m.recompute(node).await.map_err(|e| e.to_string())?;
                Ok(json!({ "files": files, "seconds": took.as_secs_f64() }))
            }
            Role::Standalone => Err("this node is not in a cluster".into()),
        },
        Request::AgentStatus { report } => {
            lock(&node.connected).insert(report.id, report);
            Ok(Value::Null)
        }
        Request::Reconnect { ids } => {
            let mut n = node.remoted.reconnect(&ids, "asked by an operator");
            if let Role::Master(m) = &node.role {
                n += m.reconnect_remote(node, &ids).await;
            }
            Ok(json!({ "reconnected": n }))
        }
    }
}

/// Send one request to the node whose home is `home` and return its `data`.
pub async fn call(home: &Path, req: &Request, timeout: Duration) -> Result<Value, String> {
    let path = Home::new(home).control_socket();
    let fut = async {
        let stream = UnixStream::connect(&path).await.map_err(|e| {
            format!(
                "cannot reach the manager at {}: {e} (is `rampart manager --home {}` running?)",
                path.display(),
                home.display()
            )
        })?;
        let (r, mut w) = stream.into_split();
        let mut line = serde_json::to_string(req).map_err(|e| e.to_string())?;
        line.push('\n');
        w.write_all(line.as_bytes())
            .await
            .map_err(|e| e.to_string())?;
        let mut lines = BufReader::new(r).lines();
        let answer = lines
            .next_line()
            .await
            .map_err(|e| e.to_string())?
            .ok_or("the manager closed the control socket")?;
        let v: Value = serde_json::from_str(&answer).map_err(|e| e.to_string())?;
        if v["ok"].as_bool() == Some(true) {
            Ok(v["data"].clone())
        } else {
            Err(v["error"].as_str().unwrap_or("unknown error").to_string())
        }
    };
    tokio::time::timeout(timeout, fut)
        .await
        .map_err(|_| "the manager did not answer in time".to_string())?
}
