//! What survives a restart besides `archives.json` itself: the checkpoint
//! `queue/archives/index.json` ({file identity, offset covered, hw per agent}), and the
//! recovery that trims a torn tail and rebuilds every agent's high-water mark.

use std::collections::{BTreeMap, HashMap};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::line::parse_key;

/// Reads at recovery go in chunks this big.
const SCAN_CHUNK: usize = 8 << 20;
/// The torn tail is searched backwards in chunks this big.
const TAIL_CHUNK: u64 = 64 << 10;

/// `(st_dev, st_ino)`: tells a file that was moved away from the one now at its path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct FileId {
    pub dev: u64,
    pub ino: u64,
}

impl FileId {
    pub fn of(meta: &fs::Metadata) -> FileId {
        FileId {
            dev: meta.dev(),
            ino: meta.ino(),
        }
    }
}

/// `index.json`: every line of file `file` before `offset` is counted in `hw`, and `hw` holds
/// only durable events (it is written after the sync that covers them).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub file: FileId,
    pub offset: u64,
    pub hw: BTreeMap<u32, u64>,
}

impl Checkpoint {
    /// `None` if there is none, or it is unreadable as JSON (a full scan follows).
    pub fn load(path: &Path) -> io::Result<Option<Checkpoint>> {
        let bytes = match fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        match serde_json::from_slice(&bytes) {
            Ok(cp) => Ok(Some(cp)),
            Err(e) => {
                tracing::warn!("ignoring unreadable {}: {e}", path.display());
                Ok(None)
            }
        }
    }

    /// Atomically: temp file, fsync, rename, fsync of the directory.
    pub fn save(&self, path: &Path) -> io::Result<()> {
        let bytes = serde_json::to_vec(self).map_err(io::Error::other)?;
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        {
            let mut f = OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o640)
                .open(&tmp)?;
            f.write_all(&bytes)?;
            f.sync_all()?;
        }
        fs::rename(&tmp, path)?;
        sync_parent(path)
    }
}

/// Makes a rename or a file creation in `path`'s directory durable.
pub fn sync_parent(path: &Path) -> io::Result<()> {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => File::open(dir)?.sync_all(),
        _ => File::open(".")?.sync_all(),
    }
}

/// Opens `archives.json` for appending (and reading back), creating it 0640.
pub fn open_archive(path: &Path) -> io::Result<File> {
    let existed = path.exists();
    let f = OpenOptions::new()
        .read(true)
        .append(true)
        .create(true)
        .mode(0o640)
        .open(path)?;
    if !existed {
        sync_parent(path)?;
    }
    Ok(f)
}

/// Cuts a last line that has no `'\n'`: a write interrupted by a crash, never acknowledged.
/// Returns the new length.
pub fn trim_torn_tail(file: &File) -> io::Result<u64> {
    let len = file.metadata()?.len();
    let mut end = len;
    let mut buf = vec![0u8; TAIL_CHUNK as usize];
    let keep = loop {
        if end == 0 {
            break 0;
        }
        let start = end.saturating_sub(TAIL_CHUNK);
        let chunk = &mut buf[..(end - start) as usize];
        file.read_exact_at(chunk, start)?;
        if let Some(i) = chunk.iter().rposition(|&b| b == b'\n') {
            break start + i as u64 + 1;
        }
        end = start;
    };
    if keep < len {
        tracing::warn!(
            "archives: dropping a torn last line ({} bytes, never acknowledged)",
            len - keep
        );
        file.set_len(keep)?;
        file.sync_all()?;
    }
    Ok(keep)
}

/// Raises `hw` with the key of every line in `file[start..end]` (`end` just past a `'\n'`).
/// Lines without a key are skipped.
pub fn scan(
    file: &File,
    start: u64,
    end: u64,
    chunk: usize,
    hw: &mut HashMap<u32, u64>,
) -> io::Result<u64> {
    let mut lines = 0u64;
    let mut pos = start;
    // Bytes of a line begun in an earlier chunk.
    let mut carry: Vec<u8> = Vec::new();
    let mut buf = vec![0u8; chunk.max(1)];
    while pos < end {
        let n = (end - pos).min(buf.len() as u64) as usize;
        let data = &mut buf[..n];
        file.read_exact_at(data, pos)?;
        pos += n as u64;
        let mut rest: &[u8] = data;
        while let Some(i) = rest.iter().position(|&b| b == b'\n') {
            let key = if carry.is_empty() {
                parse_key(&rest[..i])
            } else {
                carry.extend_from_slice(&rest[..i]);
                let k = parse_key(&carry);
                carry.clear();
                k
            };
            if let Some((agent, seq)) = key {
                let e = hw.entry(agent).or_insert(0);
                *e = (*e).max(seq);
            }
            lines += 1;
            rest = &rest[i + 1..];
        }
        carry.extend_from_slice(rest);
    }
    Ok(lines)
}

/// The state recovered at open.
#[derive(Debug)]
pub struct Recovered {
    pub file: File,
    pub id: FileId,
    /// Length of the file: every byte is a whole line, durable.
    pub offset: u64,
    pub hw: HashMap<u32, u64>,
}

/// Trims a torn tail, loads the checkpoint, and scans what it does not cover. The hw of a
/// checkpoint is kept even when its file is gone (rotated away): those events were stored.
/// Ends with an fsync, so every event counted is durable before anyone is told about it.
pub fn recover(archive: &Path, index: &Path) -> io::Result<Recovered> {
    let file = open_archive(archive)?;
    let len = trim_torn_tail(&file)?;
    let id = FileId::of(&file.metadata()?);
    let cp = Checkpoint::load(index)?;
    let mut hw: HashMap<u32, u64> = HashMap::new();
    let mut start = 0;
    if let Some(cp) = cp {
        if cp.file == id && cp.offset <= len {
            start = cp.offset;
        }
        hw.extend(cp.hw);
    }
    let lines = scan(&file, start, len, SCAN_CHUNK, &mut hw)?;
    file.sync_all()?;
    tracing::debug!(
        "archives: recovered {} agents, scanned {lines} lines from offset {start} of {len}",
        hw.len()
    );
    Ok(Recovered {
        file,
        id,
        offset: len,
        hw,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key_line(agent: u32, seq: u64, pad: usize) -> String {
        format!(
            "{{\"timestamp\":\"t\",\"agent\":{{\"id\":\"{agent:03}\",\"name\":\"n\"}},\
             \"manager\":{{\"name\":\"m\"}},\"cluster\":{{\"name\":\"c\",\"node\":\"m\"}},\
             \"seq\":{seq},\"location\":\"l\",\"full_log\":\"{}\"}}\n",
            "x".repeat(pad)
        )
    }

    #[test]
    fn scan_across_chunk_boundaries() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.json");
        let mut text = String::new();
        for i in 1..=40u64 {
            text += &key_line((i % 3) as u32, i, (i as usize * 7) % 50);
        }
        text += "garbage line\n\n";
        fs::write(&path, &text).unwrap();
        let f = File::open(&path).unwrap();
        let len = text.len() as u64;
        for chunk in [1, 7, 64, 1000, 1 << 20] {
            let mut hw = HashMap::new();
            assert_eq!(scan(&f, 0, len, chunk, &mut hw).unwrap(), 42);
            assert_eq!(
                hw,
                HashMap::from([(0, 39), (1, 40), (2, 38)]),
                "chunk {chunk}"
            );
        }
        // From an offset: only later lines count; existing values are never lowered.
        let first = key_line(1, 1, 7).len() as u64;
        let mut hw = HashMap::from([(1, 1000)]);
        scan(&f, first, len, 16, &mut hw).unwrap();
        assert_eq!(hw, HashMap::from([(0, 39), (1, 1000), (2, 38)]));
    }

    #[test]
    fn torn_tail_trimmed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.json");
        let whole = key_line(1, 1, 0) + &key_line(1, 2, 0);
        for (content, keep) in [
            (String::new(), 0),
            (whole.clone(), whole.len()),
            (whole.clone() + "{\"timestamp\"", whole.len()),
            ("no newline at all".to_string(), 0),
            (whole.clone() + &"y".repeat(200_000), whole.len()),
        ] {
            fs::write(&path, &content).unwrap();
            let f = open_archive(&path).unwrap();
            assert_eq!(trim_torn_tail(&f).unwrap(), keep as u64);
            assert_eq!(fs::read(&path).unwrap(), content.as_bytes()[..keep]);
        }
    }

    #[test]
    fn checkpoint_round_trip_and_bad_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("index.json");
        assert_eq!(Checkpoint::load(&path).unwrap(), None);
        let cp = Checkpoint {
            file: FileId { dev: 1, ino: 2 },
            offset: 3,
            hw: BTreeMap::from([(1, 10), (4096, u64::MAX)]),
        };
        cp.save(&path).unwrap();
        assert_eq!(Checkpoint::load(&path).unwrap(), Some(cp));
        let names: Vec<_> = fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 1, "no temp file left");
        fs::write(&path, b"{\"file\":").unwrap();
        assert_eq!(Checkpoint::load(&path).unwrap(), None);
    }
}
