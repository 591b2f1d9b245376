//! One data-plane thread: its own io_uring runtime, its own listener, its own shard of clients.
//! Nothing here is shared with another core; the registry service talks to it by channel.
//! The rules live in [`crate::delivery::Shard`]; this file turns its effects into tasks,
//! attempts and registry requests, and nothing more.

use std::cell::{Cell, RefCell};
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use compio::net::{TcpListener, TcpStream};

use super::registration::{self, Registrar};
use super::{ClientStatus, CoreCommand};
use super::{outbound, ring};
use crate::budget::REFUSALS_PER_CORE;
use crate::delivery::{
    AttemptError, Effect, Item, LastDelivery, Next, RetryPolicy, Settled, Shard, Shortage,
};
use crate::registry::ClientId;
use crate::registry::service::RegistryHandle;
use crate::telemetry::CoreMetrics;

/// What every core is configured with.
#[derive(Debug, Clone)]
pub(crate) struct CoreSettings {
    /// Retries and the queue bound.
    pub(crate) policy: RetryPolicy,
    /// Deadline of one delivery attempt.
    pub(crate) client_timeout: Duration,
    /// Source address and port of deliveries.
    pub(crate) source: outbound::Source,
    /// Registration connections open at once on this core.
    pub(crate) max_connections: usize,
    /// Deliveries in flight at once on this core: its share of the descriptor budget.
    pub(crate) delivery_slots: usize,
    /// How often the core reports its clients' cursors, when they moved.
    pub(crate) cursor_interval: Duration,
}

/// The state of one core, shared by its tasks (one thread: `Rc`, no locks).
struct Core {
    settings: CoreSettings,
    registry: RegistryHandle,
    registrar: Rc<Registrar>,
    shard: RefCell<Shard>,
    metrics: CoreMetrics,
    connections: Cell<usize>,
    /// LOW_RESOURCE replies being written to connections over the limit.
    refusing: Cell<usize>,
    in_flight: Cell<usize>,
    /// Set at shutdown: attempts in flight finish, no new one starts, so that a clean stop
    /// ends with every delivery either confirmed or not begun.
    stopping: Cell<bool>,
    /// One permit per delivery that may be in flight: a descriptor each.
    slots: tokio::sync::Semaphore,
    attempts: outbound::Attempts,
}

/// Runs a core until it is told to shut down.
pub(crate) fn run(
    index: usize,
    settings: CoreSettings,
    registrar: Registrar,
    listener: std::net::TcpListener,
    inbox: flume::Receiver<CoreCommand>,
) -> std::io::Result<()> {
    let runtime = ring::runtime()?;
    runtime.block_on(async move {
        let listener = TcpListener::from_std(listener)?;
        let metrics = CoreMetrics::new(index);
        metrics.slots.set(settings.delivery_slots as f64);
        let core = Rc::new(Core {
            shard: RefCell::new(Shard::new(index, settings.policy)),
            slots: tokio::sync::Semaphore::new(settings.delivery_slots),
            registry: registrar.registry.clone(),
            registrar: Rc::new(registrar),
            attempts: outbound::Attempts::new(settings.client_timeout),
            settings,
            metrics,
            connections: Cell::new(0),
            refusing: Cell::new(0),
            in_flight: Cell::new(0),
            stopping: Cell::new(false),
        });
        let acceptor = compio::runtime::spawn(accept_loop(Rc::clone(&core), listener));
        let reporter = compio::runtime::spawn(report_cursors(Rc::clone(&core)));
        let deadline = loop {
            match inbox.recv_async().await {
                Ok(CoreCommand::Change(change)) => {
                    let effects = core.shard.borrow_mut().apply(change);
                    core.act(effects);
                }
                Ok(CoreCommand::Event(event)) => {
                    let effects = core.shard.borrow_mut().publish(&event);
                    core.act(effects);
                }
                Ok(CoreCommand::Snapshot(reply)) => {
                    let _ = reply.send(core.snapshot());
                }
                Ok(CoreCommand::Shutdown(deadline)) => break deadline,
                Err(_) => break Instant::now(),
            }
        };
        drop(acceptor);
        core.stopping.set(true);
        core.settle(deadline).await;
        drop(reporter);
        // The last word on this core's cursors: after a clean stop nothing is sent twice.
        core.report();
        Ok(())
    })
}

/// Sends the registry this core's cursors every `cursor_interval` while they move; the
/// registry writes them with its next group commit.
async fn report_cursors(core: Rc<Core>) {
    loop {
        compio::time::sleep(core.settings.cursor_interval).await;
        core.report();
    }
}

async fn accept_loop(core: Rc<Core>, listener: TcpListener) {
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                if core.connections.get() >= core.settings.max_connections {
                    refuse(&core, stream, peer);
                    continue;
                }
                let guard = ConnectionGuard::new(Rc::clone(&core));
                let registrar = Rc::clone(&core.registrar);
                compio::runtime::spawn(async move {
                    registration::serve(&registrar, stream, peer).await;
                    drop(guard);
                })
                .detach();
            }
            Err(error) => {
                tracing::warn!(%error, "accept failed; backing off");
                compio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// Turns away a connection over the per-core limit: with a LOW_RESOURCE reply while fewer than
/// [`REFUSALS_PER_CORE`] replies are being written, else by closing it at once, so that a
/// flood of connections never holds more descriptors than the budget gave refusals.
fn refuse(core: &Rc<Core>, stream: TcpStream, peer: SocketAddr) {
    if core.refusing.get() >= REFUSALS_PER_CORE {
        registration::count_refusal();
        drop(stream);
        return;
    }
    core.refusing.set(core.refusing.get() + 1);
    let core = Rc::clone(core);
    compio::runtime::spawn(async move {
        registration::refuse_busy(stream, peer).await;
        core.refusing.set(core.refusing.get() - 1);
    })
    .detach();
}

/// Counts a registration connection for as long as it lives.
struct ConnectionGuard {
    core: Rc<Core>,
}

impl ConnectionGuard {
    fn new(core: Rc<Core>) -> Self {
        core.connections.set(core.connections.get() + 1);
        core.metrics.connections.set(core.connections.get() as f64);
        ConnectionGuard { core }
    }
}

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        self.core.connections.set(self.core.connections.get() - 1);
        self.core
            .metrics
            .connections
            .set(self.core.connections.get() as f64);
    }
}

impl Core {
    fn act(self: &Rc<Self>, effects: Vec<Effect>) {
        for effect in effects {
            self.act_on(effect);
        }
        self.metrics.queued.set(self.shard.borrow().queued() as f64);
    }

    fn act_on(self: &Rc<Self>, effect: Effect) {
        match effect {
            Effect::Wake { client, slot } => {
                compio::runtime::spawn(deliver_loop(Rc::clone(self), client, slot)).detach();
            }
            Effect::Remove {
                client,
                generation,
                reason,
            } => self.registry.drop_client(client, generation, reason),
        }
    }

    /// Reports the cursors to the registry if they moved since the last report.
    fn report(&self) {
        let report = self.shard.borrow_mut().cursor_report();
        if let Some(report) = report {
            self.registry.report_cursors(report);
        }
    }

    fn snapshot(&self) -> Vec<ClientStatus> {
        self.shard
            .borrow()
            .clients()
            .map(|(id, client)| ClientStatus {
                id: *id,
                queued: client.queued(),
                last_delivery: client.last_delivery().map(|last| match last {
                    LastDelivery::Ok => "ok".to_owned(),
                    LastDelivery::Failed(cause) => format!("error: {cause}"),
                    LastDelivery::Deferred(shortage) => format!("deferred: {shortage}"),
                }),
            })
            .collect()
    }

    /// Waits, up to `deadline`, for in-flight deliveries and registrations to finish.
    async fn settle(&self, deadline: Instant) {
        while (self.in_flight.get() > 0 || self.connections.get() > 0) && Instant::now() < deadline
        {
            compio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    async fn attempt(&self, id: ClientId, item: &Item) -> Result<(), AttemptError> {
        // The semaphore is never closed; were it, the attempt would wait like any shortage.
        let Ok(_slot) = self.slots.acquire().await else {
            return Err(AttemptError::Shortage(Shortage::Descriptors));
        };
        self.in_flight.set(self.in_flight.get() + 1);
        self.metrics.in_flight.set(self.in_flight.get() as f64);
        let result = outbound::deliver(
            id.callback(),
            self.settings.source,
            item.bytes.clone(),
            &self.attempts,
        )
        .await;
        self.in_flight.set(self.in_flight.get() - 1);
        self.metrics.in_flight.set(self.in_flight.get() as f64);
        result
    }

    /// Counts how an attempt settled, and says so in the log where an operator needs it: once
    /// when the core's first client becomes short of crnpd's own resources, once when the last
    /// one is no longer.
    fn record(&self, id: ClientId, item: &Item, result: Result<(), AttemptError>, short: Shift) {
        match result {
            Ok(()) => {
                self.metrics.attempts_ok.increment(1);
                self.metrics.delivered.increment(1);
                self.metrics
                    .latency
                    .record(item.accepted_at.elapsed().as_secs_f64());
                if short == Shift::Ended {
                    tracing::info!("deliveries resumed after a shortage of crnpd's own resources");
                }
            }
            Err(AttemptError::Shortage(shortage)) => {
                self.metrics.shortage(shortage);
                if short == Shift::Began {
                    tracing::warn!(client = %id, %shortage, "crnpd is short of its own resources; deliveries wait and are not counted as failed");
                }
            }
            Err(AttemptError::Failed(cause)) => self.metrics.failure(cause),
        }
    }
}

/// Delivers a client's queue, one event at a time, until it is empty or the client is gone.
async fn deliver_loop(core: Rc<Core>, id: ClientId, slot: u64) {
    loop {
        if core.stopping.get() {
            return;
        }
        let next = core.shard.borrow_mut().next(id, slot, Instant::now());
        let item = match next {
            None | Some(Next::Idle | Next::Busy) => return,
            Some(Next::WaitUntil(at)) => {
                compio::time::sleep_until(at).await;
                continue;
            }
            Some(Next::Deliver(item)) => item,
        };
        let result = core.attempt(id, &item).await;
        let was_short = core.shard.borrow().short();
        let settled = core
            .shard
            .borrow_mut()
            .finished(id, slot, result, Instant::now());
        let short = Shift::between(was_short, core.shard.borrow().short());
        core.record(id, &item, result, short);
        if let Settled::GaveUp(removal) = settled {
            if let Err(last) = result {
                tracing::info!(client = %id, %last, "delivery attempts exhausted");
            }
            core.act_on(removal);
        }
        core.metrics.queued.set(core.shard.borrow().queued() as f64);
        drop(item);
    }
}

/// How an attempt moved the core's "some client is short of crnpd's own resources" state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shift {
    /// The first client became short.
    Began,
    /// The last short client is not any more.
    Ended,
    /// No change.
    Same,
}

impl Shift {
    fn between(before: bool, after: bool) -> Self {
        match (before, after) {
            (false, true) => Shift::Began,
            (true, false) => Shift::Ended,
            _ => Shift::Same,
        }
    }
}
