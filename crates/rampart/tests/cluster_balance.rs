//! The whole loop of issue 6 with processes on 127.0.0.1: `rampart lb --dataplane`, a master
//! whose HAProxy helper drives that API, workers joining and leaving, and 300 simulated agents
//! reporting through the balancer.

mod common;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::manager::{wait_for, Node, NodeSpec};
use common::{free_port, Dir, Proc, BIN};
use serde_json::Value;

const AGENTS: usize = 300;
/// The helper's shortest cycle (its configuration refuses less).
const FREQUENCY: Duration = Duration::from_secs(10);
// "wazuh-haproxy:s3cret"
const AUTH: &str = "Basic d2F6dWgtaGFwcm94eTpzM2NyZXQ=";

fn helper_block(api_port: u16) -> String {
    format!(
        "    <haproxy_helper>
      <haproxy_disabled>no</haproxy_disabled>
      <haproxy_address>127.0.0.1</haproxy_address>
      <haproxy_port>{api_port}</haproxy_port>
      <haproxy_protocol>http</haproxy_protocol>
      <haproxy_user>wazuh-haproxy</haproxy_user>
      <haproxy_password>s3cret</haproxy_password>
      <haproxy_backend>wazuh_reporting</haproxy_backend>
      <frequency>{}s</frequency>
      <agent_chunk_size>100</agent_chunk_size>
      <agent_reconnection_time>1s</agent_reconnection_time>
      <agent_reconnection_stability_time>10s</agent_reconnection_stability_time>
      <imbalance_tolerance>0.1</imbalance_tolerance>
      <remove_disconnected_node_after>15s</remove_disconnected_node_after>
    </haproxy_helper>",
        FREQUENCY.as_secs()
    )
}

/// A balancer whose reporting backend starts empty: the helper fills it.
struct Balancer {
    _dir: Dir,
    report_port: u16,
    enroll_port: u16,
    api_port: u16,
    _proc: Proc,
}

impl Balancer {
    fn start(api_port: u16, authd_port: u16) -> Balancer {
        let dir = Dir::new("lb-dpa");
        let (report_port, enroll_port) = (free_port(), free_port());
        let cfg = format!(
            "global\n    maxconn 2000\n\ndefaults\n    mode tcp\n    timeout connect 2s\n    \
             timeout client 1m\n    timeout server 1m\n    retries 3\n    option redispatch\n\n\
             frontend wazuh_register\n    bind 127.0.0.1:{enroll_port}\n    default_backend wazuh_enroll\n\n\
             backend wazuh_enroll\n    server master 127.0.0.1:{authd_port}\n\n\
             frontend wazuh_reporting_front\n    bind 127.0.0.1:{report_port}\n    default_backend wazuh_reporting\n\n\
             backend wazuh_reporting\n    balance leastconn\n    default-server check inter 500 fall 2 rise 2\n"
        );
        std::fs::write(dir.0.join("haproxy.cfg"), cfg).expect("haproxy.cfg");
        let api = format!(
            "dataplaneapi:\n  host: 127.0.0.1\n  port: {api_port}\n  transaction:\n    \
             transaction_dir: {}\n  user:\n    - name: wazuh-haproxy\n      insecure: true\n      \
             password: s3cret\nhaproxy:\n  config_file: {}\n  reload:\n    reload_delay: 1\n",
            dir.0.join("transactions").display(),
            dir.0.join("haproxy.cfg").display()
        );
        std::fs::write(dir.0.join("dataplaneapi.yml"), api).expect("dataplaneapi.yml");
        let log = std::fs::File::create(dir.0.join("lb.log")).expect("lb.log");
        let proc = Proc(
            Command::new(BIN)
                .args(["lb", "-f"])
                .arg(dir.0.join("haproxy.cfg"))
                .arg("--dataplane")
                .arg(dir.0.join("dataplaneapi.yml"))
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .expect("spawn lb"),
        );
        wait_for("the Data Plane API", Duration::from_secs(10), || {
            TcpStream::connect(("127.0.0.1", api_port)).is_ok()
        });
        Balancer {
            _dir: dir,
            report_port,
            enroll_port,
            api_port,
            _proc: proc,
        }
    }

    fn get(&self, path: &str) -> Value {
        let mut s = TcpStream::connect(("127.0.0.1", self.api_port)).expect("connect API");
        s.set_read_timeout(Some(Duration::from_secs(10))).ok();
        let req = format!(
            "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: {AUTH}\r\nConnection: close\r\n\r\n"
        );
        s.write_all(req.as_bytes()).expect("request");
        let mut raw = String::new();
        s.read_to_string(&mut raw).expect("response");
        let (head, body) = raw.split_once("\r\n\r\n").expect("http response");
        assert!(head.starts_with("HTTP/1.1 200"), "{path}: {head}");
        serde_json::from_str(body).expect("json body")
    }

    /// Server name → (status, scur) in the reporting backend.
    fn servers(&self) -> BTreeMap<String, (String, u64)> {
        let v = self.get("/v2/services/haproxy/stats/native?type=server&parent=wazuh_reporting");
        v[0]["stats"]
            .as_array()
            .map(|rows| {
                rows.iter()
                    .map(|r| {
                        let s = &r["stats"];
                        (
                            r["name"].as_str().unwrap_or_default().to_string(),
                            (
                                s["status"].as_str().unwrap_or_default().to_string(),
                                s["scur"].as_u64().unwrap_or(0),
                            ),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    fn config_servers(&self) -> Vec<String> {
        let v = self.get("/v2/services/haproxy/configuration/servers?backend=wazuh_reporting");
        v["data"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|s| s["name"].as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// Whether every count is within ±10% of their mean.
fn within_mean(counts: &[u64]) -> bool {
    if counts.is_empty() {
        return false;
    }
    let mean = counts.iter().sum::<u64>() as f64 / counts.len() as f64;
    counts
        .iter()
        .all(|&c| (c as f64 - mean).abs() <= mean * 0.1)
}

fn connected(servers: &BTreeMap<String, (String, u64)>) -> u64 {
    servers.values().map(|(_, n)| n).sum()
}

fn simulate(lb: &Balancer, keys: &Path, duration: Duration) -> std::process::Child {
    Command::new(BIN)
        .args(["simulate", "-q", "--json", "--agents", &AGENTS.to_string()])
        .args(["--rate", "0.5", "--size", "200", "--retry-interval", "1s"])
        .args(["--duration", &format!("{}s", duration.as_secs())])
        .args(["--drain", "60s", "--enroll"])
        .arg(format!("127.0.0.1:{}", lb.enroll_port))
        .arg("--server")
        .arg(format!("127.0.0.1:{}", lb.report_port))
        .arg("--keys")
        .arg(keys)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("simulate")
}

#[test]
fn the_helper_follows_the_cluster_and_keeps_agents_balanced() {
    let api_port = free_port();
    let mut spec = NodeSpec::master("master");
    spec.cluster_extra = helper_block(api_port);
    let lb = Balancer::start(api_port, spec.auth_port);
    let mut master = Node::new(spec);
    master.start();
    let mut w1 = Node::new(NodeSpec::worker("worker1", &master.spec));
    let mut w2 = Node::new(NodeSpec::worker("worker2", &master.spec));
    w1.start();
    w2.start();

    // The helper puts every node into the empty backend and the checks bring them UP.
    wait_for("three UP servers", FREQUENCY * 4, || {
        let s = lb.servers();
        s.len() == 3 && s.values().all(|(st, _)| st == "UP")
    });

    let keys = Dir::new("balance-keys");
    let sim = simulate(&lb, &keys.0, Duration::from_secs(110));
    wait_for("all agents connected", Duration::from_secs(60), || {
        connected(&lb.servers()) == AGENTS as u64
    });

    // A third worker joins: within three helper cycles every node holds the mean ±10%.
    let mut w3 = Node::new(NodeSpec::worker("worker3", &master.spec));
    w3.start();
    let joined = Instant::now();
    wait_for("worker3 in the backend", FREQUENCY * 2, || {
        lb.servers().contains_key("worker3")
    });
    wait_for(
        "a balanced backend with worker3",
        FREQUENCY * 3 + Duration::from_secs(15),
        || {
            let s = lb.servers();
            let counts: Vec<u64> = s.values().map(|(_, n)| *n).collect();
            s.len() == 4 && connected(&s) == AGENTS as u64 && within_mean(&counts)
        },
    );
    eprintln!("balanced {:?} after worker3 joined", joined.elapsed());
    assert!(master.log().contains("HAPHelper"), "{}", master.log());

    // worker2 stops: its agents fail over at once, its server leaves after the delay.
    w2.kill9();
    wait_for(
        "worker2's agents on the others",
        Duration::from_secs(40),
        || {
            let s = lb.servers();
            s.get("worker2").is_none_or(|(_, n)| *n == 0) && connected(&s) == AGENTS as u64
        },
    );
    wait_for(
        "worker2 removed from the backend",
        Duration::from_secs(15) + FREQUENCY * 3,
        || !lb.config_servers().contains(&"worker2".to_string()),
    );
    let left = lb.servers();
    assert!(!left.contains_key("worker2"), "{left:?}");
    assert_eq!(connected(&left), AGENTS as u64, "{left:?}");

    // No event lost across rebalancing and failover.
    let out = wait_output(sim, Duration::from_secs(180));
    let summary: Value = serde_json::from_str(out.lines().last().unwrap_or_default())
        .unwrap_or_else(|e| panic!("summary: {e}: {out}"));
    assert_eq!(summary["lost"], 0, "{out}");
    assert_eq!(summary["dropped"], 0, "{out}");
    assert!(summary["generated"].as_u64().unwrap_or(0) > 0, "{out}");
    assert_eq!(summary["acknowledged"], summary["generated"], "{out}");
    drop(w1);
    drop(w3);
}

fn wait_output(mut child: std::process::Child, limit: Duration) -> String {
    let start = Instant::now();
    loop {
        if child.try_wait().expect("wait").is_some() {
            break;
        }
        assert!(start.elapsed() < limit, "simulate did not finish");
        std::thread::sleep(Duration::from_millis(200));
    }
    let mut out = String::new();
    if let Some(mut o) = child.stdout.take() {
        let _ = o.read_to_string(&mut out);
    }
    out
}
