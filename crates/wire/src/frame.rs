//! The plaintext inside one sealed frame:
//! `id u32 BE | kind u8 | flags u8 (bit0 = more) | cmd_len u8 | cmd | chunk`.

use crate::{Kind, WireError, CHUNK};

/// Fixed part of the header: id, kind, flags, command length.
pub const HEADER_LEN: usize = 7;
/// Longest command, in bytes (ASCII).
pub const MAX_COMMAND: usize = 32;
/// Flag bit: more chunks of the same message follow.
pub const FLAG_MORE: u8 = 1;

/// A decoded frame borrowing the decrypted buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame<'a> {
    pub id: u32,
    pub kind: Kind,
    pub more: bool,
    pub command: &'a str,
    pub chunk: &'a [u8],
}

/// Alias kept for callers that think of it as a borrowed view.
pub type FrameRef<'a> = Frame<'a>;

/// Commands are short ASCII words so they can be logged and compared cheaply.
pub fn check_command(cmd: &str) -> Result<(), WireError> {
    if cmd.len() > MAX_COMMAND {
        return Err(WireError::Protocol(format!(
            "command of {} bytes exceeds {MAX_COMMAND}",
            cmd.len()
        )));
    }
    if !cmd.is_ascii() {
        return Err(WireError::Protocol("command is not ASCII".into()));
    }
    Ok(())
}

/// Appends the encoded frame to `buf`. The command must pass [`check_command`] (a longer one
/// is cut to [`MAX_COMMAND`] bytes) and the chunk should be at most [`CHUNK`] bytes, or
/// [`decode`] will refuse it.
pub fn encode_into(buf: &mut Vec<u8>, id: u32, kind: Kind, more: bool, cmd: &str, chunk: &[u8]) {
    let cmd = &cmd.as_bytes()[..cmd.len().min(MAX_COMMAND)];
    buf.reserve(HEADER_LEN + cmd.len() + chunk.len());
    buf.extend_from_slice(&id.to_be_bytes());
    buf.push(kind.as_u8());
    buf.push(if more { FLAG_MORE } else { 0 });
    buf.push(cmd.len() as u8);
    buf.extend_from_slice(cmd);
    buf.extend_from_slice(chunk);
}

/// Encodes one frame; see [`encode_into`].
pub fn encode(id: u32, kind: Kind, more: bool, cmd: &str, chunk: &[u8]) -> Vec<u8> {
    let mut buf = Vec::new();
    encode_into(&mut buf, id, kind, more, cmd, chunk);
    buf
}

fn bad(msg: impl Into<String>) -> WireError {
    WireError::Protocol(msg.into())
}

/// Decodes one frame's plaintext. Never panics; anything malformed is a protocol error.
pub fn decode(buf: &[u8]) -> Result<Frame<'_>, WireError> {
    let Some((header, rest)) = buf.split_first_chunk::<HEADER_LEN>() else {
        return Err(bad(format!(
            "frame of {} bytes is shorter than its header",
            buf.len()
        )));
    };
    let id = u32::from_be_bytes([header[0], header[1], header[2], header[3]]);
    let kind =
        Kind::from_u8(header[4]).ok_or_else(|| bad(format!("unknown kind {}", header[4])))?;
    let flags = header[5];
    if flags & !FLAG_MORE != 0 {
        return Err(bad(format!("unknown flags {flags:#04x}")));
    }
    let cmd_len = usize::from(header[6]);
    if cmd_len > MAX_COMMAND {
        return Err(bad(format!(
            "command length {cmd_len} exceeds {MAX_COMMAND}"
        )));
    }
    if rest.len() < cmd_len {
        return Err(bad("frame shorter than its command"));
    }
    let (cmd, chunk) = rest.split_at(cmd_len);
    if !cmd.is_ascii() {
        return Err(bad("command is not ASCII"));
    }
    let command = std::str::from_utf8(cmd).map_err(|_| bad("command is not ASCII"))?;
    if chunk.len() > CHUNK {
        return Err(bad(format!(
            "chunk of {} bytes exceeds {CHUNK}",
            chunk.len()
        )));
    }
    Ok(Frame {
        id,
        kind,
        more: flags & FLAG_MORE != 0,
        command,
        chunk,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn kind() -> impl Strategy<Value = Kind> {
        (0u8..4).prop_map(|b| Kind::from_u8(b).unwrap_or(Kind::Notice))
    }

    proptest! {
        #[test]
        fn roundtrip(id: u32, k in kind(), more: bool, cmd in "[ -~]{0,32}",
                     chunk in proptest::collection::vec(any::<u8>(), 0..512)) {
            let buf = encode(id, k, more, &cmd, &chunk);
            let f = decode(&buf).unwrap();
            prop_assert_eq!(f, Frame { id, kind: k, more, command: &cmd, chunk: &chunk });
        }

        #[test]
        fn decode_never_panics(buf in proptest::collection::vec(any::<u8>(), 0..128)) {
            let _ = decode(&buf);
        }
    }

    #[test]
    fn rejects_malformed() {
        assert!(decode(&[0; 6]).is_err());
        let mut good = encode(7, Kind::Request, false, "ping", b"x");
        assert!(decode(&good).is_ok());
        good[4] = 9; // unknown kind
        assert!(decode(&good).is_err());
        let mut flags = encode(7, Kind::Request, false, "ping", b"x");
        flags[5] = 2;
        assert!(decode(&flags).is_err());
        let mut long = encode(7, Kind::Request, false, "ping", b"");
        long[6] = 33;
        assert!(decode(&long).is_err());
        let mut short = encode(7, Kind::Request, false, "ping", b"");
        short[6] = 5; // claims more command bytes than present
        assert!(decode(&short).is_err());
        let mut non_ascii = encode(7, Kind::Request, false, "ping", b"");
        non_ascii[7] = 0xC3;
        assert!(decode(&non_ascii).is_err());
        let big = encode(1, Kind::Notice, false, "", &vec![0; CHUNK + 1]);
        assert!(decode(&big).is_err());
        assert!(decode(&encode(1, Kind::Notice, false, "", &vec![0; CHUNK])).is_ok());
    }

    #[test]
    fn check_command_limits() {
        assert!(check_command("").is_ok());
        assert!(check_command(&"a".repeat(32)).is_ok());
        assert!(check_command(&"a".repeat(33)).is_err());
        assert!(check_command("é").is_err());
    }
}
