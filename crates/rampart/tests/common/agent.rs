//! `rampart agent` processes on 127.0.0.1, a log writer to feed them, a `rampart lb` in front
//! of managers, and the archives read back by (agent, seq) and by line.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use super::manager::{wait_for, Node};
use super::{free_port, Dir, Proc, BIN};

/// One agent's home and, while running, its process.
pub struct Agent {
    pub dir: Dir,
    pub name: String,
    pub proc: Option<Proc>,
}

impl Agent {
    /// An agent reporting to `servers` (`(port, max_retries)`, in failover order), enrolling at
    /// `enroll_port`, tailing `home/app.log` from its start.
    pub fn new(name: &str, servers: &[u16], enroll_port: u16, extra: &str) -> Agent {
        let dir = Dir::new(&format!("agent-{name}"));
        std::fs::create_dir_all(dir.0.join("etc")).expect("etc");
        let servers: String = servers
            .iter()
            .map(|p| {
                format!(
                    "    <server><address>127.0.0.1</address><port>{p}</port><protocol>tcp</protocol>\
                     <max_retries>2</max_retries><retry_interval>1</retry_interval></server>\n"
                )
            })
            .collect();
        let conf = format!(
            r#"<ossec_config>
  <client>
{servers}    <config-profile>ubuntu, ubuntu22</config-profile>
    <notify_time>1</notify_time>
    <time-reconnect>5</time-reconnect>
    <auto_restart>yes</auto_restart>
    <crypto_method>aes</crypto_method>
    <enrollment>
      <enabled>yes</enabled>
      <manager_address>127.0.0.1</manager_address>
      <port>{enroll_port}</port>
      <agent_name>{name}</agent_name>
    </enrollment>
  </client>
  <client_buffer>
    <disabled>yes</disabled>
    <queue_size>1000000</queue_size>
  </client_buffer>
  <labels>
    <label key="env">test</label>
  </labels>
  <localfile>
    <location>{log}</location>
    <log_format>syslog</log_format>
    <only-future-events>no</only-future-events>
  </localfile>
{extra}
</ossec_config>
"#,
            log = dir.0.join("app.log").display(),
        );
        std::fs::write(dir.0.join("etc/ossec.conf"), conf).expect("ossec.conf");
        std::fs::write(dir.0.join("app.log"), "").expect("app.log");
        Agent {
            dir,
            name: name.to_string(),
            proc: None,
        }
    }

    pub fn home(&self) -> &Path {
        &self.dir.0
    }

    pub fn log_file(&self) -> PathBuf {
        self.dir.0.join("app.log")
    }

    pub fn start(&mut self) {
        let err = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.home().join("stderr.log"))
            .expect("stderr log");
        let child = Command::new(BIN)
            .args(["agent", "--home"])
            .arg(self.home())
            .env("RAMPART_LOG", "info")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(err)
            .spawn()
            .expect("spawn agent");
        self.proc = Some(Proc(child));
    }

    pub fn kill9(&mut self) {
        if let Some(mut p) = self.proc.take() {
            let _ = p.0.kill();
            let _ = p.0.wait();
        }
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(self.home().join("stderr.log")).unwrap_or_default()
    }

    /// The id from the agent's client.keys, once enrolled.
    pub fn id(&self) -> Option<u32> {
        let text = std::fs::read_to_string(self.home().join("etc/client.keys")).ok()?;
        text.split_whitespace().next()?.parse().ok()
    }
}

/// Appends `line-NNNNNN` lines to a file at a steady pace from a thread.
pub struct Writer {
    pub written: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
}

impl Writer {
    pub fn start(path: PathBuf, total: usize, every: Duration) -> Writer {
        let written = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (w, s) = (written.clone(), stop.clone());
        let handle = std::thread::spawn(move || {
            let mut f = std::fs::OpenOptions::new()
                .append(true)
                .open(&path)
                .expect("open log");
            for i in 1..=total {
                if s.load(Ordering::Relaxed) {
                    return;
                }
                writeln!(f, "line-{i:06} some payload to make the event longer").expect("write");
                w.store(i, Ordering::Relaxed);
                std::thread::sleep(every);
            }
        });
        Writer {
            written,
            stop,
            handle: Some(handle),
        }
    }

    pub fn count(&self) -> usize {
        self.written.load(Ordering::Relaxed)
    }

    pub fn wait_until(&self, n: usize) {
        wait_for("the writer", Duration::from_secs(60), || self.count() >= n);
    }

    pub fn join(mut self) {
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// One archived event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Archived {
    pub node: String,
    pub agent: String,
    pub seq: u64,
    pub log: String,
}

pub fn archived(nodes: &[&Node]) -> Vec<Archived> {
    let mut out = Vec::new();
    for n in nodes {
        let path = n.home().join("logs/archives/archives.json");
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        for line in text.lines() {
            let v: serde_json::Value = serde_json::from_str(line).expect("archives line is JSON");
            out.push(Archived {
                node: v["cluster"]["node"].as_str().unwrap_or("").to_string(),
                agent: v["agent"]["id"].as_str().unwrap_or("").to_string(),
                seq: v["seq"].as_u64().expect("seq"),
                log: v["full_log"].as_str().unwrap_or("").to_string(),
            });
        }
    }
    out
}

/// Distinct lines of `line-NNNNNN` form stored for `agent`, with how often each was stored.
pub fn line_counts(events: &[Archived], agent: &str) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for e in events.iter().filter(|e| e.agent == agent) {
        *m.entry(e.log.clone()).or_insert(0) += 1;
    }
    m
}

/// Asserts every written line arrived exactly once, and every (agent, seq) is unique.
pub fn assert_exactly_once(events: &[Archived], agent: &str, total: usize) {
    let counts = line_counts(events, agent);
    let dup: Vec<_> = counts.iter().filter(|(_, c)| **c > 1).take(5).collect();
    assert!(dup.is_empty(), "lines stored more than once: {dup:?}");
    let missing: Vec<String> = (1..=total)
        .map(|i| format!("line-{i:06} some payload to make the event longer"))
        .filter(|l| !counts.contains_key(l))
        .take(5)
        .collect();
    assert!(missing.is_empty(), "lines never stored: {missing:?}");
    let mut seqs: Vec<u64> = events
        .iter()
        .filter(|e| e.agent == agent)
        .map(|e| e.seq)
        .collect();
    let n = seqs.len();
    seqs.sort_unstable();
    seqs.dedup();
    assert_eq!(seqs.len(), n, "an (agent, seq) stored twice");
    assert_eq!(n, total, "events stored for agent {agent}");
}

/// Waits until `total` distinct lines of `agent` are archived on `nodes`.
pub fn wait_archived(nodes: &[&Node], agent: &str, total: usize, limit: Duration) {
    wait_for(&format!("{total} events of agent {agent}"), limit, || {
        line_counts(&archived(nodes), agent).len() >= total
    });
}

/// A `rampart lb` (HAProxy syntax) with a reporting and an enrollment frontend.
pub struct Lb {
    pub dir: Dir,
    pub report_port: u16,
    pub enroll_port: u16,
    pub proc: Proc,
}

impl Lb {
    pub fn start(reporting: &[(&str, u16)], enroll: u16) -> Lb {
        let dir = Dir::new("lb");
        let report_port = free_port();
        let enroll_port = free_port();
        let servers: String = reporting
            .iter()
            .map(|(n, p)| format!("    server {n} 127.0.0.1:{p} check inter 300 fall 2 rise 2\n"))
            .collect();
        let cfg = format!(
            "global\n    maxconn 2000\n\ndefaults\n    mode tcp\n    timeout connect 2s\n    \
             timeout client 1m\n    timeout server 1m\n    retries 3\n    option redispatch\n\n\
             frontend wazuh_register\n    bind 127.0.0.1:{enroll_port}\n    default_backend wazuh_enroll\n\n\
             backend wazuh_enroll\n    server master 127.0.0.1:{enroll}\n\n\
             frontend wazuh_reporting_front\n    bind 127.0.0.1:{report_port}\n    default_backend wazuh_reporting\n\n\
             backend wazuh_reporting\n    balance leastconn\n{servers}"
        );
        let path = dir.0.join("haproxy.cfg");
        std::fs::write(&path, cfg).expect("haproxy.cfg");
        let proc = Proc(
            Command::new(BIN)
                .args(["lb", "-f"])
                .arg(&path)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("spawn lb"),
        );
        wait_for("the balancer", Duration::from_secs(10), || {
            std::net::TcpStream::connect(("127.0.0.1", report_port)).is_ok()
        });
        Lb {
            dir,
            report_port,
            enroll_port,
            proc,
        }
    }
}
