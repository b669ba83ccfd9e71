//! Integrity sync end to end between two temporary `etc/` folders, plus the path-safety and
//! decoder-robustness properties.

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use manager::integrity::{
    apply_piece, decode_meta, decode_piece, diff, encode_meta, encode_piece, plan_pieces,
    read_files, remove_extra, remove_extras, summary, validate_rel, write_file, ApplyError,
    ApplyReport, Diff, FileData, Metadata, Scanner, DEFAULT_PIECE,
};
use proptest::prelude::*;

/// Deterministic generator (tests must not depend on a seed from the environment).
struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Somewhat XML-like, partly random content of `size` bytes.
fn content(rng: &mut Lcg, size: usize) -> Vec<u8> {
    let mut v = Vec::with_capacity(size);
    while v.len() < size {
        let line = format!(
            "<rule id=\"{}\" level=\"{}\"><match>{:x}</match></rule>\n",
            rng.below(100_000),
            rng.below(16),
            rng.next()
        );
        v.extend_from_slice(line.as_bytes());
    }
    v.truncate(size);
    v
}

fn past(secs_ago: u64) -> SystemTime {
    SystemTime::now() - Duration::from_secs(secs_ago)
}

/// Writes a file with a given mode and an mtime in the past (outside the racy window).
fn put(etc: &Path, rel: &str, data: &[u8], mode: u32, mtime: SystemTime) {
    let p = etc.join(rel);
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::write(&p, data).unwrap();
    fs::set_permissions(&p, fs::Permissions::from_mode(mode)).unwrap();
    fs::File::options()
        .write(true)
        .open(&p)
        .unwrap()
        .set_modified(mtime)
        .unwrap();
}

/// 2,000 files in nested folders of all four synced dirs, sizes from 0 to ~300 KiB.
fn build_tree(etc: &Path, files: usize) -> Vec<String> {
    let mut rng = Lcg(42);
    let tops = ["rules", "decoders", "lists", "shared"];
    let modes = [0o640, 0o660, 0o600, 0o644];
    let mut rels = Vec::new();
    for i in 0..files {
        let top = tops[i % 4];
        let depth = rng.below(4);
        let mut rel = top.to_string();
        for d in 0..depth {
            rel.push_str(&format!("/d{}_{}", d, rng.below(5)));
        }
        rel.push_str(&format!("/file{i}.xml"));
        let size = match rng.below(100) {
            0 => 200_000 + rng.below(100_000),
            1..=10 => 10_000 + rng.below(40_000),
            11..=15 => 0,
            _ => rng.below(4_000),
        } as usize;
        let data = content(&mut rng, size);
        put(etc, &rel, &data, modes[i % 4], past(3600 + i as u64));
        rels.push(rel);
    }
    rels
}

fn new_etc() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let etc = dir.path().join("etc");
    fs::create_dir(&etc).unwrap();
    (dir, etc)
}

/// One full integrity round, exactly as master and worker run it (minus the network).
fn sync_round(
    master_etc: &Path,
    master: &mut Scanner,
    worker_etc: &Path,
    worker: &mut Scanner,
) -> (Diff, ApplyReport) {
    let (m_meta, _) = master.scan().unwrap();
    let (w_meta, _) = worker.scan().unwrap();
    // Worker metadata crosses the wire encoded.
    let w_meta = decode_meta(&encode_meta(&w_meta)).unwrap();
    let d = diff(&m_meta, &w_meta);

    let mut report = ApplyReport::default();
    remove_extras(worker_etc, &d.extra, worker, &mut report);
    let wanted: Vec<(String, u64)> = d
        .missing
        .iter()
        .chain(&d.changed)
        .map(|r| (r.clone(), m_meta[r].size))
        .collect();
    // A small piece size to exercise many pieces.
    for piece in plan_pieces(&wanted, 256 << 10) {
        let files = read_files(master_etc, &piece).unwrap();
        let bytes = encode_piece(&files, 1);
        let decoded = decode_piece(&bytes, 64 << 20).unwrap();
        apply_piece(worker_etc, decoded, &m_meta, worker, &mut report);
    }
    (d, report)
}

fn hash_and_mode(m: &Metadata) -> Vec<(String, u64, u32, String)> {
    m.iter()
        .map(|(k, v)| (k.clone(), v.size, v.mode, v.hash.clone()))
        .collect()
}

fn dirs_under(root: &Path) -> BTreeSet<PathBuf> {
    let mut out = BTreeSet::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            if e.file_type().unwrap().is_dir() {
                out.insert(e.path().strip_prefix(root).unwrap().to_path_buf());
                stack.push(e.path());
            }
        }
    }
    out
}

#[test]
fn full_sync_then_incremental() {
    let (_m, m_etc) = new_etc();
    let (_w, w_etc) = new_etc();
    let rels = build_tree(&m_etc, 2000);
    // Node-specific and junk names are never synced.
    put(&m_etc, "shared/default/ossec.conf", b"x", 0o640, past(10));
    put(&m_etc, "shared/ar.conf", b"x", 0o640, past(10));
    put(&m_etc, "rules/a.xml~", b"x", 0o640, past(10));
    put(&m_etc, "rules/b.tmp", b"x", 0o640, past(10));
    put(&m_etc, "rules/c.lock", b"x", 0o640, past(10));
    put(&m_etc, "rules/.d.swp", b"x", 0o640, past(10));
    put(&m_etc, "rules/.rampart-sync-0011", b"x", 0o640, past(10));
    put(&m_etc, "decoders.tmp/x", b"x", 0o640, past(10)); // not a synced dir
    put(&m_etc, "internal_options.conf", b"x", 0o640, past(10));
    // The worker has stale things of its own, including a folder where the master has a file.
    put(&w_etc, "rules/old/deep/stale.xml", b"old", 0o640, past(10));
    put(
        &w_etc,
        &format!("{}/sub/x", rels[0]),
        b"dir here",
        0o640,
        past(10),
    );
    put(
        &w_etc,
        "shared/default/ossec.conf",
        b"worker's own",
        0o640,
        past(10),
    );

    let mut master = Scanner::new(m_etc.clone());
    let mut worker = Scanner::new(w_etc.clone());
    let (d, report) = sync_round(&m_etc, &mut master, &w_etc, &mut worker);
    assert_eq!(d.missing.len(), 2000);
    assert_eq!(d.changed.len(), 0);
    assert_eq!(d.extra.len(), 2);
    assert_eq!(
        summary(&d),
        "Files to create: 2000 | Files to update: 0 | Files to delete: 2"
    );
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    assert!(report.mismatched.is_empty());
    assert_eq!(report.written, 2000);
    assert_eq!(report.removed, 2);
    assert!(!w_etc.join("rules/old").exists(), "emptied folders removed");
    assert!(w_etc.join("rules").is_dir());
    assert_eq!(
        fs::read(w_etc.join("shared/default/ossec.conf")).unwrap(),
        b"worker's own"
    );

    // Both sides now agree; the worker needs no rehash (its writes were noted), the master
    // neither (nothing moved).
    let (m_meta, m_stats) = master.scan().unwrap();
    let (w_meta, w_stats) = worker.scan().unwrap();
    assert_eq!(m_stats.files, 2000);
    assert_eq!(m_stats.hashed, 0);
    assert_eq!(w_stats.hashed, 0);
    assert_eq!(hash_and_mode(&m_meta), hash_and_mode(&w_meta));
    assert!(m_meta.keys().all(|k| validate_rel(k).is_ok()));
    assert!(diff(&m_meta, &w_meta).is_empty());
    // Byte-identical content, modes and mtimes on disk.
    for rel in rels.iter().step_by(97) {
        let (a, b) = (m_etc.join(rel), w_etc.join(rel));
        assert_eq!(fs::read(&a).unwrap(), fs::read(&b).unwrap(), "{rel}");
        let (ma, mb) = (fs::metadata(&a).unwrap(), fs::metadata(&b).unwrap());
        assert_eq!(ma.permissions().mode(), mb.permissions().mode());
        assert_eq!(ma.modified().unwrap(), mb.modified().unwrap());
    }
    // Independent check: a fresh scanner on the worker hashes everything and agrees.
    let (fresh, fresh_stats) = Scanner::new(w_etc.clone()).scan().unwrap();
    assert_eq!(fresh_stats.hashed, 2000);
    assert_eq!(hash_and_mode(&fresh), hash_and_mode(&m_meta));

    // Incremental: add, change (same size, new content, mtime moved), chmod, delete.
    let mut rng = Lcg(7);
    for i in 0..20 {
        let data = content(&mut rng, 1000 + i * 10);
        put(
            &m_etc,
            &format!("shared/newgroup/n{}/f{i}", i % 3),
            &data,
            0o660,
            past(100),
        );
    }
    // Every file of one deepest folder goes away on the master, plus a few scattered ones.
    let victim_dir = rels
        .iter()
        .filter(|r| r.matches('/').count() == 4 && r.starts_with("decoders/"))
        .map(|r| r.rsplit_once('/').unwrap().0.to_string())
        .next()
        .unwrap();
    let in_victim = |r: &String| r.rsplit_once('/').unwrap().0 == victim_dir;
    let mut changed = Vec::new();
    for rel in rels
        .iter()
        .skip(1)
        .step_by(131)
        .filter(|r| !in_victim(r))
        .take(15)
    {
        let old = fs::read(m_etc.join(rel)).unwrap();
        let mut new = old.clone();
        if let Some(b) = new.first_mut() {
            *b ^= 0x55;
        }
        let mode = fs::metadata(m_etc.join(rel)).unwrap().permissions().mode() & 0o777;
        put(&m_etc, rel, &new, mode, past(50));
        if old != new {
            changed.push(rel.clone());
        }
    }
    let chmodded: Vec<&String> = rels
        .iter()
        .skip(3)
        .step_by(211)
        .filter(|r| !in_victim(r))
        .take(5)
        .collect();
    for rel in &chmodded {
        fs::set_permissions(m_etc.join(rel), fs::Permissions::from_mode(0o604)).unwrap();
    }
    let mut deleted: Vec<String> = rels.iter().filter(|r| in_victim(r)).cloned().collect();
    deleted.extend(rels.iter().skip(5).step_by(401).take(4).cloned());
    deleted.sort();
    deleted.dedup();
    deleted.retain(|r| !changed.contains(r) && !chmodded.contains(&r));
    for rel in &deleted {
        fs::remove_file(m_etc.join(rel)).unwrap();
    }
    // Remove the now-empty folders on the master too (never the top synced dir).
    let mut dir = m_etc.join(&victim_dir);
    while dir != m_etc.join("decoders") && fs::remove_dir(&dir).is_ok() {
        dir = dir.parent().unwrap().to_path_buf();
    }

    let (_, stats) = master.scan().unwrap();
    assert_eq!(
        stats.hashed,
        20 + changed.len(),
        "only new and changed files rehashed"
    );

    let (d, report) = sync_round(&m_etc, &mut master, &w_etc, &mut worker);
    assert_eq!(d.missing.len(), 20);
    let mut expect_changed: Vec<String> = changed.to_vec();
    expect_changed.extend(chmodded.iter().map(|s| s.to_string()));
    expect_changed.sort();
    expect_changed.dedup();
    assert_eq!(d.changed, expect_changed);
    assert_eq!(d.extra, deleted);
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    assert_eq!(report.removed, deleted.len());

    let (m_meta, _) = master.scan().unwrap();
    let (w_meta, w_stats) = worker.scan().unwrap();
    assert_eq!(w_stats.hashed, 0);
    assert_eq!(hash_and_mode(&m_meta), hash_and_mode(&w_meta));
    assert!(
        !w_etc.join(&victim_dir).exists(),
        "empty nested folder removed"
    );
    let synced = |d: &PathBuf| d.components().count() > 0 && !d.starts_with("decoders.tmp");
    let m_dirs: BTreeSet<PathBuf> = dirs_under(&m_etc).into_iter().filter(synced).collect();
    let w_dirs: BTreeSet<PathBuf> = dirs_under(&w_etc).into_iter().filter(synced).collect();
    let odd: Vec<_> = m_dirs.symmetric_difference(&w_dirs).collect();
    assert!(odd.is_empty(), "folder trees differ: {odd:?}");
    assert_eq!(
        fs::metadata(w_etc.join(chmodded[0]))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o604
    );

    // Emptying a whole synced dir keeps the dir itself.
    let lists: Vec<String> = m_meta
        .keys()
        .filter(|k| k.starts_with("lists/"))
        .cloned()
        .collect();
    for rel in &lists {
        fs::remove_file(m_etc.join(rel)).unwrap();
    }
    let (d, report) = sync_round(&m_etc, &mut master, &w_etc, &mut worker);
    assert_eq!(d.extra, lists);
    assert!(report.errors.is_empty());
    assert!(w_etc.join("lists").is_dir());
    assert_eq!(fs::read_dir(w_etc.join("lists")).unwrap().count(), 0);

    // Nothing left to do.
    let (d, report) = sync_round(&m_etc, &mut master, &w_etc, &mut worker);
    assert!(d.is_empty());
    assert_eq!(report, ApplyReport::default());
}

#[test]
fn mismatched_content_is_reported() {
    let (_m, m_etc) = new_etc();
    let (_w, w_etc) = new_etc();
    put(&m_etc, "rules/a.xml", b"v1", 0o640, past(100));
    let mut master = Scanner::new(m_etc.clone());
    let (m_meta, _) = master.scan().unwrap();
    // The file changes between the diff and the piece request.
    put(&m_etc, "rules/a.xml", b"v2", 0o640, past(90));
    let files = read_files(&m_etc, &["rules/a.xml".to_string()]).unwrap();
    let mut worker = Scanner::new(w_etc.clone());
    let mut report = ApplyReport::default();
    apply_piece(&w_etc, files, &m_meta, &mut worker, &mut report);
    assert_eq!(report.mismatched, ["rules/a.xml"]);
    assert_eq!(report.written, 1);
    assert_eq!(fs::read(w_etc.join("rules/a.xml")).unwrap(), b"v2");
}

#[test]
fn recent_files_are_rehashed_once_more() {
    let (_m, etc) = new_etc();
    fs::create_dir_all(etc.join("rules")).unwrap();
    fs::write(etc.join("rules/now.xml"), b"fresh").unwrap();
    put(&etc, "rules/old.xml", b"old", 0o640, past(100));
    let mut s = Scanner::new(etc.clone());
    assert_eq!(s.scan().unwrap().1.hashed, 2);
    // now.xml may still be rewritten within its mtime tick: not trusted yet.
    assert_eq!(s.scan().unwrap().1.hashed, 1);
    fs::File::options()
        .write(true)
        .open(etc.join("rules/now.xml"))
        .unwrap()
        .set_modified(past(100))
        .unwrap();
    s.scan().unwrap();
    assert_eq!(s.scan().unwrap().1.hashed, 0);
}

#[test]
fn traversal_is_rejected() {
    let (_w, etc) = new_etc();
    let outside = etc.parent().unwrap().join("outside");
    fs::create_dir(&outside).unwrap();
    fs::write(outside.join("secret"), b"top secret").unwrap();
    fs::create_dir_all(etc.join("rules")).unwrap();
    symlink(&outside, etc.join("rules/evil")).unwrap();
    symlink(outside.join("secret"), etc.join("rules/link.xml")).unwrap();
    // A whole synced dir that is a link is not followed either.
    symlink(&outside, etc.join("lists")).unwrap();

    let fd = |rel: &str| FileData {
        rel: rel.into(),
        mode: 0o640,
        mtime_s: 1,
        mtime_ns: 0,
        data: b"pwned".to_vec(),
    };
    for bad in [
        "../x",
        "/etc/passwd",
        "rules/../../x",
        "rules/./a",
        "rules/a/../../../x",
        "shared/ossec.conf",
        "etc/rules/x",
    ] {
        assert!(validate_rel(bad).is_err(), "{bad}");
        assert!(
            matches!(write_file(&etc, &fd(bad)), Err(ApplyError::Path { .. })),
            "{bad}"
        );
        assert!(
            matches!(remove_extra(&etc, bad), Err(ApplyError::Path { .. })),
            "{bad}"
        );
        assert!(read_files(&etc, &[bad.to_string()]).is_err(), "{bad}");
    }
    // Through a symlinked folder: refused, nothing written outside.
    for rel in ["rules/evil/secret", "rules/evil/new", "lists/secret"] {
        assert!(
            matches!(write_file(&etc, &fd(rel)), Err(ApplyError::Unsafe(_))),
            "{rel}"
        );
        assert!(
            matches!(remove_extra(&etc, rel), Err(ApplyError::Unsafe(_))),
            "{rel}"
        );
        assert!(
            read_files(&etc, &[rel.to_string()]).unwrap().is_empty(),
            "{rel}"
        );
    }
    assert!(!outside.join("new").exists());
    assert_eq!(fs::read(outside.join("secret")).unwrap(), b"top secret");
    // A symlinked file is never read; writing or removing replaces/removes the link itself.
    assert!(read_files(&etc, &["rules/link.xml".to_string()])
        .unwrap()
        .is_empty());
    write_file(&etc, &fd("rules/link.xml")).unwrap();
    assert!(fs::symlink_metadata(etc.join("rules/link.xml"))
        .unwrap()
        .is_file());
    assert_eq!(fs::read(outside.join("secret")).unwrap(), b"top secret");
    symlink(outside.join("secret"), etc.join("rules/link2.xml")).unwrap();
    remove_extra(&etc, "rules/link2.xml").unwrap();
    assert!(fs::symlink_metadata(etc.join("rules/link2.xml")).is_err());
    assert!(outside.join("secret").exists());
    // A regular file where a folder is expected.
    fs::write(etc.join("rules/plain"), b"x").unwrap();
    assert!(matches!(
        write_file(&etc, &fd("rules/plain/x")),
        Err(ApplyError::Unsafe(_))
    ));

    // The scan skips links (files and folders) and special files, without hanging on a FIFO.
    nix::unistd::mkfifo(
        &etc.join("rules/fifo"),
        nix::sys::stat::Mode::from_bits_truncate(0o600),
    )
    .unwrap();
    assert!(read_files(&etc, &["rules/fifo".to_string()])
        .unwrap()
        .is_empty());
    let (meta, _) = Scanner::new(etc.clone()).scan().unwrap();
    assert_eq!(
        meta.keys().cloned().collect::<Vec<_>>(),
        ["rules/link.xml", "rules/plain"]
    );
}

#[test]
fn write_file_sets_mode_mtime_and_meta() {
    let (_w, etc) = new_etc();
    let f = FileData {
        rel: "shared/default/agent.conf".into(),
        mode: 0o4664, // set-id bits are dropped
        mtime_s: 1_600_000_000,
        mtime_ns: 123_456_789,
        data: b"<agent_config/>".to_vec(),
    };
    let meta = write_file(&etc, &f).unwrap();
    let md = fs::metadata(etc.join(&f.rel)).unwrap();
    assert_eq!(md.permissions().mode() & 0o7777, 0o664);
    assert_eq!(
        md.modified().unwrap(),
        UNIX_EPOCH + Duration::new(1_600_000_000, 123_456_789)
    );
    assert_eq!(
        fs::metadata(etc.join("shared/default"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o750
    );
    let (scanned, _) = Scanner::new(etc.clone()).scan().unwrap();
    assert_eq!(scanned[&f.rel], meta);
    // No temp files left behind.
    assert_eq!(fs::read_dir(etc.join("shared/default")).unwrap().count(), 1);
    // Overwrite keeps working; a folder in the way is an error, not a panic.
    write_file(
        &etc,
        &FileData {
            data: b"v2".to_vec(),
            ..f.clone()
        },
    )
    .unwrap();
    fs::create_dir_all(etc.join("rules/dir/sub")).unwrap();
    assert!(write_file(
        &etc,
        &FileData {
            rel: "rules/dir".into(),
            ..f
        }
    )
    .is_err());
    assert_eq!(fs::read_dir(etc.join("rules")).unwrap().count(), 1);
}

fn arb_file() -> impl Strategy<Value = FileData> {
    (
        prop::sample::select(vec!["rules", "decoders", "lists", "shared"]),
        prop::collection::vec("[a-zA-Z0-9_.-]{1,12}", 1..4),
        0u32..0o1000,
        any::<i64>(),
        0u32..1_000_000_000,
        prop::collection::vec(any::<u8>(), 0..2000),
    )
        .prop_filter_map("valid path", |(top, names, mode, s, ns, data)| {
            let rel = format!("{top}/{}", names.join("/"));
            validate_rel(&rel).ok().map(|()| FileData {
                rel,
                mode,
                mtime_s: s,
                mtime_ns: ns,
                data,
            })
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn decode_piece_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..4096)) {
        let _ = decode_piece(&bytes, 1 << 20);
    }

    #[test]
    fn decode_meta_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..4096)) {
        let _ = decode_meta(&bytes);
    }

    #[test]
    fn piece_roundtrip(files in prop::collection::vec(arb_file(), 0..8), level in 1i32..4) {
        let enc = encode_piece(&files, level);
        prop_assert_eq!(decode_piece(&enc, 1 << 20).unwrap(), files);
    }

    /// Corrupting a valid piece (the decoder gets past the zstd header) must not panic either.
    #[test]
    fn corrupted_piece_never_panics(
        files in prop::collection::vec(arb_file(), 1..4),
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
    ) {
        let mut enc = encode_piece(&files, 1);
        for (i, b) in flips {
            let i = i.index(enc.len());
            enc[i] ^= b | 1;
        }
        let _ = decode_piece(&enc, 1 << 20);
    }

    #[test]
    fn meta_roundtrip(files in prop::collection::vec(arb_file(), 0..16), size in any::<u64>()) {
        let m: Metadata = files
            .iter()
            .map(|f| {
                (f.rel.clone(), manager::integrity::FileMeta {
                    size,
                    mtime_s: f.mtime_s,
                    mtime_ns: f.mtime_ns,
                    mode: f.mode,
                    hash: blake3::hash(&f.data).to_hex().to_string(),
                })
            })
            .collect();
        prop_assert_eq!(decode_meta(&encode_meta(&m)).unwrap(), m);
    }
}

/// `cargo test --release -p rampart-manager --test integrity -- --ignored --nocapture bench`:
/// 10,000 files / ~200 MB, one master -> one worker.
#[test]
#[ignore]
fn bench_200mb() {
    use std::time::Instant;
    let (_m, m_etc) = new_etc();
    let (_w, w_etc) = new_etc();
    let mut rng = Lcg(1);
    let mut total = 0u64;
    for i in 0..10_000 {
        let top = ["rules", "decoders", "lists", "shared"][i % 4];
        let size = match rng.below(100) {
            0 => 500_000 + rng.below(2_000_000),
            1..=14 => 10_000 + rng.below(30_000),
            _ => rng.below(4_000),
        } as usize;
        total += size as u64;
        let data = content(&mut rng, size);
        put(
            &m_etc,
            &format!("{top}/g{}/f{i}", i % 50),
            &data,
            0o640,
            past(1000),
        );
    }
    println!("tree: 10000 files, {} MB", total >> 20);
    let mut master = Scanner::new(m_etc.clone());
    let mut worker = Scanner::new(w_etc.clone());
    let t = Instant::now();
    let (m_meta, st) = master.scan().unwrap();
    println!(
        "master cold scan: {:?} ({} MB/s)",
        st.elapsed,
        mb_s(st.hashed_bytes, st.elapsed)
    );
    let (_, st2) = master.scan().unwrap();
    println!("master warm scan: {:?}", st2.elapsed);
    let wanted: Vec<(String, u64)> = m_meta.iter().map(|(k, v)| (k.clone(), v.size)).collect();
    let pieces = plan_pieces(&wanted, DEFAULT_PIECE);
    let (mut enc_t, mut dec_t, mut app_t, mut wire) =
        (Duration::ZERO, Duration::ZERO, Duration::ZERO, 0);
    let mut report = ApplyReport::default();
    for p in &pieces {
        let t0 = Instant::now();
        let bytes = encode_piece(&read_files(&m_etc, p).unwrap(), 1);
        enc_t += t0.elapsed();
        wire += bytes.len();
        let t1 = Instant::now();
        let files = decode_piece(&bytes, 64 << 20).unwrap();
        dec_t += t1.elapsed();
        let t2 = Instant::now();
        apply_piece(&w_etc, files, &m_meta, &mut worker, &mut report);
        app_t += t2.elapsed();
    }
    println!(
        "{} pieces, wire {} MB; read+encode {:?} ({} MB/s), decode {:?}, apply {:?}; total {:?}",
        pieces.len(),
        wire >> 20,
        enc_t,
        mb_s(total, enc_t),
        dec_t,
        app_t,
        t.elapsed()
    );
    assert!(report.errors.is_empty());
    let (w_meta, wst) = worker.scan().unwrap();
    println!(
        "worker scan after apply: {:?}, hashed {}",
        wst.elapsed, wst.hashed
    );
    assert!(diff(&m_meta, &w_meta).is_empty());
    let all: Vec<Vec<FileData>> = pieces
        .iter()
        .map(|p| read_files(&m_etc, p).unwrap())
        .collect();
    for level in [1, -1, -5, -20] {
        let t = Instant::now();
        let enc: Vec<Vec<u8>> = all.iter().map(|f| encode_piece(f, level)).collect();
        let et = t.elapsed();
        let t = Instant::now();
        for e in &enc {
            decode_piece(e, 64 << 20).unwrap();
        }
        let wire: usize = enc.iter().map(Vec::len).sum();
        println!(
            "level {level}: encode {et:?} ({} MB/s), decode {:?}, wire {} MB",
            mb_s(total, et),
            t.elapsed(),
            wire >> 20
        );
    }
    // 1% changed: rescan cost on the master.
    for (i, rel) in m_meta.keys().step_by(100).enumerate() {
        let mut d = fs::read(m_etc.join(rel)).unwrap();
        d.push(b'x');
        put(&m_etc, rel, &d, 0o640, past(500 + i as u64));
    }
    let (_, st) = master.scan().unwrap();
    println!(
        "master scan after 1% change: {:?}, hashed {}",
        st.elapsed, st.hashed
    );
}

fn mb_s(bytes: u64, d: Duration) -> u64 {
    (bytes as f64 / d.as_secs_f64().max(1e-9) / 1e6) as u64
}
