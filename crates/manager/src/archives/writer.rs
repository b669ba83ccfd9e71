//! The one thread that owns `archives.json`: group commit (one write + one fdatasync for
//! everything queued), duplicate drop against the high-water marks, periodic checkpoints.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use time::OffsetDateTime;
use tokio::sync::oneshot;

use super::index::{open_archive, trim_torn_tail, Checkpoint, FileId, Recovered};
use super::line::{timestamp, LineFormat};
use super::{ArchiveError, ArchiveStats, Batch, Stored};
use crate::node::lock;

/// A group stops taking queued batches once it holds about this many bytes.
const GROUP_BYTES: usize = 8 << 20;
/// A checkpoint is written this long after the first unsaved commit (and at close).
const CHECKPOINT_EVERY: Duration = Duration::from_secs(10);
/// Estimated bytes of a line besides its location, log and agent name.
const LINE_OVERHEAD: usize = 200;

pub(super) enum Msg {
    Store {
        batch: Batch,
        reply: oneshot::Sender<Result<Stored, ArchiveError>>,
    },
    Close,
}

/// What the handle reads without going through the thread.
#[derive(Debug, Default)]
pub(super) struct Shared {
    /// Durable high-water marks, updated only after the sync that covers them.
    pub hw: Mutex<HashMap<u32, u64>>,
    pub closed: AtomicBool,
    pub stored: AtomicU64,
    pub duplicates: AtomicU64,
    pub commits: AtomicU64,
    pub bytes: AtomicU64,
}

impl Shared {
    pub fn stats(&self) -> ArchiveStats {
        ArchiveStats {
            stored: self.stored.load(Ordering::Relaxed),
            duplicates: self.duplicates.load(Ordering::Relaxed),
            commits: self.commits.load(Ordering::Relaxed),
            bytes: self.bytes.load(Ordering::Relaxed),
        }
    }
}

pub(super) struct Writer {
    path: PathBuf,
    index: PathBuf,
    /// `None` after a failure that left the file position uncertain: reopened before the next write.
    file: Option<File>,
    id: FileId,
    /// End of the last synced write: the file holds whole, durable lines up to here.
    offset: u64,
    /// The writer's copy of the durable marks (same as `shared.hw`).
    hw: HashMap<u32, u64>,
    shared: Arc<Shared>,
    format: LineFormat,
    /// When the first commit not yet in a checkpoint happened.
    unsaved_since: Option<Instant>,
    buf: Vec<u8>,
}

struct Pending {
    reply: oneshot::Sender<Result<Stored, ArchiveError>>,
    stored: Stored,
}

impl Writer {
    pub fn new(
        path: PathBuf,
        index: PathBuf,
        rec: Recovered,
        shared: Arc<Shared>,
        format: LineFormat,
    ) -> Writer {
        *lock(&shared.hw) = rec.hw.clone();
        Writer {
            path,
            index,
            file: Some(rec.file),
            id: rec.id,
            offset: rec.offset,
            hw: rec.hw,
            shared,
            format,
            unsaved_since: None,
            buf: Vec::new(),
        }
    }

    pub fn run(mut self, rx: Receiver<Msg>) {
        loop {
            let first = match self.unsaved_since {
                Some(since) => {
                    let wait = CHECKPOINT_EVERY.saturating_sub(since.elapsed());
                    match rx.recv_timeout(wait) {
                        Ok(m) => m,
                        Err(RecvTimeoutError::Timeout) => {
                            self.checkpoint();
                            continue;
                        }
                        Err(RecvTimeoutError::Disconnected) => break,
                    }
                }
                None => match rx.recv() {
                    Ok(m) => m,
                    Err(_) => break,
                },
            };
            let mut group = Vec::new();
            let mut size = 0;
            let mut closing = false;
            let mut next = Some(first);
            while let Some(msg) = next.take() {
                match msg {
                    Msg::Store { batch, reply } => {
                        size += estimate(&batch);
                        group.push((batch, reply));
                    }
                    Msg::Close => closing = true,
                }
                if !closing && size < GROUP_BYTES {
                    next = rx.try_recv().ok();
                }
            }
            self.commit(group);
            if closing {
                break;
            }
            if self
                .unsaved_since
                .is_some_and(|t| t.elapsed() >= CHECKPOINT_EVERY)
            {
                self.checkpoint();
            }
        }
        // Clean stop (close() or every handle dropped): everything queued before is answered.
        self.checkpoint();
    }

    /// Dedupe, format, one write, one fdatasync, then publish and answer.
    fn commit(&mut self, group: Vec<(Batch, oneshot::Sender<Result<Stored, ArchiveError>>)>) {
        if group.is_empty() {
            return;
        }
        let ts = timestamp(OffsetDateTime::now_utc());
        self.buf.clear();
        // Marks raised by this group, not durable until the sync.
        let mut raised: HashMap<u32, u64> = HashMap::new();
        let mut pending = Vec::with_capacity(group.len());
        let (mut written, mut dups) = (0u64, 0u64);
        for (batch, reply) in group {
            let mut hw = raised
                .get(&batch.agent_id)
                .or_else(|| self.hw.get(&batch.agent_id))
                .copied()
                .unwrap_or(0);
            let mut stored = Stored {
                high_water: hw,
                written: 0,
                duplicates: 0,
            };
            for ev in &batch.events {
                if ev.seq <= hw {
                    stored.duplicates += 1;
                    continue;
                }
                self.format
                    .push(&mut self.buf, &ts, batch.agent_id, &batch.agent_name, ev);
                hw = ev.seq;
                stored.written += 1;
            }
            stored.high_water = hw;
            if stored.written > 0 {
                raised.insert(batch.agent_id, hw);
            }
            written += stored.written as u64;
            dups += stored.duplicates as u64;
            pending.push(Pending { reply, stored });
        }
        if !self.buf.is_empty() {
            if let Err(e) = self.append() {
                tracing::error!("archives: cannot write {}: {e}", self.path.display());
                let err = ArchiveError::io("write archives.json", e);
                for p in pending {
                    let _ = p.reply.send(Err(err.clone()));
                }
                return;
            }
            self.shared.commits.fetch_add(1, Ordering::Relaxed);
            self.shared
                .bytes
                .fetch_add(self.buf.len() as u64, Ordering::Relaxed);
            self.shared.stored.fetch_add(written, Ordering::Relaxed);
            self.unsaved_since.get_or_insert_with(Instant::now);
            let mut published = lock(&self.shared.hw);
            for (agent, hw) in raised {
                self.hw.insert(agent, hw);
                published.insert(agent, hw);
            }
        }
        self.shared.duplicates.fetch_add(dups, Ordering::Relaxed);
        for p in pending {
            // A waiter that went away is fine: its events are stored and will be deduped.
            let _ = p.reply.send(Ok(p.stored));
        }
        // Don't keep a huge buffer around after a burst.
        if self.buf.capacity() > 2 * GROUP_BYTES {
            self.buf = Vec::new();
        }
    }

    /// Appends `buf` durably. On failure, cuts the file back to the last durable end so no
    /// unacknowledged (and later resent) line stays behind; if that fails too, the file is
    /// reopened and cut before the next write. A file moved away from `path` is left behind.
    fn append(&mut self) -> io::Result<()> {
        // Moved away (logrotate): follow the path, as operators expect.
        let moved = match std::fs::metadata(&self.path) {
            Ok(m) => FileId::of(&m) != self.id,
            Err(e) => e.kind() == io::ErrorKind::NotFound,
        };
        if moved {
            self.file = None;
        }
        let file = match self.file.take() {
            Some(f) => f,
            None => self.reopen()?,
        };
        let res = (&file).write_all(&self.buf).and_then(|()| file.sync_data());
        match res {
            Ok(()) => {
                self.offset += self.buf.len() as u64;
                self.file = Some(file);
                Ok(())
            }
            Err(e) => {
                if file
                    .set_len(self.offset)
                    .and_then(|()| file.sync_data())
                    .is_ok()
                {
                    self.file = Some(file);
                }
                Err(e)
            }
        }
    }

    /// Opens the file at `path` again. The same file is cut back to the durable end; a new
    /// one (the old was moved away) is taken from its end, the marks kept.
    fn reopen(&mut self) -> io::Result<File> {
        let file = open_archive(&self.path)?;
        let id = FileId::of(&file.metadata()?);
        if id == self.id {
            let len = file.metadata()?.len();
            if len > self.offset {
                file.set_len(self.offset)?;
                file.sync_data()?;
            } else {
                // Cut shorter from outside (copytruncate): follow it.
                self.offset = len;
            }
        } else {
            tracing::info!("archives: {} is a new file", self.path.display());
            self.offset = trim_torn_tail(&file)?;
            self.id = id;
            self.unsaved_since.get_or_insert_with(Instant::now);
        }
        Ok(file)
    }

    /// Writes `index.json` for the current file and marks.
    fn checkpoint(&mut self) {
        let cp = Checkpoint {
            file: self.id,
            offset: self.offset,
            hw: self.hw.iter().map(|(&a, &s)| (a, s)).collect(),
        };
        match cp.save(&self.index) {
            Ok(()) => self.unsaved_since = None,
            Err(e) => {
                tracing::error!("archives: cannot write {}: {e}", self.index.display());
                // Retry at the next interval rather than on every commit.
                self.unsaved_since = Some(Instant::now());
            }
        }
    }
}

fn estimate(batch: &Batch) -> usize {
    batch
        .events
        .iter()
        .map(|e| e.log.len() + e.location.len() + batch.agent_name.len() + LINE_OVERHEAD)
        .sum()
}
