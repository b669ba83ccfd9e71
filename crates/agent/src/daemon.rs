//! `rampart agent --home DIR`: the I/O shell around the session, spool and sources.
//! Enrolls when `etc/client.keys` has no key, tails every `<localfile>` (and stdin with
//! `--stdin`), spools each event on disk before sending, and walks the `<server>` list.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::io::BufReader;
use tokio::sync::mpsc;

use crate::config::{self, AgentConf, Server};
use crate::enroll::{self, Ask};
use crate::event::Event;
use crate::failover::{Attempts, Walk};
use crate::keys;
use crate::session::{self, Ended, Identity, Profile, Refused, Shared, Timing};
use crate::source::{self, stdin, Tailer};
use crate::spool::{self, DiskSpool, Spool, SpoolOptions};

/// How often appended events are made durable (a process kill keeps them anyway).
const SYNC_EVERY: Duration = Duration::from_secs(1);
const TAIL_EVERY: Duration = Duration::from_millis(250);

pub struct Options {
    pub home: PathBuf,
    /// Also read events from stdin; with no `<localfile>`, exit once stdin ended and every
    /// event was acknowledged.
    pub stdin: bool,
}

pub fn check(home: &Path) -> Result<AgentConf, config::ConfigErrors> {
    config::load(home)
}

/// `host:port`, bracketing IPv6 literals.
pub fn server_addr(s: &Server) -> String {
    if s.address.contains(':') && !s.address.starts_with('[') {
        format!("[{}]:{}", s.address, s.port)
    } else {
        format!("{}:{}", s.address, s.port)
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "rampart-agent".into())
}

fn os_name() -> String {
    let pretty = std::fs::read_to_string("/etc/os-release")
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("PRETTY_NAME="))
                .map(|v| v.trim_matches('"').to_string())
        });
    pretty.unwrap_or_else(|| std::env::consts::OS.to_string())
}

/// Refusals as an unknown agent, in a row, before enrolling again: one may come from a
/// worker whose copy of the registry lags.
const REFUSALS_BEFORE_ENROLLING: u32 = 3;

/// Enrolls until it works, `retry_interval` apart (as agent-auth retried by agentd).
async fn enroll_until_done(conf: &AgentConf, keys_path: &Path) -> anyhow::Result<Identity> {
    loop {
        match enroll_once(conf, keys_path).await {
            Ok(i) => return Ok(i),
            Err(EnrollFailure::Local(e)) => return Err(e),
            Err(EnrollFailure::Remote(wait)) => tokio::time::sleep(wait).await,
        }
    }
}

enum EnrollFailure {
    /// Cannot go on here (unreadable password file, unwritable key file).
    Local(anyhow::Error),
    /// The manager refused or was unreachable: try again after this long.
    Remote(Duration),
}

/// One enrollment attempt; the key is stored (0600) on success.
async fn enroll_once(conf: &AgentConf, keys_path: &Path) -> Result<Identity, EnrollFailure> {
    let e = &conf.enrollment;
    let host = conf.enrollment_address().to_string();
    let ask = Ask {
        name: e.agent_name.clone().unwrap_or_else(hostname),
        groups: e.groups.clone(),
        address: e.agent_address.clone(),
        password: enroll::read_password(&e.authorization_pass_path)
            .map_err(|e| EnrollFailure::Local(anyhow::anyhow!(e)))?,
        version: crate::VERSION_STRING.to_string(),
    };
    let wait = conf
        .client
        .servers
        .first()
        .map_or(Duration::from_secs(10), |s| s.retry_interval);
    tracing::info!("Requesting a key from server: {host}:{}", e.port);
    let attempt = async {
        let addr = enroll::resolve(&host, e.port).await?;
        enroll::enroll(addr, &ask, e.server_ca_path.as_deref()).await
    };
    match attempt.await {
        Ok((ident, ip)) => {
            keys::write(keys_path, &ident, &ip)
                .with_context(|| format!("cannot write {}", keys_path.display()))
                .map_err(EnrollFailure::Local)?;
            tracing::info!(
                "Valid key received: agent {:03} '{}'; stored in {}",
                ident.id,
                ident.name,
                keys_path.display()
            );
            Ok(ident)
        }
        Err(err) => {
            tracing::error!(
                "Enrollment with {host}:{} failed: {err}. Retrying in {}s.",
                e.port,
                wait.as_secs()
            );
            Err(EnrollFailure::Remote(wait))
        }
    }
}

/// Moves events from the sources into the spool, making them durable every second.
async fn ingest<S: Spool>(
    shared: Arc<Shared<S>>,
    mut files: mpsc::Receiver<Vec<Event>>,
    mut lines: mpsc::Receiver<Event>,
    lines_closed: Arc<tokio::sync::Notify>,
) {
    let mut sync = tokio::time::interval(SYNC_EVERY);
    let (mut files_open, mut lines_open) = (true, true);
    loop {
        let batch = tokio::select! {
            b = files.recv(), if files_open => match b {
                Some(b) => b,
                None => { files_open = false; continue }
            },
            l = lines.recv(), if lines_open => match l {
                Some(first) => {
                    let mut b = vec![first];
                    while b.len() < 1000 {
                        match lines.try_recv() {
                            Ok(e) => b.push(e),
                            Err(_) => break,
                        }
                    }
                    b
                }
                None => {
                    lines_open = false;
                    // Everything read from stdin is in the spool now.
                    lines_closed.notify_one();
                    continue
                }
            },
            _ = sync.tick() => {
                if let Err(e) = shared.spool().sync() {
                    tracing::error!("cannot sync the spool: {e}");
                }
                continue;
            }
            else => return,
        };
        let appended = shared.spool().append(batch);
        match appended {
            Ok(a) if a.dropped > 0 => tracing::warn!(
                "Agent buffer full (<client_buffer><queue_size>): dropped the {} oldest unacknowledged event(s).",
                a.dropped
            ),
            Ok(_) => {}
            Err(e) => tracing::error!("cannot append to the spool: {e}"),
        }
        shared.wake.notify_one();
    }
}

pub async fn run(opts: Options) -> anyhow::Result<()> {
    let home = &opts.home;
    let conf = config::load(home).map_err(|e| anyhow::anyhow!("{e}"))?;
    for w in &conf.warnings {
        tracing::warn!("{w}");
    }
    for dir in ["etc", "queue", "logs"] {
        std::fs::create_dir_all(home.join(dir))?;
    }
    let keys_path = home.join("etc").join("client.keys");
    let mut ident = match keys::read(&keys_path).map_err(|e| anyhow::anyhow!(e))? {
        Some(i) => i,
        None if conf.enrollment.enabled => enroll_until_done(&conf, &keys_path).await?,
        None => anyhow::bail!(
            "{} holds no key and <enrollment><enabled> is no: enroll this agent first",
            keys_path.display()
        ),
    };
    let spool_dir = home.join("queue").join("spool");
    let fresh = SpoolOptions {
        first_seq: spool::fresh_base(),
        ..SpoolOptions::default()
    };
    let spool = DiskSpool::open_with(&spool_dir, conf.buffer.queue_size, fresh)
        .with_context(|| format!("cannot open the spool in {}", spool_dir.display()))?;
    let shared = Arc::new(Shared::new(spool));
    {
        let sp = shared.spool();
        tracing::info!(
            "Agent {:03} '{}': {} event(s) waiting in the spool, next seq {}.",
            ident.id,
            ident.name,
            sp.pending(),
            sp.next_seq()
        );
    }

    // Sources.
    let positions = shared.spool().positions();
    let tailers: Vec<Tailer> = conf
        .localfiles
        .iter()
        .map(|lf| {
            let label = lf.location.display().to_string();
            let saved = positions.get(&label).copied();
            Tailer::new(lf.location.clone(), label, lf.only_future_events, saved)
        })
        .collect();
    let (files_tx, files_rx) = mpsc::channel(16);
    let (lines_tx, lines_rx) = mpsc::channel(4096);
    let stdin_only = opts.stdin && tailers.is_empty();
    let stdin_done = Arc::new(tokio::sync::Notify::new());
    if !tailers.is_empty() {
        tokio::spawn(source::run_tailers(tailers, TAIL_EVERY, files_tx));
    } else {
        drop(files_tx);
    }
    if opts.stdin {
        tokio::spawn(async move {
            stdin::read_lines(BufReader::new(tokio::io::stdin()), "stdin", lines_tx).await;
        });
    } else {
        drop(lines_tx);
    }
    tokio::spawn(ingest(
        shared.clone(),
        files_rx,
        lines_rx,
        stdin_done.clone(),
    ));

    // Reporting.
    let profile = Profile {
        version: crate::VERSION_STRING.to_string(),
        os: os_name(),
        labels: conf.labels.clone(),
        config_profile: conf.client.config_profile.clone(),
    };
    let timing = Timing {
        notify_time: conf.client.notify_time,
        time_reconnect: conf.client.time_reconnect,
        eps: if conf.buffer.disabled {
            0
        } else {
            conf.buffer.events_per_second
        },
        force_reconnect: conf.client.force_reconnect_interval,
    };
    let report = {
        let shared = shared.clone();
        let conf = conf.clone();
        async move {
            let mut walk = Walk::new(
                conf.client
                    .servers
                    .iter()
                    .map(|s| Attempts {
                        max_retries: s.max_retries,
                        retry_interval: s.retry_interval,
                    })
                    .collect(),
            );
            let mut refusals = 0;
            loop {
                let addr = server_addr(&conf.client.servers[walk.current()]);
                tracing::info!("Trying to connect to server ({addr}/tcp).");
                let started = tokio::time::Instant::now();
                let outcome = session::run(&shared, &ident, &profile, &timing, &addr).await;
                if outcome.is_ok() {
                    refusals = 0;
                }
                match outcome {
                    Ok(Ended::Asked(why)) => {
                        tracing::info!("Reconnecting as asked ({why}).");
                        walk.connected();
                    }
                    Ok(Ended::Lost(why)) => {
                        tracing::warn!("Lost connection with manager: {why}. Setting lock.");
                        walk.connected();
                        // A manager that drops every session at once is not hammered.
                        let s = &conf.client.servers[walk.current()];
                        if started.elapsed() < s.retry_interval {
                            tokio::time::sleep(s.retry_interval).await;
                        }
                    }
                    Err(Refused::Rejected(why))
                        if why.contains("not registered") && conf.enrollment.enabled =>
                    {
                        refusals += 1;
                        let mut wait = walk.failed();
                        if refusals >= REFUSALS_BEFORE_ENROLLING {
                            refusals = 0;
                            tracing::warn!(
                                "The manager does not know this agent ({why}); enrolling again."
                            );
                            match enroll_once(&conf, &keys_path).await {
                                Ok(i) => {
                                    ident = i;
                                    wait = Duration::ZERO;
                                }
                                Err(EnrollFailure::Local(e)) => tracing::error!("{e:#}"),
                                Err(EnrollFailure::Remote(_)) => {}
                            }
                        } else {
                            tracing::error!("Unable to connect to '{addr}/tcp': {why}.");
                        }
                        tokio::time::sleep(wait).await;
                        continue;
                    }
                    Err(e) => {
                        let wait = walk.failed();
                        tracing::error!(
                            "Unable to connect to '{addr}/tcp': {e}. Next attempt in {}s.",
                            wait.as_secs()
                        );
                        tokio::time::sleep(wait).await;
                    }
                }
            }
        }
    };
    let report = tokio::spawn(report);

    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    if stdin_only {
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
            _ = drained(&shared, &stdin_done) => tracing::info!("stdin ended and every event was acknowledged."),
        }
    } else {
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    }
    report.abort();
    shared.spool().sync().context("cannot sync the spool")?;
    Ok(())
}

/// Resolves once stdin has ended, its last line is spooled and everything is acknowledged.
async fn drained<S: Spool>(shared: &Shared<S>, stdin_done: &tokio::sync::Notify) {
    stdin_done.notified().await;
    while shared.spool().pending() > 0 {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
