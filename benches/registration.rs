//! Registration throughput with durability on: group commit against one fsync per registration.
//!
//! Starts the optimised crnpd twice on a data directory on the build's disk (never tmpfs, where
//! an fsync costs nothing): once with the default `--max-commit-batch` (group commit) and once
//! with `--max-commit-batch 1` (one durable commit per registration). For each it registers N
//! distinct clients (two event types each) over C concurrent connections from 50 loopback source
//! addresses, and prints registrations per second, the mean commit batch and commit time from
//! crnpd's own metrics, and the CPU time per registration of crnpd's cores, of its registry
//! thread and of the load generator. Then the ratio of the two rates. The two are always
//! measured in the same run; `CRNP_BENCH_REPEAT` repeats the pair and prints the ranges.
//!
//! `CRNP_BENCH_FLUSH_DELAY_MS` (fractions allowed) runs crnpd under the `slow-flush`
//! `LD_PRELOAD` library (`tools/slow-flush`, built by this bench), which adds that many
//! milliseconds to every fsync/fdatasync: a simulated flush latency, as on the shared or
//! replicated storage a failover service runs on (a SAN, iSCSI or DRBD disk, a consumer SSD:
//! 1 to 5 ms per flush), where this machine's virtio disk flushes in a fraction of a
//! millisecond. Group commit exists to amortize that latency. The bench fails unless crnpd's
//! mean commit time shows the added delay.
//!
//! The load generator runs the C connections as tasks on two threads, one per core (a tokio
//! current-thread runtime each; `CRNP_BENCH_GENERATOR_THREADS` to change), each connection
//! connecting from its source address, writing one `ADD_CLIENT` without half-closing, and
//! reading the reply to EOF. (A thread per connection, as before, cost 1.4 to 2 times the
//! CPU per registration, in context switches among 128 threads.)
//!
//! ```text
//! cargo bench --bench registration
//! CRNP_BENCH_CONCURRENCY=128 CRNP_BENCH_CLIENTS=60000 CRNP_BENCH_REPEAT=3 cargo bench --bench registration
//! CRNP_BENCH_FLUSH_DELAY_MS=2 CRNP_BENCH_CONCURRENCY=128 CRNP_BENCH_CLIENTS=60000 \
//!     CRNP_BENCH_BASELINE_CLIENTS=3000 CRNP_BENCH_REPEAT=3 cargo bench --bench registration
//! # also: CRNP_BENCH_BASELINE_CLIENTS (default a quarter of CRNP_BENCH_CLIENTS)
//! ```

#[path = "../tests/common/mod.rs"]
mod common;

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::{Crnpd, event_type, ip, reg};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn setting(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// CPU time used during one measured run.
#[derive(Clone, Copy, Default)]
struct Cpu {
    /// crnpd's data-plane threads (`crnp-core-*`): accept, read, parse, reply, close.
    cores: Duration,
    /// crnpd's registry thread: apply, encode, commit (its fsync wait is not CPU time).
    registry: Duration,
    /// crnpd's other threads (control plane, metrics).
    other: Duration,
    /// The load generator (this process).
    generator: Duration,
}

/// One measured run.
struct Run {
    clients: usize,
    elapsed: Duration,
    mean_batch: f64,
    mean_commit: Duration,
    cpu: Cpu,
}

impl Run {
    fn rate(&self) -> f64 {
        self.clients as f64 / self.elapsed.as_secs_f64()
    }

    /// Microseconds of CPU per registration.
    fn per_registration(&self, time: Duration) -> f64 {
        time.as_secs_f64() * 1e6 / self.clients as f64
    }
}

/// CPU time of each thread of `pid` by name, from `/proc/PID/task/*/{comm,schedstat}`.
fn thread_times(pid: u32) -> Vec<(String, Duration)> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).expect("crnpd's threads");
    tasks
        .filter_map(|task| {
            let dir = task.ok()?.path();
            let comm = std::fs::read_to_string(dir.join("comm")).ok()?;
            let schedstat = std::fs::read_to_string(dir.join("schedstat")).ok()?;
            let nanos: u64 = schedstat.split_whitespace().next()?.parse().ok()?;
            Some((comm.trim().to_owned(), Duration::from_nanos(nanos)))
        })
        .collect()
}

/// crnpd's CPU time by role (the generator's is filled in separately).
fn crnpd_cpu(pid: u32) -> Cpu {
    let mut cpu = Cpu::default();
    for (name, time) in thread_times(pid) {
        if name.starts_with("crnp-core") {
            cpu.cores += time;
        } else if name == "crnp-registry" {
            cpu.registry += time;
        } else {
            cpu.other += time;
        }
    }
    cpu
}

/// CPU time (user + system) of this process, all threads.
fn own_cpu() -> Duration {
    // SAFETY: an all-zero rusage is a valid value for getrusage to overwrite.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: RUSAGE_SELF and a pointer to a live rusage.
    let status = unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    assert_eq!(status, 0, "getrusage");
    let time = |t: libc::timeval| {
        Duration::from_secs(u64::try_from(t.tv_sec).unwrap_or(0))
            + Duration::from_micros(u64::try_from(t.tv_usec).unwrap_or(0))
    };
    time(usage.ru_utime) + time(usage.ru_stime)
}

fn metric(crnpd: &Crnpd, name: &str) -> f64 {
    crnpd.metric(name, &[])
}

/// Builds the `slow-flush` preload library (a crate of this workspace, no dependencies) into a
/// target directory of its own, so the build does not wait for the lock `cargo bench` holds.
fn slow_flush_library() -> PathBuf {
    let target = Path::new(env!("CARGO_TARGET_TMPDIR")).join("slow-flush");
    let status = std::process::Command::new(env!("CARGO"))
        .args(["build", "--release", "--quiet", "-p", "slow-flush"])
        .arg("--manifest-path")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml"))
        .arg("--target-dir")
        .arg(&target)
        .status()
        .expect("run cargo to build tools/slow-flush");
    assert!(status.success(), "building tools/slow-flush failed");
    target.join("release").join("libslow_flush.so")
}

/// The registration of client `i`: two event types, one of them its own resource.
fn message(i: usize) -> (IpAddr, Vec<u8>) {
    let port = u16::try_from(1024 + i).expect("at most 64,000 clients");
    let types = format!(
        "{}{}",
        event_type("EC_Cluster", Some("ESC_cluster_membership"), &[]),
        event_type(
            "EC_Cluster",
            Some("ESC_cluster_r_state"),
            &[("r_name", &format!("r{i}"))]
        )
    );
    (
        ip(2 + (i % 50) as u8),
        reg("ADD_CLIENT", port, &types).into_bytes(),
    )
}

/// One connection after another until the messages run out: connect from the message's source
/// address, write it without half-closing (as CRNP clients do), read the reply to EOF.
async fn connection(
    listen: SocketAddr,
    messages: Arc<Vec<(IpAddr, Vec<u8>)>>,
    next: Arc<AtomicUsize>,
) {
    let mut reply = Vec::with_capacity(512);
    loop {
        let i = next.fetch_add(1, Ordering::Relaxed);
        let Some((source, message)) = messages.get(i) else {
            return;
        };
        let socket = tokio::net::TcpSocket::new_v4().expect("socket");
        socket
            .bind(SocketAddr::new(*source, 0))
            .expect("bind source");
        let mut stream = socket.connect(listen).await.expect("connect");
        stream.write_all(message).await.expect("write registration");
        reply.clear();
        stream.read_to_end(&mut reply).await.expect("read reply");
        assert!(
            memchr::memmem::find(&reply, b"STATUS_CODE=\"OK\"").is_some(),
            "{}",
            String::from_utf8_lossy(&reply)
        );
    }
}

/// Registers `clients` distinct clients over `concurrency` connections; `env` goes to crnpd.
fn measure(extra: &[&str], env: &[(&str, &str)], clients: usize, concurrency: usize) -> Run {
    let temp =
        tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("tempdir on the build disk");
    let max_clients = (clients + 1).to_string();
    let mut args = vec!["--max-clients", max_clients.as_str(), "--cores", "2"];
    args.extend_from_slice(extra);
    let crnpd = Crnpd::start_with_env(&temp.path().join("data"), temp.path(), &args, env);
    let listen: SocketAddr = crnpd.listen;
    let messages: Arc<Vec<(IpAddr, Vec<u8>)>> = Arc::new((0..clients).map(message).collect());
    let next = Arc::new(AtomicUsize::new(0));
    let threads = setting("CRNP_BENCH_GENERATOR_THREADS", 2).clamp(1, concurrency);
    let batches_before = metric(&crnpd, "crnp_registry_commit_batch_size_count");
    let requests_before = metric(&crnpd, "crnp_registry_commit_batch_size_sum");
    let commit_time_before = metric(&crnpd, "crnp_registry_commit_seconds_sum");
    let crnpd_before = crnpd_cpu(crnpd.pid());
    let generator_before = own_cpu();
    let started = Instant::now();
    std::thread::scope(|scope| {
        for thread in 0..threads {
            let (messages, next) = (Arc::clone(&messages), Arc::clone(&next));
            scope.spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_io()
                    .build()
                    .expect("generator runtime");
                runtime.block_on(async move {
                    let tasks: Vec<_> = (thread..concurrency)
                        .step_by(threads)
                        .map(|_| {
                            tokio::spawn(connection(
                                listen,
                                Arc::clone(&messages),
                                Arc::clone(&next),
                            ))
                        })
                        .collect();
                    for task in tasks {
                        task.await.expect("generator connection");
                    }
                });
            });
        }
    });
    let elapsed = started.elapsed();
    let generator = own_cpu().saturating_sub(generator_before);
    let crnpd_after = crnpd_cpu(crnpd.pid());
    let commits = metric(&crnpd, "crnp_registry_commit_batch_size_count") - batches_before;
    let requests = metric(&crnpd, "crnp_registry_commit_batch_size_sum") - requests_before;
    let commit_time = metric(&crnpd, "crnp_registry_commit_seconds_sum") - commit_time_before;
    assert_eq!(
        crnpd.clients().as_array().map(Vec::len),
        Some(clients),
        "every client registered"
    );
    assert!(crnpd.terminate().success());
    Run {
        clients,
        elapsed,
        mean_batch: requests / commits.max(1.0),
        mean_commit: Duration::from_secs_f64(commit_time.max(0.0) / commits.max(1.0)),
        cpu: Cpu {
            cores: crnpd_after.cores.saturating_sub(crnpd_before.cores),
            registry: crnpd_after.registry.saturating_sub(crnpd_before.registry),
            other: crnpd_after.other.saturating_sub(crnpd_before.other),
            generator,
        },
    }
}

fn print_run(name: &str, run: &Run) {
    println!(
        "{name:<24} {:>6} clients in {:>7.2?}: {:>8.0} registrations/s; mean batch {:>6.1}, mean commit {:>9.2?}; \
         CPU µs/registration: crnpd cores {:.1}, registry {:.1}, other {:.1}, generator {:.1}",
        run.clients,
        run.elapsed,
        run.rate(),
        run.mean_batch,
        run.mean_commit,
        run.per_registration(run.cpu.cores),
        run.per_registration(run.cpu.registry),
        run.per_registration(run.cpu.other),
        run.per_registration(run.cpu.generator),
    );
}

/// `min – max` of `values` with `digits` decimals.
fn range(values: impl Iterator<Item = f64>, digits: usize) -> String {
    let (low, high) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
        (lo.min(v), hi.max(v))
    });
    format!("{low:.digits$} – {high:.digits$}")
}

fn summarize(name: &str, runs: &[Run]) {
    let cpu = |pick: fn(&Cpu) -> Duration| {
        range(runs.iter().map(|r| r.per_registration(pick(&r.cpu))), 1)
    };
    println!(
        "{name:<24} {} registrations/s; mean batch {}; mean commit {} ms; CPU µs/registration: \
         crnpd cores {}, registry {}, generator {}",
        range(runs.iter().map(Run::rate), 0),
        range(runs.iter().map(|r| r.mean_batch), 1),
        range(runs.iter().map(|r| r.mean_commit.as_secs_f64() * 1e3), 3),
        cpu(|c| c.cores),
        cpu(|c| c.registry),
        cpu(|c| c.generator),
    );
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        println!("registration: bench");
        return;
    }
    // `cargo bench` passes --bench; `cargo test --benches` does not: then only a smoke run.
    let measuring = std::env::args().any(|a| a == "--bench");
    let clients = setting("CRNP_BENCH_CLIENTS", if measuring { 20_000 } else { 200 });
    let baseline_clients = setting("CRNP_BENCH_BASELINE_CLIENTS", clients / 4);
    let concurrency = setting("CRNP_BENCH_CONCURRENCY", 64);
    let repeat = setting("CRNP_BENCH_REPEAT", 1).max(1);
    let delay_ms: f64 = std::env::var("CRNP_BENCH_FLUSH_DELAY_MS")
        .ok()
        .map_or(0.0, |v| {
            v.parse()
                .expect("CRNP_BENCH_FLUSH_DELAY_MS is a number of ms")
        });
    let library = (delay_ms > 0.0).then(slow_flush_library);
    let library_text = library
        .as_ref()
        .map(|path| path.to_string_lossy().into_owned());
    let delay_text = delay_ms.to_string();
    let env: Vec<(&str, &str)> = library_text
        .as_deref()
        .map(|path| vec![("LD_PRELOAD", path), ("SLOW_FLUSH_MS", delay_text.as_str())])
        .unwrap_or_default();
    println!(
        "registration throughput: {concurrency} concurrent connections, data directory under {}, {}",
        env!("CARGO_TARGET_TMPDIR"),
        if delay_ms > 0.0 {
            format!(
                "simulated flush latency: +{delay_ms} ms per fsync/fdatasync (LD_PRELOAD slow-flush)"
            )
        } else {
            "the disk's own flush latency".to_owned()
        }
    );
    let mut grouped = Vec::new();
    let mut single = Vec::new();
    for round in 1..=repeat {
        let g = measure(&[], &env, clients, concurrency);
        let s = measure(
            &["--max-commit-batch", "1"],
            &env,
            baseline_clients,
            concurrency,
        );
        println!("run {round}/{repeat}:");
        print_run("group commit (default)", &g);
        print_run("--max-commit-batch 1", &s);
        println!(
            "group commit / one commit per registration: {:.1}x",
            g.rate() / s.rate()
        );
        assert!(
            s.mean_commit.as_secs_f64() * 1e3 >= delay_ms,
            "the simulated flush latency did not apply: mean commit {:?} < {delay_ms} ms",
            s.mean_commit
        );
        grouped.push(g);
        single.push(s);
    }
    if repeat > 1 {
        println!("ranges over {repeat} runs:");
        summarize("group commit (default)", &grouped);
        summarize("--max-commit-batch 1", &single);
        println!(
            "group commit / one commit per registration: {}x",
            range(
                grouped
                    .iter()
                    .zip(&single)
                    .map(|(g, s)| g.rate() / s.rate()),
                1
            )
        );
    }
}
