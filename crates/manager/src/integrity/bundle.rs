//! One transfer piece: a handful of whole files, framed and zstd-compressed.
//!
//! Frame (little endian, then zstd over all of it):
//! `"RPB1"`, u32 count, then per file: u32 name length, name (UTF-8), u32 mode, i64 mtime_s,
//! u32 mtime_ns, u64 data length, data.

use std::fs::File;
use std::io::{self, Read};
use std::os::fd::AsFd;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use nix::errno::Errno;
use nix::fcntl::{openat, OFlag};
use nix::sys::stat::Mode;

use super::dirs::{split_rel, DirChain, WalkError};
use super::meta::{validate_rel, PathError, MODE_MASK};

/// One file's content plus what the worker must restore.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileData {
    pub rel: String,
    pub mode: u32,
    pub mtime_s: i64,
    pub mtime_ns: u32,
    pub data: Vec<u8>,
}

/// Default upper bound of uncompressed file bytes per piece.
pub const DEFAULT_PIECE: u64 = 8 << 20;

const MAGIC: &[u8; 4] = b"RPB1";
/// Fixed bytes per file besides name and data.
const FILE_HEADER: usize = 4 + 4 + 8 + 4 + 8;

/// Groups files, in the given order, into pieces of at most `max_piece` bytes; a file larger
/// than that travels alone.
pub fn plan_pieces(files: &[(String, u64)], max_piece: u64) -> Vec<Vec<String>> {
    let mut pieces = Vec::new();
    let mut cur: Vec<String> = Vec::new();
    let mut cur_size = 0u64;
    for (rel, size) in files {
        if !cur.is_empty() && cur_size.saturating_add(*size) > max_piece {
            pieces.push(std::mem::take(&mut cur));
            cur_size = 0;
        }
        cur.push(rel.clone());
        cur_size = cur_size.saturating_add(*size);
    }
    if !cur.is_empty() {
        pieces.push(cur);
    }
    pieces
}

/// Reads the files for one piece. Every path is validated and opened without following any
/// symlink below `etc`; a vanished file, a symlink or a special file is left out of the result
/// (the worker retries next cycle against fresh metadata).
pub fn read_files(etc: &Path, rels: &[String]) -> io::Result<Vec<FileData>> {
    let mut chain = DirChain::open(etc)?;
    let mut out = Vec::with_capacity(rels.len());
    for rel in rels {
        validate_rel(rel)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, format!("{rel:?}: {e}")))?;
        let (dirs, name) = split_rel(rel);
        let dir = match chain.enter(&dirs, false) {
            Ok(fd) => fd,
            Err(WalkError::Missing | WalkError::Unsafe) => continue,
            Err(WalkError::Io(e)) => return Err(e),
        };
        let flags = OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC;
        let fd = match openat(dir.as_fd(), name, flags, Mode::empty()) {
            Ok(fd) => fd,
            Err(Errno::ENOENT | Errno::ELOOP | Errno::ENOTDIR) => continue,
            Err(e) => return Err(e.into()),
        };
        let mut f = File::from(fd);
        let md = f.metadata()?;
        if !md.is_file() {
            continue;
        }
        let mut data =
            Vec::with_capacity(usize::try_from(md.size()).unwrap_or(0).saturating_add(1));
        f.read_to_end(&mut data)?;
        out.push(FileData {
            rel: rel.clone(),
            mode: md.mode() & MODE_MASK,
            mtime_s: md.mtime(),
            mtime_ns: u32::try_from(md.mtime_nsec()).unwrap_or(0),
            data,
        });
    }
    Ok(out)
}

/// zstd level used by default: ~0.4-0.5 GB/s per core and XML shrinks ~5-10x.
pub const DEFAULT_LEVEL: i32 = 1;

/// Frames and compresses `files`. `mode` is masked to permission bits.
pub fn encode_piece(files: &[FileData], level: i32) -> Vec<u8> {
    let raw_len: usize = 8 + files
        .iter()
        .map(|f| FILE_HEADER + f.rel.len() + f.data.len())
        .sum::<usize>();
    // One contiguous buffer and one-shot compression: the extra memcpy is far cheaper than
    // zstd's streaming path over scattered writes, and the frame records its content size,
    // which lets the decoder allocate exactly once.
    let mut raw = Vec::with_capacity(raw_len);
    raw.extend_from_slice(MAGIC);
    raw.extend_from_slice(&(files.len() as u32).to_le_bytes());
    for f in files {
        raw.extend_from_slice(&(f.rel.len() as u32).to_le_bytes());
        raw.extend_from_slice(f.rel.as_bytes());
        raw.extend_from_slice(&(f.mode & MODE_MASK).to_le_bytes());
        raw.extend_from_slice(&f.mtime_s.to_le_bytes());
        raw.extend_from_slice(&f.mtime_ns.to_le_bytes());
        raw.extend_from_slice(&(f.data.len() as u64).to_le_bytes());
        raw.extend_from_slice(&f.data);
    }
    // Compressing into a Vec only fails on allocation trouble; keep the signature infallible.
    zstd::bulk::compress(&raw, level).unwrap_or_default()
}

#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    #[error("piece is not valid zstd: {0}")]
    Compression(String),
    #[error("piece exceeds the {0} byte limit once decompressed")]
    TooLarge(usize),
    #[error("piece is truncated")]
    Truncated,
    #[error("not a piece (bad magic)")]
    BadMagic,
    #[error("bad file name in piece: {0}")]
    BadName(String),
    #[error("bad path {path:?} in piece: {err}")]
    Path { path: String, err: PathError },
    #[error("bad mode or mtime for {0:?}")]
    BadField(String),
    #[error("trailing bytes after the last file")]
    Trailing,
}

/// Decompresses and parses one piece (one zstd frame). The frame must declare its content size
/// (ours always does), which is checked against `max_out` before anything is allocated; a frame
/// lying about it fails to decompress. Every name is validated.
pub fn decode_piece(bytes: &[u8], max_out: usize) -> Result<Vec<FileData>, BundleError> {
    let declared = zstd::zstd_safe::get_frame_content_size(bytes)
        .map_err(|e| BundleError::Compression(e.to_string()))?
        .ok_or_else(|| BundleError::Compression("content size not declared".into()))?;
    let size = usize::try_from(declared)
        .ok()
        .filter(|n| *n <= max_out)
        .ok_or(BundleError::TooLarge(max_out))?;
    let raw =
        zstd::bulk::decompress(bytes, size).map_err(|e| BundleError::Compression(e.to_string()))?;
    parse(&raw)
}

fn parse(raw: &[u8]) -> Result<Vec<FileData>, BundleError> {
    let mut r = Cursor(raw);
    if r.take(4)? != MAGIC {
        return Err(BundleError::BadMagic);
    }
    let count = r.u32()? as usize;
    // Each file takes at least FILE_HEADER bytes: a lying count cannot over-allocate.
    let mut files = Vec::with_capacity(count.min(raw.len() / FILE_HEADER));
    for _ in 0..count {
        let name_len = r.u32()? as usize;
        if name_len > super::meta::MAX_REL_LEN {
            return Err(BundleError::BadName(format!("name of {name_len} bytes")));
        }
        let rel = std::str::from_utf8(r.take(name_len)?)
            .map_err(|_| BundleError::BadName("not UTF-8".into()))?
            .to_string();
        validate_rel(&rel).map_err(|err| BundleError::Path {
            path: rel.clone(),
            err,
        })?;
        let mode = r.u32()?;
        let mtime_s = i64::from_le_bytes(r.array()?);
        let mtime_ns = r.u32()?;
        if mode & !MODE_MASK != 0 || mtime_ns >= 1_000_000_000 {
            return Err(BundleError::BadField(rel));
        }
        let len =
            usize::try_from(u64::from_le_bytes(r.array()?)).map_err(|_| BundleError::Truncated)?;
        let data = r.take(len)?.to_vec();
        files.push(FileData {
            rel,
            mode,
            mtime_s,
            mtime_ns,
            data,
        });
    }
    if !r.0.is_empty() {
        return Err(BundleError::Trailing);
    }
    Ok(files)
}

struct Cursor<'a>(&'a [u8]);

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], BundleError> {
        if n > self.0.len() {
            return Err(BundleError::Truncated);
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], BundleError> {
        let mut b = [0u8; N];
        b.copy_from_slice(self.take(N)?);
        Ok(b)
    }

    fn u32(&mut self) -> Result<u32, BundleError> {
        Ok(u32::from_le_bytes(self.array()?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fd(rel: &str, data: &[u8]) -> FileData {
        FileData {
            rel: rel.into(),
            mode: 0o640,
            mtime_s: -5,
            mtime_ns: 999_999_999,
            data: data.to_vec(),
        }
    }

    #[test]
    fn plan_respects_bound_and_order() {
        let files: Vec<(String, u64)> = [5u64, 3, 2, 20, 1, 9, 0]
            .iter()
            .enumerate()
            .map(|(i, s)| (format!("rules/{i}"), *s))
            .collect();
        let p = plan_pieces(&files, 10);
        assert_eq!(
            p,
            vec![
                vec!["rules/0", "rules/1", "rules/2"],
                vec!["rules/3"],
                vec!["rules/4", "rules/5", "rules/6"],
            ]
        );
        assert!(plan_pieces(&[], 10).is_empty());
    }

    #[test]
    fn roundtrip_and_limits() {
        let files = vec![
            fd("rules/a.xml", b"<group/>"),
            fd("shared/default/agent.conf", &[]),
            fd("lists/x", &vec![7u8; 100_000]),
        ];
        let enc = encode_piece(&files, 1);
        assert!(enc.len() < 2_000);
        assert_eq!(decode_piece(&enc, 1 << 20).unwrap(), files);
        assert!(matches!(
            decode_piece(&enc, 50_000),
            Err(BundleError::TooLarge(_))
        ));
        assert!(matches!(
            decode_piece(&enc[..enc.len() / 2], 1 << 20),
            Err(BundleError::Truncated | BundleError::Compression(_))
        ));
        assert!(decode_piece(&encode_piece(&[], 1), 100).unwrap().is_empty());
        let bad = encode_piece(&[fd("rules/../../x", b"x")], 1);
        assert!(matches!(
            decode_piece(&bad, 1 << 20),
            Err(BundleError::Path { .. })
        ));
        let mut plain = zstd::bulk::compress(b"RPB0\0\0\0\0", 1).unwrap();
        assert!(matches!(
            decode_piece(&plain, 100),
            Err(BundleError::BadMagic)
        ));
        plain = zstd::bulk::compress(b"RPB1\0\0\0\0x", 1).unwrap();
        assert!(matches!(
            decode_piece(&plain, 100),
            Err(BundleError::Trailing)
        ));
    }
}
