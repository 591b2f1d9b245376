//! Registration throughput with durability on: group commit against one fsync per registration.
//!
//! Starts the optimised crnpd twice on a data directory on the build's disk (never tmpfs, where
//! an fsync costs nothing): once with the default `--max-commit-batch` (group commit) and once
//! with `--max-commit-batch 1` (one durable commit per registration), registers N clients over C
//! concurrent connections from 50 loopback source addresses, and prints registrations per second
//! for both, their ratio, and the mean commit batch and commit time from crnpd's own metrics.
//!
//! ```text
//! cargo bench --bench registration
//! CRNP_BENCH_CLIENTS=20000 CRNP_BENCH_BASELINE_CLIENTS=5000 CRNP_BENCH_CONCURRENCY=64 cargo bench --bench registration
//! ```

#[path = "../tests/common/mod.rs"]
mod common;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::{Crnpd, event_type, exchange, ip, reg, status_of};

fn setting(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// One measured run.
struct Run {
    clients: usize,
    elapsed: Duration,
    mean_batch: f64,
    mean_commit: Duration,
}

impl Run {
    fn rate(&self) -> f64 {
        self.clients as f64 / self.elapsed.as_secs_f64()
    }
}

fn metric(crnpd: &Crnpd, name: &str) -> f64 {
    crnpd.metric(name, &[])
}

/// Registers `clients` distinct clients (two event types each) over `concurrency` connections.
fn measure(extra: &[&str], clients: usize, concurrency: usize) -> Run {
    let temp =
        tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("tempdir on the build disk");
    let max_clients = (clients + 1).to_string();
    let mut args = vec!["--max-clients", max_clients.as_str(), "--cores", "2"];
    args.extend_from_slice(extra);
    let crnpd = Crnpd::start_in(&temp.path().join("data"), temp.path(), &args);
    let listen: SocketAddr = crnpd.listen;
    let messages: Vec<(std::net::IpAddr, String)> = (0..clients)
        .map(|i| {
            let port = u16::try_from(1024 + i).expect("at most 60,000 clients");
            let types = format!(
                "{}{}",
                event_type("EC_Cluster", Some("ESC_cluster_membership"), &[]),
                event_type(
                    "EC_Cluster",
                    Some("ESC_cluster_r_state"),
                    &[("r_name", &format!("r{i}"))]
                )
            );
            (ip(2 + (i % 50) as u8), reg("ADD_CLIENT", port, &types))
        })
        .collect();
    let next = AtomicUsize::new(0);
    let batches_before = metric(&crnpd, "crnp_registry_commit_batch_size_count");
    let started = Instant::now();
    std::thread::scope(|scope| {
        for _ in 0..concurrency {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some((source, message)) = messages.get(i) else {
                        return;
                    };
                    let reply = exchange(listen, *source, message.as_bytes());
                    assert_eq!(status_of(&reply), "OK", "{reply}");
                }
            });
        }
    });
    let elapsed = started.elapsed();
    let commits = metric(&crnpd, "crnp_registry_commit_batch_size_count") - batches_before;
    let mean_batch = metric(&crnpd, "crnp_registry_commit_batch_size_sum") / commits.max(1.0);
    let mean_commit = metric(&crnpd, "crnp_registry_commit_seconds_sum")
        / metric(&crnpd, "crnp_registry_commit_seconds_count").max(1.0);
    assert_eq!(
        crnpd.clients().as_array().map(Vec::len),
        Some(clients),
        "every client registered"
    );
    assert!(crnpd.terminate().success());
    Run {
        clients,
        elapsed,
        mean_batch,
        mean_commit: Duration::from_secs_f64(mean_commit),
    }
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
    println!(
        "registration throughput: {concurrency} concurrent connections, data directory under {}",
        env!("CARGO_TARGET_TMPDIR")
    );
    let grouped = measure(&[], clients, concurrency);
    let single = measure(&["--max-commit-batch", "1"], baseline_clients, concurrency);
    for (name, run) in [
        ("group commit (default)", &grouped),
        ("--max-commit-batch 1", &single),
    ] {
        println!(
            "{name:<24} {:>6} clients in {:>7.2?}: {:>8.0} registrations/s; mean batch {:>6.1}, mean commit {:.2?}",
            run.clients,
            run.elapsed,
            run.rate(),
            run.mean_batch,
            run.mean_commit
        );
    }
    println!(
        "group commit / one commit per registration: {:.1}x",
        grouped.rate() / single.rate()
    );
}
