//! Agent status as this node sees it (filled by the reporting service) flowing into the
//! registry: directly on the master or a standalone node, through agent info on a worker.

use std::sync::Arc;
use std::time::Instant;

use crate::registry::{AgentReport, AgentStatus, Command, Outcome};

use super::{lock, now, Node};

/// What to report now: every agent connected here, and those that left since the last report.
pub fn pending(node: &Node) -> Vec<AgentReport> {
    lock(&node.connected).values().cloned().collect()
}

/// After a successful report: a departed agent has been reported once, forget it (unless it
/// came back meanwhile, which replaced the entry).
pub fn reported(node: &Node, sent: &[AgentReport]) {
    let mut c = lock(&node.connected);
    for r in sent
        .iter()
        .filter(|r| r.status == AgentStatus::Disconnected)
    {
        if c.get(&r.id) == Some(r) {
            c.remove(&r.id);
        }
    }
}

/// Marks agents the registry places on `worker` as disconnected: it left the cluster, so
/// nobody else would ever update them.
pub async fn orphan(node: &Node, worker: &str) {
    let items: Vec<AgentReport> = node
        .registry
        .list()
        .into_iter()
        .filter(|a| a.node.as_deref() == Some(worker) && a.status == AgentStatus::Active)
        .map(|a| AgentReport {
            id: a.id,
            name: Some(a.name),
            version: a.version,
            os: a.os,
            labels: a.labels,
            status: AgentStatus::Disconnected,
            last_keepalive: a.last_keepalive,
            groups: None,
        })
        .collect();
    if items.is_empty() {
        return;
    }
    let n = items.len();
    let cmd = Command::AgentInfo {
        node: worker.to_string(),
        time: now(),
        items,
    };
    if let Err(e) = node.registry.submit(cmd).await {
        node.log.error(
            "Master",
            "Agent-info",
            format!("Cannot mark the agents of {worker} disconnected: {e}"),
        );
    } else {
        node.log.info(
            "Master",
            "Agent-info",
            format!("Marked {n} agent(s) of {worker} disconnected."),
        );
    }
}

/// The master's (or a standalone node's) own agents, every agent-info interval.
pub fn spawn(node: Arc<Node>) {
    tokio::spawn(async move {
        let tag = node.tag();
        loop {
            tokio::time::sleep(node.conf.cluster.intervals.agent_info).await;
            let items = pending(&node);
            if items.is_empty() {
                continue;
            }
            let started = Instant::now();
            let cmd = Command::AgentInfo {
                node: node.conf.cluster.node_name.clone(),
                time: now(),
                items: items.clone(),
            };
            match node.registry.submit(cmd).await {
                Ok((_, Outcome::InfoApplied { .. })) => {
                    reported(&node, &items);
                    node.log.debug(
                        &tag,
                        "Agent-info",
                        format!(
                            "Finished in {:.3}s. Updated the status of {} local agents.",
                            started.elapsed().as_secs_f64(),
                            items.len()
                        ),
                    );
                }
                Ok((_, other)) => {
                    node.log
                        .error(&tag, "Agent-info", format!("unexpected outcome {other:?}"))
                }
                Err(e) => node
                    .log
                    .error(&tag, "Agent-info", format!("registry error: {e}")),
            }
        }
    });
}
