//! Pure integrity metadata: which paths are synced, per-file metadata, the master/worker diff
//! and the compact wire encoding of a whole metadata map.

use std::collections::BTreeMap;
use std::io::Read;

use serde::{Deserialize, Serialize};

/// What we know about one synced file. `mode` holds the permission bits only (`& 0o777`):
/// set-id and sticky bits are never synced.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct FileMeta {
    pub size: u64,
    pub mtime_s: i64,
    pub mtime_ns: u32,
    pub mode: u32,
    /// blake3 of the content, lowercase hex.
    pub hash: String,
}

/// Key: path relative to `etc/`, '/'-separated (`rules/local_rules.xml`).
pub type Metadata = BTreeMap<String, FileMeta>;

/// Top-level folders of `etc/` that are synced, recursively.
pub const SYNCED_DIRS: [&str; 4] = ["rules", "decoders", "lists", "shared"];

/// Prefix of our own temporary files (write-then-rename); never synced.
pub const TEMP_PREFIX: &str = ".rampart-sync-";

/// Bits of `mode` that are synced.
pub const MODE_MASK: u32 = 0o777;

/// Longest accepted relative path / single name (Linux PATH_MAX / NAME_MAX).
pub const MAX_REL_LEN: usize = 4096;
pub const MAX_NAME_LEN: usize = 255;

/// Upper bound for a decoded metadata map (uncompressed JSON bytes).
pub const MAX_META_BYTES: usize = 256 << 20;

/// Names Wazuh never syncs (node-specific config, editor/lock/temp leftovers) plus our temps.
pub fn is_synced_name(file_name: &str) -> bool {
    !(file_name.is_empty()
        || file_name == "ossec.conf"
        || file_name == "ar.conf"
        || file_name.ends_with('~')
        || file_name.ends_with(".tmp")
        || file_name.ends_with(".lock")
        || file_name.ends_with(".swp")
        || file_name.starts_with(TEMP_PREFIX))
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PathError {
    #[error("empty path")]
    Empty,
    #[error("path too long")]
    TooLong,
    #[error("absolute path")]
    Absolute,
    #[error("path contains NUL or backslash")]
    BadChar,
    #[error("path needs a synced folder and a name")]
    TooShort,
    #[error("path is not under a synced folder")]
    NotSynced,
    #[error("empty, '.' or '..' component")]
    BadComponent,
    #[error("name {0:?} is excluded from sync")]
    Excluded(String),
}

/// Accepts only `<synced dir>/<name>[/<name>...]` with plain names: no way to leave `etc/`.
pub fn validate_rel(rel: &str) -> Result<(), PathError> {
    if rel.is_empty() {
        return Err(PathError::Empty);
    }
    if rel.len() > MAX_REL_LEN {
        return Err(PathError::TooLong);
    }
    if rel.starts_with('/') {
        return Err(PathError::Absolute);
    }
    if rel.contains(['\0', '\\']) {
        return Err(PathError::BadChar);
    }
    let mut parts = rel.split('/');
    let top = parts.next().unwrap_or_default();
    if top.is_empty() || top == "." || top == ".." {
        return Err(PathError::BadComponent);
    }
    let mut count = 1;
    for name in parts {
        count += 1;
        if name.is_empty() || name == "." || name == ".." {
            return Err(PathError::BadComponent);
        }
        if name.len() > MAX_NAME_LEN {
            return Err(PathError::TooLong);
        }
        if !is_synced_name(name) {
            return Err(PathError::Excluded(name.to_string()));
        }
    }
    if !SYNCED_DIRS.contains(&top) {
        return Err(PathError::NotSynced);
    }
    if count < 2 {
        return Err(PathError::TooShort);
    }
    Ok(())
}

/// Master's view of a worker: what to create, update, delete. Each list is sorted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Diff {
    /// On the master only.
    pub missing: Vec<String>,
    /// On both, with a different hash or mode.
    pub changed: Vec<String>,
    /// On the worker only.
    pub extra: Vec<String>,
}

impl Diff {
    pub fn is_empty(&self) -> bool {
        self.missing.is_empty() && self.changed.is_empty() && self.extra.is_empty()
    }
}

/// Merge-walk of two sorted maps: O(n), output sorted because BTreeMap iterates in order.
pub fn diff(master: &Metadata, worker: &Metadata) -> Diff {
    let mut d = Diff::default();
    let mut m = master.iter().peekable();
    let mut w = worker.iter().peekable();
    loop {
        match (m.peek(), w.peek()) {
            (None, None) => break,
            (Some((k, _)), None) => {
                d.missing.push((*k).clone());
                m.next();
            }
            (None, Some((k, _))) => {
                d.extra.push((*k).clone());
                w.next();
            }
            (Some((mk, mv)), Some((wk, wv))) => match mk.cmp(wk) {
                std::cmp::Ordering::Less => {
                    d.missing.push((*mk).clone());
                    m.next();
                }
                std::cmp::Ordering::Greater => {
                    d.extra.push((*wk).clone());
                    w.next();
                }
                std::cmp::Ordering::Equal => {
                    if mv.hash != wv.hash || mv.mode != wv.mode {
                        d.changed.push((*mk).clone());
                    }
                    m.next();
                    w.next();
                }
            },
        }
    }
    d
}

#[derive(Debug, thiserror::Error)]
pub enum MetaError {
    #[error("metadata is not valid zstd: {0}")]
    Compression(String),
    #[error("metadata exceeds {MAX_META_BYTES} bytes once decompressed")]
    TooLarge,
    #[error("metadata is not valid JSON: {0}")]
    Json(String),
    #[error("bad path {path:?} in metadata: {err}")]
    Path { path: String, err: PathError },
    #[error("bad entry {0:?} in metadata")]
    Entry(String),
}

/// zstd (level 3: metadata is small and repetitive) over JSON.
pub fn encode_meta(m: &Metadata) -> Vec<u8> {
    // Serializing a BTreeMap<String, plain struct> cannot fail.
    let json = serde_json::to_vec(m).unwrap_or_default();
    zstd::bulk::compress(&json, 3).unwrap_or_default()
}

/// Bounded decompression, then every key and entry is checked.
pub fn decode_meta(b: &[u8]) -> Result<Metadata, MetaError> {
    let json = bounded_unzstd(b, MAX_META_BYTES).map_err(|e| match e {
        Unzstd::TooLarge => MetaError::TooLarge,
        Unzstd::Io(e) => MetaError::Compression(e.to_string()),
    })?;
    let m: Metadata = serde_json::from_slice(&json).map_err(|e| MetaError::Json(e.to_string()))?;
    for (k, v) in &m {
        validate_rel(k).map_err(|err| MetaError::Path {
            path: k.clone(),
            err,
        })?;
        if v.mode & !MODE_MASK != 0 || v.mtime_ns >= 1_000_000_000 || !is_hex_hash(&v.hash) {
            return Err(MetaError::Entry(k.clone()));
        }
    }
    Ok(m)
}

/// Lenient on purpose (any short alphanumeric string): the hash is only ever compared.
fn is_hex_hash(h: &str) -> bool {
    h.len() <= 128 && h.bytes().all(|c| c.is_ascii_alphanumeric())
}

pub(crate) enum Unzstd {
    TooLarge,
    Io(std::io::Error),
}

/// Largest zstd window we accept (16 MiB): caps decoder memory whatever the frame header says.
pub(crate) const WINDOW_LOG_MAX: u32 = 24;

/// Decompresses at most `max_out` bytes; more is an error, never an allocation.
pub(crate) fn bounded_unzstd(b: &[u8], max_out: usize) -> Result<Vec<u8>, Unzstd> {
    let mut dec = zstd::stream::read::Decoder::with_buffer(b).map_err(Unzstd::Io)?;
    dec.window_log_max(WINDOW_LOG_MAX).map_err(Unzstd::Io)?;
    let mut out = Vec::new();
    dec.take(max_out as u64 + 1)
        .read_to_end(&mut out)
        .map_err(Unzstd::Io)?;
    if out.len() > max_out {
        return Err(Unzstd::TooLarge);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fm(hash: char, mode: u32) -> FileMeta {
        FileMeta {
            size: 1,
            mtime_s: 1,
            mtime_ns: 0,
            mode,
            hash: hash.to_string().repeat(64),
        }
    }

    #[test]
    fn names() {
        for bad in [
            "ossec.conf",
            "ar.conf",
            "x~",
            "a.tmp",
            "a.lock",
            ".a.swp",
            ".rampart-sync-1",
            "",
        ] {
            assert!(!is_synced_name(bad), "{bad}");
        }
        for good in ["local_rules.xml", "agent.conf", ".hidden", "cdb.lst"] {
            assert!(is_synced_name(good), "{good}");
        }
    }

    #[test]
    fn paths() {
        for ok in [
            "rules/local_rules.xml",
            "shared/default/agent.conf",
            "lists/amazon/aws-eventnames",
        ] {
            assert_eq!(validate_rel(ok), Ok(()), "{ok}");
        }
        let cases: [(&str, PathError); 12] = [
            ("", PathError::Empty),
            ("../x", PathError::BadComponent),
            ("/etc/passwd", PathError::Absolute),
            ("rules/../../x", PathError::BadComponent),
            ("rules/./a", PathError::BadComponent),
            ("rules//a", PathError::BadComponent),
            ("rules/a/", PathError::BadComponent),
            ("rules", PathError::TooShort),
            ("etc/rules/a", PathError::NotSynced),
            ("rules/a\\b", PathError::BadChar),
            ("rules/a\0", PathError::BadChar),
            (
                "shared/ossec.conf",
                PathError::Excluded("ossec.conf".into()),
            ),
        ];
        for (p, e) in cases {
            assert_eq!(validate_rel(p), Err(e), "{p:?}");
        }
        assert_eq!(
            validate_rel(&format!("rules/{}", "a".repeat(256))),
            Err(PathError::TooLong)
        );
    }

    #[test]
    fn diff_classifies_sorted() {
        let mut m = Metadata::new();
        let mut w = Metadata::new();
        m.insert("rules/b".into(), fm('a', 0o640));
        m.insert("rules/a".into(), fm('a', 0o640));
        m.insert("rules/same".into(), fm('a', 0o640));
        m.insert("rules/hash".into(), fm('a', 0o640));
        m.insert("rules/mode".into(), fm('a', 0o640));
        w.insert("rules/same".into(), fm('a', 0o640));
        w.insert("rules/hash".into(), fm('b', 0o640));
        w.insert("rules/mode".into(), fm('a', 0o600));
        w.insert("shared/z".into(), fm('a', 0o640));
        w.insert("decoders/y".into(), fm('a', 0o640));
        let d = diff(&m, &w);
        assert_eq!(d.missing, ["rules/a", "rules/b"]);
        assert_eq!(d.changed, ["rules/hash", "rules/mode"]);
        assert_eq!(d.extra, ["decoders/y", "shared/z"]);
        assert!(diff(&m, &m).is_empty());
    }

    #[test]
    fn meta_roundtrip_and_validation() {
        let mut m = Metadata::new();
        for i in 0..500 {
            m.insert(format!("shared/g{}/f{i}", i % 7), fm('c', 0o660));
        }
        let enc = encode_meta(&m);
        assert!(enc.len() < 10_000, "compact: {}", enc.len());
        assert_eq!(decode_meta(&enc).unwrap(), m);

        let mut bad = Metadata::new();
        bad.insert("rules/../x".into(), fm('c', 0o660));
        assert!(matches!(
            decode_meta(&encode_meta(&bad)),
            Err(MetaError::Path { .. })
        ));
        let mut bad = Metadata::new();
        bad.insert("rules/x".into(), fm('c', 0o4755));
        assert!(matches!(
            decode_meta(&encode_meta(&bad)),
            Err(MetaError::Entry(_))
        ));
        assert!(decode_meta(b"garbage").is_err());
    }

    #[test]
    fn meta_bomb_is_bounded() {
        let zeros = vec![b' '; 2 << 20];
        let z = zstd::bulk::compress(&zeros, 1).unwrap();
        assert!(matches!(bounded_unzstd(&z, 1 << 20), Err(Unzstd::TooLarge)));
        assert_eq!(
            bounded_unzstd(&z, 2 << 20).ok().map(|v| v.len()),
            Some(2 << 20)
        );
    }
}
