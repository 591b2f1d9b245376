//! The registry service: one thread that owns the registry and its store.
//!
//! It is the single sequencer of the system. Registrations, publishes and removals arrive on
//! one channel; the thread drains whatever is waiting (up to `max_commit_batch`), applies it in
//! arrival order, makes all of it durable with ONE commit (group commit), and only then hands
//! the changes to the engine and answers the callers. Because client changes and events leave
//! in that same order, a client registered before an event sees it, and one registered after
//! gets it as the latest state instead: nothing falls between the two.

use std::net::IpAddr;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use tokio::sync::oneshot;

use super::state::{Change, Refusal, Registry, RegistryLimits, Replay};
use super::store::{Store, StoreError};
use super::{ClientId, ClientRecord, PublishedEvent, RemovalReason};
use crate::protocol::{CallbackReg, Event, RegType, Reply, StatusCode};
use crate::telemetry;

/// Where the service sends what it committed: the engine's cores.
pub trait Dispatcher: Send + 'static {
    /// A client was added, changed or removed.
    fn client_changed(&self, change: Change);
    /// An event was sequenced and made durable.
    fn event_published(&self, event: Arc<PublishedEvent>);
}

/// Why a publish failed.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// The store could not make the event durable (one error, shared by every request of the
    /// batch whose commit failed).
    #[error("the event could not be made durable: {0}")]
    Store(#[source] Arc<StoreError>),
    /// The service is not running (shutting down).
    #[error("the registry is shutting down")]
    Unavailable,
}

/// A request to the service.
#[derive(Debug)]
enum Request {
    Register {
        ip: IpAddr,
        reg: CallbackReg,
        reply: oneshot::Sender<Reply>,
    },
    Publish {
        events: Vec<Event>,
        accepted_at: Instant,
        reply: oneshot::Sender<Result<Vec<u64>, PublishError>>,
    },
    Drop {
        id: ClientId,
        generation: u64,
        reason: RemovalReason,
    },
    Delete {
        id: ClientId,
        reply: oneshot::Sender<bool>,
    },
    Clients {
        reply: oneshot::Sender<Vec<ClientRecord>>,
    },
}

/// The cheap, cloneable way to talk to the service from any thread or runtime.
#[derive(Debug, Clone)]
pub struct RegistryHandle {
    requests: flume::Sender<Request>,
}

impl RegistryHandle {
    /// Applies a registration from `ip` and returns the reply to send, after it is durable.
    pub async fn register(&self, ip: IpAddr, reg: CallbackReg) -> Reply {
        let (reply, answer) = oneshot::channel();
        if self
            .requests
            .send(Request::Register { ip, reg, reply })
            .is_err()
        {
            return unavailable();
        }
        answer.await.unwrap_or_else(|_| unavailable())
    }

    /// Sequences and persists `events`, in order; returns their sequence numbers.
    pub async fn publish(&self, events: Vec<Event>) -> Result<Vec<u64>, PublishError> {
        let (reply, answer) = oneshot::channel();
        let request = Request::Publish {
            events,
            accepted_at: Instant::now(),
            reply,
        };
        self.requests
            .send(request)
            .map_err(|_| PublishError::Unavailable)?;
        answer.await.map_err(|_| PublishError::Unavailable)?
    }

    /// Removes a client whose deliveries failed, unless it has re-registered since.
    pub fn drop_client(&self, id: ClientId, generation: u64, reason: RemovalReason) {
        // A closed channel means shutdown, when the removal no longer matters.
        let _ = self.requests.send(Request::Drop {
            id,
            generation,
            reason,
        });
    }

    /// Removes a client on an operator's request; false if it was not registered.
    pub async fn delete_client(&self, id: ClientId) -> bool {
        let (reply, answer) = oneshot::channel();
        if self.requests.send(Request::Delete { id, reply }).is_err() {
            return false;
        }
        answer.await.unwrap_or(false)
    }

    /// Requests waiting for the service thread (for a gauge; never blocks).
    pub fn queued(&self) -> usize {
        self.requests.len()
    }

    /// The registered clients.
    pub async fn clients(&self) -> Vec<ClientRecord> {
        let (reply, answer) = oneshot::channel();
        if self.requests.send(Request::Clients { reply }).is_err() {
            return Vec::new();
        }
        answer.await.unwrap_or_default()
    }
}

fn unavailable() -> Reply {
    Reply::new(
        StatusCode::SystemError,
        "the registry is shutting down; try again",
    )
}

/// Settings the service applies.
#[derive(Debug, Clone, Copy)]
pub struct ServiceLimits {
    /// The registry's bounds.
    pub registry: RegistryLimits,
    /// Requests that may share one commit.
    pub max_commit_batch: usize,
}

/// Why the registry service could not start, or stopped on its own.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServiceError {
    /// The store could not be read.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The thread could not be created.
    #[error("cannot start the registry thread: {0}")]
    Thread(#[source] std::io::Error),
    /// After a failed commit the store's lock was released for a reopen, and another crnpd (a
    /// standby) took it: that one is active now, and this one must stop serving at once.
    #[error("{}: another crnpd took the store over after a failed commit; this one stops", path.display())]
    TakenOver {
        /// The store file.
        path: std::path::PathBuf,
    },
}

/// The running service thread: it ends when every handle is dropped, or on a condition that
/// leaves it unable to serve (see [`ServiceError::TakenOver`]).
pub type ServiceThread = JoinHandle<Result<(), ServiceError>>;

/// Starts the service thread on an open store; it stops when every handle is dropped.
pub fn start(
    mut store: Store,
    limits: ServiceLimits,
    dispatcher: impl Dispatcher,
) -> Result<(RegistryHandle, ServiceThread), ServiceError> {
    let contents = store.load()?;
    let registry = Registry::restore(
        limits.registry,
        contents.clients,
        contents.latest,
        contents.next_seq,
    );
    telemetry::clients_registered(registry.client_count());
    telemetry::latest_states(registry.latest_count(), 0);
    // Clients with the same types share one type list, and so one replay list.
    let mut replays: hashbrown::HashMap<*const [crate::protocol::EventType], Replay> =
        hashbrown::HashMap::new();
    for record in registry.clients() {
        let replay = replays
            .entry(Arc::as_ptr(&record.types))
            .or_insert_with(|| registry.latest_for(&record.types));
        dispatcher.client_changed(Change::Upsert {
            record: record.clone(),
            replay: Arc::clone(replay),
        });
    }
    drop(replays);
    let (requests, inbox) = flume::unbounded();
    let mut service = Service {
        registry,
        store,
        limits,
        dispatcher,
    };
    let thread = std::thread::Builder::new()
        .name("crnp-registry".into())
        .spawn(move || service.run(&inbox))
        .map_err(ServiceError::Thread)?;
    Ok((RegistryHandle { requests }, thread))
}

struct Service<D> {
    registry: Registry,
    store: Store,
    limits: ServiceLimits,
    dispatcher: D,
}

/// What to do once a batch is durable.
enum Done {
    Register {
        reply: oneshot::Sender<Reply>,
        outcome: Result<Change, Refusal>,
        form: RegType,
    },
    Publish {
        reply: oneshot::Sender<Result<Vec<u64>, PublishError>>,
        events: Vec<Arc<PublishedEvent>>,
    },
    Removed {
        change: Option<Change>,
        reason: RemovalReason,
    },
    Deleted {
        reply: oneshot::Sender<bool>,
        change: Option<Change>,
    },
    Clients {
        reply: oneshot::Sender<Vec<ClientRecord>>,
    },
}

impl<D: Dispatcher> Service<D> {
    fn run(&mut self, inbox: &flume::Receiver<Request>) -> Result<(), ServiceError> {
        while let Ok(first) = inbox.recv() {
            let mut batch = vec![first];
            batch.extend(
                inbox
                    .try_iter()
                    .take(self.limits.max_commit_batch.saturating_sub(1)),
            );
            let done: Vec<Done> = batch
                .into_iter()
                .map(|request| self.apply(request))
                .collect();
            let dirty = self.registry.take_dirty();
            let started = Instant::now();
            let committed = self.store.commit(&dirty);
            telemetry::commit(done.len(), started.elapsed());
            match committed {
                Ok(()) => {
                    let evicted = self.registry.committed();
                    if evicted > 0 {
                        tracing::info!(
                            evicted,
                            limit = self.limits.registry.max_latest_states,
                            "latest-state table full: the oldest states were forgotten"
                        );
                    }
                    telemetry::latest_states(self.registry.latest_count(), evicted);
                    self.finish(done);
                }
                Err(error) => {
                    telemetry::commit_failed();
                    self.fail(done, Arc::new(error))?;
                }
            }
            telemetry::clients_registered(self.registry.client_count());
        }
        Ok(())
    }

    fn apply(&mut self, request: Request) -> Done {
        match request {
            Request::Register { ip, reg, reply } => {
                let form = reg.reg_type;
                let outcome = self.registry.register(ip, &reg, now_ms());
                Done::Register {
                    reply,
                    outcome,
                    form,
                }
            }
            Request::Publish {
                events,
                accepted_at,
                reply,
            } => {
                let events = events
                    .into_iter()
                    .map(|e| self.registry.publish(e, accepted_at))
                    .collect();
                Done::Publish { reply, events }
            }
            Request::Drop {
                id,
                generation,
                reason,
            } => {
                let removed = self.registry.remove_if_current(id, generation);
                Done::Removed {
                    change: removed.then_some(Change::Remove(id)),
                    reason,
                }
            }
            Request::Delete { id, reply } => Done::Deleted {
                reply,
                change: self.registry.remove(id),
            },
            Request::Clients { reply } => Done::Clients { reply },
        }
    }

    fn finish(&mut self, done: Vec<Done>) {
        for item in done {
            match item {
                Done::Register {
                    reply,
                    outcome,
                    form,
                } => {
                    let answer = match outcome {
                        Ok(change) => {
                            if matches!(change, Change::Remove(_)) {
                                telemetry::client_removed(RemovalReason::RemoveClient);
                            }
                            self.dispatcher.client_changed(change);
                            Reply::new(StatusCode::Ok, accepted(form))
                        }
                        Err(refusal) => Reply::new(refusal.status, refusal.message),
                    };
                    let _ = reply.send(answer);
                }
                Done::Publish { reply, events } => {
                    let seqs = events.iter().map(|e| e.seq).collect();
                    telemetry::events_published(events.len());
                    for event in events {
                        self.dispatcher.event_published(event);
                    }
                    let _ = reply.send(Ok(seqs));
                }
                Done::Removed { change, reason } => {
                    if let Some(Change::Remove(id)) = &change {
                        tracing::info!(client = %id, %reason, "client removed");
                        telemetry::client_removed(reason);
                    }
                }
                Done::Deleted { reply, change } => {
                    let found = change.is_some();
                    if let Some(change) = change {
                        if let Change::Remove(id) = &change {
                            tracing::info!(client = %id, reason = %RemovalReason::Admin, "client removed");
                        }
                        telemetry::client_removed(RemovalReason::Admin);
                        self.dispatcher.client_changed(change);
                    }
                    let _ = reply.send(found);
                }
                Done::Clients { reply } => {
                    let _ = reply.send(self.registry.clients().cloned().collect());
                }
            }
        }
    }

    /// The commit failed: nothing of the batch happened. Undo it in memory (the next commit
    /// rewrites the keys it touched), reopen the store so that redb accepts writes again once
    /// the cause is gone (a full disk), and refuse every request of the batch.
    fn fail(&mut self, done: Vec<Done>, error: Arc<StoreError>) -> Result<(), ServiceError> {
        tracing::error!(%error, requests = done.len(), "registry commit failed; the batch is refused");
        self.registry.rollback();
        let mut taken_over = None;
        match self.store.reopen() {
            Ok(()) => {
                tracing::info!(store = %self.store.path().display(), "store reopened after the failed commit")
            }
            Err(StoreError::Locked { path }) => {
                tracing::error!(store = %path.display(), "another crnpd took the store over during a reopen; stopping");
                taken_over = Some(path);
            }
            Err(reopen) => {
                tracing::error!(error = %reopen, "cannot reopen the store yet; the next commit tries again")
            }
        }
        for item in done {
            match item {
                Done::Register { reply, .. } => {
                    let _ = reply.send(Reply::new(
                        StatusCode::SystemError,
                        format!("registration could not be made durable: {error}"),
                    ));
                }
                Done::Publish { reply, .. } => {
                    let _ = reply.send(Err(PublishError::Store(Arc::clone(&error))));
                }
                Done::Deleted { reply, .. } => {
                    let _ = reply.send(false);
                }
                Done::Clients { reply } => {
                    let _ = reply.send(self.registry.clients().cloned().collect());
                }
                Done::Removed { change, .. } => {
                    // The core dropped the client already, but the registry still holds it
                    // durably: hand it back, so the two agree and its next event is tried again.
                    if let Some(Change::Remove(id)) = change
                        && let Some(record) = self.registry.client(id)
                    {
                        let record = record.clone();
                        self.dispatcher.client_changed(Change::Upsert {
                            record,
                            replay: Replay::from([]),
                        });
                    }
                }
            }
        }
        match taken_over {
            Some(path) => Err(ServiceError::TakenOver { path }),
            None => Ok(()),
        }
    }
}

/// The message of an OK reply (a constant per form: no formatting on the registry thread).
fn accepted(form: RegType) -> &'static str {
    match form {
        RegType::AddClient => "ADD_CLIENT accepted",
        RegType::AddEvents => "ADD_EVENTS accepted",
        RegType::RemoveClient => "REMOVE_CLIENT accepted",
        RegType::RemoveEvents => "REMOVE_EVENTS accepted",
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}
