//! Per-direction AES-256-GCM with an implicit counter nonce, and key derivation.
//!
//! The counter is never sent: both ends count frames, so a replayed, reordered or dropped
//! frame is opened with the wrong nonce and fails authentication.

use aes_gcm::aead::AeadInPlace;
use aes_gcm::{Aes256Gcm, KeyInit, Nonce, Tag};
use hkdf::Hkdf;
use sha2::Sha256;

use crate::{WireError, MAX_SEALED, TAG_LEN};

/// Salt prefix binding the derived keys to this protocol version.
pub const KDF_LABEL: &[u8] = b"rampart-wire-v1";

/// Derives `(client_to_server, server_to_client)` keys from the cluster key and both salts.
pub fn derive_keys(
    psk: &[u8],
    client_salt: &[u8; 32],
    server_salt: &[u8; 32],
) -> ([u8; 32], [u8; 32]) {
    let mut salt = Vec::with_capacity(KDF_LABEL.len() + 64);
    salt.extend_from_slice(KDF_LABEL);
    salt.extend_from_slice(client_salt);
    salt.extend_from_slice(server_salt);
    let hk = Hkdf::<Sha256>::new(Some(&salt), psk);
    let mut c2s = [0u8; 32];
    let mut s2c = [0u8; 32];
    // 32 bytes is far below HKDF-SHA256's 8160-byte output limit, so expand cannot fail.
    hk.expand(b"c2s", &mut c2s)
        .expect("32-byte HKDF-SHA256 output is valid");
    hk.expand(b"s2c", &mut s2c)
        .expect("32-byte HKDF-SHA256 output is valid");
    (c2s, s2c)
}

fn nonce(counter: u64) -> [u8; 12] {
    let mut n = [0u8; 12];
    n[4..].copy_from_slice(&counter.to_be_bytes());
    n
}

/// Seals the frames of one direction.
pub struct Sealer {
    cipher: Aes256Gcm,
    counter: u64,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sealer")
            .field("counter", &self.counter)
            .finish_non_exhaustive()
    }
}

impl Sealer {
    pub fn new(key: [u8; 32]) -> Sealer {
        Sealer {
            cipher: Aes256Gcm::new(&key.into()),
            counter: 0,
        }
    }

    /// Frames sealed so far (the next nonce counter).
    pub fn counter(&self) -> u64 {
        self.counter
    }

    /// Encrypts `buf` in place and returns the tag; uses and advances the counter.
    pub fn seal_detached(&mut self, aad: &[u8], buf: &mut [u8]) -> Result<[u8; 16], WireError> {
        // Never reuse a nonce, however unreachable 2^64 frames are.
        let next = self
            .counter
            .checked_add(1)
            .ok_or_else(|| WireError::Protocol("nonce counter exhausted".into()))?;
        let tag = self
            .cipher
            .encrypt_in_place_detached(&Nonce::from(nonce(self.counter)), aad, buf)
            .map_err(|_| WireError::Protocol("plaintext too long to seal".into()))?;
        self.counter = next;
        Ok(tag.into())
    }

    /// Returns ciphertext followed by the 16-byte tag.
    pub fn seal(&mut self, aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, WireError> {
        let mut out = Vec::with_capacity(plaintext.len() + TAG_LEN);
        out.extend_from_slice(plaintext);
        let tag = self.seal_detached(aad, &mut out)?;
        out.extend_from_slice(&tag);
        Ok(out)
    }

    /// Seals a frame assembled as `[4 placeholder bytes][plaintext]` in `buf`: fills in the
    /// length prefix, encrypts in place and appends the tag, leaving the full wire bytes.
    pub(crate) fn seal_frame_in_place(&mut self, buf: &mut Vec<u8>) -> Result<(), WireError> {
        let sealed_len = buf.len() - 4 + TAG_LEN;
        if sealed_len > MAX_SEALED {
            return Err(WireError::FrameTooLarge(sealed_len));
        }
        let prefix = (sealed_len as u32).to_be_bytes();
        buf[..4].copy_from_slice(&prefix);
        let tag = self.seal_detached(&prefix, &mut buf[4..])?;
        buf.extend_from_slice(&tag);
        Ok(())
    }
}

/// Opens the frames of one direction.
pub struct Opener {
    cipher: Aes256Gcm,
    counter: u64,
}

impl std::fmt::Debug for Opener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Opener")
            .field("counter", &self.counter)
            .finish_non_exhaustive()
    }
}

impl Opener {
    pub fn new(key: [u8; 32]) -> Opener {
        Opener {
            cipher: Aes256Gcm::new(&key.into()),
            counter: 0,
        }
    }

    /// Frames opened so far (the next nonce counter).
    pub fn counter(&self) -> u64 {
        self.counter
    }

    /// Decrypts `ciphertext || tag` held in `buf` in place, leaving the plaintext.
    /// The counter advances only on success; any failure is [`WireError::Auth`].
    pub fn open_in_place(&mut self, aad: &[u8], buf: &mut Vec<u8>) -> Result<(), WireError> {
        let Some(ct_len) = buf.len().checked_sub(TAG_LEN) else {
            return Err(WireError::Auth);
        };
        let next = self.counter.checked_add(1).ok_or(WireError::Auth)?;
        let (ct, tag) = buf.split_at_mut(ct_len);
        self.cipher
            .decrypt_in_place_detached(
                &Nonce::from(nonce(self.counter)),
                aad,
                ct,
                Tag::from_slice(tag),
            )
            .map_err(|_| WireError::Auth)?;
        buf.truncate(ct_len);
        self.counter = next;
        Ok(())
    }

    /// Returns the plaintext of `ciphertext || tag`.
    pub fn open(&mut self, aad: &[u8], sealed: &[u8]) -> Result<Vec<u8>, WireError> {
        let mut buf = sealed.to_vec();
        self.open_in_place(aad, &mut buf)?;
        Ok(buf)
    }
}

/// Full wire bytes of one sealed frame: `u32 BE len` + ciphertext + tag, the prefix being
/// the AAD. Lets tests and tools write arbitrary (tampered, replayed) frames by hand.
pub fn seal_frame(sealer: &mut Sealer, plaintext: &[u8]) -> Result<Vec<u8>, WireError> {
    let mut buf = Vec::with_capacity(4 + plaintext.len() + TAG_LEN);
    buf.extend_from_slice(&[0; 4]);
    buf.extend_from_slice(plaintext);
    sealer.seal_frame_in_place(&mut buf)?;
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair() -> (Sealer, Opener) {
        let (c2s, _) = derive_keys(b"k", &[1; 32], &[2; 32]);
        (Sealer::new(c2s), Opener::new(c2s))
    }

    #[test]
    fn directions_and_salts_give_distinct_keys() {
        let (a, b) = derive_keys(b"key", &[1; 32], &[2; 32]);
        assert_ne!(a, b);
        let (c, _) = derive_keys(b"key", &[1; 32], &[3; 32]);
        assert_ne!(a, c);
        let (d, _) = derive_keys(b"other", &[1; 32], &[2; 32]);
        assert_ne!(a, d);
        assert_eq!(derive_keys(b"key", &[1; 32], &[2; 32]), (a, b));
    }

    #[test]
    fn seal_open_roundtrip_in_order() {
        let (mut s, mut o) = pair();
        for i in 0..5u8 {
            let sealed = s.seal(b"aad!", &[i; 10]).unwrap();
            assert_eq!(sealed.len(), 10 + TAG_LEN);
            assert_eq!(o.open(b"aad!", &sealed).unwrap(), vec![i; 10]);
        }
        assert_eq!(s.counter(), 5);
        assert_eq!(o.counter(), 5);
    }

    #[test]
    fn replay_and_reorder_fail() {
        let (mut s, mut o) = pair();
        let f0 = s.seal(b"", b"zero").unwrap();
        let f1 = s.seal(b"", b"one").unwrap();
        // Reordered: frame 1 opened with counter 0.
        assert!(matches!(o.open(b"", &f1), Err(WireError::Auth)));
        assert_eq!(o.open(b"", &f0).unwrap(), b"zero");
        // Replayed: frame 0 opened with counter 1.
        assert!(matches!(o.open(b"", &f0), Err(WireError::Auth)));
        assert_eq!(o.open(b"", &f1).unwrap(), b"one");
    }

    #[test]
    fn aad_and_short_input_fail() {
        let (mut s, mut o) = pair();
        let f = s.seal(b"abcd", b"x").unwrap();
        assert!(matches!(o.open(b"abce", &f), Err(WireError::Auth)));
        assert!(matches!(o.open(b"abcd", &f[..5]), Err(WireError::Auth)));
        assert_eq!(o.open(b"abcd", &f).unwrap(), b"x");
    }

    proptest::proptest! {
        #[test]
        fn roundtrip_and_any_bit_flip_fails(
            aad in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..8),
            pt in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300),
            flip in proptest::prelude::any::<proptest::sample::Index>(),
        ) {
            let (mut s, _) = pair();
            let sealed = s.seal(&aad, &pt).unwrap();
            proptest::prop_assert_eq!(pair().1.open(&aad, &sealed).unwrap(), pt);
            // Flip one bit of the AAD or of ciphertext+tag.
            let bits = (aad.len() + sealed.len()) * 8;
            let bit = flip.index(bits);
            let (mut aad2, mut sealed2) = (aad.clone(), sealed.clone());
            if bit < aad.len() * 8 {
                aad2[bit / 8] ^= 1 << (bit % 8);
            } else {
                let b = bit - aad.len() * 8;
                sealed2[b / 8] ^= 1 << (b % 8);
            }
            proptest::prop_assert!(matches!(pair().1.open(&aad2, &sealed2), Err(WireError::Auth)));
        }
    }

    #[test]
    fn seal_frame_has_length_prefix_as_aad() {
        let (mut s, mut o) = pair();
        let bytes = seal_frame(&mut s, b"hello").unwrap();
        let len = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) as usize;
        assert_eq!(len, 5 + TAG_LEN);
        assert_eq!(bytes.len(), 4 + len);
        assert_eq!(o.open(&bytes[..4], &bytes[4..]).unwrap(), b"hello");
    }
}
