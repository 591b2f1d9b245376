//! The registry service: one thread that owns the registry and its store.
//!
//! It is the single sequencer of the system. Registrations, publishes and removals arrive on
//! one channel; the thread drains whatever is waiting (up to `max_commit_batch`), applies it in
//! arrival order, makes all of it durable with ONE commit (group commit), and only then hands
//! the changes to the engine and answers the callers. Because client changes and events leave
//! in that same order, a client registered before an event sees it, and one registered after
//! gets it as the latest state instead: nothing falls between the two.
//!
//! Every event is appended to the store's event log in the commit that acknowledges it. The
//! cores report their clients' cursors now and then ([`RegistryHandle::report_cursors`]); the
//! reports ride in the next group commit. At start-up each client's queue is rebuilt from its
//! cursor ([`Recovery`]).

use std::net::IpAddr;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::sync::oneshot;

use super::cursor::{CursorReport, Dispatched};
use super::recovery::Recovery;
use super::state::{Change, Refusal, Registry, RegistryLimits, Replay};
use super::store::{LogEntry, Retention, Store, StoreError};
use super::{ClientId, ClientRecord, PublishedEvent, RemovalReason, matches};
use crate::protocol::{CallbackReg, Event, RegType, Reply, StatusCode};
use crate::telemetry;

/// Where the service sends what it committed: the engine's cores.
pub trait Dispatcher: Send + 'static {
    /// A client was added, changed or removed; says which core got the change, and where in
    /// that core's stream of commands.
    fn client_changed(&self, change: Change) -> Dispatched;
    /// An event was sequenced and made durable.
    fn event_published(&self, event: Arc<PublishedEvent>);
    /// The number of cores, each of which reports cursors.
    fn cores(&self) -> usize;
}

/// A page of the retained event log.
#[derive(Debug, Clone)]
pub struct LogPage {
    /// The entries, in sequence order.
    pub entries: Vec<LogEntry>,
    /// The first retained sequence number, `None` when the log is empty.
    pub oldest: Option<u64>,
    /// The next sequence number to be handed out.
    pub next_seq: u64,
}

/// Why an operator's replay was not queued.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// The client is not registered.
    #[error("the client is not registered")]
    NotRegistered,
    /// The log could not be read.
    #[error("the event log could not be read: {0}")]
    Store(#[source] Arc<StoreError>),
    /// The service is not running (shutting down).
    #[error("the registry is shutting down")]
    Unavailable,
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
    Cursors(CursorReport),
    Query(Query),
}

/// A request answered once its batch's commit is settled, from the state after it.
#[derive(Debug)]
enum Query {
    Clients {
        reply: oneshot::Sender<Vec<ClientRecord>>,
    },
    Log {
        after: Option<u64>,
        limit: usize,
        reply: oneshot::Sender<Result<LogPage, Arc<StoreError>>>,
    },
    Replay {
        id: ClientId,
        after: Option<u64>,
        reply: oneshot::Sender<Result<usize, ReplayError>>,
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

    /// Hands the service a core's cursor report; the next commit writes it.
    pub fn report_cursors(&self, report: CursorReport) {
        // A closed channel means shutdown has passed the last commit: nothing to write to.
        let _ = self.requests.send(Request::Cursors(report));
    }

    /// Up to `limit` retained log entries after `after` (from the oldest without it).
    pub async fn log(&self, after: Option<u64>, limit: usize) -> Result<LogPage, PublishError> {
        let (reply, answer) = oneshot::channel();
        self.requests
            .send(Request::Query(Query::Log {
                after,
                limit,
                reply,
            }))
            .map_err(|_| PublishError::Unavailable)?;
        answer
            .await
            .map_err(|_| PublishError::Unavailable)?
            .map_err(PublishError::Store)
    }

    /// Queues again, for client `id`, every retained event after `after` that matches its
    /// types, in order, behind what it has queued; returns how many.
    pub async fn replay(&self, id: ClientId, after: Option<u64>) -> Result<usize, ReplayError> {
        let (reply, answer) = oneshot::channel();
        self.requests
            .send(Request::Query(Query::Replay { id, after, reply }))
            .map_err(|_| ReplayError::Unavailable)?;
        answer.await.map_err(|_| ReplayError::Unavailable)?
    }

    /// Requests waiting for the service thread (for a gauge; never blocks).
    pub fn queued(&self) -> usize {
        self.requests.len()
    }

    /// The registered clients.
    pub async fn clients(&self) -> Vec<ClientRecord> {
        let (reply, answer) = oneshot::channel();
        if self
            .requests
            .send(Request::Query(Query::Clients { reply }))
            .is_err()
        {
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
    /// How much of the event log is kept.
    pub retention: Retention,
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
/// Before it returns, every client has been handed to its core with what it is owed: the
/// events after its cursor, and the latest states the log cannot give it.
pub fn start(
    mut store: Store,
    limits: ServiceLimits,
    dispatcher: impl Dispatcher,
) -> Result<(RegistryHandle, ServiceThread), ServiceError> {
    store.set_retention(limits.retention);
    let contents = store.load()?;
    let stats = contents.log;
    let mut registry = Registry::restore(
        limits.registry,
        contents.clients,
        contents.latest,
        contents.next_seq,
        contents.cursors,
    );
    let oldest = stats.oldest.unwrap_or(registry.next_seq());
    let lowest = registry
        .clients()
        .map(|record| registry.resume(record.id).from)
        .min()
        .unwrap_or(u64::MAX);
    let log = if lowest < registry.next_seq() {
        store.read_log_events(lowest.max(oldest))?
    } else {
        Vec::new()
    };
    let recovery = Recovery::plan(&registry, &log, oldest);
    drop(log);
    telemetry::clients_registered(registry.client_count());
    telemetry::latest_states(registry.latest_count(), 0);
    telemetry::event_log(stats.entries, stats.bytes, oldest);
    telemetry::log_recovered(recovery.from_log, recovery.resynced);
    if recovery.from_log > 0 || recovery.resynced > 0 {
        tracing::info!(
            deliveries = recovery.from_log,
            resynced_clients = recovery.resynced,
            oldest_retained = oldest,
            "recovered every client's backlog from the event log"
        );
    }
    if recovery.resynced > 0 {
        tracing::warn!(
            clients = recovery.resynced,
            oldest_retained = oldest,
            "the event log no longer held every event after these clients' cursors: they get the latest state of their types instead"
        );
    }
    for recovered in recovery.clients {
        let id = recovered.record.id;
        let before = registry.resume(id);
        let owed = !recovered.replay.is_empty() || !recovered.backlog.is_empty();
        if recovered.resume != before && (owed || before.from < oldest) {
            registry.set_resume(id, recovered.resume);
        }
        let sent = dispatcher.client_changed(Change::Upsert {
            record: recovered.record,
            replay: recovered.replay,
            backlog: recovered.backlog,
        });
        registry.dispatched(id, sent);
    }
    let (requests, inbox) = flume::unbounded();
    let mut service = Service {
        registry,
        store,
        limits,
        failed_in_a_row: 0,
        cursors_wait_until: None,
        cursor_pause: Duration::ZERO,
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
    /// Commits that failed in a row: while the disk stays full, cursor reports would
    /// otherwise log a failure every few milliseconds.
    failed_in_a_row: u64,
    /// After a batch of cursor reports alone failed to commit, the next such batch is not
    /// committed before this time (their rows stay dirty and ride the next commit): each
    /// failed commit reopens the store, and while the disk stays full a report every
    /// `--cursor-interval` would do that ten times a second. Registrations and publishes are
    /// always tried at once, and carry the rows with them.
    cursors_wait_until: Option<Instant>,
    /// The last pause of cursor-only commits: 1 s doubling to 10 s while they fail.
    cursor_pause: Duration,
    dispatcher: D,
}

/// The first pause of cursor-only commits after a failed commit.
const CURSOR_COMMIT_PAUSE_MIN: Duration = Duration::from_secs(1);
/// The longest pause of cursor-only commits while commits keep failing.
const CURSOR_COMMIT_PAUSE_MAX: Duration = Duration::from_secs(10);

/// The pause after another failed cursor-only commit, `last` the one before (zero at first).
fn next_cursor_pause(last: Duration) -> Duration {
    (last * 2).clamp(CURSOR_COMMIT_PAUSE_MIN, CURSOR_COMMIT_PAUSE_MAX)
}

/// True when a batch holds cursor reports alone (or nothing: a pause that ended).
fn cursors_alone(done: &[Done]) -> bool {
    done.iter().all(|item| matches!(item, Done::Cursors))
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
    Cursors,
    Query(Query),
}

impl<D: Dispatcher> Service<D> {
    fn run(&mut self, inbox: &flume::Receiver<Request>) -> Result<(), ServiceError> {
        // Cursor rows a pause held back: they are committed when the pause ends, even if no
        // request comes, and at the latest when the service stops.
        let mut held = false;
        loop {
            let first = match self.cursors_wait_until.filter(|_| held) {
                Some(until) => match inbox.recv_deadline(until) {
                    Ok(request) => Some(request),
                    Err(flume::RecvTimeoutError::Timeout) => None,
                    Err(flume::RecvTimeoutError::Disconnected) => break,
                },
                None => match inbox.recv() {
                    Ok(request) => Some(request),
                    Err(flume::RecvError::Disconnected) => break,
                },
            };
            let mut batch: Vec<Request> = first.into_iter().collect();
            let room = self.limits.max_commit_batch.max(1) - batch.len();
            batch.extend(inbox.try_iter().take(room));
            let done: Vec<Done> = batch
                .into_iter()
                .map(|request| self.apply(request))
                .collect();
            held = self.cursors_paused(&done);
            if !held {
                self.commit(done)?;
            }
        }
        if held {
            self.commit(Vec::new())?;
        }
        Ok(())
    }

    /// Commits what the batch `done` changed and answers it.
    fn commit(&mut self, done: Vec<Done>) -> Result<(), ServiceError> {
        let cursors_only = cursors_alone(&done);
        let dirty = self.registry.take_dirty();
        let cursors_written = !dirty.cursors.is_empty() || dirty.floor.is_some();
        let started = Instant::now();
        let committed = self.store.commit(&dirty);
        telemetry::commit(done.len(), started.elapsed());
        drop(dirty);
        match committed {
            Ok(()) => {
                if self.failed_in_a_row > 0 {
                    tracing::info!(
                        failed_in_a_row = self.failed_in_a_row,
                        "registry commits succeed again"
                    );
                    self.failed_in_a_row = 0;
                }
                self.cursor_pause = Duration::ZERO;
                self.cursors_wait_until = None;
                if cursors_written {
                    telemetry::cursor_batch(self.registry.cursor_rows().count());
                }
                self.log_committed();
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
                if cursors_only {
                    self.cursor_pause = next_cursor_pause(self.cursor_pause);
                    self.cursors_wait_until = Some(Instant::now() + self.cursor_pause);
                }
                self.fail(done, Arc::new(error))?;
            }
        }
        telemetry::clients_registered(self.registry.client_count());
        Ok(())
    }

    /// True when `done` holds cursor reports alone and commits are paused for them after such a
    /// commit failed; the reports were applied, so their rows go with the next commit.
    fn cursors_paused(&self, done: &[Done]) -> bool {
        self.cursors_wait_until
            .is_some_and(|until| Instant::now() < until)
            && cursors_alone(done)
    }

    /// Updates the log's gauges after a commit, and warns about clients whose cursor the
    /// retention bounds just passed (each once).
    fn log_committed(&mut self) {
        let stats = self.store.log_stats();
        let oldest = stats.oldest.unwrap_or(self.registry.next_seq());
        telemetry::event_log(stats.entries, stats.bytes, oldest);
        let behind = self.registry.newly_behind(oldest);
        if let Some(first) = behind.first() {
            telemetry::cursors_overrun(behind.len());
            tracing::warn!(
                clients = behind.len(),
                first = %first,
                oldest_retained = oldest,
                max_events = self.limits.retention.max_events,
                max_bytes = self.limits.retention.max_bytes,
                "log retention passed these clients' cursors: if crnpd stops before they catch up, they get the latest state of their types instead of the events they missed"
            );
        }
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
            Request::Cursors(report) => {
                let cores = self.dispatcher.cores();
                self.registry.apply_cursor_report(&report, cores);
                Done::Cursors
            }
            Request::Query(query) => Done::Query(query),
        }
    }

    /// Answers a query; after a failed commit (`failed`) the ones that read the store get its error.
    fn answer(&mut self, query: Query, failed: Option<&Arc<StoreError>>) {
        match (query, failed) {
            (Query::Clients { reply }, _) => {
                let _ = reply.send(self.registry.clients().cloned().collect());
            }
            (Query::Log { reply, .. }, Some(error)) => {
                let _ = reply.send(Err(Arc::clone(error)));
            }
            (
                Query::Log {
                    after,
                    limit,
                    reply,
                },
                None,
            ) => {
                let _ = reply.send(self.log_page(after, limit));
            }
            (Query::Replay { reply, .. }, Some(error)) => {
                let _ = reply.send(Err(ReplayError::Store(Arc::clone(error))));
            }
            (Query::Replay { id, after, reply }, None) => {
                let _ = reply.send(self.replay(id, after));
            }
        }
    }

    /// A page of the log, read after the commit (which may have trimmed it).
    fn log_page(&self, after: Option<u64>, limit: usize) -> Result<LogPage, Arc<StoreError>> {
        let from = after.map_or(0, |seq| seq.saturating_add(1));
        let entries = self.store.read_log(from, limit).map_err(Arc::new)?;
        Ok(LogPage {
            entries,
            oldest: self.store.log_stats().oldest,
            next_seq: self.registry.next_seq(),
        })
    }

    /// Queues the retained events after `after` that match `id`'s types for it again, as a
    /// latest-state run (a crash before they are delivered brings the latest states instead).
    fn replay(&mut self, id: ClientId, after: Option<u64>) -> Result<usize, ReplayError> {
        let record = self
            .registry
            .client(id)
            .cloned()
            .ok_or(ReplayError::NotRegistered)?;
        let from = after.map_or(0, |seq| seq.saturating_add(1));
        let events = self
            .store
            .read_log_events(from)
            .map_err(|e| ReplayError::Store(Arc::new(e)))?;
        let matching: Replay = events
            .into_iter()
            .filter(|e| record.types.iter().any(|t| matches(t, &e.event)))
            .collect::<Vec<_>>()
            .into();
        let count = matching.len();
        if let Some(first) = matching.first() {
            self.registry.states_queued(id, first.seq);
            let sent = self.dispatcher.client_changed(Change::Requeue {
                id,
                events: matching,
            });
            self.registry.dispatched(id, sent);
        }
        Ok(count)
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
                            let id = change.client();
                            let sent = self.dispatcher.client_changed(change);
                            self.registry.dispatched(id, sent);
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
                    if let Some(change @ Change::Remove(id)) = change {
                        tracing::info!(client = %id, %reason, "client removed");
                        telemetry::client_removed(reason);
                        // The core dropped the client already, but a change of its types sent
                        // before this removal may have put it back there since: remove it
                        // there too (a no-op otherwise).
                        self.dispatcher.client_changed(change);
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
                Done::Cursors => {}
                Done::Query(query) => self.answer(query, None),
            }
        }
    }

    /// The commit failed: nothing of the batch happened. Undo it in memory (the next commit
    /// rewrites the keys it touched), reopen the store so that redb accepts writes again once
    /// the cause is gone (a full disk), and refuse every request of the batch.
    fn fail(&mut self, done: Vec<Done>, error: Arc<StoreError>) -> Result<(), ServiceError> {
        self.failed_in_a_row += 1;
        // The first failure, then the 2nd, 4th, 8th...: a full disk is said at once, and then
        // again less and less often while it lasts.
        let loud = self.failed_in_a_row.is_power_of_two();
        if loud {
            tracing::error!(%error, requests = done.len(), failed_in_a_row = self.failed_in_a_row, "registry commit failed; the batch is refused");
        }
        self.registry.rollback();
        let mut taken_over = None;
        match self.store.reopen() {
            Ok(()) => {
                if loud {
                    tracing::info!(store = %self.store.path().display(), "store reopened after the failed commit");
                }
            }
            Err(StoreError::Locked { path }) => {
                tracing::error!(store = %path.display(), "another crnpd took the store over during a reopen; stopping");
                taken_over = Some(path);
            }
            Err(reopen) => {
                if loud {
                    tracing::error!(error = %reopen, "cannot reopen the store yet; the next commit tries again");
                }
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
                Done::Cursors => {}
                Done::Query(query) => self.answer(query, Some(&error)),
                Done::Removed { change, .. } => {
                    // The core dropped the client already, but the registry still holds it
                    // durably: hand it back, so the two agree and its next event is tried again.
                    if let Some(Change::Remove(id)) = change
                        && let Some(record) = self.registry.client(id)
                    {
                        let record = record.clone();
                        let sent = self.dispatcher.client_changed(Change::Upsert {
                            record,
                            replay: Replay::from([]),
                            backlog: Replay::from([]),
                        });
                        self.registry.dispatched(id, sent);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_only_commits_pause_1_s_doubling_to_10_s() {
        let mut pause = Duration::ZERO;
        let pauses: Vec<u64> = (0..6)
            .map(|_| {
                pause = next_cursor_pause(pause);
                pause.as_secs()
            })
            .collect();
        assert_eq!(pauses, [1, 2, 4, 8, 10, 10]);
    }
}
