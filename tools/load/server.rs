//! The crnpd under test: one this tool started (and stops), or one already running.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::Duration;

use tokio::sync::oneshot;

/// How long a started crnpd may take to print its ready line.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a stopping crnpd may take after SIGTERM before it gets SIGKILL.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// Where the server under test listens, and its pid when known.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Target {
    /// The registration address (`--listen`).
    pub(crate) listen: SocketAddr,
    /// The HTTP API address (`--http`).
    pub(crate) http: SocketAddr,
    /// The process, for CPU time and peak memory.
    pub(crate) pid: Option<u32>,
}

/// A crnpd this tool started.
pub(crate) struct OwnedServer {
    /// Its addresses and pid.
    pub(crate) target: Target,
    /// How it was started, to start it again after a crash.
    launch: Launch,
    /// Fires when the process has exited.
    exited: oneshot::Receiver<std::io::Result<ExitStatus>>,
}

/// Everything needed to start the same crnpd again.
struct Launch {
    path: PathBuf,
    extra: Vec<String>,
    nofile: Option<u64>,
    work_dir: PathBuf,
    /// Its private data directory (removed on stop).
    data_dir: PathBuf,
    /// Processes started so far (each logs to its own file).
    starts: usize,
}

/// Why a started crnpd is not usable.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ServerError {
    /// The binary could not be run.
    #[error("cannot start {path}: {source}")]
    Spawn {
        /// The binary.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// It did not say it was ready.
    #[error(
        "{path} did not print `crnpd ready listen=... http=...` within {READY_TIMEOUT:?} ({reason}); see {log}"
    )]
    NotReady {
        /// The binary.
        path: PathBuf,
        /// What happened instead.
        reason: String,
        /// Its standard error.
        log: String,
    },
}

impl OwnedServer {
    /// Starts `path` on port 0 for both addresses, in a fresh data directory under `work_dir`,
    /// with `extra` arguments appended, and waits for its ready line.
    pub(crate) async fn start(
        path: &Path,
        extra: &[String],
        nofile: Option<u64>,
        work_dir: &Path,
    ) -> Result<Self, ServerError> {
        let launch = Launch {
            path: path.to_owned(),
            extra: extra.to_vec(),
            nofile,
            work_dir: work_dir.to_owned(),
            data_dir: work_dir.join("data"),
            starts: 0,
        };
        std::fs::create_dir_all(&launch.data_dir).map_err(|source| ServerError::Spawn {
            path: path.to_owned(),
            source,
        })?;
        Self::launch(launch, loopback_any_port(), loopback_any_port()).await
    }

    /// Kills the server with SIGKILL, as a crash would, and starts it again on the same data
    /// directory and the same addresses; waits for its ready line.
    pub(crate) async fn crash_and_restart(self) -> Result<Self, ServerError> {
        let Self {
            target,
            launch,
            mut exited,
        } = self;
        if let Some(pid) = target.pid.and_then(|pid| i32::try_from(pid).ok()) {
            // SAFETY: kill has no memory preconditions; the pid is our unreaped child.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            let _ = tokio::time::timeout(STOP_TIMEOUT, &mut exited).await;
        }
        Self::launch(launch, target.listen, target.http).await
    }

    async fn launch(
        mut launch: Launch,
        listen: SocketAddr,
        http: SocketAddr,
    ) -> Result<Self, ServerError> {
        let path = launch.path.clone();
        let spawn_error = |source| ServerError::Spawn {
            path: path.clone(),
            source,
        };
        launch.starts += 1;
        let log_path = match launch.starts {
            1 => launch.work_dir.join("crnpd.log"),
            n => launch.work_dir.join(format!("crnpd.{n}.log")),
        };
        let log = std::fs::File::create(&log_path).map_err(spawn_error)?;
        let mut command = Command::new(&launch.path);
        if let Some(limit) = launch.nofile {
            // SAFETY: the hook only makes the setrlimit system call, which is safe after fork.
            unsafe {
                command.pre_exec(move || crnp::budget::set_descriptor_limit(limit));
            }
        }
        let mut child = command
            .arg("--listen")
            .arg(listen.to_string())
            .arg("--http")
            .arg(http.to_string())
            .arg("--data-dir")
            .arg(&launch.data_dir)
            .args(&launch.extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .map_err(spawn_error)?;
        let pid = child.id();
        let (ready_tx, ready_rx) = oneshot::channel();
        if let Some(stdout) = child.stdout.take() {
            std::thread::spawn(move || watch_stdout(stdout, ready_tx));
        }
        let (exit_tx, exited) = oneshot::channel();
        std::thread::spawn(move || {
            let _ = exit_tx.send(child.wait());
        });
        let mut server = Self {
            target: Target {
                listen: unspecified(),
                http: unspecified(),
                pid: Some(pid),
            },
            launch,
            exited,
        };
        let not_ready = |reason: String| ServerError::NotReady {
            path: path.clone(),
            reason,
            log: log_path.display().to_string(),
        };
        match tokio::time::timeout(READY_TIMEOUT, ready_rx).await {
            Ok(Ok((listen, http))) => {
                server.target.listen = listen;
                server.target.http = http;
                Ok(server)
            }
            Ok(Err(_)) => {
                server.stop().await;
                Err(not_ready("it closed its standard output first".into()))
            }
            Err(_) => {
                server.stop().await;
                Err(not_ready("timed out".into()))
            }
        }
    }

    /// Stops the server (SIGTERM, then SIGKILL after a grace period) and removes its data.
    pub(crate) async fn stop(mut self) {
        if let Some(pid) = self.target.pid.and_then(|pid| i32::try_from(pid).ok()) {
            // SAFETY: kill has no memory preconditions; the pid is our unreaped child.
            unsafe { libc::kill(pid, libc::SIGTERM) };
            if tokio::time::timeout(STOP_TIMEOUT, &mut self.exited)
                .await
                .is_err()
            {
                // SAFETY: as above; the child has not been reaped, as its exit was not reported.
                unsafe { libc::kill(pid, libc::SIGKILL) };
                let _ = tokio::time::timeout(STOP_TIMEOUT, &mut self.exited).await;
            }
        }
        let _ = std::fs::remove_dir_all(&self.launch.data_dir);
    }
}

/// 127.0.0.1:0: the kernel picks the port at the first start.
fn loopback_any_port() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

/// 0.0.0.0:0, until the ready line names the real addresses.
fn unspecified() -> SocketAddr {
    SocketAddr::from(([0, 0, 0, 0], 0))
}

/// Reads crnpd's standard output: reports the ready line, then drains the rest.
fn watch_stdout(
    stdout: std::process::ChildStdout,
    ready: oneshot::Sender<(SocketAddr, SocketAddr)>,
) {
    let mut ready = Some(ready);
    for line in BufReader::new(stdout).lines() {
        let Ok(line) = line else { return };
        if let Some(addrs) = parse_ready(&line)
            && let Some(ready) = ready.take()
        {
            let _ = ready.send(addrs);
        }
    }
}

/// Parses `crnpd ready listen=IP:PORT http=IP:PORT`.
fn parse_ready(line: &str) -> Option<(SocketAddr, SocketAddr)> {
    let rest = line.trim().strip_prefix("crnpd ready ")?;
    let mut listen = None;
    let mut http = None;
    for word in rest.split_whitespace() {
        if let Some(addr) = word.strip_prefix("listen=") {
            listen = addr.parse().ok();
        } else if let Some(addr) = word.strip_prefix("http=") {
            http = addr.parse().ok();
        }
    }
    Some((listen?, http?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ready_line_names_both_addresses() {
        let (listen, http) =
            parse_ready("crnpd ready listen=127.0.0.1:4000 http=127.0.0.1:4001\n").unwrap();
        assert_eq!((listen.port(), http.port()), (4000, 4001));
        assert_eq!(parse_ready("crnpd ready listen=127.0.0.1:4000"), None);
        assert_eq!(parse_ready("starting"), None);
    }
}
