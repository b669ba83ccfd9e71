//! Worker side: writes received files atomically and removes extras, never through a symlink.
//!
//! No fsync anywhere: the master holds the truth, so a file lost or torn by a crash is simply
//! reported as changed/missing by the next integrity round and fetched again. The
//! write-to-temp-then-rename still guarantees readers (analysisd reloads) never see a
//! half-written file.

use std::fs::File;
use std::io::Write;
use std::os::fd::{AsFd, BorrowedFd};
use std::path::Path;

use nix::errno::Errno;
use nix::fcntl::{openat, renameat, OFlag};
use nix::sys::stat::{fchmod, futimens, Mode};
use nix::sys::time::TimeSpec;
use nix::unistd::{unlinkat, UnlinkatFlags};

use super::bundle::FileData;
use super::dirs::{split_rel, DirChain, WalkError};
use super::meta::{validate_rel, FileMeta, Metadata, PathError, MODE_MASK, TEMP_PREFIX};
use super::scan::Scanner;

#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error("bad path {path:?}: {err}")]
    Path { path: String, err: PathError },
    #[error("{0}: a component of the path is a symlink or not a directory")]
    Unsafe(String),
    #[error("{0}: is a directory")]
    IsDir(String),
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

impl ApplyError {
    fn io(path: &str, source: impl Into<std::io::Error>) -> ApplyError {
        ApplyError::Io {
            path: path.to_string(),
            source: source.into(),
        }
    }

    fn walk(path: &str, e: WalkError) -> ApplyError {
        match e {
            WalkError::Unsafe => ApplyError::Unsafe(path.to_string()),
            WalkError::Missing => ApplyError::io(path, Errno::ENOENT),
            WalkError::Io(e) => ApplyError::io(path, e),
        }
    }
}

fn checked(rel: &str) -> Result<(), ApplyError> {
    validate_rel(rel).map_err(|err| ApplyError::Path {
        path: rel.to_string(),
        err,
    })
}

/// Writes one file atomically under `etc` and returns its metadata (for [`Scanner::note`]).
pub fn write_file(etc: &Path, f: &FileData) -> Result<FileMeta, ApplyError> {
    checked(&f.rel)?;
    let mut chain = DirChain::open(etc).map_err(|e| ApplyError::io(&f.rel, e))?;
    write_in(&mut chain, f)
}

fn write_in(chain: &mut DirChain, f: &FileData) -> Result<FileMeta, ApplyError> {
    checked(&f.rel)?;
    let (dirs, name) = split_rel(&f.rel);
    let dir = chain
        .enter(&dirs, true)
        .map_err(|e| ApplyError::walk(&f.rel, e))?;
    let mode = f.mode & MODE_MASK;
    let tmp = format!("{TEMP_PREFIX}{:016x}", rand::random::<u64>());
    let fd = openat(
        dir,
        tmp.as_str(),
        OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::from_bits_truncate(0o600),
    )
    .map_err(|e| ApplyError::io(&f.rel, e))?;
    let mut file = File::from(fd);
    let written = file
        .write_all(&f.data)
        .and_then(|()| fchmod(file.as_fd(), Mode::from_bits_truncate(mode)).map_err(Into::into))
        .and_then(|()| {
            let mtime = TimeSpec::new(f.mtime_s, i64::from(f.mtime_ns) as _);
            futimens(file.as_fd(), &TimeSpec::UTIME_OMIT, &mtime).map_err(Into::into)
        });
    drop(file);
    let renamed = written.and_then(|()| renameat(dir, tmp.as_str(), dir, name).map_err(Into::into));
    if let Err(e) = renamed {
        let _ = unlinkat(dir, tmp.as_str(), UnlinkatFlags::NoRemoveDir);
        return Err(match e.raw_os_error() {
            Some(libc::EISDIR) | Some(libc::ENOTEMPTY) | Some(libc::EEXIST) => {
                ApplyError::IsDir(f.rel.clone())
            }
            _ => ApplyError::io(&f.rel, e),
        });
    }
    Ok(FileMeta {
        size: f.data.len() as u64,
        mtime_s: f.mtime_s,
        mtime_ns: f.mtime_ns,
        mode,
        hash: blake3::hash(&f.data).to_hex().to_string(),
    })
}

/// Removes one extra file (a symlink is removed itself, never followed), then the folders that
/// became empty, up to but not including the top synced folder. Already gone is fine.
pub fn remove_extra(etc: &Path, rel: &str) -> Result<(), ApplyError> {
    checked(rel)?;
    let mut chain = DirChain::open(etc).map_err(|e| ApplyError::io(rel, e))?;
    remove_in(&mut chain, rel)
}

fn remove_in(chain: &mut DirChain, rel: &str) -> Result<(), ApplyError> {
    checked(rel)?;
    let (dirs, name) = split_rel(rel);
    let dir: BorrowedFd<'_> = match chain.enter(&dirs, false) {
        Ok(fd) => fd,
        Err(WalkError::Missing) => return Ok(()),
        Err(e) => return Err(ApplyError::walk(rel, e)),
    };
    match unlinkat(dir, name, UnlinkatFlags::NoRemoveDir) {
        Ok(()) | Err(Errno::ENOENT) => {}
        Err(Errno::EISDIR | Errno::EPERM) if is_dir_at(dir, name) => {
            return Err(ApplyError::IsDir(rel.to_string()))
        }
        Err(e) => return Err(ApplyError::io(rel, e)),
    }
    chain.prune_empty(1).map_err(|e| ApplyError::io(rel, e))
}

fn is_dir_at(dir: BorrowedFd<'_>, name: &str) -> bool {
    nix::sys::stat::fstatat(dir, name, nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW)
        .is_ok_and(|st| st.st_mode & libc::S_IFMT == libc::S_IFDIR)
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApplyReport {
    pub written: usize,
    pub removed: usize,
    /// Written, but the content's hash differs from the expected metadata (or the path was not
    /// expected at all): the master changed it meanwhile, the next cycle settles it.
    pub mismatched: Vec<String>,
    /// `"<rel>: <error>"`.
    pub errors: Vec<String>,
}

/// Writes a decoded piece. Every written file is noted in `scanner` (no rehash next scan).
/// Content that does not match `expected` is still written (it is the master's newer truth)
/// and listed in `report.mismatched`.
pub fn apply_piece(
    etc: &Path,
    files: Vec<FileData>,
    expected: &Metadata,
    scanner: &mut Scanner,
    report: &mut ApplyReport,
) {
    let mut chain = match DirChain::open(etc) {
        Ok(c) => c,
        Err(e) => {
            report
                .errors
                .extend(files.iter().map(|f| format!("{}: {e}", f.rel)));
            return;
        }
    };
    for f in files {
        match write_in(&mut chain, &f) {
            Ok(meta) => {
                report.written += 1;
                let ok = expected
                    .get(&f.rel)
                    .is_some_and(|want| want.hash == meta.hash && want.mode == meta.mode);
                if !ok {
                    report.mismatched.push(f.rel.clone());
                }
                scanner.note(&f.rel, meta);
            }
            Err(e) => report.errors.push(e.to_string()),
        }
    }
}

/// Removes the extras (call it before writing, so a folder replaced by a file, or the reverse,
/// is cleared first) and forgets them in `scanner`.
pub fn remove_extras(etc: &Path, rels: &[String], scanner: &mut Scanner, report: &mut ApplyReport) {
    let mut chain = match DirChain::open(etc) {
        Ok(c) => c,
        Err(e) => {
            report
                .errors
                .extend(rels.iter().map(|r| format!("{r}: {e}")));
            return;
        }
    };
    for rel in rels {
        match remove_in(&mut chain, rel) {
            Ok(()) => {
                report.removed += 1;
                scanner.forget(rel);
            }
            Err(e) => report.errors.push(e.to_string()),
        }
    }
}
