//! Sealed message streams: `connect` / `accept`, [`MsgReader`] and [`MsgWriter`].

use std::time::Duration;

use tokio::io::{
    AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader, ReadHalf, WriteHalf,
};

use crate::frame::{self, Frame};
use crate::seal::{Opener, Sealer};
use crate::{handshake, Message, WireError, CHUNK, MAX_MESSAGE, MAX_SEALED, REJECT_LEN};

/// How long the rest of a frame may take once its first byte arrived (Wazuh: 30 s).
pub const BODY_TIMEOUT: Duration = Duration::from_secs(30);
/// Upper bound for the whole `connect` / `accept` exchange.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);

const READ_BUFFER: usize = 64 << 10;

/// What one length prefix introduced.
pub(crate) enum RawFrame {
    /// Clean EOF before any byte of a prefix.
    Eof,
    /// Sealed body now in the buffer; the prefix is its AAD.
    Sealed([u8; 4]),
    /// Plaintext rejection with its reason.
    Rejected(String),
}

/// Reads one length-prefixed frame into `buf`. Idle time before a frame is unbounded; once
/// its first byte arrived, the rest must follow within `body_timeout`.
pub(crate) async fn read_raw<R: AsyncRead + Unpin>(
    r: &mut R,
    buf: &mut Vec<u8>,
    body_timeout: Duration,
    max_len: usize,
) -> Result<RawFrame, WireError> {
    let mut prefix = [0u8; 4];
    let got = r.read(&mut prefix).await?;
    if got == 0 {
        return Ok(RawFrame::Eof);
    }
    let rest = async {
        r.read_exact(&mut prefix[got..]).await?;
        let len = u32::from_be_bytes(prefix);
        if len == REJECT_LEN {
            let mut n = [0u8; 2];
            r.read_exact(&mut n).await?;
            let mut reason = vec![0u8; usize::from(u16::from_be_bytes(n))];
            r.read_exact(&mut reason).await?;
            return Ok(RawFrame::Rejected(
                String::from_utf8_lossy(&reason).into_owned(),
            ));
        }
        let len = len as usize;
        if len > max_len {
            return Err(WireError::FrameTooLarge(len));
        }
        // Only bytes beyond the previous frame's length get zeroed; read_exact overwrites all.
        buf.resize(len, 0);
        r.read_exact(buf).await?;
        Ok(RawFrame::Sealed(prefix))
    };
    match tokio::time::timeout(body_timeout, rest).await {
        Ok(Ok(f)) => Ok(f),
        Ok(Err(WireError::Io(e))) => Err(WireError::from_io(e)),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(WireError::Timeout),
    }
}

/// Reads and reassembles messages. Any error leaves it unusable: close the connection.
pub struct MsgReader<R> {
    inner: BufReader<R>,
    opener: Opener,
    buf: Vec<u8>,
    pending: Option<Message>,
    body_timeout: Duration,
    max_message: usize,
}

impl<R: AsyncRead + Unpin> MsgReader<R> {
    /// Wraps a stream whose handshake is done (see [`handshake`]).
    pub fn new(inner: R, opener: Opener) -> MsgReader<R> {
        Self::with_buffer(inner, opener, READ_BUFFER)
    }

    /// As [`MsgReader::new`] with a read buffer of `size` bytes: thousands of mostly idle
    /// agent sessions want a small one, a bulk transfer a large one.
    pub fn with_buffer(inner: R, opener: Opener, size: usize) -> MsgReader<R> {
        MsgReader {
            inner: BufReader::with_capacity(size, inner),
            opener,
            buf: Vec::new(),
            pending: None,
            body_timeout: BODY_TIMEOUT,
            max_message: MAX_MESSAGE,
        }
    }

    pub fn set_body_timeout(&mut self, d: Duration) {
        self.body_timeout = d;
    }

    /// Largest message accepted (at most [`MAX_MESSAGE`]); a peer that only ever sends small
    /// ones (an agent) must not make us buffer 256 MiB.
    pub fn set_max_message(&mut self, n: usize) {
        self.max_message = n.min(MAX_MESSAGE);
    }

    /// Next complete message; `Ok(None)` on a clean EOF between messages.
    pub async fn read(&mut self) -> Result<Option<Message>, WireError> {
        loop {
            let prefix = match read_raw(
                &mut self.inner,
                &mut self.buf,
                self.body_timeout,
                MAX_SEALED,
            )
            .await?
            {
                RawFrame::Eof if self.pending.is_none() => return Ok(None),
                RawFrame::Eof => return Err(WireError::Closed),
                RawFrame::Rejected(reason) => return Err(WireError::Rejected(reason)),
                RawFrame::Sealed(prefix) => prefix,
            };
            self.opener.open_in_place(&prefix, &mut self.buf)?;
            let f = frame::decode(&self.buf)?;
            if let Some(done) = absorb(&mut self.pending, f, self.max_message)? {
                return Ok(Some(done));
            }
        }
    }
}

/// Adds a frame to the message being reassembled; returns the message once complete.
fn absorb(
    pending: &mut Option<Message>,
    f: Frame<'_>,
    max: usize,
) -> Result<Option<Message>, WireError> {
    let Some(p) = pending.as_mut() else {
        if f.chunk.len() > max {
            return Err(WireError::MessageTooLarge);
        }
        let msg = Message {
            id: f.id,
            kind: f.kind,
            command: f.command.to_owned(),
            payload: f.chunk.to_vec(),
        };
        if f.more {
            *pending = Some(msg);
            return Ok(None);
        }
        return Ok(Some(msg));
    };
    if p.id != f.id || p.kind != f.kind || p.command != f.command {
        return Err(WireError::Protocol(format!(
            "frame of message {} ({}) interleaved with message {} ({})",
            f.id, f.command, p.id, p.command
        )));
    }
    if p.payload.len() + f.chunk.len() > max {
        return Err(WireError::MessageTooLarge);
    }
    p.payload.extend_from_slice(f.chunk);
    if f.more {
        Ok(None)
    } else {
        Ok(pending.take())
    }
}

/// Splits messages into chunks and writes each sealed frame with one `write_all`.
pub struct MsgWriter<W> {
    inner: W,
    sealer: Sealer,
    buf: Vec<u8>,
}

impl<W: AsyncWrite + Unpin> MsgWriter<W> {
    /// Wraps a stream whose handshake is done (see [`handshake`]).
    pub fn new(inner: W, sealer: Sealer) -> MsgWriter<W> {
        MsgWriter {
            inner,
            sealer,
            buf: Vec::new(),
        }
    }

    /// Writes all chunks of `m` back to back. A bad command or oversized payload is refused
    /// (Protocol / MessageTooLarge) before anything is written, so the stream stays usable.
    pub async fn write(&mut self, m: &Message) -> Result<(), WireError> {
        frame::check_command(&m.command)?;
        if m.payload.len() > MAX_MESSAGE {
            return Err(WireError::MessageTooLarge);
        }
        let frames = m.payload.len().div_ceil(CHUNK).max(1);
        for i in 0..frames {
            let end = ((i + 1) * CHUNK).min(m.payload.len());
            let chunk = &m.payload[i * CHUNK..end];
            self.buf.clear();
            self.buf.extend_from_slice(&[0; 4]);
            frame::encode_into(
                &mut self.buf,
                m.id,
                m.kind,
                i + 1 < frames,
                &m.command,
                chunk,
            );
            self.sealer.seal_frame_in_place(&mut self.buf)?;
            self.inner.write_all(&self.buf).await?;
        }
        self.inner.flush().await?;
        // Keep one frame's worth of buffer, not a burst's.
        if self.buf.capacity() > 2 * MAX_SEALED {
            self.buf = Vec::new();
        }
        Ok(())
    }

    /// Sends a plaintext rejection the peer reports as [`WireError::Rejected`], then closes.
    pub async fn reject(mut self, reason: &str) -> Result<(), WireError> {
        self.inner
            .write_all(&handshake::reject_bytes(reason))
            .await?;
        self.inner.shutdown().await?;
        Ok(())
    }

    /// The underlying stream (for tests and tools).
    pub fn into_inner(self) -> W {
        self.inner
    }

    /// Flushes and closes the write direction (TCP FIN).
    pub async fn shutdown(&mut self) -> Result<(), WireError> {
        self.inner.shutdown().await?;
        Ok(())
    }
}

async fn bounded<T>(
    f: impl std::future::Future<Output = Result<T, WireError>>,
) -> Result<T, WireError> {
    tokio::time::timeout(HANDSHAKE_TIMEOUT, f)
        .await
        .unwrap_or(Err(WireError::Timeout))
}

type Halves<S> = (MsgReader<ReadHalf<S>>, MsgWriter<WriteHalf<S>>);

/// Client side: handshake on `stream`, then split it into a reader and a writer.
/// A server holding another cluster key makes this fail with `Rejected("wrong cluster key")`.
pub async fn connect<S>(stream: S, psk: &[u8]) -> Result<Halves<S>, WireError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    connect_sized(stream, psk, READ_BUFFER).await
}

/// [`connect`] with a read buffer of `read_buffer` bytes (see [`MsgReader::with_buffer`]).
pub async fn connect_sized<S>(
    mut stream: S,
    psk: &[u8],
    read_buffer: usize,
) -> Result<Halves<S>, WireError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (sealer, opener) = bounded(handshake::client(&mut stream, psk)).await?;
    let (r, w) = tokio::io::split(stream);
    Ok((
        MsgReader::with_buffer(r, opener, read_buffer),
        MsgWriter::new(w, sealer),
    ))
}

/// Server side: handshake on `stream`, then split it. A client holding another cluster key
/// is sent a "wrong cluster key" rejection and this fails with [`WireError::Auth`].
pub async fn accept<S>(stream: S, psk: &[u8]) -> Result<Halves<S>, WireError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    accept_with(stream, psk, handshake::WRONG_KEY, READ_BUFFER).await
}

/// [`accept`] telling a client with another key `wrong_key` instead of "wrong cluster key",
/// with a read buffer of `read_buffer` bytes.
pub async fn accept_with<S>(
    mut stream: S,
    psk: &[u8],
    wrong_key: &str,
    read_buffer: usize,
) -> Result<Halves<S>, WireError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (sealer, opener) = bounded(handshake::server_with(&mut stream, psk, wrong_key)).await?;
    let (r, w) = tokio::io::split(stream);
    Ok((
        MsgReader::with_buffer(r, opener, read_buffer),
        MsgWriter::new(w, sealer),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Kind;

    fn frame(id: u32, more: bool, cmd: &str, chunk: &[u8]) -> Frame<'static> {
        Frame {
            id,
            kind: Kind::Response,
            more,
            command: Box::leak(cmd.to_owned().into_boxed_str()),
            chunk: Box::leak(chunk.to_vec().into_boxed_slice()),
        }
    }

    #[test]
    fn absorb_reassembles_and_rejects_interleaving() {
        let mut p = None;
        assert_eq!(
            absorb(&mut p, frame(1, true, "a", b"12"), MAX_MESSAGE).unwrap(),
            None
        );
        assert_eq!(
            absorb(&mut p, frame(1, true, "a", b"34"), MAX_MESSAGE).unwrap(),
            None
        );
        let m = absorb(&mut p, frame(1, false, "a", b"5"), MAX_MESSAGE)
            .unwrap()
            .unwrap();
        assert_eq!(m.payload, b"12345");
        assert!(p.is_none());
        absorb(&mut p, frame(1, true, "a", b"x"), MAX_MESSAGE).unwrap();
        assert!(matches!(
            absorb(&mut p, frame(2, false, "a", b"y"), MAX_MESSAGE),
            Err(WireError::Protocol(_))
        ));
        let mut q = None;
        absorb(&mut q, frame(1, true, "a", b"x"), MAX_MESSAGE).unwrap();
        assert!(matches!(
            absorb(&mut q, frame(1, false, "b", b"y"), MAX_MESSAGE),
            Err(WireError::Protocol(_))
        ));
    }

    #[test]
    fn absorb_caps_reassembled_size() {
        // calloc-backed: the 256 MiB are never touched.
        let mut p = Some(Message::new(
            1,
            Kind::Response,
            "a",
            vec![0; MAX_MESSAGE - 1],
        ));
        assert!(matches!(
            absorb(&mut p, frame(1, true, "a", b"xy"), MAX_MESSAGE),
            Err(WireError::MessageTooLarge)
        ));
        let mut p = Some(Message::new(
            1,
            Kind::Response,
            "a",
            vec![0; MAX_MESSAGE - 1],
        ));
        let m = absorb(&mut p, frame(1, false, "a", b"x"), MAX_MESSAGE)
            .unwrap()
            .unwrap();
        assert_eq!(m.payload.len(), MAX_MESSAGE);
    }
}
