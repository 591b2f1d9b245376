//! The loopback limit: a minimal connect-write-close sender on its own thread.
//!
//! It does what crnpd does for each delivery and nothing else: a socket bound to the source
//! address, connect, write the serialized SC_EVENT, shut down both directions, close (or, with
//! `await_eof`, crnpd's full-duplex close). The event is written with `MSG_MORE`, so the FIN of
//! the shutdown leaves in the same segment, as crnpd's does. One delivery in flight per
//! subscriber, in sequence order, at most `concurrency` at once. It runs on its own threads
//! with their own runtimes, so its CPU time is its own.

use std::net::{IpAddr, Shutdown, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use crnp::client::connect_from;
use socket2::SockRef;
use tokio::io::{AsyncReadExt, AsyncWriteExt, Interest};
use tokio::net::TcpStream;
use tokio::sync::oneshot;

use crate::procstat::thread_cpu;
use crate::verify::Expectation;

/// What to send where.
#[derive(Debug, Clone)]
pub(crate) struct BlastPlan {
    /// The callback addresses, by subscriber index.
    pub(crate) dests: Vec<SocketAddr>,
    /// What each subscriber expects, by subscriber index.
    pub(crate) expectations: Vec<Expectation>,
    /// The serialized SC_EVENT of each load sequence number.
    pub(crate) payloads: Vec<Bytes>,
    /// The source IP of every connection.
    pub(crate) source: IpAddr,
    /// Connections in flight at most.
    pub(crate) concurrency: usize,
    /// Deadline of one delivery.
    pub(crate) timeout: Duration,
    /// The run's clock origin.
    pub(crate) origin: Instant,
    /// Wait for the receiver's EOF before closing, so the receiver has read everything.
    pub(crate) await_eof: bool,
}

/// What the blaster did.
#[derive(Debug, Clone, Default)]
pub(crate) struct BlastOutcome {
    /// Deliveries written and closed without error.
    pub(crate) sent: u64,
    /// Deliveries that failed (connect, write or timeout).
    pub(crate) errors: u64,
    /// The first failure's reason.
    pub(crate) first_error: Option<String>,
    /// CPU time of the blaster thread.
    pub(crate) cpu: Duration,
    /// When sending started, ns since the origin.
    pub(crate) started_ns: u64,
    /// A failure to start at all (no runtime).
    pub(crate) fatal: Option<String>,
}

/// Starts the blaster on `threads` new threads, each with its own runtime, sharing the
/// subscribers; the merged outcome arrives when every thread is done.
pub(crate) fn spawn(plan: BlastPlan, threads: usize) -> std::io::Result<Blast> {
    let plan = Arc::new(plan);
    let next = Arc::new(AtomicUsize::new(0));
    let threads = threads.clamp(1, plan.concurrency.max(1));
    let mut parts = Vec::with_capacity(threads);
    for thread in 0..threads {
        let (done, outcome) = oneshot::channel();
        let (plan, next) = (Arc::clone(&plan), Arc::clone(&next));
        let workers = plan.concurrency / threads + usize::from(thread < plan.concurrency % threads);
        std::thread::Builder::new()
            .name(format!("crnp-load-blaster-{thread}"))
            .spawn(move || {
                let cpu_before = thread_cpu();
                let mut result = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(runtime) => runtime.block_on(blast(plan, next, workers)),
                    Err(e) => BlastOutcome {
                        fatal: Some(format!("cannot start the blaster runtime: {e}")),
                        ..Default::default()
                    },
                };
                result.cpu = thread_cpu().saturating_sub(cpu_before);
                let _ = done.send(result);
            })?;
        parts.push(outcome);
    }
    Ok(Blast { parts })
}

/// A running blaster.
pub(crate) struct Blast {
    /// One outcome per thread.
    parts: Vec<oneshot::Receiver<BlastOutcome>>,
}

impl Blast {
    /// Waits for every thread and merges their outcomes.
    pub(crate) async fn outcome(self) -> BlastOutcome {
        let mut merged = BlastOutcome {
            started_ns: u64::MAX,
            ..Default::default()
        };
        for part in self.parts {
            let part = part.await.unwrap_or_else(|_| BlastOutcome {
                fatal: Some("a blaster thread died".into()),
                ..Default::default()
            });
            if part.fatal.is_none() {
                merged.started_ns = merged.started_ns.min(part.started_ns);
            }
            merged.absorb(part);
        }
        if merged.started_ns == u64::MAX {
            merged.started_ns = 0;
        }
        merged
    }
}

/// Sends subscribers (taken from the shared `next`) their events with `workers` tasks.
async fn blast(plan: Arc<BlastPlan>, next: Arc<AtomicUsize>, workers: usize) -> BlastOutcome {
    let started_ns = u64::try_from(plan.origin.elapsed().as_nanos()).unwrap_or(u64::MAX);
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..workers.max(1) {
        tasks.spawn(worker(Arc::clone(&plan), Arc::clone(&next)));
    }
    let mut outcome = BlastOutcome {
        started_ns,
        ..Default::default()
    };
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok(part) => outcome.absorb(part),
            Err(e) => outcome.fatal = Some(format!("a blaster task failed: {e}")),
        }
    }
    outcome
}

/// Takes subscribers one by one and sends each its events in order.
async fn worker(plan: Arc<BlastPlan>, next: Arc<AtomicUsize>) -> BlastOutcome {
    let mut outcome = BlastOutcome::default();
    loop {
        let index = next.fetch_add(1, Ordering::Relaxed);
        let (Some(&dest), Some(expect)) = (plan.dests.get(index), plan.expectations.get(index))
        else {
            return outcome;
        };
        let seqs =
            (expect.offset..expect.end).step_by(usize::try_from(expect.stride).unwrap_or(1).max(1));
        for seq in seqs {
            let Some(payload) = usize::try_from(seq).ok().and_then(|i| plan.payloads.get(i)) else {
                continue;
            };
            match tokio::time::timeout(
                plan.timeout,
                deliver(plan.source, dest, payload, plan.await_eof),
            )
            .await
            {
                Ok(Ok(())) => outcome.sent += 1,
                Ok(Err(e)) => outcome.fail(format!("delivery to {dest}: {e}")),
                Err(_) => outcome.fail(format!(
                    "delivery to {dest} timed out after {:?}",
                    plan.timeout
                )),
            }
        }
    }
}

impl BlastOutcome {
    /// Adds another part's counts, CPU and first problems to this one.
    fn absorb(&mut self, part: BlastOutcome) {
        self.sent += part.sent;
        self.errors += part.errors;
        self.cpu += part.cpu;
        if self.first_error.is_none() {
            self.first_error = part.first_error;
        }
        if self.fatal.is_none() {
            self.fatal = part.fatal;
        }
    }

    /// Counts a failure and keeps the first reason.
    fn fail(&mut self, reason: String) {
        self.errors += 1;
        self.first_error.get_or_insert(reason);
    }
}

/// One delivery: bound socket, connect, write, shut down both directions, close; with
/// `await_eof`, shut down writing and wait for the receiver's EOF first.
async fn deliver(
    source: IpAddr,
    dest: SocketAddr,
    payload: &[u8],
    await_eof: bool,
) -> Result<(), Box<dyn std::error::Error>> {
    let mut stream = connect_from(Some(source), dest).await?;
    write_before_fin(&mut stream, payload).await?;
    if await_eof {
        stream.shutdown().await?;
        let mut scratch = [0u8; 64];
        while stream.read(&mut scratch).await? != 0 {}
    } else {
        SockRef::from(&stream).shutdown(Shutdown::Both)?;
    }
    Ok(())
}

/// Writes the event with `MSG_MORE`: the kernel holds it until the shutdown that follows,
/// which sends it with the FIN in one segment. What the send buffer does not take at once is
/// written normally.
async fn write_before_fin(stream: &mut TcpStream, payload: &[u8]) -> std::io::Result<()> {
    let flags = libc::MSG_MORE | libc::MSG_NOSIGNAL;
    let shared: &TcpStream = stream;
    let sent = match shared.try_io(Interest::WRITABLE, || {
        SockRef::from(shared).send_with_flags(payload, flags)
    }) {
        Ok(sent) => sent,
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => 0,
        Err(e) => return Err(e),
    };
    stream.write_all(&payload[sent..]).await
}
