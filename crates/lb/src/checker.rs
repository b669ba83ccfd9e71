//! Health-check tasks: one per checked server, a TCP connect every `inter`
//! (`fastinter`/`downinter` while changing or down), fed into the pure state machine.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use tokio::net::TcpStream;

use crate::engine::Engine;
use crate::health::{CheckResult, Transition};
use crate::state::{BackendRt, ServerRt};

const LOG_ALERT: u8 = 1;
const LOG_NOTICE: u8 = 5;
const LOG_EMERG: u8 = 0;

/// Starts the check task of `server` unless it has one or needs none.
pub fn ensure(engine: &Arc<Engine>, server: &Arc<ServerRt>) {
    if !server.cfg.settings.check || server.check_started.swap(true, Ordering::SeqCst) {
        return;
    }
    let engine = Arc::downgrade(engine);
    let server = Arc::downgrade(server);
    tokio::spawn(run(engine, server));
}

async fn run(engine: Weak<Engine>, server: Weak<ServerRt>) {
    // Spread the first checks so a restart does not probe every server at once.
    let first = server
        .upgrade()
        .map(|s| s.cfg.settings.inter.min(Duration::from_millis(1000)))
        .unwrap_or_default();
    tokio::time::sleep(jitter(first)).await;
    loop {
        let (Some(engine), Some(srv)) = (engine.upgrade(), server.upgrade()) else {
            return;
        };
        if srv.is_retired() || engine.is_stopping() {
            return;
        }
        if srv.in_maint() {
            // HAProxy pauses checks in maintenance; they restart from scratch on `ready`.
            let inter = srv.cfg.settings.inter;
            drop((engine, srv));
            tokio::time::sleep(inter).await;
            continue;
        }
        let be = engine.current().backend(&srv.backend_name).cloned();
        let limit = check_timeout(&srv, be.as_deref());
        let target = check_target(&srv);
        let started = Instant::now();
        let result = probe(target, limit).await;
        let took = started.elapsed();
        let transition = srv.record_check(result.clone(), took);
        if let Some(be) = &be {
            report(be, &srv, transition, &result, took);
        }
        let next = srv.health().next_interval();
        drop((engine, srv, be));
        tokio::time::sleep(next).await;
    }
}

fn jitter(max: Duration) -> Duration {
    let nanos = Instant::now().elapsed().subsec_nanos() as u64
        ^ std::process::id() as u64
        ^ (std::ptr::addr_of!(max) as u64);
    let ms = max.as_millis() as u64;
    if ms == 0 {
        Duration::ZERO
    } else {
        Duration::from_millis(crate::balance::mix(nanos) % ms)
    }
}

fn check_target(srv: &ServerRt) -> SocketAddr {
    let mut addr = srv.addr();
    if let Some(p) = srv.cfg.settings.check_port {
        addr.set_port(p);
    }
    addr
}

/// HAProxy: with `timeout check`, connecting may take min(`timeout connect`, `inter`);
/// without it, `inter` bounds the whole check.
pub fn check_timeout(srv: &ServerRt, be: Option<&BackendRt>) -> Duration {
    let inter = srv.cfg.settings.inter;
    let t = be.map(|b| b.cfg.timeouts).unwrap_or_default();
    match t.check {
        Some(_) => t.connect.unwrap_or(inter).min(inter),
        None => inter,
    }
}

async fn probe(addr: SocketAddr, limit: Duration) -> CheckResult {
    match tokio::time::timeout(limit, TcpStream::connect(addr)).await {
        Ok(Ok(_)) => CheckResult::L4Ok,
        Ok(Err(e)) => CheckResult::L4Con(os_reason(&e)),
        Err(_) => CheckResult::L4Tout,
    }
}

/// The OS error text without Rust's " (os error N)" suffix, as HAProxy prints it.
fn os_reason(e: &std::io::Error) -> String {
    let s = e.to_string();
    match s.find(" (os error") {
        Some(at) => s[..at].to_string(),
        None => s,
    }
}

fn report(
    be: &Arc<BackendRt>,
    srv: &Arc<ServerRt>,
    t: Transition,
    result: &CheckResult,
    took: Duration,
) {
    let line = match t {
        Transition::None => return,
        Transition::WentDown => {
            let requeued = be.redistribute(srv);
            be.mark_changed();
            format!(
                "Server {}/{} is DOWN, reason: {}, check duration: {}ms. {}",
                be.name(),
                srv.name(),
                result.reason(),
                took.as_millis(),
                servers_left(be, srv, requeued)
            )
        }
        Transition::WentUp => {
            be.dispatch();
            be.mark_changed();
            format!(
                "Server {}/{} is UP, reason: {}, check duration: {}ms. {}",
                be.name(),
                srv.name(),
                result.reason(),
                took.as_millis(),
                servers_online(be)
            )
        }
    };
    announce(be, &line, t);
}

/// HAProxy's tail of a "server went down" line.
pub fn servers_left(be: &BackendRt, srv: &ServerRt, requeued: usize) -> String {
    let (act, bck) = be.usable_counts();
    format!(
        "{act} active and {bck} backup servers left. {} sessions active, {requeued} requeued, {} remaining in queue.",
        srv.cur.load(Ordering::Relaxed),
        srv.queued()
    )
}

/// HAProxy's tail of a "server came up" line.
pub fn servers_online(be: &BackendRt) -> String {
    let (act, bck) = be.usable_counts();
    format!(
        "{act} active and {bck} backup servers online. 0 sessions requeued, {} total in queue.",
        be.queued()
    )
}

/// Sends a server state change to stderr and to the backend's log targets (which are
/// the global ones with `log global`), as HAProxy does.
pub fn announce(be: &BackendRt, line: &str, t: Transition) {
    let level = if t == Transition::WentDown {
        LOG_ALERT
    } else {
        LOG_NOTICE
    };
    tracing::warn!("{line}");
    be.logger.send(level, line);
    if t == Transition::WentDown && be.usable_counts() == (0, 0) {
        let msg = format!("backend {} has no server available!", be.name());
        tracing::error!("{msg}");
        be.logger.send(LOG_EMERG, &msg);
    }
}
