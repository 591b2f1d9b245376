//! Helpers of the observability tests: the external Prometheus tools (required, never skipped),
//! a real Prometheus server on loopback that is always stopped, and the Grafana dashboard's
//! queries.
#![allow(dead_code, unreachable_pub)]

use std::collections::BTreeSet;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::{WAIT, http};

/// The dashboard, relative to the crate root.
pub const DASHBOARD: &str = "docs/grafana-dashboard.json";

/// The path of an installed tool; fails the test (never skips it) when it is missing.
pub fn require(tool: &str) -> PathBuf {
    let found = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|dir| dir.join(tool))
            .find(|candidate| candidate.is_file())
    });
    found.unwrap_or_else(|| {
        panic!(
            "`{tool}` is not installed, and this test needs the real one: run \
             `scripts/install-test-deps` as root (it apt-get installs Debian's `prometheus` \
             package, which ships `prometheus` and `promtool`; .ci/run runs it too)"
        )
    })
}

/// A port the kernel handed out a moment ago on 127.0.0.1 (bound, read, released).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free loopback port")
        .port()
}

/// A real Prometheus server on 127.0.0.1, scraping one target every second, with its storage
/// in a temporary directory. Dropping it stops the server, on every path (panics included).
pub struct Prometheus {
    child: Child,
    /// Its HTTP address (query API, readiness).
    pub addr: SocketAddr,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Prometheus {
    /// Starts Prometheus scraping `target`'s `/metrics` and waits (bounded) until it is ready.
    pub fn start(target: SocketAddr) -> Prometheus {
        let binary = require("prometheus");
        let dir = tempfile::tempdir().expect("tempdir");
        let config = dir.path().join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
                 scrape_configs:\n  - job_name: crnpd\n    static_configs:\n      - targets: ['{target}']\n"
            ),
        )
        .expect("write prometheus.yml");
        let log = dir.path().join("prometheus.log");
        let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let child = Command::new(binary)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("tsdb").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            .arg("--log.level=warn")
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(
                std::fs::File::create(&log).expect("prometheus log"),
            ))
            .spawn()
            .expect("spawn prometheus");
        let mut prometheus = Prometheus {
            child,
            addr,
            log,
            _dir: dir,
        };
        prometheus.wait_ready();
        prometheus
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "prometheus exited ({status}) before it was ready; log:\n{}",
                    self.log()
                );
            }
            if std::net::TcpStream::connect_timeout(&self.addr, Duration::from_secs(1)).is_ok()
                && http(self.addr, "GET", "/-/ready", None, None).0 == 200
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "prometheus not ready in time; log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Prometheus's own log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Runs an instant query; returns the whole JSON answer (`status`, `data`, or `error`).
    pub fn query(&self, promql: &str) -> serde_json::Value {
        let path = format!("/api/v1/query?query={}", url_encode(promql));
        let (status, body) = http(self.addr, "GET", &path, None, None);
        serde_json::from_str(&body)
            .unwrap_or_else(|e| panic!("query {promql:?}: HTTP {status}, not JSON ({e}): {body}"))
    }

    /// The single value of an instant query, or `None` while it has no result.
    pub fn value(&self, promql: &str) -> Option<f64> {
        let answer = self.query(promql);
        assert_eq!(answer["status"], "success", "query {promql:?}: {answer}");
        let result = answer["data"]["result"].as_array()?;
        assert!(
            result.len() <= 1,
            "query {promql:?} has several series: {answer}"
        );
        result.first()?["value"][1].as_str()?.parse().ok()
    }

    /// Polls (bounded) until `promql` equals `want`; returns what it saw last otherwise.
    pub fn wait_value(&self, promql: &str, want: f64) -> Result<(), Option<f64>> {
        let deadline = Instant::now() + WAIT * 2;
        loop {
            let value = self.value(promql);
            if value == Some(want) {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(value);
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Percent-encodes a query parameter value.
pub fn url_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The Grafana dashboard as JSON.
pub fn dashboard() -> serde_json::Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(DASHBOARD);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()))
}

/// Every panel's title with its query expressions, rows and nested panels included.
pub fn panels(dashboard: &serde_json::Value) -> Vec<(String, Vec<String>)> {
    let mut found = Vec::new();
    let mut stack: Vec<&serde_json::Value> = dashboard["panels"]
        .as_array()
        .map(|p| p.iter().collect())
        .unwrap_or_default();
    while let Some(panel) = stack.pop() {
        if let Some(nested) = panel["panels"].as_array() {
            stack.extend(nested);
        }
        let exprs: Vec<String> = panel["targets"]
            .as_array()
            .map(|targets| {
                targets
                    .iter()
                    .filter_map(|t| t["expr"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        if panel["type"] != "row" {
            let title = panel["title"].as_str().unwrap_or("(untitled)").to_owned();
            found.push((title, exprs));
        }
    }
    found
}

/// An expression with Grafana's variables replaced so Prometheus can run it.
pub fn runnable(expr: &str) -> String {
    expr.replace("$__rate_interval", "1m")
        .replace("$__interval", "15s")
        .replace("$__range", "5m")
}

/// The metric names an expression reads: identifiers beginning with `crnp_` outside label
/// matchers' quoted values.
pub fn metric_names(expr: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut in_quotes = false;
    let mut word = String::new();
    for c in expr.chars().chain(std::iter::once(' ')) {
        if c == '"' {
            in_quotes = !in_quotes;
        }
        if !in_quotes && (c.is_ascii_alphanumeric() || c == '_' || c == ':') {
            word.push(c);
            continue;
        }
        if word.starts_with("crnp_") {
            names.insert(std::mem::take(&mut word));
        }
        word.clear();
    }
    names
}

/// Every series name a Prometheus text exposition offers: its `# TYPE` names, histograms and
/// summaries expanded to `_bucket`/`_sum`/`_count` (and the bare name for a summary).
pub fn exposed_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("# TYPE ") else {
            continue;
        };
        let Some((name, kind)) = rest.split_once(' ') else {
            continue;
        };
        match kind.trim() {
            "histogram" => {
                for suffix in ["_bucket", "_sum", "_count"] {
                    names.insert(format!("{name}{suffix}"));
                }
            }
            "summary" => {
                for suffix in ["", "_sum", "_count"] {
                    names.insert(format!("{name}{suffix}"));
                }
            }
            _ => {
                names.insert(name.to_owned());
            }
        }
    }
    names
}
