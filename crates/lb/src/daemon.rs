//! The `rampart lb` process: check mode, start-up, signals, pidfile, and the binary
//! upgrade handshake (`-x SOCKET` to take the old process's listeners, `-sf PID…` to
//! ask it to finish its sessions and leave), mirroring HAProxy's command line.

use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use tokio::signal::unix::{signal, SignalKind};

use crate::config::{self, Config};
use crate::engine::{Engine, StartOptions};
use crate::fdpass;
use crate::runtime_api;

#[derive(Debug, Clone, Default)]
pub struct LbArgs {
    pub files: Vec<PathBuf>,
    /// `-c`: validate and exit.
    pub check_only: bool,
    /// `-x SOCKET`: take listening sockets from the process serving this runtime socket.
    pub fd_socket: Option<PathBuf>,
    /// `-sf PID…`: soft-stop these processes once listening.
    pub soft_stop: Vec<i32>,
    /// `-st PID…`: terminate these processes once listening.
    pub hard_stop: Vec<i32>,
    /// `-p FILE`: write the pid here (overrides `pidfile`).
    pub pidfile: Option<PathBuf>,
    /// `-D`: go to the background (as `daemon` in `global`).
    pub daemon: bool,
    /// `-q`: do not print warnings at start-up.
    pub quiet: bool,
    /// Run once the engine listens, inside its control runtime (may spawn tasks): how the
    /// binary attaches services such as the Data Plane API. An error stops start-up.
    pub on_start: Option<StartHook>,
}

/// See [`LbArgs::on_start`].
#[derive(Clone)]
pub struct StartHook(pub Arc<dyn Fn(Arc<Engine>) -> HookFuture + Send + Sync>);

pub type HookFuture =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), String>> + Send>>;

impl std::fmt::Debug for StartHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StartHook")
    }
}

/// Runs `rampart lb`; returns the process exit code.
pub fn main(args: LbArgs) -> i32 {
    let loaded = config::load_files(&args.files);
    if args.check_only {
        let (report, code) = config::check_report(&loaded, &args.files);
        print!("{report}");
        return code;
    }
    let cfg = match loaded {
        Ok(cfg) => cfg,
        Err(e) => {
            eprintln!("{e}");
            eprintln!("[ALERT] config : Fatal errors found in configuration.");
            return 1;
        }
    };
    if !args.quiet {
        for w in &cfg.warnings {
            eprintln!("{w}");
        }
        let (maxconn, maxpipes) = crate::engine::fd_budget(cfg.global.maxconn);
        if cfg.global.maxconn as usize > maxconn {
            eprintln!(
                "[WARNING] global maxconn {} lowered to {maxconn} by the open-file limit ({}); raise 'ulimit -n' to serve more.",
                cfg.global.maxconn,
                crate::engine::raise_nofile()
            );
        }
        if maxpipes == 0 {
            eprintln!("[WARNING] no file descriptors left for splice pipes: forwarding falls back to buffered copies.");
        }
    }
    let inherited = match &args.fd_socket {
        Some(path) => match take_listeners(path) {
            Ok(l) => l,
            Err(e) => {
                // HAProxy goes on binding fresh sockets when the old process cannot help.
                eprintln!("[WARNING] Failed to get the sockets from the old process via '{}': {e}; binding new sockets.", path.display());
                HashMap::new()
            }
        },
        None => HashMap::new(),
    };
    if args.daemon || cfg.global.daemon {
        if let Err(e) = nix::unistd::daemon(true, false) {
            eprintln!("[ALERT] cannot go to the background: {e}");
            return 1;
        }
    }
    // Read while single-threaded: the local UTC offset cannot be read safely later.
    let _ = crate::log::local_offset();
    let threads = cfg.global.nbthread.unwrap_or_else(default_threads).max(1);
    // HAProxy's threading model: each worker thread runs its own event loop with its
    // own copy of every listener; the main thread runs signals, checks and the runtime
    // API. No session ever moves between threads.
    let workers = match start_workers(threads) {
        Ok(w) => w,
        Err(e) => {
            eprintln!("[ALERT] cannot start worker threads: {e}");
            return 1;
        }
    };
    let control = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("[ALERT] cannot start the runtime: {e}");
            return 1;
        }
    };
    control.block_on(run(args, cfg, inherited, workers))
}

/// Starts `n` threads, each driving a single-threaded runtime until the process exits.
fn start_workers(n: usize) -> std::io::Result<Vec<tokio::runtime::Handle>> {
    (0..n)
        .map(|i| {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let handle = rt.handle().clone();
            std::thread::Builder::new()
                .name(format!("rampart-lb-{i}"))
                .spawn(move || rt.block_on(std::future::pending::<()>()))?;
            Ok(handle)
        })
        .collect()
}

fn default_threads() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

type Inherited = HashMap<std::net::SocketAddr, Vec<std::net::TcpListener>>;

/// Every listening socket of the old process, grouped by address (one per thread).
fn take_listeners(path: &std::path::Path) -> std::io::Result<Inherited> {
    let mut out: Inherited = HashMap::new();
    for p in fdpass::fetch_listeners(path, Duration::from_secs(10))? {
        let addr = p.addr;
        out.entry(addr)
            .or_default()
            .push(fdpass::into_tcp_listener(p)?);
    }
    Ok(out)
}

async fn run(
    args: LbArgs,
    cfg: Config,
    inherited: Inherited,
    workers: Vec<tokio::runtime::Handle>,
) -> i32 {
    let sockets = cfg.global.stats_sockets.clone();
    let stats_timeout = cfg.global.stats_timeout;
    let pidfile = args.pidfile.clone().or(cfg.global.pidfile.clone());
    let engine =
        match Engine::start(args.files.clone(), cfg, StartOptions { inherited, workers }).await {
            Ok(e) => e,
            Err(e) => {
                eprintln!("{e}");
                return 1;
            }
        };
    for s in &sockets {
        if let Err(e) = runtime_api::serve(engine.clone(), s, stats_timeout) {
            eprintln!("[ALERT] Starting frontend GLOBAL: {e} ({})", s.loc);
            return 1;
        }
    }
    if let Some(hook) = &args.on_start {
        if let Err(e) = (hook.0)(engine.clone()).await {
            eprintln!("[ALERT] {e}");
            return 1;
        }
    }
    if let Some(p) = &pidfile {
        if let Err(e) = write_pidfile(p) {
            eprintln!("[ALERT] cannot create pidfile {}: {e}", p.display());
            return 1;
        }
    }
    for pid in &args.soft_stop {
        let _ = kill(Pid::from_raw(*pid), Signal::SIGUSR1);
    }
    for pid in &args.hard_stop {
        let _ = kill(Pid::from_raw(*pid), Signal::SIGTERM);
    }
    tracing::info!(
        "rampart lb {} started, pid {}",
        env!("CARGO_PKG_VERSION"),
        std::process::id()
    );
    let code = signals(&engine).await;
    if let Some(p) = &pidfile {
        remove_own_pidfile(p);
    }
    code
}

async fn signals(engine: &Arc<Engine>) -> i32 {
    let (Ok(mut hup), Ok(mut usr2), Ok(mut usr1), Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::hangup()),
        signal(SignalKind::user_defined2()),
        signal(SignalKind::user_defined1()),
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        eprintln!("[ALERT] cannot install signal handlers");
        return 1;
    };
    let hard_after = engine.current().config.global.hard_stop_after;
    let mut soft_stop: Option<std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>> =
        None;
    loop {
        tokio::select! {
            _ = hup.recv() => { let _ = engine.reload().await; }
            _ = usr2.recv() => { let _ = engine.reload().await; }
            _ = usr1.recv(), if soft_stop.is_none() => {
                tracing::warn!("soft stop requested (SIGUSR1): finishing sessions");
                let e = engine.clone();
                soft_stop = Some(Box::pin(async move { e.soft_stop(hard_after).await }));
            }
            // A soft stop runs inside this loop so SIGTERM/SIGINT still stop at once.
            _ = async { if let Some(f) = soft_stop.as_mut() { f.await } }, if soft_stop.is_some() => {
                tracing::warn!("all sessions finished, exiting");
                return 0;
            }
            _ = term.recv() => { tracing::warn!("SIGTERM: stopping"); return 0; }
            _ = int.recv() => { tracing::warn!("SIGINT: stopping"); return 0; }
        }
    }
}

fn write_pidfile(p: &std::path::Path) -> std::io::Result<()> {
    let mut f = std::fs::File::create(p)?;
    writeln!(f, "{}", std::process::id())
}

/// Removes the pidfile only if it still names this process (a successor may own it).
fn remove_own_pidfile(p: &std::path::Path) {
    if let Ok(text) = std::fs::read_to_string(p) {
        if text.trim() == std::process::id().to_string() {
            let _ = std::fs::remove_file(p);
        }
    }
}
