//! End-to-end fan-out benchmark: the release crnpd under `crnp-load`, swept over subscriber
//! counts, with the loopback limit measured in the same run.
//!
//! Run: `cargo bench --bench fanout` (builds crnpd and crnp-load in the bench profile, which
//! inherits release). It prints the report table, one row per subscriber count, and exits
//! non-zero when a delivery went missing, duplicated or out of order.
//!
//! Settings, from the environment:
//! - `CRNP_FANOUT_SWEEP`: subscriber counts, default `100,1000,10000`;
//! - `CRNP_FANOUT_EVENTS`: events per count, default `50`;
//! - `CRNP_FANOUT_ARGS`: more `crnp-load` arguments, split on whitespace (e.g. `--batch 10`);
//! - `CRNP_FANOUT_JSON`: a file to write the JSON report to.
//!
//! The figures depend on the kernel's state (TIME_WAIT sockets) and on whatever else the
//! machine runs: compare crnpd with the limit of the same run, not runs with each other.
//! See docs/LOAD-TESTING.md.

use std::process::{Command, ExitCode, Stdio};

fn main() -> ExitCode {
    // `cargo bench` passes `--bench`; a filter argument would select benchmarks, and this file
    // has exactly one, so arguments are ignored.
    let setting =
        |name: &str, default: &str| std::env::var(name).unwrap_or_else(|_| default.to_owned());
    let sweep = setting("CRNP_FANOUT_SWEEP", "100,1000,10000");
    let events = setting("CRNP_FANOUT_EVENTS", "50");
    let extra = setting("CRNP_FANOUT_ARGS", "");
    let mut load = Command::new(env!("CARGO_BIN_EXE_crnp-load"));
    load.args([
        "--crnpd",
        env!("CARGO_BIN_EXE_crnpd"),
        "--sweep",
        &sweep,
        "--events",
        &events,
    ])
    .args(extra.split_whitespace())
    .stdin(Stdio::null());
    if let Ok(path) = std::env::var("CRNP_FANOUT_JSON") {
        load.arg("--json");
        match std::fs::File::create(&path) {
            Ok(file) => {
                load.stdout(file);
            }
            Err(e) => {
                eprintln!("fanout: cannot create {path}: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    eprintln!("fanout: crnp-load --sweep {sweep} --events {events} {extra}");
    match load.status() {
        Ok(status) if status.success() => ExitCode::SUCCESS,
        Ok(status) => {
            eprintln!("fanout: crnp-load exited with {status}");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("fanout: cannot run crnp-load: {e}");
            ExitCode::FAILURE
        }
    }
}
