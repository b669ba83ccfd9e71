//! Transactions: a copy of haproxy.cfg per transaction in `transaction_dir`
//! that writes with `transaction_id` edit, committed as one change.

use std::collections::BTreeMap;
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

pub struct Transactions {
    dir: PathBuf,
    max_open: u32,
    counter: AtomicU64,
    map: Mutex<BTreeMap<String, Transaction>>,
}

impl Transactions {
    pub fn new(dir: PathBuf, max_open: u32) -> Self {
        Transactions {
            dir,
            max_open,
            counter: AtomicU64::new(0),
            map: Mutex::new(BTreeMap::new()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<String, Transaction>> {
        self.map.lock().unwrap_or_else(|p| p.into_inner())
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
        self.lock().insert(id, tx.clone());
        Ok(tx)
    }

    pub fn get(&self, id: &str) -> Option<Transaction> {
        self.lock().get(id).cloned()
    }

    pub fn list(&self, status: Option<&str>) -> Vec<Transaction> {
        self.lock()
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

    /// Ends a transaction with `status`; its file goes away.
    pub fn close(&self, id: &str, status: &'static str) {
        if let Some(t) = self.lock().get_mut(id) {
            t.status = status;
        }
        let _ = std::fs::remove_file(self.path(id));
    }

    /// Forgets a transaction; `false` when there was none.
    pub fn delete(&self, id: &str) -> bool {
        let known = self.lock().remove(id).is_some();
        if known {
            let _ = std::fs::remove_file(self.path(id));
        }
        known
    }
}

/// Creates the transaction directory 0700 when missing.
fn ensure_dir(dir: &Path) -> Result<(), ApiError> {
    if dir.is_dir() {
        return Ok(());
    }
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| {
            ApiError::Internal(format!(
                "cannot create transaction directory {}: {e}",
                dir.display()
            ))
        })
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
}
