//! Liveness, readiness and the Prometheus scrape.

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;

use super::ControlState;
use crate::telemetry;

/// Liveness: 200 whenever the control plane answers, as the active instance or as a standby
/// (a waiting standby is healthy; restarting it would gain nothing). The body says which.
pub(super) async fn healthz(State(state): State<ControlState>) -> impl IntoResponse {
    let (_, role) = readiness(&state);
    (StatusCode::OK, role)
}

/// Readiness: 200 only on the active instance (the one holding the store), 503 otherwise.
pub(super) async fn readyz(State(state): State<ControlState>) -> impl IntoResponse {
    readiness(&state)
}

fn readiness(state: &ControlState) -> (StatusCode, &'static str) {
    if state.serving().is_some() {
        (StatusCode::OK, "active\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "standby or stopping\n")
    }
}

/// The Prometheus text exposition; gauges that are cheaper to sample than to track are set first.
pub(super) async fn metrics(State(state): State<ControlState>) -> impl IntoResponse {
    telemetry::sample_process();
    if let Some(serving) = state.serving() {
        telemetry::sample_queues(&serving.cores.inbox_depths(), serving.registry.queued());
    }
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.inner.prometheus.render(),
    )
}
