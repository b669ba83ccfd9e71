//! `rampart agent` against real managers: enrollment, reporting through `rampart lb` or a
//! failover list, and no event lost or stored twice when a node, or the agent, is killed.

mod common;

use std::time::Duration;

use common::agent::{archived, assert_exactly_once, wait_archived, Agent, Lb, Writer};
use common::manager::{wait_for, Node, NodeSpec};

const TOTAL: usize = 3000;
const PACE: Duration = Duration::from_millis(2);
const LIMIT: Duration = Duration::from_secs(90);

fn agent_id(a: &Agent) -> String {
    let mut id = None;
    wait_for(
        &format!("{} to enroll", a.name),
        Duration::from_secs(30),
        || {
            id = a.id();
            id.is_some()
        },
    );
    format!("{:03}", id.unwrap_or(0))
}

/// The node whose archives hold events of `agent` most recently.
fn serving(nodes: &[&Node], agent: &str) -> usize {
    let mut best = (0, 0u64);
    for (i, n) in nodes.iter().enumerate() {
        let top = archived(&[n])
            .iter()
            .filter(|e| e.agent == agent)
            .map(|e| e.seq)
            .max()
            .unwrap_or(0);
        if top > best.1 {
            best = (i, top);
        }
    }
    best.0
}

/// A master, worker1, and an agent whose failover list is worker1 then the master.
fn worker_then_master(name: &str) -> (Node, Node, Agent, String) {
    let mspec = NodeSpec::master("master");
    let wspec = NodeSpec::worker("worker1", &mspec);
    let (mut master, mut w1) = (Node::new(mspec), Node::new(wspec));
    master.start();
    w1.start();
    let mut agent = Agent::new(
        name,
        &[w1.spec.remote_port, master.spec.remote_port],
        master.spec.auth_port,
        "",
    );
    agent.start();
    let id = agent_id(&agent);
    (master, w1, agent, id)
}

#[test]
fn through_the_balancer_a_killed_worker_loses_and_duplicates_nothing() {
    let mspec = NodeSpec::master("master");
    let w1spec = NodeSpec::worker("worker1", &mspec);
    let w2spec = NodeSpec::worker("worker2", &mspec);
    let (mut master, mut w1, mut w2) = (Node::new(mspec), Node::new(w1spec), Node::new(w2spec));
    master.start();
    w1.start();
    w2.start();
    let lb = Lb::start(
        &[
            ("worker1", w1.spec.remote_port),
            ("worker2", w2.spec.remote_port),
        ],
        master.spec.auth_port,
    );
    let mut agent = Agent::new("web1", &[lb.report_port], lb.enroll_port, "");
    agent.start();
    let id = agent_id(&agent);
    let writer = Writer::start(agent.log_file(), TOTAL, PACE);
    writer.wait_until(TOTAL / 3);
    wait_for("events on a worker", LIMIT, || {
        archived(&[&w1, &w2]).iter().any(|e| e.agent == id)
    });

    // Kill the worker serving the agent mid-stream; a supervisor brings it back.
    let victim = serving(&[&w1, &w2], &id);
    let (dead, alive) = if victim == 0 {
        (&mut w1, &w2)
    } else {
        (&mut w2, &w1)
    };
    dead.kill9();
    wait_for("the agent on the other worker", LIMIT, || {
        archived(&[alive]).iter().any(|e| e.agent == id)
    });
    dead.start();
    writer.join();
    wait_archived(&[&w1, &w2, &master], &id, TOTAL, LIMIT);
    let all = archived(&[&w1, &w2, &master]);
    assert_exactly_once(&all, &id, TOTAL);
    assert!(
        all.iter().any(|e| e.node == "worker1") && all.iter().any(|e| e.node == "worker2"),
        "both workers stored part of the stream"
    );
    let log = agent.stderr();
    assert!(log.contains("Lost connection with manager"), "{log}");
    drop(lb);
}

#[test]
fn an_agent_killed_mid_stream_resumes_without_loss_or_repeat() {
    let mut master = Node::new(NodeSpec::master("solo"));
    master.start();
    let mut agent = Agent::new("db1", &[master.spec.remote_port], master.spec.auth_port, "");
    agent.start();
    let id = agent_id(&agent);
    let writer = Writer::start(agent.log_file(), TOTAL, PACE);
    writer.wait_until(TOTAL / 3);
    agent.kill9();
    writer.wait_until(2 * TOTAL / 3);
    agent.start();
    writer.join();
    wait_archived(&[&master], &id, TOTAL, LIMIT);
    assert_exactly_once(&archived(&[&master]), &id, TOTAL);
    // The second run found events waiting in its spool or its file position, not both.
    assert!(agent.stderr().matches("waiting in the spool").count() >= 2);
}

#[test]
fn a_failover_list_cycles_between_two_managers() {
    let (mut master, mut w1, agent, id) = worker_then_master("mail1");
    let writer = Writer::start(agent.log_file(), TOTAL, PACE);
    writer.wait_until(TOTAL / 4);
    wait_for("events on worker1", LIMIT, || {
        archived(&[&w1]).iter().any(|e| e.agent == id)
    });
    // First server gone: the agent walks on to the master…
    w1.kill9();
    wait_for("events on the master", LIMIT, || {
        archived(&[&master]).iter().any(|e| e.agent == id)
    });
    w1.start();
    writer.wait_until(TOTAL / 2);
    // …and when the master goes, it wraps around to worker1 again, which waits for the
    // master (it may hold unacknowledged events) until it is back.
    let before = archived(&[&w1]).iter().filter(|e| e.agent == id).count();
    master.kill9();
    wait_for("the agent back on worker1", LIMIT, || {
        // Waiting there for the master when unacknowledged events may sit on it.
        w1.log().contains("waiting for node master")
            || agent.stderr().matches("node worker1").count() >= 2
    });
    master.start();
    wait_for("events back on worker1", LIMIT, || {
        archived(&[&w1]).iter().filter(|e| e.agent == id).count() > before
    });
    writer.join();
    wait_archived(&[&w1, &master], &id, TOTAL, LIMIT);
    assert_exactly_once(&archived(&[&w1, &master]), &id, TOTAL);
}

#[test]
fn a_manager_can_make_an_agent_reconnect_and_drops_removed_agents() {
    let mut master = Node::new(NodeSpec::master("master"));
    master.start();
    let mut agent = Agent::new(
        "app1",
        &[master.spec.remote_port],
        master.spec.auth_port,
        "",
    );
    agent.start();
    let id = agent_id(&agent);
    wait_for("the agent active", LIMIT, || {
        master
            .ctl(&["agents", "show", &id])
            .1
            .contains("\"active\"")
    });
    let shown = master.ctl(&["agents", "show", &id]).1;
    assert!(
        shown.contains("\"env\": \"test\""),
        "labels reported: {shown}"
    );
    let (ok, out) = master.ctl(&["agents", "reconnect", &id]);
    assert!(ok && out.contains("Asked 1"), "{out}");
    wait_for("the reconnection", LIMIT, || {
        agent.stderr().contains("Reconnecting as asked")
            && agent.stderr().matches("Connected to the server").count() >= 2
    });
    // Deleted: the session is closed and the agent refused from then on (it enrolls again).
    let (ok, _) = master.ctl(&["agents", "delete", &id]);
    assert!(ok);
    wait_for("the refusal", LIMIT, || {
        master
            .log()
            .contains(&format!("agent {id} is not registered"))
    });
    wait_for("a new enrollment", LIMIT, || {
        agent.id().map(|i| format!("{i:03}")) != Some(id.clone())
    });
}

/// Opens a session by hand: preface, handshake with `key`, startup.
async fn session(
    port: u16,
    id: u32,
    key: &str,
) -> Result<
    (
        wire::rpc::Peer,
        tokio::sync::mpsc::Receiver<wire::rpc::Incoming>,
    ),
    String,
> {
    use tokio::io::AsyncWriteExt;
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .map_err(|e| e.to_string())?;
    s.write_all(&wire::report::preface(id))
        .await
        .map_err(|e| e.to_string())?;
    let (r, w) = wire::connect(s, key.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    let (peer, inc) = wire::rpc::spawn_peer(r, w);
    let startup = wire::report::Startup {
        name: "x".into(),
        ..Default::default()
    };
    peer.request(
        wire::report::STARTUP,
        serde_json::to_vec(&startup).unwrap_or_default(),
        Duration::from_secs(10),
    )
    .await
    .map_err(|e| e.to_string())?;
    Ok((peer, inc))
}

async fn next_ack(inc: &mut tokio::sync::mpsc::Receiver<wire::rpc::Incoming>) -> wire::report::Ack {
    tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let m = inc.recv().await.expect("open");
            if m.command == wire::report::ACK {
                return serde_json::from_slice::<wire::report::Ack>(&m.payload).expect("ack");
            }
        }
    })
    .await
    .expect("acknowledged")
}

fn events(from: u64, n: u64) -> Vec<u8> {
    let logs: Vec<String> = (from..from + n).map(|i| format!("event {i}")).collect();
    wire::report::encode_events((from..from + n).zip(&logs).map(|(seq, l)| {
        wire::report::EventRef {
            seq,
            ts_ms: 0,
            location: "test",
            log: l.as_bytes(),
        }
    }))
}

#[test]
fn unknown_forged_and_wrong_key_agents_are_refused_without_harm_to_others() {
    let mut master = Node::new(NodeSpec::master("master"));
    master.start();
    let rt = common::manager::runtime();
    let port = master.spec.remote_port;
    let enroll = |name: &str| {
        let req = manager::authd::EnrollRequest {
            password: None,
            name: name.into(),
            version: None,
            groups: Vec::new(),
            ip: None,
            key_hash: None,
        };
        rt.block_on(manager::node::enroll::enroll_client(
            master.auth_addr(),
            &req,
            None,
        ))
        .expect("enrolled")
    };
    let (good, other) = (enroll("good"), enroll("victim"));
    rt.block_on(async {
        let unknown = session(port, 999, &good.key).await.unwrap_err();
        assert!(unknown.contains("agent 999 is not registered"), "{unknown}");
        let wrong = session(port, good.id, &other.key).await.unwrap_err();
        assert!(
            wrong.contains(&format!("invalid key for agent {:03}", good.id)),
            "{wrong}"
        );

        // A healthy session keeps working while another sends garbage.
        let (peer, mut inc) = session(port, good.id, &good.key).await.expect("session");
        let (bad, _bad_inc) = session(port, other.id, &other.key).await.expect("session");
        bad.notify(wire::report::EVENTS, b"\x00\x00\x00\x05garbage".to_vec())
            .await
            .unwrap();
        let reason = tokio::time::timeout(Duration::from_secs(10), bad.closed())
            .await
            .expect("the bad session is closed");
        assert!(reason.contains("closed"), "{reason}");

        // A raw forged frame (not sealed with the agent's key) closes only that connection.
        {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .unwrap();
            s.write_all(&wire::report::preface(other.id)).await.unwrap();
            let (sealer, _opener) = wire::handshake::client(&mut s, other.key.as_bytes())
                .await
                .unwrap();
            drop(sealer);
            let mut forged = 64u32.to_be_bytes().to_vec();
            forged.extend_from_slice(&[0xAB; 64]);
            s.write_all(&forged).await.unwrap();
            let mut buf = [0u8; 64];
            let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf))
                .await
                .expect("closed in time")
                .unwrap_or(0);
            assert_eq!(n, 0, "the forged connection is closed");
        }

        peer.notify(wire::report::EVENTS, events(1, 10))
            .await
            .unwrap();
        let ack = next_ack(&mut inc).await;
        assert_eq!(ack.upto, 10);
        // The same seqs again are duplicates: acknowledged, not stored twice.
        peer.notify(wire::report::EVENTS, events(5, 10))
            .await
            .unwrap();
        let ack = next_ack(&mut inc).await;
        assert_eq!(ack.upto, 14);
    });
    let stored = archived(&[&master]);
    let id = format!("{:03}", good.id);
    let mut seqs: Vec<u64> = stored
        .iter()
        .filter(|e| e.agent == id)
        .map(|e| e.seq)
        .collect();
    seqs.sort_unstable();
    assert_eq!(seqs, (1..=14).collect::<Vec<_>>());
    let log = master.log();
    assert!(log.contains("Refused agent"), "{log}");
    assert!(log.contains("malformed events"), "{log}");
}

#[test]
fn a_full_spool_drops_the_oldest_and_says_so() {
    let mut master = Node::new(NodeSpec::master("master"));
    master.start();
    let mut agent = Agent::new(
        "busy1",
        &[master.spec.remote_port],
        master.spec.auth_port,
        "  <client_buffer><queue_size>100</queue_size></client_buffer>",
    );
    agent.start();
    let id = agent_id(&agent);
    wait_for("the agent connected", LIMIT, || {
        agent.stderr().contains("Connected to the server")
    });
    // The manager is away while 300 lines arrive: only the newest 100 can be kept.
    master.kill9();
    let writer = Writer::start(agent.log_file(), 300, Duration::from_millis(1));
    writer.join();
    wait_for("the drop warning", LIMIT, || {
        agent.stderr().contains("dropped the")
    });
    master.start();
    wait_archived(&[&master], &id, 100, LIMIT);
    std::thread::sleep(Duration::from_millis(500));
    let logs: Vec<String> = archived(&[&master])
        .into_iter()
        .filter(|e| e.agent == id)
        .map(|e| e.log)
        .collect();
    assert_eq!(logs.len(), 100, "exactly the bound");
    assert!(logs[0].starts_with("line-000201"), "{}", logs[0]);
    assert!(logs[99].starts_with("line-000300"), "{}", logs[99]);
}

#[test]
fn a_rotated_log_file_is_read_to_the_end_and_followed() {
    let mut master = Node::new(NodeSpec::master("master"));
    master.start();
    let mut agent = Agent::new(
        "rot1",
        &[master.spec.remote_port],
        master.spec.auth_port,
        "",
    );
    agent.start();
    let id = agent_id(&agent);
    let log = agent.log_file();
    let append = |path: &std::path::Path, from: usize, to: usize| {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .expect("open");
        for i in from..=to {
            writeln!(f, "line-{i:06} some payload to make the event longer").expect("write");
        }
    };
    append(&log, 1, 300);
    wait_archived(&[&master], &id, 300, LIMIT);
    // logrotate's default: rename, the writer still appends to the old file for a moment,
    // then a new file appears under the name.
    let rotated = log.with_extension("log.1");
    std::fs::rename(&log, &rotated).expect("rename");
    append(&rotated, 301, 400);
    append(&log, 401, 600);
    wait_archived(&[&master], &id, 600, LIMIT);
    assert_exactly_once(&archived(&[&master]), &id, 600);
}

#[test]
fn stdin_events_are_reported_and_the_agent_exits_once_all_are_stored() {
    use std::io::Write;
    let mut master = Node::new(NodeSpec::master("master"));
    master.start();
    let agent = Agent::new(
        "pipe1",
        &[master.spec.remote_port],
        master.spec.auth_port,
        "",
    );
    // No <localfile>: stdin only.
    let conf = std::fs::read_to_string(agent.home().join("etc/ossec.conf")).expect("conf");
    let start = conf.find("  <localfile>").expect("localfile");
    let end = conf.find("</localfile>").expect("end") + "</localfile>".len();
    let conf = format!("{}{}", &conf[..start], &conf[end..]);
    std::fs::write(agent.home().join("etc/ossec.conf"), conf).expect("write conf");
    let mut child = std::process::Command::new(common::BIN)
        .args(["agent", "--stdin", "--home"])
        .arg(agent.home())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn");
    {
        let mut stdin = child.stdin.take().expect("stdin");
        for i in 1..=500 {
            writeln!(stdin, "line-{i:06} some payload to make the event longer").expect("pipe");
        }
    }
    let start = std::time::Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        assert!(start.elapsed() < LIMIT, "the agent did not exit");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(status.success());
    let id = format!("{:03}", agent.id().expect("enrolled"));
    let all = archived(&[&master]);
    assert_exactly_once(&all, &id, 500);
    assert!(all.iter().all(|e| e.agent != id || !e.log.is_empty()));
}

#[test]
fn the_simulator_enrolls_reports_and_sums_up() {
    let mut master = Node::new(NodeSpec::master("master"));
    master.start();
    let keys = common::Dir::new("sim-keys");
    let run = || {
        std::process::Command::new(common::BIN)
            .args([
                "simulate", "-q", "--json", "--agents", "40", "--events", "25", "--rate", "50",
            ])
            .args(["--size", "200", "--enroll"])
            .arg(format!("127.0.0.1:{}", master.spec.auth_port))
            .arg("--server")
            .arg(format!("127.0.0.1:{}", master.spec.remote_port))
            .arg("--keys")
            .arg(&keys.0)
            .output()
            .expect("simulate")
    };
    let out = run();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "{text}");
    let summary: serde_json::Value =
        serde_json::from_str(text.lines().last().expect("json")).expect("summary");
    assert_eq!(summary["agents"], 40);
    assert_eq!(summary["peak_connected"], 40);
    assert_eq!(summary["generated"], 1000);
    assert_eq!(summary["acknowledged"], 1000);
    assert_eq!(summary["lost"], 0);
    assert!(text.contains("lost               0"), "{text}");
    // A second run reuses the keys and its events are stored too (not taken for repeats).
    let out = run();
    assert!(out.status.success());
    assert_eq!(archived(&[&master]).len(), 2000);
    let keys_text = std::fs::read_to_string(keys.0.join("client.keys")).expect("keys");
    assert_eq!(keys_text.lines().count(), 40);
}

fn signal(n: &Node, sig: &str) {
    let pid = n.proc.as_ref().expect("running").0.id();
    let ok = std::process::Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .expect("kill")
        .success();
    assert!(ok, "kill {sig}");
}

#[test]
fn a_hung_manager_is_left_after_time_reconnect() {
    let (master, w1, agent, id) = worker_then_master("hang1");
    let writer = Writer::start(agent.log_file(), 2000, PACE);
    writer.wait_until(500);
    wait_for("events on worker1", LIMIT, || {
        archived(&[&w1]).iter().any(|e| e.agent == id)
    });
    // Frozen, not dead: the kernel still accepts connections, nothing answers.
    signal(&w1, "-STOP");
    wait_for("the agent to give up on worker1", LIMIT, || {
        agent.stderr().contains("no answer from the manager in 5s")
    });
    wait_for("the master to wait for worker1", LIMIT, || {
        master.log().contains("waiting for node worker1")
    });
    signal(&w1, "-CONT");
    wait_for("events on the master", LIMIT, || {
        archived(&[&master]).iter().any(|e| e.agent == id)
    });
    writer.join();
    wait_archived(&[&w1, &master], &id, 2000, LIMIT);
    assert_exactly_once(&archived(&[&w1, &master]), &id, 2000);
}
