//! One proxied TCP session: choose a server (queueing if needed), connect with retries
//! and redispatch, forward, then log in HAProxy's tcplog shape.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tokio::net::TcpStream;
use tokio::sync::OwnedSemaphorePermit;

use crate::balance::source_key;
use crate::config::{Algorithm, Mode, Redispatch};
use crate::engine::{Engine, FrontendRt, SessionEntry};
use crate::forward::{self, IdleTimeouts};
use crate::log::{format_connect, format_tcplog, SessionLog};
use crate::state::{AssignError, Assigned, BackendRt, Counters, ServerRt};

const LOG_INFO: u8 = 6;

/// Permits held for the whole session: the frontend's and the process's `maxconn`.
pub struct Permits {
    pub frontend: OwnedSemaphorePermit,
    pub global: OwnedSemaphorePermit,
}

/// What a session records for its log line: numbers and references only, so a session
/// that is not logged never formats or copies a name.
#[derive(Default)]
struct Trace {
    server: Option<Arc<ServerRt>>,
    tw_ms: Option<u64>,
    tc_ms: Option<u64>,
    bytes_in: u64,
    bytes_out: u64,
    termination: Option<[u8; 2]>,
    beconn: u32,
    srv_conn: u32,
    retries: u32,
    redispatched: bool,
    srv_queue: u32,
    backend_queue: u32,
}

pub async fn run(
    engine: Arc<Engine>,
    fe: Arc<FrontendRt>,
    client: TcpStream,
    peer: SocketAddr,
    permits: Permits,
) {
    let accepted_at = SystemTime::now();
    let t0 = Instant::now();
    let _ = client.set_nodelay(true);
    let entry = engine.sessions.register(peer, &fe);
    let fe_now = fe.cur.fetch_add(1, Ordering::Relaxed) + 1;
    Counters::add(&fe.counters.stot, 1);
    Counters::raise_max(&fe.counters.smax, fe_now);
    let actconn = engine.sessions.active();
    let logging = !fe.logger.is_empty();
    if logging && !fe.cfg.log_options.tcplog {
        let local = client.local_addr().unwrap_or(peer);
        let line = session_log(
            &fe,
            None,
            peer,
            accepted_at,
            &Trace::default(),
            0,
            (actconn, fe_now),
        );
        fe.logger
            .send(LOG_INFO, &format_connect(&line, local, fe.cfg.mode));
    }

    let mut trace = Trace::default();
    match &fe.backend {
        Some(be) => proxy(&fe, be, &client, peer, &entry, &mut trace).await,
        None => trace.termination = Some(*b"SC"),
    }

    Counters::add(&fe.counters.bytes_in, trace.bytes_in);
    Counters::add(&fe.counters.bytes_out, trace.bytes_out);
    fe.cur.fetch_sub(1, Ordering::Relaxed);
    drop(permits);
    let null = trace.bytes_in == 0 && fe.cfg.log_options.dontlognull;
    if logging && fe.cfg.log_options.tcplog && !null {
        let tt = t0.elapsed().as_millis() as u64;
        let line = session_log(
            &fe,
            fe.backend.as_deref(),
            peer,
            accepted_at,
            &trace,
            tt,
            (actconn, fe_now),
        );
        fe.logger
            .send(LOG_INFO, &format_tcplog(&line, fe.logger.offset()));
    }
}

fn session_log(
    fe: &FrontendRt,
    be: Option<&BackendRt>,
    client: SocketAddr,
    accept_time: SystemTime,
    t: &Trace,
    tt_ms: u64,
    (actconn, feconn): (u32, u32),
) -> SessionLog {
    SessionLog {
        client,
        accept_time,
        frontend: fe.cfg.name.clone(),
        backend: be.map_or_else(|| fe.cfg.name.clone(), |b| b.name().to_string()),
        server: t.server.as_ref().map(|s| s.name().to_string()),
        tw_ms: t.tw_ms,
        tc_ms: t.tc_ms,
        tt_ms,
        bytes_read: t.bytes_out,
        termination: t.termination.unwrap_or(*b"--"),
        actconn,
        feconn,
        beconn: t.beconn,
        srv_conn: t.srv_conn,
        retries: t.retries,
        redispatched: t.redispatched,
        srv_queue: t.srv_queue,
        backend_queue: t.backend_queue,
    }
}

/// Everything after the frontend accepted.
async fn proxy(
    fe: &FrontendRt,
    be: &Arc<BackendRt>,
    client: &TcpStream,
    peer: SocketAddr,
    entry: &SessionEntry,
    trace: &mut Trace,
) {
    let be_now = be.cur.fetch_add(1, Ordering::Relaxed) + 1;
    Counters::add(&be.counters.stot, 1);
    Counters::raise_max(&be.counters.smax, be_now);
    trace.beconn = be_now;
    let _be_cur = DecOnDrop(&be.cur);

    let t = &be.cfg.timeouts;
    let key = source_key(peer.ip());
    let queue_timeout = t.queue.or(t.connect);
    let Some((assigned, server, tc_ms)) = connect(be, key, queue_timeout, trace).await else {
        return;
    };
    let srv = assigned.slot.server().clone();
    entry.set_server(&srv);
    trace.tw_ms = Some(assigned.queued_for.as_millis() as u64);
    trace.tc_ms = Some(tc_ms);
    trace.srv_conn = srv.cur.load(Ordering::Relaxed);
    trace.srv_queue = assigned.srv_queue;
    trace.backend_queue = assigned.backend_queue;
    Counters::add(&srv.counters.stot, 1);

    let out = forward::forward(client, &server, idle_timeouts(fe, be)).await;
    trace.bytes_in = out.client_to_server;
    trace.bytes_out = out.server_to_client;
    trace.termination = Some(out.termination);
    match out.termination[0] {
        b'C' | b'c' => {
            Counters::add(&srv.counters.cli_abrt, 1);
            Counters::add(&be.counters.cli_abrt, 1);
        }
        b'S' | b's' => {
            Counters::add(&srv.counters.srv_abrt, 1);
            Counters::add(&be.counters.srv_abrt, 1);
        }
        _ => {}
    }
    for c in [&srv.counters, &be.counters] {
        Counters::add(&c.bytes_in, out.client_to_server);
        Counters::add(&c.bytes_out, out.server_to_client);
    }
    trace.server = Some(srv);
    drop(assigned);
}

/// Picks a server and connects, retrying `retries` times; a retry goes to another
/// server when HAProxy would redispatch it. Returns the connect time (`%Tc`) measured
/// from the first attempt.
async fn connect(
    be: &Arc<BackendRt>,
    key: u64,
    queue_timeout: Option<Duration>,
    trace: &mut Trace,
) -> Option<(Assigned, TcpStream, u64)> {
    let t = &be.cfg.timeouts;
    let mut assigned = assign(be, key, None, queue_timeout, trace).await?;
    let first_attempt = Instant::now();
    let mut retries = 0u32;
    loop {
        let srv = assigned.slot.server().clone();
        let attempt = match t.connect {
            Some(limit) => tokio::time::timeout(limit, connect_tcp(srv.addr())).await,
            None => Ok(connect_tcp(srv.addr()).await),
        };
        let timed_out = match attempt {
            Ok(Ok(stream)) => {
                return Some((assigned, stream, first_attempt.elapsed().as_millis() as u64));
            }
            Ok(Err(_)) => false,
            Err(_) => true,
        };
        if retries >= be.cfg.retries {
            // HAProxy counts a connection error once, when the session gives up.
            Counters::add(&srv.counters.econ, 1);
            Counters::add(&be.counters.econ, 1);
            trace.retries = retries;
            trace.termination = Some(if timed_out { *b"sC" } else { *b"SC" });
            trace.tw_ms = Some(assigned.queued_for.as_millis() as u64);
            trace.server = Some(srv);
            return None;
        }
        retries += 1;
        trace.retries = retries;
        if should_redispatch(be, &srv, retries) {
            drop(assigned);
            Counters::add(&srv.counters.wredis, 1);
            Counters::add(&be.counters.wredis, 1);
            trace.redispatched = true;
            assigned = assign(be, key, Some(srv.cfg.id), queue_timeout, trace).await?;
        } else {
            Counters::add(&srv.counters.wretr, 1);
            Counters::add(&be.counters.wretr, 1);
            if !timed_out {
                // HAProxy's turn-around delay before hitting a refusing server again.
                let pause = t
                    .connect
                    .unwrap_or(Duration::from_secs(1))
                    .min(Duration::from_secs(1));
                tokio::time::sleep(pause).await;
            }
        }
    }
}

/// A non-blocking connect whose outcome is read from the socket's readiness: a refused
/// or reset attempt reports error/hang-up there, so the `getsockopt(SO_ERROR)` that a
/// generic connect makes on every connection is only paid when it failed.
async fn connect_tcp(addr: SocketAddr) -> std::io::Result<TcpStream> {
    use socket2::{Domain, Protocol, Socket, Type};
    let sock = Socket::new(
        Domain::for_address(addr),
        Type::STREAM.nonblocking().cloexec(),
        Some(Protocol::TCP),
    )?;
    sock.set_tcp_nodelay(true)?;
    match sock.connect(&addr.into()) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
        Err(e) => return Err(e),
    }
    let stream = TcpStream::from_std(std::net::TcpStream::from(sock))?;
    let ready = stream.ready(tokio::io::Interest::WRITABLE).await?;
    if ready.is_error() || ready.is_write_closed() {
        let err = stream.take_error()?;
        return Err(err.unwrap_or_else(|| std::io::ErrorKind::ConnectionRefused.into()));
    }
    Ok(stream)
}

/// HAProxy (`option redispatch [interval]`) redispatches a retry when the server is no
/// longer usable, when the interval says so, or whenever the backend has more than one
/// usable active server and no hash-based algorithm to keep the session on its server.
fn should_redispatch(be: &BackendRt, srv: &ServerRt, retry: u32) -> bool {
    let Some(r) = be.cfg.redispatch else {
        return false;
    };
    let spread = be.cfg.algorithm != Algorithm::Source && be.usable_counts().0 > 1;
    !srv.usable() || spread || redispatch_now(Some(r), retry, be.cfg.retries)
}

async fn assign(
    be: &Arc<BackendRt>,
    key: u64,
    avoid: Option<u32>,
    queue_timeout: Option<Duration>,
    trace: &mut Trace,
) -> Option<Assigned> {
    match be.assign(key, avoid, queue_timeout).await {
        Ok(a) => Some(a),
        Err(e) => {
            trace.termination = Some(match e {
                AssignError::QueueTimeout => *b"sQ",
                AssignError::NoServer => *b"SC",
            });
            None
        }
    }
}

/// HAProxy: a positive interval redispatches on every Nth retry, a negative one on the
/// Nth retry before the last (-1: the last retry).
pub fn redispatch_now(r: Option<Redispatch>, retry: u32, retries: u32) -> bool {
    match r {
        None => false,
        Some(Redispatch { interval }) if interval > 0 => retry.is_multiple_of(interval as u32),
        Some(Redispatch { interval }) => {
            let every = i64::from(retries) + 1 + i64::from(interval);
            every > 0 && i64::from(retry) % every == 0
        }
    }
}

/// `timeout tunnel` replaces client and server timeouts once connected (TCP mode).
fn idle_timeouts(fe: &FrontendRt, be: &BackendRt) -> IdleTimeouts {
    let tunnel = be
        .cfg
        .timeouts
        .tunnel
        .filter(|_| be.cfg.mode == Mode::Tcp || fe.cfg.mode == Mode::Tcp);
    IdleTimeouts {
        client: tunnel.or(fe.cfg.timeouts.client),
        server: tunnel.or(be.cfg.timeouts.server),
        client_fin: fe.cfg.timeouts.client_fin,
        server_fin: be.cfg.timeouts.server_fin,
    }
}

struct DecOnDrop<'a>(&'a std::sync::atomic::AtomicU32);

impl Drop for DecOnDrop<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redispatch_interval_rules() {
        let r = |interval| Some(Redispatch { interval });
        assert!(!redispatch_now(None, 3, 3));
        // Default -1: only the last retry.
        assert!(!redispatch_now(r(-1), 1, 3));
        assert!(!redispatch_now(r(-1), 2, 3));
        assert!(redispatch_now(r(-1), 3, 3));
        // -2 with 3 retries: every second retry (HAProxy's modulo rule).
        assert!(redispatch_now(r(-2), 2, 3));
        assert!(!redispatch_now(r(-2), 1, 3));
        // 1: every retry; 2: every second one.
        assert!(redispatch_now(r(1), 1, 3));
        assert!(!redispatch_now(r(2), 1, 3));
        assert!(redispatch_now(r(2), 2, 3));
    }
}
