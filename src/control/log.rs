//! The event log over HTTP: `GET /v1/events` reads the retained log (audit, a client catching
//! up by hand); `POST /v1/clients/{ip}:{port}/replay` queues one client's events again.

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use super::ControlState;
use super::admin::{client_call, not_active, unknown};
use crate::registry::service::ReplayError;

/// Entries one page returns when the caller does not say.
const DEFAULT_PAGE: usize = 100;
/// Entries one page returns at most.
const MAX_PAGE: usize = 10_000;

/// The query of `GET /v1/events`.
#[derive(Debug, Deserialize)]
pub(super) struct PageQuery {
    after: Option<u64>,
    limit: Option<usize>,
}

/// The query of a replay.
#[derive(Debug, Deserialize)]
pub(super) struct ReplayQuery {
    after: Option<u64>,
}

#[derive(Serialize)]
struct PageView {
    /// The first retained sequence number (`null` when the log is empty).
    oldest: Option<u64>,
    /// The sequence number the next event will get.
    next_seq: u64,
    events: Vec<EntryView>,
}

#[derive(Serialize)]
struct EntryView {
    seq: u64,
    /// The SC_EVENT document exactly as subscribers receive it.
    sc_event: String,
}

#[derive(Serialize)]
struct Queued {
    queued: usize,
}

/// `GET /v1/events?after=SEQ&limit=N`: up to `limit` retained entries after `after`.
pub(super) async fn page(
    State(state): State<ControlState>,
    Query(query): Query<PageQuery>,
) -> Response {
    let Some(serving) = state.serving() else {
        return not_active();
    };
    let limit = query.limit.unwrap_or(DEFAULT_PAGE);
    if !(1..=MAX_PAGE).contains(&limit) {
        return (
            StatusCode::BAD_REQUEST,
            format!("limit must be 1 to {MAX_PAGE}\n"),
        )
            .into_response();
    }
    match serving.registry.log(query.after, limit).await {
        Ok(page) => axum::Json(PageView {
            oldest: page.oldest,
            next_seq: page.next_seq,
            events: page
                .entries
                .into_iter()
                .map(|entry| EntryView {
                    seq: entry.seq,
                    sc_event: String::from_utf8_lossy(&entry.bytes).into_owned(),
                })
                .collect(),
        })
        .into_response(),
        Err(error) => (StatusCode::SERVICE_UNAVAILABLE, format!("{error}\n")).into_response(),
    }
}

/// `POST /v1/clients/{ip}:{port}/replay?after=SEQ`: queues the client's retained events after
/// `after` (all retained without it) again, in order; 202 with how many.
pub(super) async fn replay(
    State(state): State<ControlState>,
    headers: HeaderMap,
    Path(client): Path<String>,
    Query(query): Query<ReplayQuery>,
) -> Response {
    let (serving, id) = match client_call(&state, Some(&headers), &client) {
        Ok(found) => found,
        Err(refusal) => return refusal.into_response(),
    };
    match serving.registry.replay(id, query.after).await {
        Ok(queued) => (StatusCode::ACCEPTED, axum::Json(Queued { queued })).into_response(),
        Err(ReplayError::NotRegistered) => unknown(&client),
        Err(error) => (StatusCode::SERVICE_UNAVAILABLE, format!("{error}\n")).into_response(),
    }
}
