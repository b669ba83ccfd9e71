//! The master side of the cluster channel: accepts workers, checks their hello, answers
//! keep-alives, agent info, integrity and registry pulls and forwarded enrollments, drops
//! silent workers, and keeps the local integrity metadata fresh.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use wire::rpc::{Incoming, Peer};
use wire::{Kind, Message, WireError};

use crate::integrity::bundle;
use crate::integrity::meta::{self, Metadata};
use crate::integrity::scan::Scanner;
use crate::registry::{Command, Outcome};

use super::piece_cache::{self, PieceCache};
use super::proto::{
    self, decode_json_z, encode_json_z, Hello, NodeInfo, RegSync, SeqAnswer, SyncPlan,
};
use super::{enroll, lock, now, Node};

/// Connections allowed in their handshake at once.
const PRE_AUTH: usize = 64;
/// Requests of one worker handled at once.
const PER_WORKER: usize = 16;

/// A connected worker, as `rampart cluster nodes` shows it.
struct WorkerConn {
    conn: u64,
    peer: Peer,
    address: SocketAddr,
    version: String,
    reporting: Option<String>,
    last_keepalive: i64,
    last_seen: Instant,
}

#[derive(Default)]
pub struct Master {
    workers: Mutex<HashMap<String, WorkerConn>>,
    next_conn: AtomicU64,
    /// None until the first scan succeeded: an empty map would tell workers to delete all.
    metadata: Mutex<Option<Arc<Metadata>>>,
    /// Enrollments a worker gave up on before they were committed.
    cancelled: Mutex<HashMap<(String, String), Instant>>,
    /// Moves on whenever the metadata changes; keys the piece cache.
    generation: AtomicU64,
    pieces: PieceCache,
    scanner: tokio::sync::Mutex<Option<Scanner>>,
    /// Every worker name connected since start: one of them being away is worth waiting for.
    seen: Mutex<HashSet<String>>,
}

impl Master {
    fn metadata(&self) -> Result<Arc<Metadata>, String> {
        lock(&self.metadata)
            .clone()
            .ok_or_else(|| "the master has not calculated its integrity yet; try again".into())
    }

    pub fn remember_cancelled(&self, c: &proto::EnrollCancel) {
        let mut m = lock(&self.cancelled);
        m.retain(|_, at| at.elapsed() < Duration::from_secs(600));
        m.insert((c.name.clone(), c.key.clone()), Instant::now());
    }

    pub fn take_cancelled(&self, name: &str, key: &str) -> bool {
        lock(&self.cancelled)
            .remove(&(name.to_string(), key.to_string()))
            .is_some()
    }

    /// Nodes for `rampart cluster nodes`: the master first, then workers by name.
    pub fn nodes(&self, node: &Node) -> Vec<NodeInfo> {
        let c = &node.conf.cluster;
        let mut out = vec![NodeInfo {
            name: c.node_name.clone(),
            node_type: "master".into(),
            address: format!("{}:{}", c.bind_addr, c.port),
            version: proto::VERSION.into(),
            last_keepalive: Some(now()),
            reporting: None,
        }];
        let workers = lock(&self.workers);
        let mut names: Vec<&String> = workers.keys().collect();
        names.sort();
        for n in names {
            let w = &workers[n];
            out.push(NodeInfo {
                name: n.clone(),
                node_type: "worker".into(),
                address: w.address.ip().to_string(),
                version: w.version.clone(),
                last_keepalive: Some(w.last_keepalive),
                reporting: w.reporting.clone(),
            });
        }
        out
    }

    fn worker_peer(&self, name: &str) -> Option<Peer> {
        lock(&self.workers).get(name).map(|w| w.peer.clone())
    }

    /// How far worker `name` stored `agent`'s events.
    pub async fn query_seq(&self, name: &str, agent: u32, timeout: Duration) -> SeqAnswer {
        let Some(peer) = self.worker_peer(name) else {
            return if lock(&self.seen).contains(name) {
                SeqAnswer::Unreachable
            } else {
                SeqAnswer::Unknown
            };
        };
        let payload = serde_json::to_vec(&agent).unwrap_or_default();
        match peer.request(proto::SEQ_LOCAL, payload, timeout).await {
            Ok(b) => serde_json::from_slice(&b)
                .map(SeqAnswer::Stored)
                .unwrap_or(SeqAnswer::Unreachable),
            Err(_) => SeqAnswer::Unreachable,
        }
    }

    /// Asks the workers holding these agents to make them reconnect; returns how many were
    /// connected. Agents connected to the master itself are handled by the caller.
    pub async fn reconnect_remote(&self, node: &Node, ids: &[u32]) -> usize {
        let mut by_node: HashMap<String, Vec<u32>> = HashMap::new();
        for id in ids {
            if let Some(n) = node.registry.get(*id).and_then(|a| a.node) {
                by_node.entry(n).or_default().push(*id);
            }
        }
        let mut total = 0;
        for (name, ids) in by_node {
            total += self.reconnect_on(node, &name, &ids).await;
        }
        total
    }

    /// Asks worker `name` to reconnect those of `ids` the registry still places on it: an
    /// agent that moved since the caller chose it is left where it is now.
    pub async fn reconnect_on(&self, node: &Node, name: &str, ids: &[u32]) -> usize {
        let here: Vec<u32> = ids
            .iter()
            .copied()
            .filter(|id| node.registry.get(*id).and_then(|a| a.node).as_deref() == Some(name))
            .collect();
        let Some(peer) = self.worker_peer(name).filter(|_| !here.is_empty()) else {
            return 0;
        };
        let timeout = node.conf.cluster.intervals.request_timeout;
        let payload = serde_json::to_vec(&here).unwrap_or_default();
        match peer.request(proto::AGENT_RECONNECT, payload, timeout).await {
            Ok(b) => serde_json::from_slice::<usize>(&b).unwrap_or(0),
            Err(_) => 0,
        }
    }

    /// Recalculate the local integrity metadata now (the periodic task and `cluster sync`).
    pub async fn recompute(&self, node: &Node) -> anyhow::Result<(usize, Duration)> {
        let mut guard = self.scanner.lock().await;
        let mut scanner = guard
            .take()
            .unwrap_or_else(|| Scanner::new(node.home.etc()));
        node.log.info("Master", "Local integrity", "Starting.");
        let (res, scanner) = tokio::task::spawn_blocking(move || {
            let r = scanner_scan(&mut scanner);
            (r, scanner)
        })
        .await?;
        *guard = Some(scanner);
        let (meta, files, elapsed) = res?;
        let changed = {
            let mut current = lock(&self.metadata);
            let changed = current.as_deref() != Some(&*meta);
            *current = Some(meta);
            changed
        };
        if changed {
            self.generation.fetch_add(1, Ordering::SeqCst);
            self.pieces.clear();
        }
        node.log.info(
            "Master",
            "Local integrity",
            format!(
                "Finished in {:.3}s. Calculated metadata of {files} files.",
                elapsed.as_secs_f64()
            ),
        );
        Ok((files, elapsed))
    }
}

fn scanner_scan(s: &mut Scanner) -> std::io::Result<(Arc<Metadata>, usize, Duration)> {
    let (meta, stats) = s.scan()?;
    Ok((meta, stats.files, stats.elapsed))
}

pub async fn start(node: Arc<Node>, master: Arc<Master>) -> anyhow::Result<()> {
    let c = &node.conf.cluster;
    let addr = SocketAddr::new(c.bind_addr, c.port);
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {addr} for the cluster: {e}"))?;
    node.log.info(
        "Master",
        "Main",
        format!("Serving on ('{}', {})", c.bind_addr, c.port),
    );
    spawn_local_integrity(node.clone(), master.clone());
    spawn_registry_notifier(node.clone(), master.clone());
    spawn_watchdog(node.clone(), master.clone());
    // The HAProxy helper, when <haproxy_helper> is configured and not disabled.
    crate::helper::shell::spawn(node.clone(), master.clone());
    // Connections still in their handshake are capped: before authentication a peer has
    // proved nothing, so it may not hold many sockets or buffers.
    let pre_auth = Arc::new(Semaphore::new(PRE_AUTH));
    tokio::spawn(async move {
        loop {
            match listener.accept().await {
                Ok((stream, peer)) => {
                    let Ok(permit) = pre_auth.clone().try_acquire_owned() else {
                        node.log.debug(
                            "Master",
                            "Main",
                            format!("Too many handshakes in progress; dropped {peer}."),
                        );
                        continue;
                    };
                    let _ = stream.set_nodelay(true);
                    tokio::spawn(handle_conn(
                        node.clone(),
                        master.clone(),
                        stream,
                        peer,
                        permit,
                    ));
                }
                Err(e) => {
                    node.log
                        .error("Master", "Main", format!("accept failed: {e}"));
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    });
    Ok(())
}

fn spawn_local_integrity(node: Arc<Node>, master: Arc<Master>) {
    tokio::spawn(async move {
        loop {
            if let Err(e) = master.recompute(&node).await {
                node.log
                    .error("Master", "Local integrity", format!("Error: {e}"));
            }
            tokio::time::sleep(node.conf.cluster.intervals.master_integrity).await;
        }
    });
}

/// Tell every worker the registry moved on; each pulls what it lacks.
fn spawn_registry_notifier(node: Arc<Node>, master: Arc<Master>) {
    let mut changes = node.registry.changes();
    tokio::spawn(async move {
        while changes.next(Duration::ZERO).await {
            let index = node.registry.applied();
            let peers: Vec<Peer> = lock(&master.workers)
                .values()
                .map(|w| w.peer.clone())
                .collect();
            for p in peers {
                let payload = index.to_string().into_bytes();
                tokio::spawn(async move {
                    let _ = p.notify(proto::REG_CHANGED, payload).await;
                });
            }
        }
    });
}

/// Drop workers silent for longer than the limit (Wazuh: 120 s).
fn spawn_watchdog(node: Arc<Node>, master: Arc<Master>) {
    let limit = node.conf.cluster.intervals.worker_timeout;
    let period = (limit / 4).clamp(Duration::from_millis(100), Duration::from_secs(15));
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(period).await;
            let silent: Vec<(String, Peer)> = lock(&master.workers)
                .iter()
                .filter(|(_, w)| w.last_seen.elapsed() > limit)
                .map(|(n, w)| (n.clone(), w.peer.clone()))
                .collect();
            for (name, peer) in silent {
                node.log.error(
                    &format!("Worker {name}"),
                    "Keep alive",
                    format!(
                        "No keep alives have been received from {name} in the last {}s. Disconnecting",
                        limit.as_secs()
                    ),
                );
                peer.close();
            }
        }
    });
}

type Halves = (
    wire::MsgReader<tokio::io::ReadHalf<TcpStream>>,
    wire::MsgWriter<tokio::io::WriteHalf<TcpStream>>,
);

/// The handshake and the first message, which must be a hello; Err says why not.
async fn accept_hello(node: &Node, stream: TcpStream) -> Result<(Halves, Message), String> {
    let key = node.conf.cluster.key.as_bytes();
    let (mut reader, writer) = match tokio::time::timeout(
        Duration::from_secs(10),
        wire::accept(stream, key),
    )
    .await
    {
        Ok(Ok(rw)) => rw,
        Ok(Err(WireError::Auth)) => return Err(
            "its first frame failed authentication; the worker's <key> differs from this cluster's"
                .into(),
        ),
        Ok(Err(e)) => return Err(e.to_string()),
        Err(_) => return Err("no handshake within 10s".into()),
    };
    match tokio::time::timeout(node.conf.cluster.intervals.request_timeout, reader.read()).await {
        Ok(Ok(Some(m))) if m.kind == Kind::Request && m.command == proto::HELLO => {
            Ok(((reader, writer), m))
        }
        Ok(Ok(_)) => Err("expected a hello first".into()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("no hello in time".into()),
    }
}

async fn handle_conn(
    node: Arc<Node>,
    master: Arc<Master>,
    stream: TcpStream,
    addr: SocketAddr,
    pre_auth: OwnedSemaphorePermit,
) {
    let accepted = accept_hello(&node, stream).await;
    drop(pre_auth);
    let ((reader, mut writer), hello_msg) = match accepted {
        Ok(x) => x,
        Err(reason) => {
            node.log.error(
                "Master",
                "Main",
                format!("Rejected connection from {addr}: {reason}"),
            );
            return;
        }
    };
    let text = String::from_utf8_lossy(&hello_msg.payload).to_string();
    let checked = Hello::parse(&text).and_then(|h| {
        let workers = lock(&master.workers);
        proto::check_hello(
            &h,
            &node.conf.cluster.name,
            &node.conf.cluster.node_name,
            &|n| workers.contains_key(n),
        )
        .map(|()| h)
    });
    let hello = match checked {
        Ok(h) => h,
        Err(reason) => {
            node.log.error(
                "Master",
                "Main",
                format!("Rejected connection from {addr}: {reason}"),
            );
            let _ = writer
                .write(&Message {
                    id: hello_msg.id,
                    kind: Kind::Error,
                    command: proto::HELLO.into(),
                    payload: reason.into_bytes(),
                })
                .await;
            let _ = writer.shutdown().await;
            return;
        }
    };
    let answer = format!(
        "{} {} master {}",
        node.conf.cluster.node_name,
        node.conf.cluster.name,
        proto::VERSION
    );
    if writer
        .write(&Message {
            id: hello_msg.id,
            kind: Kind::Response,
            command: proto::HELLO.into(),
            payload: answer.into_bytes(),
        })
        .await
        .is_err()
    {
        return;
    }
    let (peer, mut incoming) = wire::rpc::spawn_peer(reader, writer);
    let conn = master.next_conn.fetch_add(1, Ordering::Relaxed);
    let name = hello.node.clone();
    {
        let mut workers = lock(&master.workers);
        if workers.contains_key(&name) {
            // Lost a race with another connection of the same name.
            drop(workers);
            peer.close();
            return;
        }
        lock(&master.seen).insert(name.clone());
        workers.insert(
            name.clone(),
            WorkerConn {
                conn,
                peer: peer.clone(),
                address: addr,
                version: hello.version.clone(),
                reporting: hello.reporting.clone(),
                last_keepalive: now(),
                last_seen: Instant::now(),
            },
        );
    }
    let tag = format!("Worker {name}");
    node.log.info(
        &tag,
        "Main",
        format!("Connected from {addr} (version {}).", hello.version),
    );
    // Requests of one worker run concurrently, but only so many: past that the incoming
    // queue fills and the wire pushes back on the worker.
    let busy = Arc::new(Semaphore::new(PER_WORKER));
    while let Some(inc) = incoming.recv().await {
        if let Some(w) = lock(&master.workers).get_mut(&name) {
            w.last_seen = Instant::now();
        }
        let Ok(permit) = busy.clone().acquire_owned().await else {
            break;
        };
        let (node, master, name) = (node.clone(), master.clone(), name.clone());
        tokio::spawn(async move {
            handle_request(node, master, name, inc).await;
            drop(permit);
        });
    }
    let reason = peer.closed().await;
    let gone = {
        let mut workers = lock(&master.workers);
        workers.get(&name).map(|w| w.conn) == Some(conn) && workers.remove(&name).is_some()
    };
    node.log
        .info(&tag, "Main", format!("Disconnected: {reason}."));
    if gone {
        super::status::orphan(&node, &name).await;
    }
}

async fn handle_request(node: Arc<Node>, master: Arc<Master>, worker: String, inc: Incoming) {
    let Some(reply) = inc.reply else {
        return;
    };
    let tag = format!("Worker {worker}");
    let result: Result<Vec<u8>, String> = match inc.command.as_str() {
        proto::KEEPALIVE => {
            if let Some(w) = lock(&master.workers).get_mut(&worker) {
                w.last_keepalive = now();
            }
            node.log.debug(&tag, "Keep alive", "Received keep alive.");
            Ok(b"ok-m".to_vec())
        }
        proto::AGENT_INFO => agent_info(&node, &tag, &worker, &inc.payload).await,
        proto::INTEGRITY => integrity_plan(&node, &master, &tag, &inc.payload).await,
        proto::FILES => files_piece(&node, &master, &inc.payload).await,
        proto::REG_SYNC => reg_sync(&node, &inc.payload),
        proto::ENROLL => match serde_json::from_slice::<proto::EnrollFwd>(&inc.payload) {
            Ok(req) => enroll::register_on_master(&node, req)
                .await
                .map(|a| serde_json::to_vec(&a).unwrap_or_default()),
            Err(e) => Err(format!("malformed enrollment: {e}")),
        },
        proto::ENROLL_CANCEL => match serde_json::from_slice::<proto::EnrollCancel>(&inc.payload) {
            Ok(c) => enroll::cancel_on_master(&node, &c)
                .await
                .map(|()| Vec::new()),
            Err(e) => Err(format!("malformed cancel: {e}")),
        },
        proto::NODES => Ok(serde_json::to_vec(&master.nodes(&node)).unwrap_or_default()),
        proto::SEQ_QUERY => match serde_json::from_slice::<proto::SeqQuery>(&inc.payload) {
            Ok(q) => {
                let a = super::remoted::query_seq(&node, &q.node, q.agent).await;
                Ok(serde_json::to_vec(&a).unwrap_or_default())
            }
            Err(e) => Err(format!("malformed query: {e}")),
        },
        proto::AGENT_DELETE => match serde_json::from_slice::<u32>(&inc.payload) {
            Ok(id) => delete_agent(&node, id).await.map(|()| Vec::new()),
            Err(e) => Err(format!("malformed id: {e}")),
        },
        proto::AGENT_GROUP => match serde_json::from_slice::<proto::GroupReq>(&inc.payload) {
            Ok(g) => set_groups(&node, g.id, g.groups).await.map(|()| Vec::new()),
            Err(e) => Err(format!("malformed group request: {e}")),
        },
        other => Err(format!("unknown command '{other}'")),
    };
    match result {
        Ok(p) => reply.ok(p).await,
        Err(e) => reply.err(e).await,
    }
}

async fn agent_info(
    node: &Node,
    tag: &str,
    worker: &str,
    payload: &[u8],
) -> Result<Vec<u8>, String> {
    let batch: proto::AgentInfoBatch =
        serde_json::from_slice(payload).map_err(|e| format!("malformed agent info: {e}"))?;
    let n = batch.items.len();
    let cmd = Command::AgentInfo {
        node: worker.to_string(),
        time: now(),
        items: batch.items,
    };
    match node.registry.submit(cmd).await {
        Ok((
            _,
            Outcome::InfoApplied {
                applied,
                unknown,
                groups_adopted,
            },
        )) => {
            if !unknown.is_empty() {
                node.log.debug(
                    tag,
                    "Agent-info",
                    format!(
                        "Dropped the status of {} agent(s) the master does not know: {}",
                        unknown.len(),
                        unknown
                            .iter()
                            .map(|i| format!("{i:03}"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                );
            }
            for id in &groups_adopted {
                node.log.info(
                    tag,
                    "Agent-groups",
                    format!("Took the group assignment of agent {id:03} reported by {worker}."),
                );
            }
            node.log.debug(
                tag,
                "Agent-info",
                format!("Updated {applied} of {n} agent status(es)."),
            );
            Ok(serde_json::to_vec(&(applied, unknown)).unwrap_or_default())
        }
        Ok((_, other)) => Err(format!("unexpected outcome {other:?}")),
        Err(e) => Err(format!("registry error: {e}")),
    }
}

async fn integrity_plan(
    node: &Node,
    master: &Master,
    tag: &str,
    payload: &[u8],
) -> Result<Vec<u8>, String> {
    let started = Instant::now();
    let theirs = meta::decode_meta(payload).map_err(|e| format!("malformed metadata: {e}"))?;
    let ours = master.metadata()?;
    let d = meta::diff(&ours, &theirs);
    let pick = |names: &[String]| -> Vec<(String, meta::FileMeta)> {
        names
            .iter()
            .filter_map(|n| ours.get(n).map(|m| (n.clone(), m.clone())))
            .collect()
    };
    let plan = SyncPlan {
        missing: pick(&d.missing),
        changed: pick(&d.changed),
        extra: d.extra.clone(),
    };
    node.log.info(
        tag,
        "Integrity check",
        format!(
            "Finished in {:.3}s. {}.",
            started.elapsed().as_secs_f64(),
            crate::integrity::summary(&d)
        ),
    );
    encode_json_z(&plan)
}

async fn files_piece(node: &Node, master: &Master, payload: &[u8]) -> Result<Vec<u8>, String> {
    let generation = master.generation.load(Ordering::SeqCst);
    let key = piece_cache::key(generation, payload);
    let build = async {
        let wanted: Vec<String> =
            decode_json_z(payload).map_err(|e| format!("malformed file list: {e}"))?;
        let ours = master.metadata()?;
        // Serve only what the master's own metadata lists: the request cannot name other files.
        let rels: Vec<String> = wanted
            .into_iter()
            .filter(|r| ours.contains_key(r))
            .collect();
        let etc = node.home.etc();
        tokio::task::spawn_blocking(move || {
            bundle::read_files(&etc, &rels).map(|files| bundle::encode_piece(&files, 1))
        })
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("cannot read files: {e}"))
    };
    let piece = master.pieces.get_or_build(key, build).await?;
    Ok(piece.as_ref().clone())
}

fn reg_sync(node: &Node, payload: &[u8]) -> Result<Vec<u8>, String> {
    let since: u64 = std::str::from_utf8(payload)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .ok_or("malformed index")?;
    if since > node.registry.applied() {
        // A follower ahead of the master (its registry was replaced): start it afresh.
        return encode_json_z(&RegSync::Snapshot(node.registry.snapshot()));
    }
    let answer = match node.registry.entries_since(since) {
        Ok(Some(entries)) => RegSync::Entries(entries),
        Ok(None) => RegSync::Snapshot(node.registry.snapshot()),
        Err(e) => return Err(format!("registry error: {e}")),
    };
    encode_json_z(&answer)
}

pub async fn delete_agent(node: &Node, id: u32) -> Result<(), String> {
    match node.registry.submit(Command::Delete { id }).await {
        Ok((_, Outcome::Deleted(a))) => {
            node.log.info(
                "Master",
                "Agents",
                format!("Agent {:03} ({}) deleted.", a.id, a.name),
            );
            Ok(())
        }
        Ok((_, Outcome::Rejected(r))) => Err(r.to_string()),
        Ok((_, o)) => Err(format!("unexpected outcome {o:?}")),
        Err(e) => Err(format!("registry error: {e}")),
    }
}

pub async fn set_groups(node: &Node, id: u32, groups: Vec<String>) -> Result<(), String> {
    enroll::groups_exist(node, &groups)?;
    match node
        .registry
        .submit(Command::SetGroups {
            id,
            groups: groups.clone(),
        })
        .await
    {
        Ok((_, Outcome::GroupsSet(a))) => {
            node.log.info(
                "Master",
                "Agent-groups",
                format!(
                    "Agent {:03} assigned to group(s) {}.",
                    a.id,
                    groups.join(",")
                ),
            );
            Ok(())
        }
        Ok((_, Outcome::Rejected(r))) => Err(r.to_string()),
        Ok((_, o)) => Err(format!("unexpected outcome {o:?}")),
        Err(e) => Err(format!("registry error: {e}")),
    }
}
