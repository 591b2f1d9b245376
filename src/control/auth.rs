//! The bearer-token rule for calls that change state.

use axum::http::{HeaderMap, StatusCode, header};

use super::ControlState;

/// Refuses the call unless it carries the configured token (when one is configured).
pub(super) fn require_token(
    state: &ControlState,
    headers: &HeaderMap,
) -> Result<(), (StatusCode, String)> {
    let Some(expected) = state.inner.admin_token.as_deref() else {
        return Ok(());
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "));
    match given {
        Some(token) if constant_time_eq(token.as_bytes(), expected.as_bytes()) => Ok(()),
        Some(_) => Err((StatusCode::FORBIDDEN, "wrong admin token\n".into())),
        None => Err((
            StatusCode::UNAUTHORIZED,
            "this call needs 'Authorization: Bearer <admin token>'\n".into(),
        )),
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
