//! Transactions: a copy of haproxy.cfg per transaction in `transaction_dir`
//! that writes with `transaction_id` edit, committed as one change.

use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;

use super::write::write_atomic;
use super::ApiError;

#[derive(Debug, Clone, Serialize)]
pub struct Transaction {
    /// The configuration version the transaction started from.
    #[serde(rename = "_version")]
    pub version: u64,
    pub id: String,
    /// `in_progress`, `success`, `failed` or `outdated`.
    pub status: &'static str,
}

/// How many finished transactions are remembered.
const KEEP: usize = 100;

#[derive(Default)]
struct Inner {
    map: BTreeMap<String, Transaction>,
    /// Ids of finished transactions, oldest first.
    closed: VecDeque<String>,
}

pub struct Transactions {
    dir: PathBuf,
    max_open: u32,
    counter: AtomicU64,
    inner: Mutex<Inner>,
}

impl Transactions {
    pub fn new(dir: PathBuf, max_open: u32) -> Self {
        Transactions {
            dir,
            max_open,
            counter: AtomicU64::new(0),
            inner: Mutex::new(Inner::default()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Ids are only ever ours (checked against the map before any file use).
    fn path(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.cfg"))
    }

    fn new_id(&self) -> String {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let mix = (nanos as u64) ^ (u64::from(std::process::id()) << 32) ^ n.rotate_left(17);
        format!(
            "{:08x}-{:04x}-4{:03x}-a{:03x}-{:012x}",
            (mix >> 32) as u32,
            (mix >> 16) as u16,
            (n & 0xfff) as u16,
            ((nanos >> 64) as u16 ^ (nanos as u16)) & 0xfff,
            (nanos as u64 ^ n.wrapping_mul(0x9e37_79b9_7f4a_7c15)) & 0xffff_ffff_ffff
        )
    }

    /// Starts a transaction on `text` at `version`.
    pub fn start(&self, version: u64, text: &str) -> Result<Transaction, ApiError> {
        let open = self
            .lock()
            .map
            .values()
            .filter(|t| t.status == "in_progress")
            .count();
        if self.max_open > 0 && open >= self.max_open as usize {
            return Err(ApiError::TooManyRequests(format!(
                "cannot start transaction: {open} transactions are open (max-open-transactions)"
            )));
        }
        ensure_dir(&self.dir)?;
        let id = self.new_id();
        write_atomic(&self.path(&id), text, Some(0o600))
            .map_err(|e| ApiError::Internal(format!("cannot write transaction file: {e}")))?;
        let tx = Transaction {
            version,
            id: id.clone(),
            status: "in_progress",
        };
        self.lock().map.insert(id, tx.clone());
        Ok(tx)
    }

    pub fn get(&self, id: &str) -> Option<Transaction> {
        self.lock().map.get(id).cloned()
    }

    pub fn list(&self, status: Option<&str>) -> Vec<Transaction> {
        self.lock()
            .map
            .values()
            .filter(|t| status.is_none_or(|s| t.status == s))
            .cloned()
            .collect()
    }

    /// An open transaction and its text.
    pub fn open(&self, id: &str) -> Result<(Transaction, String), ApiError> {
        let tx = self
            .get(id)
            .ok_or_else(|| ApiError::NotFound(format!("transaction {id} does not exist")))?;
        if tx.status != "in_progress" {
            return Err(ApiError::BadRequest(format!(
                "transaction {id} is {}, not in_progress",
                tx.status
            )));
        }
        let text = std::fs::read_to_string(self.path(id))
            .map_err(|e| ApiError::Internal(format!("cannot read transaction {id}: {e}")))?;
        Ok((tx, text))
    }

    pub fn store(&self, id: &str, text: &str) -> Result<(), ApiError> {
        write_atomic(&self.path(id), text, Some(0o600))
            .map_err(|e| ApiError::Internal(format!("cannot write transaction {id}: {e}")))
    }

    /// Ends a transaction with `status`; its file goes away. Only the last
    /// [`KEEP`] finished ones are remembered, so memory stays bounded.
    pub fn close(&self, id: &str, status: &'static str) {
        let mut inner = self.lock();
        if let Some(t) = inner.map.get_mut(id) {
            let was_open = t.status == "in_progress";
            t.status = status;
            if was_open {
                inner.closed.push_back(id.to_string());
            }
        }
        while inner.closed.len() > KEEP {
            if let Some(old) = inner.closed.pop_front() {
                inner.map.remove(&old);
            }
        }
        drop(inner);
        let _ = std::fs::remove_file(self.path(id));
    }

    /// Forgets a transaction; `false` when there was none.
    pub fn delete(&self, id: &str) -> bool {
        let known = {
            let mut inner = self.lock();
            inner.closed.retain(|c| c != id);
            inner.map.remove(id).is_some()
        };
        if known {
            let _ = std::fs::remove_file(self.path(id));
        }
        known
    }
}

/// Creates the transaction directory 0700 when missing. An existing one
/// must be a real directory of ours that nobody else can write to: another
/// local user could otherwise read or swap the transaction files, which are
/// later committed as haproxy.cfg.
fn ensure_dir(dir: &Path) -> Result<(), ApiError> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt};
    let meta = match std::fs::symlink_metadata(dir) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(|e| {
                    ApiError::Internal(format!(
                        "cannot create transaction directory {}: {e}",
                        dir.display()
                    ))
                });
        }
        Err(e) => {
            return Err(ApiError::Internal(format!(
                "cannot inspect transaction directory {}: {e}",
                dir.display()
            )))
        }
    };
    let euid = nix::unistd::geteuid().as_raw();
    let problem = if meta.file_type().is_symlink() {
        Some("is a symbolic link".to_string())
    } else if !meta.is_dir() {
        Some("is not a directory".to_string())
    } else if meta.uid() != euid {
        Some(format!("is owned by uid {}, not by uid {euid}", meta.uid()))
    } else if meta.mode() & 0o022 != 0 {
        Some(format!(
            "is writable by group or others (mode {:o})",
            meta.mode() & 0o7777
        ))
    } else {
        None
    };
    match problem {
        None => Ok(()),
        Some(p) => Err(ApiError::Internal(format!(
            "transaction directory {dir} {p}; make it a directory owned by uid {euid} \
             with mode 0700 (chown/chmod {dir}), or set another transaction_dir",
            dir = dir.display()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_and_uuid_shaped() {
        let t = Transactions::new(PathBuf::from("/nonexistent"), 0);
        let a = t.new_id();
        let b = t.new_id();
        assert_ne!(a, b);
        assert_eq!(a.len(), 36);
        assert_eq!(
            a.split('-').map(str::len).collect::<Vec<_>>(),
            [8, 4, 4, 4, 12]
        );
    }

    #[test]
    fn unsafe_transaction_dirs_are_refused() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().unwrap();
        let fresh = tmp.path().join("fresh");
        ensure_dir(&fresh).unwrap();
        let mode = std::fs::metadata(&fresh).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
        ensure_dir(&fresh).unwrap();

        let open = tmp.path().join("open");
        std::fs::create_dir(&open).unwrap();
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
        let err = ensure_dir(&open).unwrap_err().to_string();
        assert!(err.contains("writable by group or others"), "{err}");
        assert!(err.contains(&open.display().to_string()), "{err}");

        let link = tmp.path().join("link");
        std::os::unix::fs::symlink(&fresh, &link).unwrap();
        let err = ensure_dir(&link).unwrap_err().to_string();
        assert!(err.contains("symbolic link"), "{err}");

        let t = Transactions::new(open, 0);
        assert!(t.start(1, "global\n").is_err());
        assert!(t.list(None).is_empty());
    }

    #[test]
    fn finished_transactions_are_bounded() {
        let tmp = tempfile::tempdir().unwrap();
        let t = Transactions::new(tmp.path().join("tx"), 0);
        let mut ids = Vec::new();
        for _ in 0..KEEP + 5 {
            let tx = t.start(1, "global\n").unwrap();
            t.close(&tx.id, "success");
            ids.push(tx.id);
        }
        let open = t.start(1, "global\n").unwrap();
        assert_eq!(t.list(None).len(), KEEP + 1);
        assert!(t.get(&ids[0]).is_none());
        assert!(t.get(&ids[4]).is_none());
        assert_eq!(t.get(&ids[5]).map(|x| x.status), Some("success"));
        assert_eq!(t.get(&open.id).map(|x| x.status), Some("in_progress"));
    }
}
