//! The command line of `crnp-load`.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;

use clap::{Parser, ValueEnum};

/// Load-test a crnpd: N subscribers, M events, every delivery verified, against the machine's
/// loopback limit measured in the same run.
#[derive(Debug, Clone, Parser)]
#[command(name = "crnp-load", version)]
pub(crate) struct Cli {
    /// Subscribers (callback listeners) to start and register.
    #[arg(long, default_value_t = 100)]
    pub(crate) subscribers: usize,
    /// Run once per subscriber count in this list (e.g. 100,1000,10000) instead of --subscribers.
    #[arg(long, value_delimiter = ',')]
    pub(crate) sweep: Vec<usize>,
    /// Events to publish per run.
    #[arg(long, default_value_t = 50)]
    pub(crate) events: u64,
    /// Events per publish request (one JSON array).
    #[arg(long, default_value_t = 1)]
    pub(crate) batch: u64,
    /// Events per second to publish (0: as fast as the server accepts them).
    #[arg(long, default_value_t = 0.0)]
    pub(crate) rate: f64,
    /// Event types (subclasses): subscriber i registers for type i mod T, event j has type j mod T.
    #[arg(long, default_value_t = 1)]
    pub(crate) types: u64,
    /// Pad each SC_EVENT with an `ev_load_pad` pair to about this many bytes (0: no padding).
    #[arg(long, default_value_t = 0)]
    pub(crate) payload_bytes: usize,
    /// What to measure.
    #[arg(long, value_enum, default_value_t = Mode::Both)]
    pub(crate) mode: Mode,
    /// crnpd's registration address (ignored with --crnpd).
    #[arg(long, default_value = "127.0.0.1:9444")]
    pub(crate) server: SocketAddr,
    /// crnpd's HTTP API address (ignored with --crnpd).
    #[arg(long, default_value = "127.0.0.1:9445")]
    pub(crate) http: SocketAddr,
    /// Start this crnpd binary for each run (on port 0, in a fresh data directory) and stop it after.
    #[arg(long)]
    pub(crate) crnpd: Option<PathBuf>,
    /// An extra argument for the started crnpd (repeatable), e.g. --crnpd-arg=--cores=2.
    #[arg(long = "crnpd-arg", allow_hyphen_values = true)]
    pub(crate) crnpd_args: Vec<String>,
    /// Idle connections to crnpd's HTTP port to hold through each run (a hostile local process).
    #[arg(long, default_value_t = 0)]
    pub(crate) hold_http: usize,
    /// Registration connections that send a byte a second and never finish, held through
    /// each run (slowloris).
    #[arg(long, default_value_t = 0)]
    pub(crate) hold_slowloris: usize,
    /// Start the crnpd of --crnpd with this descriptor limit (soft and hard), as `prlimit
    /// --nofile=N:N` would.
    #[arg(long)]
    pub(crate) crnpd_nofile: Option<u64>,
    /// The pid of an already running crnpd, to report its CPU time and peak memory.
    #[arg(long)]
    pub(crate) crnpd_pid: Option<u32>,
    /// First callback IP; subscribers are spread over --sink-ips consecutive addresses from it.
    #[arg(long, default_value = "127.0.1.1")]
    pub(crate) sink_base: Ipv4Addr,
    /// How many callback IPs to spread subscribers over (each gives ~28k ports of headroom).
    #[arg(long, default_value_t = 32)]
    pub(crate) sink_ips: u32,
    /// Source IP of the limit blaster's connections; use crnpd's --source-addr if it has one.
    #[arg(long, default_value = "127.0.0.1")]
    pub(crate) source_addr: IpAddr,
    /// Concurrent registrations.
    #[arg(long, default_value_t = 64)]
    pub(crate) register_concurrency: usize,
    /// Connections the limit blaster keeps in flight (0: one per subscriber, at most 4096).
    #[arg(long, default_value_t = 0)]
    pub(crate) limit_concurrency: usize,
    /// Threads the blaster runs on (0: one per core, as many as crnpd uses by default).
    #[arg(long, default_value_t = 0)]
    pub(crate) limit_threads: usize,
    /// The blasters to measure after crnpd, each on the same subscribers: `plain` closes right
    /// after writing, `await-eof` also waits for the subscriber's EOF before closing (the
    /// lossless full-duplex close crnpd does).
    #[arg(long, value_enum, value_delimiter = ',', default_values_t = [Blaster::Plain, Blaster::AwaitEof])]
    pub(crate) blasters: Vec<Blaster>,
    /// Seconds a registration, a publish request or one delivery read may take.
    #[arg(long, default_value_t = 10.0)]
    pub(crate) timeout: f64,
    /// Seconds without a new delivery after which a phase stops waiting (the rest is missing).
    #[arg(long, default_value_t = 15.0)]
    pub(crate) drain_timeout: f64,
    /// Kill -9 the crnpd of --crnpd after every N acknowledged events of the crnpd phase (after
    /// a seeded delay of 0-200 ms) and restart it on the same data directory and ports; the
    /// report gives the duplicates of each round. 0: never.
    #[arg(long, default_value_t = 0)]
    pub(crate) crash_every: u64,
    /// Seed of the delays before each kill of --crash-every.
    #[arg(long, default_value_t = 1)]
    pub(crate) crash_seed: u64,
    /// Print the report as JSON on standard output (the table goes to standard error).
    #[arg(long)]
    pub(crate) json: bool,
    /// Serve a share of another crnp-load's subscribers, told what on standard input (used
    /// by crnp-load itself when one process's descriptor limit cannot hold them all).
    #[arg(long, hide = true)]
    pub(crate) sink_worker: bool,
    /// Write a PNG chart of deliveries/s and p99 latency against subscribers (with --sweep).
    #[arg(long)]
    pub(crate) plot: Option<PathBuf>,
}

/// How a blaster closes its connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Blaster {
    /// Write, shut down both directions, close.
    Plain,
    /// Write, shut down writing, wait for the subscriber's EOF, close.
    AwaitEof,
}

/// Which phases run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Mode {
    /// Measure crnpd, then the loopback limit with the blaster on the same sinks.
    Both,
    /// Measure crnpd only.
    Crnpd,
    /// Measure the loopback limit only (no server needed).
    Limit,
}

impl Mode {
    /// True when crnpd is measured.
    pub(crate) fn crnpd(self) -> bool {
        matches!(self, Mode::Both | Mode::Crnpd)
    }

    /// True when the loopback limit is measured.
    pub(crate) fn limit(self) -> bool {
        matches!(self, Mode::Both | Mode::Limit)
    }
}

impl Cli {
    /// The subscriber counts to run, in order.
    pub(crate) fn points(&self) -> Vec<usize> {
        if self.sweep.is_empty() {
            vec![self.subscribers]
        } else {
            self.sweep.clone()
        }
    }

    /// Checks what clap cannot; the message says what to change.
    pub(crate) fn validate(&self) -> Result<(), String> {
        if self.points().contains(&0) {
            return Err("subscriber counts must be at least 1".into());
        }
        if self.events == 0 || self.batch == 0 || self.types == 0 {
            return Err("--events, --batch and --types must be at least 1".into());
        }
        if self.sink_ips == 0
            || u32::from(self.sink_base)
                .checked_add(self.sink_ips - 1)
                .is_none()
        {
            return Err("--sink-ips must be at least 1 and stay within IPv4".into());
        }
        if !self.sink_base.is_loopback() || !self.source_addr.is_loopback() {
            return Err(
                "--sink-base and --source-addr must be loopback (127.0.0.0/8) addresses".into(),
            );
        }
        if !(self.rate >= 0.0 && self.rate.is_finite()) {
            return Err("--rate must be a non-negative number".into());
        }
        if self.crash_every > 0 && (self.crnpd.is_none() || !self.mode.crnpd()) {
            return Err("--crash-every needs --crnpd PATH (crnp-load restarts the crnpd it started) and a mode that measures crnpd".into());
        }
        if self.register_concurrency == 0 {
            return Err("--register-concurrency must be at least 1".into());
        }
        Ok(())
    }
}
