//! The control plane on a plain tokio thread: publish API, admin API, health, `/metrics`.

mod admin;
mod auth;
mod health;
mod log;
mod publish;
pub mod serve;
pub mod tls;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use axum::Router;
use axum::routing::{get, post};
use metrics_exporter_prometheus::PrometheusHandle;

use crate::engine::CoreProbe;
use crate::registry::service::RegistryHandle;
use crate::telemetry;

/// What the handlers share.
#[derive(Debug, Clone)]
pub struct ControlState {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    serving: OnceLock<Serving>,
    active: AtomicBool,
    prometheus: PrometheusHandle,
    admin_token: Option<String>,
    max_body_bytes: usize,
    body_timeout: std::time::Duration,
}

/// The parts that exist once this instance is active.
#[derive(Debug)]
struct Serving {
    registry: RegistryHandle,
    cores: CoreProbe,
}

impl ControlState {
    /// A control plane that answers health and metrics now, and the rest once [`Self::activate`] is called.
    pub fn new(
        prometheus: PrometheusHandle,
        admin_token: Option<String>,
        max_body_bytes: usize,
        body_timeout: std::time::Duration,
    ) -> Self {
        ControlState {
            inner: Arc::new(Inner {
                serving: OnceLock::new(),
                active: AtomicBool::new(false),
                prometheus,
                admin_token,
                max_body_bytes,
                body_timeout,
            }),
        }
    }

    /// Marks this instance active: it holds the store and accepts registrations.
    pub fn activate(&self, registry: RegistryHandle, cores: CoreProbe) {
        let _ = self.inner.serving.set(Serving { registry, cores });
        self.inner.active.store(true, Ordering::Release);
        telemetry::set_active(true);
    }

    /// Stops answering as active (shutdown has begun).
    pub fn deactivate(&self) {
        self.inner.active.store(false, Ordering::Release);
        telemetry::set_active(false);
    }

    fn serving(&self) -> Option<&Serving> {
        self.inner
            .active
            .load(Ordering::Acquire)
            .then(|| self.inner.serving.get())
            .flatten()
    }
}

/// The HTTP routes.
pub fn router(state: ControlState) -> Router {
    let body_limit = axum::extract::DefaultBodyLimit::max(state.inner.max_body_bytes);
    Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(health::metrics))
        .route("/v1/events", post(publish::publish).get(log::page))
        .route("/v1/clients", get(admin::list))
        .route(
            "/v1/clients/{client}",
            get(admin::show).delete(admin::delete),
        )
        .route("/v1/clients/{client}/replay", post(log::replay))
        .layer(body_limit)
        .with_state(state)
}
