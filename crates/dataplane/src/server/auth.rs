//! HTTP basic auth against the users of `dataplaneapi.yml`.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;

use super::{ApiError, ApiState};
use crate::crypt::check_password;
use crate::model::User;

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

/// Whether the credentials match a user; hashed passwords are refused until
/// crypt verification exists.
pub(crate) fn authorized(users: &[User], name: &str, pass: &str) -> bool {
    users
        .iter()
        .find(|u| u.name == name)
        .is_some_and(|u| check_password(u, pass))
}

pub(crate) async fn require_basic(
    State(state): State<Arc<ApiState>>,
    req: Request,
    next: Next,
) -> Response {
    match credentials(req.headers()) {
        Some((name, pass)) if authorized(&state.conf().users, &name, &pass) => next.run(req).await,
        _ => ApiError::Unauthorized(DENIED.to_string()).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Password;
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

    #[test]
    fn hashed_users_refused() {
        let users = vec![
            User {
                name: "plain".into(),
                password: Password::Plain("pw".into()),
            },
            User {
                name: "hashed".into(),
                password: Password::Hashed(format!("$6$s${}", "a".repeat(86))),
            },
        ];
        assert!(authorized(&users, "plain", "pw"));
        assert!(!authorized(&users, "plain", "PW"));
        assert!(!authorized(&users, "hashed", "pw"));
        assert!(!authorized(&users, "nobody", "pw"));
    }
}
