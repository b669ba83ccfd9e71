//! Durable shell around `State`: one writer thread owns every write to redb and group-commits
//! whatever is queued (log entries + changed agent rows + meta in ONE transaction), so after a
//! crash the tables hold exactly a committed prefix of the log. Reads are served from an
//! in-memory copy of the committed state and never touch disk.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::thread::JoinHandle;

use redb::{
    Database, Durability, ReadableDatabase, ReadableTable, TableDefinition, WriteTransaction,
};
use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast, oneshot};

use super::state::{Agent, Command, Outcome, State};

const LOG: TableDefinition<u64, &[u8]> = TableDefinition::new("log");
const AGENTS: TableDefinition<u32, &[u8]> = TableDefinition::new("agents");
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
const META_APPLIED: &str = "applied";
const META_NEXT_ID: &str = "next_id";

/// Most entries `entries_since` returns per call.
pub const ENTRIES_PER_CALL: usize = 5000;
/// Most queued submits folded into one transaction.
const MAX_BATCH: usize = 4096;

#[derive(Debug, Clone, thiserror::Error)]
pub enum RegistryError {
    #[error("registry i/o: {0}")]
    Io(Arc<std::io::Error>),
    #[error("registry database: {0}")]
    Db(Arc<redb::Error>),
    #[error("registry encoding: {0}")]
    Codec(Arc<serde_json::Error>),
    #[error("registry log gap: expected index {expected}, got {got}")]
    Gap { expected: u64, got: u64 },
    #[error("registry writer has stopped")]
    Closed,
}

impl From<std::io::Error> for RegistryError {
    fn from(e: std::io::Error) -> Self {
        RegistryError::Io(Arc::new(e))
    }
}

impl From<serde_json::Error> for RegistryError {
    fn from(e: serde_json::Error) -> Self {
        RegistryError::Codec(Arc::new(e))
    }
}

/// Every redb error type converts into `redb::Error`.
fn db<E: Into<redb::Error>>(e: E) -> RegistryError {
    RegistryError::Db(Arc::new(e.into()))
}

/// Full state at a log index: what a replica installs when the log it needs was compacted away.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Snapshot {
    pub index: u64,
    pub next_id: u32,
    pub agents: Vec<Agent>,
}

/// Tuning; `Default` is what production uses.
#[derive(Clone, Debug)]
pub struct RegistryOptions {
    /// Log entries kept after compaction.
    pub log_keep: u64,
    /// Extra entries tolerated before compacting, so deletes happen in occasional chunks.
    pub log_slack: u64,
}

impl Default for RegistryOptions {
    fn default() -> Self {
        RegistryOptions {
            log_keep: 10_000,
            log_slack: 1_000,
        }
    }
}

type Reply<T> = mpsc::SyncSender<Result<T, RegistryError>>;

enum Job {
    Submit(
        Command,
        oneshot::Sender<Result<(u64, Outcome), RegistryError>>,
    ),
    Replicate(Vec<(u64, Command)>, Reply<()>),
    Install(Snapshot, Reply<()>),
}

struct Shared {
    db: Database,
    /// The committed state; the writer updates it only after a successful commit.
    state: RwLock<State>,
    notify: broadcast::Sender<u64>,
}

impl Shared {
    // A panic elsewhere must not take the registry down with a poisoned lock.
    fn read(&self) -> RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(|e| e.into_inner())
    }
}

/// The durable registry. `Send + Sync`; share it through an `Arc`.
pub struct Registry {
    shared: Arc<Shared>,
    jobs: Option<Sender<Job>>,
    writer: Option<JoinHandle<()>>,
}

impl Registry {
    /// Opens (creating the parent directory and the file if needed) and loads the state.
    pub fn open(path: &Path) -> Result<Registry, RegistryError> {
        Registry::open_with(path, RegistryOptions::default())
    }

    pub fn open_with(path: &Path, opts: RegistryOptions) -> Result<Registry, RegistryError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let db_ = Database::create(path).map_err(db)?;
        // Create the tables up front so readers never meet a missing table.
        let txn = db_.begin_write().map_err(db)?;
        {
            txn.open_table(LOG).map_err(db)?;
            txn.open_table(AGENTS).map_err(db)?;
            txn.open_table(META).map_err(db)?;
        }
        txn.commit().map_err(db)?;
        let (state, log_first) = load(&db_)?;
        let (notify, _) = broadcast::channel(1024);
        let shared = Arc::new(Shared {
            db: db_,
            state: RwLock::new(state.clone()),
            notify,
        });
        let (tx, rx) = mpsc::channel();
        let writer = Writer {
            shared: Arc::clone(&shared),
            work: state,
            log_first,
            opts,
        };
        let handle = std::thread::Builder::new()
            .name("registry-writer".into())
            .spawn(move || writer.run(rx))?;
        Ok(Registry {
            shared,
            jobs: Some(tx),
            writer: Some(handle),
        })
    }

    fn send(&self, job: Job) -> Result<(), RegistryError> {
        let jobs = self.jobs.as_ref().ok_or(RegistryError::Closed)?;
        jobs.send(job).map_err(|_| RegistryError::Closed)
    }

    /// Applies `cmd` and returns once it is durably committed, with its log index. A rejected
    /// command is answered without being logged; its index is the current `applied`.
    pub async fn submit(&self, cmd: Command) -> Result<(u64, Outcome), RegistryError> {
        let (tx, rx) = oneshot::channel();
        self.send(Job::Submit(cmd, tx))?;
        rx.await.map_err(|_| RegistryError::Closed)?
    }

    /// Replica side: durably applies the entries past `applied`, in order. `Err(Gap)` when the
    /// first new entry is not `applied + 1` or the entries are not consecutive. Blocks the
    /// calling thread until committed (use `spawn_blocking` from async code).
    pub fn apply_replicated(&self, entries: &[(u64, Command)]) -> Result<(), RegistryError> {
        let (tx, rx) = mpsc::sync_channel(1);
        self.send(Job::Replicate(entries.to_vec(), tx))?;
        rx.recv().map_err(|_| RegistryError::Closed)?
    }

    /// Replaces the whole registry (and empties the log) with `snap`. Blocks like
    /// `apply_replicated`.
    pub fn install_snapshot(&self, snap: &Snapshot) -> Result<(), RegistryError> {
        let (tx, rx) = mpsc::sync_channel(1);
        self.send(Job::Install(snap.clone(), tx))?;
        rx.recv().map_err(|_| RegistryError::Closed)?
    }

    /// The committed state, consistent at one index.
    pub fn snapshot(&self) -> Snapshot {
        let s = self.shared.read();
        Snapshot {
            index: s.applied(),
            next_id: s.next_id(),
            agents: s.agents().cloned().collect(),
        }
    }

    /// Log entries with index > `index` (at most `ENTRIES_PER_CALL`); `None` when the log no
    /// longer holds `index + 1` (compacted): the caller sends a snapshot instead.
    pub fn entries_since(&self, index: u64) -> Result<Option<Vec<(u64, Command)>>, RegistryError> {
        let txn = self.shared.db.begin_read().map_err(db)?;
        let meta = txn.open_table(META).map_err(db)?;
        let applied = meta_get(&meta, META_APPLIED)?;
        if index >= applied {
            return Ok(Some(Vec::new()));
        }
        let log = txn.open_table(LOG).map_err(db)?;
        let first = match log.first().map_err(db)? {
            Some((k, _)) => k.value(),
            None => applied.saturating_add(1),
        };
        if index.saturating_add(1) < first {
            return Ok(None);
        }
        let mut out = Vec::new();
        for row in log.range(index.saturating_add(1)..).map_err(db)? {
            let (k, v) = row.map_err(db)?;
            out.push((k.value(), serde_json::from_slice(v.value())?));
            if out.len() >= ENTRIES_PER_CALL {
                break;
            }
        }
        Ok(Some(out))
    }

    pub fn applied(&self) -> u64 {
        self.shared.read().applied()
    }

    pub fn get(&self, id: u32) -> Option<Agent> {
        self.shared.read().get(id).cloned()
    }

    pub fn by_name(&self, name: &str) -> Option<Agent> {
        self.shared.read().by_name(name).cloned()
    }

    pub fn by_ip(&self, ip: &str) -> Option<Agent> {
        self.shared.read().by_ip(ip).cloned()
    }

    pub fn list(&self) -> Vec<Agent> {
        self.shared.read().agents().cloned().collect()
    }

    pub fn len(&self) -> usize {
        self.shared.read().len()
    }

    pub fn is_empty(&self) -> bool {
        self.shared.read().is_empty()
    }

    /// Receives the new applied index after each commit.
    pub fn subscribe(&self) -> broadcast::Receiver<u64> {
        self.shared.notify.subscribe()
    }

    /// Commits, coalesced: see [`Changes::next`].
    pub fn changes(&self) -> Changes {
        Changes(self.subscribe())
    }
}

/// A registry subscription for tasks that only need to know "something changed".
pub struct Changes(broadcast::Receiver<u64>);

impl Changes {
    /// Waits for at least one commit, lets a burst settle for `settle`, and swallows what
    /// queued meanwhile (a lagging receiver counts as a change). False once the registry is gone.
    pub async fn next(&mut self, settle: std::time::Duration) -> bool {
        match self.0.recv().await {
            Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
            Err(broadcast::error::RecvError::Closed) => return false,
        }
        if !settle.is_zero() {
            tokio::time::sleep(settle).await;
        }
        while self.0.try_recv().is_ok() {}
        true
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        // Closing the queue lets the writer finish what is queued and exit; joining it releases
        // the database file so it can be reopened at once.
        self.jobs.take();
        if let Some(h) = self.writer.take() {
            let _ = h.join();
        }
    }
}

fn meta_get(
    table: &impl ReadableTable<&'static str, u64>,
    key: &str,
) -> Result<u64, RegistryError> {
    Ok(table.get(key).map_err(db)?.map(|v| v.value()).unwrap_or(0))
}

/// Reads the state tables; also returns the first index the log holds.
fn load(db_: &Database) -> Result<(State, u64), RegistryError> {
    let txn = db_.begin_read().map_err(db)?;
    let meta = txn.open_table(META).map_err(db)?;
    let applied = meta_get(&meta, META_APPLIED)?;
    let next_id = u32::try_from(meta_get(&meta, META_NEXT_ID)?).unwrap_or(u32::MAX);
    let table = txn.open_table(AGENTS).map_err(db)?;
    let mut agents = Vec::new();
    for row in table.iter().map_err(db)? {
        let (_, v) = row.map_err(db)?;
        agents.push(serde_json::from_slice::<Agent>(v.value())?);
    }
    let log = txn.open_table(LOG).map_err(db)?;
    let log_first = match log.first().map_err(db)? {
        Some((k, _)) => k.value(),
        None => applied.saturating_add(1),
    };
    Ok((State::from_parts(applied, next_id, agents), log_first))
}

/// State owned by the writer thread. `work` runs ahead of the shared copy during a batch; the
/// shared copy catches up by re-applying the same entries after the commit (apply is
/// deterministic), and `work` is reset from it when a commit fails.
struct Writer {
    shared: Arc<Shared>,
    work: State,
    log_first: u64,
    opts: RegistryOptions,
}

type Waiter = oneshot::Sender<Result<(u64, Outcome), RegistryError>>;

impl Writer {
    fn run(mut self, rx: Receiver<Job>) {
        // recv fails once the Registry (the only sender) is dropped and the queue is empty.
        while let Ok(first) = rx.recv() {
            let mut submits: Vec<(Command, Waiter)> = Vec::new();
            let mut next = Some(first);
            while let Some(job) = next.take() {
                match job {
                    Job::Submit(cmd, w) => submits.push((cmd, w)),
                    Job::Replicate(entries, reply) => {
                        self.flush(std::mem::take(&mut submits));
                        let _ = reply.send(self.replicate(&entries));
                    }
                    Job::Install(snap, reply) => {
                        self.flush(std::mem::take(&mut submits));
                        let _ = reply.send(self.install(&snap));
                    }
                }
                if submits.len() < MAX_BATCH {
                    next = rx.try_recv().ok();
                }
            }
            self.flush(submits);
        }
    }

    /// One group commit for all queued submits, then every waiter is answered.
    fn flush(&mut self, submits: Vec<(Command, Waiter)>) {
        if submits.is_empty() {
            return;
        }
        let mut answers = Vec::with_capacity(submits.len());
        let mut logged = Vec::new();
        let mut touched = BTreeSet::new();
        for (cmd, waiter) in submits {
            let index = self.work.applied() + 1;
            let (outcome, ids) = self.work.apply_tracked(index, &cmd);
            if outcome.is_rejected() {
                answers.push((waiter, self.work.applied(), outcome));
            } else {
                touched.extend(ids);
                logged.push((index, cmd));
                answers.push((waiter, index, outcome));
            }
        }
        let result = self.commit(&logged, &touched, false);
        for (waiter, index, outcome) in answers {
            let _ = waiter.send(match &result {
                Ok(()) => Ok((index, outcome)),
                Err(e) => Err(e.clone()),
            });
        }
    }

    fn replicate(&mut self, entries: &[(u64, Command)]) -> Result<(), RegistryError> {
        let mut logged = Vec::new();
        let mut touched = BTreeSet::new();
        for (index, cmd) in entries {
            let expected = self.work.applied() + 1;
            if *index < expected {
                continue; // already applied
            }
            if *index != expected {
                // Keep what was consistent so far, report the hole.
                self.commit(&logged, &touched, true)?;
                return Err(RegistryError::Gap {
                    expected,
                    got: *index,
                });
            }
            let (outcome, ids) = self.work.apply_tracked(*index, cmd);
            if let Outcome::Rejected(r) = &outcome {
                tracing::warn!(index, reason = %r, "replicated registry entry rejected locally");
                self.work.set_applied(*index);
            }
            touched.extend(ids);
            logged.push((*index, cmd.clone()));
        }
        self.commit(&logged, &touched, true)
    }

    /// Writes `logged` and the rows of `touched` in one durable transaction, then publishes.
    fn commit(
        &mut self,
        logged: &[(u64, Command)],
        touched: &BTreeSet<u32>,
        replicated: bool,
    ) -> Result<(), RegistryError> {
        if logged.is_empty() {
            return Ok(());
        }
        match self.write_txn(logged, touched) {
            Ok(new_first) => {
                self.log_first = new_first;
                {
                    let mut shared = self.shared.write();
                    for (index, cmd) in logged {
                        let outcome = shared.apply(*index, cmd);
                        if replicated && outcome.is_rejected() {
                            shared.set_applied(*index);
                        }
                    }
                }
                let _ = self.shared.notify.send(self.work.applied());
                Ok(())
            }
            Err(e) => {
                tracing::error!(error = %e, "registry commit failed; batch dropped");
                self.work = self.shared.read().clone();
                Err(e)
            }
        }
    }

    /// Returns the log's first index after optional compaction.
    fn write_txn(
        &self,
        logged: &[(u64, Command)],
        touched: &BTreeSet<u32>,
    ) -> Result<u64, RegistryError> {
        let mut txn = self.shared.db.begin_write().map_err(db)?;
        txn.set_durability(Durability::Immediate).map_err(db)?;
        let applied = self.work.applied();
        let mut first = self.log_first;
        {
            let mut log = txn.open_table(LOG).map_err(db)?;
            for (index, cmd) in logged {
                log.insert(*index, serde_json::to_vec(cmd)?.as_slice())
                    .map_err(db)?;
            }
            let held = applied.saturating_add(1).saturating_sub(first);
            if held > self.opts.log_keep.saturating_add(self.opts.log_slack) {
                let cut = applied.saturating_add(1).saturating_sub(self.opts.log_keep);
                log.retain_in(..cut, |_, _| false).map_err(db)?;
                first = cut;
            }
        }
        write_rows(&txn, &self.work, touched.iter().copied())?;
        txn.commit().map_err(db)?;
        Ok(first)
    }

    fn install(&mut self, snap: &Snapshot) -> Result<(), RegistryError> {
        let state = State::from_parts(snap.index, snap.next_id, snap.agents.iter().cloned());
        let write = || -> Result<(), RegistryError> {
            let mut txn = self.shared.db.begin_write().map_err(db)?;
            txn.set_durability(Durability::Immediate).map_err(db)?;
            {
                txn.open_table(LOG)
                    .map_err(db)?
                    .retain(|_, _| false)
                    .map_err(db)?;
                txn.open_table(AGENTS)
                    .map_err(db)?
                    .retain(|_, _| false)
                    .map_err(db)?;
            }
            write_rows(&txn, &state, state.agents().map(|a| a.id))?;
            txn.commit().map_err(db)
        };
        write()?;
        self.log_first = state.applied().saturating_add(1);
        *self.shared.write() = state.clone();
        self.work = state;
        let _ = self.shared.notify.send(self.work.applied());
        Ok(())
    }
}

/// Writes the rows of `ids` (deleting the ones `state` no longer has) and the meta counters.
fn write_rows(
    txn: &WriteTransaction,
    state: &State,
    ids: impl Iterator<Item = u32>,
) -> Result<(), RegistryError> {
    let mut agents = txn.open_table(AGENTS).map_err(db)?;
    for id in ids {
        match state.get(id) {
            Some(a) => {
                agents
                    .insert(id, serde_json::to_vec(a)?.as_slice())
                    .map_err(db)?;
            }
            None => {
                agents.remove(id).map_err(db)?;
            }
        }
    }
    let mut meta = txn.open_table(META).map_err(db)?;
    meta.insert(META_APPLIED, state.applied()).map_err(db)?;
    meta.insert(META_NEXT_ID, u64::from(state.next_id()))
        .map_err(db)?;
    Ok(())
}
