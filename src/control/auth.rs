//! The bearer-token rule for calls that change state.
//!
//! Reads (`GET`) are open. Calls that change state (`POST /v1/events`, `DELETE /v1/clients/..`,
//! `POST /v1/clients/../replay`)
//! need `Authorization: Bearer <token>` whenever a token is configured, and start-up refuses a
//! non-loopback `--http` without one ([`crate::server::run`]). A missing credential is 401 with
//! `WWW-Authenticate: Bearer` (RFC 6750), a wrong one 403.

use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::ControlState;

/// Why a call that changes state was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Refusal {
    /// No bearer token was given: 401 with a challenge.
    Missing,
    /// A token was given and it is not the configured one: 403.
    Wrong,
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        match self {
            Refusal::Missing => (
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, "Bearer realm=\"crnpd\"")],
                "this call needs 'Authorization: Bearer <admin token>'\n",
            )
                .into_response(),
            Refusal::Wrong => (StatusCode::FORBIDDEN, "wrong admin token\n").into_response(),
        }
    }
}

/// Refuses the call unless it carries the configured token (when one is configured).
pub(super) fn require_token(state: &ControlState, headers: &HeaderMap) -> Result<(), Refusal> {
    let Some(expected) = state.inner.admin_token.as_deref() else {
        return Ok(());
    };
    match bearer(headers) {
        Some(token) if constant_time_eq(token.as_bytes(), expected.as_bytes()) => Ok(()),
        Some(_) => Err(Refusal::Wrong),
        None => Err(Refusal::Missing),
    }
}

/// The token of an `Authorization: Bearer <token>` header; the scheme is case-insensitive.
fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|token| !token.is_empty())
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use axum::http::{HeaderMap, HeaderValue, header};

    use super::bearer;

    fn with(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_str(value).expect("header value"),
        );
        headers
    }

    #[test]
    fn the_scheme_is_case_insensitive_and_other_schemes_carry_no_token() {
        assert_eq!(bearer(&with("Bearer s3cret")), Some("s3cret"));
        assert_eq!(bearer(&with("bearer  s3cret ")), Some("s3cret"));
        assert_eq!(bearer(&with("Basic czNjcmV0")), None);
        assert_eq!(bearer(&with("Bearer ")), None);
        assert_eq!(bearer(&HeaderMap::new()), None);
    }
}
