//! Byte forwarding between a client and a server socket, both directions in one
//! hand-written future, with HAProxy's half-close and inactivity-timeout semantics.
//!
//! Data moves with splice(2) through a kernel pipe (zero copy) or, when no pipe can be
//! had, through a buffer. Either is held only while data flows: a direction whose source
//! would block gives it back, so an idle session holds neither. The future itself keeps
//! only plain state and one timer (a few hundred bytes): it polls socket readiness
//! directly instead of nesting read/write futures, because every idle session pays for
//! the size of its future.

use std::future::Future;
use std::io;
use std::net::Shutdown;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use std::os::fd::AsRawFd;

use nix::fcntl::{splice, SpliceFFlags};
use nix::sys::socket::MsgFlags;
use tokio::io::Interest;
use tokio::net::TcpStream;
use tokio::time::{Instant, Sleep};

use crate::pipes::{Pipe, PIPE_SIZE};

const BUF_SIZE: usize = 16 * 1024;

/// Transfers one direction may make in a row before letting the other run.
const BURST_BUDGET: u32 = 32;

/// Inactivity limits of one session, after `timeout tunnel` has been folded in.
#[derive(Debug, Clone, Copy, Default)]
pub struct IdleTimeouts {
    pub client: Option<Duration>,
    pub server: Option<Duration>,
    pub client_fin: Option<Duration>,
    pub server_fin: Option<Duration>,
}

/// How the data phase ended, as the two letters of HAProxy's termination state
/// (`--`, `CD`, `SD`, `cD`, `sD`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    pub client_to_server: u64,
    pub server_to_client: u64,
    pub termination: [u8; 2],
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Side {
    Client,
    Server,
}

/// What carries a direction's data between a read and a write.
enum Carrier {
    Idle,
    Pipe(Pipe),
    /// Buffer with unsent bytes at `start..end`.
    Buf(Box<[u8]>, usize, usize),
}

impl Carrier {
    fn pending(&self) -> usize {
        match self {
            Carrier::Idle => 0,
            Carrier::Pipe(p) => p.pending,
            Carrier::Buf(_, start, end) => end - start,
        }
    }
}

/// One direction: `from` → `to`.
struct Dir {
    carrier: Carrier,
    eof: bool,
    bytes: u64,
}

impl Dir {
    fn new() -> Dir {
        Dir {
            carrier: Carrier::Idle,
            eof: false,
            bytes: 0,
        }
    }

    /// Gives the pipe or buffer back once everything read has been written.
    fn release_if_empty(&mut self) {
        if self.carrier.pending() == 0 {
            self.carrier = Carrier::Idle;
        }
    }

    /// Reads what `from` has. A short read means the socket is drained, so readiness is
    /// cleared right away (the closure reports `WouldBlock` after stashing the count),
    /// saving the extra read that would only return EAGAIN. tokio clears readiness only
    /// if no new event arrived meanwhile, so no wake-up is lost.
    fn read_from(&mut self, from: &TcpStream) -> io::Result<usize> {
        if matches!(self.carrier, Carrier::Idle) {
            self.carrier = match Pipe::get() {
                Some(p) => Carrier::Pipe(p),
                None => Carrier::Buf(vec![0u8; BUF_SIZE].into_boxed_slice(), 0, 0),
            };
        }
        let mut got = 0;
        let r = match &mut self.carrier {
            Carrier::Pipe(p) => from.try_io(Interest::READABLE, || {
                got = splice(from, None, p.write_end(), None, PIPE_SIZE, splice_flags())?;
                // A splice also stops when the pipe runs out of slots; only fewer bytes
                // than slots proves the socket was drained.
                drained_if_short(got, p.slots)
            }),
            Carrier::Buf(buf, _, _) => from.try_io(Interest::READABLE, || {
                got = nix::sys::socket::recv(from.as_raw_fd(), buf, MsgFlags::empty())?;
                drained_if_short(got, buf.len())
            }),
            Carrier::Idle => Ok(0),
        };
        let n = match r {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock && got > 0 => got,
            Err(e) => return Err(e),
        };
        match &mut self.carrier {
            Carrier::Pipe(p) => p.pending = n,
            Carrier::Buf(_, start, end) => (*start, *end) = (0, n),
            Carrier::Idle => {}
        }
        Ok(n)
    }

    fn write_to(&mut self, to: &TcpStream) -> io::Result<usize> {
        let n = match &mut self.carrier {
            Carrier::Pipe(p) => {
                let n = to.try_io(Interest::WRITABLE, || {
                    splice(p.read_end(), None, to, None, p.pending, splice_flags())
                        .map_err(io::Error::from)
                })?;
                p.pending -= n;
                n
            }
            Carrier::Buf(buf, start, end) => {
                let n = to.try_write(&buf[*start..*end])?;
                *start += n;
                n
            }
            Carrier::Idle => 0,
        };
        self.bytes += n as u64;
        Ok(n)
    }
}

/// `Ok(n)` unless fewer than `limit` bytes came (but not EOF), which proves the socket
/// drained: then `WouldBlock`, so the caller's `try_io` clears readiness.
fn drained_if_short(n: usize, limit: usize) -> io::Result<usize> {
    if n > 0 && n < limit {
        Err(io::ErrorKind::WouldBlock.into())
    } else {
        Ok(n)
    }
}

fn splice_flags() -> SpliceFFlags {
    SpliceFFlags::SPLICE_F_MOVE | SpliceFFlags::SPLICE_F_NONBLOCK
}

pin_project_lite::pin_project! {
    /// Forwards both directions until both have ended, one fails, or a side idles out.
    pub struct Forward<'a> {
        client: &'a TcpStream,
        server: &'a TcpStream,
        up: Dir,
        down: Dir,
        limits: IdleTimeouts,
        last_activity: Instant,
        blocked_on: Option<Side>,
        #[pin]
        timer: Sleep,
    }
}

pub fn forward<'a>(client: &'a TcpStream, server: &'a TcpStream, t: IdleTimeouts) -> Forward<'a> {
    let now = Instant::now();
    Forward {
        client,
        server,
        up: Dir::new(),
        down: Dir::new(),
        limits: t,
        last_activity: now,
        blocked_on: None,
        timer: tokio::time::sleep_until(far_future(now)),
    }
}

/// A deadline standing for "never" that still fits tokio's timer.
fn far_future(now: Instant) -> Instant {
    now + Duration::from_secs(86400 * 365)
}

enum Step {
    /// Nothing more to do now; wakers are registered.
    Parked,
    /// The budget ran out with work left: come back soon.
    Yield,
    Failed(Side),
}

/// Moves data `from` → `to` until `from` would block, `to` is full, EOF or error.
fn poll_dir(
    d: &mut Dir,
    (from, to): (&TcpStream, &TcpStream),
    (from_side, to_side): (Side, Side),
    cx: &mut Context<'_>,
    moved: &mut bool,
    blocked_on: &mut Option<Side>,
) -> Step {
    if d.eof {
        return Step::Parked;
    }
    for _ in 0..BURST_BUDGET {
        if d.carrier.pending() > 0 {
            match to.poll_write_ready(cx) {
                Poll::Pending => return Step::Parked,
                Poll::Ready(Err(_)) => return Step::Failed(to_side),
                Poll::Ready(Ok(())) => {}
            }
            match d.write_to(to) {
                Ok(_) => {
                    *moved = true;
                    *blocked_on = None;
                }
                // The peer is not taking data; readiness was cleared, so the next
                // poll_write_ready registers the waker.
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => *blocked_on = Some(to_side),
                Err(_) => return Step::Failed(to_side),
            }
            continue;
        }
        match from.poll_read_ready(cx) {
            Poll::Pending => {
                d.release_if_empty();
                return Step::Parked;
            }
            Poll::Ready(Err(_)) => return Step::Failed(from_side),
            Poll::Ready(Ok(())) => {}
        }
        match d.read_from(from) {
            Ok(0) => {
                d.eof = true;
                d.release_if_empty();
                *moved = true;
                // The peer may already be gone; its own direction reports that.
                let _ = socket2::SockRef::from(to).shutdown(Shutdown::Write);
                return Step::Parked;
            }
            Ok(_) => *moved = true,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(_) => return Step::Failed(from_side),
        }
    }
    Step::Yield
}

impl Future for Forward<'_> {
    type Output = Outcome;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Outcome> {
        let mut this = self.project();
        let mut moved = false;
        let mut yielded = false;
        let sockets = (*this.client, *this.server);
        let up = poll_dir(
            this.up,
            sockets,
            (Side::Client, Side::Server),
            cx,
            &mut moved,
            this.blocked_on,
        );
        let down = poll_dir(
            this.down,
            (sockets.1, sockets.0),
            (Side::Server, Side::Client),
            cx,
            &mut moved,
            this.blocked_on,
        );
        for step in [up, down] {
            match step {
                // A failure in either direction ends the session at once, as HAProxy
                // aborts both sides; a clean EOF only ends its own direction.
                Step::Failed(side) => {
                    return Poll::Ready(outcome(this.up, this.down, abort_code(side)))
                }
                Step::Yield => yielded = true,
                Step::Parked => {}
            }
        }
        if this.up.eof && this.down.eof {
            return Poll::Ready(outcome(this.up, this.down, *b"--"));
        }
        if moved {
            *this.last_activity = Instant::now();
        }
        if yielded {
            cx.waker().wake_by_ref();
        }
        // Inactivity: the timer sleeps until the earliest possible expiry and, when it
        // fires early because data moved meanwhile, is pushed to the new deadline.
        loop {
            let Some((deadline, side)) =
                deadline(this.up, this.down, this.limits, *this.last_activity)
            else {
                // No limit: park the timer far away once, not on every poll.
                let soon = *this.last_activity + Duration::from_secs(86400 * 30);
                if this.timer.deadline() < soon {
                    this.timer.as_mut().reset(far_future(*this.last_activity));
                }
                return Poll::Pending;
            };
            if this.timer.deadline() > deadline {
                this.timer.as_mut().reset(deadline);
            }
            if this.timer.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            if Instant::now() >= deadline {
                let side = this.blocked_on.unwrap_or(side);
                let code = if side == Side::Client { *b"cD" } else { *b"sD" };
                return Poll::Ready(outcome(this.up, this.down, code));
            }
            this.timer.as_mut().reset(deadline);
        }
    }
}

/// When the session expires if nothing moves, and which side is to blame.
fn deadline(up: &Dir, down: &Dir, t: &IdleTimeouts, last: Instant) -> Option<(Instant, Side)> {
    // HAProxy: `client-fin` applies once the client side is half-closed by us, i.e. the
    // server finished and we shut our write side toward the client (FIN_WAIT there);
    // `server-fin` likewise once the client finished.
    let client = if down.eof {
        t.client_fin.or(t.client)
    } else {
        t.client
    };
    let server = if up.eof {
        t.server_fin.or(t.server)
    } else {
        t.server
    };
    let (limit, side) = match (client, server) {
        (None, None) => return None,
        (Some(c), None) => (c, Side::Client),
        (None, Some(s)) => (s, Side::Server),
        (Some(c), Some(s)) if c <= s => (c, Side::Client),
        (Some(_), Some(s)) => (s, Side::Server),
    };
    Some((last + limit, side))
}

fn outcome(up: &Dir, down: &Dir, termination: [u8; 2]) -> Outcome {
    Outcome {
        client_to_server: up.bytes,
        server_to_client: down.bytes,
        termination,
    }
}

fn abort_code(side: Side) -> [u8; 2] {
    if side == Side::Client {
        *b"CD"
    } else {
        *b"SD"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_idle_session_costs_little() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async {
            let l = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind");
            let a = TcpStream::connect(l.local_addr().expect("addr"))
                .await
                .expect("connect");
            let (b, _) = l.accept().await.expect("accept");
            let f = forward(&a, &b, IdleTimeouts::default());
            // The whole point of the hand-written future: keep idle sessions small.
            assert!(
                std::mem::size_of_val(&f) <= 400,
                "{}",
                std::mem::size_of_val(&f)
            );
        });
    }
}
