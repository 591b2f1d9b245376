//! A sink worker: a child `crnp-load --sink-worker` serving a share of the subscribers, for
//! runs with more subscribers than one process's descriptor limit holds (see [`crate::pool`]).
//!
//! It speaks JSON lines on its standard input and output: one [`WorkerSpec`], answered
//! [`Reply::Ready`] with the bound addresses (or [`Reply::Failed`]); then one [`Command`] per
//! line, each answered by one [`Reply`], until [`Command::Stop`]. Timestamps are nanoseconds
//! since the parent's origin: both processes read the same monotonic clock.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

use crate::sinks::{PhaseTally, Sinks};
use crate::stats::Latencies;
use crate::verify::{Counts, Expectation};

/// What a worker serves.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct WorkerSpec {
    /// The callback addresses to bind.
    pub(crate) addrs: Vec<SocketAddr>,
    /// The parent's origin on the monotonic clock, ns.
    pub(crate) origin_mono_ns: u64,
    /// One past the highest load sequence number.
    pub(crate) max_seq: u64,
    /// Deadline of one delivery read, s.
    pub(crate) read_timeout_s: f64,
    /// Accepted connections open at once.
    pub(crate) max_open: usize,
}

/// A request from the parent.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) enum Command {
    /// Start counting `phase`, subscriber `i` of this worker expecting `expectations[i]`.
    Begin {
        /// The phase number.
        phase: u64,
        /// By subscriber index within the worker.
        expectations: Vec<Expectation>,
    },
    /// Load sequence number `seq` was published at `ns`.
    Sent {
        /// The sequence number.
        seq: u64,
        /// When, ns since the origin.
        ns: u64,
    },
    /// How many first receipts so far, of how many.
    Progress,
    /// The tallies of the phase so far.
    Tally,
    /// Stop serving and exit.
    Stop,
}

/// A worker's answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) enum Reply {
    /// Listening on these addresses, in the order asked.
    Ready {
        /// The bound addresses.
        addrs: Vec<SocketAddr>,
    },
    /// Could not start.
    Failed {
        /// Why.
        error: String,
    },
    /// Done as asked.
    Done,
    /// First receipts so far and how many complete the phase.
    Progress {
        /// First receipts.
        delivered: u64,
        /// Expected.
        target: u64,
    },
    /// The phase's tallies.
    Tally(WireTally),
}

/// [`PhaseTally`] as it crosses the pipe.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct WireTally {
    counts: Counts,
    latencies: Vec<(u64, u64)>,
    last_delivery_ns: u64,
    stale: u64,
    bad: u64,
    first_bad: Option<String>,
}

impl From<PhaseTally> for WireTally {
    fn from(tally: PhaseTally) -> Self {
        WireTally {
            counts: tally.counts,
            latencies: tally.latencies.to_counts(),
            last_delivery_ns: tally.last_delivery_ns,
            stale: tally.stale,
            bad: tally.bad,
            first_bad: tally.first_bad,
        }
    }
}

impl From<WireTally> for PhaseTally {
    fn from(tally: WireTally) -> Self {
        PhaseTally {
            counts: tally.counts,
            latencies: Latencies::from_counts(&tally.latencies),
            last_delivery_ns: tally.last_delivery_ns,
            stale: tally.stale,
            bad: tally.bad,
            first_bad: tally.first_bad,
        }
    }
}

/// The monotonic clock (the one `Instant` reads), ns.
pub(crate) fn monotonic_ns() -> u64 {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec to a live, writable struct.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now) };
    u64::try_from(now.tv_sec).unwrap_or(0) * 1_000_000_000 + u64::try_from(now.tv_nsec).unwrap_or(0)
}

/// Runs a worker on standard input and output until told to stop; returns the exit code.
pub(crate) async fn run() -> u8 {
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    let mut out = tokio::io::stdout();
    let spec: WorkerSpec = match lines.next_line().await {
        Ok(Some(line)) => match serde_json::from_str(&line) {
            Ok(spec) => spec,
            Err(e) => return fail(&mut out, format!("bad worker spec: {e}")).await,
        },
        _ => return 2,
    };
    let since_origin = monotonic_ns().saturating_sub(spec.origin_mono_ns);
    let origin = Instant::now()
        .checked_sub(Duration::from_nanos(since_origin))
        .unwrap_or_else(Instant::now);
    let sinks = match Sinks::start(
        spec.addrs,
        origin,
        spec.max_seq,
        Duration::try_from_secs_f64(spec.read_timeout_s).unwrap_or_default(),
        spec.max_open,
    ) {
        Ok(sinks) => sinks,
        Err(e) => return fail(&mut out, e.to_string()).await,
    };
    let ready = Reply::Ready {
        addrs: sinks.addrs().to_vec(),
    };
    if send(&mut out, &ready).await.is_err() {
        return 2;
    }
    while let Ok(Some(line)) = lines.next_line().await {
        let reply = match serde_json::from_str::<Command>(&line) {
            Ok(Command::Begin {
                phase,
                expectations,
            }) => {
                sinks.begin_phase(phase, |i| {
                    expectations.get(i).copied().unwrap_or(Expectation::NONE)
                });
                Reply::Done
            }
            Ok(Command::Sent { seq, ns }) => {
                sinks.mark_sent_at(seq, ns);
                Reply::Done
            }
            Ok(Command::Progress) => {
                let (delivered, target) = sinks.progress();
                Reply::Progress { delivered, target }
            }
            Ok(Command::Tally) => Reply::Tally(sinks.tally().into()),
            Ok(Command::Stop) | Err(_) => break,
        };
        if send(&mut out, &reply).await.is_err() {
            break;
        }
    }
    sinks.stop().await;
    let _ = send(&mut out, &Reply::Done).await;
    0
}

/// Reports a failure to start; returns the exit code.
async fn fail(out: &mut tokio::io::Stdout, error: String) -> u8 {
    let _ = send(out, &Reply::Failed { error }).await;
    2
}

/// Writes one reply line and flushes it.
async fn send(out: &mut tokio::io::Stdout, reply: &Reply) -> std::io::Result<()> {
    let mut line = serde_json::to_vec(reply).map_err(std::io::Error::other)?;
    line.push(b'\n');
    out.write_all(&line).await?;
    out.flush().await
}
