//! `logs/archives/archives.json`: durable, deduplicated storage of agent events and the
//! recovery of every agent's high-water mark.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};

use manager::archives::index::{Checkpoint, FileId};
use manager::archives::line::{parse_key, LineFormat};
use manager::archives::{ArchiveError, ArchivedEvent, Archives, Batch};
use manager::home::Home;
use serde_json::Value;

fn home() -> (tempfile::TempDir, Home) {
    let dir = tempfile::tempdir().unwrap();
    let home = Home::new(dir.path());
    home.ensure_layout().unwrap();
    (dir, home)
}

fn open(home: &Home) -> Archives {
    Archives::open(home, "wazuh", "worker1").unwrap()
}

fn ev(seq: u64) -> ArchivedEvent {
    ArchivedEvent {
        seq,
        ts_ms: 1_700_000_000_000 + seq as i64,
        location: "/var/log/syslog".into(),
        log: format!("event {seq}").into_bytes(),
    }
}

fn batch(agent_id: u32, seqs: &[u64]) -> Batch {
    Batch {
        agent_id,
        agent_name: format!("agent{agent_id}"),
        events: seqs.iter().map(|&s| ev(s)).collect(),
    }
}

/// Every line's (agent, seq), in file order; every line must end with '\n' and parse.
fn keys(home: &Home) -> Vec<(u32, u64)> {
    let bytes = fs::read(home.archives_json()).unwrap();
    assert!(bytes.is_empty() || bytes.ends_with(b"\n"));
    bytes
        .split_inclusive(|&b| b == b'\n')
        .map(|l| {
            serde_json::from_slice::<Value>(l).unwrap();
            parse_key(l).unwrap()
        })
        .collect()
}

fn index_path(home: &Home) -> std::path::PathBuf {
    home.archives_queue().join("index.json")
}

#[test]
fn home_paths() {
    let h = Home::new("/var/ossec");
    assert_eq!(
        h.archives_json(),
        std::path::PathBuf::from("/var/ossec/logs/archives/archives.json")
    );
    assert_eq!(
        h.archives_queue(),
        std::path::PathBuf::from("/var/ossec/queue/archives")
    );
    let (_d, h) = home();
    assert!(h.archives_queue().is_dir());
}

#[tokio::test]
async fn line_written_exactly() {
    let (_d, home) = home();
    let a = open(&home);
    let log = b"sshd[1]: \"quoted\" back\\slash\nsecond line \xff\xfe bytes".to_vec();
    let stored = a
        .store(Batch {
            agent_id: 1,
            agent_name: "web\"1".into(),
            events: vec![ArchivedEvent {
                seq: 42,
                ts_ms: 0,
                location: "/var/log/\"syslog\"".into(),
                log,
            }],
        })
        .await
        .unwrap();
    assert_eq!(stored.high_water, 42);
    assert_eq!((stored.written, stored.duplicates), (1, 0));
    a.store(batch(4096, &[1])).await.unwrap();

    let text = fs::read_to_string(home.archives_json()).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    let l = lines[0];
    // Field order, as Wazuh writes archives plus `seq`.
    let order: Vec<usize> = [
        "{\"timestamp\":\"",
        ",\"agent\":{\"id\":\"001\",\"name\":\"web\\\"1\"}",
        ",\"manager\":{\"name\":\"worker1\"}",
        ",\"cluster\":{\"name\":\"wazuh\",\"node\":\"worker1\"}",
        ",\"seq\":42,",
        "\"location\":",
        ",\"full_log\":",
    ]
    .iter()
    .map(|k| l.find(k).unwrap_or_else(|| panic!("{k} in {l}")))
    .collect();
    assert!(order.windows(2).all(|w| w[0] < w[1]), "{l}");
    assert!(l.ends_with("\"}"));

    let v: Value = serde_json::from_str(l).unwrap();
    let ts = v["timestamp"].as_str().unwrap();
    assert_eq!(ts.len(), "2026-11-21T10:00:00.123+0000".len(), "{ts}");
    assert!(ts.ends_with("+0000") && &ts[10..11] == "T" && &ts[19..20] == ".");
    assert!(ts.starts_with("20"));
    assert_eq!(v["agent"]["id"], "001");
    assert_eq!(v["agent"]["name"], "web\"1");
    assert_eq!(v["manager"]["name"], "worker1");
    assert_eq!(v["cluster"]["name"], "wazuh");
    assert_eq!(v["cluster"]["node"], "worker1");
    assert_eq!(v["seq"], 42);
    assert_eq!(v["location"], "/var/log/\"syslog\"");
    assert_eq!(
        v["full_log"],
        "sshd[1]: \"quoted\" back\\slash\nsecond line \u{fffd}\u{fffd} bytes"
    );
    assert_eq!(v.as_object().unwrap().len(), 7);
    let wide: Value = serde_json::from_str(lines[1]).unwrap();
    assert_eq!(wide["agent"]["id"], "4096");

    let mode = fs::metadata(home.archives_json())
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777 & !0o640, 0, "mode {mode:o}");
    a.close();
}

#[tokio::test]
async fn duplicates_dropped_within_and_across_batches() {
    let (_d, home) = home();
    let a = open(&home);
    assert_eq!(a.high_water(7), 0);
    let s = a.store(batch(7, &[1, 2, 2, 3])).await.unwrap();
    assert_eq!((s.high_water, s.written, s.duplicates), (3, 3, 1));
    let s = a.store(batch(7, &[2, 3, 4, 5])).await.unwrap();
    assert_eq!((s.high_water, s.written, s.duplicates), (5, 2, 2));
    let commits = a.stats().commits;
    // Nothing new: answered without a write.
    let s = a.store(batch(7, &[1, 5])).await.unwrap();
    assert_eq!((s.high_water, s.written, s.duplicates), (5, 0, 2));
    assert_eq!(a.stats().commits, commits);
    // Out of order inside a batch: what falls below the mark is a duplicate.
    let s = a.store(batch(7, &[9, 8])).await.unwrap();
    assert_eq!((s.high_water, s.written, s.duplicates), (9, 1, 1));
    // Another agent is independent; a gap is allowed.
    let s = a.store(batch(8, &[3, 4])).await.unwrap();
    assert_eq!((s.high_water, s.written), (4, 2));
    assert_eq!(a.high_water(7), 9);
    assert_eq!(a.high_water(8), 4);
    assert_eq!(a.high_water(9), 0);
    let st = a.stats();
    assert_eq!((st.stored, st.duplicates), (8, 6));
    assert_eq!(st.bytes, fs::metadata(home.archives_json()).unwrap().len());
    assert_eq!(
        keys(&home),
        vec![
            (7, 1),
            (7, 2),
            (7, 3),
            (7, 4),
            (7, 5),
            (7, 9),
            (8, 3),
            (8, 4)
        ]
    );
    a.close();
}

#[tokio::test]
async fn batches_are_queued_in_call_order() {
    let (_d, home) = home();
    let a = open(&home);
    // Created in order, awaited in reverse: the first batch must not become "duplicates".
    let first = a.store(batch(1, &[1, 2, 3]));
    let second = a.store(batch(1, &[4, 5]));
    assert_eq!(second.await.unwrap().high_water, 5);
    let s = first.await.unwrap();
    assert_eq!((s.high_water, s.written), (3, 3));
    assert_eq!(keys(&home), (1..=5).map(|s| (1, s)).collect::<Vec<_>>());
    a.close();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_stores_commit_in_groups() {
    const AGENTS: u32 = 200;
    const BATCHES: u64 = 50;
    let (_d, home) = home();
    let a = open(&home);
    let mut tasks = tokio::task::JoinSet::new();
    for agent in 1..=AGENTS {
        let a = a.clone();
        tasks.spawn(async move {
            for b in 0..BATCHES {
                // Each batch resends the previous batch's last event.
                let seqs: Vec<u64> = (2 * b..=2 * b + 2).filter(|&s| s > 0).collect();
                let s = a.store(batch(agent, &seqs)).await.unwrap();
                assert_eq!(s.high_water, 2 * b + 2);
                assert_eq!(s.written, 2);
                assert_eq!(a.high_water(agent), 2 * b + 2);
            }
        });
    }
    while let Some(r) = tasks.join_next().await {
        r.unwrap();
    }
    let total = u64::from(AGENTS) * BATCHES;
    let st = a.stats();
    assert_eq!(st.stored, total * 2);
    assert_eq!(st.duplicates, u64::from(AGENTS) * (BATCHES - 1));
    assert!(
        st.commits < total,
        "{} commits for {total} batches",
        st.commits
    );
    let k = keys(&home);
    assert_eq!(k.len() as u64, total * 2);
    let unique: HashSet<_> = k.iter().copied().collect();
    assert_eq!(unique.len(), k.len(), "an event was written twice");
    for agent in 1..=AGENTS {
        for seq in 1..=2 * BATCHES {
            assert!(unique.contains(&(agent, seq)), "({agent}, {seq}) missing");
        }
    }
    // Per agent the file is in seq order.
    let mut last: HashMap<u32, u64> = HashMap::new();
    for (agent, seq) in k {
        let prev = last.insert(agent, seq).unwrap_or(0);
        assert!(seq > prev);
    }
    a.close();
}

async fn fill(home: &Home) -> u64 {
    let a = open(home);
    a.store(batch(1, &[1, 2, 3])).await.unwrap();
    a.store(batch(2, &[10, 11])).await.unwrap();
    a.close();
    fs::metadata(home.archives_json()).unwrap().len()
}

fn append_line(home: &Home, agent: u32, seq: u64) {
    let mut buf = Vec::new();
    LineFormat::new("wazuh", "worker1").push(&mut buf, "t", agent, "x", &ev(seq));
    let mut f = fs::OpenOptions::new()
        .append(true)
        .open(home.archives_json())
        .unwrap();
    f.write_all(&buf).unwrap();
}

#[tokio::test]
async fn checkpoint_at_close_then_scan_of_the_rest() {
    let (_d, home) = home();
    let len = fill(&home).await;
    let meta = fs::metadata(home.archives_json()).unwrap();
    let cp = Checkpoint::load(&index_path(&home)).unwrap().unwrap();
    assert_eq!(
        cp,
        Checkpoint {
            file: FileId {
                dev: meta.dev(),
                ino: meta.ino()
            },
            offset: len,
            hw: BTreeMap::from([(1, 3), (2, 11)]),
        }
    );
    // Lines past the checkpoint (written before a crash) are found by the scan.
    append_line(&home, 9, 4);
    append_line(&home, 1, 6);
    let a = open(&home);
    assert_eq!(
        (a.high_water(1), a.high_water(2), a.high_water(9)),
        (6, 11, 4)
    );
    let s = a.store(batch(9, &[4, 5])).await.unwrap();
    assert_eq!((s.written, s.duplicates), (1, 1));
    a.close();

    // The checkpoint is trusted for what it covers: claim the whole file, no marks.
    let len = fs::metadata(home.archives_json()).unwrap().len();
    let cp = Checkpoint::load(&index_path(&home)).unwrap().unwrap();
    Checkpoint {
        offset: len,
        hw: BTreeMap::new(),
        ..cp
    }
    .save(&index_path(&home))
    .unwrap();
    let a = open(&home);
    assert_eq!(a.high_water(1), 0, "covered part not rescanned");
    a.close();
}

#[tokio::test]
async fn without_checkpoint_the_whole_file_is_scanned() {
    let (_d, home) = home();
    fill(&home).await;
    fs::remove_file(index_path(&home)).unwrap();
    let a = open(&home);
    assert_eq!((a.high_water(1), a.high_water(2)), (3, 11));
    let s = a.store(batch(2, &[11, 12])).await.unwrap();
    assert_eq!((s.high_water, s.written, s.duplicates), (12, 1, 1));
    a.close();
}

#[tokio::test]
async fn stale_checkpoint_after_a_crash() {
    let (_d, home) = home();
    fill(&home).await;
    let old = fs::read(index_path(&home)).unwrap();
    let a = open(&home);
    a.store(batch(1, &[4, 5])).await.unwrap();
    a.store(batch(3, &[1])).await.unwrap();
    a.close();
    // As if killed after the stores, before any newer checkpoint.
    fs::write(index_path(&home), old).unwrap();
    let a = open(&home);
    assert_eq!(
        (a.high_water(1), a.high_water(2), a.high_water(3)),
        (5, 11, 1)
    );
    a.close();
}

#[tokio::test]
async fn torn_last_line_is_cut_at_open() {
    let (_d, home) = home();
    let len = fill(&home).await;
    for with_checkpoint in [true, false] {
        if !with_checkpoint {
            fs::remove_file(index_path(&home)).unwrap();
        }
        // A crash in the middle of a write: the key is there, the line is not whole.
        let mut torn = Vec::new();
        LineFormat::new("wazuh", "worker1").push(&mut torn, "t", 1, "x", &ev(999));
        torn.truncate(torn.len() - 5);
        let mut f = fs::OpenOptions::new()
            .append(true)
            .open(home.archives_json())
            .unwrap();
        f.write_all(&torn).unwrap();
        drop(f);

        let a = open(&home);
        assert_eq!(fs::metadata(home.archives_json()).unwrap().len(), len);
        assert_eq!(a.high_water(1), 3);
        a.close();
    }
    let a = open(&home);
    let s = a.store(batch(1, &[4])).await.unwrap();
    assert_eq!((s.high_water, s.written), (4, 1));
    a.close();
    assert_eq!(keys(&home).last(), Some(&(1, 4)));
}

#[tokio::test]
async fn checkpoint_of_another_file_is_ignored_for_offsets() {
    let (_d, home) = home();
    let len = fill(&home).await;
    let meta = fs::metadata(home.archives_json()).unwrap();
    Checkpoint {
        file: FileId {
            dev: meta.dev(),
            ino: meta.ino() + 1,
        },
        offset: len,
        hw: BTreeMap::from([(1, 2), (99, 7)]),
    }
    .save(&index_path(&home))
    .unwrap();
    let a = open(&home);
    // Whole file scanned (agent 1 and 2 from the file), the checkpoint's marks kept.
    assert_eq!(
        (a.high_water(1), a.high_water(2), a.high_water(99)),
        (3, 11, 7)
    );
    a.close();
}

#[tokio::test]
async fn rotated_file_keeps_high_water() {
    let (_d, home) = home();
    fill(&home).await;
    let rotated = home.archives().join("archives.json.1");
    // Moved away while stopped.
    fs::rename(home.archives_json(), &rotated).unwrap();
    let a = open(&home);
    assert_eq!((a.high_water(1), a.high_water(2)), (3, 11));
    let s = a.store(batch(1, &[3, 4])).await.unwrap();
    assert_eq!((s.written, s.duplicates), (1, 1));
    assert_eq!(keys(&home), vec![(1, 4)]);
    // Moved away while running: the next commit goes to a new file at the path.
    fs::rename(
        home.archives_json(),
        home.archives().join("archives.json.2"),
    )
    .unwrap();
    a.store(batch(2, &[12])).await.unwrap();
    assert_eq!(keys(&home), vec![(2, 12)]);
    a.close();
    let meta = fs::metadata(home.archives_json()).unwrap();
    let cp = Checkpoint::load(&index_path(&home)).unwrap().unwrap();
    assert_eq!((cp.file.ino, cp.offset), (meta.ino(), meta.len()));
    assert_eq!(cp.hw, BTreeMap::from([(1, 4), (2, 12)]));
    assert_eq!(
        fs::read(&rotated).unwrap().split(|&b| b == b'\n').count(),
        6
    );
}

#[tokio::test]
async fn failed_write_is_reported_and_the_writer_goes_on() {
    let (_d, home) = home();
    let a = open(&home);
    a.store(batch(1, &[1])).await.unwrap();
    // The path becomes something that cannot be opened as a file.
    fs::rename(home.archives_json(), home.archives().join("old.json")).unwrap();
    fs::create_dir(home.archives_json()).unwrap();
    let err = a.store(batch(1, &[2, 3])).await.unwrap_err();
    assert!(matches!(err, ArchiveError::Io { .. }), "{err}");
    assert_eq!(a.high_water(1), 1, "nothing of a failed batch counts");
    fs::remove_dir(home.archives_json()).unwrap();
    let s = a.store(batch(1, &[2, 3])).await.unwrap();
    assert_eq!((s.high_water, s.written), (3, 2));
    assert_eq!(keys(&home), vec![(1, 2), (1, 3)]);
    a.close();
}

#[tokio::test]
async fn store_after_close_fails() {
    let (_d, home) = home();
    let a = open(&home);
    let other = a.clone();
    a.store(batch(5, &[1])).await.unwrap();
    a.close();
    assert!(matches!(
        other.store(batch(5, &[2])).await,
        Err(ArchiveError::Closed)
    ));
    assert_eq!(other.high_water(5), 1);
    other.close();
    assert_eq!(keys(&home), vec![(5, 1)]);
}

#[tokio::test]
async fn dropping_every_handle_stores_what_was_queued() {
    let (_d, home) = home();
    let a = open(&home);
    let pending = a.store(batch(3, &[1, 2]));
    drop(a);
    assert_eq!(pending.await.unwrap().high_water, 2);
    // The writer stops on its own and leaves a checkpoint.
    let path = index_path(&home);
    let mut tries = 0;
    let cp = loop {
        match Checkpoint::load(&path).unwrap() {
            Some(cp) => break cp,
            None if tries < 500 => {
                tries += 1;
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
            None => panic!("no checkpoint"),
        }
    };
    assert_eq!(cp.hw, BTreeMap::from([(3, 2)]));
}
