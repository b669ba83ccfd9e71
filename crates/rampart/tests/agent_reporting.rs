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
    let mspec = NodeSpec::master("master");
    let wspec = NodeSpec::worker("worker1", &mspec);
    let (mut master, mut w1) = (Node::new(mspec), Node::new(wspec));
    master.start();
    w1.start();
    let mut agent = Agent::new(
        "mail1",
        &[w1.spec.remote_port, master.spec.remote_port],
        master.spec.auth_port,
        "",
    );
    agent.start();
    let id = agent_id(&agent);
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
    // …and when the master goes, it wraps around to worker1 again.
    let before = archived(&[&w1]).iter().filter(|e| e.agent == id).count();
    master.kill9();
    std::thread::sleep(Duration::from_secs(1));
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
