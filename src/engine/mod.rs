//! The data plane on io_uring (compio): one thread per core, each with its own SO_REUSEPORT
//! listener for registrations and its own shard of clients. The only module that touches the
//! runtime; it drives [`crate::delivery`] and moves bytes, nothing more.

mod core;
mod deadline;
mod listener;
mod outbound;
mod registration;
mod ring;

use std::cell::Cell;
use std::hash::{Hash, Hasher};
use std::net::SocketAddr;
use std::num::NonZeroU16;
use std::thread::JoinHandle;
use std::time::Instant;

use tokio::sync::oneshot;

use crate::acl::AccessPolicy;
use crate::budget::DescriptorBudget;
use crate::config::{Config, SourcePort};
use crate::delivery::RetryPolicy;
use crate::protocol::Limits;
use crate::registry::service::{Dispatcher, RegistryHandle};
use crate::registry::{Change, ClientId, Dispatched};
use core::CoreSettings;
use registration::Registrar;

/// An event as the cores share it: one serialization, referenced by every queue.
pub type SharedEvent = crate::delivery::Item;

/// A message to one core.
#[derive(Debug)]
pub enum CoreCommand {
    /// A client of this core changed.
    Change(Change),
    /// An event to match against this core's clients.
    Event(SharedEvent),
    /// Report this core's clients' delivery state.
    Snapshot(oneshot::Sender<Vec<ClientStatus>>),
    /// Stop accepting, finish in-flight work until the deadline, exit.
    Shutdown(Instant),
}

/// A client's delivery state, for the admin API.
#[derive(Debug, Clone)]
pub struct ClientStatus {
    /// The client.
    pub id: ClientId,
    /// Deliveries waiting, including one in flight.
    pub queued: usize,
    /// `ok`, `error: CAUSE`, `deferred: RESOURCE`, or `None` before the first attempt.
    pub last_delivery: Option<String>,
}

/// The channels to the cores, before their threads start.
#[derive(Debug)]
pub struct CoreChannels {
    senders: Vec<flume::Sender<CoreCommand>>,
    receivers: Vec<flume::Receiver<CoreCommand>>,
}

impl CoreChannels {
    /// One channel per core.
    pub fn new(cores: usize) -> Self {
        let (senders, receivers) = (0..cores).map(|_| flume::unbounded()).unzip();
        CoreChannels { senders, receivers }
    }

    /// The dispatcher the registry service sends its changes through: the only way client
    /// changes and events reach the cores, so nothing can bypass the registry's one order.
    pub fn dispatcher(&self) -> CoreDispatcher {
        CoreDispatcher {
            cores: self.senders.clone(),
            sent: self.senders.iter().map(|_| Cell::new(0)).collect(),
        }
    }

    /// A read-only view of the cores, for the control plane.
    pub fn probe(&self) -> CoreProbe {
        CoreProbe {
            cores: self.senders.clone(),
        }
    }
}

/// Routes registry output to cores: a client's changes to the core that owns it, events to all.
#[derive(Debug)]
pub struct CoreDispatcher {
    cores: Vec<flume::Sender<CoreCommand>>,
    /// Changes and events sent to each core: a core's cursor report covers a change once its
    /// own count has reached the change's.
    sent: Vec<Cell<u64>>,
}

/// Asks the cores about their clients; it can change nothing.
#[derive(Debug, Clone)]
pub struct CoreProbe {
    cores: Vec<flume::Sender<CoreCommand>>,
}

impl CoreProbe {
    /// Commands waiting in each core's inbox, by core number (for a gauge; never blocks).
    pub fn inbox_depths(&self) -> Vec<usize> {
        self.cores.iter().map(flume::Sender::len).collect()
    }

    /// Asks every core for its clients' delivery state.
    pub async fn snapshot(&self) -> Vec<ClientStatus> {
        let mut all = Vec::new();
        for core in &self.cores {
            let (reply, answer) = oneshot::channel();
            if core.send(CoreCommand::Snapshot(reply)).is_ok() {
                all.extend(answer.await.unwrap_or_default());
            }
        }
        all
    }
}

/// The core that owns `id`: a fixed hash, so a client's changes always reach the same core.
fn owner(id: ClientId, cores: usize) -> usize {
    let mut hasher = std::hash::DefaultHasher::new();
    id.hash(&mut hasher);
    (hasher.finish() % cores as u64) as usize
}

impl Dispatcher for CoreDispatcher {
    fn client_changed(&self, change: Change) -> Dispatched {
        let core = owner(change.client(), self.cores.len());
        // A closed core channel only happens at shutdown, when the change no longer matters.
        let _ = self.cores[core].send(CoreCommand::Change(change));
        let stamp = self.sent[core].get() + 1;
        self.sent[core].set(stamp);
        Dispatched { core, stamp }
    }

    fn event_published(&self, event: SharedEvent) {
        for (core, sent) in self.cores.iter().zip(&self.sent) {
            let _ = core.send(CoreCommand::Event(SharedEvent::clone(&event)));
            sent.set(sent.get() + 1);
        }
    }

    fn cores(&self) -> usize {
        self.cores.len()
    }
}

/// Why the data plane could not start.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// Deliveries could not be bound where they must leave from (`--source-addr`,
    /// `--source-port`): the address is not on this host, or another program holds the port.
    #[error(
        "deliveries cannot leave from {from}: {source} (is --source-addr an address of this host? does another program hold --source-port?)"
    )]
    Source {
        /// The source address, `*` where the kernel chooses.
        from: String,
        /// What the bind said.
        source: std::io::Error,
    },
    /// A core's thread could not be started.
    #[error("cannot start a core thread: {0}")]
    Thread(#[source] std::io::Error),
}

/// The running data plane.
#[derive(Debug)]
pub struct Engine {
    cores: Vec<flume::Sender<CoreCommand>>,
    threads: Vec<JoinHandle<()>>,
    /// The address registrations are accepted on (the real port when 0 was asked for).
    pub listen: SocketAddr,
    /// Held, not used: keeps a fixed source port ours while crnpd runs.
    _source: Option<socket2::Socket>,
}

/// Where deliveries leave from, checked at start-up: the address is on this host and the
/// port is ours (a socket bound there is held while crnpd runs).
#[derive(Debug)]
pub struct DeliverySource {
    source: outbound::Source,
    reserved: Option<socket2::Socket>,
}

/// Binds where deliveries will leave from (`--source-addr`, `--source-port`), so that a
/// source that cannot be had stops start-up with a clear error, before the registry opens,
/// rather than putting off every delivery; `listen` is the bound registration address.
pub fn reserve_source(config: &Config, listen: SocketAddr) -> Result<DeliverySource, EngineError> {
    let source = delivery_source(config, listen);
    let reserved = outbound::reserve(listen, source).map_err(|error| EngineError::Source {
        from: describe(source),
        source: error,
    })?;
    Ok(DeliverySource { source, reserved })
}

/// Where deliveries leave from: `--source-addr` and, unless `--source-port 0`, a fixed port,
/// by default the one registrations arrive on (`listen` is the bound address).
fn delivery_source(config: &Config, listen: SocketAddr) -> outbound::Source {
    outbound::Source {
        ip: config.source_addr,
        port: match config.source_port {
            SourcePort::Listen => NonZeroU16::new(listen.port()),
            SourcePort::Ephemeral => None,
            SourcePort::Fixed(port) => Some(port),
        },
    }
}

/// Binds the listeners; done before anything else so a port conflict fails start-up early.
pub fn bind(config: &Config) -> std::io::Result<(Vec<std::net::TcpListener>, SocketAddr)> {
    listener::bind_all(config.listen, config.cores)
}

/// Where deliveries leave from, as "IP:PORT" with `*` for what the kernel chooses (for errors).
fn describe(source: outbound::Source) -> String {
    let ip = source
        .ip
        .map_or_else(|| "*".to_owned(), |ip| ip.to_string());
    let port = source
        .port
        .map_or_else(|| "*".to_owned(), |port| port.to_string());
    match source.ip {
        Some(std::net::IpAddr::V6(_)) => format!("[{ip}]:{port}"),
        _ => format!("{ip}:{port}"),
    }
}

impl Engine {
    /// Starts one thread per core on the bound listeners, delivering from `source`.
    pub fn start(
        config: &Config,
        listeners: Vec<std::net::TcpListener>,
        listen: SocketAddr,
        source: DeliverySource,
        channels: CoreChannels,
        registry: &RegistryHandle,
        budget: &DescriptorBudget,
    ) -> Result<Engine, EngineError> {
        let settings = CoreSettings {
            policy: RetryPolicy {
                attempts: config.client_retry_count,
                gap: config.retry_gap(),
                max_queue: config.max_queue_depth,
            },
            client_timeout: config.client_timeout,
            source: source.source,
            max_connections: budget.registrations_per_core,
            delivery_slots: budget.deliveries_per_core,
            cursor_interval: config.cursor_interval,
        };
        let registrar = Registrar {
            registry: registry.clone(),
            access: AccessPolicy::new(config.allow_hosts.clone(), config.deny_hosts.clone()),
            limits: Limits {
                max_message_bytes: config.max_message_bytes,
                ..Limits::default()
            },
            read_timeout: config.client_timeout,
        };
        let mut threads = Vec::with_capacity(config.cores);
        for (index, (listener, inbox)) in listeners.into_iter().zip(channels.receivers).enumerate()
        {
            let (settings, registrar) = (settings.clone(), registrar.clone());
            let thread = std::thread::Builder::new()
                .name(format!("crnp-core-{index}"))
                .spawn(move || {
                    if let Err(error) = core::run(index, settings, registrar, listener, inbox) {
                        tracing::error!(core = index, %error, "core stopped with an error");
                    }
                })
                .map_err(EngineError::Thread)?;
            threads.push(thread);
        }
        Ok(Engine {
            cores: channels.senders,
            threads,
            listen,
            _source: source.reserved,
        })
    }

    /// Stops accepting, lets in-flight work finish until `deadline`, and joins the threads.
    pub fn shutdown(self, deadline: Instant) {
        for core in &self.cores {
            let _ = core.send(CoreCommand::Shutdown(deadline));
        }
        for thread in self.threads {
            if thread.join().is_err() {
                tracing::error!("a core thread panicked");
            }
        }
    }
}
