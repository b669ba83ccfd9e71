//! One reporting session with one manager: connect, preface, handshake with the agent's key,
//! startup, then send the spool from where the manager says to resume, trim on acks, send
//! keep-alives, and end when the manager goes quiet, closes, or asks for a reconnect.
//! Shared by `rampart agent` and every simulated agent.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::Notify;
use tokio::time::Instant;
use wire::report::{self, Ack, EventRef, KeepAlive, Reconnect, Resume, Startup, Welcome};
use wire::rpc::RpcError;
use wire::WireError;

use crate::spool::Spool;

/// Events sent and not yet acknowledged, at most.
pub const WINDOW_EVENTS: u64 = 8192;
/// Events per `events` message, at most, and about this many bytes.
const BATCH_EVENTS: usize = 512;
const BATCH_BYTES: usize = 512 * 1024;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Who the agent is (a `client.keys` line). `Debug` leaves the key out.
#[derive(Clone, PartialEq, Eq)]
pub struct Identity {
    pub id: u32,
    pub name: String,
    pub key: String,
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identity")
            .field("id", &self.id)
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// What startup and keep-alives carry: version, OS, labels, config profile.
pub type Profile = KeepAlive;

#[derive(Debug, Clone, Copy)]
pub struct Timing {
    pub notify_time: Duration,
    pub time_reconnect: Duration,
    /// Events per second sent at most; 0 = unlimited (`<client_buffer><events_per_second>`).
    pub eps: u32,
    /// End a session after this long, as if asked to reconnect (`force_reconnect_interval`).
    pub force_reconnect: Option<Duration>,
}

/// Counters of one agent (the simulator adds them up).
#[derive(Debug, Default)]
pub struct Stats {
    pub sent: AtomicU64,
    pub resent: AtomicU64,
    pub acked: AtomicU64,
    pub sessions: AtomicU64,
    pub connected: AtomicBool,
    /// Highest seq ever sent, to tell a resend from a first send.
    high_sent: AtomicU64,
}

/// The spool and what the session shares with whoever appends to it.
pub struct Shared<S: Spool> {
    pub spool: Mutex<S>,
    /// Poked after every append.
    pub wake: Notify,
    pub stats: Stats,
    /// Events past the acknowledgement may sit unacknowledged on the last session's node.
    in_doubt: AtomicBool,
}

impl<S: Spool> Shared<S> {
    /// After a restart anything pending may have reached the previous node.
    pub fn new(spool: S) -> Shared<S> {
        let pending = spool.pending() > 0;
        let acked = spool.acked();
        let stats = Stats::default();
        stats.acked.store(acked, Ordering::Relaxed);
        stats
            .high_sent
            .store(spool.next_seq().saturating_sub(1), Ordering::Relaxed);
        Shared {
            spool: Mutex::new(spool),
            wake: Notify::new(),
            stats,
            in_doubt: AtomicBool::new(pending),
        }
    }

    pub fn spool(&self) -> MutexGuard<'_, S> {
        // No spool call leaves it half-changed on a panic.
        self.spool.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// How an established session ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ended {
    /// The manager asked for a reconnect (rebalancing).
    Asked(String),
    /// The connection was lost or the manager went quiet.
    Lost(String),
}

/// Why a session could not be established.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    /// Not reachable, or gone during setup.
    Unreachable(String),
    /// The manager refused this agent (unknown, removed, wrong key): the reason it gave.
    Rejected(String),
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refused::Unreachable(s) => f.write_str(s),
            Refused::Rejected(s) => write!(f, "refused by the manager: {s}"),
        }
    }
}

fn wire_err(e: WireError) -> Refused {
    match e {
        WireError::Rejected(r) => Refused::Rejected(r),
        other => Refused::Unreachable(other.to_string()),
    }
}

fn rpc_err(e: RpcError) -> Refused {
    match e {
        RpcError::Remote(r) => Refused::Rejected(r),
        other => Refused::Unreachable(other.to_string()),
    }
}

/// Runs one session against `addr` (`host:port`). Returns once established-and-ended, or
/// with why it could not be established. The caller owns the failover walk.
pub async fn run<S: Spool>(
    shared: &Shared<S>,
    ident: &Identity,
    profile: &Profile,
    timing: &Timing,
    addr: &str,
) -> Result<Ended, Refused> {
    // A hung manager (accepting, never answering) costs one time-reconnect per attempt.
    let limit = timing.time_reconnect.min(CONNECT_TIMEOUT);
    let mut stream = tokio::time::timeout(limit, TcpStream::connect(addr))
        .await
        .map_err(|_| Refused::Unreachable(format!("{addr}: connect timed out")))?
        .map_err(|e| Refused::Unreachable(format!("{addr}: {e}")))?;
    let _ = stream.set_nodelay(true);
    stream
        .write_all(&report::preface(ident.id))
        .await
        .map_err(|e| Refused::Unreachable(e.to_string()))?;
    let handshake = wire::connect_sized(stream, ident.key.as_bytes(), report::READ_BUFFER);
    let (reader, writer) = tokio::time::timeout(timing.time_reconnect, handshake)
        .await
        .map_err(|_| Refused::Unreachable(format!("{addr}: no handshake in time")))?
        .map_err(wire_err)?;
    let (peer, mut incoming) = wire::rpc::spawn_peer(reader, writer);

    let (acked, next_seq, prev_node, pending) = {
        let sp = shared.spool();
        (sp.acked(), sp.next_seq(), sp.session_node(), sp.pending())
    };
    let startup = Startup {
        name: ident.name.clone(),
        info: profile.clone(),
        acked,
        next_seq,
        prev_node,
        in_doubt: pending > 0 && shared.in_doubt.load(Ordering::Relaxed),
    };
    let answer = peer
        .request(
            report::STARTUP,
            serde_json::to_vec(&startup).unwrap_or_default(),
            timing.time_reconnect,
        )
        .await
        .map_err(rpc_err)?;
    let welcome: Welcome = serde_json::from_slice(&answer)
        .map_err(|e| Refused::Unreachable(format!("malformed welcome: {e}")))?;
    shared.stats.sessions.fetch_add(1, Ordering::Relaxed);
    shared.stats.connected.store(true, Ordering::Relaxed);
    tracing::info!(
        agent = ident.id,
        "Connected to the server ({addr}), node {}.",
        welcome.node
    );

    let mut s = Sending {
        shared,
        node: welcome.node,
        sent: acked,
        resume: None,
        next_at: Instant::now(),
        eps: timing.eps,
        keepalive_body: keepalive_body(profile),
        keepalive: None,
    };
    let ended = match welcome.resume_from.map(|from| s.resume(from)) {
        Some(Err(e)) => Ended::Lost(e),
        _ => s.exchange(&peer, &mut incoming, timing).await,
    };
    shared.stats.connected.store(false, Ordering::Relaxed);
    // Without a resume point nothing was sent here: the previous node stays the one that
    // may hold unacknowledged events.
    if s.resume.is_some() {
        let unacked = s.sent > shared.spool().acked();
        shared.in_doubt.store(unacked, Ordering::Relaxed);
    }
    if let Some(k) = s.keepalive.take() {
        k.abort();
    }
    peer.close();
    Ok(ended)
}

struct Sending<'a, S: Spool> {
    shared: &'a Shared<S>,
    /// The manager node of this session.
    node: String,
    /// Highest seq sent in this session (starts at the resume point).
    sent: u64,
    resume: Option<u64>,
    /// Rate limit: no send before this instant.
    next_at: Instant,
    eps: u32,
    keepalive_body: Vec<u8>,
    keepalive: Option<tokio::task::JoinHandle<Result<Vec<u8>, RpcError>>>,
}

impl<S: Spool> Sending<'_, S> {
    /// Everything ≤ `from` is stored somewhere. From here on events may reach this node:
    /// it is recorded (durably) as the session node before any is sent.
    fn resume(&mut self, from: u64) -> Result<(), String> {
        let mut sp = self.shared.spool();
        sp.set_session_node(Some(self.node.clone()))
            .map_err(|e| format!("cannot write the spool state: {e}"))?;
        // Stored somewhere already: as good as acknowledged. A manager claiming more than
        // the agent ever produced (agent reinstalled) is not trusted.
        if from < sp.next_seq() {
            if let Err(e) = sp.ack(from) {
                tracing::warn!("cannot trim the spool: {e}");
            }
        }
        let acked = sp.acked();
        self.shared.stats.acked.store(acked, Ordering::Relaxed);
        self.sent = acked;
        self.resume = Some(acked);
        Ok(())
    }

    fn ack(&mut self, upto: u64) {
        let mut sp = self.shared.spool();
        if let Err(e) = sp.ack(upto) {
            tracing::warn!("cannot trim the spool: {e}");
        }
        self.shared.stats.acked.store(sp.acked(), Ordering::Relaxed);
    }

    /// The next batch to send, if the window and the rate allow one.
    fn next_batch(&mut self) -> Option<Vec<u8>> {
        self.resume?;
        let acked = self.shared.spool().acked();
        let room = (acked + WINDOW_EVENTS).saturating_sub(self.sent);
        if room == 0 || Instant::now() < self.next_at {
            return None;
        }
        let max = (room as usize).min(BATCH_EVENTS);
        let mut sp = self.shared.spool();
        // Nothing leaves before it is durable here: after a power loss the spool could
        // otherwise give these seqs to other events, which the manager would drop as repeats.
        if let Err(e) = sp.sync() {
            tracing::error!("cannot sync the spool: {e}");
            return None;
        }
        let recs = match sp.read_from(self.sent + 1, max, BATCH_BYTES) {
            Ok(r) => r,
            Err(e) => {
                tracing::error!("cannot read the spool: {e}");
                return None;
            }
        };
        drop(sp);
        let last = recs.last()?.seq;
        let payload = report::encode_events(recs.iter().map(|r| EventRef {
            seq: r.seq,
            ts_ms: r.event.ts_ms,
            location: &r.event.location,
            log: &r.event.log,
        }));
        let st = &self.shared.stats;
        let high = st.high_sent.fetch_max(last, Ordering::Relaxed);
        let again = recs.iter().filter(|r| r.seq <= high).count() as u64;
        st.resent.fetch_add(again, Ordering::Relaxed);
        st.sent.fetch_add(recs.len() as u64, Ordering::Relaxed);
        self.shared.in_doubt.store(true, Ordering::Relaxed);
        if self.eps > 0 {
            let spacing = Duration::from_secs_f64(recs.len() as f64 / f64::from(self.eps));
            self.next_at = Instant::now().max(self.next_at) + spacing;
        }
        self.sent = last;
        Some(payload)
    }

    async fn exchange(
        &mut self,
        peer: &wire::rpc::Peer,
        incoming: &mut tokio::sync::mpsc::Receiver<wire::rpc::Incoming>,
        timing: &Timing,
    ) -> Ended {
        let mut last_rx = Instant::now();
        let mut next_keepalive = Instant::now() + timing.notify_time;
        let until = timing.force_reconnect.map(|d| Instant::now() + d);
        loop {
            let wake = self.shared.wake.notified();
            tokio::pin!(wake);
            wake.as_mut().enable();
            while let Some(payload) = self.next_batch() {
                if let Err(e) = peer.notify(report::EVENTS, payload).await {
                    return Ended::Lost(e.to_string());
                }
            }
            let quiet_until = last_rx + timing.time_reconnect;
            let mut wake_at = if Instant::now() < self.next_at {
                self.next_at
            } else {
                next_keepalive.min(quiet_until)
            };
            if let Some(u) = until {
                wake_at = wake_at.min(u);
            }
            tokio::select! {
                inc = incoming.recv() => {
                    let Some(inc) = inc else {
                        return Ended::Lost(peer.closed().await);
                    };
                    last_rx = Instant::now();
                    match inc.command.as_str() {
                        report::ACK => match serde_json::from_slice::<Ack>(&inc.payload) {
                            Ok(a) => self.ack(a.upto),
                            Err(e) => return Ended::Lost(format!("malformed ack: {e}")),
                        },
                        report::RESUME => match serde_json::from_slice::<Resume>(&inc.payload) {
                            Ok(r) => {
                                if let Err(e) = self.resume(r.resume_from) {
                                    return Ended::Lost(e);
                                }
                            }
                            Err(e) => return Ended::Lost(format!("malformed resume: {e}")),
                        },
                        report::RECONNECT => {
                            let why = serde_json::from_slice::<Reconnect>(&inc.payload)
                                .map(|r| r.reason)
                                .unwrap_or_default();
                            self.drain(incoming, timing).await;
                            return Ended::Asked(why);
                        }
                        other => {
                            if let Some(reply) = inc.reply {
                                reply.err(format!("unknown command '{other}'")).await;
                            }
                        }
                    }
                }
                done = pending_join(&mut self.keepalive), if self.keepalive.is_some() => {
                    self.keepalive = None;
                    if let Ok(Ok(_)) = done {
                        last_rx = Instant::now();
                    }
                }
                _ = &mut wake => {}
                reason = peer.closed() => return Ended::Lost(reason),
                _ = tokio::time::sleep_until(wake_at) => {
                    if last_rx.elapsed() >= timing.time_reconnect {
                        return Ended::Lost(format!(
                            "no answer from the manager in {}s",
                            timing.time_reconnect.as_secs()
                        ));
                    }
                    if until.is_some_and(|u| Instant::now() >= u) {
                        self.drain(incoming, timing).await;
                        return Ended::Asked("force_reconnect_interval".into());
                    }
                    if Instant::now() >= next_keepalive {
                        next_keepalive = Instant::now() + timing.notify_time;
                        if self.keepalive.is_none() {
                            self.keepalive = Some(self.spawn_keepalive(peer, timing));
                        }
                    }
                }
            }
        }
    }

    fn spawn_keepalive(
        &self,
        peer: &wire::rpc::Peer,
        timing: &Timing,
    ) -> tokio::task::JoinHandle<Result<Vec<u8>, RpcError>> {
        let (peer, timeout) = (peer.clone(), timing.time_reconnect);
        let payload = self.keepalive_body.clone();
        tokio::spawn(async move { peer.request(report::KEEPALIVE, payload, timeout).await })
    }

    /// Before leaving on request, give what was sent a moment to be acknowledged, so the next
    /// node need not ask this one.
    async fn drain(
        &mut self,
        incoming: &mut tokio::sync::mpsc::Receiver<wire::rpc::Incoming>,
        timing: &Timing,
    ) {
        let until = Instant::now() + timing.notify_time.min(Duration::from_secs(5));
        while self.shared.spool().acked() < self.sent {
            let Ok(Some(inc)) = tokio::time::timeout_at(until, incoming.recv()).await else {
                return;
            };
            if inc.command == report::ACK {
                if let Ok(a) = serde_json::from_slice::<Ack>(&inc.payload) {
                    self.ack(a.upto);
                }
            }
        }
    }
}

/// Waits for the task if there is one (never resolves otherwise).
async fn pending_join<T>(
    h: &mut Option<tokio::task::JoinHandle<T>>,
) -> Result<T, tokio::task::JoinError> {
    match h {
        Some(h) => h.await,
        None => std::future::pending().await,
    }
}

/// The keep-alive body for a profile.
fn keepalive_body(p: &Profile) -> Vec<u8> {
    serde_json::to_vec(p).unwrap_or_default()
}
