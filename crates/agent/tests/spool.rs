//! Behaviour of the spools: the same contract tests run against `DiskSpool` and `MemSpool`;
//! recovery, trimming and reopening are disk-only.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use agent::event::{Event, Record, SourcePos, MAX_LOG};
use agent::spool::record::encoded_len;
use agent::spool::{DiskSpool, MemSpool, Spool, SpoolOptions};
use proptest::prelude::*;
use tempfile::TempDir;

const ALL: usize = usize::MAX;

fn ev(i: u64) -> Event {
    Event {
        ts_ms: 1_700_000_000_000 + i as i64,
        location: format!("/var/log/f{}", i % 3),
        log: format!("line {i}").into_bytes(),
        pos: Some(SourcePos {
            dev: 8,
            ino: i % 3,
            offset: i * 10,
        }),
    }
}

fn evs(range: std::ops::RangeInclusive<u64>) -> Vec<Event> {
    range.map(ev).collect()
}

fn seqs(recs: &[Record]) -> Vec<u64> {
    recs.iter().map(|r| r.seq).collect()
}

fn small() -> SpoolOptions {
    SpoolOptions {
        segment_bytes: 4096,
        cache_bytes: 1024,
        index_stride: 500,
        first_seq: 1,
    }
}

/// Each spool kind, with the tempdir kept alive for the disk one.
fn spools(queue_size: u64) -> Vec<(&'static str, Box<dyn Spool>, Option<TempDir>)> {
    let dir = TempDir::new().unwrap();
    let disk = DiskSpool::open_with(&dir.path().join("spool"), queue_size, small()).unwrap();
    vec![
        ("disk", Box::new(disk), Some(dir)),
        ("mem", Box::new(MemSpool::new(queue_size)), None),
    ]
}

fn seg_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "seg"))
        .collect();
    v.sort();
    v
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for e in fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}

#[test]
fn seqs_are_consecutive_from_one() {
    for (kind, mut s, _d) in spools(1000) {
        assert_eq!(s.next_seq(), 1, "{kind}");
        let a = s.append(evs(1..=3)).unwrap();
        assert_eq!((a.first, a.last, a.dropped), (1, 3, 0), "{kind}");
        let a = s.append(evs(4..=4)).unwrap();
        assert_eq!((a.first, a.last), (4, 4), "{kind}");
        assert_eq!((s.next_seq(), s.pending(), s.acked()), (5, 4, 0), "{kind}");
        let recs = s.read_from(1, ALL, ALL).unwrap();
        assert_eq!(seqs(&recs), vec![1, 2, 3, 4], "{kind}");
        for r in &recs {
            assert_eq!(r.event, ev(r.seq), "{kind}");
        }
    }
}

#[test]
fn empty_append_assigns_nothing() {
    for (kind, mut s, _d) in spools(10) {
        s.append(evs(1..=2)).unwrap();
        let a = s.append(Vec::new()).unwrap();
        assert_eq!((a.first, a.last, a.dropped), (3, 2, 0), "{kind}");
        assert_eq!(s.next_seq(), 3, "{kind}");
    }
}

#[test]
fn read_from_ack_and_trim() {
    for (kind, mut s, _d) in spools(1000) {
        s.append(evs(1..=10)).unwrap();
        s.ack(4).unwrap();
        assert_eq!((s.acked(), s.pending()), (4, 6), "{kind}");
        assert_eq!(
            seqs(&s.read_from(1, ALL, ALL).unwrap()),
            (5..=10).collect::<Vec<_>>(),
            "{kind}"
        );
        assert_eq!(seqs(&s.read_from(7, 2, ALL).unwrap()), vec![7, 8], "{kind}");
        // Lower than acked: nothing happens.
        s.ack(2).unwrap();
        assert_eq!(s.acked(), 4, "{kind}");
        // Beyond the last seq: clamped.
        s.ack(1_000).unwrap();
        assert_eq!(
            (s.acked(), s.pending(), s.next_seq()),
            (10, 0, 11),
            "{kind}"
        );
        assert!(s.read_from(1, ALL, ALL).unwrap().is_empty(), "{kind}");
        assert!(s.read_from(11, ALL, ALL).unwrap().is_empty(), "{kind}");
        assert_eq!(s.append(evs(11..=11)).unwrap().first, 11, "{kind}");
        assert_eq!(seqs(&s.read_from(0, ALL, ALL).unwrap()), vec![11], "{kind}");
    }
}

#[test]
fn read_from_respects_limits() {
    for (kind, mut s, _d) in spools(1000) {
        s.append(evs(1..=10)).unwrap();
        let one = encoded_len(&ev(1));
        // Too small for any record: still one.
        assert_eq!(seqs(&s.read_from(1, ALL, 1).unwrap()), vec![1], "{kind}");
        assert_eq!(
            seqs(&s.read_from(1, ALL, 3 * one).unwrap()),
            vec![1, 2, 3],
            "{kind}"
        );
        assert_eq!(
            seqs(&s.read_from(3, 4, ALL).unwrap()),
            vec![3, 4, 5, 6],
            "{kind}"
        );
        assert!(s.read_from(1, 0, ALL).unwrap().is_empty(), "{kind}");
    }
}

#[test]
fn bound_drops_oldest_and_counts() {
    for (kind, mut s, _d) in spools(5) {
        assert_eq!(s.append(evs(1..=3)).unwrap().dropped, 0, "{kind}");
        let a = s.append(evs(4..=7)).unwrap();
        assert_eq!((a.first, a.last, a.dropped), (4, 7, 2), "{kind}");
        assert_eq!((s.pending(), s.dropped()), (5, 2), "{kind}");
        assert_eq!(
            seqs(&s.read_from(1, ALL, ALL).unwrap()),
            vec![3, 4, 5, 6, 7],
            "{kind}"
        );
        // A batch larger than the bound keeps only its newest events.
        let a = s.append(evs(8..=19)).unwrap();
        assert_eq!(a.dropped, 12, "{kind}");
        assert_eq!(
            seqs(&s.read_from(1, ALL, ALL).unwrap()),
            (15..=19).collect::<Vec<_>>(),
            "{kind}"
        );
        // Acked events are not counted as dropped.
        s.ack(17).unwrap();
        assert_eq!(s.append(evs(20..=22)).unwrap().dropped, 0, "{kind}");
        assert_eq!(s.append(evs(23..=23)).unwrap().dropped, 1, "{kind}");
        assert_eq!((s.pending(), s.dropped(), s.acked()), (5, 15, 17), "{kind}");
        assert_eq!(
            seqs(&s.read_from(1, ALL, ALL).unwrap()),
            (19..=23).collect::<Vec<_>>(),
            "{kind}"
        );
    }
}

#[test]
fn read_from_below_floor_starts_at_floor() {
    for (kind, mut s, _d) in spools(3) {
        s.append(evs(1..=10)).unwrap();
        assert_eq!(
            seqs(&s.read_from(2, ALL, ALL).unwrap()),
            vec![8, 9, 10],
            "{kind}"
        );
        assert_eq!(
            seqs(&s.read_from(9, ALL, ALL).unwrap()),
            vec![9, 10],
            "{kind}"
        );
        s.ack(5).unwrap(); // already dropped: acked moves, nothing else
        assert_eq!((s.acked(), s.pending()), (5, 3), "{kind}");
    }
}

#[test]
fn positions_and_session_node() {
    for (kind, mut s, _d) in spools(1000) {
        assert!(s.positions().is_empty(), "{kind}");
        s.append(evs(1..=7)).unwrap();
        let stdin = Event {
            ts_ms: 0,
            location: "stdin".into(),
            log: b"x".to_vec(),
            pos: None,
        };
        s.append(vec![stdin]).unwrap();
        let p = s.positions();
        assert_eq!(p.len(), 3, "{kind}");
        assert_eq!(p["/var/log/f1"], ev(7).pos.unwrap(), "{kind}");
        assert_eq!(p["/var/log/f0"], ev(6).pos.unwrap(), "{kind}");
        assert_eq!(p["/var/log/f2"], ev(5).pos.unwrap(), "{kind}");
        // Newest by append order, not by offset: a rotated file starts again at 0.
        let mut rotated = ev(1);
        rotated.pos = Some(SourcePos {
            dev: 8,
            ino: 99,
            offset: 5,
        });
        s.append(vec![rotated.clone()]).unwrap();
        assert_eq!(s.positions()["/var/log/f1"], rotated.pos.unwrap(), "{kind}");

        assert_eq!(s.session_node(), None, "{kind}");
        s.set_session_node(Some("node-b".into())).unwrap();
        assert_eq!(s.session_node().as_deref(), Some("node-b"), "{kind}");
        s.set_session_node(None).unwrap();
        assert_eq!(s.session_node(), None, "{kind}");
    }
}

#[test]
fn oversized_event_is_refused_whole_batch() {
    for (kind, mut s, _d) in spools(1000) {
        s.append(evs(1..=2)).unwrap();
        let mut big = ev(3);
        big.log = vec![b'a'; MAX_LOG + 1];
        let err = s.append(vec![ev(3), big]).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput, "{kind}");
        assert_eq!((s.next_seq(), s.pending()), (3, 2), "{kind}");
        let mut max = ev(3);
        max.log = vec![b'a'; MAX_LOG];
        assert_eq!(s.append(vec![max.clone()]).unwrap().first, 3, "{kind}");
        assert_eq!(s.read_from(3, ALL, ALL).unwrap()[0].event, max, "{kind}");
    }
}

#[test]
fn disk_segments_deleted_after_ack() {
    let d = TempDir::new().unwrap();
    let mut s = DiskSpool::open_with(d.path(), 100_000, small()).unwrap();
    for i in 0..20 {
        s.append(evs(i * 50 + 1..=i * 50 + 50)).unwrap();
    }
    let before = seg_files(d.path()).len();
    assert!(before >= 5, "{before} segments");
    s.ack(600).unwrap();
    let mid = seg_files(d.path()).len();
    assert!(mid < before && mid > 1, "{before} -> {mid}");
    assert_eq!(
        seqs(&s.read_from(1, ALL, ALL).unwrap()),
        (601..=1000).collect::<Vec<_>>()
    );
    s.ack(1000).unwrap();
    // The segment being appended to stays until it is full.
    assert!(seg_files(d.path()).len() <= 1);
    s.append(evs(1001..=1001)).unwrap();
    assert_eq!(seqs(&s.read_from(1, ALL, ALL).unwrap()), vec![1001]);
}

#[test]
fn disk_reopen_keeps_everything() {
    let d = TempDir::new().unwrap();
    let dir = d.path().join("a/b/spool");
    {
        let mut s = DiskSpool::open_with(&dir, 100, small()).unwrap();
        s.append(evs(1..=130)).unwrap();
        s.ack(40).unwrap();
        s.set_session_node(Some("node-2".into())).unwrap();
        s.append(evs(131..=135)).unwrap();
        assert_eq!(s.dropped(), 30);
        // No sync: a process kill keeps what append wrote.
    }
    let mut s = DiskSpool::open_with(&dir, 100, small()).unwrap();
    assert_eq!(
        (s.next_seq(), s.acked(), s.pending(), s.dropped()),
        (136, 40, 95, 30)
    );
    assert_eq!(s.session_node().as_deref(), Some("node-2"));
    let p = s.positions();
    assert_eq!(p["/var/log/f0"], ev(135).pos.unwrap());
    assert_eq!(p["/var/log/f2"], ev(134).pos.unwrap());
    let recs = s.read_from(1, ALL, ALL).unwrap();
    assert_eq!(seqs(&recs), (41..=135).collect::<Vec<_>>());
    assert!(recs.iter().all(|r| r.event == ev(r.seq)));
    assert_eq!(s.append(evs(136..=136)).unwrap().first, 136);
    s.sync().unwrap();
}

#[test]
fn disk_files_are_private() {
    let d = TempDir::new().unwrap();
    let dir = d.path().join("spool");
    let mut s = DiskSpool::open(&dir, 10).unwrap();
    s.append(evs(1..=2)).unwrap();
    s.set_session_node(Some("n".into())).unwrap();
    let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(&dir.join("state")), 0o600);
    for f in seg_files(&dir) {
        assert_eq!(mode(&f), 0o600);
        assert_eq!(
            f.file_name().unwrap().to_str().unwrap(),
            "00000000000000000001.seg"
        );
    }
}

/// Writes `n` events in a spool of its own and returns its dir and the last segment's path.
fn spool_with(n: u64) -> (TempDir, PathBuf) {
    let d = TempDir::new().unwrap();
    let mut s = DiskSpool::open_with(d.path(), 1000, small()).unwrap();
    for i in 1..=n {
        s.append(vec![ev(i)]).unwrap();
    }
    s.ack(3).unwrap();
    let last = seg_files(d.path()).pop().unwrap();
    (d, last)
}

/// Reopens a damaged copy and checks it holds exactly 4..n-1 and goes on from n.
fn check_recovered(dir: &Path, n: u64) {
    let mut s = DiskSpool::open_with(dir, 1000, small()).unwrap();
    assert_eq!((s.next_seq(), s.acked()), (n, 3));
    let recs = s.read_from(1, ALL, ALL).unwrap();
    assert_eq!(seqs(&recs), (4..n).collect::<Vec<_>>());
    assert!(recs.iter().all(|r| r.event == ev(r.seq)));
    assert_eq!(s.append(vec![ev(n)]).unwrap().first, n);
    drop(s);
    let mut s = DiskSpool::open_with(dir, 1000, small()).unwrap();
    assert_eq!(s.next_seq(), n + 1);
    assert_eq!(
        seqs(&s.read_from(1, ALL, ALL).unwrap()),
        (4..=n).collect::<Vec<_>>()
    );
}

#[test]
fn disk_torn_tail_at_every_offset() {
    let n = 150;
    let (d, last) = spool_with(n);
    assert!(seg_files(d.path()).len() >= 3);
    let full = fs::metadata(&last).unwrap().len();
    let rec = encoded_len(&ev(n)) as u64;
    for cut in full - rec..full {
        let copy = TempDir::new().unwrap();
        copy_dir(d.path(), copy.path());
        let f = fs::OpenOptions::new()
            .write(true)
            .open(copy.path().join(last.file_name().unwrap()))
            .unwrap();
        f.set_len(cut).unwrap();
        check_recovered(copy.path(), n);
    }
}

#[test]
fn disk_flipped_byte_in_last_record() {
    let n = 150;
    let (d, last) = spool_with(n);
    let bytes = fs::read(&last).unwrap();
    let rec = encoded_len(&ev(n));
    for at in bytes.len() - rec..bytes.len() {
        let copy = TempDir::new().unwrap();
        copy_dir(d.path(), copy.path());
        let mut b = bytes.clone();
        b[at] ^= 0x20;
        fs::write(copy.path().join(last.file_name().unwrap()), b).unwrap();
        check_recovered(copy.path(), n);
    }
}

#[test]
fn disk_junk_after_records_is_cut() {
    let n = 150;
    let (d, _) = spool_with(n - 1);
    let segs = seg_files(d.path());
    // Zeros past the tail (a power loss can leave them), and a stray copy of a real record past
    // the end of a segment that is not the last.
    let mut tail = fs::OpenOptions::new()
        .append(true)
        .open(segs.last().unwrap())
        .unwrap();
    std::io::Write::write_all(&mut tail, &[0; 100]).unwrap();
    let first = fs::read(&segs[0]).unwrap();
    let mut stray = first.clone();
    stray.extend_from_slice(&first[..encoded_len(&ev(1))]);
    fs::write(&segs[0], stray).unwrap();
    check_recovered(d.path(), n);
    assert_eq!(fs::read(&segs[0]).unwrap(), first);
}

#[test]
fn disk_large_volume_across_segments() {
    let d = TempDir::new().unwrap();
    let opts = SpoolOptions {
        segment_bytes: 1 << 20,
        cache_bytes: 256 << 10,
        ..SpoolOptions::default()
    };
    let total = 200_000u64;
    {
        let mut s = DiskSpool::open_with(d.path(), 1_000_000, opts).unwrap();
        for chunk in 0..total / 1000 {
            let a = s
                .append(evs(chunk * 1000 + 1..=chunk * 1000 + 1000))
                .unwrap();
            assert_eq!(a.last, chunk * 1000 + 1000);
        }
        s.sync().unwrap();
        assert!(seg_files(d.path()).len() >= 10);
        // Read everything back, mostly from disk, in bounded batches.
        let mut next = 1;
        while next <= total {
            let recs = s.read_from(next, 7000, 256 << 10).unwrap();
            assert!(!recs.is_empty());
            for r in &recs {
                assert_eq!(r.seq, next);
                assert_eq!(r.event, ev(next));
                next += 1;
            }
        }
    }
    let mut s = DiskSpool::open_with(d.path(), 1_000_000, opts).unwrap();
    assert_eq!((s.next_seq(), s.pending()), (total + 1, total));
    let segs = seg_files(d.path()).len();
    s.ack(total / 2).unwrap();
    assert!(seg_files(d.path()).len() < segs);
    let recs = s.read_from(1, 3, ALL).unwrap();
    assert_eq!(
        seqs(&recs),
        vec![total / 2 + 1, total / 2 + 2, total / 2 + 3]
    );
    let recs = s.read_from(123_456, 1, ALL).unwrap();
    assert_eq!(recs[0].event, ev(123_456));
    drop(s);
    let s = DiskSpool::open_with(d.path(), 1_000_000, opts).unwrap();
    assert_eq!((s.acked(), s.pending()), (total / 2, total / 2));
}

#[test]
fn disk_positions_survive_full_trim_and_reopen() {
    let d = TempDir::new().unwrap();
    {
        let mut s = DiskSpool::open_with(d.path(), 1000, small()).unwrap();
        s.append(evs(1..=200)).unwrap();
        s.append(evs(201..=205)).unwrap();
        s.ack(205).unwrap();
        assert!(seg_files(d.path()).len() <= 1);
    }
    // Even with every segment gone, the state alone knows the positions and the next seq.
    for f in seg_files(d.path()) {
        fs::remove_file(f).unwrap();
    }
    let mut s = DiskSpool::open_with(d.path(), 1000, small()).unwrap();
    assert_eq!((s.next_seq(), s.acked(), s.pending()), (206, 205, 0));
    let p = s.positions();
    assert_eq!(p["/var/log/f1"], ev(205).pos.unwrap());
    assert_eq!(p["/var/log/f0"], ev(204).pos.unwrap());
    assert_eq!(p["/var/log/f2"], ev(203).pos.unwrap());
    assert_eq!(s.append(evs(206..=206)).unwrap().first, 206);
}

#[test]
fn disk_reopen_with_smaller_bound_drops_oldest() {
    let d = TempDir::new().unwrap();
    {
        let mut s = DiskSpool::open_with(d.path(), 1000, small()).unwrap();
        s.append(evs(1..=100)).unwrap();
        s.ack(10).unwrap();
    }
    let mut s = DiskSpool::open_with(d.path(), 30, small()).unwrap();
    assert_eq!((s.pending(), s.dropped(), s.next_seq()), (30, 60, 101));
    assert_eq!(s.read_from(1, 1, ALL).unwrap()[0].seq, 71);
    drop(s);
    let s = DiskSpool::open_with(d.path(), 1000, small()).unwrap();
    assert_eq!((s.pending(), s.dropped()), (30, 60));
}

#[test]
fn disk_corrupt_state_names_the_file() {
    let d = TempDir::new().unwrap();
    drop(DiskSpool::open(d.path(), 10).unwrap());
    fs::write(d.path().join("state"), b"{not json").unwrap();
    let err = DiskSpool::open(d.path(), 10).err().unwrap().to_string();
    assert!(
        err.contains(&d.path().join("state").display().to_string()),
        "{err}"
    );
}

#[derive(Debug, Clone)]
enum Op {
    Append(u64),
    Ack(u64),
    Read(u64, usize, usize),
    Sync,
    Node(Option<u8>),
    Reopen,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0u64..40).prop_map(Op::Append),
        2 => (0u64..60).prop_map(Op::Ack),
        2 => (0u64..80, 0usize..30, 0usize..2000).prop_map(|(f, e, b)| Op::Read(f, e, b)),
        1 => Just(Op::Sync),
        1 => proptest::option::of(0u8..3).prop_map(Op::Node),
        1 => Just(Op::Reopen),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// DiskSpool (tiny segments and cache, reopened at random) behaves exactly like MemSpool.
    #[test]
    fn disk_and_mem_agree(ops in proptest::collection::vec(op(), 1..60), bound in 1u64..80) {
        let d = TempDir::new().unwrap();
        let opts = SpoolOptions { segment_bytes: 300, cache_bytes: 200, index_stride: 100, first_seq: 1 };
        let mut disk = DiskSpool::open_with(d.path(), bound, opts).unwrap();
        let mut mem = MemSpool::new(bound);
        let mut next_ev = 1;
        for op in ops {
            match op {
                Op::Append(n) => {
                    let batch = evs(next_ev..=next_ev + n - 1);
                    next_ev += n;
                    prop_assert_eq!(disk.append(batch.clone()).unwrap(), mem.append(batch).unwrap());
                }
                Op::Ack(back) => {
                    let upto = mem.next_seq().saturating_sub(back);
                    disk.ack(upto).unwrap();
                    mem.ack(upto).unwrap();
                }
                Op::Read(back, e, b) => {
                    let from = mem.next_seq().saturating_sub(back);
                    prop_assert_eq!(disk.read_from(from, e, b).unwrap(), mem.read_from(from, e, b).unwrap());
                }
                Op::Sync => disk.sync().unwrap(),
                Op::Node(n) => {
                    let n = n.map(|n| format!("node-{n}"));
                    disk.set_session_node(n.clone()).unwrap();
                    mem.set_session_node(n).unwrap();
                }
                Op::Reopen => {
                    drop(disk);
                    disk = DiskSpool::open_with(d.path(), bound, opts).unwrap();
                }
            }
            prop_assert_eq!(
                (disk.next_seq(), disk.acked(), disk.pending(), disk.dropped()),
                (mem.next_seq(), mem.acked(), mem.pending(), mem.dropped())
            );
            prop_assert_eq!(disk.session_node(), mem.session_node());
            let pos: BTreeMap<String, SourcePos> = disk.positions();
            prop_assert_eq!(pos, mem.positions());
        }
        prop_assert_eq!(disk.read_from(0, ALL, ALL).unwrap(), mem.read_from(0, ALL, ALL).unwrap());
        // Never more than a segment's worth of fully acked or dropped data stays on disk.
        let held: u64 = seg_files(d.path()).iter().map(|f| fs::metadata(f).unwrap().len()).sum();
        let pending_bytes = mem.pending() * encoded_len(&ev(1)) as u64 * 2;
        prop_assert!(held <= pending_bytes + 2 * (300 + 40 * 100), "{} on disk", held);
    }
}

#[test]
fn a_new_spool_starts_where_it_is_told_and_keeps_its_numbering() {
    let d = tempfile::tempdir().unwrap();
    let opts = SpoolOptions {
        first_seq: 5_000_000,
        ..SpoolOptions::default()
    };
    {
        let mut s = DiskSpool::open_with(d.path(), 100, opts).unwrap();
        assert_eq!(
            (s.next_seq(), s.acked(), s.pending()),
            (5_000_000, 4_999_999, 0)
        );
        assert_eq!(s.append(evs(1..=3)).unwrap().first, 5_000_000);
    }
    // Reopened later with another base: the existing numbering wins.
    let later = SpoolOptions {
        first_seq: 9_000_000,
        ..SpoolOptions::default()
    };
    let mut s = DiskSpool::open_with(d.path(), 100, later).unwrap();
    assert_eq!(s.next_seq(), 5_000_003);
    s.ack(5_000_002).unwrap();
    let m = MemSpool::starting_at(10, 77);
    assert_eq!((m.next_seq(), m.acked()), (77, 76));
    assert!(agent::spool::fresh_base() > 1 << 40, "the clock times 1024");
}
