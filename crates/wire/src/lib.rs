//! What rampart's daemons share on the wire: encrypted, authenticated framing and
//! request/response multiplexing.
//!
//! A connection starts with a plaintext hello from each side (magic, version, 32-byte salt),
//! then both sides derive per-direction AES-256-GCM keys from the pre-shared cluster key and
//! prove they hold it with one sealed confirm frame each. Everything after that is sealed
//! frames whose nonce is an implicit per-direction counter, so a replayed, reordered,
//! dropped or altered frame fails authentication and the connection closes.
#![forbid(unsafe_code)]

pub mod frame;
pub mod handshake;
mod io;
pub mod report;
pub mod rpc;
pub mod seal;

pub use io::{
    accept, accept_with, connect, connect_sized, MsgReader, MsgWriter, BODY_TIMEOUT,
    HANDSHAKE_TIMEOUT,
};
pub use seal::seal_frame;

/// Largest payload chunk carried by one frame; bigger messages are split.
pub const CHUNK: usize = 1 << 20;
/// Largest reassembled message.
pub const MAX_MESSAGE: usize = 256 << 20;
/// AES-GCM tag appended to every sealed frame.
pub const TAG_LEN: usize = 16;
/// Largest plaintext inside one sealed frame: header, command, chunk.
pub const MAX_PLAINTEXT: usize = frame::HEADER_LEN + frame::MAX_COMMAND + CHUNK;
/// Largest accepted value of a sealed frame's length prefix.
pub const MAX_SEALED: usize = MAX_PLAINTEXT + TAG_LEN;
/// Length prefix announcing a plaintext rejection instead of a sealed frame.
pub const REJECT_LEN: u32 = u32::MAX;

/// What a message is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// Expects exactly one Response or Error with the same id.
    Request,
    /// Successful answer to a Request.
    Response,
    /// Failed answer to a Request; the payload is the error text.
    Error,
    /// One-way message, never answered.
    Notice,
}

impl Kind {
    pub fn as_u8(self) -> u8 {
        match self {
            Kind::Request => 0,
            Kind::Response => 1,
            Kind::Error => 2,
            Kind::Notice => 3,
        }
    }

    pub fn from_u8(b: u8) -> Option<Kind> {
        match b {
            0 => Some(Kind::Request),
            1 => Some(Kind::Response),
            2 => Some(Kind::Error),
            3 => Some(Kind::Notice),
            _ => None,
        }
    }
}

/// One reassembled message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub id: u32,
    pub kind: Kind,
    /// ASCII, at most [`frame::MAX_COMMAND`] bytes.
    pub command: String,
    pub payload: Vec<u8>,
}

impl Message {
    pub fn new(id: u32, kind: Kind, command: impl Into<String>, payload: Vec<u8>) -> Message {
        Message {
            id,
            kind,
            command: command.into(),
            payload,
        }
    }
}

/// Everything that ends a connection (or refuses to start one).
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
    #[error("not a rampart-wire peer (bad magic)")]
    BadMagic,
    #[error("unsupported rampart-wire version {0}")]
    BadVersion(u8),
    /// A frame failed to authenticate: tampered, replayed, reordered or wrong key.
    #[error("frame failed authentication (tampered or replayed)")]
    Auth,
    /// The peer refused the connection with this reason (e.g. "wrong cluster key").
    #[error("rejected: {0}")]
    Rejected(String),
    #[error("frame of {0} bytes exceeds the maximum of {MAX_SEALED}")]
    FrameTooLarge(usize),
    #[error("message exceeds the maximum of {MAX_MESSAGE} bytes")]
    MessageTooLarge,
    #[error("protocol error: {0}")]
    Protocol(String),
    #[error("timed out waiting for the peer")]
    Timeout,
    /// The peer went away in the middle of a frame or message.
    #[error("connection closed unexpectedly")]
    Closed,
}

impl WireError {
    /// I/O errors, with a mid-frame EOF reported as [`WireError::Closed`].
    pub(crate) fn from_io(e: std::io::Error) -> WireError {
        if e.kind() == std::io::ErrorKind::UnexpectedEof {
            WireError::Closed
        } else {
            WireError::Io(e)
        }
    }
}
