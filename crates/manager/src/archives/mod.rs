//! `logs/archives/archives.json`: every event an agent sends, appended durably before the
//! agent is acknowledged, at most once per (agent, seq).
//!
//! One writer thread owns the file and commits in groups (one write + one fdatasync for
//! everything queued); `store()` resolves after the sync. Each agent's high-water mark (its
//! highest stored seq) survives restarts and crashes: the file itself is the truth, a
//! checkpoint (`queue/archives/index.json`) only saves rescanning it.

pub mod index;
pub mod line;
mod writer;

use std::future::Future;
use std::io;
use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use tokio::sync::oneshot;

use crate::home::Home;
use crate::node::lock;
use writer::{Msg, Shared, Writer};

/// One event as the agent sent it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchivedEvent {
    /// Per-agent sequence number, from 1.
    pub seq: u64,
    /// Agent clock when the line was read, unix milliseconds.
    pub ts_ms: i64,
    pub location: String,
    pub log: Vec<u8>,
}

/// Events of one agent, in increasing `seq`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    pub agent_id: u32,
    pub agent_name: String,
    pub events: Vec<ArchivedEvent>,
}

/// The answer to a durable `store()`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stored {
    /// The agent's high-water mark once this batch is durable.
    pub high_water: u64,
    pub written: usize,
    pub duplicates: usize,
}

/// Counters since open (serialized into the node's status).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct ArchiveStats {
    /// Events written.
    pub stored: u64,
    /// Events dropped as already stored.
    pub duplicates: u64,
    /// Group commits (write + fdatasync).
    pub commits: u64,
    /// Bytes appended.
    pub bytes: u64,
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum ArchiveError {
    #[error("archives: {what}: {source}")]
    Io {
        what: String,
        source: Arc<io::Error>,
    },
    #[error("archives are closed")]
    Closed,
}

impl ArchiveError {
    fn io(what: impl Into<String>, e: io::Error) -> ArchiveError {
        ArchiveError::Io {
            what: what.into(),
            source: Arc::new(e),
        }
    }
}

/// Handle to the archive writer; cheap to clone. When the last handle is dropped the writer
/// finishes what is queued, writes a checkpoint and stops.
#[derive(Debug, Clone)]
pub struct Archives {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    tx: mpsc::Sender<Msg>,
    shared: Arc<Shared>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for Msg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Msg::Store { batch, .. } => write!(f, "Store(agent {})", batch.agent_id),
            Msg::Close => f.write_str("Close"),
        }
    }
}

impl Archives {
    /// Recovers (trims a torn last line, rebuilds the high-water marks) and starts the
    /// writer thread. Blocking: a large file is scanned unless the checkpoint covers it.
    /// `node` is this node's name, `cluster` the cluster's.
    pub fn open(home: &Home, cluster: &str, node: &str) -> Result<Archives, ArchiveError> {
        for dir in [home.archives(), home.archives_queue()] {
            std::fs::create_dir_all(&dir)
                .map_err(|e| ArchiveError::io(format!("create {}", dir.display()), e))?;
        }
        let path = home.archives_json();
        let index = home.archives_queue().join("index.json");
        let rec = index::recover(&path, &index)
            .map_err(|e| ArchiveError::io(format!("recover {}", path.display()), e))?;
        let shared = Arc::new(Shared::default());
        let writer = Writer::new(
            path,
            index,
            rec,
            Arc::clone(&shared),
            line::LineFormat::new(cluster, node),
        );
        let (tx, rx) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("archives".into())
            .spawn(move || writer.run(rx))
            .map_err(|e| ArchiveError::io("start the writer thread", e))?;
        Ok(Archives {
            inner: Arc::new(Inner {
                tx,
                shared,
                thread: Mutex::new(Some(thread)),
            }),
        })
    }

    /// Queues the batch at once (batches are stored in call order) and resolves once it is on
    /// disk, or with the error that kept it off (then nothing of it may be acknowledged).
    /// Events with `seq` not above the agent's high-water mark (including repeats inside the
    /// batch) are dropped as duplicates. Dropping the future does not withdraw the batch.
    pub fn store(
        &self,
        batch: Batch,
    ) -> impl Future<Output = Result<Stored, ArchiveError>> + Send + 'static {
        let queued = self.enqueue(batch);
        async move {
            // A dropped reply means the writer stopped before reaching the batch.
            queued?.await.map_err(|_| ArchiveError::Closed)?
        }
    }

    fn enqueue(
        &self,
        batch: Batch,
    ) -> Result<oneshot::Receiver<Result<Stored, ArchiveError>>, ArchiveError> {
        if self.inner.shared.closed.load(Ordering::Acquire) {
            return Err(ArchiveError::Closed);
        }
        let (reply, rx) = oneshot::channel();
        self.inner
            .tx
            .send(Msg::Store { batch, reply })
            .map_err(|_| ArchiveError::Closed)?;
        Ok(rx)
    }

    /// Highest durable seq stored for the agent (0 if none).
    pub fn high_water(&self, agent_id: u32) -> u64 {
        lock(&self.inner.shared.hw)
            .get(&agent_id)
            .copied()
            .unwrap_or(0)
    }

    pub fn stats(&self) -> ArchiveStats {
        self.inner.shared.stats()
    }

    /// Clean shutdown: batches queued before are stored and answered, a checkpoint is
    /// written, the thread stops (this waits for it). Later `store()` calls fail.
    pub fn close(&self) {
        self.inner.shared.closed.store(true, Ordering::Release);
        let _ = self.inner.tx.send(Msg::Close);
        let thread = lock(&self.inner.thread).take();
        if let Some(t) = thread {
            if t.join().is_err() {
                tracing::error!("archives: the writer thread panicked");
            }
        }
    }
}
