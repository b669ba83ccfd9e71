//! The reporting service (TCP 1514, Wazuh's remoted): agent sessions keyed by each agent's own
//! key, durable event intake with batched acknowledgements, keep-alives feeding agent info,
//! and commands to agents.
//!
//! Where an agent resumes is the crux of "no loss, no duplicate": an event past the agent's
//! last acknowledgement may already be stored by the node of its previous session (it died
//! between its fsync and the ack). Before accepting such an agent, this node asks that node,
//! through the master, how far it stored; while it cannot be asked the agent waits (and keeps
//! spooling) for at most `in_doubt_wait`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch, Semaphore};
use tokio::task::JoinSet;
use wire::report::{self, Ack, KeepAlive, Reconnect, Resume, Startup, Welcome};
use wire::rpc::{Incoming, Peer};
use wire::WireError;

use crate::archives::{ArchivedEvent, Archives, Batch, Stored};
use crate::registry::{Agent, AgentReport, AgentStatus};

use super::proto::{self, SeqAnswer, SeqQuery};
use super::{lock, now, Node, Role};

/// Agents in preface, handshake or startup at once.
const PRE_AUTH: usize = 1024;
/// Time an agent has for its preface, handshake and startup.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);
/// Batches of one agent being stored at once; past that its socket is not read. One: if a
/// write fails, no later batch of that agent may be stored past the gap (its high-water
/// mark would then cover events stored nowhere). Group commit still gathers the batches of
/// all agents, and a batch carries up to 512 events.
const IN_FLIGHT: usize = 1;
/// A session silent this long is closed (Wazuh's agents_disconnection_time).
const IDLE_TIMEOUT: Duration = Duration::from_secs(600);
/// How long a closed session may take to store what it had queued.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(10);
/// After asking an agent to reconnect, how long it has to close by itself.
const RECONNECT_GRACE: Duration = Duration::from_secs(10);
const SUB: &str = "Remoted";

struct Session {
    serial: u64,
    peer: Peer,
    /// The key the session was opened with: a re-enrolled agent gets a new one.
    key: String,
    /// Turns true once the session ended and everything it queued is on disk.
    ended: watch::Receiver<bool>,
}

/// The node's side of every agent session.
pub struct Remoted {
    pub archives: Archives,
    sessions: Mutex<HashMap<u32, Session>>,
    serial: AtomicU64,
    pub rejected: AtomicU64,
}

impl Remoted {
    pub fn new(archives: Archives) -> Remoted {
        Remoted {
            archives,
            sessions: Mutex::new(HashMap::new()),
            serial: AtomicU64::new(1),
            rejected: AtomicU64::new(0),
        }
    }

    pub fn connected(&self) -> usize {
        lock(&self.sessions).len()
    }

    /// This node's high-water mark for `agent`, final: a session the agent may still have
    /// here (half-open after a network cut) is closed first and its queued batches stored,
    /// so nothing lands after the answer. `None` if that session would not end in time.
    pub async fn settled_high_water(&self, agent: u32) -> Option<u64> {
        let session = lock(&self.sessions)
            .get(&agent)
            .map(|s| (s.peer.clone(), s.ended.clone()));
        if let Some((peer, ended)) = session {
            peer.close();
            if !wait_ended(ended).await {
                return None;
            }
        }
        Some(self.archives.high_water(agent))
    }

    /// Asks the named agents connected here to reconnect; returns how many were.
    pub fn reconnect(&self, ids: &[u32], reason: &str) -> usize {
        let peers: Vec<Peer> = {
            let s = lock(&self.sessions);
            ids.iter()
                .filter_map(|id| s.get(id).map(|x| x.peer.clone()))
                .collect()
        };
        let n = peers.len();
        let payload = serde_json::to_vec(&Reconnect {
            reason: reason.to_string(),
        })
        .unwrap_or_default();
        for peer in peers {
            let payload = payload.clone();
            tokio::spawn(async move {
                let _ = peer.notify(report::RECONNECT, payload).await;
                // An agent that ignores the request is disconnected anyway.
                tokio::time::sleep(RECONNECT_GRACE).await;
                peer.close();
            });
        }
        n
    }
}

pub async fn spawn(node: Arc<Node>) -> anyhow::Result<()> {
    let r = &node.conf.remote;
    let ip = r
        .local_ip
        .unwrap_or(std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED));
    let addr = SocketAddr::new(ip, r.port);
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen for agents on {addr}: {e}"))?;
    node.log.info(
        &node.tag(),
        SUB,
        format!("Listening for agents on {addr} (tcp)."),
    );
    spawn_registry_watch(node.clone());
    let pre_auth = Arc::new(Semaphore::new(PRE_AUTH));
    tokio::spawn(async move {
        loop {
            let (stream, peer_addr) = match listener.accept().await {
                Ok(x) => x,
                Err(e) => {
                    // EMFILE and friends: wait instead of spinning.
                    node.log
                        .error(&node.tag(), SUB, format!("accept failed: {e}"));
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let Ok(permit) = pre_auth.clone().acquire_owned().await else {
                return;
            };
            let node = node.clone();
            tokio::spawn(async move {
                let _ = stream.set_nodelay(true);
                if let Some(s) = open_session(&node, stream, peer_addr).await {
                    drop(permit);
                    run_session(node, s).await;
                }
            });
        }
    });
    Ok(())
}

/// Waits until a closed session has stored what it queued; false after [`SETTLE_TIMEOUT`].
async fn wait_ended(mut ended: watch::Receiver<bool>) -> bool {
    matches!(
        tokio::time::timeout(SETTLE_TIMEOUT, ended.wait_for(|e| *e)).await,
        Ok(Ok(_))
    )
}

/// Closes the sessions of agents deleted (or re-keyed) since they connected; checked at
/// most once a second however fast the registry moves.
fn spawn_registry_watch(node: Arc<Node>) {
    let mut changes = node.registry.changes();
    tokio::spawn(async move {
        while changes.next(Duration::from_secs(1)).await {
            let stale: Vec<(u32, Peer)> = lock(&node.remoted.sessions)
                .iter()
                .filter(|(id, s)| node.registry.get(**id).map(|a| a.key) != Some(s.key.clone()))
                .map(|(id, s)| (*id, s.peer.clone()))
                .collect();
            for (id, peer) in stale {
                node.log.info(
                    &node.tag(),
                    SUB,
                    format!("Agent {id:03} was removed from the registry; closing its session."),
                );
                peer.close();
            }
        }
    });
}

/// A session past its startup.
struct Opened {
    agent: Agent,
    addr: SocketAddr,
    peer: Peer,
    incoming: mpsc::Receiver<Incoming>,
    startup: Startup,
    serial: u64,
    /// Everything ≤ this is stored somewhere; `None` until the previous node answered.
    floor: Option<u64>,
    ended: watch::Sender<bool>,
}

fn refuse(node: &Node, addr: SocketAddr, why: &str) {
    node.remoted.rejected.fetch_add(1, Ordering::Relaxed);
    node.log.warning(
        &node.tag(),
        SUB,
        format!("Refused agent from {addr}: {why}"),
    );
}

/// Preface, key lookup, handshake and startup; `None` when the agent was refused.
async fn open_session(node: &Arc<Node>, mut stream: TcpStream, addr: SocketAddr) -> Option<Opened> {
    let started = Instant::now();
    let mut pre = [0u8; report::PREFACE_LEN];
    match tokio::time::timeout(STARTUP_TIMEOUT, stream.read_exact(&mut pre)).await {
        Ok(Ok(_)) => {}
        _ => {
            refuse(node, addr, "no preface");
            return None;
        }
    }
    let id = match report::parse_preface(&pre) {
        Ok(id) => id,
        Err(e) => {
            refuse(node, addr, &e);
            return None;
        }
    };
    let Some(agent) = lookup(node, id).await else {
        let why = format!("agent {id:03} is not registered (never enrolled or removed)");
        let _ = stream.write_all(&wire::handshake::reject_bytes(&why)).await;
        let _ = stream.shutdown().await;
        refuse(node, addr, &why);
        return None;
    };
    let wrong_key = format!("invalid key for agent {id:03}");
    let (reader, writer) = match wire::accept_with(
        stream,
        agent.key.as_bytes(),
        &wrong_key,
        report::READ_BUFFER,
    )
    .await
    {
        Ok(rw) => rw,
        Err(WireError::Auth) => {
            refuse(node, addr, &format!("{wrong_key} ({})", agent.name));
            return None;
        }
        Err(e) => {
            refuse(node, addr, &format!("agent {id:03}: {e}"));
            return None;
        }
    };
    let mut reader = reader;
    reader.set_max_message(report::MAX_MESSAGE);
    let (peer, mut incoming) = wire::rpc::spawn_peer_with(reader, writer, report::INCOMING_QUEUE);
    let left = STARTUP_TIMEOUT.saturating_sub(started.elapsed());
    let first = tokio::time::timeout(left, incoming.recv()).await;
    let Ok(Some(Incoming {
        command,
        payload,
        reply: Some(reply),
    })) = first
    else {
        peer.close();
        refuse(node, addr, &format!("agent {id:03} sent no startup"));
        return None;
    };
    if command != report::STARTUP {
        reply.err("expected startup").await;
        peer.close();
        refuse(node, addr, &format!("agent {id:03} began with '{command}'"));
        return None;
    }
    let startup: Startup = match serde_json::from_slice(&payload) {
        Ok(s) => s,
        Err(e) => {
            reply.err(format!("malformed startup: {e}")).await;
            peer.close();
            refuse(node, addr, &format!("agent {id:03}: malformed startup"));
            return None;
        }
    };
    let serial = node.remoted.serial.fetch_add(1, Ordering::Relaxed);
    let (ended, ended_rx) = watch::channel(false);
    let old = lock(&node.remoted.sessions).insert(
        id,
        Session {
            serial,
            peer: peer.clone(),
            key: agent.key.clone(),
            ended: ended_rx,
        },
    );
    if let Some(old) = old {
        // The agent started over (a new connection wins, as with Wazuh's remoted); what the
        // old one queued must be stored before the high-water mark below is read.
        old.peer.close();
        if !wait_ended(old.ended).await {
            reply.err("the previous session is still closing").await;
            peer.close();
            return None;
        }
    }
    let floor = match (&startup.prev_node, startup.in_doubt) {
        (Some(prev), true) if *prev != node.conf.cluster.node_name => None,
        _ => Some(node.remoted.archives.high_water(id).max(startup.acked)),
    };
    let welcome = Welcome {
        node: node.conf.cluster.node_name.clone(),
        cluster: node.conf.cluster.name.clone(),
        resume_from: floor,
    };
    reply
        .ok(serde_json::to_vec(&welcome).unwrap_or_default())
        .await;
    Some(Opened {
        agent,
        addr,
        peer,
        incoming,
        startup,
        serial,
        floor,
        ended,
    })
}

/// The agent's registry entry; a worker that does not know the id yet pulls the registry
/// once more first (the agent may have enrolled a moment ago through another node).
async fn lookup(node: &Node, id: u32) -> Option<Agent> {
    if let Some(a) = node.registry.get(id) {
        return Some(a);
    }
    let Role::Worker(w) = &node.role else {
        return None;
    };
    w.wake_registry();
    let deadline = Instant::now() + Duration::from_secs(3);
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if let Some(a) = node.registry.get(id) {
            return Some(a);
        }
    }
    None
}

fn report_of(agent: &Agent, k: &KeepAlive, status: AgentStatus) -> AgentReport {
    AgentReport {
        id: agent.id,
        name: Some(agent.name.clone()),
        version: Some(k.version.clone()).filter(|v| !v.is_empty()),
        os: Some(k.os.clone()).filter(|v| !v.is_empty()),
        labels: k.labels.clone(),
        status,
        last_keepalive: Some(now()),
        groups: None,
    }
}

async fn run_session(node: Arc<Node>, s: Opened) {
    let Opened {
        agent,
        addr,
        peer,
        mut incoming,
        startup,
        serial,
        mut floor,
        ended,
    } = s;
    let tag = node.tag();
    let id = agent.id;
    let who = format!("Agent {id:03} ({})", agent.name);
    if startup.name != agent.name {
        node.log
            .warning(&tag, SUB, format!("{who} calls itself '{}'.", startup.name));
    }
    let mut info = startup.info.clone();
    lock(&node.connected).insert(id, report_of(&agent, &info, AgentStatus::Active));
    node.log
        .info(&tag, SUB, format!("{who} connected from {addr}."));

    // Where to resume, once the previous node has answered.
    let local = node.remoted.archives.high_water(id);
    let mut resolving = JoinSet::new();
    if floor.is_none() {
        let prev = startup.prev_node.clone().unwrap_or_default();
        let (node2, who2) = (node.clone(), who.clone());
        let acked = startup.acked;
        resolving.spawn(async move {
            let theirs = resolve_prev(&node2, &who2, &prev, id).await;
            acked.max(local).max(theirs.unwrap_or(0))
        });
    }

    let mut stores: JoinSet<Result<Stored, String>> = JoinSet::new();
    let mut acked = 0u64;
    let mut last_rx = Instant::now();
    let reason = loop {
        let idle = IDLE_TIMEOUT.saturating_sub(last_rx.elapsed());
        tokio::select! {
            // Once closed, nothing more may be taken from the queue and stored.
            biased;
            reason = peer.closed() => break reason,
            r = resolving.join_next(), if !resolving.is_empty() => {
                let from = r.and_then(|x| x.ok()).unwrap_or(startup.acked);
                floor = Some(from);
                let payload = serde_json::to_vec(&Resume { resume_from: from }).unwrap_or_default();
                if peer.notify(report::RESUME, payload).await.is_err() {
                    break "connection lost".to_string();
                }
            }
            r = stores.join_next(), if !stores.is_empty() => {
                match r {
                    Some(Ok(Ok(st))) => {
                        if st.high_water > acked {
                            acked = st.high_water;
                            let payload = serde_json::to_vec(&Ack { upto: acked }).unwrap_or_default();
                            if peer.notify(report::ACK, payload).await.is_err() {
                                break "connection lost".to_string();
                            }
                        }
                    }
                    Some(Ok(Err(e))) => break format!("cannot store events: {e}"),
                    _ => break "store task failed".to_string(),
                }
            }
            inc = incoming.recv(), if stores.len() < IN_FLIGHT => {
                let Some(inc) = inc else {
                    break "agent closed the connection".to_string();
                };
                last_rx = Instant::now();
                match (inc.command.as_str(), inc.reply) {
                    (report::EVENTS, None) => {
                        let Some(floor) = floor else {
                            break "events before resume".to_string();
                        };
                        let events = match report::decode_events(&inc.payload) {
                            Ok(e) => e,
                            Err(e) => break format!("malformed events: {e}"),
                        };
                        let batch = Batch {
                            agent_id: id,
                            agent_name: agent.name.clone(),
                            events: events
                                .into_iter()
                                .filter(|e| e.seq > floor)
                                .map(|e| ArchivedEvent {
                                    seq: e.seq,
                                    ts_ms: e.ts_ms,
                                    location: e.location,
                                    log: e.log,
                                })
                                .collect(),
                        };
                        // Queued now, in arrival order; only the wait for the disk is spawned.
                        let stored = node.remoted.archives.store(batch);
                        stores.spawn(async move { stored.await.map_err(|e| e.to_string()) });
                    }
                    (report::KEEPALIVE, Some(reply)) => {
                        if let Ok(k) = serde_json::from_slice::<KeepAlive>(&inc.payload) {
                            info = k;
                        }
                        lock(&node.connected).insert(id, report_of(&agent, &info, AgentStatus::Active));
                        reply.ok(now().to_string().into_bytes()).await;
                    }
                    (other, Some(reply)) => reply.err(format!("unknown command '{other}'")).await,
                    (_, None) => {}
                }
            }
            _ = tokio::time::sleep(idle) => break format!("silent for {}s", IDLE_TIMEOUT.as_secs()),
        }
    };
    peer.close();
    // What was queued will be written anyway: wait for it, so `settled_high_water` is final.
    while stores.join_next().await.is_some() {}
    ended.send_replace(true);
    let current = {
        let mut sessions = lock(&node.remoted.sessions);
        if sessions.get(&id).map(|s| s.serial) == Some(serial) {
            sessions.remove(&id);
            true
        } else {
            false
        }
    };
    if current {
        lock(&node.connected).insert(id, report_of(&agent, &info, AgentStatus::Disconnected));
    }
    node.log
        .info(&tag, SUB, format!("{who} disconnected: {reason}."));
}

/// How far `prev` stored the agent's events; `None` when it cannot be known (then the agent
/// resumes from its own acknowledgement and duplicates are possible).
async fn resolve_prev(node: &Node, who: &str, prev: &str, agent: u32) -> Option<u64> {
    let wait = node.conf.cluster.intervals.in_doubt_wait;
    let deadline = Instant::now() + wait;
    let mut logged = false;
    loop {
        match query_seq(node, prev, agent).await {
            SeqAnswer::Stored(h) => return Some(h),
            SeqAnswer::Unknown => return None,
            SeqAnswer::Unreachable => {}
        }
        if Instant::now() >= deadline {
            node.log.warning(
                &node.tag(),
                SUB,
                format!(
                    "{who}: node {prev} still unreachable after {}s; resuming from the agent's \
                     last acknowledgement (events it stored unacknowledged will be duplicated).",
                    wait.as_secs()
                ),
            );
            return None;
        }
        if !logged {
            logged = true;
            node.log.info(
                &node.tag(),
                SUB,
                format!(
                    "{who}: waiting for node {prev}, which may hold its unacknowledged events."
                ),
            );
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Where `target` stands for `agent`, asked through the cluster.
pub async fn query_seq(node: &Node, target: &str, agent: u32) -> SeqAnswer {
    if target == node.conf.cluster.node_name {
        return match node.remoted.settled_high_water(agent).await {
            Some(h) => SeqAnswer::Stored(h),
            None => SeqAnswer::Unreachable,
        };
    }
    let timeout = node.conf.cluster.intervals.request_timeout;
    match &node.role {
        Role::Standalone => SeqAnswer::Unknown,
        Role::Master(m) => m.query_seq(target, agent, timeout).await,
        Role::Worker(w) => {
            let q = SeqQuery {
                node: target.to_string(),
                agent,
            };
            let payload = serde_json::to_vec(&q).unwrap_or_default();
            match w.request(proto::SEQ_QUERY, payload, timeout).await {
                Ok(b) => serde_json::from_slice(&b).unwrap_or(SeqAnswer::Unreachable),
                Err(_) => SeqAnswer::Unreachable,
            }
        }
    }
}
