//! HTTP basic auth against the users of `dataplaneapi.yml`.

use std::sync::{Arc, OnceLock};

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use tokio::sync::Semaphore;

use super::{ApiError, ApiState};
use crate::crypt::{check_password, verified_before, verify_hash};
use crate::model::{Password, User};

/// Same message for every failure so a client cannot probe user names.
const DENIED: &str = "unauthenticated for invalid credentials";

/// `(user, password)` from an `Authorization: Basic …` header.
pub(crate) fn credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let raw = base64::engine::general_purpose::STANDARD
        .decode(token.trim())
        .ok()?;
    let text = String::from_utf8(raw).ok()?;
    // Passwords may contain ':', user names may not (RFC 7617).
    let (user, pass) = text.split_once(':')?;
    Some((user.to_string(), pass.to_string()))
}

/// Bounds the hash verifications running at once: each costs thousands of
/// rounds, and failed ones (not cached) are free for a client to ask for.
fn hash_permits() -> Arc<Semaphore> {
    static PERMITS: OnceLock<Arc<Semaphore>> = OnceLock::new();
    Arc::clone(PERMITS.get_or_init(|| {
        let n = std::thread::available_parallelism().map_or(1, |n| n.get());
        Arc::new(Semaphore::new(n))
    }))
}

/// Runs `check` off the async workers, behind [`hash_permits`].
async fn bounded_hash_work(check: impl FnOnce() -> bool + Send + 'static) -> bool {
    let Ok(permit) = hash_permits().acquire_owned().await else {
        return false;
    };
    tokio::task::spawn_blocking(move || {
        let _permit = permit;
        check()
    })
    .await
    .unwrap_or(false)
}

/// Whether the credentials match a user. Hash verification (thousands of
/// rounds on a cache miss) runs off the async workers, a bounded number at
/// a time.
pub(crate) async fn authorized(users: &[User], name: String, pass: String) -> bool {
    let Some(user) = users.iter().find(|u| u.name == name) else {
        // An unknown name costs what a known one does, so timing does not
        // tell which names exist: verify against a configured hash of the
        // same kind and cost, and ignore the result.
        if let Some(hash) = users.iter().find_map(|u| match &u.password {
            Password::Hashed(h) => Some(h.clone()),
            Password::Plain(_) => None,
        }) {
            bounded_hash_work(move || {
                let _ = verify_hash(&hash, &pass);
                false
            })
            .await;
        }
        return false;
    };
    match &user.password {
        Password::Plain(_) => check_password(user, &pass),
        Password::Hashed(_) if verified_before(user, &pass) => true,
        Password::Hashed(_) => {
            let user = user.clone();
            bounded_hash_work(move || check_password(&user, &pass)).await
        }
    }
}

pub(crate) async fn require_basic(
    State(state): State<Arc<ApiState>>,
    req: Request,
    next: Next,
) -> Response {
    let ok = match credentials(req.headers()) {
        Some((name, pass)) => authorized(&state.conf().users, name, pass).await,
        None => false,
    };
    if ok {
        next.run(req).await
    } else {
        ApiError::Unauthorized(DENIED.to_string()).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, HeaderValue::from_str(v).unwrap());
        h
    }

    #[test]
    fn parses_basic() {
        // "admin:pa:ss"
        let h = headers("Basic YWRtaW46cGE6c3M=");
        assert_eq!(credentials(&h), Some(("admin".into(), "pa:ss".into())));
        assert_eq!(credentials(&headers("Bearer YWRtaW46cGE6c3M=")), None);
        assert_eq!(credentials(&headers("Basic !!!")), None);
        assert_eq!(credentials(&HeaderMap::new()), None);
    }

    #[tokio::test]
    async fn plain_and_hashed_users() {
        // `openssl passwd -6 -salt rampartSalt s3cret`
        let sha512 = "$6$rampartSalt$2BdmtiOrMWlUF2V2m6aA3HT3U09UGTq7YdBg4feSvqSfMU7hu.VQcnLRmMVfdJhip9I245Uv9tahv9Fj/oflb.";
        let users = vec![
            User {
                name: "plain".into(),
                password: Password::Plain("pw".into()),
            },
            User {
                name: "hashed".into(),
                password: Password::Hashed(sha512.into()),
            },
            User {
                name: "bogus".into(),
                password: Password::Hashed(format!("$6$s${}", "a".repeat(86))),
            },
        ];
        assert!(authorized(&users, "plain".into(), "pw".into()).await);
        assert!(!authorized(&users, "plain".into(), "PW".into()).await);
        assert!(authorized(&users, "hashed".into(), "s3cret".into()).await);
        assert!(!authorized(&users, "hashed".into(), "pw".into()).await);
        // The password of one user does not open another.
        assert!(!authorized(&users, "plain".into(), "s3cret".into()).await);
        assert!(!authorized(&users, "bogus".into(), "pw".into()).await);
        assert!(!authorized(&users, "nobody".into(), "pw".into()).await);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn hash_work_is_bounded() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let running = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        let jobs = (0..16).map(|_| {
            let (running, peak) = (Arc::clone(&running), Arc::clone(&peak));
            tokio::spawn(bounded_hash_work(move || {
                let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                peak.fetch_max(now, Ordering::SeqCst);
                std::thread::sleep(std::time::Duration::from_millis(5));
                running.fetch_sub(1, Ordering::SeqCst);
                true
            }))
        });
        for job in jobs.collect::<Vec<_>>() {
            assert!(job.await.unwrap());
        }
        let limit = std::thread::available_parallelism().map_or(1, |n| n.get());
        let peak = peak.load(Ordering::SeqCst);
        assert!(peak >= 1 && peak <= limit, "{peak} > {limit}");
    }

    #[tokio::test]
    async fn sha256_hashed_user() {
        let users = vec![User {
            name: "h".into(),
            password: Password::Hashed(
                "$5$rampartSalt$9kDWcF.ElJZz2r6UhJOXehO9p2I71IfsQSMSw8u8mR.".into(),
            ),
        }];
        assert!(authorized(&users, "h".into(), "s3cret".into()).await);
        assert!(!authorized(&users, "h".into(), "S3cret".into()).await);
        assert!(!authorized(&users, "x".into(), "s3cret".into()).await);
    }
}
