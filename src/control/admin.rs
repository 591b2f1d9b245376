//! The admin API: list, show and remove clients.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use hashbrown::HashMap;
use serde::Serialize;

use super::auth::{Refusal, require_token};
use super::{ControlState, Serving};
use crate::engine::ClientStatus;
use crate::event_json::JsonEventType;
use crate::registry::{ClientId, ClientRecord};

/// A client as the admin API shows it.
#[derive(Debug, Serialize)]
struct ClientView {
    address: String,
    event_types: Vec<JsonEventType>,
    queued: usize,
    registered_at: String,
    registered_at_ms: u64,
    last_delivery: Option<String>,
}

fn view(record: &ClientRecord, status: Option<&ClientStatus>) -> ClientView {
    ClientView {
        address: record.id.to_string(),
        event_types: record.types.iter().map(JsonEventType::from).collect(),
        queued: status.map_or(0, |s| s.queued),
        registered_at: rfc3339(record.registered_at_ms),
        registered_at_ms: record.registered_at_ms,
        last_delivery: status.and_then(|s| s.last_delivery.clone()),
    }
}

/// `GET /v1/clients`.
pub(super) async fn list(State(state): State<ControlState>) -> Response {
    let Some(serving) = state.serving() else {
        return not_active();
    };
    let records = serving.registry.clients().await;
    let statuses: HashMap<ClientId, ClientStatus> = serving
        .cores
        .snapshot()
        .await
        .into_iter()
        .map(|s| (s.id, s))
        .collect();
    let mut views: Vec<ClientView> = records
        .iter()
        .map(|r| view(r, statuses.get(&r.id)))
        .collect();
    views.sort_by(|a, b| a.address.cmp(&b.address));
    axum::Json(views).into_response()
}

/// `GET /v1/clients/{ip}:{port}`.
pub(super) async fn show(
    State(state): State<ControlState>,
    Path(client): Path<String>,
) -> Response {
    let (serving, id) = match client_call(&state, None, &client) {
        Ok(found) => found,
        Err(refusal) => return refusal.into_response(),
    };
    let Some(record) = serving
        .registry
        .clients()
        .await
        .into_iter()
        .find(|r| r.id == id)
    else {
        return unknown(&client);
    };
    let status = serving
        .cores
        .snapshot()
        .await
        .into_iter()
        .find(|s| s.id == id);
    axum::Json(view(&record, status.as_ref())).into_response()
}

/// `DELETE /v1/clients/{ip}:{port}`: removes the client as REMOVE_CLIENT would.
pub(super) async fn delete(
    State(state): State<ControlState>,
    headers: HeaderMap,
    Path(client): Path<String>,
) -> Response {
    let (serving, id) = match client_call(&state, Some(&headers), &client) {
        Ok(found) => found,
        Err(refusal) => return refusal.into_response(),
    };
    if serving.registry.delete_client(id).await {
        (StatusCode::NO_CONTENT, "").into_response()
    } else {
        unknown(&client)
    }
}

/// Why a call about one client was turned away before it reached the registry.
pub(super) enum ClientCallRefusal {
    /// The token rule (a call that changes state).
    Token(Refusal),
    /// A standby or a stopping instance.
    NotActive,
    /// Not an `IP:PORT`.
    BadAddress((StatusCode, String)),
}

impl IntoResponse for ClientCallRefusal {
    fn into_response(self) -> Response {
        match self {
            ClientCallRefusal::Token(refusal) => refusal.into_response(),
            ClientCallRefusal::NotActive => not_active(),
            ClientCallRefusal::BadAddress(refusal) => refusal.into_response(),
        }
    }
}

/// The checks every call about one client makes, in order: the token (for a call that changes
/// state, given its `headers`), an active instance, a well-formed `IP:PORT`.
pub(super) fn client_call<'a>(
    state: &'a ControlState,
    headers: Option<&HeaderMap>,
    client: &str,
) -> Result<(&'a Serving, ClientId), ClientCallRefusal> {
    if let Some(headers) = headers {
        require_token(state, headers).map_err(ClientCallRefusal::Token)?;
    }
    let serving = state.serving().ok_or(ClientCallRefusal::NotActive)?;
    let id = parse_id(client).map_err(ClientCallRefusal::BadAddress)?;
    Ok((serving, id))
}

fn parse_id(text: &str) -> Result<ClientId, (StatusCode, String)> {
    text.parse().map_err(|_| {
        (
            StatusCode::BAD_REQUEST,
            format!("{text:?} is not a client address: expected IP:PORT (IPv6 as [IP]:PORT)\n"),
        )
    })
}

pub(super) fn unknown(client: &str) -> Response {
    (
        StatusCode::NOT_FOUND,
        format!("no client {client} is registered\n"),
    )
        .into_response()
}

pub(super) fn not_active() -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        "not active (standby or stopping)\n",
    )
        .into_response()
}

/// Formats milliseconds since the epoch as RFC 3339 UTC, e.g. `2026-11-21T23:50:16.123Z`.
fn rfc3339(ms: u64) -> String {
    let secs = ms / 1000;
    let days = secs / 86_400;
    let (hour, minute, second) = ((secs / 3600) % 24, (secs / 60) % 60, secs % 60);
    let (year, month, day) = civil_from_days(days as i64);
    format!(
        "{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}.{:03}Z",
        ms % 1000
    )
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::rfc3339;

    #[test]
    fn timestamps_are_rfc3339_utc() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(1_795_305_016_123), "2026-11-21T23:50:16.123Z");
        assert_eq!(rfc3339(951_782_400_000), "2000-02-29T00:00:00.000Z");
    }
}
