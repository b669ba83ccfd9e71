//! Runtime state of backends and servers: the parts that change while traffic flows
//! (sessions, queues, weights, admin and health state, counters).
//!
//! Slot accounting: a session that holds a [`SlotGuard`] counts in its server's `cur`;
//! dropping the guard frees the slot and hands it to a queued session if there is one.
//! Enqueue and release follow a Dekker-style order on SeqCst atomics (enqueue, then
//! look for a free slot; free the slot, then look for waiters) so no waiter is stranded.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use tokio::sync::oneshot;

use crate::balance::{self, Balancer, Candidate, Eligibility, Pick};
use crate::config::{Backend, Server};
use crate::health::{CheckParams, CheckResult, Health, Transition};

/// Admin-state bits as `show servers state` prints them (srv_admin_state).
pub mod admin {
    pub const FMAINT: u8 = 0x01;
    pub const CMAINT: u8 = 0x04;
    pub const FDRAIN: u8 = 0x08;
    pub const MAINT_ANY: u8 = 0x01 | 0x02 | 0x04 | 0x20 | 0x40;
}

/// Monotonic counters for `show stat`; relaxed atomics, each touched once per event.
#[derive(Debug, Default)]
pub struct Counters {
    pub stot: AtomicU64,
    pub smax: AtomicU32,
    pub bytes_in: AtomicU64,
    pub bytes_out: AtomicU64,
    pub econ: AtomicU64,
    pub eresp: AtomicU64,
    pub wretr: AtomicU64,
    pub wredis: AtomicU64,
    pub lbtot: AtomicU64,
    pub cli_abrt: AtomicU64,
    pub srv_abrt: AtomicU64,
    pub qmax: AtomicU32,
    pub dreq: AtomicU64,
}

impl Counters {
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub fn raise_max(max: &AtomicU32, v: u32) {
        max.fetch_max(v, Ordering::Relaxed);
    }
}

/// The last health check's outcome, for `show stat` and `show servers state`.
#[derive(Debug, Clone)]
pub struct LastCheck {
    pub result: CheckResult,
    pub duration: Duration,
}

/// What a queued session is told when it leaves the queue.
pub enum Grant {
    Slot(SlotGuard),
    /// Its server went down or into maintenance: choose again.
    Redispatch,
}

struct Waiter {
    id: u64,
    /// Bound to this server (hash-based choice); never moved to another.
    pinned: bool,
    tx: oneshot::Sender<Grant>,
}

pub struct ServerRt {
    pub cfg: Server,
    pub backend_name: String,
    addr: Mutex<SocketAddr>,
    /// User weight (`set server … weight`), starts at the configured weight.
    weight: AtomicU32,
    admin: AtomicU8,
    /// Operational state: health checks passed (or checks disabled).
    up: AtomicBool,
    health: Mutex<Health>,
    last_check: Mutex<Option<LastCheck>>,
    pub cur: AtomicU32,
    queued: AtomicU32,
    queue: Mutex<VecDeque<Waiter>>,
    pub counters: Counters,
    pub chkfail: AtomicU64,
    pub chkdown: AtomicU64,
    last_change: Mutex<Instant>,
    downtime: Mutex<Duration>,
    /// Set when the server left the configuration; its check task stops.
    retired: AtomicBool,
    /// A check task runs for this server (started once, stops when retired).
    pub check_started: AtomicBool,
    /// The backend currently serving this server. A reload may share one server between
    /// the old and the new backend object; freed slots must wake the current one.
    owner: Mutex<Weak<BackendRt>>,
}

/// Locks ignoring poisoning: every critical section here leaves the data consistent.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl ServerRt {
    pub fn new(cfg: Server, backend_name: &str) -> Arc<Self> {
        let params = check_params(&cfg);
        // As HAProxy shows it: forced and configuration maintenance (admin state 5).
        let admin = if cfg.settings.disabled {
            admin::FMAINT | admin::CMAINT
        } else {
            0
        };
        Arc::new(ServerRt {
            addr: Mutex::new(cfg.addr),
            weight: AtomicU32::new(cfg.settings.weight),
            admin: AtomicU8::new(admin),
            up: AtomicBool::new(true),
            health: Mutex::new(Health::new(params)),
            last_check: Mutex::new(None),
            cur: AtomicU32::new(0),
            queued: AtomicU32::new(0),
            queue: Mutex::new(VecDeque::new()),
            counters: Counters::default(),
            chkfail: AtomicU64::new(0),
            chkdown: AtomicU64::new(0),
            last_change: Mutex::new(Instant::now()),
            downtime: Mutex::new(Duration::ZERO),
            retired: AtomicBool::new(false),
            check_started: AtomicBool::new(false),
            owner: Mutex::new(Weak::new()),
            backend_name: backend_name.to_string(),
            cfg,
        })
    }

    /// A replacement for `old` after a reload: keeps what an operator set at runtime
    /// (address, weight, admin state) and the health state when checks are unchanged.
    pub fn succeed(cfg: Server, backend_name: &str, old: &ServerRt) -> Arc<Self> {
        let same_check = check_params(&cfg) == check_params(&old.cfg)
            && cfg.settings.check == old.cfg.settings.check;
        let same_addr = cfg.addr == old.cfg.addr;
        let cfg_weight_changed = cfg.settings.weight != old.cfg.settings.weight;
        let new = ServerRt::new(cfg, backend_name);
        if !same_addr {
            // The file changed the address: the file wins over a runtime `set server addr`.
        } else {
            *lock(&new.addr) = old.addr();
        }
        if !cfg_weight_changed {
            new.weight.store(old.weight(), Ordering::Relaxed);
        }
        let runtime_admin = old.admin() & (admin::FMAINT | admin::FDRAIN);
        new.admin.fetch_or(runtime_admin, Ordering::SeqCst);
        if same_check && same_addr {
            *lock(&new.health) = *lock(&old.health);
            new.up.store(old.is_up(), Ordering::SeqCst);
            *lock(&new.last_check) = lock(&old.last_check).clone();
            *lock(&new.last_change) = *lock(&old.last_change);
        }
        new
    }

    pub fn name(&self) -> &str {
        &self.cfg.name
    }

    pub fn addr(&self) -> SocketAddr {
        *lock(&self.addr)
    }

    pub fn set_addr(&self, addr: SocketAddr) {
        *lock(&self.addr) = addr;
    }

    pub fn weight(&self) -> u32 {
        self.weight.load(Ordering::Relaxed)
    }

    pub fn set_weight(&self, w: u32) {
        self.weight.store(w, Ordering::Relaxed);
    }

    pub fn admin(&self) -> u8 {
        self.admin.load(Ordering::SeqCst)
    }

    pub fn set_admin(&self, set: u8, clear: u8) {
        let _ = self
            .admin
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |a| {
                Some((a & !clear) | set)
            });
        *lock(&self.last_change) = Instant::now();
    }

    pub fn in_maint(&self) -> bool {
        self.admin() & admin::MAINT_ANY != 0
    }

    pub fn draining(&self) -> bool {
        self.admin() & admin::FDRAIN != 0
    }

    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::SeqCst)
    }

    /// May take new sessions.
    pub fn usable(&self) -> bool {
        self.is_up() && !self.in_maint() && !self.draining() && self.weight() > 0
    }

    pub fn queued(&self) -> u32 {
        self.queued.load(Ordering::SeqCst)
    }

    fn has_slot(&self) -> bool {
        self.cfg.settings.maxconn == 0
            || self.cur.load(Ordering::SeqCst) < self.cfg.settings.maxconn
    }

    fn queue_room(&self) -> bool {
        self.cfg.settings.maxqueue == 0 || self.queued() < self.cfg.settings.maxqueue
    }

    pub fn health(&self) -> Health {
        *lock(&self.health)
    }

    pub fn last_check(&self) -> Option<LastCheck> {
        lock(&self.last_check).clone()
    }

    pub fn since_last_change(&self) -> Duration {
        lock(&self.last_change).elapsed()
    }

    pub fn downtime(&self) -> Duration {
        let base = *lock(&self.downtime);
        if self.is_up() {
            base
        } else {
            base + self.since_last_change()
        }
    }

    fn set_owner(&self, be: &Arc<BackendRt>) {
        *lock(&self.owner) = Arc::downgrade(be);
    }

    pub fn owner(&self) -> Option<Arc<BackendRt>> {
        lock(&self.owner).upgrade()
    }

    /// Leaving maintenance: checks start again from HAProxy's initial state (up, one
    /// failure away from down).
    pub fn reset_health(&self) {
        let params = check_params(&self.cfg);
        *lock(&self.health) = Health::new(params);
        *lock(&self.last_check) = None;
        self.up.store(true, Ordering::SeqCst);
    }

    pub fn retire(&self) {
        self.retired.store(true, Ordering::SeqCst);
    }

    pub fn is_retired(&self) -> bool {
        self.retired.load(Ordering::SeqCst)
    }

    /// Feeds one check result into the state machine.
    pub fn record_check(&self, result: CheckResult, duration: Duration) -> Transition {
        let passed = result.passed();
        if !passed {
            self.chkfail.fetch_add(1, Ordering::Relaxed);
        }
        *lock(&self.last_check) = Some(LastCheck { result, duration });
        let t = lock(&self.health).record(passed);
        self.apply_transition(t);
        t
    }

    /// `set server B/S health up|down`.
    pub fn force_health(&self, up: bool) -> Transition {
        let t = lock(&self.health).force(up);
        self.apply_transition(t);
        t
    }

    fn apply_transition(&self, t: Transition) {
        let now = Instant::now();
        match t {
            Transition::WentUp => {
                let mut since = lock(&self.last_change);
                *lock(&self.downtime) += now.duration_since(*since);
                *since = now;
                self.up.store(true, Ordering::SeqCst);
            }
            Transition::WentDown => {
                *lock(&self.last_change) = now;
                self.chkdown.fetch_add(1, Ordering::Relaxed);
                self.up.store(false, Ordering::SeqCst);
            }
            Transition::None => {}
        }
    }

    fn push_waiter(&self, w: Waiter) {
        let mut q = lock(&self.queue);
        q.push_back(w);
        let n = self.queued.fetch_add(1, Ordering::SeqCst) + 1;
        Counters::raise_max(&self.counters.qmax, n);
    }

    fn pop_waiter(&self, include_pinned: bool) -> Option<Waiter> {
        let mut q = lock(&self.queue);
        let at = q.iter().position(|w| include_pinned || !w.pinned)?;
        let w = q.remove(at)?;
        self.queued.fetch_sub(1, Ordering::SeqCst);
        Some(w)
    }

    fn remove_waiter(&self, id: u64) -> bool {
        let mut q = lock(&self.queue);
        match q.iter().position(|w| w.id == id) {
            Some(at) => {
                q.remove(at);
                self.queued.fetch_sub(1, Ordering::SeqCst);
                true
            }
            None => false,
        }
    }

    fn drain_waiters(&self) -> Vec<Waiter> {
        let mut q = lock(&self.queue);
        let all: Vec<Waiter> = q.drain(..).collect();
        self.queued.fetch_sub(all.len() as u32, Ordering::SeqCst);
        all
    }
}

pub fn check_params(s: &Server) -> CheckParams {
    CheckParams {
        rise: s.settings.rise,
        fall: s.settings.fall,
        inter: s.settings.inter,
        fastinter: s.settings.fastinter,
        downinter: s.settings.downinter,
    }
}

/// A reserved slot on a server; dropping it frees the slot for a queued session.
pub struct SlotGuard {
    backend: Arc<BackendRt>,
    server: Arc<ServerRt>,
    armed: bool,
}

impl SlotGuard {
    pub fn server(&self) -> &Arc<ServerRt> {
        &self.server
    }

    /// Frees the slot without dispatching (the caller is dispatching already).
    fn disarm(mut self) {
        self.armed = false;
        self.server.cur.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Drop for SlotGuard {
    fn drop(&mut self) {
        if self.armed {
            self.server.cur.fetch_sub(1, Ordering::SeqCst);
            let be = self.server.owner().unwrap_or_else(|| self.backend.clone());
            if be.queued() > 0 {
                be.dispatch();
            }
        }
    }
}

#[derive(Debug)]
pub enum AssignError {
    /// No usable server at all.
    NoServer,
    /// Waited `timeout queue` without getting a slot.
    QueueTimeout,
}

/// Result of a successful assignment.
pub struct Assigned {
    pub slot: SlotGuard,
    /// Time spent in a queue (`%Tw`).
    pub queued_for: Duration,
    /// Queue lengths seen when queued (`%sq/%bq`).
    pub srv_queue: u32,
    pub backend_queue: u32,
}

pub struct BackendRt {
    pub cfg: Backend,
    servers: ArcSwap<Vec<Arc<ServerRt>>>,
    balancer: Mutex<Balancer>,
    /// HAProxy's backend queue: sessions that found every server and server queue full.
    /// Unbounded, limited in time by `timeout queue`.
    overflow: Mutex<VecDeque<Waiter>>,
    overflow_len: AtomicU32,
    next_waiter: AtomicU64,
    pub cur: AtomicU32,
    pub counters: Counters,
    last_change: Mutex<Instant>,
    /// The backend's `log` targets: server state changes go there, as in HAProxy.
    pub logger: crate::log::Logger,
    /// The backend that replaced this one on a reload: sessions that started here queue
    /// and are served there, so none waits in a queue nobody serves any more.
    successor: Mutex<Weak<BackendRt>>,
}

impl BackendRt {
    pub fn new(cfg: Backend, servers: Vec<Arc<ServerRt>>) -> Arc<Self> {
        Self::with_logger(cfg, servers, crate::log::Logger::default())
    }

    pub fn with_logger(
        cfg: Backend,
        servers: Vec<Arc<ServerRt>>,
        logger: crate::log::Logger,
    ) -> Arc<Self> {
        let be = Arc::new(BackendRt {
            logger,
            successor: Mutex::new(Weak::new()),
            cfg,
            servers: ArcSwap::from_pointee(servers),
            balancer: Mutex::new(Balancer::default()),
            overflow: Mutex::new(VecDeque::new()),
            overflow_len: AtomicU32::new(0),
            next_waiter: AtomicU64::new(1),
            cur: AtomicU32::new(0),
            counters: Counters::default(),
            last_change: Mutex::new(Instant::now()),
        });
        for s in be.servers.load().iter() {
            s.set_owner(&be);
        }
        be
    }

    /// The backend now in charge: this one, or the one that replaced it on a reload.
    pub fn latest(self: &Arc<Self>) -> Arc<BackendRt> {
        let mut be = self.clone();
        // Bounded: each reload adds one link; a chain longer than this is not expected.
        for _ in 0..64 {
            let next = lock(&be.successor).upgrade();
            match next {
                Some(n) => be = n,
                None => break,
            }
        }
        be
    }

    /// Makes `new` this backend's successor and hands it this backend's queue.
    pub fn hand_over_to(&self, new: &Arc<BackendRt>) {
        *lock(&self.successor) = Arc::downgrade(new);
        new.adopt_queue(self);
    }

    /// Takes over the backend queue of the object this one replaces on a reload.
    fn adopt_queue(&self, old: &BackendRt) {
        let moved: Vec<Waiter> = lock(&old.overflow).drain(..).collect();
        old.overflow_len.store(0, Ordering::SeqCst);
        let mut q = lock(&self.overflow);
        self.overflow_len
            .fetch_add(moved.len() as u32, Ordering::SeqCst);
        q.extend(moved);
    }

    pub fn name(&self) -> &str {
        &self.cfg.name
    }

    pub fn servers(&self) -> Arc<Vec<Arc<ServerRt>>> {
        self.servers.load_full()
    }

    pub fn server(&self, name: &str) -> Option<Arc<ServerRt>> {
        self.servers
            .load()
            .iter()
            .find(|s| s.name() == name)
            .cloned()
    }

    /// Sessions waiting: in the backend queue and in every server's queue.
    pub fn queued(&self) -> u32 {
        let on_servers: u32 = self.servers.load().iter().map(|s| s.queued()).sum();
        on_servers + self.overflow_len.load(Ordering::SeqCst)
    }

    pub fn since_last_change(&self) -> Duration {
        lock(&self.last_change).elapsed()
    }

    pub fn mark_changed(&self) {
        *lock(&self.last_change) = Instant::now();
    }

    /// Counts of usable active and backup servers, for state-change log lines.
    pub fn usable_counts(&self) -> (usize, usize) {
        let servers = self.servers.load();
        let act = servers
            .iter()
            .filter(|s| s.usable() && !s.cfg.settings.backup)
            .count();
        let bck = servers
            .iter()
            .filter(|s| s.usable() && s.cfg.settings.backup)
            .count();
        (act, bck)
    }

    pub fn add_server(self: &Arc<Self>, server: Arc<ServerRt>) -> Result<(), String> {
        let current = self.servers.load_full();
        if current.iter().any(|s| s.name() == server.name()) {
            return Err(format!(
                "Already exists a server with the same name in backend '{}'.",
                self.name()
            ));
        }
        let mut next = (*current).clone();
        server.set_owner(self);
        next.push(server);
        self.servers.store(Arc::new(next));
        self.dispatch();
        Ok(())
    }

    pub fn remove_server(&self, name: &str) -> Option<Arc<ServerRt>> {
        let current = self.servers.load_full();
        let at = current.iter().position(|s| s.name() == name)?;
        let mut next = (*current).clone();
        let gone = next.remove(at);
        self.servers.store(Arc::new(next));
        gone.retire();
        Some(gone)
    }

    pub fn next_server_id(&self) -> u32 {
        self.servers
            .load()
            .iter()
            .map(|s| s.cfg.id)
            .max()
            .unwrap_or(0)
            + 1
    }

    /// Candidates in declaration order, restricted to HAProxy's eligible set.
    fn candidates(
        &self,
        servers: &[Arc<ServerRt>],
        avoid: Option<u32>,
    ) -> (Vec<usize>, Vec<Candidate>) {
        let elig: Vec<Eligibility> = servers
            .iter()
            .map(|s| Eligibility {
                usable: s.usable() && Some(s.cfg.id) != avoid,
                backup: s.cfg.settings.backup,
            })
            .collect();
        let mut idx = balance::eligible(&elig, self.cfg.allbackups);
        if idx.is_empty() && avoid.is_some() {
            // Only the server to avoid is left: better it than nothing.
            return self.candidates(servers, None);
        }
        idx.sort_unstable();
        let cands = idx
            .iter()
            .map(|&i| {
                let s = &servers[i];
                Candidate {
                    id: s.cfg.id,
                    weight: self.effective_weight(s),
                    load: s.cur.load(Ordering::SeqCst) + s.queued(),
                    has_slot: s.has_slot(),
                    queue_room: s.queue_room(),
                }
            })
            .collect();
        (idx, cands)
    }

    /// static-rr ignores runtime weight changes except to or from zero, as HAProxy does.
    fn effective_weight(&self, s: &ServerRt) -> u32 {
        let w = s.weight();
        if self.cfg.algorithm == crate::config::Algorithm::StaticRr && w > 0 {
            s.cfg.settings.weight.max(1)
        } else {
            w
        }
    }

    fn reserve(self: &Arc<Self>, server: &Arc<ServerRt>) -> SlotGuard {
        let n = server.cur.fetch_add(1, Ordering::SeqCst) + 1;
        Counters::raise_max(&server.counters.smax, n);
        Counters::add(&server.counters.lbtot, 1);
        SlotGuard {
            backend: self.clone(),
            server: server.clone(),
            armed: true,
        }
    }

    /// Chooses a server for a new session, queueing up to `timeout queue` when every
    /// eligible server is at its `maxconn`. `avoid` is the server that just failed.
    pub async fn assign(
        self: &Arc<Self>,
        client_key: u64,
        avoid: Option<u32>,
        queue_timeout: Option<Duration>,
    ) -> Result<Assigned, AssignError> {
        let started = Instant::now();
        loop {
            let be = self.latest();
            let (rx, id, place, sq) = {
                let mut bal = lock(&be.balancer);
                let servers = be.servers.load_full();
                let (idx, cands) = be.candidates(&servers, avoid);
                if cands.is_empty() {
                    return Err(AssignError::NoServer);
                }
                let (tx, rx) = oneshot::channel();
                let id = be.next_waiter.fetch_add(1, Ordering::Relaxed);
                let place = match bal.pick(be.cfg.algorithm, be.cfg.hash_type, &cands, client_key) {
                    Pick::Server(i) => {
                        let slot = be.reserve(&servers[idx[i]]);
                        return Ok(Assigned {
                            slot,
                            queued_for: started.elapsed(),
                            srv_queue: 0,
                            backend_queue: 0,
                        });
                    }
                    Pick::Queue(i) => {
                        let server = servers[idx[i]].clone();
                        let pinned = be.cfg.algorithm == crate::config::Algorithm::Source;
                        server.push_waiter(Waiter { id, pinned, tx });
                        Some(server)
                    }
                    Pick::Full => {
                        // Every server queue is at `maxqueue`: wait in the backend queue.
                        let mut q = lock(&be.overflow);
                        q.push_back(Waiter {
                            id,
                            pinned: false,
                            tx,
                        });
                        be.overflow_len.fetch_add(1, Ordering::SeqCst);
                        None
                    }
                };
                let total = be.queued();
                Counters::raise_max(&be.counters.qmax, total);
                (rx, id, place, total)
            };
            // A slot may have been freed between our look and our enqueue.
            be.dispatch();
            let waited = match queue_timeout {
                Some(t) => tokio::time::timeout(t.saturating_sub(started.elapsed()), rx).await,
                None => Ok(rx.await),
            };
            match waited {
                Ok(Ok(Grant::Slot(slot))) => {
                    return Ok(Assigned {
                        slot,
                        queued_for: started.elapsed(),
                        srv_queue: place.as_ref().map_or(0, |s| s.queued()),
                        backend_queue: sq,
                    })
                }
                Ok(Ok(Grant::Redispatch)) => continue,
                Ok(Err(_)) => return Err(AssignError::NoServer),
                Err(_) => {
                    match &place {
                        Some(server) => {
                            server.remove_waiter(id);
                        }
                        None => be.remove_overflow(id),
                    }
                    return Err(AssignError::QueueTimeout);
                }
            }
        }
    }

    fn remove_overflow(&self, id: u64) {
        let mut q = lock(&self.overflow);
        if let Some(at) = q.iter().position(|w| w.id == id) {
            q.remove(at);
            self.overflow_len.fetch_sub(1, Ordering::SeqCst);
        }
    }

    fn pop_overflow(&self) -> Option<Waiter> {
        let mut q = lock(&self.overflow);
        let w = q.pop_front()?;
        self.overflow_len.fetch_sub(1, Ordering::SeqCst);
        Some(w)
    }

    /// Hands free slots to queued sessions: each server's own queue first, then
    /// unpinned sessions queued on other servers, then the backend queue.
    pub fn dispatch(self: &Arc<Self>) {
        let _bal = lock(&self.balancer);
        loop {
            if self.queued() == 0 {
                return;
            }
            let servers = self.servers.load_full();
            let (idx, _) = self.candidates(&servers, None);
            let mut progressed = false;
            for &i in &idx {
                let s = &servers[i];
                if !s.has_slot() {
                    continue;
                }
                let waiter = s
                    .pop_waiter(true)
                    .or_else(|| {
                        servers
                            .iter()
                            .filter(|o| o.cfg.id != s.cfg.id && o.queued() > 0)
                            .find_map(|o| o.pop_waiter(false))
                    })
                    .or_else(|| self.pop_overflow());
                let Some(w) = waiter else { continue };
                progressed = true;
                let slot = self.reserve(s);
                if let Err(Grant::Slot(slot)) = w.tx.send(Grant::Slot(slot)) {
                    slot.disarm();
                }
            }
            if !progressed {
                return;
            }
        }
    }

    /// Sends the sessions queued on `server` back to choose again (it went down).
    /// Returns how many were requeued.
    pub fn redistribute(self: &Arc<Self>, server: &ServerRt) -> usize {
        let waiters = server.drain_waiters();
        let n = waiters.len();
        for w in waiters {
            let _ = w.tx.send(Grant::Redispatch);
        }
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Algorithm, HashType, Loc, LogOptions, Mode, ServerSettings, Timeouts};

    fn server(id: u32, maxconn: u32, maxqueue: u32) -> Server {
        Server {
            name: format!("s{id}"),
            id,
            host: "127.0.0.1".into(),
            addr: SocketAddr::from(([127, 0, 0, 1], 10000 + id as u16)),
            settings: ServerSettings {
                maxconn,
                maxqueue,
                ..ServerSettings::default()
            },
            loc: Loc::default(),
        }
    }

    fn backend(algo: Algorithm, servers: Vec<Server>) -> Arc<BackendRt> {
        let cfg = Backend {
            name: "b".into(),
            id: 1,
            mode: Mode::Tcp,
            algorithm: algo,
            hash_type: HashType::MapBased,
            servers: servers.clone(),
            timeouts: Timeouts::default(),
            retries: 3,
            redispatch: None,
            allbackups: false,
            log_options: LogOptions::default(),
            logs: vec![],
            from_listen: false,
            loc: Loc::default(),
        };
        let rts = servers.into_iter().map(|s| ServerRt::new(s, "b")).collect();
        BackendRt::new(cfg, rts)
    }

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .expect("runtime")
    }

    #[test]
    fn queues_at_maxconn_and_hands_over_on_release() {
        rt().block_on(async {
            let be = backend(Algorithm::LeastConn, vec![server(1, 1, 0)]);
            let first = be.assign(0, None, None).await.expect("slot");
            let be2 = be.clone();
            let waiting = tokio::spawn(async move { be2.assign(0, None, None).await });
            tokio::task::yield_now().await;
            assert_eq!(be.queued(), 1);
            drop(first.slot);
            let second = waiting.await.expect("join").expect("granted");
            assert_eq!(second.slot.server().cur.load(Ordering::SeqCst), 1);
            assert_eq!(be.queued(), 0);
            drop(second);
            assert_eq!(be.servers()[0].cur.load(Ordering::SeqCst), 0);
        });
    }

    #[test]
    fn queue_timeout_removes_the_waiter() {
        rt().block_on(async {
            let be = backend(Algorithm::RoundRobin, vec![server(1, 1, 0)]);
            let _first = be.assign(0, None, None).await.expect("slot");
            let r = be.assign(0, None, Some(Duration::from_secs(5))).await;
            assert!(matches!(r, Err(AssignError::QueueTimeout)));
            assert_eq!(be.queued(), 0);
            assert_eq!(be.servers()[0].queued(), 0);
        });
    }

    #[test]
    fn full_server_queues_overflow_into_the_backend_queue() {
        rt().block_on(async {
            let be = backend(Algorithm::RoundRobin, vec![server(1, 1, 1)]);
            let first = be.assign(0, None, None).await.expect("slot");
            let (b2, b3) = (be.clone(), be.clone());
            let on_server = tokio::spawn(async move { b2.assign(0, None, None).await });
            tokio::task::yield_now().await;
            let in_backend = tokio::spawn(async move { b3.assign(0, None, None).await });
            tokio::task::yield_now().await;
            assert_eq!(be.servers()[0].queued(), 1, "maxqueue 1 reached");
            assert_eq!(be.queued(), 2, "the second waiter is in the backend queue");
            drop(first);
            let second = on_server.await.expect("join").expect("server queue first");
            drop(second);
            let third = in_backend
                .await
                .expect("join")
                .expect("then the backend queue");
            assert_eq!(be.queued(), 0);
            drop(third);
        });
    }

    #[test]
    fn a_freed_slot_wakes_the_backend_that_now_owns_the_server() {
        rt().block_on(async {
            let old = backend(Algorithm::RoundRobin, vec![server(1, 1, 0)]);
            let held = old.assign(0, None, None).await.expect("slot");
            // A reload shares the unchanged server with a new backend object.
            let new = BackendRt::new(old.cfg.clone(), vec![old.servers()[0].clone()]);
            let n2 = new.clone();
            let waiting = tokio::spawn(async move { n2.assign(0, None, None).await });
            tokio::task::yield_now().await;
            assert_eq!(new.queued(), 1);
            drop(held);
            let got = waiting
                .await
                .expect("join")
                .expect("served after the old slot freed");
            assert_eq!(new.queued(), 0);
            drop(got);
        });
    }

    #[test]
    fn leastconn_spreads_and_respects_weights() {
        rt().block_on(async {
            let mut s2 = server(2, 0, 0);
            s2.settings.weight = 3;
            let be = backend(Algorithm::LeastConn, vec![server(1, 0, 0), s2]);
            let mut held = Vec::new();
            for _ in 0..8 {
                held.push(be.assign(0, None, None).await.expect("slot"));
            }
            let cur: Vec<u32> = be
                .servers()
                .iter()
                .map(|s| s.cur.load(Ordering::SeqCst))
                .collect();
            assert_eq!(cur, vec![2, 6]);
        });
    }

    #[test]
    fn freed_slot_on_another_server_takes_an_unpinned_waiter() {
        rt().block_on(async {
            let be = backend(Algorithm::LeastConn, vec![server(1, 1, 0), server(2, 1, 0)]);
            let a = be.assign(0, None, None).await.expect("slot");
            let b = be.assign(0, None, None).await.expect("slot");
            let (sa, sb) = (a.slot.server().cfg.id, b.slot.server().cfg.id);
            assert_ne!(sa, sb);
            let be2 = be.clone();
            let waiting = tokio::spawn(async move { be2.assign(0, None, None).await });
            tokio::task::yield_now().await;
            // Free whichever server the waiter did not queue on.
            let queued_on = be
                .servers()
                .iter()
                .find(|s| s.queued() == 1)
                .map(|s| s.cfg.id);
            let freed = if queued_on == Some(sa) { b } else { a };
            let freed_id = freed.slot.server().cfg.id;
            drop(freed);
            let got = waiting.await.expect("join").expect("granted");
            assert_eq!(got.slot.server().cfg.id, freed_id);
        });
    }

    #[test]
    fn down_server_redistributes_its_queue() {
        rt().block_on(async {
            let be = backend(
                Algorithm::RoundRobin,
                vec![server(1, 1, 0), server(2, 0, 0)],
            );
            be.servers()[1].set_admin(admin::FMAINT, 0);
            let _a = be.assign(0, None, None).await.expect("slot");
            let be2 = be.clone();
            let waiting = tokio::spawn(async move { be2.assign(0, None, None).await });
            tokio::task::yield_now().await;
            assert_eq!(be.queued(), 1);
            be.servers()[1].set_admin(0, admin::FMAINT);
            be.dispatch();
            let got = waiting.await.expect("join").expect("granted");
            assert_eq!(got.slot.server().cfg.id, 2);
        });
    }

    #[test]
    fn backup_used_only_when_actives_are_down() {
        rt().block_on(async {
            let mut b = server(3, 0, 0);
            b.settings.backup = true;
            let be = backend(Algorithm::RoundRobin, vec![server(1, 0, 0), b]);
            let a = be.assign(0, None, None).await.expect("slot");
            assert_eq!(a.slot.server().cfg.id, 1);
            be.servers()[0].force_health(false);
            let a = be.assign(0, None, None).await.expect("slot");
            assert_eq!(a.slot.server().cfg.id, 3);
            be.servers()[1].set_admin(admin::FMAINT, 0);
            assert!(matches!(
                be.assign(0, None, None).await,
                Err(AssignError::NoServer)
            ));
        });
    }

    #[test]
    fn avoid_prefers_another_server() {
        rt().block_on(async {
            let be = backend(Algorithm::First, vec![server(1, 0, 0), server(2, 0, 0)]);
            let a = be.assign(0, Some(1), None).await.expect("slot");
            assert_eq!(a.slot.server().cfg.id, 2);
            be.servers()[1].set_admin(admin::FMAINT, 0);
            let a = be.assign(0, Some(1), None).await.expect("slot");
            assert_eq!(
                a.slot.server().cfg.id,
                1,
                "the avoided server is better than none"
            );
        });
    }
}
