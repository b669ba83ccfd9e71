//! Registry: the state machine's Wazuh authd rules, the durable store, replication.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use manager::registry::{
    AgentReport, AgentStatus, Command, ForcePolicy, Outcome, Registry, RegistryError,
    RegistryOptions, RejectReason, State,
};
use proptest::prelude::*;

const KEY_A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const KEY_B: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

fn reg(name: &str, ip: &str, time: i64, force: &ForcePolicy) -> Command {
    Command::Register {
        name: name.into(),
        ip: ip.into(),
        key: KEY_A.into(),
        groups: vec![],
        time,
        force: force.clone(),
        key_hash: None,
    }
}

fn reg_hash(name: &str, time: i64, force: &ForcePolicy, hash: &str) -> Command {
    Command::Register {
        name: name.into(),
        ip: "any".into(),
        key: KEY_B.into(),
        groups: vec![],
        time,
        force: force.clone(),
        key_hash: Some(hash.into()),
    }
}

fn report(id: u32, status: AgentStatus) -> AgentReport {
    AgentReport {
        id,
        name: None,
        version: Some("Wazuh v4.14.0".into()),
        os: Some("Ubuntu 24.04".into()),
        labels: BTreeMap::new(),
        status,
        last_keepalive: None,
        groups: None,
    }
}

fn info(node: &str, time: i64, items: Vec<AgentReport>) -> Command {
    Command::AgentInfo {
        node: node.into(),
        time,
        items,
    }
}

/// Applies with consecutive indexes, like the store does.
struct Sm(State);

impl Sm {
    fn new() -> Sm {
        Sm(State::new())
    }
    fn run(&mut self, cmd: Command) -> Outcome {
        let i = self.0.applied() + 1;
        self.0.apply(i, &cmd)
    }
}

fn force_on() -> ForcePolicy {
    ForcePolicy {
        enabled: true,
        ..ForcePolicy::default()
    }
}

fn rejected(o: &Outcome) -> Option<&RejectReason> {
    match o {
        Outcome::Rejected(r) => Some(r),
        _ => None,
    }
}

// ---------- state rules ----------

#[test]
fn duplicate_name_without_force_is_rejected_and_changes_nothing() {
    let mut sm = Sm::new();
    assert!(
        matches!(sm.run(reg("web", "any", 0, &ForcePolicy::default())), Outcome::Registered(a) if a.id == 1 && a.status == AgentStatus::NeverConnected)
    );
    let before = sm.0.clone();
    let out = sm.run(reg("web", "any", 10_000, &ForcePolicy::default()));
    assert_eq!(
        out,
        Outcome::Rejected(RejectReason::DuplicateName("web".into()))
    );
    assert!(out.is_rejected());
    assert_eq!(sm.0, before);
    assert_eq!(
        rejected(&out).map(|r| r.to_string()).as_deref(),
        Some("Duplicate agent name: web")
    );
}

#[test]
fn duplicate_name_with_force_replaces_with_a_new_id() {
    let mut sm = Sm::new();
    sm.run(reg("web", "any", 0, &force_on()));
    let out = sm.run(reg("web", "any", 5, &force_on()));
    let Outcome::Replaced { old, agent } = out else {
        panic!("expected Replaced, got {out:?}");
    };
    assert_eq!((old, agent.id), (1, 2));
    assert!(sm.0.get(1).is_none());
    assert_eq!(sm.0.by_name("web").map(|a| a.id), Some(2));
    assert_eq!(sm.0.len(), 1);
}

#[test]
fn after_registration_time_is_respected() {
    let f = ForcePolicy {
        enabled: true,
        after_registration_time: 3600,
        ..ForcePolicy::default()
    };
    let mut sm = Sm::new();
    sm.run(reg("web", "any", 1000, &f));
    assert!(sm.run(reg("web", "any", 1000 + 3599, &f)).is_rejected());
    assert!(matches!(
        sm.run(reg("web", "any", 1000 + 3600, &f)),
        Outcome::Replaced { old: 1, .. }
    ));
}

#[test]
fn disconnected_time_needs_a_long_enough_disconnection() {
    let f = ForcePolicy {
        enabled: true,
        disconnected_time: Some(600),
        ..ForcePolicy::default()
    };
    let mut sm = Sm::new();
    sm.run(reg("web", "any", 0, &f));
    // Never connected: measured from registration.
    assert!(sm.run(reg("web", "any", 599, &f)).is_rejected());

    // Active agents are never replaced while disconnected_time is on.
    let mut r = report(1, AgentStatus::Active);
    r.last_keepalive = Some(1000);
    sm.run(info("node01", 1000, vec![r]));
    assert!(sm.run(reg("web", "any", 1_000_000, &f)).is_rejected());

    // Disconnected: measured from the last keep-alive.
    let mut r = report(1, AgentStatus::Disconnected);
    r.last_keepalive = Some(2000);
    sm.run(info("node01", 2100, vec![r]));
    assert!(sm.run(reg("web", "any", 2599, &f)).is_rejected());
    assert!(matches!(
        sm.run(reg("web", "any", 2600, &f)),
        Outcome::Replaced { old: 1, .. }
    ));
}

#[test]
fn never_connected_agent_replaced_after_disconnected_time() {
    let f = ForcePolicy {
        enabled: true,
        disconnected_time: Some(60),
        ..ForcePolicy::default()
    };
    let mut sm = Sm::new();
    sm.run(reg("web", "any", 0, &f));
    assert!(matches!(
        sm.run(reg("web", "any", 60, &f)),
        Outcome::Replaced { old: 1, .. }
    ));
}

#[test]
fn duplicate_ip_rules() {
    let mut sm = Sm::new();
    sm.run(reg("web1", "10.0.0.1", 0, &ForcePolicy::default()));
    // "any" never conflicts.
    assert!(matches!(
        sm.run(reg("web2", "any", 0, &ForcePolicy::default())),
        Outcome::Registered(_)
    ));
    assert!(matches!(
        sm.run(reg("web3", "any", 0, &ForcePolicy::default())),
        Outcome::Registered(_)
    ));
    let out = sm.run(reg("web4", "10.0.0.1", 0, &ForcePolicy::default()));
    assert_eq!(
        out,
        Outcome::Rejected(RejectReason::DuplicateIp("10.0.0.1".into()))
    );
    assert_eq!(
        rejected(&out).map(|r| r.to_string()).as_deref(),
        Some("Duplicate IP: 10.0.0.1")
    );
    // With force the IP holder is replaced, under another name.
    let out = sm.run(reg("web4", "10.0.0.1", 10, &force_on()));
    assert!(
        matches!(out, Outcome::Replaced { old: 1, ref agent } if agent.name == "web4" && agent.id == 4)
    );
    assert!(sm.0.by_name("web1").is_none());
    assert_eq!(sm.0.by_ip("10.0.0.1").map(|a| a.id), Some(4));
}

#[test]
fn key_mismatch_skips_time_conditions_but_needs_force() {
    let strict = ForcePolicy {
        enabled: true,
        key_mismatch: true,
        disconnected_time: Some(3600),
        after_registration_time: 3600,
    };
    let mut sm = Sm::new();
    sm.run(reg("web", "any", 0, &strict));
    // No hash: time conditions apply.
    assert!(sm.run(reg("web", "any", 10, &strict)).is_rejected());
    // The agent proves the same key: authd refuses ("key already exists").
    assert!(sm.run(reg_hash("web", 10, &strict, KEY_A)).is_rejected());
    // force disabled: never replaced.
    let off = ForcePolicy {
        enabled: false,
        ..strict.clone()
    };
    assert!(sm.run(reg_hash("web", 10, &off, "other")).is_rejected());
    // key_mismatch off: the hash does not matter, time conditions apply.
    let no_km = ForcePolicy {
        key_mismatch: false,
        ..strict.clone()
    };
    assert!(sm.run(reg_hash("web", 10, &no_km, "other")).is_rejected());
    // A different key replaces at once.
    let out = sm.run(reg_hash("web", 10, &strict, "other"));
    assert!(matches!(out, Outcome::Replaced { old: 1, ref agent } if agent.key == KEY_B));
}

#[test]
fn delete_and_unknown_delete() {
    let mut sm = Sm::new();
    sm.run(reg("web", "10.0.0.9", 0, &ForcePolicy::default()));
    let out = sm.run(Command::Delete { id: 1 });
    assert!(matches!(out, Outcome::Deleted(ref a) if a.name == "web"));
    assert!(sm.0.is_empty());
    assert!(sm.0.by_ip("10.0.0.9").is_none());
    let before = sm.0.clone();
    let out = sm.run(Command::Delete { id: 5 });
    assert_eq!(out, Outcome::Rejected(RejectReason::NoSuchAgent(5)));
    assert_eq!(
        rejected(&out).map(|r| r.to_string()).as_deref(),
        Some("Agent 005 doesn't exist")
    );
    assert_eq!(sm.0, before);
    // The name and IP are free again; the id is not reused.
    assert!(
        matches!(sm.run(reg("web", "10.0.0.9", 1, &ForcePolicy::default())), Outcome::Registered(a) if a.id == 2)
    );
}

#[test]
fn set_groups() {
    let mut sm = Sm::new();
    sm.run(reg("web", "any", 0, &ForcePolicy::default()));
    let out = sm.run(Command::SetGroups {
        id: 1,
        groups: vec!["default".into(), "linux".into()],
    });
    assert!(matches!(out, Outcome::GroupsSet(ref a) if a.groups == ["default", "linux"]));
    assert_eq!(sm.0.get(1).map(|a| a.groups.len()), Some(2));
    assert_eq!(
        sm.run(Command::SetGroups {
            id: 9,
            groups: vec![]
        }),
        Outcome::Rejected(RejectReason::NoSuchAgent(9))
    );
}

#[test]
fn agent_info_updates_known_agents_and_reports_unknown_ones() {
    let mut sm = Sm::new();
    sm.run(reg("web", "any", 0, &ForcePolicy::default()));
    sm.run(reg("db", "any", 0, &ForcePolicy::default()));
    sm.run(Command::Delete { id: 2 });
    let mut named_wrong = report(1, AgentStatus::Active);
    named_wrong.name = Some("not-web".into());
    let mut ok = report(1, AgentStatus::Active);
    ok.name = Some("web".into());
    ok.labels.insert("env".into(), "prod".into());
    let out = sm.run(info(
        "worker1",
        500,
        vec![
            named_wrong,
            ok,
            report(2, AgentStatus::Active),
            report(77, AgentStatus::Active),
        ],
    ));
    assert_eq!(
        out,
        Outcome::InfoApplied {
            applied: 1,
            unknown: vec![1, 2, 77],
            groups_adopted: vec![]
        }
    );
    let a = sm.0.get(1).cloned();
    let a = a.as_ref();
    assert_eq!(a.map(|a| a.status), Some(AgentStatus::Active));
    assert_eq!(a.and_then(|a| a.node.as_deref()), Some("worker1"));
    assert_eq!(a.and_then(|a| a.version.as_deref()), Some("Wazuh v4.14.0"));
    assert_eq!(a.and_then(|a| a.last_keepalive), Some(500));
    assert_eq!(
        a.and_then(|a| a.labels.get("env")).map(String::as_str),
        Some("prod")
    );
    assert!(sm.0.get(2).is_none(), "a deleted agent must not come back");
}

#[test]
fn agent_info_adopts_groups_only_when_registry_has_none() {
    let mut sm = Sm::new();
    sm.run(reg("web", "any", 0, &ForcePolicy::default()));
    sm.run(Command::Register {
        name: "db".into(),
        ip: "any".into(),
        key: KEY_A.into(),
        groups: vec!["database".into()],
        time: 0,
        force: ForcePolicy::default(),
        key_hash: None,
    });
    let mut r1 = report(1, AgentStatus::Active);
    r1.groups = Some(vec!["web".into()]);
    let mut r2 = report(2, AgentStatus::Active);
    r2.groups = Some(vec!["other".into()]);
    let out = sm.run(info("worker1", 10, vec![r1, r2]));
    assert_eq!(
        out,
        Outcome::InfoApplied {
            applied: 2,
            unknown: vec![],
            groups_adopted: vec![1]
        }
    );
    assert_eq!(
        sm.0.get(1).map(|a| a.groups.clone()),
        Some(vec!["web".to_string()])
    );
    assert_eq!(
        sm.0.get(2).map(|a| a.groups.clone()),
        Some(vec!["database".to_string()])
    );
}

#[test]
fn stale_disconnect_from_a_previous_node_is_ignored() {
    let mut sm = Sm::new();
    sm.run(reg("web", "any", 0, &ForcePolicy::default()));
    sm.run(info("worker2", 10, vec![report(1, AgentStatus::Active)]));
    sm.run(info(
        "worker1",
        20,
        vec![report(1, AgentStatus::Disconnected)],
    ));
    assert_eq!(sm.0.get(1).map(|a| a.status), Some(AgentStatus::Active));
    assert_eq!(
        sm.0.get(1).and_then(|a| a.node.clone()).as_deref(),
        Some("worker2")
    );
    // The node it is on may disconnect it.
    sm.run(info(
        "worker2",
        30,
        vec![report(1, AgentStatus::Disconnected)],
    ));
    assert_eq!(
        sm.0.get(1).map(|a| a.status),
        Some(AgentStatus::Disconnected)
    );
}

#[test]
fn command_log_format_is_externally_tagged_json() {
    let c = Command::Delete { id: 3 };
    assert_eq!(
        serde_json::to_string(&c).ok().as_deref(),
        Some(r#"{"Delete":{"id":3}}"#)
    );
    let back: Command = serde_json::from_str(r#"{"SetGroups":{"id":1,"groups":["a"]}}"#)
        .unwrap_or(Command::Delete { id: 0 });
    assert_eq!(
        back,
        Command::SetGroups {
            id: 1,
            groups: vec!["a".into()]
        }
    );
}

// ---------- proptest: determinism ----------

fn arb_force() -> impl Strategy<Value = ForcePolicy> {
    (
        any::<bool>(),
        any::<bool>(),
        proptest::option::of(0u64..50),
        0u64..50,
    )
        .prop_map(
            |(enabled, key_mismatch, disconnected_time, after_registration_time)| ForcePolicy {
                enabled,
                key_mismatch,
                disconnected_time,
                after_registration_time,
            },
        )
}

fn arb_status() -> impl Strategy<Value = AgentStatus> {
    prop_oneof![
        Just(AgentStatus::NeverConnected),
        Just(AgentStatus::Pending),
        Just(AgentStatus::Active),
        Just(AgentStatus::Disconnected),
    ]
}

fn arb_report() -> impl Strategy<Value = AgentReport> {
    (
        0u32..12,
        proptest::option::of(0usize..4),
        arb_status(),
        proptest::option::of(0i64..200),
        proptest::option::of(proptest::collection::vec("[a-c]", 0..3)),
    )
        .prop_map(|(id, name, status, ka, groups)| AgentReport {
            id,
            name: name.map(|n| format!("n{n}")),
            version: None,
            os: None,
            labels: BTreeMap::new(),
            status,
            last_keepalive: ka,
            groups,
        })
}

fn arb_command() -> impl Strategy<Value = Command> {
    prop_oneof![
        4 => (0usize..4, prop_oneof![Just("any"), Just("10.0.0.1"), Just("10.0.0.2")], 0i64..200, arb_force(), proptest::option::of(prop_oneof![Just(KEY_A), Just(KEY_B)]))
            .prop_map(|(n, ip, time, force, kh)| Command::Register {
                name: format!("n{n}"),
                ip: ip.into(),
                key: KEY_A.into(),
                groups: vec![],
                time,
                force,
                key_hash: kh.map(str::to_string),
            }),
        1 => (0u32..12).prop_map(|id| Command::Delete { id }),
        1 => (0u32..12, proptest::collection::vec("[a-c]", 0..3)).prop_map(|(id, groups)| Command::SetGroups { id, groups }),
        2 => ("w[12]", 0i64..200, proptest::collection::vec(arb_report(), 0..4))
            .prop_map(|(node, time, items)| Command::AgentInfo { node, time, items }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn apply_is_deterministic_and_ids_unique(cmds in proptest::collection::vec(arb_command(), 0..60)) {
        let mut a = Sm::new();
        let mut b = Sm::new();
        let mut ids = BTreeSet::new();
        for cmd in &cmds {
            let before = a.0.clone();
            let oa = a.run(cmd.clone());
            let ob = b.run(cmd.clone());
            prop_assert_eq!(&oa, &ob);
            match &oa {
                Outcome::Registered(ag) | Outcome::Replaced { agent: ag, .. } => {
                    prop_assert!(ids.insert(ag.id), "id {} reused", ag.id);
                    prop_assert!(ag.id >= 1);
                }
                Outcome::Rejected(_) => prop_assert_eq!(&a.0, &before),
                _ => {}
            }
            // Names and non-"any" IPs stay unique.
            let names: BTreeSet<_> = a.0.agents().map(|x| x.name.clone()).collect();
            prop_assert_eq!(names.len(), a.0.len());
        }
        prop_assert_eq!(&a.0, &b.0);
        // A state rebuilt from its rows (what a snapshot carries) behaves the same.
        let rebuilt = State::from_parts(a.0.applied(), a.0.next_id(), a.0.agents().cloned());
        prop_assert_eq!(&rebuilt, &a.0);
    }
}

// ---------- store ----------

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("runtime: {e}"))
}

fn open(dir: &tempfile::TempDir, name: &str) -> Registry {
    Registry::open(&dir.path().join("sub").join(name)).unwrap_or_else(|e| panic!("open: {e}"))
}

fn reg_default(name: &str) -> Command {
    reg(name, "any", 0, &ForcePolicy::default())
}

#[test]
fn reopen_after_drop_keeps_everything() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let rt = rt();
    let before = {
        let r = open(&dir, "reg.redb");
        rt.block_on(async {
            for i in 0..5 {
                let (idx, out) = r
                    .submit(reg_default(&format!("agent{i}")))
                    .await
                    .unwrap_or_else(|e| panic!("{e}"));
                assert_eq!(idx, i + 1);
                assert!(matches!(out, Outcome::Registered(_)));
            }
            r.submit(Command::Delete { id: 2 })
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            r.submit(Command::SetGroups {
                id: 3,
                groups: vec!["g".into()],
            })
            .await
            .unwrap_or_else(|e| panic!("{e}"));
            // Rejected: answered with the current index, not logged.
            let (idx, out) = r
                .submit(reg_default("agent0"))
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(idx, 7);
            assert!(out.is_rejected());
        });
        assert_eq!(r.applied(), 7);
        r.snapshot()
    };
    let r = open(&dir, "reg.redb");
    let after = r.snapshot();
    assert_eq!(before, after);
    assert_eq!(after.index, 7);
    assert_eq!(after.next_id, 6);
    assert_eq!(r.list().len(), 4);
    assert_eq!(r.get(3).map(|a| a.groups), Some(vec!["g".to_string()]));
    assert_eq!(r.by_name("agent4").map(|a| a.id), Some(5));
    let log = r
        .entries_since(0)
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_default();
    assert_eq!(
        log.iter().map(|(i, _)| *i).collect::<Vec<_>>(),
        (1..=7).collect::<Vec<_>>()
    );
    // New ids continue after the reopen.
    let out = rt
        .block_on(r.submit(reg_default("agent9")))
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(matches!(out, (8, Outcome::Registered(ref a)) if a.id == 6));
}

#[test]
fn concurrent_distinct_submits_get_distinct_ids() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let r = Arc::new(open(&dir, "reg.redb"));
    let rt = rt();
    let mut ids: Vec<u32> = rt.block_on(async {
        let mut tasks = Vec::new();
        for i in 0..200 {
            let r = Arc::clone(&r);
            tasks.push(tokio::spawn(async move {
                r.submit(reg_default(&format!("agent{i}"))).await
            }));
        }
        let mut ids = Vec::new();
        for t in tasks {
            let res = tokio::time::timeout(Duration::from_secs(60), t).await;
            match res {
                Ok(Ok(Ok((_, Outcome::Registered(a))))) => ids.push(a.id),
                other => panic!("unexpected {other:?}"),
            }
        }
        ids
    });
    ids.sort_unstable();
    assert_eq!(ids, (1..=200).collect::<Vec<u32>>());
    assert_eq!(r.applied(), 200);
    assert_eq!(r.list().len(), 200);
}

#[test]
fn concurrent_same_name_registers_once() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let r = Arc::new(open(&dir, "reg.redb"));
    let rt = rt();
    let outcomes: Vec<Outcome> = rt.block_on(async {
        let tasks: Vec<_> = (0..20)
            .map(|_| {
                let r = Arc::clone(&r);
                tokio::spawn(async move { r.submit(reg_default("same")).await })
            })
            .collect();
        let mut v = Vec::new();
        for t in tasks {
            match tokio::time::timeout(Duration::from_secs(60), t).await {
                Ok(Ok(Ok((_, o)))) => v.push(o),
                other => panic!("unexpected {other:?}"),
            }
        }
        v
    });
    let registered = outcomes
        .iter()
        .filter(|o| matches!(o, Outcome::Registered(_)))
        .count();
    let dup = outcomes
        .iter()
        .filter(|o| matches!(o, Outcome::Rejected(RejectReason::DuplicateName(n)) if n == "same"))
        .count();
    assert_eq!((registered, dup), (1, 19));
    assert_eq!(r.applied(), 1);
}

fn sync_replica(master: &Registry, replica: &Registry) {
    loop {
        let batch = master
            .entries_since(replica.applied())
            .unwrap_or_else(|e| panic!("{e}"));
        match batch {
            Some(b) if b.is_empty() => break,
            Some(b) => replica
                .apply_replicated(&b)
                .unwrap_or_else(|e| panic!("{e}")),
            None => replica
                .install_snapshot(&master.snapshot())
                .unwrap_or_else(|e| panic!("{e}")),
        }
    }
}

fn mixed_workload(r: &Registry, rt: &tokio::runtime::Runtime, n: usize, t0: i64) {
    rt.block_on(async {
        for i in 0..n {
            let cmd = match i % 5 {
                0 | 1 => reg(&format!("a{}", i % 23), "any", t0 + i as i64, &force_on()),
                2 => Command::SetGroups {
                    id: (i % 7) as u32 + 1,
                    groups: vec![format!("g{i}")],
                },
                3 => info(
                    "worker1",
                    t0 + i as i64,
                    vec![report((i % 9) as u32 + 1, AgentStatus::Active)],
                ),
                _ => Command::Delete {
                    id: (i % 11) as u32 + 1,
                },
            };
            r.submit(cmd).await.unwrap_or_else(|e| panic!("{e}"));
        }
    });
}

#[test]
fn replica_fed_from_the_log_equals_master() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let master = open(&dir, "master.redb");
    let replica = open(&dir, "replica.redb");
    let rt = rt();
    let mut notified = replica.subscribe();
    mixed_workload(&master, &rt, 300, 0);
    sync_replica(&master, &replica);
    assert_eq!(replica.snapshot(), master.snapshot());
    assert_eq!(notified.try_recv().ok().map(|i| i > 0), Some(true));
    // Re-feeding already applied entries is a no-op.
    let again = master
        .entries_since(0)
        .unwrap_or_default()
        .unwrap_or_default();
    replica
        .apply_replicated(&again[..10])
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(replica.snapshot(), master.snapshot());
    // The replica's own log can serve a further replica (promotion).
    let third = open(&dir, "third.redb");
    sync_replica(&replica, &third);
    assert_eq!(third.snapshot(), master.snapshot());
    // And survives a restart.
    drop(replica);
    let replica = open(&dir, "replica.redb");
    assert_eq!(replica.snapshot(), master.snapshot());
}

#[test]
fn gap_is_detected() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let master = open(&dir, "master.redb");
    let replica = open(&dir, "replica.redb");
    mixed_workload(&master, &rt(), 20, 0);
    let log = master
        .entries_since(0)
        .unwrap_or_default()
        .unwrap_or_default();
    assert!(log.len() >= 8, "{}", log.len());
    assert_eq!(log.last().map(|(i, _)| *i), Some(master.applied()));
    let err = replica.apply_replicated(&log[2..]);
    assert!(
        matches!(
            err,
            Err(RegistryError::Gap {
                expected: 1,
                got: 3
            })
        ),
        "{err:?}"
    );
    assert_eq!(replica.applied(), 0);
    // A hole in the middle keeps the consistent prefix.
    let holed: Vec<_> = log[..3].iter().chain(&log[5..]).cloned().collect();
    let err = replica.apply_replicated(&holed);
    assert!(
        matches!(
            err,
            Err(RegistryError::Gap {
                expected: 4,
                got: 6
            })
        ),
        "{err:?}"
    );
    assert_eq!(replica.applied(), 3);
    replica
        .apply_replicated(&log[3..])
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(replica.snapshot(), master.snapshot());
}

#[test]
fn compacted_log_needs_a_snapshot() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let opts = RegistryOptions {
        log_keep: 20,
        log_slack: 5,
    };
    let master =
        Registry::open_with(&dir.path().join("m.redb"), opts).unwrap_or_else(|e| panic!("{e}"));
    let replica = open(&dir, "replica.redb");
    let rt = rt();
    mixed_workload(&master, &rt, 100, 0);
    let applied = master.applied();
    assert!(applied > 40);
    assert!(master
        .entries_since(0)
        .unwrap_or_else(|e| panic!("{e}"))
        .is_none());
    let tail = master
        .entries_since(applied - 20)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(tail.map(|t| t.len()), Some(20));
    // Catch up: snapshot, then the log again.
    replica
        .install_snapshot(&master.snapshot())
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(replica.snapshot(), master.snapshot());
    assert!(replica
        .entries_since(0)
        .unwrap_or_else(|e| panic!("{e}"))
        .is_none());
    mixed_workload(&master, &rt, 10, 1000);
    sync_replica(&master, &replica);
    assert_eq!(replica.snapshot(), master.snapshot());
    // A snapshot installs over existing content and survives a restart.
    drop(replica);
    let replica = open(&dir, "replica.redb");
    assert_eq!(replica.snapshot(), master.snapshot());
}

#[test]
fn subscribe_sees_each_commit() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let r = open(&dir, "reg.redb");
    let mut rx = r.subscribe();
    let rt = rt();
    rt.block_on(async {
        r.submit(reg_default("one"))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let got = tokio::time::timeout(Duration::from_secs(5), rx.recv()).await;
        assert!(matches!(got, Ok(Ok(1))), "{got:?}");
        // A rejected submit commits nothing and notifies nothing.
        r.submit(reg_default("one"))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(rx.try_recv().is_err());
    });
}
