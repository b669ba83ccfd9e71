//! Symlink-proof directory walking under `etc/`: every component is opened with
//! `openat(O_DIRECTORY | O_NOFOLLOW)` relative to its parent's fd, so neither a symlink nor a
//! directory swapped for one mid-way can lead outside `etc/`. The chain of open directories is
//! kept, so consecutive files of one folder (sorted order) cost a single `openat`.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;

use nix::errno::Errno;
use nix::fcntl::{openat, OFlag};
use nix::sys::stat::{mkdirat, Mode};
use nix::unistd::{unlinkat, UnlinkatFlags};

/// Mode of the folders we create (Wazuh's etc/shared folders are 0750 too).
pub(crate) const DIR_MODE: u32 = 0o750;

/// Why a directory chain could not be opened.
#[derive(Debug)]
pub(crate) enum WalkError {
    /// A component does not exist (and was not to be created).
    Missing,
    /// A component is a symlink or not a directory.
    Unsafe,
    Io(io::Error),
}

impl From<Errno> for WalkError {
    fn from(e: Errno) -> Self {
        match e {
            Errno::ENOENT => WalkError::Missing,
            Errno::ELOOP | Errno::ENOTDIR => WalkError::Unsafe,
            e => WalkError::Io(e.into()),
        }
    }
}

pub(crate) struct DirChain {
    root: OwnedFd,
    /// `stack[i]` is the open fd of the folder named `stack[i].0`, child of `stack[i-1]`.
    stack: Vec<(String, OwnedFd)>,
}

const DIR_FLAGS: OFlag = OFlag::O_RDONLY
    .union(OFlag::O_DIRECTORY)
    .union(OFlag::O_NOFOLLOW)
    .union(OFlag::O_CLOEXEC);

impl DirChain {
    /// `etc` itself is trusted (it may be a symlink); nothing below it is.
    pub(crate) fn open(etc: &Path) -> io::Result<DirChain> {
        let root = openat(
            nix::fcntl::AT_FDCWD,
            etc,
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )?;
        Ok(DirChain {
            root,
            stack: Vec::new(),
        })
    }

    /// Makes the chain match `dirs` (top synced folder first), creating missing folders when
    /// `create`. Returns the fd of the deepest one.
    pub(crate) fn enter(
        &mut self,
        dirs: &[&str],
        create: bool,
    ) -> Result<BorrowedFd<'_>, WalkError> {
        let common = self
            .stack
            .iter()
            .zip(dirs)
            .take_while(|((have, _), want)| have == *want)
            .count();
        self.stack.truncate(common);
        for name in &dirs[common..] {
            let parent = self
                .stack
                .last()
                .map_or(self.root.as_fd(), |(_, fd)| fd.as_fd());
            let fd = match openat(parent, *name, DIR_FLAGS, Mode::empty()) {
                Ok(fd) => fd,
                Err(Errno::ENOENT) if create => {
                    match mkdirat(parent, *name, Mode::from_bits_truncate(DIR_MODE)) {
                        Ok(()) | Err(Errno::EEXIST) => {}
                        Err(e) => return Err(e.into()),
                    }
                    openat(parent, *name, DIR_FLAGS, Mode::empty())?
                }
                Err(e) => return Err(e.into()),
            };
            self.stack.push(((*name).to_string(), fd));
        }
        Ok(self.deepest())
    }

    fn deepest(&self) -> BorrowedFd<'_> {
        self.stack
            .last()
            .map_or(self.root.as_fd(), |(_, fd)| fd.as_fd())
    }

    /// Removes the now-empty folders at the end of the chain, deepest first, keeping the first
    /// `keep` levels (1 = the top synced folder stays). Stops at the first non-empty one.
    pub(crate) fn prune_empty(&mut self, keep: usize) -> io::Result<()> {
        while self.stack.len() > keep.max(1) {
            let Some((name, _)) = self.stack.pop() else {
                break;
            };
            match unlinkat(self.deepest(), name.as_str(), UnlinkatFlags::RemoveDir) {
                Ok(()) | Err(Errno::ENOENT) => {}
                Err(Errno::ENOTEMPTY | Errno::EEXIST | Errno::EBUSY) => break,
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }
}

/// `"shared/default/agent.conf"` -> (["shared", "default"], "agent.conf"). Only for validated
/// paths (at least two components).
pub(crate) fn split_rel(rel: &str) -> (Vec<&str>, &str) {
    let mut parts: Vec<&str> = rel.split('/').collect();
    let name = parts.pop().unwrap_or_default();
    (parts, name)
}
