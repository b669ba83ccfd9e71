//! `rampart simulate`: many agents in one process, each with its own key, in-memory spool,
//! event generator and reporting session (the same session code as `rampart agent`), then a
//! summary of what was generated, sent, acknowledged, resent and lost.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::task::JoinSet;

use crate::enroll::{self, Ask};
use crate::event::Event;
use crate::failover::{Attempts, Walk};
use crate::keys;
use crate::session::{self, Identity, Profile, Shared, Timing};
use crate::source::now_ms;
use crate::spool::{fresh_base, MemSpool, Spool};

#[derive(Debug, Clone)]
pub struct Options {
    /// Enrollment address (`host:port`); without it every agent must have a key already.
    pub enroll: Option<String>,
    /// Reporting addresses, tried in order as `<server>` entries.
    pub servers: Vec<String>,
    pub agents: usize,
    /// Events per second per agent.
    pub rate: f64,
    /// Generate for this long…
    pub duration: Option<Duration>,
    /// …or this many events per agent.
    pub events: Option<u64>,
    /// Bytes per event.
    pub size: usize,
    /// Folder of `client.keys` (reused by later runs).
    pub keys_dir: PathBuf,
    pub password: Option<String>,
    pub prefix: String,
    pub groups: Vec<String>,
    pub notify_time: Duration,
    pub time_reconnect: Duration,
    pub retry_interval: Duration,
    pub max_retries: u32,
    /// Spool bound per agent, in events.
    pub queue_size: u64,
    /// After generating, how long to wait for the last acknowledgements.
    pub drain: Duration,
    /// New sessions started per second while ramping up.
    pub ramp: u32,
    /// Print progress (to stderr) every second.
    pub progress: bool,
}

#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Summary {
    pub agents: usize,
    pub connected: usize,
    pub peak_connected: usize,
    pub generated: u64,
    pub sent: u64,
    pub acknowledged: u64,
    pub resent: u64,
    pub dropped: u64,
    pub lost: u64,
    pub sessions: u64,
    pub seconds: f64,
    /// Acknowledged (durably stored) events per second over the generation phase and drain.
    pub durable_eps: f64,
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "rampart simulate: {} agents, {:.1}s",
            self.agents, self.seconds
        )?;
        writeln!(
            f,
            "  agents connected   {}/{} (peak {})",
            self.connected, self.agents, self.peak_connected
        )?;
        writeln!(f, "  sessions           {}", self.sessions)?;
        writeln!(f, "  events generated   {}", self.generated)?;
        writeln!(f, "  events sent        {}", self.sent)?;
        writeln!(f, "  acknowledged       {}", self.acknowledged)?;
        writeln!(f, "  resent             {}", self.resent)?;
        writeln!(f, "  dropped (bound)    {}", self.dropped)?;
        writeln!(f, "  lost               {}", self.lost)?;
        write!(f, "  durable events/s   {:.0}", self.durable_eps)
    }
}

struct Sim {
    shared: Arc<Shared<MemSpool>>,
    /// Seq of the agent's first event in this run.
    first: u64,
}

/// Keys from `keys_dir/client.keys`, enrolling the missing agents (`prefix-00001`…).
async fn identities(o: &Options) -> anyhow::Result<Vec<Identity>> {
    let path = o.keys_dir.join("client.keys");
    let mut known: HashMap<String, Identity> = HashMap::new();
    if let Ok(text) = std::fs::read_to_string(&path) {
        for (n, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let id = keys::parse_line(line)
                .map_err(|e| anyhow::anyhow!("{}:{}: {e}", path.display(), n + 1))?;
            known.insert(id.name.clone(), id);
        }
    }
    let names: Vec<String> = (1..=o.agents)
        .map(|i| format!("{}-{i:05}", o.prefix))
        .collect();
    let missing: Vec<String> = names
        .iter()
        .filter(|n| !known.contains_key(*n))
        .cloned()
        .collect();
    if !missing.is_empty() {
        let Some(enroll_at) = &o.enroll else {
            anyhow::bail!(
                "{} agent(s) have no key in {} and no --enroll address was given",
                missing.len(),
                path.display()
            );
        };
        let (host, port) = split_host_port(enroll_at)?;
        let addr = enroll::resolve(&host, port)
            .await
            .map_err(|e| anyhow::anyhow!(e))?;
        let started = Instant::now();
        let mut set = JoinSet::new();
        let mut queue = missing.into_iter();
        let mut failed = Vec::new();
        loop {
            while set.len() < 32 {
                let Some(name) = queue.next() else { break };
                let ask = Ask {
                    name: name.clone(),
                    groups: o.groups.clone(),
                    address: None,
                    password: o.password.clone(),
                    version: crate::VERSION_STRING.to_string(),
                };
                set.spawn(async move {
                    let mut last = String::new();
                    for _ in 0..5 {
                        match enroll::enroll(addr, &ask, None).await {
                            Ok((id, _)) => return Ok(id),
                            Err(e) => last = e,
                        }
                        tokio::time::sleep(Duration::from_millis(500)).await;
                    }
                    Err(format!("{}: {last}", ask.name))
                });
            }
            let Some(r) = set.join_next().await else {
                break;
            };
            match r {
                Ok(Ok(id)) => {
                    known.insert(id.name.clone(), id);
                }
                Ok(Err(e)) => failed.push(e),
                Err(e) => failed.push(e.to_string()),
            }
        }
        save_keys(&path, &known)?;
        if !failed.is_empty() {
            anyhow::bail!(
                "{} enrollment(s) failed, first: {}",
                failed.len(),
                failed[0]
            );
        }
        if o.progress {
            eprintln!(
                "enrolled {} agents in {:.1}s; keys in {}",
                names.len(),
                started.elapsed().as_secs_f64(),
                path.display()
            );
        }
    }
    Ok(names.iter().filter_map(|n| known.get(n).cloned()).collect())
}

fn save_keys(path: &std::path::Path, known: &HashMap<String, Identity>) -> anyhow::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut all: Vec<&Identity> = known.values().collect();
    all.sort_by_key(|i| i.id);
    let text: String = all.iter().map(|i| keys::format_line(i, "any")).collect();
    manager::node::keys_file::write_secret(path, text.as_bytes())?;
    Ok(())
}

pub fn split_host_port(s: &str) -> anyhow::Result<(String, u16)> {
    let (h, p) = s
        .rsplit_once(':')
        .ok_or_else(|| anyhow::anyhow!("'{s}': expected HOST:PORT"))?;
    let port = p
        .parse::<u16>()
        .map_err(|_| anyhow::anyhow!("'{s}': bad port"))?;
    Ok((h.trim_matches(|c| c == '[' || c == ']').to_string(), port))
}

/// One synthetic log line of about `size` bytes.
fn line(name: &str, n: u64, size: usize) -> Vec<u8> {
    let mut l = format!("rampart-simulate agent={name} n={n} msg=").into_bytes();
    let pad = b"abcdefghijklmnopqrstuvwxyz0123456789";
    while l.len() < size {
        l.push(pad[l.len() % pad.len()]);
    }
    l.truncate(size.max(1));
    l
}

async fn generate(shared: Arc<Shared<MemSpool>>, name: String, o: Arc<Options>, until: Instant) {
    let tick = Duration::from_secs_f64((1.0 / o.rate.max(0.001)).max(0.1));
    let per_tick = (o.rate * tick.as_secs_f64()).max(1.0);
    let mut carry = 0.0;
    let mut made = 0u64;
    let limit = o.events.unwrap_or(u64::MAX);
    let mut interval = tokio::time::interval(tick);
    loop {
        interval.tick().await;
        if Instant::now() >= until || made >= limit {
            return;
        }
        carry += per_tick;
        let n = (carry.floor() as u64).min(limit - made);
        carry -= n as f64;
        if n == 0 {
            continue;
        }
        let ts = now_ms();
        let events: Vec<Event> = (0..n)
            .map(|i| Event {
                ts_ms: ts,
                location: "simulate".into(),
                log: line(&name, made + i + 1, o.size),
                pos: None,
            })
            .collect();
        made += n;
        if let Err(e) = shared.spool().append(events) {
            tracing::error!("{name}: spool append failed: {e}");
        }
        shared.wake.notify_one();
    }
}

async fn connect_loop(shared: Arc<Shared<MemSpool>>, ident: Identity, o: Arc<Options>) {
    let profile = Profile {
        version: crate::VERSION_STRING.to_string(),
        os: "rampart-simulate".into(),
        ..Profile::default()
    };
    let timing = Timing {
        notify_time: o.notify_time,
        time_reconnect: o.time_reconnect,
        eps: 0,
        force_reconnect: None,
    };
    let mut walk = Walk::new(
        o.servers
            .iter()
            .map(|_| Attempts {
                max_retries: o.max_retries,
                retry_interval: o.retry_interval,
            })
            .collect(),
    );
    loop {
        let addr = &o.servers[walk.current()];
        let started = Instant::now();
        match session::run(&shared, &ident, &profile, &timing, addr).await {
            Ok(ended) => {
                tracing::debug!("{}: session ended: {ended:?}", ident.name);
                walk.connected();
                if started.elapsed() < o.retry_interval {
                    tokio::time::sleep(o.retry_interval).await;
                }
            }
            Err(e) => {
                tracing::debug!("{}: {e}", ident.name);
                tokio::time::sleep(walk.failed()).await;
            }
        }
    }
}

fn totals(sims: &[Sim]) -> Summary {
    let mut s = Summary {
        agents: sims.len(),
        ..Summary::default()
    };
    for a in sims {
        let st = &a.shared.stats;
        s.connected += usize::from(st.connected.load(Ordering::Relaxed));
        s.sent += st.sent.load(Ordering::Relaxed);
        s.resent += st.resent.load(Ordering::Relaxed);
        s.sessions += st.sessions.load(Ordering::Relaxed);
        let sp = a.shared.spool();
        let generated = sp.next_seq() - a.first;
        s.generated += generated;
        // An ack may pass seqs the bound dropped: count what is neither dropped nor held.
        s.acknowledged += generated.saturating_sub(sp.dropped() + sp.pending());
        s.dropped += sp.dropped();
    }
    s.lost = s.generated.saturating_sub(s.acknowledged + s.dropped);
    s
}

pub async fn run(o: Options) -> anyhow::Result<Summary> {
    if o.servers.is_empty() {
        anyhow::bail!("no --server given");
    }
    if o.duration.is_none() && o.events.is_none() {
        anyhow::bail!("give --duration or --events");
    }
    let ids = identities(&o).await?;
    let o = Arc::new(o);
    let started = Instant::now();
    let until = started + o.duration.unwrap_or(Duration::from_secs(365 * 86400));
    let mut sims = Vec::with_capacity(ids.len());
    let mut tasks = JoinSet::new();
    let ramp = Duration::from_secs_f64(1.0 / f64::from(o.ramp.max(1)));
    let mut peak = 0usize;
    let mut last_print = Instant::now();
    let tty = std::io::stderr().is_terminal();
    for ident in ids {
        let first = fresh_base();
        let spool = MemSpool::starting_at(o.queue_size, first);
        let shared = Arc::new(Shared::new(spool));
        tasks.spawn(generate(
            shared.clone(),
            ident.name.clone(),
            o.clone(),
            until,
        ));
        tasks.spawn(connect_loop(shared.clone(), ident, o.clone()));
        sims.push(Sim { shared, first });
        tokio::time::sleep(ramp).await;
        if o.progress && last_print.elapsed() >= Duration::from_secs(1) {
            last_print = Instant::now();
            progress(&totals(&sims), started, "ramp", tty);
        }
    }
    // Generation phase, then drain until every event is acknowledged or the drain ends.
    let deadline_gen = until;
    loop {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let t = totals(&sims);
        peak = peak.max(t.connected);
        let generating = Instant::now() < deadline_gen
            && o.events.is_none_or(|e| t.generated < e * sims.len() as u64);
        if o.progress && last_print.elapsed() >= Duration::from_secs(1) {
            last_print = Instant::now();
            progress(&t, started, if generating { "run" } else { "drain" }, tty);
        }
        if !generating {
            break;
        }
    }
    let drain_end = Instant::now() + o.drain;
    let mut t = totals(&sims);
    while t.acknowledged + t.dropped < t.generated && Instant::now() < drain_end {
        tokio::time::sleep(Duration::from_millis(100)).await;
        t = totals(&sims);
        peak = peak.max(t.connected);
        if o.progress && last_print.elapsed() >= Duration::from_secs(1) {
            last_print = Instant::now();
            progress(&t, started, "drain", tty);
        }
    }
    if o.progress && tty {
        eprintln!();
    }
    t.peak_connected = peak.max(t.connected);
    t.seconds = started.elapsed().as_secs_f64();
    t.durable_eps = t.acknowledged as f64 / t.seconds.max(0.001);
    tasks.abort_all();
    Ok(t)
}

fn progress(t: &Summary, started: Instant, phase: &str, tty: bool) {
    let line = format!(
        "[{:>5.0}s {phase:5}] connected {}/{}  generated {}  sent {}  acked {}  resent {}  dropped {}",
        started.elapsed().as_secs_f64(),
        t.connected,
        t.agents,
        t.generated,
        t.sent,
        t.acknowledged,
        t.resent,
        t.dropped
    );
    if tty {
        eprint!("\r{line}\x1b[K");
    } else {
        eprintln!("{line}");
    }
}
