//! `crnp-load`: load-test crnpd with N verified subscribers and compare it with the machine's
//! loopback limit, measured in the same run. See docs/LOAD-TESTING.md.
//!
//! Exit codes: 0 every delivery arrived once and in order, 1 deliveries or registrations went
//! wrong (see the notes under the table), 2 usage or local set-up error, 3 crnpd unreachable.

mod blaster;
mod cli;
mod crash;
mod hostile;
mod plan;
mod plot;
mod pool;
mod procstat;
mod report;
mod scenario;
mod server;
mod sinks;
mod stats;
mod verify;
mod worker;

use std::path::Path;
use std::process::ExitCode;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use clap::Parser;

use cli::Cli;
use plan::Plan;
use report::Report;
use scenario::{Point, seconds};
use server::{OwnedServer, Target};

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    if cli.sink_worker {
        raise_nofile(0);
        return ExitCode::from(worker::run().await);
    }
    if let Err(message) = cli.validate() {
        eprintln!("crnp-load: {message}");
        return ExitCode::from(2);
    }
    let largest = cli.points().into_iter().max().unwrap_or(0);
    let nofile_limit = raise_nofile(largest);
    let run_id = run_id();
    let work_dir = std::env::temp_dir().join(format!("crnp-load-{run_id}"));
    let code = match run(&cli, &run_id, nofile_limit, &work_dir).await {
        Ok(report) => output(&cli, &report),
        Err((code, message)) => {
            eprintln!("crnp-load: {message}");
            code
        }
    };
    let _ = std::fs::remove_dir_all(&work_dir);
    ExitCode::from(code)
}

/// Runs every point; on a fatal problem returns the exit code and what to tell the operator.
async fn run(
    cli: &Cli,
    run_id: &str,
    nofile_limit: u64,
    work_dir: &Path,
) -> Result<Report, (u8, String)> {
    let origin = Instant::now();
    let mut report = Report {
        run_id: run_id.to_owned(),
        nofile_limit,
        points: Vec::new(),
    };
    for (index, subscribers) in cli.points().into_iter().enumerate() {
        let owned = match (&cli.crnpd, cli.mode.crnpd()) {
            (Some(path), true) => {
                let dir = work_dir.join(format!("point{index}"));
                Some(
                    OwnedServer::start(path, &cli.crnpd_args, cli.crnpd_nofile, &dir)
                        .await
                        .map_err(|e| (3, e.to_string()))?,
                )
            }
            _ => None,
        };
        let target = match (&owned, cli.mode.crnpd()) {
            (Some(server), _) => Some(server.target),
            (None, true) => Some(external_target(cli).await?),
            (None, false) => None,
        };
        let unregister = owned.is_none();
        let owned = tokio::sync::Mutex::new(owned);
        let plan = Plan {
            tag: format!("{run_id}.{index}"),
            events: cli.events,
            types: cli.types,
            payload_bytes: cli.payload_bytes,
        };
        let point = Point {
            cli,
            subscribers,
            plan,
            origin,
            target,
            owned: &owned,
            unregister,
            nofile: nofile_limit,
        };
        let hostile = match target {
            Some(target) if cli.hold_http + cli.hold_slowloris > 0 => Some(
                hostile::Hostile::open(
                    target.http,
                    target.listen,
                    cli.hold_http,
                    cli.hold_slowloris,
                    target.pid,
                )
                .await,
            ),
            _ => None,
        };
        let result = scenario::run(point).await;
        let hostile = match hostile {
            Some(held) => Some(held.close().await),
            None => None,
        };
        if let Some(server) = owned.into_inner() {
            server.stop().await;
        }
        let mut point = result.map_err(|e| (2, e.to_string()))?;
        point.hostile = hostile;
        eprintln!("crnp-load: {subscribers} subscribers done");
        report.points.push(point);
    }
    Ok(report)
}

/// The already running crnpd named by --server/--http/--crnpd-pid, checked for readiness.
async fn external_target(cli: &Cli) -> Result<Target, (u8, String)> {
    match crnp::client::ready(cli.http, seconds(cli.timeout)).await {
        Ok(true) => Ok(Target {
            listen: cli.server,
            http: cli.http,
            pid: cli.crnpd_pid,
        }),
        Ok(false) => Err((
            3,
            format!(
                "crnpd at {} is not ready (GET /readyz is not 200)",
                cli.http
            ),
        )),
        Err(e) => Err((
            3,
            format!("{e}; start crnpd, point --http/--server at it, or pass --crnpd PATH"),
        )),
    }
}

/// Prints the report (and the chart) and returns the exit code.
fn output(cli: &Cli, report: &Report) -> u8 {
    if cli.json {
        eprint!("{}", report.table());
        match serde_json::to_string_pretty(report) {
            Ok(json) => println!("{json}"),
            Err(e) => eprintln!("crnp-load: cannot encode the report: {e}"),
        }
    } else {
        print!("{}", report.table());
    }
    if let Some(path) = &cli.plot {
        if let Err(e) = plot::write_png(report, path) {
            eprintln!("crnp-load: cannot write the chart {}: {e}", path.display());
            return 2;
        }
        eprintln!("crnp-load: chart written to {}", path.display());
    }
    if report.is_clean() { 0 } else { 1 }
}

/// Raises the open-files limit: to the hard limit, and beyond it when allowed (root) and
/// `subscribers` needs more. Returns the soft limit in force.
fn raise_nofile(subscribers: usize) -> u64 {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: a valid resource and a pointer to a live rlimit.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return 0;
    }
    let wanted = (subscribers as u64)
        .saturating_mul(3)
        .saturating_add(16_384);
    if limit.rlim_max < wanted {
        let raised = libc::rlimit {
            rlim_cur: wanted,
            rlim_max: wanted,
        };
        // SAFETY: as above; failure (not root) leaves the limit unchanged.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            return wanted;
        }
    }
    limit.rlim_cur = limit.rlim_max;
    // SAFETY: as above.
    unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) };
    // SAFETY: as above.
    unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) };
    limit.rlim_cur
}

/// A short tag unique to this run: every event subclass starts with it.
fn run_id() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("{:x}{:x}", (nanos & 0xffff_ffff) as u32, std::process::id())
}
