//! Encoded file pieces, shared between workers: after a change every worker asks for the
//! same pieces, so the master reads and compresses each once. Entries are keyed by the
//! request and the metadata generation (a rescan starts afresh) and bounded in bytes.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::sync::{Arc, Mutex};

use tokio::sync::OnceCell;

/// Cached bytes at most (oldest entries go first).
const CAP: usize = 192 << 20;

type Key = [u8; 32];

#[derive(Default)]
pub struct PieceCache {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    cells: HashMap<Key, Arc<OnceCell<Arc<Vec<u8>>>>>,
    order: VecDeque<(Key, usize)>,
    bytes: usize,
}

pub fn key(generation: u64, request: &[u8]) -> Key {
    let mut h = blake3::Hasher::new();
    h.update(&generation.to_le_bytes());
    h.update(request);
    *h.finalize().as_bytes()
}

impl PieceCache {
    fn inner(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The piece for `key`, building it once even when several workers ask at once.
    pub async fn get_or_build<F>(&self, key: Key, build: F) -> Result<Arc<Vec<u8>>, String>
    where
        F: Future<Output = Result<Vec<u8>, String>>,
    {
        let cell = self.inner().cells.entry(key).or_default().clone();
        let built = cell
            .get_or_try_init(|| async { build.await.map(Arc::new) })
            .await;
        let mut inner = self.inner();
        match built {
            Ok(piece) => {
                if !inner.order.iter().any(|(k, _)| *k == key) {
                    inner.order.push_back((key, piece.len()));
                    inner.bytes += piece.len();
                    while inner.bytes > CAP {
                        let Some((old, size)) = inner.order.pop_front() else {
                            break;
                        };
                        inner.cells.remove(&old);
                        inner.bytes -= size;
                    }
                }
                Ok(piece.clone())
            }
            Err(e) => {
                inner.cells.remove(&key);
                Err(e)
            }
        }
    }

    /// Drop everything (new metadata: pieces of the old generation are never asked again).
    pub fn clear(&self) {
        let mut inner = self.inner();
        inner.cells.clear();
        inner.order.clear();
        inner.bytes = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test]
    async fn builds_once_for_concurrent_askers() {
        let cache = Arc::new(PieceCache::default());
        let builds = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..3 {
            let (cache, builds) = (cache.clone(), builds.clone());
            tasks.push(tokio::spawn(async move {
                cache
                    .get_or_build(key(1, b"piece"), async {
                        builds.fetch_add(1, Ordering::SeqCst);
                        tokio::task::yield_now().await;
                        Ok(vec![7u8; 10])
                    })
                    .await
            }));
        }
        for t in tasks {
            assert_eq!(t.await.unwrap().unwrap().len(), 10);
        }
        assert_eq!(builds.load(Ordering::SeqCst), 1);
        // Another generation is another piece.
        let other = cache
            .get_or_build(key(2, b"piece"), async { Ok(vec![1u8]) })
            .await
            .unwrap();
        assert_eq!(*other, vec![1u8]);
    }

    #[tokio::test]
    async fn failures_are_not_cached_and_size_is_bounded() {
        let cache = PieceCache::default();
        let e = cache
            .get_or_build(key(1, b"x"), async { Err("boom".to_string()) })
            .await;
        assert!(e.is_err());
        let ok = cache
            .get_or_build(key(1, b"x"), async { Ok(vec![1u8]) })
            .await;
        assert_eq!(*ok.unwrap(), vec![1u8]);
        for i in 0..4u64 {
            let _ = cache
                .get_or_build(key(i, b"big"), async { Ok(vec![0u8; 64 << 20]) })
                .await;
        }
        assert!(cache.inner().bytes <= CAP);
        cache.clear();
        assert_eq!(cache.inner().bytes, 0);
    }
}
