//! Byte forwarding between a client and a server socket, both directions in one task,
//! with HAProxy's half-close and inactivity-timeout semantics.
//!
//! Data moves with splice(2) through a kernel pipe (zero copy) or, when no pipe can be
//! had, through a buffer. Either is held only while data flows: a direction that would
//! block gives it back, so an idle session holds neither.

use std::io;
use std::net::Shutdown;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::time::Duration;

use nix::fcntl::{splice, SpliceFFlags};
use tokio::io::Interest;
use tokio::net::TcpStream;
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::pipes::{Pipe, PIPE_SIZE};

const BUF_SIZE: usize = 16 * 1024;

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
    Client = 1,
    Server = 2,
}

struct Shared {
    origin: Instant,
    last_ms: AtomicU64,
    client_fin: AtomicBool,
    server_fin: AtomicBool,
    /// Side a direction is blocked writing to, if any: that side is the slow one.
    blocked_on: AtomicU8,
    /// Wakes the watchdog when a half-close switches a side to its `-fin` timeout.
    fin_seen: Notify,
    /// Bytes moved per direction; only this session's task touches them.
    up_bytes: AtomicU64,
    down_bytes: AtomicU64,
}

impl Shared {
    fn touch(&self) {
        let ms = self.origin.elapsed().as_millis() as u64;
        self.last_ms.store(ms, Ordering::Relaxed);
    }
}

enum PumpEnd {
    Eof,
    Failed(Side),
}

pub async fn forward(client: &TcpStream, server: &TcpStream, t: IdleTimeouts) -> Outcome {
    let shared = Shared {
        origin: Instant::now(),
        last_ms: AtomicU64::new(0),
        client_fin: AtomicBool::new(false),
        server_fin: AtomicBool::new(false),
        blocked_on: AtomicU8::new(0),
        fin_seen: Notify::new(),
        up_bytes: AtomicU64::new(0),
        down_bytes: AtomicU64::new(0),
    };
    let mut up = std::pin::pin!(pump(client, server, Side::Client, &shared));
    let mut down = std::pin::pin!(pump(server, client, Side::Server, &shared));
    let mut wd = std::pin::pin!(watchdog(&shared, t));
    let (mut up_done, mut down_done) = (false, false);
    let termination = loop {
        // A failure in either direction ends the session at once, as HAProxy aborts
        // both sides; a clean EOF only ends its own direction (half-close).
        tokio::select! {
            end = &mut up, if !up_done => match end {
                PumpEnd::Eof => up_done = true,
                PumpEnd::Failed(side) => break abort_code(side),
            },
            end = &mut down, if !down_done => match end {
                PumpEnd::Eof => down_done = true,
                PumpEnd::Failed(side) => break abort_code(side),
            },
            side = &mut wd => break if side == Side::Client { *b"cD" } else { *b"sD" },
        }
        if up_done && down_done {
            break *b"--";
        }
    };
    Outcome {
        client_to_server: shared.up_bytes.load(Ordering::Relaxed),
        server_to_client: shared.down_bytes.load(Ordering::Relaxed),
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

/// Copies `from` → `to` until EOF (then half-closes `to`) or an error. Data moves in
/// bursts: each burst borrows a pipe (or a buffer) and gives it back when `from` would
/// block, so an idle direction holds neither.
async fn pump(from: &TcpStream, to: &TcpStream, from_side: Side, shared: &Shared) -> PumpEnd {
    let to_side = other(from_side);
    let counter = if from_side == Side::Client {
        &shared.up_bytes
    } else {
        &shared.down_bytes
    };
    let ends = (from_side, to_side);
    loop {
        if from.readable().await.is_err() {
            return PumpEnd::Failed(from_side);
        }
        let burst = match Pipe::get() {
            Some(pipe) => burst_splice(from, to, pipe, ends, counter, shared).await,
            None => burst_copy(from, to, ends, counter, shared).await,
        };
        match burst {
            Burst::Idle => {}
            Burst::Eof => {
                let fin = if from_side == Side::Client {
                    &shared.client_fin
                } else {
                    &shared.server_fin
                };
                fin.store(true, Ordering::Relaxed);
                shared.touch();
                shared.fin_seen.notify_one();
                // The peer may already be gone; its own direction reports that.
                let _ = socket2::SockRef::from(to).shutdown(Shutdown::Write);
                return PumpEnd::Eof;
            }
            Burst::Failed(side) => return PumpEnd::Failed(side),
        }
    }
}

fn other(side: Side) -> Side {
    if side == Side::Client {
        Side::Server
    } else {
        Side::Client
    }
}

enum Burst {
    /// The source would block; everything read has been written.
    Idle,
    Eof,
    Failed(Side),
}

/// Zero-copy: socket → pipe → socket with splice(2), never touching user memory.
async fn burst_splice(
    from: &TcpStream,
    to: &TcpStream,
    mut pipe: Pipe,
    (from_side, to_side): (Side, Side),
    counter: &AtomicU64,
    shared: &Shared,
) -> Burst {
    let flags = SpliceFFlags::SPLICE_F_MOVE | SpliceFFlags::SPLICE_F_NONBLOCK;
    loop {
        let read = from.try_io(Interest::READABLE, || {
            splice(from, None, pipe.write_end(), None, PIPE_SIZE, flags).map_err(io::Error::from)
        });
        match read {
            Ok(0) => return Burst::Eof,
            Ok(n) => {
                pipe.pending = n;
                shared.touch();
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Burst::Idle,
            Err(_) => return Burst::Failed(from_side),
        }
        while pipe.pending > 0 {
            let wrote = to.try_io(Interest::WRITABLE, || {
                splice(pipe.read_end(), None, to, None, pipe.pending, flags)
                    .map_err(io::Error::from)
            });
            match wrote {
                Ok(n) => {
                    pipe.pending -= n;
                    counter.fetch_add(n as u64, Ordering::Relaxed);
                    shared.touch();
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    shared.blocked_on.store(to_side as u8, Ordering::Relaxed);
                    let ready = to.writable().await;
                    shared.blocked_on.store(0, Ordering::Relaxed);
                    if ready.is_err() {
                        return Burst::Failed(to_side);
                    }
                }
                Err(_) => return Burst::Failed(to_side),
            }
        }
    }
}

/// Buffered copy, used when no pipe can be had (cap reached, descriptors short).
async fn burst_copy(
    from: &TcpStream,
    to: &TcpStream,
    (from_side, to_side): (Side, Side),
    counter: &AtomicU64,
    shared: &Shared,
) -> Burst {
    let mut buf = vec![0u8; BUF_SIZE];
    loop {
        match from.try_read(&mut buf) {
            Ok(0) => return Burst::Eof,
            Ok(n) => {
                shared.touch();
                if write_all(to, &buf[..n], to_side, shared).await.is_err() {
                    return Burst::Failed(to_side);
                }
                counter.fetch_add(n as u64, Ordering::Relaxed);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Burst::Idle,
            Err(_) => return Burst::Failed(from_side),
        }
    }
}

async fn write_all(
    to: &TcpStream,
    mut data: &[u8],
    to_side: Side,
    shared: &Shared,
) -> io::Result<()> {
    while !data.is_empty() {
        match to.try_write(data) {
            Ok(n) => {
                data = &data[n..];
                shared.touch();
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                shared.blocked_on.store(to_side as u8, Ordering::Relaxed);
                to.writable().await?;
                shared.blocked_on.store(0, Ordering::Relaxed);
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Resolves when a side has been inactive for longer than its timeout.
async fn watchdog(shared: &Shared, t: IdleTimeouts) -> Side {
    loop {
        let client = if shared.client_fin.load(Ordering::Relaxed) {
            t.client_fin.or(t.client)
        } else {
            t.client
        };
        let server = if shared.server_fin.load(Ordering::Relaxed) {
            t.server_fin.or(t.server)
        } else {
            t.server
        };
        let (limit, side) = match (client, server) {
            (None, None) => {
                // No inactivity limit, but a half-close may set one.
                shared.fin_seen.notified().await;
                continue;
            }
            (Some(c), None) => (c, Side::Client),
            (None, Some(s)) => (s, Side::Server),
            (Some(c), Some(s)) if c <= s => (c, Side::Client),
            (Some(_), Some(s)) => (s, Side::Server),
        };
        let last = Duration::from_millis(shared.last_ms.load(Ordering::Relaxed));
        let deadline = shared.origin + last + limit;
        if Instant::now() >= deadline {
            return match shared.blocked_on.load(Ordering::Relaxed) {
                1 => Side::Client,
                2 => Side::Server,
                _ => side,
            };
        }
        tokio::select! {
            _ = tokio::time::sleep_until(deadline) => {}
            _ = shared.fin_seen.notified() => {}
        }
    }
}
