//! Traffic logs (tcplog) and their syslog/stdout transports.
//!
//! `tcplog` and `syslog` are pure formatting; [`Logger`] is the I/O shell. Sending never
//! blocks and never fails the caller: a message that cannot go out right away is
//! dropped and counted, as HAProxy does with its `DroppedLogs` counter.

pub mod syslog;
pub mod tcplog;

use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::os::fd::RawFd;
use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::SystemTime;

use time::UtcOffset;

use crate::config::model::{LogAddr, LogLevel, LogTarget};
pub use syslog::{accepts, effective_level, frame, Origin};
pub use tcplog::{format_accept_date, format_connect, format_tcplog, SessionLog};

/// The machine's UTC offset, or UTC when it cannot be determined. `time` refuses to
/// read it once the process has several threads (the libc call is not thread-safe
/// against `setenv`), so call this before starting the runtime and pass the result to
/// [`Logger::with_offset`].
///
/// The first answer is kept for the life of the process, so calling this once before
/// the runtime starts makes every later [`Logger::new`] use the real offset.
pub fn local_offset() -> UtcOffset {
    static OFFSET: OnceLock<UtcOffset> = OnceLock::new();
    *OFFSET.get_or_init(|| UtcOffset::current_local_offset().unwrap_or(UtcOffset::UTC))
}

/// Sends log messages to a set of targets. Cheap to clone; all clones share the
/// sockets and the dropped-message counter.
#[derive(Clone, Default)]
pub struct Logger {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    sinks: Vec<Sink>,
    tag: String,
    pid: u32,
    hostname: String,
    offset: Option<UtcOffset>,
    dropped: AtomicU64,
}

struct Sink {
    target: LogTarget,
    kind: SinkKind,
}

enum SinkKind {
    /// Created on first use and kept; `send_to` takes `&self`, so no lock is needed.
    Udp {
        addr: SocketAddr,
        sock: OnceLock<UdpSocket>,
    },
    /// Connected lazily; dropped on error so the next message reconnects (syslogd restart).
    Unix {
        path: PathBuf,
        sock: Mutex<Option<UnixDatagram>>,
    },
    Fd(RawFd),
}

impl Logger {
    /// A logger for `targets` with `tag` in syslog headers. Reads the local UTC offset
    /// now, falling back to UTC if the process is already multi-threaded (see
    /// [`local_offset`]).
    pub fn new(targets: &[LogTarget], tag: &str) -> Logger {
        Logger::with_offset(targets, tag, local_offset())
    }

    /// As [`Logger::new`], with timestamps in `offset`.
    pub fn with_offset(targets: &[LogTarget], tag: &str, offset: UtcOffset) -> Logger {
        let sinks = targets
            .iter()
            .map(|t| Sink {
                target: t.clone(),
                kind: match &t.addr {
                    LogAddr::Udp(addr) => SinkKind::Udp {
                        addr: *addr,
                        sock: OnceLock::new(),
                    },
                    LogAddr::Unix(path) => SinkKind::Unix {
                        path: path.clone(),
                        sock: Mutex::new(None),
                    },
                    LogAddr::Stdout => SinkKind::Fd(libc::STDOUT_FILENO),
                    LogAddr::Stderr => SinkKind::Fd(libc::STDERR_FILENO),
                },
            })
            .collect();
        Logger {
            inner: Arc::new(Inner {
                sinks,
                tag: tag.to_string(),
                pid: std::process::id(),
                hostname: hostname(),
                offset: Some(offset),
                dropped: AtomicU64::new(0),
            }),
        }
    }

    /// No targets: callers can skip building messages.
    pub fn is_empty(&self) -> bool {
        self.inner.sinks.is_empty()
    }

    /// Whether any target would take a message of `level`.
    pub fn enabled(&self, level: LogLevel) -> bool {
        self.inner.sinks.iter().any(|s| accepts(&s.target, level))
    }

    /// The offset timestamps are written in; pass it to [`format_tcplog`].
    pub fn offset(&self) -> UtcOffset {
        self.inner.offset.unwrap_or(UtcOffset::UTC)
    }

    /// Messages that could not be sent (socket full, peer gone, write error).
    pub fn dropped(&self) -> u64 {
        self.inner.dropped.load(Ordering::Relaxed)
    }

    /// Sends `msg` to every target accepting `level`. Never blocks, never fails.
    pub fn send(&self, level: LogLevel, msg: &str) {
        let inner = &*self.inner;
        if inner.sinks.is_empty() {
            return;
        }
        let now = SystemTime::now();
        let origin = Origin {
            tag: &inner.tag,
            pid: inner.pid,
            hostname: &inner.hostname,
            offset: self.offset(),
        };
        for sink in &inner.sinks {
            if !accepts(&sink.target, level) {
                continue;
            }
            let buf = frame(&sink.target, &origin, level, now, msg);
            if sink.kind.write(&buf).is_err() {
                inner.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

impl std::fmt::Debug for Logger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Logger")
            .field(
                "targets",
                &self
                    .inner
                    .sinks
                    .iter()
                    .map(|s| &s.target.addr)
                    .collect::<Vec<_>>(),
            )
            .field("tag", &self.inner.tag)
            .field("dropped", &self.dropped())
            .finish()
    }
}

impl SinkKind {
    fn write(&self, buf: &[u8]) -> io::Result<()> {
        match self {
            SinkKind::Udp { addr, sock } => {
                let s = match sock.get() {
                    Some(s) => s,
                    None => {
                        // A racing thread may also bind; `set` keeps one, the other closes.
                        let _ = sock.set(udp_socket(addr)?);
                        sock.get().ok_or(io::ErrorKind::Other)?
                    }
                };
                s.send_to(buf, addr).map(drop)
            }
            SinkKind::Unix { path, sock } => {
                // A poisoned lock only means another sender panicked mid-send; the
                // Option inside is still coherent.
                let mut guard = sock.lock().unwrap_or_else(|e| e.into_inner());
                if guard.is_none() {
                    let s = UnixDatagram::unbound()?;
                    s.set_nonblocking(true)?;
                    s.connect(path)?;
                    *guard = Some(s);
                }
                let res = match guard.as_ref() {
                    Some(s) => s.send(buf).map(drop),
                    None => Err(io::ErrorKind::NotConnected.into()),
                };
                // A full queue is transient; anything else (ECONNREFUSED after a
                // syslogd restart, ENOTCONN) needs a fresh connection.
                if let Err(e) = &res {
                    if e.kind() != io::ErrorKind::WouldBlock {
                        *guard = None;
                    }
                }
                res
            }
            SinkKind::Fd(fd) => write_fd(*fd, buf),
        }
    }
}

fn udp_socket(dest: &SocketAddr) -> io::Result<UdpSocket> {
    let local: SocketAddr = match dest {
        SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let s = UdpSocket::bind(local)?;
    s.set_nonblocking(true)?;
    Ok(s)
}

/// One line to stdout/stderr without blocking and without touching the descriptor's
/// flags (O_NONBLOCK would be shared with whoever else holds the pipe, and would break
/// `println!`). poll() first: a pipe reporting POLLOUT has a free page, so a line of up
/// to PIPE_BUF bytes is written whole at once; a full pipe drops the line.
fn write_fd(fd: RawFd, buf: &[u8]) -> io::Result<()> {
    let mut pfd = libc::pollfd {
        fd,
        events: libc::POLLOUT,
        revents: 0,
    };
    loop {
        // SAFETY: one valid pollfd, zero timeout.
        let n = unsafe { libc::poll(&mut pfd, 1, 0) };
        if n > 0 {
            break;
        }
        if n == 0 {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
    if pfd.revents & (libc::POLLERR | libc::POLLHUP | libc::POLLNVAL) != 0 {
        return Err(io::ErrorKind::BrokenPipe.into());
    }
    let mut rest = buf;
    while !rest.is_empty() {
        // SAFETY: the pointer and length come from a live slice.
        let n = unsafe { libc::write(fd, rest.as_ptr().cast(), rest.len()) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        // n >= 0 and <= rest.len() per write(2).
        rest = rest.get(n.unsigned_abs()..).unwrap_or_default();
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
    }
    Ok(())
}

/// The host name for rfc5424 headers; empty (printed `-`) if it cannot be read.
fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: buf is writable for its length; gethostname NUL-terminates when it fits.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return String::new();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::model::{Loc, LogFormat};
    use std::time::Duration;

    fn target(addr: LogAddr, format: LogFormat) -> LogTarget {
        LogTarget {
            addr,
            format,
            facility: 16,
            max_level: syslog::DEBUG,
            min_level: syslog::EMERG,
            max_len: syslog::DEFAULT_MAX_LEN,
            loc: Loc::default(),
        }
    }

    #[test]
    fn udp_round_trip() {
        let rx = UdpSocket::bind("127.0.0.1:0").expect("bind receiver");
        rx.set_read_timeout(Some(Duration::from_secs(2)))
            .expect("set timeout");
        let addr = rx.local_addr().expect("local addr");
        let mut notice_only = target(LogAddr::Udp(addr), LogFormat::Raw);
        notice_only.max_level = syslog::NOTICE;
        let logger = Logger::with_offset(
            &[target(LogAddr::Udp(addr), LogFormat::Short), notice_only],
            "haproxy",
            UtcOffset::UTC,
        );
        assert!(!logger.is_empty());

        logger.send(syslog::INFO, "10.0.1.2:33313 [x] fnt bck/srv1");
        logger.send(syslog::NOTICE, "Server bck/srv1 is UP");
        let mut buf = [0u8; 2048];
        let mut got = Vec::new();
        for _ in 0..3 {
            let n = rx.recv(&mut buf).expect("datagram within 2 s");
            got.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
        got.sort();
        assert_eq!(
            got,
            [
                "<5>Server bck/srv1 is UP\n",
                "<6>10.0.1.2:33313 [x] fnt bck/srv1\n",
                "Server bck/srv1 is UP\n",
            ]
        );
        assert_eq!(logger.dropped(), 0);
    }

    #[test]
    fn unix_round_trip_and_reconnect() {
        let dir = std::env::temp_dir().join(format!(
            "rampart-log-test-{}-{:?}",
            std::process::id(),
            SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default()
                .as_nanos()
        ));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("log.sock");
        let logger = Logger::with_offset(
            &[target(LogAddr::Unix(path.clone()), LogFormat::Short)],
            "rampart",
            UtcOffset::UTC,
        );

        // No listener yet: dropped and counted, not an error for the caller.
        logger.send(syslog::INFO, "lost");
        assert_eq!(logger.dropped(), 1);

        let rx = UnixDatagram::bind(&path).expect("bind receiver");
        rx.set_read_timeout(Some(Duration::from_secs(2)))
            .expect("set timeout");
        logger.send(syslog::INFO, "hello");
        let mut buf = [0u8; 2048];
        let n = rx.recv(&mut buf).expect("datagram within 2 s");
        assert_eq!(&buf[..n], b"<6>hello\n");

        // The receiver goes away and comes back (syslogd restart): the logger reconnects.
        drop(rx);
        std::fs::remove_file(&path).expect("remove socket");
        logger.send(syslog::INFO, "during restart");
        let rx = UnixDatagram::bind(&path).expect("rebind receiver");
        rx.set_read_timeout(Some(Duration::from_secs(2)))
            .expect("set timeout");
        logger.send(syslog::INFO, "after restart");
        let n = rx.recv(&mut buf).expect("datagram within 2 s");
        assert_eq!(&buf[..n], b"<6>after restart\n");
        assert_eq!(logger.dropped(), 2);

        drop(rx);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn fd_write_is_whole_line_and_drops_when_full() {
        use std::io::Read;
        use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

        let mut fds = [0; 2];
        // SAFETY: fds has room for the two descriptors pipe() returns.
        assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
        // SAFETY: both descriptors were just created and are owned by nobody else.
        let (r, w) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };

        write_fd(w.as_raw_fd(), b"<6>line\n").expect("empty pipe is writable");
        let mut reader = std::fs::File::from(r);
        let mut got = [0u8; 8];
        reader.read_exact(&mut got).expect("read line");
        assert_eq!(&got, b"<6>line\n");

        // Fill the pipe (non-blocking on this private test pipe only), then the
        // logger's write must give up at once instead of blocking.
        // SAFETY: fcntl on a descriptor we own.
        unsafe {
            let fl = libc::fcntl(w.as_raw_fd(), libc::F_GETFL);
            libc::fcntl(w.as_raw_fd(), libc::F_SETFL, fl | libc::O_NONBLOCK);
        }
        let chunk = [b'x'; 4096];
        // SAFETY: writes from a live buffer to a descriptor we own.
        while unsafe { libc::write(w.as_raw_fd(), chunk.as_ptr().cast(), chunk.len()) } > 0 {}
        let err = write_fd(w.as_raw_fd(), b"<6>line\n").expect_err("full pipe");
        assert_eq!(err.kind(), io::ErrorKind::WouldBlock);
    }

    #[test]
    fn empty_logger_and_level_gate() {
        let l = Logger::default();
        assert!(l.is_empty());
        assert!(!l.enabled(syslog::EMERG));
        l.send(syslog::EMERG, "nowhere");
        assert_eq!(l.dropped(), 0);

        let mut t = target(LogAddr::Stderr, LogFormat::Raw);
        t.max_level = syslog::WARNING;
        let l = Logger::with_offset(&[t], "haproxy", UtcOffset::UTC);
        assert!(l.enabled(syslog::ALERT));
        assert!(!l.enabled(syslog::INFO));
        assert_eq!(l.offset(), UtcOffset::UTC);
    }
}
