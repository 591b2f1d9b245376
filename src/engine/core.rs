//! One data-plane thread: its own io_uring runtime, its own listener, its own shard of clients.
//! Nothing here is shared with another core; the registry service talks to it by channel.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::{Duration, Instant};

use compio::net::TcpListener;

use super::outbound;
use super::registration;
use super::shard::{Effect, Item, LastDelivery, Shard};
use super::{ClientStatus, CoreCommand};
use crate::acl::AccessPolicy;
use crate::delivery::{Next, RetryPolicy};
use crate::protocol::Limits;
use crate::registry::ClientId;
use crate::registry::service::RegistryHandle;
use crate::telemetry::CoreMetrics;

/// What every core is configured with.
#[derive(Debug, Clone)]
pub(crate) struct CoreSettings {
    pub(crate) policy: RetryPolicy,
    pub(crate) client_timeout: Duration,
    pub(crate) source: outbound::Source,
    pub(crate) limits: Limits,
    pub(crate) max_connections: usize,
}

/// The state of one core, shared by its tasks (one thread: `Rc`, no locks).
pub(crate) struct Core {
    pub(crate) settings: CoreSettings,
    pub(crate) registry: RegistryHandle,
    pub(crate) access: AccessPolicy,
    shard: RefCell<Shard>,
    metrics: CoreMetrics,
    connections: Cell<usize>,
    in_flight: Cell<usize>,
    scratch: outbound::Scratch,
}

/// Runs a core until it is told to shut down.
pub(crate) fn run(
    index: usize,
    settings: CoreSettings,
    registry: RegistryHandle,
    access: AccessPolicy,
    listener: std::net::TcpListener,
    inbox: flume::Receiver<CoreCommand>,
) -> std::io::Result<()> {
    let runtime = compio::runtime::Runtime::new()?;
    runtime.block_on(async move {
        let listener = TcpListener::from_std(listener)?;
        let core = Rc::new(Core {
            shard: RefCell::new(Shard::new(settings.policy)),
            settings,
            registry,
            access,
            metrics: CoreMetrics::new(index),
            connections: Cell::new(0),
            in_flight: Cell::new(0),
            scratch: outbound::Scratch::default(),
        });
        let acceptor = compio::runtime::spawn(accept_loop(Rc::clone(&core), listener));
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
        core.settle(deadline).await;
        Ok(())
    })
}

async fn accept_loop(core: Rc<Core>, listener: TcpListener) {
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                if core.connections.get() >= core.settings.max_connections {
                    compio::runtime::spawn(registration::refuse_busy(stream, peer)).detach();
                    continue;
                }
                let guard = ConnectionGuard::new(Rc::clone(&core));
                compio::runtime::spawn(async move {
                    registration::serve(Rc::clone(&guard.core), stream, peer).await;
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
            match effect {
                Effect::Wake(id, slot) => {
                    compio::runtime::spawn(deliver_loop(Rc::clone(self), id, slot)).detach();
                }
                Effect::Overflowed(id, generation) => {
                    tracing::warn!(client = %id, limit = self.settings.policy.max_queue, "queue full; client removed");
                    self.registry.drop_client(id, generation, "queue_overflow");
                }
            }
        }
        self.metrics.queued.set(self.shard.borrow().queued() as f64);
    }

    fn snapshot(&self) -> Vec<ClientStatus> {
        self.shard
            .borrow()
            .clients()
            .map(|(id, client)| ClientStatus {
                id: *id,
                queued: client.queue.len(),
                last_delivery: client.last_delivery.as_ref().map(|last| match last {
                    LastDelivery::Ok => "ok".to_owned(),
                    LastDelivery::Error(cause) => format!("error: {cause}"),
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

    async fn attempt(&self, id: ClientId, item: &Item) -> Result<(), outbound::AttemptError> {
        self.in_flight.set(self.in_flight.get() + 1);
        self.metrics.in_flight.set(self.in_flight.get() as f64);
        let result = outbound::deliver(
            id.callback(),
            self.settings.source,
            item.bytes.clone(),
            self.settings.client_timeout,
            &self.scratch,
        )
        .await;
        self.in_flight.set(self.in_flight.get() - 1);
        self.metrics.in_flight.set(self.in_flight.get() as f64);
        result
    }
}

/// Delivers a client's queue, one event at a time, until it is empty or the client is gone.
async fn deliver_loop(core: Rc<Core>, id: ClientId, slot: u64) {
    loop {
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
        match result {
            Ok(()) => {
                core.metrics.attempts_ok.increment(1);
                core.metrics.delivered.increment(1);
                core.metrics
                    .latency
                    .record(item.accepted_at.elapsed().as_secs_f64());
                core.shard.borrow_mut().succeeded(id, slot);
            }
            Err(error) => {
                core.metrics.failure(error.cause());
                let removed =
                    core.shard
                        .borrow_mut()
                        .failed(id, slot, error.cause(), Instant::now());
                if let Some(generation) = removed {
                    tracing::info!(client = %id, cause = error.cause(), "delivery attempts exhausted");
                    core.registry.drop_client(id, generation, "unreachable");
                }
            }
        }
        core.metrics.queued.set(core.shard.borrow().queued() as f64);
        drop(item);
    }
}
