//! The subscribers' callback listeners: accept, read to EOF, parse, record, close.
//!
//! One task per listener handles its deliveries one after another (the server delivers one
//! event at a time per client). Each delivery is checked against the subscriber's
//! [`Verifier`] and, when it is new, its publish-to-delivery latency is recorded.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use std::io::{ErrorKind, Read};

use crnp::client::{ClientError, ReceivedEvent, within};
use crnp::protocol::{Event, Limits};
use socket2::{Domain, Socket, Type};
use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncReadExt, Interest};
use tokio::net::TcpStream;
use tokio::sync::{Notify, Semaphore, watch};
use tokio::task::JoinSet;

use crate::plan::load_ids;
use crate::stats::Latencies;
use crate::verify::{Counts, Expectation, Verifier};

/// Pending connections each callback socket queues.
const BACKLOG: i32 = 128;
/// Pause after a failed accept (e.g. out of file descriptors), so the loop does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(10);

/// What the sink tasks share with the driver.
struct Shared {
    /// The run's clock origin: every timestamp is nanoseconds since it.
    origin: Instant,
    /// The phase whose events count; others are stragglers.
    phase: AtomicU64,
    /// Per subscriber verification state, indexed like the listeners.
    verifiers: Vec<Mutex<Verifier>>,
    /// Publish time of each load sequence number (0: not published by a timed publisher).
    sent_ns: Vec<AtomicU64>,
    /// Latencies of first receipts in this phase.
    latencies: Mutex<Latencies>,
    /// First receipts of expected events in this phase.
    delivered: AtomicU64,
    /// First receipts after which the phase is complete.
    target: AtomicU64,
    /// Woken when `delivered` reaches `target`.
    complete: Notify,
    /// Time of the latest first receipt.
    last_delivery_ns: AtomicU64,
    /// Deliveries of an earlier phase.
    stale: AtomicU64,
    /// Deliveries that could not be read or parsed, or carried no load ids.
    bad: AtomicU64,
    /// The first bad delivery's reason, to show the operator.
    first_bad: Mutex<Option<String>>,
    /// Parser limits (the size limit of one event).
    limits: Limits,
    /// Deadline for reading one delivery.
    read_timeout: Duration,
    /// Bounds the accepted connections open at once, so the listeners never run out of file
    /// descriptors; connections beyond it wait in the kernel's accept queue.
    open_connections: Semaphore,
}

/// Locks a mutex, keeping the data of a task that panicked while holding it.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Shared {
    /// Nanoseconds since the run's origin.
    fn now_ns(&self) -> u64 {
        u64::try_from(self.origin.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    /// Accounts one delivery to subscriber `index`.
    fn deliver(&self, index: usize, delivery: Result<ReceivedEvent, ClientError>) {
        let received = match delivery {
            Ok(received) => received,
            Err(e) => return self.note_bad(e.to_string()),
        };
        let Some((seq, phase)) = load_ids(&received.event) else {
            return self.note_bad(format!(
                "an event from {} carries no load ids",
                received.peer
            ));
        };
        if phase != self.phase.load(Ordering::Relaxed) {
            self.stale.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let Some(verifier) = self.verifiers.get(index) else {
            return;
        };
        if !lock(verifier).record(seq).is_new() {
            return;
        }
        let now = self.now_ns();
        let sent = usize::try_from(seq)
            .ok()
            .and_then(|i| self.sent_ns.get(i))
            .map_or(0, |t| t.load(Ordering::Relaxed));
        if sent != 0 {
            lock(&self.latencies).record_ns(now.saturating_sub(sent));
        }
        self.last_delivery_ns.fetch_max(now, Ordering::Relaxed);
        if self.delivered.fetch_add(1, Ordering::Relaxed) + 1 == self.target.load(Ordering::Relaxed)
        {
            self.complete.notify_one();
        }
    }

    /// Counts a bad delivery and keeps the first reason.
    fn note_bad(&self, reason: String) {
        self.bad.fetch_add(1, Ordering::Relaxed);
        lock(&self.first_bad).get_or_insert(reason);
    }
}

/// The tallies of one phase.
#[derive(Debug, Clone)]
pub(crate) struct PhaseTally {
    /// Summed verification counts.
    pub(crate) counts: Counts,
    /// Publish-to-delivery latencies (empty when events were not timed).
    pub(crate) latencies: Latencies,
    /// Time of the last first receipt, ns since the origin.
    pub(crate) last_delivery_ns: u64,
    /// Deliveries left over from an earlier phase.
    pub(crate) stale: u64,
    /// Deliveries that could not be read or parsed.
    pub(crate) bad: u64,
    /// The first bad delivery's reason.
    pub(crate) first_bad: Option<String>,
}

/// Running callback listeners, one per subscriber.
pub(crate) struct Sinks {
    /// Bound callback addresses, by subscriber index.
    addrs: Vec<SocketAddr>,
    /// State shared with the tasks.
    shared: Arc<Shared>,
    /// Tells the tasks to stop.
    stop: watch::Sender<bool>,
    /// The listener tasks.
    tasks: JoinSet<()>,
}

impl Sinks {
    /// Binds one listener per address in `addrs` (port 0 picks a port) and starts serving,
    /// with at most `max_open` accepted connections open at once. `max_seq` is one past the
    /// highest load sequence number any phase will publish.
    pub(crate) fn start(
        addrs: impl IntoIterator<Item = SocketAddr>,
        origin: Instant,
        max_seq: u64,
        read_timeout: Duration,
        max_open: usize,
    ) -> Result<Self, ClientError> {
        let listeners = addrs.into_iter().map(bind).collect::<Result<Vec<_>, _>>()?;
        let addrs: Vec<SocketAddr> = listeners.iter().map(|(_, addr)| *addr).collect();
        let shared = Arc::new(Shared {
            origin,
            phase: AtomicU64::new(0),
            verifiers: addrs
                .iter()
                .map(|_| Mutex::new(Verifier::new(Expectation::NONE)))
                .collect(),
            sent_ns: (0..max_seq).map(|_| AtomicU64::new(0)).collect(),
            latencies: Mutex::new(Latencies::new()),
            delivered: AtomicU64::new(0),
            target: AtomicU64::new(u64::MAX),
            complete: Notify::new(),
            last_delivery_ns: AtomicU64::new(0),
            stale: AtomicU64::new(0),
            bad: AtomicU64::new(0),
            first_bad: Mutex::new(None),
            limits: Limits::default(),
            read_timeout,
            open_connections: Semaphore::new(max_open.max(1)),
        });
        let (stop, stopped) = watch::channel(false);
        let mut tasks = JoinSet::new();
        for (index, (listener, _)) in listeners.into_iter().enumerate() {
            tasks.spawn(serve(listener, index, Arc::clone(&shared), stopped.clone()));
        }
        Ok(Self {
            addrs,
            shared,
            stop,
            tasks,
        })
    }

    /// The callback addresses, by subscriber index.
    pub(crate) fn addrs(&self) -> &[SocketAddr] {
        &self.addrs
    }

    /// Starts counting phase `phase`, with subscriber `i` expecting `expect(i)`.
    pub(crate) fn begin_phase(&self, phase: u64, expect: impl Fn(usize) -> Expectation) {
        let shared = &self.shared;
        let mut target = 0;
        for (index, verifier) in shared.verifiers.iter().enumerate() {
            let expectation = expect(index);
            target += expectation.count();
            *lock(verifier) = Verifier::new(expectation);
        }
        for sent in &shared.sent_ns {
            sent.store(0, Ordering::Relaxed);
        }
        lock(&shared.latencies).reset();
        *lock(&shared.first_bad) = None;
        for counter in [
            &shared.delivered,
            &shared.last_delivery_ns,
            &shared.stale,
            &shared.bad,
        ] {
            counter.store(0, Ordering::Relaxed);
        }
        shared.target.store(target, Ordering::Relaxed);
        shared.phase.store(phase, Ordering::Relaxed);
    }

    /// Notes that load sequence number `seq` is being published now; returns the time in ns.
    pub(crate) fn mark_sent(&self, seq: u64) -> u64 {
        let now = self.shared.now_ns();
        self.mark_sent_at(seq, now);
        now
    }

    /// Notes that load sequence number `seq` was published at `ns` since the origin.
    pub(crate) fn mark_sent_at(&self, seq: u64, ns: u64) {
        if let Some(sent) = usize::try_from(seq)
            .ok()
            .and_then(|i| self.shared.sent_ns.get(i))
        {
            sent.store(ns.max(1), Ordering::Relaxed);
        }
    }

    /// Nanoseconds since the run's origin.
    pub(crate) fn now_ns(&self) -> u64 {
        self.shared.now_ns()
    }

    /// First receipts so far in this phase, and how many complete it.
    pub(crate) fn progress(&self) -> (u64, u64) {
        (
            self.shared.delivered.load(Ordering::Relaxed),
            self.shared.target.load(Ordering::Relaxed),
        )
    }

    /// Waits until every expected event arrived, or until nothing new arrived for `quiet`.
    /// `tick` is called about ten times a second with the progress. Returns true when complete.
    pub(crate) async fn wait(&self, quiet: Duration, mut tick: impl FnMut(u64, u64)) -> bool {
        let mut timer = tokio::time::interval(Duration::from_millis(100));
        let (mut seen, _) = self.progress();
        let mut last_change = Instant::now();
        loop {
            let (delivered, target) = self.progress();
            tick(delivered, target);
            if delivered >= target {
                return true;
            }
            if delivered != seen {
                seen = delivered;
                last_change = Instant::now();
            } else if last_change.elapsed() >= quiet {
                return false;
            }
            tokio::select! {
                _ = self.shared.complete.notified() => {}
                _ = timer.tick() => {}
            }
        }
    }

    /// The tallies of the current phase so far.
    pub(crate) fn tally(&self) -> PhaseTally {
        let shared = &self.shared;
        let mut counts = Counts::default();
        for verifier in &shared.verifiers {
            counts += lock(verifier).counts();
        }
        PhaseTally {
            counts,
            latencies: lock(&shared.latencies).clone(),
            last_delivery_ns: shared.last_delivery_ns.load(Ordering::Relaxed),
            stale: shared.stale.load(Ordering::Relaxed),
            bad: shared.bad.load(Ordering::Relaxed),
            first_bad: lock(&shared.first_bad).clone(),
        }
    }

    /// Stops every listener and waits for the tasks (each finishes within the read timeout).
    pub(crate) async fn stop(mut self) {
        let _ = self.stop.send(true);
        while self.tasks.join_next().await.is_some() {}
    }
}

/// A non-blocking listening socket on `addr` (port 0 picks one), and its bound address.
fn bind(addr: SocketAddr) -> Result<(AsyncFd<std::net::TcpListener>, SocketAddr), ClientError> {
    let listen = |source| ClientError::Listen { addr, source };
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None).map_err(listen)?;
    socket.set_reuse_address(true).map_err(listen)?;
    socket.set_nonblocking(true).map_err(listen)?;
    socket.bind(&addr.into()).map_err(listen)?;
    socket.listen(BACKLOG).map_err(listen)?;
    let listener = std::net::TcpListener::from(socket);
    let local = listener.local_addr().map_err(listen)?;
    // SAFETY: the AsyncFd owns the listener, whose descriptor stays open and unchanged until
    // the AsyncFd drops it.
    let registered = unsafe { AsyncFd::register_with_interest(listener, Interest::READABLE) };
    Ok((registered.map_err(|e| listen(e.into()))?, local))
}

/// Serves one callback address until told to stop.
///
/// It waits for a pending connection before it takes a connection slot, so idle listeners
/// hold no slots and a listener with work never waits behind them.
async fn serve(
    listener: AsyncFd<std::net::TcpListener>,
    index: usize,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let ready = tokio::select! {
            biased;
            _ = stop.changed() => return,
            ready = listener.readable() => ready,
        };
        let mut ready = match ready {
            Ok(ready) => ready,
            Err(e) => return shared.note_bad(format!("listener {index} failed: {e}")),
        };
        let permit = tokio::select! {
            biased;
            _ = stop.changed() => return,
            permit = shared.open_connections.acquire() => permit,
        };
        let accepted = match ready.try_io(|inner| inner.get_ref().accept()) {
            Ok(accepted) => accepted,
            Err(_would_block) => continue,
        };
        match accepted
            .and_then(|(stream, peer)| stream.set_nonblocking(true).map(|()| (stream, peer)))
        {
            Ok((stream, peer)) => {
                let delivery = receive(stream, peer, &shared).await;
                drop(permit);
                shared.deliver(index, delivery);
            }
            Err(e) => {
                drop(permit);
                shared.note_bad(format!("accept failed: {e}"));
                tokio::time::sleep(ACCEPT_BACKOFF).await;
            }
        }
    }
}

/// Reads one delivery to EOF and parses it. The whole event and the sender's FIN are usually
/// queued by the time the connection is accepted, so it first reads without registering the
/// socket with the runtime, and falls back to an async read under the deadline only when the
/// data is not all there yet.
async fn receive(
    stream: std::net::TcpStream,
    peer: SocketAddr,
    shared: &Shared,
) -> Result<ReceivedEvent, ClientError> {
    let limit = shared.limits.max_message_bytes;
    let mut raw = Vec::with_capacity(1024);
    let mut chunk = [0u8; 4096];
    loop {
        match (&stream).read(&mut chunk) {
            Ok(0) => return parse(raw, peer, &shared.limits),
            Ok(n) if raw.len() + n > limit => {
                return Err(ClientError::TooLarge { addr: peer, limit });
            }
            Ok(n) => raw.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) if e.kind() == ErrorKind::WouldBlock => break,
            Err(source) => return Err(ClientError::Io { addr: peer, source }),
        }
    }
    let mut stream =
        TcpStream::from_std(stream).map_err(|source| ClientError::Io { addr: peer, source })?;
    let rest = async {
        loop {
            let n = stream
                .read(&mut chunk)
                .await
                .map_err(|source| ClientError::Io { addr: peer, source })?;
            if n == 0 {
                return Ok(());
            }
            if raw.len() + n > limit {
                return Err(ClientError::TooLarge { addr: peer, limit });
            }
            raw.extend_from_slice(&chunk[..n]);
        }
    };
    let timeout = shared.read_timeout;
    within(peer, timeout, "reading an SC_EVENT", rest).await?;
    parse(raw, peer, &shared.limits)
}

/// Parses a complete delivery.
fn parse(raw: Vec<u8>, peer: SocketAddr, limits: &Limits) -> Result<ReceivedEvent, ClientError> {
    let event = Event::parse(&raw, limits)
        .map_err(|source| ClientError::Protocol { addr: peer, source })?;
    Ok(ReceivedEvent { event, raw, peer })
}
