//! One subscriber count, end to end: sinks up, crnpd phase, limit phase, sinks down.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use crnp::client::{self, ClientError, Publisher};
use crnp::protocol::{CallbackReg, RegType, StatusCode};
use indicatif::{ProgressBar, ProgressStyle};
use tokio::task::JoinSet;

use crate::blaster::{self, BlastPlan};
use crate::cli::{Blaster, Cli};
use crate::crash::Crashes;
use crate::plan::{Plan, sink_addr};
use crate::pool::SinkPool;
use crate::procstat::{TcpCounters, peak_rss_kib, process_cpu, thread_cpu, time_wait_sockets};
use crate::report::{CrashRound, CrnpdPhase, Deliveries, LimitPhase, PointReport, Registrations};
use crate::server::{OwnedServer, Target};
use crate::sinks::PhaseTally;
use crate::stats::{micros_per, rate};
use crate::verify::Expectation;

/// Phase number of the crnpd phase (carried in every event, see `plan::PHASE_PAIR`).
const CRNPD_PHASE: u64 = 1;
/// Phase number of the plain blaster's phase.
const LIMIT_PHASE: u64 = 2;
/// Phase number of the await-eof blaster's phase.
const AWAIT_EOF_PHASE: u64 = 3;
/// Most connections the blaster keeps in flight by default (one per subscriber up to this).
const DEFAULT_LIMIT_CONCURRENCY: usize = 4096;

/// What a point needs besides the command line.
pub(crate) struct Point<'a> {
    /// The command line.
    pub(crate) cli: &'a Cli,
    /// Subscribers at this point.
    pub(crate) subscribers: usize,
    /// Events and types of this point (its tag is unique).
    pub(crate) plan: Plan,
    /// The run's clock origin.
    pub(crate) origin: Instant,
    /// The server, for the crnpd phase.
    pub(crate) target: Option<Target>,
    /// The crnpd this tool started, which --crash-every kills and restarts.
    pub(crate) owned: &'a tokio::sync::Mutex<Option<OwnedServer>>,
    /// Whether to unregister at the end (not needed when the server is thrown away).
    pub(crate) unregister: bool,
    /// The open-files limit in force.
    pub(crate) nofile: u64,
}

/// Why a point could not run at all.
#[derive(Debug, thiserror::Error)]
pub(crate) enum PointError {
    /// The callback listeners could not be bound.
    #[error("cannot start the subscribers: {0} (raise `ulimit -n`, or lower --subscribers)")]
    Sinks(ClientError),
    /// The blaster thread could not start.
    #[error("cannot start the blaster thread: {0}")]
    Blaster(std::io::Error),
}

/// Runs one point and reports it.
pub(crate) async fn run(point: Point<'_>) -> Result<PointReport, PointError> {
    let cli = point.cli;
    let mut report = PointReport {
        subscribers: point.subscribers,
        events: point.plan.events,
        time_wait_at_start: time_wait_sockets(),
        ..Default::default()
    };
    let addrs = (0..point.subscribers)
        .map(|i| sink_addr(cli.sink_base, cli.sink_ips, i))
        .collect();
    let mut sinks = SinkPool::start(
        addrs,
        point.origin,
        point.plan.events,
        seconds(cli.timeout),
        usize::try_from(point.nofile).unwrap_or(usize::MAX),
        limit_concurrency(cli, point.subscribers),
    )
    .await
    .map_err(PointError::Sinks)?;
    if let Some(target) = point.target {
        let (phase, crashes) = crnpd_phase(&point, &mut sinks, target).await;
        report.crnpd = Some(phase);
        report.crash_rounds = crashes;
    }
    if cli.mode.limit() {
        for &blaster in &cli.blasters {
            let phase = Some(limit_phase(&point, &mut sinks, blaster).await?);
            match blaster {
                Blaster::Plain => report.limit = phase,
                Blaster::AwaitEof => report.limit_await_eof = phase,
            }
        }
    }
    sinks.stop().await;
    report.fraction_of_limit = fraction(&report.crnpd, &report.limit);
    report.fraction_of_await_eof = fraction(&report.crnpd, &report.limit_await_eof);
    Ok(report)
}

/// crnpd's deliveries/s over a blaster's, when both were measured.
fn fraction(crnpd: &Option<CrnpdPhase>, limit: &Option<LimitPhase>) -> Option<f64> {
    match (crnpd, limit) {
        (Some(c), Some(l)) if l.deliveries.per_sec > 0.0 => {
            Some(c.deliveries.per_sec / l.deliveries.per_sec)
        }
        _ => None,
    }
}

/// Registers every subscriber, publishes (crashing crnpd as --crash-every says), waits for
/// the deliveries, unregisters.
async fn crnpd_phase(
    point: &Point<'_>,
    sinks: &mut SinkPool,
    target: Target,
) -> (CrnpdPhase, Vec<CrashRound>) {
    let cli = point.cli;
    let mut phase = CrnpdPhase::default();
    let mut crashes =
        (cli.crash_every > 0).then(|| Crashes::new(point.owned, cli.crash_every, cli.crash_seed));
    let cpu = || target.pid.and_then(|pid| process_cpu(pid).ok());

    let cpu_start = cpu();
    let started = Instant::now();
    let (registrations, registered) =
        register_all(point, sinks.addrs(), target.listen, RegType::AddClient).await;
    phase.registrations = Registrations {
        seconds: started.elapsed().as_secs_f64(),
        ..registrations
    };
    let total = phase.registrations.ok
        + phase.registrations.errors
        + phase.registrations.refused.values().sum::<u64>();
    phase.registrations.per_sec = rate(total, phase.registrations.seconds);
    let cpu_registered = cpu();

    sinks
        .begin_phase(CRNPD_PHASE, |i| {
            if registered[i] {
                point.plan.expectation(i)
            } else {
                Expectation::NONE
            }
        })
        .await;
    let own_cpu = thread_cpu();
    let kernel = TcpCounters::read();
    let bar = progress_bar(cli, "crnpd", sinks.progress().await.1);
    let first_send_ns = publish_all(point, sinks, target.http, &mut phase, crashes.as_mut()).await;
    sinks
        .wait(seconds(cli.drain_timeout), |done, _| bar.set_position(done))
        .await;
    bar.finish_and_clear();
    let own_cpu = thread_cpu().saturating_sub(own_cpu).as_secs_f64();
    let cpu_delivered = cpu();

    let tally = sinks.tally().await;
    phase.latency = tally.latencies.summary();
    phase.deliveries = deliveries(
        &tally,
        first_send_ns,
        own_cpu,
        TcpCounters::read().since(kernel),
    );
    if let (Some(a), Some(b), Some(c)) = (cpu_start, cpu_registered, cpu_delivered) {
        let delivery = c.saturating_sub(b).as_secs_f64();
        phase.server_cpu_registration_s = Some(b.saturating_sub(a).as_secs_f64());
        phase.server_cpu_delivery_s = Some(delivery);
        phase.server_cpu_us_per_delivery = micros_per(delivery, tally.counts.delivered);
    }
    phase.server_peak_rss_mib = target
        .pid
        .and_then(|pid| peak_rss_kib(pid).ok())
        .map(|kib| kib as f64 / 1024.0);
    if point.unregister {
        register_all(point, sinks.addrs(), target.listen, RegType::RemoveClient).await;
    }
    let rounds = crashes.map_or_else(Vec::new, |c| c.rounds(tally.counts.duplicate));
    (phase, rounds)
}

/// Sends one registration of `reg_type` per subscriber, `--register-concurrency` at a time.
/// Returns the tallies and which subscribers the server accepted.
async fn register_all(
    point: &Point<'_>,
    addrs: &[SocketAddr],
    server: SocketAddr,
    reg_type: RegType,
) -> (Registrations, Vec<bool>) {
    let jobs: Arc<Vec<(SocketAddr, CallbackReg)>> = Arc::new(
        addrs
            .iter()
            .enumerate()
            .map(|(i, addr)| {
                let events = if reg_type == RegType::AddClient {
                    vec![point.plan.event_type(i)]
                } else {
                    Vec::new()
                };
                (
                    *addr,
                    CallbackReg {
                        port: addr.port(),
                        reg_type,
                        events,
                    },
                )
            })
            .collect(),
    );
    let next = Arc::new(AtomicUsize::new(0));
    let timeout = seconds(point.cli.timeout);
    let mut workers = JoinSet::new();
    for _ in 0..point.cli.register_concurrency.min(addrs.len()) {
        let (jobs, next) = (Arc::clone(&jobs), Arc::clone(&next));
        workers.spawn(async move {
            let mut results = Vec::new();
            loop {
                let index = next.fetch_add(1, Ordering::Relaxed);
                let Some((addr, reg)) = jobs.get(index) else {
                    return results;
                };
                results.push((
                    index,
                    client::register(server, Some(addr.ip()), reg, timeout).await,
                ));
            }
        });
    }
    let mut tally = Registrations::default();
    let mut accepted = vec![false; addrs.len()];
    while let Some(joined) = workers.join_next().await {
        for (index, outcome) in joined.unwrap_or_default() {
            let addr = jobs[index].0;
            match outcome {
                Ok(reply) if reply.status == StatusCode::Ok => {
                    tally.ok += 1;
                    accepted[index] = true;
                }
                Ok(reply) => {
                    *tally
                        .refused
                        .entry(reply.status.as_str().to_owned())
                        .or_default() += 1;
                    tally.first_problem.get_or_insert_with(|| {
                        format!("{addr}: {}: {}", reply.status.as_str(), reply.message)
                    });
                }
                Err(e) => {
                    tally.errors += 1;
                    tally
                        .first_problem
                        .get_or_insert_with(|| format!("{addr}: {e}"));
                }
            }
        }
    }
    (tally, accepted)
}

/// Publishes the point's events in batches, paced by `--rate`, crashing crnpd between two
/// requests when `crashes` says so; returns when the first was sent.
async fn publish_all(
    point: &Point<'_>,
    sinks: &mut SinkPool,
    http: SocketAddr,
    phase: &mut CrnpdPhase,
    mut crashes: Option<&mut Crashes<'_>>,
) -> u64 {
    let cli = point.cli;
    let plan = &point.plan;
    let started = Instant::now();
    let mut first_send_ns = None;
    let mut publisher = match Publisher::connect(http, seconds(cli.timeout)).await {
        Ok(publisher) => publisher,
        Err(e) => {
            phase.publish_errors += 1;
            phase.first_publish_error = Some(e.to_string());
            return sinks.now_ns();
        }
    };
    let pace = (cli.rate > 0.0).then(|| seconds(cli.batch as f64 / cli.rate));
    let mut next_send = tokio::time::Instant::now();
    let mut seq = 0;
    while seq < plan.events {
        if let Some(pace) = pace {
            tokio::time::sleep_until(next_send).await;
            next_send += pace;
        }
        let end = (seq + cli.batch).min(plan.events);
        let events: Vec<_> = (seq..end).map(|s| plan.event(CRNPD_PHASE, s)).collect();
        for s in seq..end {
            let sent = sinks.mark_sent(s).await;
            first_send_ns.get_or_insert(sent);
        }
        match publisher.publish(&events).await {
            Ok(sequences) if sequences.len() == events.len() => {}
            Ok(sequences) => {
                phase.publish_errors += 1;
                phase.first_publish_error.get_or_insert_with(|| {
                    format!(
                        "{} events published, {} sequence numbers returned",
                        events.len(),
                        sequences.len()
                    )
                });
            }
            Err(e) => {
                phase.publish_errors += 1;
                let unreachable = e.is_unreachable();
                phase
                    .first_publish_error
                    .get_or_insert_with(|| e.to_string());
                if unreachable {
                    break;
                }
            }
        }
        seq = end;
        if let Some(crashes) = crashes.as_deref_mut()
            && crashes.due(seq, plan.events)
        {
            if let Err(e) = crashes.crash(sinks, seq).await {
                phase.publish_errors += 1;
                phase
                    .first_publish_error
                    .get_or_insert_with(|| e.to_string());
                break;
            }
            match Publisher::connect(http, seconds(cli.timeout)).await {
                Ok(again) => publisher = again,
                Err(e) => {
                    phase.publish_errors += 1;
                    phase
                        .first_publish_error
                        .get_or_insert_with(|| e.to_string());
                    break;
                }
            }
        }
    }
    phase.publish_seconds = started.elapsed().as_secs_f64();
    phase.publish_per_sec = rate(seq, phase.publish_seconds);
    first_send_ns.unwrap_or_default()
}

/// Blasts the same sinks with the same payloads and measures the loopback limit.
async fn limit_phase(
    point: &Point<'_>,
    sinks: &mut SinkPool,
    blaster: Blaster,
) -> Result<LimitPhase, PointError> {
    let cli = point.cli;
    let plan = &point.plan;
    let (phase, name, await_eof) = match blaster {
        Blaster::Plain => (LIMIT_PHASE, "limit", false),
        Blaster::AwaitEof => (AWAIT_EOF_PHASE, "eof", true),
    };
    let payloads: Vec<Bytes> = (0..plan.events)
        .map(|s| Bytes::from(plan.event(phase, s).to_xml()))
        .collect();
    let payload_bytes = payloads.first().map_or(0, Bytes::len);
    let concurrency = limit_concurrency(cli, point.subscribers);
    sinks.begin_phase(phase, |i| plan.expectation(i)).await;
    let bar = progress_bar(cli, name, sinks.progress().await.1);
    let own_cpu = thread_cpu();
    let kernel = TcpCounters::read();
    let outcome = blaster::spawn(
        BlastPlan {
            dests: sinks.addrs().to_vec(),
            expectations: (0..point.subscribers)
                .map(|i| plan.expectation(i))
                .collect(),
            payloads,
            source: cli.source_addr,
            concurrency,
            timeout: seconds(cli.timeout),
            origin: point.origin,
            await_eof,
        },
        limit_threads(cli),
    )
    .map_err(PointError::Blaster)?;
    sinks
        .wait(seconds(cli.drain_timeout), |done, _| bar.set_position(done))
        .await;
    bar.finish_and_clear();
    let own_cpu = thread_cpu().saturating_sub(own_cpu).as_secs_f64();
    let outcome = outcome.outcome().await;
    let tally = sinks.tally().await;
    let mut deliveries = deliveries(
        &tally,
        outcome.started_ns,
        own_cpu,
        TcpCounters::read().since(kernel),
    );
    if let Some(fatal) = outcome.fatal {
        deliveries.first_bad.get_or_insert(fatal);
    }
    Ok(LimitPhase {
        blaster_cpu_us_per_delivery: micros_per(outcome.cpu.as_secs_f64(), tally.counts.delivered),
        deliveries,
        send_errors: outcome.errors,
        first_send_error: outcome.first_error,
        concurrency,
        threads: limit_threads(cli),
        payload_bytes,
    })
}

/// Threads the blaster runs on: `--limit-threads`, or as many as the machine has cores (the
/// number crnpd uses by default), so both get the same share of a busy machine.
fn limit_threads(cli: &Cli) -> usize {
    match cli.limit_threads {
        0 => std::thread::available_parallelism().map_or(1, usize::from),
        n => n,
    }
}

/// Connections the blaster keeps in flight.
fn limit_concurrency(cli: &Cli, subscribers: usize) -> usize {
    match cli.limit_concurrency {
        0 => subscribers.min(DEFAULT_LIMIT_CONCURRENCY),
        n => n,
    }
}

/// The delivery figures of a phase that started sending at `start_ns`.
fn deliveries(
    tally: &PhaseTally,
    start_ns: u64,
    own_cpu_s: f64,
    kernel: TcpCounters,
) -> Deliveries {
    let seconds = tally.last_delivery_ns.saturating_sub(start_ns) as f64 / 1e9;
    Deliveries {
        counts: tally.counts,
        stale: tally.stale,
        bad: tally.bad,
        first_bad: tally.first_bad.clone(),
        seconds,
        per_sec: rate(tally.counts.delivered, seconds),
        sink_cpu_us_per_delivery: micros_per(own_cpu_s, tally.counts.delivered),
        kernel,
    }
}

/// A progress bar on standard error (drawn only on a terminal).
fn progress_bar(cli: &Cli, phase: &'static str, total: u64) -> ProgressBar {
    let bar = ProgressBar::new(total);
    if let Ok(style) = ProgressStyle::with_template(
        "{msg:>6} [{elapsed_precise}] {wide_bar} {pos}/{len} {per_sec}",
    ) {
        bar.set_style(style);
    }
    bar.set_message(phase);
    if cli.json {
        bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    bar
}

/// Seconds from the command line as a duration.
pub(crate) fn seconds(secs: f64) -> Duration {
    Duration::try_from_secs_f64(secs).unwrap_or_default()
}
