//! Start-up and shutdown of a serving crnpd: the order in which the parts come up and go down.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::budget::{self, BudgetError, DescriptorBudget};
use crate::config::Config;
use crate::control::serve::HttpLimits;
use crate::control::tls::{Tls, TlsError};
use crate::control::{self, ControlState};
use crate::engine::{self, CoreChannels, Engine, EngineError};
use crate::registry::service::{self, ServiceError, ServiceLimits};
use crate::registry::{RegistryLimits, Store, StoreError};
use crate::telemetry;

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The registry store could not be opened.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The registry service could not start, or stopped because it can no longer serve.
    #[error(transparent)]
    Registry(#[from] ServiceError),
    /// A listener could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// A setting is unsafe in combination with another.
    #[error("{0}")]
    Unsafe(String),
    /// The data plane could not start (where deliveries leave from, or its threads).
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// The TLS certificate or key cannot be used.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// The descriptor limit is too small for the configured limits.
    #[error(transparent)]
    Descriptors(#[from] BudgetError),
    /// A thread or runtime could not be created, or metrics could not be installed.
    #[error("cannot start: {0}")]
    Runtime(String),
}

/// Installs the Prometheus recorder, describes every metric and creates the series known up
/// front; returns the handle `/metrics` renders.
pub fn install_metrics() -> Result<PrometheusHandle, StartError> {
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Full(telemetry::DELIVERY_LATENCY.into()),
            telemetry::LATENCY_BUCKETS,
        )
        .and_then(|b| {
            b.set_buckets_for_metric(
                Matcher::Full(telemetry::COMMIT_SECONDS.into()),
                telemetry::LATENCY_BUCKETS,
            )
        })
        .and_then(|b| {
            b.set_buckets_for_metric(
                Matcher::Full(telemetry::COMMIT_BATCH.into()),
                telemetry::BATCH_BUCKETS,
            )
        })
        .and_then(|b| b.install_recorder())
        .map_err(|e| StartError::Runtime(format!("metrics: {e}")))?;
    telemetry::describe();
    Ok(handle)
}

/// How often histogram samples are folded into their buckets between scrapes.
const METRICS_UPKEEP: Duration = Duration::from_secs(5);

/// Folds recorded histogram samples into their buckets now and then: `install_recorder` leaves
/// this to us, and without it every sample would be held in memory until the next scrape
/// (without bound when nobody scrapes). It also hands memory freed since the last round back
/// to the system: after a burst of connections glibc would otherwise keep those pages.
async fn metrics_upkeep(prometheus: PrometheusHandle) {
    let mut every = tokio::time::interval(METRICS_UPKEEP);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        prometheus.run_upkeep();
        // SAFETY: malloc_trim(3) only returns free heap pages to the kernel; 0 keeps no pad.
        unsafe { libc::malloc_trim(0) };
    }
}

/// Serves until SIGTERM or SIGINT, then stops cleanly.
pub fn run(config: Config) -> Result<(), StartError> {
    if !config.http.ip().is_loopback() && config.admin_token.is_none() {
        return Err(StartError::Unsafe(format!(
            "--http {} is not a loopback address: set --admin-token or --admin-token-file so that publishing and removing clients need a token",
            config.http
        )));
    }
    if !config.http.ip().is_loopback() && config.tls.is_none() && !config.allow_plaintext_token {
        return Err(StartError::Unsafe(format!(
            "--http {} is not a loopback address and has no TLS: the admin token would cross the network in clear text, where anyone on the path can read and reuse it; set --tls-cert and --tls-key, or --allow-plaintext-token to accept that",
            config.http
        )));
    }
    let tls = match &config.tls {
        Some(files) => Some(Arc::new(Tls::load(&files.cert, &files.key)?)),
        None => None,
    };
    let budget = plan_descriptors(&config)?;
    let prometheus = install_metrics()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .thread_name("crnp-control")
        .build()
        .map_err(|e| StartError::Runtime(e.to_string()))?;
    runtime.block_on(serve(config, budget, tls, prometheus))
}

/// Raises the soft descriptor limit to the hard one and divides it among HTTP connections,
/// registration connections and deliveries.
fn plan_descriptors(config: &Config) -> Result<DescriptorBudget, StartError> {
    let limit = budget::raise_descriptor_limit()
        .map_err(|e| StartError::Runtime(format!("cannot read the descriptor limit: {e}")))?;
    let budget = DescriptorBudget::plan(
        limit.now,
        config.cores,
        config.max_http_connections,
        config.max_connections,
    )?;
    tracing::info!(
        soft_before = limit.before,
        soft = limit.now,
        hard = limit.hard,
        http_connections = budget.http_connections,
        registrations_per_core = budget.registrations_per_core,
        deliveries_per_core = budget.deliveries_per_core,
        "descriptor limit raised and divided"
    );
    if budget.registrations_per_core < config.max_connections {
        tracing::warn!(
            configured = config.max_connections,
            effective = budget.registrations_per_core,
            "--max-connections is more than the descriptor limit leaves; raise the limit to get it"
        );
    }
    Ok(budget)
}

async fn serve(
    config: Config,
    budget: DescriptorBudget,
    tls: Option<Arc<Tls>>,
    prometheus: PrometheusHandle,
) -> Result<(), StartError> {
    if let Some(tls) = &tls {
        tokio::spawn(reload_on_hangup(Arc::clone(tls)));
    }
    let upkeep = tokio::spawn(metrics_upkeep(prometheus.clone()));
    let http = tokio::net::TcpListener::bind(config.http)
        .await
        .map_err(|source| StartError::Bind {
            addr: config.http,
            source,
        })?;
    let http_addr = http.local_addr().map_err(|source| StartError::Bind {
        addr: config.http,
        source,
    })?;
    let state = ControlState::new(
        prometheus,
        config.admin_token.clone(),
        config.max_message_bytes.max(1 << 20),
        config.http_body_timeout,
    );
    let (stop_http, http_stopped) = tokio::sync::oneshot::channel::<()>();
    let router = control::router(state.clone());
    let http_limits = HttpLimits {
        max_connections: budget.http_connections,
        header_timeout: config.http_header_timeout,
    };
    let http_task = tokio::spawn(control::serve::serve(
        http,
        router,
        http_limits,
        tls,
        async move {
            let _ = http_stopped.await;
        },
    ));

    let store = tokio::select! {
        store = open_store(&config) => store?,
        () = termination() => {
            tracing::info!("stopped while waiting as a standby");
            return Ok(());
        }
    };
    let (listeners, listen) = engine::bind(&config).map_err(|source| StartError::Bind {
        addr: config.listen,
        source,
    })?;
    let source = engine::reserve_source(&config, listen)?;
    telemetry::register_cores(config.cores);
    let channels = CoreChannels::new(config.cores);
    let (dispatcher, probe) = (channels.dispatcher(), channels.probe());
    let limits = ServiceLimits {
        registry: RegistryLimits {
            max_clients: config.max_clients,
            max_event_types: config.max_event_types,
            max_latest_states: config.max_latest_states,
        },
        max_commit_batch: config.max_commit_batch,
        retention: config.retention,
    };
    let (registry, registry_thread) = service::start(store, limits, dispatcher)?;
    let engine = Engine::start(
        &config, listeners, listen, source, channels, &registry, &budget,
    )?;
    state.activate(registry.clone(), probe);
    tracing::info!(listen = %engine.listen, http = %http_addr, cores = config.cores, "crnpd started");
    println!("crnpd ready listen={} http={}", engine.listen, http_addr);

    let mut registry_ended = tokio::task::spawn_blocking(move || registry_thread.join());
    // The registry thread ends early only when it can no longer serve; then this instance
    // stops at once, without the grace period.
    let ended_early = tokio::select! {
        () = termination() => None,
        ended = &mut registry_ended => Some(ended),
    };
    tracing::info!("stopping");
    let grace = match ended_early {
        None => config.shutdown_timeout,
        Some(_) => Duration::ZERO,
    };
    let deadline = Instant::now() + grace;
    state.deactivate();
    let _ = stop_http.send(());
    let _ = tokio::time::timeout(grace, http_task).await;
    tokio::task::spawn_blocking(move || {
        engine.shutdown(deadline);
        drop(registry);
        drop(state);
    })
    .await
    .map_err(|e| StartError::Runtime(e.to_string()))?;
    // The thread ends once the last handle is gone. An HTTP connection still open past the
    // grace period may hold one; everything acknowledged is committed already, so the wait
    // is bounded and nothing is lost by not waiting longer.
    let ended = match ended_early {
        Some(ended) => Some(ended),
        None => tokio::time::timeout(config.shutdown_timeout, registry_ended)
            .await
            .ok(),
    };
    upkeep.abort();
    match ended {
        Some(Ok(Ok(Ok(())))) => {}
        Some(Ok(Ok(Err(error)))) => return Err(StartError::Registry(error)),
        Some(Ok(Err(_panic))) => tracing::error!("the registry thread panicked"),
        Some(Err(join)) => return Err(StartError::Runtime(join.to_string())),
        None => tracing::warn!("an HTTP connection outlived the shutdown; stopping without it"),
    }
    tracing::info!("crnpd stopped");
    Ok(())
}

/// Reads the certificate and key again on every SIGHUP; a failed reload keeps the one in use.
async fn reload_on_hangup(tls: Arc<Tls>) {
    let mut hangups = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
        Ok(signal) => signal,
        Err(error) => {
            tracing::error!(%error, "cannot watch SIGHUP; the certificate will not be reloaded");
            return;
        }
    };
    while hangups.recv().await.is_some() {
        match tls.reload() {
            Ok(()) => tracing::info!("SIGHUP: TLS certificate reloaded"),
            Err(error) => {
                tracing::error!(%error, "SIGHUP: TLS certificate not reloaded; the one in use stays")
            }
        }
    }
}

/// Opens the store; a standby waits for the holder to let go, polling its lock.
async fn open_store(config: &Config) -> Result<Store, StartError> {
    let mut announced = false;
    loop {
        let dir = config.data_dir.clone();
        let opened = tokio::task::spawn_blocking(move || Store::open(&dir))
            .await
            .map_err(|e| StartError::Runtime(e.to_string()))?;
        match opened {
            Err(StoreError::Locked { path }) if config.standby => {
                if !announced {
                    tracing::info!(store = %path.display(), "standby: waiting for the active instance to release the store");
                    announced = true;
                }
                tokio::time::sleep(STANDBY_POLL).await;
            }
            Ok(store) => {
                if announced {
                    tracing::info!(store = %store.path().display(), "standby: took over the store");
                }
                return Ok(store);
            }
            Err(error) => return Err(error.into()),
        }
    }
}

/// How often a standby tries the store's lock.
const STANDBY_POLL: Duration = Duration::from_millis(250);

/// Resolves on SIGTERM or SIGINT.
async fn termination() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(signal) => signal,
        Err(error) => {
            tracing::error!(%error, "cannot watch SIGTERM; stopping only on SIGINT");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
