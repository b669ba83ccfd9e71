//! Kernel pipes for zero-copy forwarding with `splice(2)`, pooled per thread.
//!
//! A direction takes a pipe only while it is moving data and gives it back, empty, as
//! soon as its source would block, so idle sessions hold no pipe. The number of pipes in
//! use is capped (HAProxy's `maxpipes` idea): past the cap, sessions fall back to a
//! buffered copy instead of running out of file descriptors.

use std::cell::RefCell;
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicUsize, Ordering};

use nix::fcntl::{fcntl, FcntlArg, OFlag};

/// Pipe capacity asked of the kernel (Linux's default `pipe-max-size`): bulk flows move
/// up to 1 MiB per splice pair. Pages are only held while data sits in the pipe, and a
/// pipe is only lent while its session moves data. Measured against 256 KiB: +9% on one
/// stream, +9% on eight (bench/run.sh figures, docs/PERFORMANCE.md).
pub const PIPE_SIZE: usize = 1024 * 1024;

/// Idle pipes kept per thread for reuse.
const POOL_PER_THREAD: usize = 64;

static IN_USE: AtomicUsize = AtomicUsize::new(0);
static MAX_PIPES: AtomicUsize = AtomicUsize::new(1024);

thread_local! {
    static POOL: RefCell<Vec<(OwnedFd, OwnedFd)>> = const { RefCell::new(Vec::new()) };
}

/// Caps the pipes in use (each costs two descriptors); 0 disables splicing.
pub fn set_max_pipes(n: usize) {
    MAX_PIPES.store(n, Ordering::Relaxed);
}

pub fn in_use() -> usize {
    IN_USE.load(Ordering::Relaxed)
}

/// A pipe lent to one direction of one session. Returned to the pool on drop if empty.
pub struct Pipe {
    fds: Option<(OwnedFd, OwnedFd)>,
    /// Bytes spliced in and not yet out.
    pub pending: usize,
    /// Buffer slots of this pipe (its capacity in pages). Every slot holds at least one
    /// byte, so a splice that moved fewer bytes than this did not stop for lack of slots:
    /// the socket was drained.
    pub slots: usize,
}

impl Pipe {
    /// A pipe from this thread's pool or a new one, unless the cap is reached.
    pub fn get() -> Option<Pipe> {
        let max = MAX_PIPES.load(Ordering::Relaxed);
        if IN_USE.fetch_add(1, Ordering::Relaxed) >= max {
            IN_USE.fetch_sub(1, Ordering::Relaxed);
            return None;
        }
        let fds = POOL
            .try_with(|p| p.borrow_mut().pop())
            .ok()
            .flatten()
            .or_else(new_pipe);
        if fds.is_none() {
            IN_USE.fetch_sub(1, Ordering::Relaxed);
        }
        fds.map(|(r, w)| {
            let slots =
                fcntl(&w, FcntlArg::F_GETPIPE_SZ).map_or(16, |b| (b as usize / 4096).max(1));
            Pipe {
                fds: Some((r, w)),
                pending: 0,
                slots,
            }
        })
    }

    pub fn read_end(&self) -> &OwnedFd {
        match &self.fds {
            Some((r, _)) => r,
            None => unreachable!("a lent pipe always holds its fds"),
        }
    }

    pub fn write_end(&self) -> &OwnedFd {
        match &self.fds {
            Some((_, w)) => w,
            None => unreachable!("a lent pipe always holds its fds"),
        }
    }
}

impl Drop for Pipe {
    fn drop(&mut self) {
        IN_USE.fetch_sub(1, Ordering::Relaxed);
        // A pipe still holding bytes belongs to a dead session: close it, never reuse it.
        if self.pending == 0 {
            if let Some(fds) = self.fds.take() {
                // At thread exit the pool may already be gone: then the pipe just closes.
                let _ = POOL.try_with(|p| {
                    let mut p = p.borrow_mut();
                    if p.len() < POOL_PER_THREAD {
                        p.push(fds);
                    }
                });
            }
        }
    }
}

fn new_pipe() -> Option<(OwnedFd, OwnedFd)> {
    let (r, w) = nix::unistd::pipe2(OFlag::O_NONBLOCK | OFlag::O_CLOEXEC).ok()?;
    // A larger pipe is an optimisation only; the default size works too.
    let _ = fcntl(&w, FcntlArg::F_SETPIPE_SZ(PIPE_SIZE as i32));
    Some((r, w))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cap_limits_pipes_and_returned_pipes_are_reused() {
        // One test touches the global cap, so these checks run in sequence.
        set_max_pipes(2);
        let a = Pipe::get().expect("first");
        let b = Pipe::get().expect("second");
        assert!(Pipe::get().is_none(), "cap of 2 reached");
        drop(a);
        let c = Pipe::get().expect("a returned pipe is available again");
        drop((b, c));
        assert_eq!(in_use(), 0);
        set_max_pipes(0);
        assert!(Pipe::get().is_none(), "0 disables splicing");
        set_max_pipes(1024);
    }
}
