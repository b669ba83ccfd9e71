//! The worker side of the cluster channel: connects to the master (with backoff), sends
//! keep-alives and agent info, follows the master's registry, and pulls integrity updates.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, Notify};
use tokio::task::JoinSet;
use wire::rpc::{Incoming, Peer};
use wire::{Kind, Message, WireError};

use crate::integrity::apply::{self, ApplyReport};
use crate::integrity::bundle::{self, DEFAULT_PIECE};
use crate::integrity::meta::{self, Metadata};
use crate::integrity::scan::Scanner;

use super::proto::{self, decode_json_z, encode_json_z, Hello, RegSync, SyncPlan};
use super::{lock, Node};

/// Pieces in flight at once: enough to keep the link busy while the previous one is written.
const IN_FLIGHT: usize = 3;
const AGENT_INFO_BATCH: usize = 1000;

#[derive(Default)]
pub struct Worker {
    peer: Mutex<Option<Peer>>,
    /// Held for a whole integrity round, including its blocking writer (which owns it then).
    sync: Arc<tokio::sync::Mutex<Option<Scanner>>>,
    reg_wake: Notify,
    /// Enrollment cancels the master has not confirmed yet.
    cancels: Mutex<Vec<proto::EnrollCancel>>,
}

#[derive(Serialize, Deserialize, Debug, Clone, Default)]
pub struct SyncReport {
    pub created: usize,
    pub updated: usize,
    pub removed: usize,
    pub written: usize,
    pub mismatched: Vec<String>,
    pub errors: Vec<String>,
    pub seconds: f64,
}

impl Worker {
    pub fn peer(&self) -> Option<Peer> {
        lock(&self.peer).clone().filter(|p| !p.is_closed())
    }

    /// A request to the master, or a clear error when the link is down.
    pub async fn request(
        &self,
        cmd: &str,
        payload: Vec<u8>,
        timeout: Duration,
    ) -> Result<Vec<u8>, String> {
        let peer = self
            .peer()
            .ok_or_else(|| "not connected to the master node".to_string())?;
        peer.request(cmd, payload, timeout)
            .await
            .map_err(|e| e.to_string())
    }

    /// Pull the registry now (an agent unknown here may have just enrolled).
    pub fn wake_registry(&self) {
        self.reg_wake.notify_one();
    }

    pub fn cancel_later(&self, c: proto::EnrollCancel) {
        lock(&self.cancels).push(c);
    }

    /// Send pending cancels; those that fail stay for the next connection.
    pub async fn flush_cancels(&self, peer: &Peer, timeout: Duration) {
        let pending = std::mem::take(&mut *lock(&self.cancels));
        for c in pending {
            let payload = serde_json::to_vec(&c).unwrap_or_default();
            if peer
                .request(proto::ENROLL_CANCEL, payload, timeout)
                .await
                .is_err()
            {
                self.cancel_later(c);
            }
        }
    }

    /// One integrity cycle now (the periodic task and `rampart cluster sync`).
    pub async fn sync_now(&self, node: &Node) -> Result<SyncReport, String> {
        let peer = self
            .peer()
            .ok_or_else(|| "not connected to the master node".to_string())?;
        integrity_cycle(node, self, &peer).await
    }
}

pub fn start(node: Arc<Node>, worker: Arc<Worker>) {
    tokio::spawn(async move {
        let reconnect = node.conf.cluster.intervals.reconnect;
        let first = Duration::from_millis(500).min(reconnect);
        let mut backoff = first;
        let tag = node.tag();
        loop {
            match connect_once(&node).await {
                Ok((peer, incoming)) => {
                    backoff = first;
                    node.log
                        .info(&tag, "Main", "Successfully connected to master.");
                    let reason = run_session(node.clone(), worker.clone(), peer, incoming).await;
                    node.log.error(
                        &tag,
                        "Main",
                        format!(
                            "Connection with the master closed: {reason}. Reconnecting in {:.1}s.",
                            backoff.as_secs_f64()
                        ),
                    );
                }
                Err(e) => node.log.error(
                    &tag,
                    "Main",
                    format!(
                        "Could not connect to master: {e}. Trying again in {:.1}s.",
                        backoff.as_secs_f64()
                    ),
                ),
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(reconnect);
        }
    });
}

async fn master_addr(node: &Node) -> Result<SocketAddr, String> {
    let c = &node.conf.cluster;
    let host = c.nodes.first().ok_or("no master in <nodes>")?.clone();
    let found = tokio::net::lookup_host((host.as_str(), c.port))
        .await
        .map_err(|e| format!("cannot resolve {host}: {e}"))?
        .next();
    found.ok_or_else(|| format!("{host} has no address"))
}

async fn connect_once(node: &Node) -> Result<(Peer, mpsc::Receiver<Incoming>), String> {
    let c = &node.conf.cluster;
    let addr = master_addr(node).await?;
    let stream = tokio::time::timeout(Duration::from_secs(10), TcpStream::connect(addr))
        .await
        .map_err(|_| format!("{addr} did not answer within 10s"))?
        .map_err(|e| format!("{addr}: {e}"))?;
    let _ = stream.set_nodelay(true);
    let local_ip = stream.local_addr().map(|a| a.ip()).ok();
    let (mut reader, mut writer) = wire::connect(stream, c.key.as_bytes())
        .await
        .map_err(|e| format!("handshake with {addr} failed: {e}"))?;
    let reporting_ip = node
        .conf
        .remote
        .local_ip
        .filter(|ip| !ip.is_unspecified())
        .or(local_ip);
    let hello = Hello {
        node: c.node_name.clone(),
        cluster: c.name.clone(),
        node_type: "worker".into(),
        version: proto::VERSION.into(),
        reporting: reporting_ip.map(|ip| SocketAddr::new(ip, node.conf.remote.port).to_string()),
    };
    writer
        .write(&Message {
            id: 1,
            kind: Kind::Request,
            command: proto::HELLO.into(),
            payload: hello.encode().into_bytes(),
        })
        .await
        .map_err(|e| e.to_string())?;
    let answer = tokio::time::timeout(c.intervals.request_timeout, reader.read())
        .await
        .map_err(|_| "the master did not answer the hello in time".to_string())?;
    match answer {
        Ok(Some(m)) if m.kind == Kind::Response => {}
        Ok(Some(m)) if m.kind == Kind::Error => {
            return Err(format!(
                "the master rejected this node: {}",
                String::from_utf8_lossy(&m.payload)
            ))
        }
        Ok(Some(_)) => return Err("unexpected answer to hello".into()),
        Ok(None) => return Err("the master closed the connection during the hello".into()),
        Err(WireError::Rejected(r)) => {
            return Err(format!(
                "the master rejected this node: {r} (check <key> in <cluster>)"
            ))
        }
        Err(e) => return Err(e.to_string()),
    }
    Ok(wire::rpc::spawn_peer(reader, writer))
}

async fn run_session(
    node: Arc<Node>,
    worker: Arc<Worker>,
    peer: Peer,
    mut incoming: mpsc::Receiver<Incoming>,
) -> String {
    *lock(&worker.peer) = Some(peer.clone());
    let mut tasks = JoinSet::new();
    let (w, p, t) = (
        worker.clone(),
        peer.clone(),
        node.conf.cluster.intervals.request_timeout,
    );
    tasks.spawn(async move { w.flush_cancels(&p, t).await });
    tasks.spawn(keepalive_task(node.clone(), peer.clone()));
    tasks.spawn(agent_info_task(node.clone(), peer.clone()));
    tasks.spawn(integrity_task(node.clone(), worker.clone(), peer.clone()));
    tasks.spawn(registry_task(node.clone(), worker.clone(), peer.clone()));
    let (w, node2) = (worker.clone(), node.clone());
    tasks.spawn(async move {
        while let Some(inc) = incoming.recv().await {
            match (inc.command.as_str(), inc.reply) {
                (proto::REG_CHANGED, None) => w.reg_wake.notify_one(),
                (proto::SEQ_LOCAL, Some(reply)) => {
                    match serde_json::from_slice::<u32>(&inc.payload) {
                        Ok(id) => {
                            // May wait for a closing session: never hold up other requests.
                            let node = node2.clone();
                            tokio::spawn(async move {
                                match node.remoted.settled_high_water(id).await {
                                    Some(hw) => {
                                        reply.ok(serde_json::to_vec(&hw).unwrap_or_default()).await
                                    }
                                    None => reply.err("the agent's session is still closing").await,
                                }
                            });
                        }
                        Err(e) => reply.err(format!("malformed agent id: {e}")).await,
                    }
                }
                (proto::AGENT_RECONNECT, Some(reply)) => {
                    match serde_json::from_slice::<Vec<u32>>(&inc.payload) {
                        Ok(ids) => {
                            let n = node2.remoted.reconnect(&ids, "asked by the master");
                            reply.ok(serde_json::to_vec(&n).unwrap_or_default()).await
                        }
                        Err(e) => reply.err(format!("malformed agent ids: {e}")).await,
                    }
                }
                (_, Some(reply)) => {
                    reply
                        .err(format!("unknown command '{}'", inc.command))
                        .await
                }
                _ => {}
            }
        }
    });
    let reason = peer.closed().await;
    tasks.abort_all();
    *lock(&worker.peer) = None;
    reason
}

/// Wazuh closes the link after two keep-alives without an answer.
async fn keepalive_task(node: Arc<Node>, peer: Peer) {
    let iv = &node.conf.cluster.intervals;
    let tag = node.tag();
    let mut failures = 0;
    loop {
        tokio::time::sleep(iv.keep_alive).await;
        match peer
            .request(proto::KEEPALIVE, Vec::new(), iv.request_timeout)
            .await
        {
            Ok(_) => {
                failures = 0;
                node.log
                    .debug(&tag, "Keep alive", "Successful response from the master.");
            }
            Err(e) => {
                failures += 1;
                node.log.error(
                    &tag,
                    "Keep alive",
                    format!("No answer from the master: {e}."),
                );
                if failures >= 2 {
                    node.log.error(
                        &tag,
                        "Keep alive",
                        "Two keep alives failed. Closing the connection.",
                    );
                    peer.close();
                    return;
                }
            }
        }
    }
}

async fn agent_info_task(node: Arc<Node>, peer: Peer) {
    let iv = &node.conf.cluster.intervals;
    let tag = node.tag();
    loop {
        tokio::time::sleep(iv.agent_info).await;
        let items = super::status::pending(&node);
        if items.is_empty() {
            continue;
        }
        let started = Instant::now();
        let total = items.len();
        let mut all_sent = true;
        for chunk in items.chunks(AGENT_INFO_BATCH) {
            let batch = proto::AgentInfoBatch {
                items: chunk.to_vec(),
            };
            let payload = serde_json::to_vec(&batch).unwrap_or_default();
            if let Err(e) = peer
                .request(proto::AGENT_INFO, payload, iv.request_timeout)
                .await
            {
                node.log.error(
                    &tag,
                    "Agent-info",
                    format!("Error sending agent info: {e}."),
                );
                all_sent = false;
                break;
            }
        }
        if all_sent {
            super::status::reported(&node, &items);
        }
        node.log.debug(
            &tag,
            "Agent-info",
            format!(
                "Finished in {:.3}s. Sent the status of {total} agents.",
                started.elapsed().as_secs_f64()
            ),
        );
    }
}

async fn integrity_task(node: Arc<Node>, worker: Arc<Worker>, peer: Peer) {
    let tag = node.tag();
    loop {
        if let Err(e) = integrity_cycle(&node, &worker, &peer).await {
            node.log
                .error(&tag, "Integrity sync", format!("Error: {e}"));
        }
        tokio::time::sleep(node.conf.cluster.intervals.integrity).await;
    }
}

/// Send our metadata, receive the plan, pull what is missing or changed in bounded
/// pieces (halving the piece after a timeout), delete extras.
async fn integrity_cycle(node: &Node, worker: &Worker, peer: &Peer) -> Result<SyncReport, String> {
    let tag = node.tag();
    let iv = &node.conf.cluster.intervals;
    // Owned, so the blocking writer can keep it even if this task is aborted (a reconnect):
    // no second round writes etc/ while one is still writing.
    let mut guard = worker.sync.clone().lock_owned().await;
    let scanner = guard
        .take()
        .unwrap_or_else(|| Scanner::new(node.home.etc()));
    let started = Instant::now();
    node.log.info(&tag, "Integrity check", "Starting.");
    let (scanned, mut scanner) = tokio::task::spawn_blocking(move || {
        let mut s = scanner;
        (s.scan(), s)
    })
    .await
    .map_err(|e| e.to_string())?;
    let ours = match scanned {
        Ok((m, _)) => m,
        Err(e) => {
            *guard = Some(scanner);
            return Err(format!("cannot scan {}: {e}", node.home.etc().display()));
        }
    };
    let answer = peer
        .request(
            proto::INTEGRITY,
            meta::encode_meta(&ours),
            iv.request_timeout,
        )
        .await;
    let plan: SyncPlan = match answer
        .map_err(|e| e.to_string())
        .and_then(|b| decode_json_z(&b))
    {
        Ok(p) => p,
        Err(e) => {
            *guard = Some(scanner);
            return Err(format!("integrity check failed: {e}"));
        }
    };
    let mut report = SyncReport {
        created: plan.missing.len(),
        updated: plan.changed.len(),
        removed: plan.extra.len(),
        ..SyncReport::default()
    };
    if plan.missing.is_empty() && plan.changed.is_empty() && plan.extra.is_empty() {
        *guard = Some(scanner);
        report.seconds = started.elapsed().as_secs_f64();
        node.log.info(
            &tag,
            "Integrity check",
            format!("Finished in {:.3}s. Sync not required.", report.seconds),
        );
        return Ok(report);
    }
    node.log.info(
        &tag,
        "Integrity sync",
        format!(
            "Starting. Files to create: {} | Files to update: {} | Files to delete: {}",
            report.created, report.updated, report.removed
        ),
    );
    let expected: Metadata = plan
        .missing
        .iter()
        .chain(plan.changed.iter())
        .cloned()
        .collect();
    let sizes: Vec<(String, u64)> = expected.iter().map(|(k, m)| (k.clone(), m.size)).collect();
    let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<u8>>(IN_FLIGHT);
    let etc = node.home.etc();
    let extra = plan.extra.clone();
    let applier = tokio::task::spawn_blocking(move || {
        let mut guard = guard;
        let mut ar = ApplyReport::default();
        // Extras first: a folder the master turned into a file (or back) must be out of the way.
        apply::remove_extras(&etc, &extra, &mut scanner, &mut ar);
        for piece in rx {
            match bundle::decode_piece(&piece, wire::MAX_MESSAGE) {
                Ok(files) => apply::apply_piece(&etc, files, &expected, &mut scanner, &mut ar),
                Err(e) => ar.errors.push(format!("bad piece: {e}")),
            }
        }
        *guard = Some(scanner);
        ar
    });
    let fetched = fetch_pieces(peer, &sizes, iv.request_timeout, tx).await;
    let ar = applier.await.map_err(|e| e.to_string())?;
    report.written = ar.written;
    report.mismatched = ar.mismatched;
    report.errors = ar.errors;
    if let Err(e) = fetched {
        report.errors.push(e);
    }
    report.seconds = started.elapsed().as_secs_f64();
    for m in &report.mismatched {
        node.log.warning(
            &tag,
            "Integrity sync",
            format!("{m} changed on the master during the transfer; it will be fetched again."),
        );
    }
    for e in &report.errors {
        node.log.error(&tag, "Integrity sync", e.clone());
    }
    node.log.info(
        &tag,
        "Integrity sync",
        format!(
            "Finished in {:.3}s. Wrote {} files, removed {}.",
            report.seconds, report.written, ar.removed
        ),
    );
    Ok(report)
}

/// Pull pieces with a few in flight; a piece that times out is split and retried, so a
/// big change shrinks until it fits instead of timing out forever.
async fn fetch_pieces(
    peer: &Peer,
    sizes: &[(String, u64)],
    timeout: Duration,
    tx: std::sync::mpsc::SyncSender<Vec<u8>>,
) -> Result<(), String> {
    let mut queue: VecDeque<Vec<String>> = bundle::plan_pieces(sizes, DEFAULT_PIECE).into();
    let mut running = JoinSet::new();
    let mut strikes = 0;
    loop {
        while running.len() < IN_FLIGHT {
            let Some(piece) = queue.pop_front() else {
                break;
            };
            let p = peer.clone();
            running.spawn(async move {
                let payload = encode_json_z(&piece).unwrap_or_default();
                let r = p.request(proto::FILES, payload, timeout).await;
                (piece, r)
            });
        }
        let Some(done) = running.join_next().await else {
            return Ok(());
        };
        let (piece, result) = done.map_err(|e| e.to_string())?;
        match result {
            Ok(bytes) => {
                let tx = tx.clone();
                // The applier thread drains the channel; wait for room without blocking the runtime.
                tokio::task::spawn_blocking(move || tx.send(bytes))
                    .await
                    .map_err(|e| e.to_string())?
                    .map_err(|_| "the writer stopped".to_string())?;
            }
            Err(wire::rpc::RpcError::Timeout) if piece.len() > 1 => {
                let half = piece.len() / 2;
                queue.push_front(piece[half..].to_vec());
                queue.push_front(piece[..half].to_vec());
            }
            Err(wire::rpc::RpcError::Timeout) if strikes < 3 => {
                strikes += 1;
                queue.push_back(piece);
            }
            Err(e) => return Err(format!("fetching files failed: {e}")),
        }
    }
}

/// Pull registry entries (or a snapshot) until level with the master.
async fn pull_registry(node: &Node, peer: &Peer) -> Result<(), String> {
    let timeout = node.conf.cluster.intervals.request_timeout;
    loop {
        let since = node.registry.applied();
        let answer = peer
            .request(proto::REG_SYNC, since.to_string().into_bytes(), timeout)
            .await
            .map_err(|e| format!("pull failed: {e}"))?;
        let reg = node.registry.clone();
        let applied = match decode_json_z::<RegSync>(&answer)? {
            RegSync::Entries(e) if e.is_empty() => return Ok(()),
            RegSync::Entries(e) => {
                tokio::task::spawn_blocking(move || reg.apply_replicated(&e)).await
            }
            RegSync::Snapshot(s) => {
                tokio::task::spawn_blocking(move || reg.install_snapshot(&s)).await
            }
        };
        applied
            .map_err(|e| e.to_string())?
            .map_err(|e| format!("cannot apply: {e}"))?;
        node.log.debug(
            &node.tag(),
            "Agent registry",
            format!(
                "Up to date with the master at index {}.",
                node.registry.applied()
            ),
        );
    }
}

/// Follow the master's registry: pull on connect, whenever the master says it moved, and
/// again after a failure even if the cluster is quiet.
async fn registry_task(node: Arc<Node>, worker: Arc<Worker>, peer: Peer) {
    loop {
        match pull_registry(&node, &peer).await {
            Ok(()) => worker.reg_wake.notified().await,
            Err(e) => {
                node.log
                    .error(&node.tag(), "Agent registry", format!("{e}; retrying."));
                let retry = node.conf.cluster.intervals.reconnect;
                let _ = tokio::time::timeout(retry, worker.reg_wake.notified()).await;
            }
        }
    }
}
