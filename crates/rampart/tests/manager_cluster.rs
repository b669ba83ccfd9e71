//! A master and workers as processes on 127.0.0.1: enrollment through workers (with and
//! without a password), deletion and groups reaching every node, rejected workers, a
//! worker catching up after kill -9, and the master's durability under kill -9.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::manager::{runtime, wait_for, Node, NodeSpec};
use manager::authd::{EnrollRequest, KeyReply};
use manager::node::enroll::enroll_client;

const LONG: Duration = Duration::from_secs(30);

/// One enrollment, as an agent makes it (blocking on `rt`).
fn enroll(
    rt: &tokio::runtime::Runtime,
    n: &Node,
    name: &str,
    password: Option<&str>,
) -> Result<KeyReply, String> {
    rt.block_on(enroll_client(n.auth_addr(), &request(name, password), None))
}

fn request(name: &str, password: Option<&str>) -> EnrollRequest {
    EnrollRequest {
        password: password.map(String::from),
        name: name.into(),
        version: None,
        groups: Vec::new(),
        ip: None,
        key_hash: None,
    }
}

/// `ID NAME IP KEY` lines of a node's etc/client.keys.
fn client_keys(n: &Node) -> BTreeMap<u32, (String, String)> {
    std::fs::read_to_string(n.etc().join("client.keys"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            Some((
                f.first()?.parse().ok()?,
                (f.get(1)?.to_string(), f.get(3)?.to_string()),
            ))
        })
        .collect()
}

#[test]
fn enrollment_through_workers_deletion_and_groups_reach_every_node() {
    let mut master = Node::new(NodeSpec::master("master-node"));
    master.start();
    let mut w1 = Node::new(NodeSpec::worker("worker-01", &master.spec));
    let mut spec2 = NodeSpec::worker("worker-02", &master.spec);
    spec2.password = Some("TopSecret123".into());
    let mut w2 = Node::new(spec2);
    w1.start();
    w2.start();
    wait_for("three nodes", LONG, || master.cluster_nodes().len() == 3);
    // Workers see the same list through the master.
    assert_eq!(
        w1.cluster_nodes(),
        vec!["master-node", "worker-01", "worker-02"]
    );

    // 25 agents through worker-01 (no password) and 25 through worker-02 (password), at once.
    let rt = runtime();
    let replies: Vec<Result<KeyReply, String>> = rt.block_on(async {
        let mut tasks = Vec::new();
        for i in 0..50 {
            let (addr, pw) = if i % 2 == 0 {
                (w1.auth_addr(), None)
            } else {
                (w2.auth_addr(), Some("TopSecret123"))
            };
            let req = request(&format!("agent-{i:02}"), pw);
            tasks.push(tokio::spawn(async move {
                enroll_client(addr, &req, None).await
            }));
        }
        let mut out = Vec::new();
        for t in tasks {
            out.push(t.await.expect("task"));
        }
        out
    });
    let keys: BTreeMap<u32, (String, String)> = replies
        .into_iter()
        .map(|r| {
            let k = r.expect("enrollment succeeds");
            (k.id, (k.name, k.key))
        })
        .collect();
    assert_eq!(keys.len(), 50, "50 distinct ids");

    // Wrong or missing password on worker-02 is refused, and nothing is registered.
    let refused = enroll(&rt, &w2, "intruder", Some("nope"));
    assert_eq!(refused.unwrap_err(), "Invalid password");
    let refused = enroll(&rt, &w2, "intruder", None);
    assert_eq!(refused.unwrap_err(), "Invalid password");
    // A duplicate name is refused with Wazuh's words (force after_registration_time 1h).
    let dup = enroll(&rt, &w1, "agent-00", None);
    assert_eq!(dup.unwrap_err(), "Duplicate agent name: agent-00");

    // The master holds exactly what the agents were told; the workers follow.
    wait_for("master client.keys", LONG, || client_keys(&master) == keys);
    for w in [&w1, &w2] {
        wait_for("worker replica", LONG, || client_keys(w) == keys);
        assert_eq!(w.agent_ids().len(), 50);
    }
    let mode = std::fs::metadata(master.etc().join("client.keys"))
        .expect("keys")
        .permissions();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
        0o600
    );

    // Deletion on the master reaches both workers; deletion asked on a worker goes to the master.
    let first = *keys.keys().next().expect("an agent");
    assert!(master.ctl(&["agents", "delete", &first.to_string()]).0);
    let second = *keys.keys().nth(1).expect("an agent");
    assert!(w2.ctl(&["agents", "delete", &second.to_string()]).0);
    for n in [&master, &w1, &w2] {
        wait_for("deletions everywhere", LONG, || {
            let ids = n.agent_ids();
            ids.len() == 48 && !ids.contains(&first) && !ids.contains(&second)
        });
    }
    let (ok, _) = master.ctl(&["agents", "show", &first.to_string()]);
    assert!(!ok, "a deleted agent is gone");

    // Groups: unknown group refused; a group made on the master is assigned from a worker
    // and its files reach the workers by integrity sync.
    let third = *keys.keys().nth(2).expect("an agent");
    let (ok, _) = w1.ctl(&["agents", "group", &third.to_string(), "linux"]);
    assert!(!ok, "group 'linux' does not exist yet");
    for bad in ["..", ".", "default/../.."] {
        let (ok, _) = master.ctl(&["agents", "group", &third.to_string(), bad]);
        assert!(!ok, "group name {bad:?} refused");
    }
    let linux = master.etc().join("shared/linux");
    std::fs::create_dir_all(&linux).expect("group dir");
    std::fs::write(
        linux.join("agent.conf"),
        "<agent_config os=\"Linux\">\n</agent_config>\n",
    )
    .expect("agent.conf");
    assert!(w1.ctl(&["agents", "group", &third.to_string(), "linux"]).0);
    for n in [&master, &w1, &w2] {
        wait_for("group everywhere", LONG, || {
            n.ctl(&["agents", "show", &third.to_string()])
                .1
                .contains("\"linux\"")
        });
    }
    for w in [&w1, &w2] {
        let f = w.etc().join("shared/linux/agent.conf");
        wait_for("group files on workers", LONG, || f.exists());
        // Keys never leave through the control socket.
        let (_, shown) = w.ctl(&["agents", "show", &third.to_string()]);
        assert!(!shown.contains(&keys[&third].1));
    }
    assert!(master
        .log()
        .contains("[Master] [Main] Serving on ('127.0.0.1',"));
    assert!(w1
        .log()
        .contains("[Worker worker-01] [Main] Successfully connected to master."));
}

#[test]
fn agent_info_is_recorded_for_known_agents_only() {
    let mut master = Node::new(NodeSpec::master("master-node"));
    master.start();
    let mut w1 = Node::new(NodeSpec::worker("worker-01", &master.spec));
    w1.start();
    let rt = runtime();
    let a = enroll(&rt, &w1, "reporter", None).expect("enroll");
    // The agent reports with a group (from its own configuration) the master has none for.
    let report = |id: u32, name: &str| {
        let json = format!(
            r#"{{"cmd":"agent_status","report":{{"id":{id},"name":"{name}","version":"Wazuh v4.14.0","os":"Ubuntu 22.04","labels":{{"env":"test"}},"status":"active","last_keepalive":1700000000,"groups":["default"]}}}}"#
        );
        control_raw(&w1, &json)
    };
    assert!(report(a.id, "reporter").contains("\"ok\":true"));
    assert!(report(999, "ghost").contains("\"ok\":true"));
    wait_for("status on the master", LONG, || {
        let (_, out) = master.ctl(&["agents", "show", &a.id.to_string()]);
        out.contains("\"active\"") && out.contains("Ubuntu 22.04") && out.contains("worker-01")
    });
    let (_, shown) = master.ctl(&["agents", "show", &a.id.to_string()]);
    assert!(
        shown.contains("\"default\""),
        "group taken from the worker's report: {shown}"
    );
    wait_for("adoption logged", LONG, || {
        master.log().contains("Took the group assignment of agent")
    });
    // The master does not invent agents from status reports.
    assert_eq!(master.agent_ids(), vec![a.id]);
}

/// One raw JSON line to a node's control socket.
fn control_raw(n: &Node, line: &str) -> String {
    use std::io::{BufRead, BufReader, Write};
    let mut s =
        std::os::unix::net::UnixStream::connect(n.home().join("queue/cluster/c-internal.sock"))
            .expect("control socket");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    s.write_all(format!("{line}\n").as_bytes()).expect("write");
    let mut out = String::new();
    BufReader::new(s).read_line(&mut out).expect("answer");
    out
}

#[test]
fn workers_with_a_wrong_key_another_cluster_or_a_taken_name_are_rejected() {
    let mut master = Node::new(NodeSpec::master("master-node"));
    master.start();
    let mut good = Node::new(NodeSpec::worker("worker-01", &master.spec));
    good.start();
    wait_for("worker-01 joined", LONG, || {
        master.cluster_nodes().len() == 2
    });

    let mut spec = NodeSpec::worker("worker-bad-key", &master.spec);
    spec.key = "00000000000000000000000000000000".into();
    let mut bad_key = Node::new(spec);
    bad_key.start();
    let mut spec = NodeSpec::worker("worker-other", &master.spec);
    spec.cluster = "other".into();
    let mut other = Node::new(spec);
    other.start();
    let mut twin = Node::new(NodeSpec::worker("worker-01", &master.spec));
    twin.start();

    wait_for("wrong key logged on the master", LONG, || {
        master.log().contains("first frame failed authentication")
    });
    wait_for("wrong key logged on the worker", LONG, || {
        bad_key.log().contains("wrong cluster key")
    });
    wait_for("other cluster logged", LONG, || {
        master.log().contains("belongs to cluster 'other'")
            && other.log().contains("belongs to cluster 'other'")
    });
    wait_for("duplicate name logged", LONG, || {
        master.log().contains("duplicate node name 'worker-01'")
            && twin.log().contains("duplicate node name")
    });
    assert_eq!(master.cluster_nodes(), vec!["master-node", "worker-01"]);
}

#[test]
fn a_worker_killed_and_restarted_catches_up() {
    let mut master = Node::new(NodeSpec::master("master-node"));
    master.start();
    let mut w = Node::new(NodeSpec::worker("worker-01", &master.spec));
    w.start();
    let rt = runtime();
    let a = enroll(&rt, &master, "early", None).expect("enroll");
    wait_for("replica has the first agent", LONG, || {
        w.agent_ids() == vec![a.id]
    });
    w.kill9();

    // While it is down: new agents, a deletion and new rules.
    let mut expected = Vec::new();
    for i in 0..5 {
        let k = enroll(&rt, &master, &format!("late-{i}"), None).expect("enroll");
        expected.push(k.id);
    }
    assert!(master.ctl(&["agents", "delete", &a.id.to_string()]).0);
    std::fs::create_dir_all(master.etc().join("rules/extra")).expect("dir");
    std::fs::write(
        master.etc().join("rules/extra/local_rules.xml"),
        "<group name=\"local\"/>\n",
    )
    .expect("rule");

    w.start();
    wait_for("worker catches up on agents", LONG, || {
        w.agent_ids() == expected
    });
    wait_for("worker catches up on files", LONG, || {
        std::fs::read_to_string(w.etc().join("rules/extra/local_rules.xml"))
            .is_ok_and(|s| s.contains("local"))
    });
}

#[test]
fn master_killed_during_enrollments_keeps_every_acknowledged_agent() {
    let mut master = Node::new(NodeSpec::master("master-node"));
    master.start();
    let addr = master.auth_addr();
    let rt = runtime();
    // Enroll continuously from 8 clients; kill -9 the master after some have been answered.
    let acked = std::sync::Arc::new(std::sync::Mutex::new(Vec::<KeyReply>::new()));
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut tasks = Vec::new();
    for c in 0..8 {
        let (acked, stop) = (acked.clone(), stop.clone());
        tasks.push(rt.spawn(async move {
            let mut i = 0;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                if let Ok(k) = enroll_client(addr, &request(&format!("c{c}-{i}"), None), None).await
                {
                    acked.lock().expect("lock").push(k);
                }
                i += 1;
            }
        }));
    }
    wait_for("some acknowledged enrollments", LONG, || {
        acked.lock().expect("lock").len() >= 60
    });
    master.kill9();
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    for t in tasks {
        let _ = rt.block_on(t);
    }
    let acked = acked.lock().expect("lock").clone();
    master.start();
    let (_, list) = master.ctl(&["agents", "list"]);
    for k in &acked {
        assert!(
            list.contains(&k.name),
            "acknowledged agent {} ({}) lost",
            k.id,
            k.name
        );
        wait_for("client.keys rewritten", LONG, || {
            client_keys(&master).contains_key(&k.id)
        });
    }
    let keys_after = client_keys(&master);
    for k in &acked {
        assert_eq!(
            keys_after.get(&k.id),
            Some(&(k.name.clone(), k.key.clone())),
            "key of {}",
            k.name
        );
    }
}

#[test]
fn check_validates_and_names_the_element() {
    let mut spec = NodeSpec::master("master-node");
    spec.key = "tooshort".into();
    let n = Node::new(spec);
    let out = std::process::Command::new(common::BIN)
        .args(["manager", "--check", "--home"])
        .arg(n.home())
        .output()
        .expect("run");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("ossec.conf:"), "{err}");
    assert!(err.contains("<key>"), "{err}");
    let good = Node::new(NodeSpec::master("master-node"));
    let out = std::process::Command::new(common::BIN)
        .args(["manager", "--check", "--home"])
        .arg(good.home())
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
