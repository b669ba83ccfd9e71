//! Connection setup: plaintext hellos carrying salts, then one sealed confirm frame each way.
//!
//! The confirm frames make a wrong cluster key fail during setup: the server cannot open the
//! client's confirm, answers with a plaintext rejection ("wrong cluster key") and `accept`
//! returns [`WireError::Auth`], while `connect` returns [`WireError::Rejected`].
//! Hand-rolled tests can call [`client`] / [`server`] on a raw stream and then write
//! arbitrary bytes with [`crate::seal_frame`].

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::io::{read_raw, RawFrame};
use crate::seal::{derive_keys, seal_frame, Opener, Sealer};
use crate::WireError;

pub const MAGIC: &[u8; 4] = b"RMPW";
pub const VERSION: u8 = 1;
pub const HELLO_LEN: usize = 37;
/// Plaintext of the first sealed frame in each direction.
pub const CONFIRM: &[u8] = b"rampart-wire-v1 key confirm";
/// Reason the server sends when the client's confirm fails to open.
pub const WRONG_KEY: &str = "wrong cluster key";

pub fn hello_bytes(salt: &[u8; 32]) -> [u8; HELLO_LEN] {
    let mut out = [0u8; HELLO_LEN];
    out[..4].copy_from_slice(MAGIC);
    out[4] = VERSION;
    out[5..].copy_from_slice(salt);
    out
}

fn check_prefix(head: &[u8]) -> Result<(), WireError> {
    if &head[..4] != MAGIC {
        return Err(WireError::BadMagic);
    }
    if head[4] != VERSION {
        return Err(WireError::BadVersion(head[4]));
    }
    Ok(())
}

/// Returns the peer's salt.
pub fn parse_hello(hello: &[u8; HELLO_LEN]) -> Result<[u8; 32], WireError> {
    check_prefix(hello)?;
    let mut salt = [0u8; 32];
    salt.copy_from_slice(&hello[5..]);
    Ok(salt)
}

/// Reads a hello, checking magic and version before waiting for the salt so a stray
/// client (say, HTTP) is refused at once.
async fn read_hello<S: AsyncRead + Unpin>(s: &mut S) -> Result<[u8; 32], WireError> {
    let mut hello = [0u8; HELLO_LEN];
    s.read_exact(&mut hello[..5])
        .await
        .map_err(WireError::from_io)?;
    // A server may refuse before its hello (an agent it does not know): same rejection shape.
    if hello[..4] == crate::REJECT_LEN.to_be_bytes() {
        let mut n = [0u8; 2];
        n[0] = hello[4];
        s.read_exact(&mut n[1..])
            .await
            .map_err(WireError::from_io)?;
        let mut reason = vec![0u8; usize::from(u16::from_be_bytes(n))];
        s.read_exact(&mut reason)
            .await
            .map_err(WireError::from_io)?;
        return Err(WireError::Rejected(
            String::from_utf8_lossy(&reason).into_owned(),
        ));
    }
    check_prefix(&hello)?;
    s.read_exact(&mut hello[5..])
        .await
        .map_err(WireError::from_io)?;
    parse_hello(&hello)
}

/// Reads the peer's confirm frame; a plaintext rejection surfaces as `Rejected`.
async fn read_confirm<S: AsyncRead + Unpin>(
    s: &mut S,
    opener: &mut Opener,
    timeout: Duration,
) -> Result<(), WireError> {
    let mut buf = Vec::new();
    // Before authentication a peer may not make us allocate more than the confirm needs.
    let prefix = match read_raw(s, &mut buf, timeout, CONFIRM.len() + crate::TAG_LEN).await? {
        RawFrame::Eof => return Err(WireError::Closed),
        RawFrame::Rejected(reason) => return Err(WireError::Rejected(reason)),
        RawFrame::Sealed(prefix) => prefix,
    };
    opener.open_in_place(&prefix, &mut buf)?;
    if buf != CONFIRM {
        return Err(WireError::Protocol("unexpected handshake confirm".into()));
    }
    Ok(())
}

/// Bytes of a plaintext rejection: `0xFFFFFFFF | u16 BE n | n bytes of UTF-8 reason`.
pub fn reject_bytes(reason: &str) -> Vec<u8> {
    let mut end = reason.len().min(usize::from(u16::MAX));
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    let reason = &reason.as_bytes()[..end];
    let mut out = Vec::with_capacity(6 + reason.len());
    out.extend_from_slice(&crate::REJECT_LEN.to_be_bytes());
    out.extend_from_slice(&(reason.len() as u16).to_be_bytes());
    out.extend_from_slice(reason);
    out
}

/// Client side of the handshake on a raw stream; returns the c2s sealer and s2c opener.
pub async fn client<S: AsyncRead + AsyncWrite + Unpin>(
    s: &mut S,
    psk: &[u8],
) -> Result<(Sealer, Opener), WireError> {
    let client_salt: [u8; 32] = rand::random();
    s.write_all(&hello_bytes(&client_salt)).await?;
    let server_salt = read_hello(s).await?;
    let (c2s, s2c) = derive_keys(psk, &client_salt, &server_salt);
    let (mut sealer, mut opener) = (Sealer::new(c2s), Opener::new(s2c));
    s.write_all(&seal_frame(&mut sealer, CONFIRM)?).await?;
    s.flush().await?;
    read_confirm(s, &mut opener, crate::BODY_TIMEOUT).await?;
    Ok((sealer, opener))
}

/// Server side of the handshake on a raw stream; returns the s2c sealer and c2s opener.
/// A client whose confirm fails to open gets a plaintext "wrong cluster key" rejection.
pub async fn server<S: AsyncRead + AsyncWrite + Unpin>(
    s: &mut S,
    psk: &[u8],
) -> Result<(Sealer, Opener), WireError> {
    server_with(s, psk, WRONG_KEY).await
}

/// [`server`] with the reason sent to a client whose key differs (agents are told about
/// their own key, not a cluster key).
pub async fn server_with<S: AsyncRead + AsyncWrite + Unpin>(
    s: &mut S,
    psk: &[u8],
    wrong_key: &str,
) -> Result<(Sealer, Opener), WireError> {
    let client_salt = read_hello(s).await?;
    let server_salt: [u8; 32] = rand::random();
    s.write_all(&hello_bytes(&server_salt)).await?;
    s.flush().await?;
    let (c2s, s2c) = derive_keys(psk, &client_salt, &server_salt);
    let (mut sealer, mut opener) = (Sealer::new(s2c), Opener::new(c2s));
    match read_confirm(s, &mut opener, crate::BODY_TIMEOUT).await {
        Ok(()) => {}
        Err(WireError::Auth) => {
            // Best effort: the client only loses the clear reason if this fails.
            let _ = s.write_all(&reject_bytes(wrong_key)).await;
            let _ = s.shutdown().await;
            return Err(WireError::Auth);
        }
        Err(e) => return Err(e),
    }
    s.write_all(&seal_frame(&mut sealer, CONFIRM)?).await?;
    s.flush().await?;
    Ok((sealer, opener))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hello_roundtrip_and_checks() {
        let salt = [7u8; 32];
        let h = hello_bytes(&salt);
        assert_eq!(&h[..5], b"RMPW\x01");
        assert_eq!(parse_hello(&h).unwrap(), salt);
        let mut bad = h;
        bad[0] = b'X';
        assert!(matches!(parse_hello(&bad), Err(WireError::BadMagic)));
        let mut ver = h;
        ver[4] = 2;
        assert!(matches!(parse_hello(&ver), Err(WireError::BadVersion(2))));
    }

    #[test]
    fn reject_bytes_layout_and_truncation() {
        assert_eq!(reject_bytes("no"), b"\xff\xff\xff\xff\x00\x02no".to_vec());
        let long = "é".repeat(40_000); // 80_000 bytes
        let b = reject_bytes(&long);
        let n = usize::from(u16::from_be_bytes([b[4], b[5]]));
        assert_eq!(b.len(), 6 + n);
        assert!(n <= usize::from(u16::MAX));
        assert!(std::str::from_utf8(&b[6..]).is_ok());
    }
}
