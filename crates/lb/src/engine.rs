//! The running load balancer: the current generation of frontends and backends,
//! listeners, reloads, and the process-wide counters the runtime API reports.
//!
//! A reload parses and validates first, then swaps the generation atomically; listeners
//! whose address stays are kept open (their accept loop simply starts handing sessions to
//! the new frontend), new ones are opened before the swap, removed ones closed after it.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use arc_swap::ArcSwap;
use tokio::net::TcpListener;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinHandle;

use crate::checker;
use crate::config::{self, Bind, Config, ConfigError, Frontend};
use crate::log::Logger;
use crate::session::{self, Permits};
use crate::state::{lock, BackendRt, Counters, ServerRt};

/// A `maxconn`: a semaphore that keeps counting the sessions it admitted across reloads
/// and is resized, not replaced, when the configured value changes.
pub struct Limit {
    sem: Arc<Semaphore>,
    max: std::sync::atomic::AtomicUsize,
}

impl Limit {
    pub fn new(max: usize) -> Arc<Limit> {
        Arc::new(Limit {
            sem: Arc::new(Semaphore::new(max)),
            max: std::sync::atomic::AtomicUsize::new(max),
        })
    }

    pub fn resize(&self, max: usize) {
        let old = self.max.swap(max, Ordering::SeqCst);
        if max > old {
            self.sem.add_permits(max - old);
        } else if max < old {
            // Only free permits can be withdrawn now; sessions above the new limit finish
            // normally and the excess permits they hold are withdrawn as they come back.
            let mut owed = old - max;
            owed -= self.sem.forget_permits(owed);
            if owed > 0 {
                let sem = self.sem.clone();
                tokio::spawn(async move {
                    if let Ok(p) = sem.acquire_many_owned(owed as u32).await {
                        p.forget();
                    }
                });
            }
        }
    }

    pub async fn acquire(&self) -> Option<OwnedSemaphorePermit> {
        self.sem.clone().acquire_owned().await.ok()
    }

    pub fn max(&self) -> usize {
        self.max.load(Ordering::SeqCst)
    }
}

pub struct FrontendRt {
    pub cfg: Frontend,
    pub backend: Option<Arc<BackendRt>>,
    /// `maxconn` of the frontend: the accept loop waits for a permit before accepting.
    pub slots: Arc<Limit>,
    /// Live sessions and counters survive reloads (shared with the frontend it replaces).
    pub cur: Arc<AtomicU32>,
    pub counters: Arc<Counters>,
    pub logger: Logger,
}

/// One configuration's worth of runtime objects.
pub struct Generation {
    pub number: u64,
    pub config: Arc<Config>,
    pub frontends: Vec<Arc<FrontendRt>>,
    pub backends: Vec<Arc<BackendRt>>,
}

impl Generation {
    pub fn backend(&self, name: &str) -> Option<&Arc<BackendRt>> {
        self.backends.iter().find(|b| b.name() == name)
    }

    pub fn frontend(&self, name: &str) -> Option<&Arc<FrontendRt>> {
        self.frontends.iter().find(|f| f.cfg.name == name)
    }
}

/// A proxied session as `show sess` lists it. Holds references, never copies of names.
pub struct SessionEntry {
    pub id: u64,
    pub client: SocketAddr,
    pub frontend: Arc<FrontendRt>,
    pub started: Instant,
    server: OnceLock<Arc<ServerRt>>,
    registry: Arc<Sessions>,
}

impl SessionEntry {
    pub fn set_server(&self, server: &Arc<ServerRt>) {
        let _ = self.server.set(server.clone());
    }

    pub fn server(&self) -> Option<&Arc<ServerRt>> {
        self.server.get()
    }
}

impl Drop for SessionEntry {
    fn drop(&mut self) {
        lock(self.registry.shard(self.id)).remove(&self.id);
        self.registry.active.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Shards of the session list: a session touches one shard at start and end, never per
/// byte, and threads accepting at once rarely meet on the same lock.
const SESSION_SHARDS: usize = 16;

/// Live sessions.
#[derive(Default)]
pub struct Sessions {
    shards: [Mutex<HashMap<u64, std::sync::Weak<SessionEntry>>>; SESSION_SHARDS],
    next: AtomicU64,
    active: AtomicU32,
}

impl Sessions {
    fn shard(&self, id: u64) -> &Mutex<HashMap<u64, std::sync::Weak<SessionEntry>>> {
        &self.shards[(id % SESSION_SHARDS as u64) as usize]
    }

    pub fn register(
        self: &Arc<Self>,
        client: SocketAddr,
        frontend: &Arc<FrontendRt>,
    ) -> Arc<SessionEntry> {
        let id = self.next.fetch_add(1, Ordering::Relaxed) + 1;
        let e = Arc::new(SessionEntry {
            id,
            client,
            frontend: frontend.clone(),
            started: Instant::now(),
            server: OnceLock::new(),
            registry: self.clone(),
        });
        lock(self.shard(id)).insert(id, Arc::downgrade(&e));
        self.active.fetch_add(1, Ordering::Relaxed);
        e
    }

    pub fn snapshot(&self) -> Vec<Arc<SessionEntry>> {
        let mut v: Vec<Arc<SessionEntry>> = self
            .shards
            .iter()
            .flat_map(|s| {
                lock(s)
                    .values()
                    .filter_map(|w| w.upgrade())
                    .collect::<Vec<_>>()
            })
            .collect();
        v.sort_by_key(|e| e.id);
        v
    }

    pub fn active(&self) -> u32 {
        self.active.load(Ordering::Relaxed)
    }
}

struct ListenerSlot {
    bind: Bind,
    frontend: ArcSwap<FrontendRt>,
}

/// One bind address: a `SO_REUSEPORT` socket per worker thread (the kernel spreads new
/// connections over them), each with its own accept loop on its worker, so a session is
/// accepted, proxied and closed on one thread, as HAProxy's threads do.
struct ListenerEntry {
    slot: Arc<ListenerSlot>,
    /// Duplicates of the sockets' descriptors, to hand them to a new process (`-x`).
    sockets: Vec<std::net::TcpListener>,
    tasks: Vec<JoinHandle<()>>,
}

impl ListenerEntry {
    /// Stops accepting and returns once every accept loop has ended, so the sockets are
    /// closed when this resolves (an abort alone only takes effect at the loop's next
    /// poll, on its own thread).
    async fn close(self) {
        for t in &self.tasks {
            t.abort();
        }
        drop(self.sockets);
        for t in self.tasks {
            let _ = t.await;
        }
    }
}

/// How the engine was started, beyond the configuration files.
#[derive(Default)]
pub struct StartOptions {
    /// Listening sockets inherited from an older process (`-x`), by address.
    pub inherited: HashMap<SocketAddr, Vec<std::net::TcpListener>>,
    /// Worker runtimes (one per thread) that accept and carry sessions. Empty: the
    /// current runtime does, with one accept loop per worker of it.
    pub workers: Vec<tokio::runtime::Handle>,
}

pub struct Engine {
    files: Vec<PathBuf>,
    gen: ArcSwap<Generation>,
    listeners: Mutex<HashMap<SocketAddr, ListenerEntry>>,
    inherited: Mutex<HashMap<SocketAddr, Vec<std::net::TcpListener>>>,
    workers: Vec<tokio::runtime::Handle>,
    /// Live sessions per worker, to hand new ones to a less busy thread.
    worker_load: Vec<AtomicU32>,
    /// Process-wide `maxconn`, resized on reload.
    global_slots: Arc<Limit>,
    pub cum_conns: AtomicU64,
    pub sessions: Arc<Sessions>,
    pub started: Instant,
    pub started_wall: SystemTime,
    pub logger: ArcSwap<Logger>,
    reload_lock: tokio::sync::Mutex<()>,
    stopping: AtomicBool,
    accept_errors: Mutex<Option<Instant>>,
}

#[derive(Debug)]
pub enum ReloadError {
    Config(ConfigError),
    Bind(String),
}

impl std::fmt::Display for ReloadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReloadError::Config(e) => write!(f, "{e}"),
            ReloadError::Bind(e) => write!(f, "[ALERT] {e}"),
        }
    }
}

impl Engine {
    /// Builds the first generation and opens every listener. Must run inside a runtime.
    pub async fn start(
        files: Vec<PathBuf>,
        config: Config,
        opts: StartOptions,
    ) -> Result<Arc<Engine>, ReloadError> {
        let logger = Logger::new(&config.global.logs, &config.global.log_tag);
        let engine = Arc::new(Engine {
            files,
            gen: ArcSwap::from_pointee(Generation {
                number: 0,
                config: Arc::new(Config::default()),
                frontends: Vec::new(),
                backends: Vec::new(),
            }),
            listeners: Mutex::new(HashMap::new()),
            inherited: Mutex::new(opts.inherited),
            worker_load: opts.workers.iter().map(|_| AtomicU32::new(0)).collect(),
            workers: opts.workers,
            global_slots: Limit::new(0),
            cum_conns: AtomicU64::new(0),
            sessions: Arc::new(Sessions::default()),
            started: Instant::now(),
            started_wall: SystemTime::now(),
            logger: ArcSwap::from_pointee(logger),
            reload_lock: tokio::sync::Mutex::new(()),
            stopping: AtomicBool::new(false),
            accept_errors: Mutex::new(None),
        });
        let guard = engine.reload_lock.lock().await;
        engine.apply_locked(config)?;
        drop(guard);
        Ok(engine)
    }

    pub fn current(&self) -> Arc<Generation> {
        self.gen.load_full()
    }

    pub fn global_maxconn(&self) -> usize {
        self.global_slots.max()
    }

    /// Re-reads the files; a configuration with alerts never replaces the running one.
    pub async fn reload(self: &Arc<Self>) -> Result<Vec<config::Diagnostic>, ReloadError> {
        // Parse under the lock too, so an older parse can never be applied after a newer.
        let _g = self.reload_lock.lock().await;
        let files = self.files.clone();
        let parsed = tokio::task::spawn_blocking(move || config::load_files(&files))
            .await
            .map_err(|e| ReloadError::Bind(format!("reload task failed: {e}")))?;
        let cfg = match parsed {
            Ok(cfg) => cfg,
            Err(e) => {
                tracing::error!("reload refused, keeping the running configuration:\n{e}");
                return Err(ReloadError::Config(e));
            }
        };
        let warnings = cfg.warnings.clone();
        match self.apply_locked(cfg) {
            Ok(removed) => {
                for entry in removed {
                    entry.close().await;
                }
            }
            Err(e) => {
                tracing::error!("reload refused, keeping the running configuration: {e}");
                return Err(e);
            }
        }
        tracing::info!(
            "reloaded configuration from {} (generation {})",
            self.files_text(),
            self.current().number
        );
        Ok(warnings)
    }

    fn files_text(&self) -> String {
        let v: Vec<String> = self.files.iter().map(|p| p.display().to_string()).collect();
        v.join(", ")
    }

    /// Swaps in `cfg`: builds runtime objects reusing the old ones where unchanged, opens
    /// new listeners (failing before anything changes), then swaps and closes the rest.
    /// Callers hold `reload_lock`.
    /// Returns the listeners the new configuration dropped, for the caller to close.
    fn apply_locked(self: &Arc<Self>, cfg: Config) -> Result<Vec<ListenerEntry>, ReloadError> {
        let old = self.current();
        let cfg = Arc::new(cfg);
        // Bind what is new before touching anything live: a failed bind must leave the
        // running configuration exactly as it was.
        let mut opened = HashMap::new();
        {
            let existing = lock(&self.listeners);
            for bind in cfg.frontends.iter().flat_map(|f| f.binds.iter()) {
                if existing.contains_key(&bind.addr) || opened.contains_key(&bind.addr) {
                    continue;
                }
                match self.open_sockets(bind.addr) {
                    Ok(socks) => {
                        opened.insert(bind.addr, socks);
                    }
                    Err(e) => {
                        return Err(ReloadError::Bind(format!(
                            "Starting frontend: cannot bind socket [{}] ({}): {e}",
                            bind.addr, bind.loc
                        )))
                    }
                }
            }
        }
        // Building the generation resizes limits and hands queues over: only now.
        let new_gen = Arc::new(build_generation(&cfg, &old));
        let wanted: HashMap<SocketAddr, (Bind, Arc<FrontendRt>)> = new_gen
            .frontends
            .iter()
            .flat_map(|fe| {
                fe.cfg
                    .binds
                    .iter()
                    .map(move |b| (b.addr, (b.clone(), fe.clone())))
            })
            .collect();

        let (maxconn, maxpipes) = fd_budget(cfg.global.maxconn);
        self.global_slots.resize(maxconn);
        crate::pipes::set_max_pipes(maxpipes);
        self.logger
            .store(Arc::new(Logger::new(&cfg.global.logs, &cfg.global.log_tag)));
        self.gen.store(new_gen.clone());

        let mut listeners = lock(&self.listeners);
        let gone: Vec<SocketAddr> = listeners
            .keys()
            .filter(|a| !wanted.contains_key(a))
            .copied()
            .collect();
        let removed: Vec<ListenerEntry> = gone
            .iter()
            .filter_map(|a| {
                tracing::info!("closing listener {a}");
                listeners.remove(a)
            })
            .collect();
        for (addr, entry) in listeners.iter() {
            if let Some((_, fe)) = wanted.get(addr) {
                entry.slot.frontend.store(fe.clone());
            }
        }
        for (addr, sockets) in opened {
            let Some((bind, fe)) = wanted.get(&addr) else {
                continue;
            };
            let slot = Arc::new(ListenerSlot {
                bind: bind.clone(),
                frontend: ArcSwap::new(fe.clone()),
            });
            let entry = self.start_accepting(slot, sockets);
            listeners.insert(addr, entry);
        }
        drop(listeners);

        retire_removed(&old, &new_gen);
        for be in &new_gen.backends {
            for s in be.servers().iter() {
                checker::ensure(self, s);
            }
        }
        // Sockets inherited but not wanted any more are closed here.
        lock(&self.inherited).clear();
        Ok(removed)
    }

    /// Listening sockets with their addresses, for `_getsocks`.
    pub fn listening_sockets(&self) -> Vec<(SocketAddr, String, std::os::fd::OwnedFd)> {
        let listeners = lock(&self.listeners);
        let mut out = Vec::new();
        for (addr, e) in listeners.iter() {
            let tag = format!(
                "{}/{}",
                e.slot.frontend.load().cfg.name,
                e.slot.bind.name.clone().unwrap_or_default()
            );
            for s in &e.sockets {
                if let Ok(fd) = std::os::fd::AsFd::as_fd(s).try_clone_to_owned() {
                    out.push((*addr, tag.clone(), fd));
                }
            }
        }
        out
    }

    /// Bind addresses being listened on.
    pub fn listener_count(&self) -> usize {
        lock(&self.listeners).len()
    }

    /// Threads that accept and carry sessions.
    pub fn nbthread(&self) -> usize {
        if self.workers.is_empty() {
            tokio::runtime::Handle::try_current().map_or(1, |h| h.metrics().num_workers())
        } else {
            self.workers.len()
        }
    }

    /// One socket per worker: inherited ones first (every inherited one is served, even
    /// beyond the worker count, since closing a SO_REUSEPORT socket drops its queue),
    /// then new ones bound alongside them.
    fn open_sockets(&self, addr: SocketAddr) -> std::io::Result<Vec<std::net::TcpListener>> {
        let mut socks = lock(&self.inherited).remove(&addr).unwrap_or_default();
        while socks.len() < self.nbthread().max(1) {
            socks.push(bind_listener(addr)?);
        }
        Ok(socks)
    }

    fn start_accepting(
        self: &Arc<Self>,
        slot: Arc<ListenerSlot>,
        sockets: Vec<std::net::TcpListener>,
    ) -> ListenerEntry {
        let mut dups = Vec::new();
        let mut tasks = Vec::new();
        for (i, sock) in sockets.into_iter().enumerate() {
            match sock.try_clone() {
                Ok(d) => dups.push(d),
                Err(e) => tracing::warn!("cannot keep a descriptor of {}: {e}", slot.bind.addr),
            }
            let (engine, slot) = (self.clone(), slot.clone());
            let me = i % self.workers.len().max(1);
            let run = async move {
                match from_std(sock) {
                    Ok(l) => accept_loop(engine, slot, l, me).await,
                    Err(e) => tracing::error!("listener {}: {e}", slot.bind.addr),
                }
            };
            tasks.push(match self.workers.get(i % self.workers.len().max(1)) {
                Some(h) => h.spawn(run),
                None => tokio::spawn(run),
            });
        }
        ListenerEntry {
            slot,
            sockets: dups,
            tasks,
        }
    }

    /// HAProxy's soft stop: stop accepting, let sessions finish, then resolve.
    pub async fn soft_stop(self: &Arc<Self>, hard_after: Option<Duration>) {
        self.stopping.store(true, Ordering::SeqCst);
        let all: Vec<ListenerEntry> = lock(&self.listeners).drain().map(|(_, e)| e).collect();
        for e in all {
            e.close().await;
        }
        tracing::warn!(
            "Stopping frontends; {} session(s) left to finish",
            self.sessions.active()
        );
        let wait = async {
            while self.sessions.active() > 0 {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        };
        match hard_after {
            Some(t) => {
                let _ = tokio::time::timeout(t, wait).await;
            }
            None => wait.await,
        }
    }

    pub fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::SeqCst)
    }

    /// The worker a session accepted on worker `me` should run on: `me`, unless another
    /// has at least two fewer live sessions. The kernel's SO_REUSEPORT hash spreads
    /// connections evenly only on average; a few long-lived ones can land on one thread.
    fn pick_worker(&self, me: usize) -> usize {
        let loads: Vec<u32> = self
            .worker_load
            .iter()
            .map(|l| l.load(Ordering::Relaxed))
            .collect();
        pick_worker(&loads, me)
    }

    /// Accept failures (EMFILE…) are logged at most once per second.
    pub fn note_accept_error(&self, e: &std::io::Error) {
        let mut last = lock(&self.accept_errors);
        if last.is_none_or(|t| t.elapsed() >= Duration::from_secs(1)) {
            *last = Some(Instant::now());
            tracing::error!("accept() failed: {e}; pausing this listener briefly");
        }
    }
}

/// Stays on `me` unless the least loaded worker has fewer sessions by at least an
/// eighth of ours (at least one): few long-lived flows are split evenly, while many
/// short sessions are not bounced between threads over a difference of one or two.
pub fn pick_worker(loads: &[u32], me: usize) -> usize {
    let mine = loads.get(me).copied().unwrap_or(0);
    (0..loads.len())
        .min_by_key(|&w| loads[w])
        .filter(|&w| loads[w] + (mine / 8).max(1) <= mine)
        .unwrap_or(me)
}

/// Splits the open-file limit between sessions (two descriptors each) and splice pipes
/// (two each, at most one per four sessions, as HAProxy's `maxpipes`). Without a
/// configured `maxconn`, a twentieth of the descriptors is kept for pipes first; with
/// one, pipes get what the sessions leave, so `maxconn` is always honoured.
pub fn fd_budget(configured: u32) -> (usize, usize) {
    let usable = raise_nofile().saturating_sub(100) as usize;
    let maxconn = if configured == 0 {
        (usable - usable / 20) / 2
    } else {
        // Beyond the descriptor limit accept() would fail with EMFILE instead of queueing.
        (configured as usize).min(usable / 2)
    };
    let pipes = (usable.saturating_sub(2 * maxconn) / 2).min(maxconn / 4);
    (maxconn.max(1), pipes)
}

/// Raises the soft open-file limit to the hard one, as HAProxy does; returns it.
pub fn raise_nofile() -> u64 {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok((soft, hard)) => {
            if soft < hard && setrlimit(Resource::RLIMIT_NOFILE, hard, hard).is_ok() {
                hard
            } else {
                soft
            }
        }
        Err(_) => 1024,
    }
}

fn build_generation(cfg: &Arc<Config>, old: &Generation) -> Generation {
    let tag = &cfg.global.log_tag;
    let backends: Vec<Arc<BackendRt>> = cfg
        .backends
        .iter()
        .map(|b| match old.backend(&b.name) {
            Some(prev) if prev.cfg == *b => prev.clone(),
            prev => {
                let servers = b
                    .servers
                    .iter()
                    .map(|s| {
                        let before = prev.and_then(|p| p.server(&s.name));
                        match before {
                            Some(o) if o.cfg == *s => o,
                            Some(o) => ServerRt::succeed(s.clone(), &b.name, &o),
                            None => ServerRt::new(s.clone(), &b.name),
                        }
                    })
                    .collect::<Vec<_>>();
                let be = BackendRt::with_logger(b.clone(), servers, Logger::new(&b.logs, tag));
                // Servers added at runtime live until `del server`, across reloads; one
                // whose id the file now uses gets a fresh id.
                if let Some(p) = prev {
                    p.hand_over_to(&be);
                    for s in p.servers().iter() {
                        let in_file = p.cfg.servers.iter().any(|c| c.name == s.name());
                        if in_file || be.server(s.name()).is_some() {
                            continue;
                        }
                        let s = if be.servers().iter().any(|o| o.cfg.id == s.cfg.id) {
                            let mut cfg = s.cfg.clone();
                            cfg.id = be.next_server_id();
                            ServerRt::succeed(cfg, &b.name, s)
                        } else {
                            s.clone()
                        };
                        let _ = be.add_server(s);
                    }
                }
                be
            }
        })
        .collect();
    let frontends = cfg
        .frontends
        .iter()
        .map(|f| {
            let backend = f
                .default_backend
                .as_ref()
                .and_then(|n| backends.iter().find(|b| b.name() == n).cloned());
            let prev = old.frontend(&f.name);
            let slots = match prev {
                Some(p) => {
                    p.slots.resize(frontend_slots(f.maxconn));
                    p.slots.clone()
                }
                None => Limit::new(frontend_slots(f.maxconn)),
            };
            Arc::new(FrontendRt {
                backend,
                slots,
                cur: prev.map(|p| p.cur.clone()).unwrap_or_default(),
                counters: prev.map(|p| p.counters.clone()).unwrap_or_default(),
                logger: Logger::new(&f.logs, &cfg.global.log_tag),
                cfg: f.clone(),
            })
        })
        .collect();
    Generation {
        number: old.number + 1,
        config: cfg.clone(),
        frontends,
        backends,
    }
}

fn frontend_slots(maxconn: u32) -> usize {
    if maxconn == 0 {
        Semaphore::MAX_PERMITS
    } else {
        maxconn as usize
    }
}

/// Servers that did not survive into the new generation stop their checks.
fn retire_removed(old: &Generation, new: &Generation) {
    for be in &old.backends {
        for s in be.servers().iter() {
            let kept = new
                .backends
                .iter()
                .any(|nb| nb.servers().iter().any(|ns| Arc::ptr_eq(ns, s)));
            if !kept {
                s.retire();
            }
        }
    }
}

fn bind_listener(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let sock = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    sock.set_reuse_address(true)?;
    // As HAProxy: lets a new process bind while the old one still listens (-sf without -x).
    sock.set_reuse_port(true)?;
    if addr.is_ipv6() {
        sock.set_only_v6(true)?;
    }
    sock.set_nonblocking(true)?;
    sock.bind(&addr.into())?;
    sock.listen(1024)?;
    Ok(sock.into())
}

fn from_std(l: std::net::TcpListener) -> std::io::Result<TcpListener> {
    l.set_nonblocking(true)?;
    TcpListener::from_std(l)
}

async fn accept_loop(
    engine: Arc<Engine>,
    slot: Arc<ListenerSlot>,
    listener: TcpListener,
    me: usize,
) {
    loop {
        match listener.accept().await {
            Ok((sock, peer)) => {
                engine.cum_conns.fetch_add(1, Ordering::Relaxed);
                // At `maxconn` this loop stops accepting until a slot frees: the one
                // connection it holds waits here and later ones wait in the kernel's
                // backlog, as HAProxy pauses its listeners. Permits are taken only after
                // accepting, so a loop never sits on a permit its socket may not use.
                let fe = slot.frontend.load_full();
                let Some(fe_permit) = fe.slots.acquire().await else {
                    return;
                };
                let Some(global_permit) = engine.global_slots.acquire().await else {
                    return;
                };
                let permits = Permits {
                    frontend: fe_permit,
                    global: global_permit,
                };
                let fe = slot.frontend.load_full();
                let target = engine.pick_worker(me);
                // Counted now, not when the session starts on its thread, so a burst of
                // accepts sees the sessions it has just handed out.
                let load = WorkerLoad::enter(&engine, target);
                if target == me {
                    tokio::spawn(run_session(engine.clone(), fe, sock, peer, permits, load));
                    continue;
                }
                // Re-register the socket with the other thread's event loop.
                let Ok(std) = sock.into_std() else { continue };
                let engine2 = engine.clone();
                engine.workers[target].spawn(async move {
                    if let Ok(sock) = tokio::net::TcpStream::from_std(std) {
                        run_session(engine2, fe, sock, peer, permits, load).await;
                    }
                });
            }
            Err(e) => {
                engine.note_accept_error(&e);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

async fn run_session(
    engine: Arc<Engine>,
    fe: Arc<FrontendRt>,
    sock: tokio::net::TcpStream,
    peer: SocketAddr,
    permits: Permits,
    _load: WorkerLoad,
) {
    session::run(engine, fe, sock, peer, permits).await;
}

/// One session counted on a worker for as long as it lives (released even on panic).
struct WorkerLoad {
    engine: Arc<Engine>,
    worker: usize,
}

impl WorkerLoad {
    fn enter(engine: &Arc<Engine>, worker: usize) -> WorkerLoad {
        if let Some(l) = engine.worker_load.get(worker) {
            l.fetch_add(1, Ordering::Relaxed);
        }
        WorkerLoad {
            engine: engine.clone(),
            worker,
        }
    }
}

impl Drop for WorkerLoad {
    fn drop(&mut self) {
        if let Some(l) = self.engine.worker_load.get(self.worker) {
            l.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_move_only_to_a_less_busy_worker() {
        assert_eq!(pick_worker(&[0, 0], 0), 0);
        assert_eq!(pick_worker(&[1, 1], 0), 0);
        assert_eq!(pick_worker(&[1, 0], 0), 1);
        assert_eq!(pick_worker(&[5, 3, 1], 0), 2);
        assert_eq!(pick_worker(&[64, 60], 0), 0, "within an eighth: stay local");
        assert_eq!(pick_worker(&[64, 56], 0), 1);
        assert_eq!(pick_worker(&[], 0), 0, "no workers: the current runtime");
    }

    #[test]
    fn eight_streams_arriving_on_one_thread_end_up_split_evenly() {
        let mut loads = [0u32, 0];
        for _ in 0..8 {
            let w = pick_worker(&loads, 0);
            loads[w] += 1;
        }
        assert!(loads[0].abs_diff(loads[1]) <= 1, "{loads:?}");
    }
}
