//! Integrity sync between processes: 2,000 files in nested folders reach two workers with
//! identical hashes; then adds, changes and deletes (with emptied folders) follow.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use common::manager::{wait_for, Node, NodeSpec};
use manager::integrity::scan::Scanner;

const LONG: Duration = Duration::from_secs(60);

/// path -> (hash, mode) under a node's etc/ synced folders.
fn tree(etc: &Path) -> BTreeMap<String, (String, u32)> {
    let mut s = Scanner::new(etc.to_path_buf());
    match s.scan() {
        Ok((m, _)) => m
            .iter()
            .map(|(k, v)| (k.clone(), (v.hash.clone(), v.mode)))
            .collect(),
        Err(_) => BTreeMap::new(),
    }
}

fn write(etc: &Path, rel: &str, body: &[u8], mode: u32) {
    let p = etc.join(rel);
    std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
    std::fs::write(&p, body).expect("write");
    std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(mode))
        .expect("chmod");
}

#[test]
fn two_thousand_files_reach_both_workers_then_changes_follow() {
    let mut master = Node::new(NodeSpec::master("master-node"));
    let etc = master.etc();
    let dirs = [
        "rules",
        "decoders",
        "lists",
        "shared/default",
        "shared/linux/deep/er",
    ];
    for i in 0..2000usize {
        let dir = dirs[i % dirs.len()];
        let body = format!("<!-- file {i} -->\n{}", "x".repeat((i * 37) % 5000));
        let mode = if i % 7 == 0 { 0o640 } else { 0o660 };
        write(
            &etc,
            &format!("{dir}/sub{}/file{i}.xml", i % 13),
            body.as_bytes(),
            mode,
        );
    }
    // Never synced: the node's own configuration and editor leftovers.
    write(&etc, "rules/local_rules.xml~", b"backup", 0o640);
    master.start();
    let mut w1 = Node::new(NodeSpec::worker("worker-01", &master.spec));
    let mut w2 = Node::new(NodeSpec::worker("worker-02", &master.spec));
    // A worker's stale file and folder: removed by the sync.
    write(&w1.etc(), "lists/stale/old.cdb", b"stale", 0o640);
    w1.start();
    w2.start();

    let want = tree(&etc);
    assert_eq!(
        want.len(),
        2001,
        "2,000 files and shared/default/agent.conf"
    );
    assert!(!want.contains_key("rules/local_rules.xml~"));
    for w in [&w1, &w2] {
        wait_for("initial sync", LONG, || tree(&w.etc()) == want);
    }
    assert!(
        !w1.etc().join("lists/stale").exists(),
        "emptied folder removed"
    );
    assert!(std::fs::read_to_string(w1.etc().join("ossec.conf"))
        .expect("conf")
        .contains("worker-01"));

    // Adds, changes (content and mode), deletes including a whole nested folder.
    write(
        &etc,
        "rules/new/added.xml",
        b"<group name=\"added\"/>\n",
        0o640,
    );
    write(&etc, "decoders/sub1/file1.xml", b"changed content", 0o660);
    std::fs::set_permissions(
        etc.join("lists/sub2/file2.xml"),
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .expect("chmod");
    std::fs::remove_dir_all(etc.join("shared/linux/deep")).expect("rm");
    std::fs::remove_file(etc.join("rules/sub0/file0.xml")).expect("rm");
    // The master notices on its next integrity round; the workers follow.
    wait_for("master sees the changes", LONG, || {
        let t = tree(&etc);
        t.contains_key("rules/new/added.xml") && !t.contains_key("rules/sub0/file0.xml")
    });
    let want = tree(&etc);
    for w in [&w1, &w2] {
        wait_for("incremental sync", LONG, || tree(&w.etc()) == want);
        assert!(!w.etc().join("shared/linux/deep").exists());
    }
    assert!(w1
        .log()
        .contains("[Integrity sync] Starting. Files to create:"));
    assert!(master.log().contains("[Local integrity] Finished in"));
}
