//! Password checks: plain passwords in constant time, crypt(3) hashes with
//! the real algorithms, behind a small cache of successful verifications.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use sha2::{Digest, Sha256};
use sha_crypt::{PasswordVerifier, ShaCrypt};

use crate::model::{Password, User};

const CRYPT_ALPHABET: &str = "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

fn crypt_chars(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| CRYPT_ALPHABET.contains(c))
}

/// Whether `hash` has the shape of a SHA-crypt (`$5$`, `$6$`) or bcrypt
/// (`$2a$`, `$2b$`, `$2y$`) hash, the schemes dataplaneapi accepts.
pub(crate) fn looks_like_crypt(hash: &str) -> bool {
    let parts: Vec<&str> = hash.split('$').collect();
    match parts.as_slice() {
        ["", id @ ("5" | "6"), rest @ ..] => {
            let digest_len = if *id == "5" { 43 } else { 86 };
            let rest = match rest {
                [rounds, r @ ..] if rounds.starts_with("rounds=") => {
                    // crypt(3) writes the rounds it used, always in this range.
                    let ok = rounds["rounds=".len()..]
                        .parse::<u32>()
                        .is_ok_and(|n| (1_000..=999_999_999).contains(&n));
                    if !ok {
                        return false;
                    }
                    r
                }
                r => r,
            };
            matches!(rest, [salt, digest]
                if salt.len() <= 16 && (salt.is_empty() || crypt_chars(salt))
                    && digest.len() == digest_len && crypt_chars(digest))
        }
        ["", "2a" | "2b" | "2y", cost, rest] => {
            cost.len() == 2
                && cost.parse::<u8>().is_ok_and(|c| (4..=31).contains(&c))
                && rest.len() == 53
                && crypt_chars(rest)
        }
        _ => false,
    }
}

/// Whether `hash` is an MD5-crypt (`$1$`) hash, which no maintained crate
/// verifies: refused at load with its own message.
pub(crate) fn is_md5_crypt(hash: &str) -> bool {
    hash.starts_with("$1$")
}

/// Checks `given` against the user's password: a plain (`insecure: true`)
/// one in constant time, a crypt hash with its algorithm.
///
/// Hash verification is slow by design (thousands of rounds) and every API
/// call carries the credentials, so successes are remembered (see
/// [`VerifiedCache`]). Call it off the async executor for hashed users.
pub fn check_password(user: &User, given: &str) -> bool {
    match &user.password {
        Password::Plain(stored) => constant_time_eq(stored.as_bytes(), given.as_bytes()),
        Password::Hashed(hash) => {
            let key = cache_key(&user.name, hash, given);
            let cache = verified_cache();
            if cache.contains(&key) {
                return true;
            }
            let ok = verify_hash(hash, given);
            if ok {
                cache.insert(key);
            }
            ok
        }
    }
}

/// Whether `given` verified for `user`'s hash before (no hashing work).
pub(crate) fn verified_before(user: &User, given: &str) -> bool {
    match &user.password {
        Password::Plain(_) => false,
        Password::Hashed(hash) => verified_cache().contains(&cache_key(&user.name, hash, given)),
    }
}

/// Verifies `given` against a crypt(3) hash; unknown or malformed hashes
/// never match.
pub(crate) fn verify_hash(hash: &str, given: &str) -> bool {
    if hash.starts_with("$5$") || hash.starts_with("$6$") {
        ShaCrypt::default()
            .verify_password(given.as_bytes(), hash)
            .is_ok()
    } else if ["$2a$", "$2b$", "$2y$"].iter().any(|p| hash.starts_with(p)) {
        // bcrypt only reads the first 72 bytes, as crypt(3) does.
        bcrypt::verify(given.as_bytes(), hash).unwrap_or(false)
    } else {
        false
    }
}

/// SHA-256 over length-prefixed fields, so the cache never holds a password
/// and ("ab","c") cannot collide with ("a","bc").
fn cache_key(user: &str, hash: &str, given: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    for part in [user, hash, given] {
        h.update((part.len() as u64).to_le_bytes());
        h.update(part.as_bytes());
    }
    h.finalize().into()
}

/// How many successful verifications are remembered; a handful of API users
/// with a few passwords each fit easily.
const CACHE_CAPACITY: usize = 256;

fn verified_cache() -> &'static VerifiedCache {
    static CACHE: OnceLock<VerifiedCache> = OnceLock::new();
    CACHE.get_or_init(|| VerifiedCache::new(CACHE_CAPACITY))
}

/// Bounded set of digests of (user, hash, password) that verified; when
/// full, the entry verified longest ago goes.
pub(crate) struct VerifiedCache {
    capacity: usize,
    inner: Mutex<CacheInner>,
}

#[derive(Default)]
struct CacheInner {
    /// Digest → insertion sequence number.
    entries: HashMap<[u8; 32], u64>,
    next: u64,
}

impl VerifiedCache {
    pub(crate) fn new(capacity: usize) -> Self {
        VerifiedCache {
            capacity: capacity.max(1),
            inner: Mutex::new(CacheInner::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, CacheInner> {
        // The map stays consistent even if a holder panicked.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(crate) fn contains(&self, key: &[u8; 32]) -> bool {
        self.lock().entries.contains_key(key)
    }

    pub(crate) fn insert(&self, key: [u8; 32]) {
        let mut inner = self.lock();
        if !inner.entries.contains_key(&key) && inner.entries.len() >= self.capacity {
            // A linear scan is fine at this size and runs only on a miss
            // that verified.
            if let Some(oldest) = inner
                .entries
                .iter()
                .min_by_key(|(_, seq)| **seq)
                .map(|(k, _)| *k)
            {
                inner.entries.remove(&oldest);
            }
        }
        let seq = inner.next;
        inner.next += 1;
        inner.entries.insert(key, seq);
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().entries.len()
    }
}

/// Compares every byte position up to the longer input so the time taken
/// does not reveal where the first difference is.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = u8::from(a.len() != b.len());
    for i in 0..a.len().max(b.len()) {
        let x = a.get(i).copied().unwrap_or(0);
        let y = b.get(i).copied().unwrap_or(0);
        diff |= x ^ y;
    }
    std::hint::black_box(diff) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha_crypt::{Algorithm, Params, PasswordHasher};

    // Computed on a Debian machine: `openssl passwd -5/-6 -salt saltstring
    // 'Hello world!'` (also the SHA-crypt specification's examples), the
    // rounds and bcrypt ones with glibc/libxcrypt's crypt(3) through
    // `perl -e 'print crypt(PASSWORD, SETTING)'`.
    const SHA256_HELLO: &str = "$5$saltstring$5B8vYYiY.CVt1RlTTf8KbXBH3hsxY/GNooZaBBGWEc5";
    const SHA512_HELLO: &str = "$6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz1";
    const SHA512_ROUNDS_HELLO: &str = "$6$rounds=10000$saltstringsaltst$OW1/O6BYHV6BcXZu8QVeXbDWra3Oeqh0sbHbbMCVNSnCM/UrjmM0Dp8vOuZeHBy/YTBmSK6H9qs/y3RnOaw5v.";
    const BCRYPT_2B_S3CRET: &str = "$2b$10$abcdefghijklmnopqrstuu3KWNuWLhBnmgYfnzONPueahDuedC/lu";
    const BCRYPT_2Y_S3CRET: &str = "$2y$04$abcdefghijklmnopqrstuuLZYjhNQAOdpbzt4WxWlUHjv1wsyH5DG";

    fn hashed(name: &str, hash: &str) -> User {
        User {
            name: name.into(),
            password: Password::Hashed(hash.into()),
        }
    }

    #[test]
    fn crypt_shapes() {
        let sha512 = format!("$6$saltsalt${}", "a".repeat(86));
        let sha256 = format!("$5$rounds=5000$salt${}", "B".repeat(43));
        let bcrypt = format!("$2y$10${}", "c".repeat(53));
        for ok in [
            sha512.as_str(),
            sha256.as_str(),
            bcrypt.as_str(),
            SHA256_HELLO,
            SHA512_HELLO,
            SHA512_ROUNDS_HELLO,
            BCRYPT_2B_S3CRET,
            BCRYPT_2Y_S3CRET,
        ] {
            assert!(looks_like_crypt(ok), "{ok}");
        }
        let low_rounds = format!("$5$rounds=999$salt${}", "B".repeat(43));
        for bad in [
            "secret",
            "$6$salt$short",
            "$1$abc$def",
            "$2y$99$x",
            "",
            &low_rounds,
        ] {
            assert!(!looks_like_crypt(bad), "{bad}");
        }
        assert!(is_md5_crypt("$1$rampart$LPVILzHSLgENl57GMulCD0"));
        assert!(!is_md5_crypt(SHA512_HELLO));
    }

    #[test]
    fn plain_compare() {
        let u = User {
            name: "u".into(),
            password: Password::Plain("s3cret".into()),
        };
        assert!(check_password(&u, "s3cret"));
        assert!(!check_password(&u, "s3cre"));
        assert!(!check_password(&u, "s3cret!"));
        assert!(!check_password(&u, "S3cret"));
        // A hash-shaped string that no password produces.
        let h = hashed("u", &format!("$6$s${}", "a".repeat(86)));
        assert!(!check_password(&h, "anything"));
    }

    #[test]
    fn published_sha_crypt_vectors() {
        for hash in [SHA256_HELLO, SHA512_HELLO, SHA512_ROUNDS_HELLO] {
            assert!(verify_hash(hash, "Hello world!"), "{hash}");
            assert!(!verify_hash(hash, "Hello world"), "{hash}");
        }
    }

    #[test]
    fn published_bcrypt_vectors() {
        for hash in [BCRYPT_2B_S3CRET, BCRYPT_2Y_S3CRET] {
            assert!(verify_hash(hash, "s3cret"), "{hash}");
            assert!(!verify_hash(hash, "s3cret "), "{hash}");
        }
        // $2a$ and $2b$ only differ for passwords past 255 bytes.
        let as_2a = BCRYPT_2B_S3CRET.replacen("$2b$", "$2a$", 1);
        assert!(verify_hash(&as_2a, "s3cret"));
    }

    #[test]
    fn generated_hashes_round_trip() {
        let params = Params::new(Params::ROUNDS_MIN).unwrap();
        for alg in [Algorithm::Sha256Crypt, Algorithm::Sha512Crypt] {
            let hash = ShaCrypt::new(alg, params)
                .hash_password_with_salt(b"pa:ss w0rd", b"0123456789ab")
                .unwrap()
                .to_string();
            assert!(looks_like_crypt(&hash), "{hash}");
            let u = hashed("gen", &hash);
            assert!(check_password(&u, "pa:ss w0rd"), "{hash}");
            assert!(!check_password(&u, "pa:ss w0rd!"), "{hash}");
        }
        let hash = bcrypt::hash("pa:ss w0rd", 4).unwrap();
        assert!(looks_like_crypt(&hash), "{hash}");
        let u = hashed("gen", &hash);
        assert!(check_password(&u, "pa:ss w0rd"));
        assert!(!check_password(&u, "pa:ss w0rD"));
    }

    #[test]
    fn unknown_or_broken_hashes_never_match() {
        assert!(!verify_hash("$1$rampart$LPVILzHSLgENl57GMulCD0", "s3cret"));
        assert!(!verify_hash("$6$", ""));
        assert!(!verify_hash("$2b$10$short", "s3cret"));
        assert!(!verify_hash("", ""));
    }

    #[test]
    fn cache_remembers_only_successes_by_digest() {
        let u = hashed("cached", SHA512_HELLO);
        let good = cache_key("cached", SHA512_HELLO, "Hello world!");
        let bad = cache_key("cached", SHA512_HELLO, "nope");
        assert!(!check_password(&u, "nope"));
        assert!(!verified_cache().contains(&bad));
        assert!(check_password(&u, "Hello world!"));
        assert!(verified_cache().contains(&good));
        // Same password, other user or other hash: a different entry.
        assert_ne!(good, cache_key("other", SHA512_HELLO, "Hello world!"));
        assert_ne!(good, cache_key("cached", SHA256_HELLO, "Hello world!"));
        // Field boundaries matter.
        assert_ne!(cache_key("ab", "c", "d"), cache_key("a", "bc", "d"));
    }

    #[test]
    fn md5_crypt_is_refused_at_load_naming_user_and_key() {
        let text = "dataplaneapi:\n   user:\n   - name: admin\n     password: \"$1$rampart$LPVILzHSLgENl57GMulCD0\"\n";
        let err = crate::parse_str(text, std::path::Path::new("dataplaneapi.yml")).unwrap_err();
        let shown = err.to_string();
        assert!(
            shown.starts_with("dataplaneapi.yml:4: dataplaneapi.user[0].password: user `admin`"),
            "{shown}"
        );
        assert!(
            shown.contains("$1$") && shown.contains("not supported"),
            "{shown}"
        );
    }

    #[test]
    fn cache_is_bounded_and_drops_the_oldest() {
        let cache = VerifiedCache::new(3);
        let keys: Vec<[u8; 32]> = (0..5)
            .map(|i| cache_key("u", "h", &i.to_string()))
            .collect();
        for k in &keys {
            cache.insert(*k);
        }
        assert_eq!(cache.len(), 3);
        assert!(!cache.contains(&keys[0]));
        assert!(!cache.contains(&keys[1]));
        assert!(keys[2..].iter().all(|k| cache.contains(k)));
        // Re-inserting a present key does not evict anything.
        cache.insert(keys[4]);
        assert_eq!(cache.len(), 3);
        assert!(cache.contains(&keys[2]));
    }
}
