//! Hostile load held beside a run (`--hold-http`, `--hold-slowloris`): idle connections to
//! crnpd's HTTP port, and registrations that send one byte a second and never finish. They are
//! opened before the subscribers register and held until the run ends; the report then says
//! whether crnpd's descriptors and memory came back to where they were before.

use std::net::SocketAddr;
use std::time::Duration;

use serde::Serialize;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::procstat;

/// How long each slowloris connection waits between two bytes.
const DRIBBLE_EVERY: Duration = Duration::from_secs(1);
/// How long after the descriptors settled crnpd's memory is read: one round of its upkeep.
const RSS_SETTLE: Duration = Duration::from_secs(6);
/// How long crnpd gets to come back to its idle descriptor count after the run.
const SETTLE: Duration = Duration::from_secs(90);

/// What the hostile load did, and what crnpd looked like before and after it.
#[derive(Debug, Clone, Default, Serialize)]
pub(crate) struct HostileReport {
    /// Idle HTTP connections opened.
    pub(crate) http_opened: usize,
    /// Slowloris registration connections opened.
    pub(crate) slowloris_opened: usize,
    /// Connections that could not even be opened (refused, reset at once).
    pub(crate) connect_errors: usize,
    /// crnpd's open descriptors before the hostile load.
    pub(crate) fds_before: Option<u64>,
    /// crnpd's open descriptors once the load ended and crnpd settled.
    pub(crate) fds_after: Option<u64>,
    /// crnpd's resident memory before the hostile load, MiB.
    pub(crate) rss_before_mib: Option<f64>,
    /// crnpd's resident memory after the run, MiB.
    pub(crate) rss_after_mib: Option<f64>,
}

/// The held connections.
pub(crate) struct Hostile {
    report: HostileReport,
    pid: Option<u32>,
    http: Vec<TcpStream>,
    dribbler: tokio::task::JoinHandle<()>,
}

impl Hostile {
    /// Opens `http` idle connections to `http_addr` and `slowloris` dribbling registrations to
    /// `crnp_addr`, after noting what crnpd (`pid`) holds.
    pub(crate) async fn open(
        http_addr: SocketAddr,
        crnp_addr: SocketAddr,
        http: usize,
        slowloris: usize,
        pid: Option<u32>,
    ) -> Hostile {
        let mut report = HostileReport {
            fds_before: settled_fds(pid).await,
            rss_before_mib: pid.and_then(rss_mib),
            ..HostileReport::default()
        };
        let held_http = connect_many(http_addr, http, &mut report.connect_errors).await;
        report.http_opened = held_http.len();
        let dribbling = connect_many(crnp_addr, slowloris, &mut report.connect_errors).await;
        report.slowloris_opened = dribbling.len();
        let dribbler = tokio::spawn(dribble(dribbling));
        Hostile {
            report,
            pid,
            http: held_http,
            dribbler,
        }
    }

    /// Closes every held connection, waits (bounded) for crnpd's descriptors to come back to
    /// their count before, and reports.
    pub(crate) async fn close(self) -> HostileReport {
        let Hostile {
            mut report,
            pid,
            http,
            dribbler,
        } = self;
        dribbler.abort();
        let _ = dribbler.await;
        drop(http);
        let deadline = tokio::time::Instant::now() + SETTLE;
        let target = report.fds_before;
        loop {
            let now = pid.and_then(open_fds);
            report.fds_after = now;
            let settled = matches!((now, target), (Some(now), Some(before)) if now <= before);
            if settled || now.is_none() || tokio::time::Instant::now() >= deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        // crnpd hands freed memory back every 5 s (its metrics upkeep): read the RSS after one round.
        tokio::time::sleep(RSS_SETTLE).await;
        report.rss_after_mib = pid.and_then(rss_mib);
        report
    }
}

/// Opens `count` connections to `addr`, counting those that fail in `errors`.
async fn connect_many(addr: SocketAddr, count: usize, errors: &mut usize) -> Vec<TcpStream> {
    let mut streams = Vec::with_capacity(count);
    for _ in 0..count {
        match TcpStream::connect(addr).await {
            Ok(stream) => streams.push(stream),
            Err(_) => *errors += 1,
        }
    }
    streams
}

/// Sends one byte of a registration that never ends, every second, on each connection, until
/// aborted; a connection crnpd closed is dropped.
async fn dribble(mut streams: Vec<TcpStream>) {
    const MESSAGE: &[u8] = b"<?xml version=\"1.0\" encoding=\"UTF-8\"?><SC_CALLBACK_REG VERSION=\"1.0\" PORT=\"7000\" REG_TYPE=\"ADD_CLIENT\">";
    let mut sent = 0usize;
    let mut every = tokio::time::interval(DRIBBLE_EVERY);
    loop {
        every.tick().await;
        let byte = [MESSAGE[sent % MESSAGE.len()]];
        sent += 1;
        let mut alive = Vec::with_capacity(streams.len());
        for mut stream in streams {
            if stream.write_all(&byte).await.is_ok() {
                alive.push(stream);
            }
        }
        streams = alive;
    }
}

/// crnpd's descriptor count once it stopped moving: its cores open their rings just after the
/// ready line, so a count taken at once can be short of the idle level.
async fn settled_fds(pid: Option<u32>) -> Option<u64> {
    let mut last = pid.and_then(open_fds)?;
    for _ in 0..20 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now = pid.and_then(open_fds)?;
        if now == last {
            return Some(now);
        }
        last = now;
    }
    Some(last)
}

fn open_fds(pid: u32) -> Option<u64> {
    let entries = std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?;
    Some(entries.count() as u64)
}

fn rss_mib(pid: u32) -> Option<f64> {
    procstat::rss_kib(pid).ok().map(|kib| kib as f64 / 1024.0)
}
