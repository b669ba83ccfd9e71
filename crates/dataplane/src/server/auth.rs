//! HTTP basic auth against the users of `dataplaneapi.yml`.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;

use super::{ApiError, ApiState};
use crate::crypt::check_password;
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

/// Whether the credentials match a user. Hash verification (thousands of
/// rounds on a cache miss) runs off the async workers.
pub(crate) async fn authorized(users: &[User], name: String, pass: String) -> bool {
    let Some(user) = users.iter().find(|u| u.name == name) else {
        return false;
    };
    match &user.password {
        Password::Plain(_) => check_password(user, &pass),
        Password::Hashed(_) => {
            let user = user.clone();
            tokio::task::spawn_blocking(move || check_password(&user, &pass))
                .await
                .unwrap_or(false)
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
