//! Password checks that need no crypt implementation.

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
                    if rounds["rounds=".len()..].parse::<u32>().is_err() {
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

/// Checks `given` against a plain (`insecure: true`) password in constant
/// time with respect to the password's content.
///
/// Always `false` for hashed passwords: verifying crypt hashes belongs to the
/// Data Plane API server module, which pulls in the hashing code.
pub fn check_password(user: &User, given: &str) -> bool {
    match &user.password {
        Password::Plain(stored) => constant_time_eq(stored.as_bytes(), given.as_bytes()),
        Password::Hashed(_) => false,
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

    #[test]
    fn crypt_shapes() {
        let sha512 = format!("$6$saltsalt${}", "a".repeat(86));
        let sha256 = format!("$5$rounds=5000$salt${}", "B".repeat(43));
        let bcrypt = format!("$2y$10${}", "c".repeat(53));
        for ok in [&sha512, &sha256, &bcrypt] {
            assert!(looks_like_crypt(ok), "{ok}");
        }
        for bad in ["secret", "$6$salt$short", "$1$abc$def", "$2y$99$x", ""] {
            assert!(!looks_like_crypt(bad), "{bad}");
        }
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
        let h = User {
            name: "u".into(),
            password: Password::Hashed(format!("$6$s${}", "a".repeat(86))),
        };
        assert!(!check_password(&h, "anything"));
    }
}
