//! File tailing across rotation, resuming from a saved position, and the stdin reader. Polls
//! are explicit, so no test sleeps.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use agent::event::{Event, SourcePos, MAX_LOG};
use agent::source::{self, stdin, Tailer};
use tokio::sync::mpsc;

const NOW: i64 = 1_700_000_000_000;

fn append(path: &Path, text: &str) {
    let mut f = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    f.write_all(text.as_bytes()).unwrap();
}

fn tailer(path: &Path, only_future: bool, saved: Option<SourcePos>) -> Tailer {
    Tailer::new(path.to_path_buf(), "app".to_string(), only_future, saved)
}

fn poll(t: &mut Tailer) -> Vec<Event> {
    t.poll(NOW, 10_000, 1 << 20).unwrap()
}

fn logs(events: &[Event]) -> Vec<String> {
    events
        .iter()
        .map(|e| String::from_utf8_lossy(&e.log).into_owned())
        .collect()
}

fn identity(path: &Path) -> (u64, u64) {
    let m = fs::metadata(path).unwrap();
    (m.dev(), m.ino())
}

fn at(path: &Path, offset: u64) -> Option<SourcePos> {
    let (dev, ino) = identity(path);
    Some(SourcePos { dev, ino, offset })
}

fn setup() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.log");
    (dir, path)
}

#[test]
fn appended_lines_are_read_once_with_their_position() {
    let (_dir, path) = setup();
    append(&path, "a\nbb\n");
    let mut t = tailer(&path, false, None);
    let ev = poll(&mut t);
    assert_eq!(logs(&ev), ["a", "bb"]);
    assert_eq!(ev[0].pos, at(&path, 2));
    assert_eq!(ev[1].pos, at(&path, 5));
    assert!(ev.iter().all(|e| e.location == "app" && e.ts_ms == NOW));
    assert!(poll(&mut t).is_empty());
    append(&path, "c\r\n\n");
    let ev = poll(&mut t);
    assert_eq!(logs(&ev), ["c", ""], "CR removed, empty line kept");
    assert_eq!(t.position(), at(&path, 9));
}

#[test]
fn partial_line_waits_for_its_newline() {
    let (_dir, path) = setup();
    append(&path, "one\npar");
    let mut t = tailer(&path, false, None);
    assert_eq!(logs(&poll(&mut t)), ["one"]);
    assert_eq!(
        t.position(),
        at(&path, 4),
        "the partial line is not consumed"
    );
    append(&path, "tial\nnext");
    let ev = poll(&mut t);
    assert_eq!(logs(&ev), ["partial"]);
    assert_eq!(ev[0].pos, at(&path, 12));
    append(&path, "\n");
    assert_eq!(logs(&poll(&mut t)), ["next"]);
}

#[test]
fn rename_rotation_reads_every_line_once_in_order() {
    let (dir, path) = setup();
    let old = dir.path().join("app.log.1");
    append(&path, "1\n2\n");
    let mut t = tailer(&path, false, None);
    assert_eq!(logs(&poll(&mut t)), ["1", "2"]);
    append(&path, "3\n");
    fs::rename(&path, &old).unwrap();
    // Moved, not recreated yet: the old file is still followed.
    assert_eq!(logs(&poll(&mut t)), ["3"]);
    // The writer still holds the old file, then reopens the path.
    append(&old, "4\npart");
    append(&path, "5\n6\n");
    let ev = poll(&mut t);
    assert_eq!(logs(&ev), ["4", "part", "5", "6"]);
    assert_eq!(
        ev[1].pos,
        at(&old, 12),
        "the partial line of the old file goes as is"
    );
    assert_eq!(ev[3].pos, at(&path, 4));
    assert!(poll(&mut t).is_empty());
    append(&path, "7\n");
    assert_eq!(logs(&poll(&mut t)), ["7"]);
    assert_eq!(t.position(), at(&path, 6));
}

#[test]
fn copytruncate_rotation_restarts_at_zero() {
    let (dir, path) = setup();
    append(&path, "1\n2\n3\n");
    let mut t = tailer(&path, false, None);
    assert_eq!(logs(&poll(&mut t)), ["1", "2", "3"]);
    append(&path, "4\n");
    assert_eq!(logs(&poll(&mut t)), ["4"]);
    fs::copy(&path, dir.path().join("app.log.1")).unwrap();
    OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(0)
        .unwrap();
    append(&path, "5\n");
    let ev = poll(&mut t);
    assert_eq!(logs(&ev), ["5"]);
    assert_eq!(ev[0].pos, at(&path, 2));
}

#[test]
fn only_future_events_decides_where_first_sight_starts() {
    let (dir, path) = setup();
    append(&path, "old\n");
    let mut future = tailer(&path, true, None);
    let mut all = tailer(&path, false, None);
    assert!(poll(&mut future).is_empty());
    assert_eq!(future.position(), at(&path, 4));
    append(&path, "new\n");
    assert_eq!(logs(&poll(&mut future)), ["new"]);
    assert_eq!(logs(&poll(&mut all)), ["old", "new"]);

    // A file that appears after the start is new: read from its start even with "yes".
    let later = dir.path().join("later.log");
    let mut t = tailer(&later, true, None);
    assert_eq!(t.position(), None);
    append(&later, "first\n");
    assert_eq!(logs(&poll(&mut t)), ["first"]);
}

#[test]
fn resume_reads_exactly_the_lines_after_the_saved_position() {
    let (_dir, path) = setup();
    append(&path, "1\n2\n3\n4\n5\n");
    let mut t = tailer(&path, false, None);
    let ev = t.poll(NOW, 2, 1 << 20).unwrap();
    assert_eq!(logs(&ev), ["1", "2"]);
    let saved = ev[1].pos;
    drop(t);
    append(&path, "6\n");
    // Saved positions win over only-future-events.
    let mut t = tailer(&path, true, saved);
    assert_eq!(t.position(), saved);
    assert_eq!(logs(&poll(&mut t)), ["3", "4", "5", "6"]);
}

#[test]
fn rotated_while_stopped_finishes_the_rotated_sibling_first() {
    let (dir, path) = setup();
    append(&path, "1\n2\n3\n");
    let mut t = tailer(&path, false, None);
    let saved = t.poll(NOW, 1, 1 << 20).unwrap()[0].pos;
    drop(t);
    append(&path, "4\n");
    let rotated = dir.path().join("app.log-20240101");
    fs::rename(&path, &rotated).unwrap();
    append(&dir.path().join("app.log.2"), "decoy\n");
    append(&dir.path().join("other.log"), "decoy\n");
    append(&path, "5\n");
    let mut t = tailer(&path, false, saved);
    let ev = poll(&mut t);
    assert_eq!(logs(&ev), ["2", "3", "4", "5"]);
    assert_eq!(ev[2].pos, at(&rotated, 8));
    assert_eq!(ev[3].pos, at(&path, 2));
}

#[test]
fn rotated_while_stopped_and_gone_reads_the_current_file_from_zero() {
    let (dir, path) = setup();
    append(&path, "1\n2\n");
    let saved = at(&path, 2);
    // Rotated out of the directory (e.g. compressed elsewhere), then deleted. The old file
    // lives until the new one exists so the new one cannot reuse its inode.
    let archived = dir.path().join("archive");
    fs::rename(&path, &archived).unwrap();
    append(&path, "3\n");
    fs::remove_file(&archived).unwrap();
    let mut t = tailer(&path, false, saved);
    assert_eq!(logs(&poll(&mut t)), ["3"]);
}

#[test]
fn long_lines_are_cut_and_the_rest_skipped() {
    let (_dir, path) = setup();
    let long = "x".repeat(MAX_LOG + 100);
    append(&path, &format!("{long}\nshort\n"));
    let mut t = tailer(&path, false, None);
    let ev = poll(&mut t);
    assert_eq!(ev.len(), 2);
    assert_eq!(ev[0].log, vec![b'x'; MAX_LOG]);
    assert_eq!(ev[0].pos, at(&path, MAX_LOG as u64 + 101));
    assert_eq!(ev[1].log, b"short");

    // Arriving in pieces across polls; a line of exactly MAX_LOG bytes plus CR is whole.
    append(&path, &"y".repeat(MAX_LOG + 10));
    assert!(poll(&mut t).is_empty());
    append(&path, &format!("yy\n{}\r\n", "z".repeat(MAX_LOG)));
    let ev = poll(&mut t);
    assert_eq!(ev.len(), 2);
    assert_eq!(ev[0].log, vec![b'y'; MAX_LOG]);
    assert_eq!(ev[1].log, vec![b'z'; MAX_LOG]);
}

#[test]
fn missing_file_is_waited_for() {
    let (_dir, path) = setup();
    let mut t = tailer(&path, false, None);
    assert!(poll(&mut t).is_empty());
    assert_eq!(t.position(), None);
    append(&path, "hello\n");
    assert_eq!(logs(&poll(&mut t)), ["hello"]);
}

#[test]
fn limits_bound_each_poll() {
    let (_dir, path) = setup();
    append(&path, "1\n2\n3\n4\n5\n");
    let mut t = tailer(&path, false, None);
    assert_eq!(logs(&t.poll(NOW, 2, 1 << 20).unwrap()), ["1", "2"]);
    // At least one line even when it alone passes max_bytes.
    assert_eq!(logs(&t.poll(NOW, 100, 1).unwrap()), ["3"]);
    assert!(t.poll(NOW, 0, 1 << 20).unwrap().is_empty());
    assert_eq!(logs(&poll(&mut t)), ["4", "5"]);
}

#[tokio::test]
async fn stdin_sends_one_event_per_line() {
    let long = "s".repeat(MAX_LOG + 5);
    let input = format!("one\ntwo\r\n\n{long}\nlast");
    let (tx, mut rx) = mpsc::channel(16);
    stdin::read_lines(input.as_bytes(), "stdin", tx).await;
    let mut got = Vec::new();
    while let Some(e) = rx.recv().await {
        assert_eq!((e.location.as_str(), e.pos), ("stdin", None));
        assert!(e.ts_ms > 0);
        got.push(e.log);
    }
    assert_eq!(
        got,
        vec![
            b"one".to_vec(),
            b"two".to_vec(),
            Vec::new(),
            vec![b's'; MAX_LOG],
            b"last".to_vec()
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn run_tailers_sends_batches_until_the_receiver_is_gone() {
    let (dir, path) = setup();
    let other = dir.path().join("other.log");
    append(&path, "a\nb\n");
    append(&other, "c\n");
    let tailers = vec![tailer(&path, false, None), tailer(&other, false, None)];
    let (tx, mut rx) = mpsc::channel(1);
    let task = tokio::spawn(source::run_tailers(tailers, Duration::from_millis(250), tx));
    let mut got = logs(&rx.recv().await.unwrap());
    got.extend(logs(&rx.recv().await.unwrap()));
    assert_eq!(got, ["a", "b", "c"]);
    append(&other, "d\n");
    assert_eq!(logs(&rx.recv().await.unwrap()), ["d"]);
    drop(rx);
    task.await.unwrap();
}
