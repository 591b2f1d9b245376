//! The subscribers of a point, in this process and, when its descriptor limit cannot hold them
//! all, in child sink workers ([`crate::worker`]), each with a descriptor limit of its own.
//!
//! A listener and its accepted connections need descriptors: this process keeps room for the
//! blaster's connections and up to 4,096 accepted connections, and hosts what is left; every
//! worker hosts its limit less 4,096 accepted connections and a margin. With a hard limit of
//! 20,000, 100,000 subscribers take this process and six workers. Each worker verifies its own
//! subscribers; the tallies and latency histograms are merged here.

use std::net::SocketAddr;
use std::process::Stdio;
use std::time::{Duration, Instant};

use crnp::client::ClientError;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout};

use crate::sinks::{PhaseTally, Sinks};
use crate::verify::Expectation;
use crate::worker::{Command, Reply, WorkerSpec, monotonic_ns};

/// Accepted connections each process may hold open at most.
const MAX_OPEN: usize = 4096;
/// Descriptors each process keeps free for registrations, the publisher and the runtime.
const MARGIN: usize = 512;
/// Fewest subscribers worth a worker process.
const MIN_PER_WORKER: usize = 256;

/// Every subscriber of a point, wherever it is served.
pub(crate) struct SinkPool {
    /// The subscribers this process serves (the first ones).
    local: Sinks,
    /// The workers serving the rest, in subscriber order.
    workers: Vec<Worker>,
    /// Every callback address, by subscriber index.
    addrs: Vec<SocketAddr>,
}

/// One child process and its share of the subscribers.
struct Worker {
    child: Child,
    stdin: ChildStdin,
    stdout: Lines<BufReader<ChildStdout>>,
    /// Index of its first subscriber.
    first: usize,
    /// How many it serves.
    count: usize,
}

/// How subscribers are split: this process's share and each worker's.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Split {
    local: usize,
    local_open: usize,
    workers: Vec<usize>,
    worker_open: usize,
}

/// Splits `subscribers` between this process (which also needs `reserved` descriptors, the
/// blaster's) and as many workers as needed, each process having `nofile` descriptors, a
/// quarter of them at most (and at most [`MAX_OPEN`]) for accepted connections. `None` when a
/// worker could not even hold [`MIN_PER_WORKER`] listeners.
fn split(subscribers: usize, nofile: usize, reserved: usize) -> Option<Split> {
    let fits_here = nofile.saturating_sub(subscribers + reserved + MARGIN);
    if fits_here >= 16 {
        return Some(Split {
            local: subscribers,
            local_open: fits_here.min(MAX_OPEN),
            workers: Vec::new(),
            worker_open: 0,
        });
    }
    let open = (nofile / 4).min(MAX_OPEN);
    let local = nofile.saturating_sub(reserved + MARGIN + open);
    let per_worker = nofile.saturating_sub(MARGIN + open);
    if per_worker < MIN_PER_WORKER {
        return None;
    }
    let rest = subscribers.saturating_sub(local);
    let count = rest.div_ceil(per_worker);
    let workers = (0..count)
        .map(|w| rest / count + usize::from(w < rest % count))
        .collect();
    Some(Split {
        local: subscribers.min(local),
        local_open: open.max(16),
        workers,
        worker_open: open,
    })
}

/// Why a worker could not be used.
fn worker_error(reason: impl std::fmt::Display) -> ClientError {
    ClientError::Io {
        addr: SocketAddr::from(([0, 0, 0, 0], 0)),
        source: std::io::Error::other(format!("sink worker: {reason}")),
    }
}

impl SinkPool {
    /// Binds one listener per address (here and in workers as `nofile` requires, keeping
    /// `reserved` descriptors of this process free) and starts serving.
    pub(crate) async fn start(
        addrs: Vec<SocketAddr>,
        origin: Instant,
        max_seq: u64,
        read_timeout: Duration,
        nofile: usize,
        reserved: usize,
    ) -> Result<Self, ClientError> {
        let Some(split) = split(addrs.len(), nofile, reserved) else {
            return Err(worker_error(format!(
                "an open-files limit of {nofile} is too small to spread {} subscribers over processes",
                addrs.len()
            )));
        };
        let local = Sinks::start(
            addrs[..split.local].iter().copied(),
            origin,
            max_seq,
            read_timeout,
            split.local_open,
        )?;
        let mut bound = local.addrs().to_vec();
        let origin_mono_ns =
            monotonic_ns().saturating_sub(u64::try_from(origin.elapsed().as_nanos()).unwrap_or(0));
        let mut workers = Vec::with_capacity(split.workers.len());
        let mut first = split.local;
        for count in split.workers {
            let spec = WorkerSpec {
                addrs: addrs[first..first + count].to_vec(),
                origin_mono_ns,
                max_seq,
                read_timeout_s: read_timeout.as_secs_f64(),
                max_open: split.worker_open,
            };
            let (worker, addrs) = Worker::start(&spec, first).await?;
            bound.extend(addrs);
            workers.push(worker);
            first += count;
        }
        Ok(SinkPool {
            local,
            workers,
            addrs: bound,
        })
    }

    /// The callback addresses, by subscriber index.
    pub(crate) fn addrs(&self) -> &[SocketAddr] {
        &self.addrs
    }

    /// Starts counting phase `phase`, with subscriber `i` expecting `expect(i)`.
    pub(crate) async fn begin_phase(&mut self, phase: u64, expect: impl Fn(usize) -> Expectation) {
        self.local.begin_phase(phase, &expect);
        for worker in &mut self.workers {
            let expectations = (worker.first..worker.first + worker.count)
                .map(&expect)
                .collect();
            let _ = worker
                .call(&Command::Begin {
                    phase,
                    expectations,
                })
                .await;
        }
    }

    /// Notes that load sequence number `seq` is being published now; returns the time in ns.
    pub(crate) async fn mark_sent(&mut self, seq: u64) -> u64 {
        let ns = self.local.mark_sent(seq);
        for worker in &mut self.workers {
            let _ = worker.call(&Command::Sent { seq, ns }).await;
        }
        ns
    }

    /// Nanoseconds since the run's origin.
    pub(crate) fn now_ns(&self) -> u64 {
        self.local.now_ns()
    }

    /// First receipts so far in this phase, and how many complete it.
    pub(crate) async fn progress(&mut self) -> (u64, u64) {
        let (mut delivered, mut target) = self.local.progress();
        for worker in &mut self.workers {
            if let Ok(Reply::Progress {
                delivered: d,
                target: t,
            }) = worker.call(&Command::Progress).await
            {
                delivered += d;
                target += t;
            }
        }
        (delivered, target)
    }

    /// Waits until every expected event arrived, or until nothing new arrived for `quiet`;
    /// `tick` gets the progress about ten times a second. Returns true when complete.
    pub(crate) async fn wait(&mut self, quiet: Duration, mut tick: impl FnMut(u64, u64)) -> bool {
        if self.workers.is_empty() {
            return self.local.wait(quiet, tick).await;
        }
        let (mut seen, _) = self.progress().await;
        let mut last_change = Instant::now();
        loop {
            let (delivered, target) = self.progress().await;
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
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The tallies of the current phase so far, over every process.
    pub(crate) async fn tally(&mut self) -> PhaseTally {
        let mut tally = self.local.tally();
        for worker in &mut self.workers {
            match worker.call(&Command::Tally).await {
                Ok(Reply::Tally(part)) => {
                    let part = PhaseTally::from(part);
                    tally.counts += part.counts;
                    tally.latencies.merge(&part.latencies);
                    tally.last_delivery_ns = tally.last_delivery_ns.max(part.last_delivery_ns);
                    tally.stale += part.stale;
                    tally.bad += part.bad;
                    if tally.first_bad.is_none() {
                        tally.first_bad = part.first_bad;
                    }
                }
                other => {
                    tally.bad += 1;
                    tally.first_bad.get_or_insert_with(|| match other {
                        Err(e) => e.to_string(),
                        Ok(reply) => format!("sink worker answered {reply:?}"),
                    });
                }
            }
        }
        tally
    }

    /// Stops every listener, here and in the workers, and waits for the workers to exit.
    pub(crate) async fn stop(self) {
        for mut worker in self.workers {
            let _ = worker.call(&Command::Stop).await;
            let _ = worker.child.wait().await;
        }
        self.local.stop().await;
    }
}

impl Worker {
    /// Starts `crnp-load --sink-worker` on `spec`; returns it and its bound addresses.
    async fn start(
        spec: &WorkerSpec,
        first: usize,
    ) -> Result<(Self, Vec<SocketAddr>), ClientError> {
        let exe = std::env::current_exe().map_err(worker_error)?;
        let mut child = tokio::process::Command::new(exe)
            .arg("--sink-worker")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(worker_error)?;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            return Err(worker_error("no pipes"));
        };
        let mut worker = Worker {
            child,
            stdin,
            stdout: BufReader::new(stdout).lines(),
            first,
            count: spec.addrs.len(),
        };
        let spec = serde_json::to_string(spec).map_err(worker_error)?;
        match worker.exchange(spec).await? {
            Reply::Ready { addrs } if addrs.len() == worker.count => Ok((worker, addrs)),
            Reply::Failed { error } => Err(worker_error(error)),
            other => Err(worker_error(format!("unexpected answer {other:?}"))),
        }
    }

    /// Sends one command and reads its answer.
    async fn call(&mut self, command: &Command) -> Result<Reply, ClientError> {
        let line = serde_json::to_string(command).map_err(worker_error)?;
        self.exchange(line).await
    }

    /// Writes one line and reads one answer line.
    async fn exchange(&mut self, mut line: String) -> Result<Reply, ClientError> {
        line.push('\n');
        self.stdin
            .write_all(line.as_bytes())
            .await
            .map_err(worker_error)?;
        self.stdin.flush().await.map_err(worker_error)?;
        match self.stdout.next_line().await.map_err(worker_error)? {
            Some(answer) => serde_json::from_str(&answer).map_err(worker_error),
            None => Err(worker_error("exited")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_fits_stays_in_this_process_with_what_the_limit_leaves_for_connections() {
        let here = split(10_000, 20_000, 4096).expect("fits");
        assert_eq!((here.local, here.local_open), (10_000, 4096));
        assert!(here.workers.is_empty());
        let tight = split(10_000, 16_000, 4096).expect("fits");
        assert_eq!(tight.local_open, 16_000 - 10_000 - 4096 - MARGIN);
        assert_eq!(split(100, 1_000_000, 100).expect("fits").local_open, 4096);
    }

    #[test]
    fn a_hundred_thousand_subscribers_under_twenty_thousand_descriptors_take_six_workers() {
        let split = split(100_000, 20_000, 4096).expect("splits");
        assert_eq!(split.local, 20_000 - 4096 - MARGIN - MAX_OPEN);
        assert_eq!(split.workers.len(), 6);
        assert_eq!(split.local + split.workers.iter().sum::<usize>(), 100_000);
        assert!(
            split
                .workers
                .iter()
                .all(|&n| n <= 20_000 - MARGIN - MAX_OPEN)
        );
    }

    #[test]
    fn a_small_limit_gives_smaller_shares_or_says_it_is_too_small() {
        let split_small = split(10_000, 6_000, 4096).expect("splits");
        assert_eq!(split_small.local, 0);
        assert_eq!(split_small.worker_open, 1_500);
        assert_eq!(split_small.workers.iter().sum::<usize>(), 10_000);
        assert!(
            split_small
                .workers
                .iter()
                .all(|&n| n <= 6_000 - MARGIN - 1_500)
        );
        assert_eq!(split(10_000, 1_000, 4096), None);
    }
}
