//! Passing listening sockets between processes (binary upgrade).
//!
//! This is rampart's equivalent of HAProxy's `-x SOCKET` together with
//! `stats socket ... expose-fd listeners`: a freshly started process connects
//! to the runtime (stats) socket of the process it replaces, sends the command
//! line `_getsocks\n` and receives every listening socket of the old process
//! as file descriptors (`SCM_RIGHTS`), with the address each one is bound to
//! and a free-form tag, so it can take the sockets over instead of binding
//! again: no connection is refused while the upgrade happens.
//!
//! # Wire format
//!
//! The request is the single line `_getsocks\n` (handled by the runtime API,
//! which then calls [`send_listeners`]). The reply is a sequence of
//! `\n`-terminated ASCII lines, fields separated by one space:
//!
//! ```text
//! RAMPART-FDPASS 1 <count>          header: magic, protocol version, entries
//! L <index> <addr> <tag>            <count> times, index = 0, 1, 2, ...
//! B <first> <n>                     batch: entries first..first+n, 1 <= n <= 200
//! ...                               more batches until all entries are covered
//! END <count>                       trailer
//! ```
//!
//! * `<addr>` is the Rust `SocketAddr` display form (`127.0.0.1:80`,
//!   `[::1]:443`, `[fe80::1%2]:80`).
//! * `<tag>` is the rest of the line, percent-encoded: every byte outside
//!   `0x21..=0x7e` and every `%` is written `%XX` (uppercase hex), so the tag
//!   never contains a space or a newline; an empty tag is an empty field.
//! * Each `B` line is sent by its own `sendmsg` call, which carries the `n`
//!   descriptors of that batch, in entry order, as one `SCM_RIGHTS` control
//!   message. A Unix stream socket delivers the descriptors together with the
//!   first byte of that payload, so by the time the receiver has parsed a
//!   complete `B` line, its descriptors have arrived; the receiver keeps the
//!   descriptors in a FIFO and checks that every batch finds exactly its
//!   descriptors there and that none is left over at `END`.
//!
//! Anything else (a wrong magic, for instance the `Unknown command` answer of
//! a process that does not support `_getsocks`, a short reply, an index out
//! of sequence, a count mismatch, missing or extra descriptors) is an error.
//! Received descriptors are [`OwnedFd`]s from the moment they are received,
//! so they are closed on any error, and they are received with
//! `MSG_CMSG_CLOEXEC`.
//!
//! Note that a passed descriptor shares its open file description with the
//! sender's: file status flags such as `O_NONBLOCK` are common to both
//! processes.

use std::collections::VecDeque;
use std::io::{self, IoSlice, IoSliceMut};
use std::net::{SocketAddr, TcpListener};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::socket::{recvmsg, sendmsg, ControlMessage, ControlMessageOwned, MsgFlags};

/// The command line a client sends to request the listeners.
pub const GETSOCKS_COMMAND: &str = "_getsocks";

/// Magic word opening a reply.
const MAGIC: &str = "RAMPART-FDPASS";
/// Protocol version announced in the header.
const VERSION: u32 = 1;
/// Number of descriptors the sender puts in one `sendmsg` call.
pub const MAX_FDS_PER_MESSAGE: usize = 200;
/// Largest batch the receiver accepts (the kernel's `SCM_MAX_FD`).
const MAX_FDS_ACCEPTED_PER_BATCH: usize = 253;
/// Room reserved for ancillary data on receive: about twice `SCM_MAX_FD`, so
/// the kernel never has to truncate (which would leave descriptors we could
/// not take ownership of).
const RECV_CMSG_FDS: usize = 512;
/// Upper bound on the number of entries a reply may announce.
const MAX_LISTENERS: usize = 65_536;
/// Upper bound on the length of one reply line (without the newline).
const MAX_LINE: usize = 8192;

/// A listening socket received from another process.
#[derive(Debug)]
pub struct PassedListener {
    /// Address the sender announced for this socket.
    pub addr: SocketAddr,
    /// Free-form tag chosen by the sender (e.g. the frontend name).
    pub tag: String,
    /// The received descriptor, close-on-exec.
    pub fd: OwnedFd,
}

/// Server side: write every listener to `stream`, in the format described in
/// the module documentation. Called by the runtime API once a client sent
/// `_getsocks`.
///
/// `stream` must be in blocking mode (a tokio stream converted with
/// `into_std` is still non-blocking: the caller has to call
/// `set_nonblocking(false)`); a write timeout set by the caller applies to
/// every write. `SIGPIPE` is never raised (`MSG_NOSIGNAL`).
pub fn send_listeners(
    stream: &UnixStream,
    listeners: &[(SocketAddr, String, BorrowedFd<'_>)],
) -> io::Result<()> {
    if listeners.len() > MAX_LISTENERS {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "too many listeners to pass: {} (at most {MAX_LISTENERS})",
                listeners.len()
            ),
        ));
    }
    let fd = stream.as_raw_fd();

    let mut header = format!("{MAGIC} {VERSION} {}\n", listeners.len());
    for (i, (addr, tag, _)) in listeners.iter().enumerate() {
        header.push_str(&format!("L {i} {addr} {}\n", encode_tag(tag)));
    }
    send_all(fd, header.as_bytes(), &[])?;

    for (b, batch) in listeners.chunks(MAX_FDS_PER_MESSAGE).enumerate() {
        let first = b * MAX_FDS_PER_MESSAGE;
        let raw: Vec<RawFd> = batch.iter().map(|(_, _, fd)| fd.as_raw_fd()).collect();
        let line = format!("B {first} {}\n", batch.len());
        send_all(fd, line.as_bytes(), &raw)?;
    }

    send_all(fd, format!("END {}\n", listeners.len()).as_bytes(), &[])
}

/// Client side: connect to the runtime socket at `path`, send `_getsocks`
/// and receive all listeners of the process behind it. `timeout` bounds the
/// whole exchange (connect, request and reply).
pub fn fetch_listeners(path: &Path, timeout: Duration) -> io::Result<Vec<PassedListener>> {
    let deadline = Instant::now() + timeout;

    let sock = socket2::Socket::new(socket2::Domain::UNIX, socket2::Type::STREAM, None)?;
    let addr = socket2::SockAddr::unix(path)?;
    sock.connect_timeout(&addr, remaining(deadline)?)
        .map_err(|e| io::Error::new(e.kind(), format!("connecting to {}: {e}", path.display())))?;
    // connect_timeout restores blocking mode on success, but be explicit:
    // the timeouts below rely on it.
    sock.set_nonblocking(false)?;
    let stream = UnixStream::from(OwnedFd::from(sock));

    stream.set_write_timeout(Some(remaining(deadline)?))?;
    send_all(
        stream.as_raw_fd(),
        format!("{GETSOCKS_COMMAND}\n").as_bytes(),
        &[],
    )
    .map_err(timeout_kind)?;

    let mut parser = ReplyParser::default();
    let mut line = Vec::new();
    let mut buf = vec![0u8; 16 * 1024];
    let mut cmsg = nix::cmsg_space!([RawFd; RECV_CMSG_FDS]);
    loop {
        stream.set_read_timeout(Some(remaining(deadline)?))?;
        let n =
            recv_chunk(&stream, &mut buf, &mut cmsg, &mut parser.pending).map_err(timeout_kind)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!(
                    "{}: connection closed before the end of the listener list",
                    path.display()
                ),
            ));
        }
        for &byte in &buf[..n] {
            if byte != b'\n' {
                if line.len() >= MAX_LINE {
                    return Err(protocol_error(format!(
                        "reply line longer than {MAX_LINE} bytes"
                    )));
                }
                line.push(byte);
                continue;
            }
            let text = std::str::from_utf8(&line)
                .map_err(|_| protocol_error(format!("non UTF-8 reply line {}", excerpt(&line))))?;
            parser.line(text)?;
            line.clear();
            if parser.done {
                // Whatever follows the trailer (a prompt, say) is ignored;
                // descriptors that came with it are closed with `parser`.
                return parser.finish();
            }
        }
    }
}

/// Turn a received descriptor into a [`TcpListener`], after checking that it
/// is a listening TCP socket bound to the announced address.
///
/// The listener keeps the blocking mode of the open file description it
/// shares with the sender (rampart's listeners are non-blocking).
pub fn into_tcp_listener(p: PassedListener) -> io::Result<TcpListener> {
    let sock = socket2::SockRef::from(&p.fd);
    let bad = |what: String| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("passed socket for {} ({:?}): {what}", p.addr, p.tag),
        )
    };
    let local = sock
        .local_addr()?
        .as_socket()
        .ok_or_else(|| bad("not an IPv4/IPv6 socket".to_string()))?;
    if sock.r#type()? != socket2::Type::STREAM {
        return Err(bad("not a stream socket".to_string()));
    }
    if sock
        .protocol()?
        .is_some_and(|p| p != socket2::Protocol::TCP)
    {
        return Err(bad("not a TCP socket".to_string()));
    }
    if !sock.is_listener()? {
        return Err(bad("not listening".to_string()));
    }
    if !same_addr(&local, &p.addr) {
        return Err(bad(format!("bound to {local} instead")));
    }
    Ok(TcpListener::from(p.fd))
}

/// Address equality ignoring the IPv6 flow label (not part of a binding).
fn same_addr(a: &SocketAddr, b: &SocketAddr) -> bool {
    match (a, b) {
        (SocketAddr::V4(a), SocketAddr::V4(b)) => a == b,
        (SocketAddr::V6(a), SocketAddr::V6(b)) => {
            a.ip() == b.ip() && a.port() == b.port() && a.scope_id() == b.scope_id()
        }
        _ => false,
    }
}

/// Incremental parser of a reply, fed one line at a time.
#[derive(Default)]
struct ReplyParser {
    /// Entries announced by the header; `None` until the header was read.
    count: Option<usize>,
    /// Entries read so far.
    entries: Vec<(SocketAddr, String)>,
    /// Descriptors already matched to an entry (same order as `entries`).
    fds: Vec<OwnedFd>,
    /// Descriptors received but not yet claimed by a batch line.
    pending: VecDeque<OwnedFd>,
    /// The trailer was read.
    done: bool,
}

impl ReplyParser {
    fn line(&mut self, line: &str) -> io::Result<()> {
        let Some(count) = self.count else {
            return self.header(line);
        };
        if self.entries.len() < count {
            self.entry(line)
        } else if self.fds.len() < count {
            self.batch(line, count)
        } else {
            let n = line
                .strip_prefix("END ")
                .and_then(parse_usize)
                .ok_or_else(|| protocol_error(format!("expected END, got {}", excerpt(line))))?;
            if n != count {
                return Err(protocol_error(format!(
                    "trailer announces {n} listeners, header announced {count}"
                )));
            }
            self.done = true;
            Ok(())
        }
    }

    fn header(&mut self, line: &str) -> io::Result<()> {
        let mut f = line.split(' ');
        if f.next() != Some(MAGIC) {
            return Err(protocol_error(format!(
                "unexpected reply to {GETSOCKS_COMMAND} (socket passing not supported \
                 or not allowed?): {}",
                excerpt(line)
            )));
        }
        let version = f.next().and_then(parse_usize);
        if version != Some(VERSION as usize) {
            return Err(protocol_error(format!(
                "unsupported socket passing header {}",
                excerpt(line)
            )));
        }
        let count = f
            .next()
            .and_then(parse_usize)
            .filter(|_| f.next().is_none())
            .ok_or_else(|| protocol_error(format!("malformed header {}", excerpt(line))))?;
        if count > MAX_LISTENERS {
            return Err(protocol_error(format!(
                "header announces {count} listeners (at most {MAX_LISTENERS})"
            )));
        }
        self.count = Some(count);
        self.entries.reserve(count.min(1024));
        self.fds.reserve(count.min(1024));
        Ok(())
    }

    fn entry(&mut self, line: &str) -> io::Result<()> {
        let malformed = || protocol_error(format!("malformed listener entry {}", excerpt(line)));
        let mut f = line.splitn(4, ' ');
        if f.next() != Some("L") {
            return Err(malformed());
        }
        let index = f.next().and_then(parse_usize).ok_or_else(malformed)?;
        if index != self.entries.len() {
            return Err(protocol_error(format!(
                "listener entry {index} out of sequence (expected {})",
                self.entries.len()
            )));
        }
        let addr: SocketAddr = f
            .next()
            .and_then(|a| a.parse().ok())
            .ok_or_else(malformed)?;
        let tag = f.next().and_then(decode_tag).ok_or_else(malformed)?;
        self.entries.push((addr, tag));
        Ok(())
    }

    fn batch(&mut self, line: &str, count: usize) -> io::Result<()> {
        let malformed = || protocol_error(format!("malformed batch line {}", excerpt(line)));
        let mut f = line.split(' ');
        if f.next() != Some("B") {
            return Err(malformed());
        }
        let first = f.next().and_then(parse_usize).ok_or_else(malformed)?;
        let n = f
            .next()
            .and_then(parse_usize)
            .filter(|_| f.next().is_none())
            .ok_or_else(malformed)?;
        if first != self.fds.len() || n == 0 || n > MAX_FDS_ACCEPTED_PER_BATCH || n > count - first
        {
            return Err(protocol_error(format!(
                "batch of {n} descriptors from entry {first} does not fit ({} of {count} \
                 received)",
                self.fds.len()
            )));
        }
        if self.pending.len() < n {
            return Err(protocol_error(format!(
                "batch announces {n} descriptors, {} received",
                self.pending.len()
            )));
        }
        self.fds.extend(self.pending.drain(..n));
        Ok(())
    }

    fn finish(mut self) -> io::Result<Vec<PassedListener>> {
        if !self.pending.is_empty() {
            return Err(protocol_error(format!(
                "{} unannounced descriptors received",
                self.pending.len()
            )));
        }
        let fds = std::mem::take(&mut self.fds);
        let entries = std::mem::take(&mut self.entries);
        Ok(entries
            .into_iter()
            .zip(fds)
            .map(|((addr, tag), fd)| PassedListener { addr, tag, fd })
            .collect())
    }
}

/// Send all of `data` on the stream socket `fd`, the descriptors `fds` (if
/// any) riding with the first byte. Retries on `EINTR` and on partial writes.
fn send_all(fd: RawFd, data: &[u8], fds: &[RawFd]) -> io::Result<()> {
    let rights = [ControlMessage::ScmRights(fds)];
    let mut off = 0;
    while off < data.len() {
        let iov = [IoSlice::new(&data[off..])];
        // Once any byte went out, the descriptors went with it.
        let cmsgs: &[ControlMessage] = if off == 0 && !fds.is_empty() {
            &rights
        } else {
            &[]
        };
        match sendmsg::<()>(fd, &iov, cmsgs, MsgFlags::MSG_NOSIGNAL, None) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => off += n,
            Err(Errno::EINTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// One `recvmsg` on `stream`: data goes to `buf`, descriptors (taken in
/// ownership at once) to the back of `pending`. Returns the number of bytes.
fn recv_chunk(
    stream: &UnixStream,
    buf: &mut [u8],
    cmsg: &mut [u8],
    pending: &mut VecDeque<OwnedFd>,
) -> io::Result<usize> {
    loop {
        let mut iov = [IoSliceMut::new(buf)];
        let msg = match recvmsg::<()>(
            stream.as_raw_fd(),
            &mut iov,
            Some(&mut *cmsg),
            MsgFlags::MSG_CMSG_CLOEXEC,
        ) {
            Ok(msg) => msg,
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(e.into()),
        };
        let cmsgs = msg.cmsgs().map_err(|_| {
            // The buffer holds twice SCM_MAX_FD descriptors, so this means
            // the kernel could not install them (descriptor limit reached).
            io::Error::other("descriptors lost in transfer (control data truncated; fd limit?)")
        })?;
        for c in cmsgs {
            if let ControlMessageOwned::ScmRights(fds) = c {
                for raw in fds {
                    // SAFETY: the kernel installed `raw` in our descriptor
                    // table for this SCM_RIGHTS message; nothing else refers
                    // to it, so we are its sole owner and wrapping it exactly
                    // once in an OwnedFd is sound.
                    pending.push_back(unsafe { OwnedFd::from_raw_fd(raw) });
                }
            }
        }
        return Ok(msg.bytes);
    }
}

/// Time left before `deadline`, or a `TimedOut` error if none.
fn remaining(deadline: Instant) -> io::Result<Duration> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "timed out fetching listeners",
        ))
    } else {
        Ok(left)
    }
}

/// Socket timeouts surface as `EAGAIN`: report them as timeouts.
fn timeout_kind(e: io::Error) -> io::Error {
    if e.kind() == io::ErrorKind::WouldBlock {
        io::Error::new(io::ErrorKind::TimedOut, "timed out fetching listeners")
    } else {
        e
    }
}

fn protocol_error(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

/// Strict decimal: digits only (no sign, no spaces), no overflow.
fn parse_usize(s: &str) -> Option<usize> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Printable, bounded rendering of a reply line for error messages.
fn excerpt(line: impl AsRef<[u8]>) -> String {
    let line = line.as_ref();
    let shown = &line[..line.len().min(80)];
    let mut s = format!("{:?}", String::from_utf8_lossy(shown));
    if shown.len() < line.len() {
        s.push_str("...");
    }
    s
}

fn encode_tag(tag: &str) -> String {
    let mut out = String::with_capacity(tag.len());
    for &b in tag.as_bytes() {
        if (0x21..=0x7e).contains(&b) && b != b'%' {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn decode_tag(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            if !hex.bytes().all(|h| h.is_ascii_hexdigit()) {
                return None;
            }
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else if (0x21..=0x7e).contains(&b) {
            out.push(b);
            i += 1;
        } else {
            return None;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader, Read, Write};
    use std::net::TcpStream;
    use std::os::fd::AsFd;
    use std::os::unix::net::UnixListener;
    use std::path::PathBuf;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::thread::JoinHandle;

    const T: Duration = Duration::from_secs(10);

    /// A socket path in the temp dir, removed on drop.
    struct SockPath(PathBuf);

    impl SockPath {
        fn new() -> Self {
            static N: AtomicUsize = AtomicUsize::new(0);
            let n = N.fetch_add(1, Ordering::Relaxed);
            let p = std::env::temp_dir()
                .join(format!("rampart-fdpass-{}-{n}.sock", std::process::id()));
            let _ = std::fs::remove_file(&p);
            SockPath(p)
        }
    }

    impl Drop for SockPath {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    /// Accept one client on `path`, read its command line and hand the
    /// stream and the line to `reply`.
    fn serve_once<F>(path: &Path, reply: F) -> JoinHandle<io::Result<String>>
    where
        F: FnOnce(&UnixStream) -> io::Result<()> + Send + 'static,
    {
        let listener = UnixListener::bind(path).unwrap();
        std::thread::spawn(move || {
            let (stream, _) = listener.accept()?;
            stream.set_read_timeout(Some(T))?;
            stream.set_write_timeout(Some(T))?;
            let mut line = String::new();
            BufReader::new(&stream).read_line(&mut line)?;
            reply(&stream)?;
            Ok(line)
        })
    }

    /// Serve `listeners` (dropped once sent) through `send_listeners`.
    fn serve_listeners(
        path: &Path,
        listeners: Vec<(TcpListener, String)>,
    ) -> JoinHandle<io::Result<String>> {
        serve_once(path, move |stream| {
            let list: Vec<_> = listeners
                .iter()
                .map(|(l, tag)| (l.local_addr().unwrap(), tag.clone(), l.as_fd()))
                .collect();
            send_listeners(stream, &list)
            // `listeners` (the originals) are dropped here.
        })
    }

    fn accept_within(l: &TcpListener, limit: Duration) -> io::Result<TcpStream> {
        l.set_nonblocking(true)?;
        let deadline = Instant::now() + limit;
        loop {
            match l.accept() {
                Ok((s, _)) => return Ok(s),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock && Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(5))
                }
                Err(e) => return Err(e),
            }
        }
    }

    fn is_cloexec(fd: BorrowedFd<'_>) -> bool {
        let flags = nix::fcntl::fcntl(fd, nix::fcntl::FcntlArg::F_GETFD).unwrap();
        nix::fcntl::FdFlag::from_bits_truncate(flags).contains(nix::fcntl::FdFlag::FD_CLOEXEC)
    }

    fn roundtrip(n: usize) {
        let path = SockPath::new();
        let originals: Vec<(TcpListener, String)> = (0..n)
            .map(|i| {
                let tag = if i == 1 {
                    String::new()
                } else {
                    format!("fe {i}%\n\u{e9}")
                };
                (TcpListener::bind("127.0.0.1:0").unwrap(), tag)
            })
            .collect();
        let expected: Vec<(SocketAddr, String)> = originals
            .iter()
            .map(|(l, t)| (l.local_addr().unwrap(), t.clone()))
            .collect();
        let server = serve_listeners(&path.0, originals);

        let passed = fetch_listeners(&path.0, T).unwrap();
        // The server has sent everything and dropped the original listeners.
        let line = server.join().unwrap().unwrap();
        assert_eq!(line, "_getsocks\n");
        assert_eq!(passed.len(), n);

        let mut received = Vec::new();
        for (p, (addr, tag)) in passed.into_iter().zip(&expected) {
            assert_eq!(&p.addr, addr);
            assert_eq!(&p.tag, tag);
            assert!(is_cloexec(p.fd.as_fd()));
            let l = into_tcp_listener(p).unwrap();
            assert_eq!(l.local_addr().unwrap(), *addr);
            received.push(l);
        }

        // Only the received descriptors remain: each must accept.
        for (i, l) in received.iter().enumerate() {
            let addr = l.local_addr().unwrap();
            let mut client = TcpStream::connect_timeout(&addr, T).unwrap();
            let mut conn = accept_within(l, T).unwrap();
            client.write_all(&[i as u8, 42]).unwrap();
            conn.set_read_timeout(Some(T)).unwrap();
            let mut got = [0u8; 2];
            conn.read_exact(&mut got).unwrap();
            assert_eq!(got, [i as u8, 42]);
        }
    }

    #[test]
    fn passes_three_listeners() {
        roundtrip(3);
    }

    #[test]
    fn passes_300_listeners_in_batches() {
        roundtrip(300);
    }

    #[test]
    fn passes_no_listener() {
        let path = SockPath::new();
        let server = serve_listeners(&path.0, Vec::new());
        let passed = fetch_listeners(&path.0, T).unwrap();
        assert!(passed.is_empty());
        server.join().unwrap().unwrap();
    }

    fn fetch_with_reply<F>(reply: F) -> io::Error
    where
        F: FnOnce(&UnixStream) -> io::Result<()> + Send + 'static,
    {
        let path = SockPath::new();
        let server = serve_once(&path.0, reply);
        let err = fetch_listeners(&path.0, T).unwrap_err();
        let _ = server.join().unwrap();
        err
    }

    #[test]
    fn garbage_reply_is_an_error() {
        let err = fetch_with_reply(|s| {
            let mut s = s;
            s.write_all(b"Unknown command: '_getsocks'\n\n")
        });
        assert_eq!(err.kind(), io::ErrorKind::InvalidData, "{err}");
        assert!(err.to_string().contains("Unknown command"), "{err}");

        let err = fetch_with_reply(|s| {
            let mut s = s;
            s.write_all(&[0xff; 20000])
        });
        assert_eq!(err.kind(), io::ErrorKind::InvalidData, "{err}");
    }

    #[test]
    fn short_reply_is_an_error() {
        let err = fetch_with_reply(|s| {
            let mut s = s;
            s.write_all(b"RAMPART-FDPASS 1 2\nL 0 127.0.0.1:80 a\n")
        });
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof, "{err}");
    }

    #[test]
    fn inconsistent_replies_are_errors() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let l = std::sync::Arc::new(l);
        let bad: Vec<(String, usize)> = vec![
            // batch line without its descriptor
            (
                format!("RAMPART-FDPASS 1 1\nL 0 {addr} x\nB 0 1\nEND 1\n"),
                0,
            ),
            // descriptor nobody announced
            ("RAMPART-FDPASS 1 0\nEND 0\n".to_string(), 1),
            // entries out of sequence
            (format!("RAMPART-FDPASS 1 1\nL 1 {addr} x\n"), 0),
            // wrong trailer count
            (
                format!("RAMPART-FDPASS 1 1\nL 0 {addr} x\nB 0 1\nEND 2\n"),
                1,
            ),
            // batch larger than announced
            (format!("RAMPART-FDPASS 1 1\nL 0 {addr} x\nB 0 2\n"), 2),
            // bad tag escape, bad address, bad version, huge count
            ("RAMPART-FDPASS 1 1\nL 0 127.0.0.1:1 %G1\n".to_string(), 0),
            ("RAMPART-FDPASS 1 1\nL 0 localhost:1 x\n".to_string(), 0),
            ("RAMPART-FDPASS 2 0\nEND 0\n".to_string(), 0),
            ("RAMPART-FDPASS 1 99999999999999999999999\n".to_string(), 0),
            ("RAMPART-FDPASS 1 -1\n".to_string(), 0),
        ];
        for (reply, nfds) in bad {
            let l = l.clone();
            let text = reply.clone();
            let err = fetch_with_reply(move |s| {
                // The whole reply in one message, with `nfds` descriptors.
                let fds = vec![l.as_raw_fd(); nfds];
                send_all(s.as_raw_fd(), text.as_bytes(), &fds)
            });
            assert!(
                matches!(
                    err.kind(),
                    io::ErrorKind::InvalidData | io::ErrorKind::UnexpectedEof
                ),
                "{reply:?}: {err}"
            );
        }
    }

    #[test]
    fn silent_server_times_out() {
        let path = SockPath::new();
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let server = serve_once(&path.0, move |_| {
            let _ = rx.recv_timeout(T);
            Ok(())
        });
        let start = Instant::now();
        let err = fetch_listeners(&path.0, Duration::from_millis(200)).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut, "{err}");
        assert!(start.elapsed() < Duration::from_secs(5));
        drop(tx);
        server.join().unwrap().unwrap();
    }

    #[test]
    fn missing_socket_is_an_error() {
        let path = SockPath::new();
        assert!(fetch_listeners(&path.0, T).is_err());
    }

    #[test]
    fn into_tcp_listener_checks_the_socket() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let other = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();

        // Wrong announced address.
        let p = PassedListener {
            addr: other,
            tag: "t".into(),
            fd: l.as_fd().try_clone_to_owned().unwrap(),
        };
        let err = into_tcp_listener(p).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);

        // A connected (non-listening) TCP socket.
        let c = TcpStream::connect(addr).unwrap();
        let p = PassedListener {
            addr: c.local_addr().unwrap(),
            tag: String::new(),
            fd: OwnedFd::from(c),
        };
        assert!(into_tcp_listener(p).is_err());

        // A UDP socket bound to the announced address.
        let u = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let p = PassedListener {
            addr: u.local_addr().unwrap(),
            tag: String::new(),
            fd: OwnedFd::from(u),
        };
        assert!(into_tcp_listener(p).is_err());

        // A Unix socket.
        let (a, _b) = UnixStream::pair().unwrap();
        let p = PassedListener {
            addr,
            tag: String::new(),
            fd: OwnedFd::from(a),
        };
        assert!(into_tcp_listener(p).is_err());

        // The right one.
        let p = PassedListener {
            addr,
            tag: String::new(),
            fd: OwnedFd::from(l),
        };
        assert_eq!(into_tcp_listener(p).unwrap().local_addr().unwrap(), addr);
    }

    #[test]
    fn tags_and_addresses_roundtrip() {
        for tag in [
            "",
            "plain",
            "with space",
            "100%",
            "a\nb\r\t",
            "\u{e9}t\u{e9}",
            "%41",
        ] {
            let enc = encode_tag(tag);
            assert!(!enc.contains([' ', '\n']));
            assert_eq!(decode_tag(&enc).as_deref(), Some(tag));
        }
        assert_eq!(decode_tag("%4"), None);
        assert_eq!(decode_tag("%zz"), None);
        assert_eq!(decode_tag("%FF"), None); // not UTF-8
        for a in ["127.0.0.1:80", "[::1]:443", "[fe80::1%2]:80", "0.0.0.0:0"] {
            let addr: SocketAddr = a.parse().unwrap();
            assert_eq!(addr.to_string().parse::<SocketAddr>().unwrap(), addr);
        }
    }

    #[test]
    fn ipv6_listener_roundtrip() {
        let Ok(l) = TcpListener::bind("[::1]:0") else {
            return; // no IPv6 loopback in this environment
        };
        let path = SockPath::new();
        let server = serve_listeners(&path.0, vec![(l, "v6".into())]);
        let passed = fetch_listeners(&path.0, T).unwrap();
        server.join().unwrap().unwrap();
        assert_eq!(passed.len(), 1);
        assert!(passed[0].addr.is_ipv6());
        let l = into_tcp_listener(passed.into_iter().next().unwrap()).unwrap();
        let _c = TcpStream::connect_timeout(&l.local_addr().unwrap(), T).unwrap();
        accept_within(&l, T).unwrap();
    }
}
