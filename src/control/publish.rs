//! `POST /v1/events`: one SC_EVENT XML document, or JSON (one event or a batch).

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::ControlState;
use super::auth::require_token;
use crate::event_json::JsonBody;
use crate::protocol::{Event, Limits, is_representable};

#[derive(Serialize)]
struct Accepted {
    sequences: Vec<u64>,
}

/// Accepts events; answers 202 with their sequence numbers once they are durable.
pub(super) async fn publish(
    State(state): State<ControlState>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    if let Err(refusal) = require_token(&state, &headers) {
        return refusal.into_response();
    }
    let max_bytes = state.inner.max_body_bytes;
    let body = match tokio::time::timeout(
        state.inner.body_timeout,
        axum::body::to_bytes(body, max_bytes),
    )
    .await
    {
        Ok(Ok(body)) => body,
        Ok(Err(_)) => {
            return (
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("the body is larger than {max_bytes} bytes or was cut off\n"),
            )
                .into_response();
        }
        Err(_elapsed) => {
            let seconds = state.inner.body_timeout.as_secs_f64();
            return (
                StatusCode::REQUEST_TIMEOUT,
                format!("the body did not arrive within {seconds} s\n"),
            )
                .into_response();
        }
    };
    let Some(serving) = state.serving() else {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "not active (standby or stopping)\n",
        )
            .into_response();
    };
    let events = match parse_body(&headers, &body, max_bytes) {
        Ok(events) => events,
        Err(reason) => return (StatusCode::BAD_REQUEST, format!("{reason}\n")).into_response(),
    };
    match serving.registry.publish(events).await {
        Ok(sequences) => (StatusCode::ACCEPTED, axum::Json(Accepted { sequences })).into_response(),
        Err(error) => (StatusCode::SERVICE_UNAVAILABLE, format!("{error}\n")).into_response(),
    }
}

fn parse_body(headers: &HeaderMap, body: &[u8], max_bytes: usize) -> Result<Vec<Event>, String> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let is_json = content_type.contains("json")
        || (!content_type.contains("xml")
            && body
                .iter()
                .find(|b| !b.is_ascii_whitespace())
                .is_some_and(|b| matches!(b, b'{' | b'[')));
    let events = if is_json {
        serde_json::from_slice::<JsonBody>(body)
            .map_err(|e| format!("bad JSON event: {e}"))?
            .into_events()
    } else {
        let limits = Limits {
            max_message_bytes: max_bytes,
            ..Limits::default()
        };
        vec![Event::parse(body, &limits).map_err(|e| format!("bad SC_EVENT document: {e}"))?]
    };
    if events.is_empty() {
        return Err("no events in the request".into());
    }
    for (index, event) in events.iter().enumerate() {
        check_event(event).map_err(|reason| format!("event {index}: {reason}"))?;
    }
    Ok(events)
}

/// What the wire format needs of an event that JSON does not enforce.
fn check_event(event: &Event) -> Result<(), String> {
    let attributes = [
        ("class", &event.class),
        ("subclass", &event.subclass),
        ("vendor", &event.vendor),
        ("publisher", &event.publisher),
    ];
    for (name, value) in attributes {
        if value.is_empty() {
            return Err(format!("{name} must not be empty"));
        }
        check_text(name, value)?;
    }
    for pair in &event.nvpairs {
        if pair.name.is_empty() || pair.values.is_empty() {
            return Err("every nvpair needs a non-empty name and at least one value".into());
        }
        check_text("nvpair name", &pair.name)?;
        for value in &pair.values {
            check_text("nvpair value", value)?;
        }
    }
    Ok(())
}

/// Refuses exactly what the wire format cannot carry, so that what a subscriber receives is
/// what was acknowledged: the characters XML 1.0 has no place for (C0 controls other than
/// tab, LF and CR; U+FFFE; U+FFFF). Everything else, U+0085 and the other C1 controls
/// included, is delivered unchanged.
fn check_text(what: &str, text: &str) -> Result<(), String> {
    if is_representable(text) {
        return Ok(());
    }
    let refused = text
        .chars()
        .find(|c| !is_representable(c.encode_utf8(&mut [0; 4])))
        .map_or(0, u32::from);
    Err(format!(
        "{what} contains U+{refused:04X}, which an XML 1.0 document cannot carry"
    ))
}
