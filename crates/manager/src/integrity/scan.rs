//! Walks the synced folders of `etc/` and builds their [`Metadata`], rehashing only files whose
//! (size, mtime) moved since the last scan, in parallel.
//!
//! Like Wazuh, a content change that keeps both size and mtime is not noticed until the mtime
//! moves. One exception is handled (git's "racy" entries): a file whose mtime is within
//! [`RACY_WINDOW`] of the moment we looked at it may still be written again within the same
//! timestamp tick, so it is not trusted and gets rehashed on the next scan too.

use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::meta::{is_synced_name, FileMeta, Metadata, MODE_MASK, SYNCED_DIRS};

/// How close to "now" an mtime must be for the entry to count as racy.
pub const RACY_WINDOW: Duration = Duration::from_secs(2);

/// Read buffer per hashing thread.
const HASH_BUF: usize = 1 << 20;

pub struct Scanner {
    etc: PathBuf,
    cache: Arc<Metadata>,
    /// Keys whose cached hash must not be trusted (see module docs).
    racy: HashSet<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScanStats {
    pub files: usize,
    /// Files actually read and hashed this scan.
    pub hashed: usize,
    pub hashed_bytes: u64,
    pub elapsed: Duration,
}

/// A file seen by the walk: lstat data, plus whether the cache already knows its hash.
struct Seen {
    rel: String,
    path: PathBuf,
    size: u64,
    mtime_s: i64,
    mtime_ns: u32,
    mode: u32,
}

impl Scanner {
    /// `etc` is `<home>/etc`.
    pub fn new(etc: PathBuf) -> Scanner {
        Scanner {
            etc,
            cache: Arc::new(Metadata::new()),
            racy: HashSet::new(),
        }
    }

    pub fn etc(&self) -> &Path {
        &self.etc
    }

    /// The metadata of the last scan, updated by `note`/`forget` since.
    pub fn cached(&self) -> Arc<Metadata> {
        self.cache.clone()
    }

    pub fn scan(&mut self) -> io::Result<(Arc<Metadata>, ScanStats)> {
        let started = Instant::now();
        let now = SystemTime::now();
        let mut seen = Vec::new();
        for top in SYNCED_DIRS {
            walk(&self.etc.join(top), top, &mut seen)?;
        }

        let mut out = Metadata::new();
        let mut todo = Vec::new();
        for s in seen {
            match self.cache.get(&s.rel) {
                Some(c)
                    if c.size == s.size
                        && c.mtime_s == s.mtime_s
                        && c.mtime_ns == s.mtime_ns
                        && !self.racy.contains(&s.rel) =>
                {
                    let meta = FileMeta {
                        mode: s.mode,
                        ..c.clone()
                    };
                    out.insert(s.rel, meta);
                }
                _ => todo.push(s),
            }
        }

        let mut stats = ScanStats::default();
        let results = hash_all(&todo);
        let mut racy = HashSet::new();
        for (s, r) in todo.into_iter().zip(results) {
            // None: vanished (or replaced by a non-file) since the walk.
            if let Some(meta) = r? {
                stats.hashed += 1;
                stats.hashed_bytes += meta.size;
                if is_racy(&meta, now) {
                    racy.insert(s.rel.clone());
                }
                out.insert(s.rel, meta);
            }
        }
        stats.files = out.len();
        stats.elapsed = started.elapsed();
        let out = Arc::new(out);
        self.cache = out.clone();
        self.racy = racy;
        Ok((out, stats))
    }

    /// A file we just wrote ourselves: its hash is known, no need to rehash it next time.
    pub fn note(&mut self, rel: &str, meta: FileMeta) {
        self.racy.remove(rel);
        Arc::make_mut(&mut self.cache).insert(rel.to_string(), meta);
    }

    pub fn forget(&mut self, rel: &str) {
        self.racy.remove(rel);
        if self.cache.contains_key(rel) {
            Arc::make_mut(&mut self.cache).remove(rel);
        }
    }
}

fn is_racy(m: &FileMeta, now: SystemTime) -> bool {
    let Ok(now) = now.duration_since(UNIX_EPOCH) else {
        return true;
    };
    let limit = now.saturating_sub(RACY_WINDOW);
    let limit_s = i64::try_from(limit.as_secs()).unwrap_or(i64::MAX);
    (m.mtime_s, m.mtime_ns) >= (limit_s, limit.subsec_nanos())
}

/// Recursive walk of one folder; symlinks, special files and excluded names are skipped, a
/// folder vanishing mid-walk counts as empty.
fn walk(dir: &Path, rel: &str, out: &mut Vec<Seen>) -> io::Result<()> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if gone(&e) => return Ok(()),
        Err(e) => return Err(e),
    };
    // The top folder itself must be a real directory, not a link (read_dir would follow it).
    if rel.find('/').is_none() {
        match std::fs::symlink_metadata(dir) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => return Ok(()),
            Err(e) if gone(&e) => return Ok(()),
            Err(e) => return Err(e),
        }
    }
    for entry in entries {
        let entry = match entry {
            Ok(e) => e,
            Err(e) if gone(&e) => continue,
            Err(e) => return Err(e),
        };
        let Ok(name) = entry.file_name().into_string() else {
            continue; // not UTF-8: cannot be a valid synced path
        };
        if !is_synced_name(&name) {
            continue;
        }
        let ft = match entry.file_type() {
            Ok(t) => t,
            Err(e) if gone(&e) => continue,
            Err(e) => return Err(e),
        };
        let child_rel = format!("{rel}/{name}");
        if ft.is_dir() {
            walk(&entry.path(), &child_rel, out)?;
        } else if ft.is_file() {
            let md = match entry.metadata() {
                Ok(m) => m,
                Err(e) if gone(&e) => continue,
                Err(e) => return Err(e),
            };
            if !md.is_file() {
                continue;
            }
            out.push(Seen {
                rel: child_rel,
                path: entry.path(),
                size: md.size(),
                mtime_s: md.mtime(),
                mtime_ns: u32::try_from(md.mtime_nsec()).unwrap_or(0),
                mode: md.mode() & MODE_MASK,
            });
        }
    }
    Ok(())
}

/// Errors meaning "this entry is no longer there (as a plain file/folder)".
pub(crate) fn gone(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::NotFound
        || matches!(e.raw_os_error(), Some(libc::ELOOP) | Some(libc::ENOTDIR))
}

/// Hashes the files in parallel; result `i` belongs to `todo[i]`. Workers pull the next file
/// from a shared counter, biggest files first, so mixed sizes balance across threads.
fn hash_all(todo: &[Seen]) -> Vec<io::Result<Option<FileMeta>>> {
    let mut order: Vec<usize> = (0..todo.len()).collect();
    order.sort_unstable_by_key(|&i| std::cmp::Reverse(todo[i].size));
    let total: u64 = todo.iter().map(|s| s.size).sum();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    // Threads only pay off with enough work (a thread costs ~tens of µs).
    let threads = cores
        .min(todo.len())
        .min(1 + (total / (256 << 10)) as usize)
        .max(1);

    let mut results: Vec<io::Result<Option<FileMeta>>> =
        (0..todo.len()).map(|_| Ok(None)).collect();
    if threads == 1 {
        let mut buf = vec![0u8; HASH_BUF];
        for (i, s) in todo.iter().enumerate() {
            results[i] = hash_file(&s.path, &mut buf);
        }
        return results;
    }
    let next = AtomicUsize::new(0);
    let parts: Vec<Vec<(usize, io::Result<Option<FileMeta>>)>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    let mut buf = vec![0u8; HASH_BUF];
                    let mut done = Vec::new();
                    loop {
                        let k = next.fetch_add(1, Ordering::Relaxed);
                        let Some(&i) = order.get(k) else { break };
                        done.push((i, hash_file(&todo[i].path, &mut buf)));
                    }
                    done
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_default())
            .collect()
    });
    let mut filled = vec![false; todo.len()];
    for (i, r) in parts.into_iter().flatten() {
        results[i] = r;
        filled[i] = true;
    }
    // A panicked hashing thread (should not happen) must not turn files into "vanished".
    if filled.iter().any(|f| !f) {
        return (0..todo.len())
            .map(|_| Err(io::Error::other("hashing thread panicked")))
            .collect();
    }
    results
}

/// Hashes one file, with size/mtime/mode taken from the open fd *before* reading: if the file
/// changes while we read, its mtime moves past what we record and the next scan rehashes it.
/// `Ok(None)`: the file vanished or is no longer a regular file.
pub(crate) fn hash_file(path: &Path, buf: &mut [u8]) -> io::Result<Option<FileMeta>> {
    let mut f = match open_nofollow(path) {
        Ok(f) => f,
        Err(e) if gone(&e) => return Ok(None),
        Err(e) => return Err(e),
    };
    let md = f.metadata()?;
    if !md.is_file() {
        return Ok(None);
    }
    let mut hasher = blake3::Hasher::new();
    loop {
        match f.read(buf) {
            Ok(0) => break,
            Ok(n) => {
                hasher.update(&buf[..n]);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(Some(FileMeta {
        size: md.size(),
        mtime_s: md.mtime(),
        mtime_ns: u32::try_from(md.mtime_nsec()).unwrap_or(0),
        mode: md.mode() & MODE_MASK,
        hash: hasher.finalize().to_hex().to_string(),
    }))
}

/// O_NOFOLLOW: a file swapped for a symlink is not followed; O_NONBLOCK: a FIFO cannot hang us.
fn open_nofollow(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
}
