//! One typed configuration, from flags, the environment and a TOML file, validated at start-up.
//!
//! Precedence: a flag beats its `CRNPD_*` environment variable, which beats the `--config`
//! file, which beats the embedded default. Every setting has all three spellings: the flag
//! `--client-timeout`, the variable `CRNPD_CLIENT_TIMEOUT`, the file key `client-timeout`.

use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU16;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use serde::{Deserialize, Deserializer};

use crate::acl::HostList;

/// The historical CRNP registration port.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:9444";
/// Where the control plane (publish, admin, health, metrics) listens by default.
pub const DEFAULT_HTTP: &str = "127.0.0.1:9445";

/// The `crnpd` command line.
#[derive(Debug, Parser)]
#[command(
    name = "crnpd",
    version,
    about = "CRNP server: cluster event notification over TCP"
)]
pub struct Cli {
    /// An operator command; without one, crnpd serves.
    #[command(subcommand)]
    pub command: Option<Command>,
    /// The serving settings.
    #[command(flatten)]
    pub settings: Settings,
}

/// Operator commands that do not serve.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Inspect the registry store in --data-dir (crnpd must not be running on it).
    Store {
        /// What to do with the store.
        #[command(subcommand)]
        action: StoreAction,
    },
}

/// What `crnpd store` does.
#[derive(Debug, Clone, Copy, Subcommand)]
pub enum StoreAction {
    /// Open the store, verify its integrity, and print what it holds.
    Check,
    /// Print the registry (clients and latest events) as JSON on stdout.
    Export,
}

/// Every setting, each optional so that flags, environment and file can be layered.
#[derive(Debug, Clone, Default, Args, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Settings {
    /// TOML file with any of these settings (keys as the flags, without `--`).
    #[arg(long, env = "CRNPD_CONFIG", global = true)]
    #[serde(skip)]
    pub config: Option<PathBuf>,
    /// Address for CRNP registrations [default: 127.0.0.1:9444].
    #[arg(long, env = "CRNPD_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// Address of the HTTP control plane: publish, admin, /healthz, /metrics [default: 127.0.0.1:9445].
    #[arg(long, env = "CRNPD_HTTP")]
    pub http: Option<SocketAddr>,
    /// Directory holding the registry store [default: ./crnpd-data].
    #[arg(long, env = "CRNPD_DATA_DIR", global = true)]
    pub data_dir: Option<PathBuf>,
    /// Data-plane threads, one io_uring ring each [default: all cores].
    #[arg(long, env = "CRNPD_CORES")]
    pub cores: Option<usize>,
    /// Delivery attempts per event before a client is removed (1-100) [default: 3].
    #[arg(long, env = "CRNPD_CLIENT_RETRY_COUNT")]
    pub client_retry_count: Option<u32>,
    /// Seconds over which the attempts are spread; attempts are interval/count apart [default: 1800].
    #[arg(long, env = "CRNPD_CLIENT_RETRY_INTERVAL")]
    pub client_retry_interval: Option<Seconds>,
    /// Seconds allowed for one registration read or one delivery attempt [default: 60].
    #[arg(long, env = "CRNPD_CLIENT_TIMEOUT")]
    pub client_timeout: Option<Seconds>,
    /// Registered clients at most; further ADD_CLIENTs get LOW_RESOURCE [default: 100000].
    #[arg(long, env = "CRNPD_MAX_CLIENTS")]
    pub max_clients: Option<usize>,
    /// Who may register: IPs, CIDR ranges, LOCAL, ALL [default: LOCAL].
    #[arg(long, env = "CRNPD_ALLOW_HOSTS")]
    pub allow_hosts: Option<HostList>,
    /// Who may not register, whatever --allow-hosts says [default: none].
    #[arg(long, env = "CRNPD_DENY_HOSTS")]
    pub deny_hosts: Option<HostList>,
    /// Source IP of outbound deliveries [default: the --listen IP unless it is a wildcard].
    #[arg(long, env = "CRNPD_SOURCE_ADDR")]
    pub source_addr: Option<IpAddr>,
    /// Source port of outbound deliveries; 0 for an ephemeral port each [default: the --listen
    /// port]. Bound at start-up, which fails if it cannot be had, and held while crnpd runs.
    #[arg(long, env = "CRNPD_SOURCE_PORT")]
    pub source_port: Option<u16>,
    /// Largest registration message in bytes [default: 65536].
    #[arg(long, env = "CRNPD_MAX_MESSAGE_BYTES")]
    pub max_message_bytes: Option<usize>,
    /// Registration connections open at once, per core; more get LOW_RESOURCE [default: 4096].
    #[arg(long, env = "CRNPD_MAX_CONNECTIONS")]
    pub max_connections: Option<usize>,
    /// Events queued for one client at most; past it the client is removed [default: 10000].
    #[arg(long, env = "CRNPD_MAX_QUEUE_DEPTH")]
    pub max_queue_depth: Option<usize>,
    /// Event types one client may hold; a registration past it gets LOW_RESOURCE [default: 1000].
    #[arg(long, env = "CRNPD_MAX_EVENT_TYPES")]
    pub max_event_types: Option<usize>,
    /// Latest states kept for new registrations; past it the oldest is forgotten [default: 100000].
    #[arg(long, env = "CRNPD_MAX_LATEST_STATES")]
    pub max_latest_states: Option<usize>,
    /// HTTP connections open at once; more get 503 and are closed [default: 256].
    #[arg(long, env = "CRNPD_MAX_HTTP_CONNECTIONS")]
    pub max_http_connections: Option<usize>,
    /// Seconds an HTTP client has to send a request's headers, and to start the next request
    /// on a kept-alive connection [default: 10].
    #[arg(long, env = "CRNPD_HTTP_HEADER_TIMEOUT")]
    pub http_header_timeout: Option<Seconds>,
    /// Seconds an HTTP client has to send a request's body [default: 30].
    #[arg(long, env = "CRNPD_HTTP_BODY_TIMEOUT")]
    pub http_body_timeout: Option<Seconds>,
    /// Registry writes that may share one durable commit [default: 4096].
    #[arg(long, env = "CRNPD_MAX_COMMIT_BATCH")]
    pub max_commit_batch: Option<usize>,
    /// Seconds allowed for in-flight work at shutdown [default: 5].
    #[arg(long, env = "CRNPD_SHUTDOWN_TIMEOUT")]
    pub shutdown_timeout: Option<Seconds>,
    /// Event log entries kept at most; past it the oldest go, whatever the cursors [default: 1000000].
    #[arg(long, env = "CRNPD_LOG_RETENTION_EVENTS")]
    pub log_retention_events: Option<u64>,
    /// Bytes of event log entries kept at most; past it the oldest go [default: 268435456].
    #[arg(long, env = "CRNPD_LOG_RETENTION_BYTES")]
    pub log_retention_bytes: Option<u64>,
    /// Seconds between two cursor reports of a core while deliveries go on; after a crash a
    /// client may get again what it received in about this long [default: 0.1].
    #[arg(long, env = "CRNPD_CURSOR_INTERVAL")]
    pub cursor_interval: Option<Seconds>,
    /// Wait for the instance holding --data-dir, take over when it dies.
    #[arg(long, env = "CRNPD_STANDBY", num_args = 0..=1, default_missing_value = "true")]
    pub standby: Option<bool>,
    /// Bearer token required for admin calls that change state when --http is not loopback.
    #[arg(long, env = "CRNPD_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
    /// File whose first line is the admin token.
    #[arg(long, env = "CRNPD_ADMIN_TOKEN_FILE")]
    pub admin_token_file: Option<PathBuf>,
    /// PEM certificate chain for HTTPS on --http (with --tls-key); reloaded on SIGHUP.
    #[arg(long, env = "CRNPD_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(long, env = "CRNPD_TLS_KEY")]
    pub tls_key: Option<PathBuf>,
    /// Accept an admin token over plain HTTP on an address other than loopback.
    #[arg(long, env = "CRNPD_ALLOW_PLAINTEXT_TOKEN", num_args = 0..=1, default_missing_value = "true")]
    pub allow_plaintext_token: Option<bool>,
}

/// A duration given in (possibly fractional) seconds, e.g. `0.2`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Seconds(pub Duration);

impl FromStr for Seconds {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let value: f64 = text
            .trim()
            .parse()
            .map_err(|_| format!("{text:?} is not a number of seconds"))?;
        Duration::try_from_secs_f64(value)
            .map(Seconds)
            .map_err(|_| format!("{text:?} is not a non-negative number of seconds"))
    }
}

impl<'de> Deserialize<'de> for Seconds {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = f64::deserialize(deserializer)?;
        Duration::try_from_secs_f64(value)
            .map(Seconds)
            .map_err(serde::de::Error::custom)
    }
}

impl<'de> Deserialize<'de> for HostList {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// The validated configuration the server runs with.
#[derive(Debug, Clone)]
pub struct Config {
    /// Address for CRNP registrations.
    pub listen: SocketAddr,
    /// Address of the HTTP control plane.
    pub http: SocketAddr,
    /// Directory holding the registry store.
    pub data_dir: PathBuf,
    /// Data-plane threads.
    pub cores: usize,
    /// Delivery attempts per event before the client is removed.
    pub client_retry_count: u32,
    /// Period over which those attempts are spread.
    pub client_retry_interval: Duration,
    /// Deadline of one registration read or one delivery attempt.
    pub client_timeout: Duration,
    /// Registered clients at most.
    pub max_clients: usize,
    /// Who may register.
    pub allow_hosts: HostList,
    /// Who may not register.
    pub deny_hosts: HostList,
    /// Source IP of outbound deliveries; `None` lets the kernel choose (wildcard listen).
    pub source_addr: Option<IpAddr>,
    /// Source port of outbound deliveries.
    pub source_port: SourcePort,
    /// Largest registration message in bytes.
    pub max_message_bytes: usize,
    /// Registration connections open at once, per core.
    pub max_connections: usize,
    /// Events queued for one client at most.
    pub max_queue_depth: usize,
    /// Event types one client may hold.
    pub max_event_types: usize,
    /// Latest states kept.
    pub max_latest_states: usize,
    /// HTTP connections open at once.
    pub max_http_connections: usize,
    /// Time for a request's headers, and for the next request on a kept-alive connection.
    pub http_header_timeout: Duration,
    /// Time for a request's body.
    pub http_body_timeout: Duration,
    /// Registry writes that may share one durable commit.
    pub max_commit_batch: usize,
    /// Time allowed for in-flight work at shutdown.
    pub shutdown_timeout: Duration,
    /// How much of the event log is kept.
    pub retention: crate::registry::Retention,
    /// Time between two cursor reports of a core.
    pub cursor_interval: Duration,
    /// Whether to wait for another instance to release the store first.
    pub standby: bool,
    /// Bearer token for state-changing admin calls, if any.
    pub admin_token: Option<String>,
    /// Certificate chain and key for HTTPS, if configured.
    pub tls: Option<TlsFiles>,
    /// Whether a token may travel over plain HTTP off loopback.
    pub allow_plaintext_token: bool,
}

/// The PEM files of the HTTP API's certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The certificate chain, the server's certificate first.
    pub cert: PathBuf,
    /// Its private key.
    pub key: PathBuf,
}

/// The source port of outbound deliveries. Clients that follow the developer's guide accept a
/// delivery only from the address and port they registered with, hence the default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourcePort {
    /// The port registrations are accepted on (the one bound when `--listen` asks for port 0).
    Listen,
    /// A port the kernel picks for each connection (`--source-port 0`).
    Ephemeral,
    /// This port (`--source-port N`).
    Fixed(NonZeroU16),
}

impl SourcePort {
    /// `--source-port N`: 0 means ephemeral ports.
    pub fn from_flag(port: u16) -> Self {
        NonZeroU16::new(port).map_or(SourcePort::Ephemeral, SourcePort::Fixed)
    }
}

/// A setting that cannot be used, named with what would be accepted.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The config file could not be read.
    #[error("cannot read config file {path}: {source}")]
    ReadFile {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The config file is not valid TOML for these settings.
    #[error("config file {path}: {message}")]
    ParseFile {
        /// The file.
        path: PathBuf,
        /// What the parser said.
        message: String,
    },
    /// A value is out of its range.
    #[error("{setting} = {value}: {expected}")]
    OutOfRange {
        /// The setting's name.
        setting: &'static str,
        /// The value given.
        value: String,
        /// What is accepted.
        expected: &'static str,
    },
}

impl Settings {
    /// Reads the `--config` file, if any, and layers these settings over it.
    pub fn with_file(self) -> Result<Settings, ConfigError> {
        let Some(path) = self.config.clone() else {
            return Ok(self);
        };
        Ok(self.over(read_file(&path)?))
    }

    /// These settings where set, `lower` where not.
    fn over(self, lower: Settings) -> Settings {
        Settings {
            config: self.config.or(lower.config),
            listen: self.listen.or(lower.listen),
            http: self.http.or(lower.http),
            data_dir: self.data_dir.or(lower.data_dir),
            cores: self.cores.or(lower.cores),
            client_retry_count: self.client_retry_count.or(lower.client_retry_count),
            client_retry_interval: self.client_retry_interval.or(lower.client_retry_interval),
            client_timeout: self.client_timeout.or(lower.client_timeout),
            max_clients: self.max_clients.or(lower.max_clients),
            allow_hosts: self.allow_hosts.or(lower.allow_hosts),
            deny_hosts: self.deny_hosts.or(lower.deny_hosts),
            source_addr: self.source_addr.or(lower.source_addr),
            source_port: self.source_port.or(lower.source_port),
            max_message_bytes: self.max_message_bytes.or(lower.max_message_bytes),
            max_connections: self.max_connections.or(lower.max_connections),
            max_queue_depth: self.max_queue_depth.or(lower.max_queue_depth),
            max_event_types: self.max_event_types.or(lower.max_event_types),
            max_latest_states: self.max_latest_states.or(lower.max_latest_states),
            max_http_connections: self.max_http_connections.or(lower.max_http_connections),
            http_header_timeout: self.http_header_timeout.or(lower.http_header_timeout),
            http_body_timeout: self.http_body_timeout.or(lower.http_body_timeout),
            max_commit_batch: self.max_commit_batch.or(lower.max_commit_batch),
            shutdown_timeout: self.shutdown_timeout.or(lower.shutdown_timeout),
            log_retention_events: self.log_retention_events.or(lower.log_retention_events),
            log_retention_bytes: self.log_retention_bytes.or(lower.log_retention_bytes),
            cursor_interval: self.cursor_interval.or(lower.cursor_interval),
            standby: self.standby.or(lower.standby),
            admin_token: self.admin_token.or(lower.admin_token),
            admin_token_file: self.admin_token_file.or(lower.admin_token_file),
            tls_cert: self.tls_cert.or(lower.tls_cert),
            tls_key: self.tls_key.or(lower.tls_key),
            allow_plaintext_token: self.allow_plaintext_token.or(lower.allow_plaintext_token),
        }
    }

    /// Fills defaults and validates every value.
    pub fn resolve(self) -> Result<Config, ConfigError> {
        let listen = self.listen.unwrap_or_else(|| parse_default(DEFAULT_LISTEN));
        let cores = self
            .cores
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
        let client_retry_count = self.client_retry_count.unwrap_or(3);
        let client_retry_interval = self
            .client_retry_interval
            .map_or(Duration::from_secs(1800), |s| s.0);
        let client_timeout = self.client_timeout.map_or(Duration::from_secs(60), |s| s.0);
        let admin_token = match (self.admin_token, self.admin_token_file) {
            (Some(token), _) => Some(token),
            (None, Some(path)) => Some(read_token(&path)?),
            (None, None) => None,
        };
        let config = Config {
            listen,
            http: self.http.unwrap_or_else(|| parse_default(DEFAULT_HTTP)),
            data_dir: self.data_dir.unwrap_or_else(|| PathBuf::from("crnpd-data")),
            cores,
            client_retry_count,
            client_retry_interval,
            client_timeout,
            max_clients: self.max_clients.unwrap_or(100_000),
            allow_hosts: self
                .allow_hosts
                .unwrap_or(HostList(vec![crate::acl::HostRule::Local])),
            deny_hosts: self.deny_hosts.unwrap_or_default(),
            source_addr: self
                .source_addr
                .or_else(|| (!listen.ip().is_unspecified()).then(|| listen.ip())),
            source_port: self
                .source_port
                .map_or(SourcePort::Listen, SourcePort::from_flag),
            max_message_bytes: self.max_message_bytes.unwrap_or(64 * 1024),
            max_connections: self.max_connections.unwrap_or(4096),
            max_queue_depth: self.max_queue_depth.unwrap_or(10_000),
            max_event_types: self.max_event_types.unwrap_or(1000),
            max_latest_states: self.max_latest_states.unwrap_or(100_000),
            max_http_connections: self.max_http_connections.unwrap_or(256),
            http_header_timeout: self
                .http_header_timeout
                .map_or(Duration::from_secs(10), |s| s.0),
            http_body_timeout: self
                .http_body_timeout
                .map_or(Duration::from_secs(30), |s| s.0),
            max_commit_batch: self.max_commit_batch.unwrap_or(4096),
            shutdown_timeout: self
                .shutdown_timeout
                .map_or(Duration::from_secs(5), |s| s.0),
            retention: {
                let default = crate::registry::Retention::default();
                crate::registry::Retention {
                    max_events: self.log_retention_events.unwrap_or(default.max_events),
                    max_bytes: self.log_retention_bytes.unwrap_or(default.max_bytes),
                }
            },
            cursor_interval: self
                .cursor_interval
                .map_or(Duration::from_millis(100), |s| s.0),
            standby: self.standby.unwrap_or(false),
            admin_token,
            tls: match (self.tls_cert, self.tls_key) {
                (Some(cert), Some(key)) => Some(TlsFiles { cert, key }),
                (None, None) => None,
                (cert, _) => {
                    return Err(ConfigError::OutOfRange {
                        setting: if cert.is_some() {
                            "tls-key"
                        } else {
                            "tls-cert"
                        },
                        value: "(not set)".into(),
                        expected: "--tls-cert and --tls-key together, or neither",
                    });
                }
            },
            allow_plaintext_token: self.allow_plaintext_token.unwrap_or(false),
        };
        config.validate()?;
        Ok(config)
    }
}

impl Config {
    fn validate(&self) -> Result<(), ConfigError> {
        check(
            "cores",
            self.cores,
            (1..=1024).contains(&self.cores),
            "1 to 1024",
        )?;
        check(
            "client-retry-count",
            self.client_retry_count,
            (1..=100).contains(&self.client_retry_count),
            "1 to 100 attempts",
        )?;
        check(
            "client-timeout",
            self.client_timeout.as_secs_f64(),
            self.client_timeout >= Duration::from_millis(1),
            "at least 0.001 seconds",
        )?;
        check(
            "max-clients",
            self.max_clients,
            self.max_clients >= 1,
            "at least 1",
        )?;
        check(
            "max-message-bytes",
            self.max_message_bytes,
            (256..=16 << 20).contains(&self.max_message_bytes),
            "256 to 16777216 bytes",
        )?;
        check(
            "max-connections",
            self.max_connections,
            self.max_connections >= 1,
            "at least 1",
        )?;
        check(
            "max-queue-depth",
            self.max_queue_depth,
            self.max_queue_depth >= 1,
            "at least 1",
        )?;
        check(
            "max-event-types",
            self.max_event_types,
            self.max_event_types >= 1,
            "at least 1",
        )?;
        check(
            "max-latest-states",
            self.max_latest_states,
            self.max_latest_states >= 1,
            "at least 1",
        )?;
        check(
            "max-http-connections",
            self.max_http_connections,
            self.max_http_connections >= 1,
            "at least 1",
        )?;
        for (setting, value) in [
            ("http-header-timeout", self.http_header_timeout),
            ("http-body-timeout", self.http_body_timeout),
        ] {
            check(
                setting,
                value.as_secs_f64(),
                value >= Duration::from_millis(1),
                "at least 0.001 seconds",
            )?;
        }
        check(
            "max-commit-batch",
            self.max_commit_batch,
            self.max_commit_batch >= 1,
            "at least 1",
        )?;
        check(
            "log-retention-events",
            self.retention.max_events,
            self.retention.max_events >= 1,
            "at least 1",
        )?;
        check(
            "log-retention-bytes",
            self.retention.max_bytes,
            self.retention.max_bytes >= 1,
            "at least 1",
        )?;
        check(
            "cursor-interval",
            self.cursor_interval.as_secs_f64(),
            (Duration::from_millis(1)..=Duration::from_secs(60)).contains(&self.cursor_interval),
            "0.001 to 60 seconds",
        )?;
        Ok(())
    }

    /// Time between two delivery attempts: the retry interval spread over the attempts.
    pub fn retry_gap(&self) -> Duration {
        self.client_retry_interval / self.client_retry_count
    }
}

fn check(
    setting: &'static str,
    value: impl ToString,
    ok: bool,
    expected: &'static str,
) -> Result<(), ConfigError> {
    if ok {
        Ok(())
    } else {
        Err(ConfigError::OutOfRange {
            setting,
            value: value.to_string(),
            expected,
        })
    }
}

fn parse_default(text: &str) -> SocketAddr {
    text.parse()
        .unwrap_or_else(|_| unreachable!("embedded default address {text} parses"))
}

fn read_file(path: &Path) -> Result<Settings, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::ReadFile {
        path: path.to_owned(),
        source,
    })?;
    toml::from_str(&text).map_err(|e| ConfigError::ParseFile {
        path: path.to_owned(),
        message: e.to_string(),
    })
}

fn read_token(path: &Path) -> Result<String, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::ReadFile {
        path: path.to_owned(),
        source,
    })?;
    let token = text.lines().next().unwrap_or("").trim().to_owned();
    if token.is_empty() {
        return Err(ConfigError::OutOfRange {
            setting: "admin-token-file",
            value: path.display().to_string(),
            expected: "a file whose first line is a non-empty token",
        });
    }
    Ok(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Settings {
        Cli::try_parse_from(std::iter::once("crnpd").chain(args.iter().copied()))
            .expect("valid flags")
            .settings
    }

    #[test]
    fn defaults_fit_a_large_installation() {
        let config = Settings::default().resolve().expect("defaults are valid");
        assert_eq!(config.listen, parse_default(DEFAULT_LISTEN));
        assert_eq!(config.source_addr, Some(config.listen.ip()));
        assert_eq!(config.max_clients, 100_000);
        assert_eq!(config.retry_gap(), Duration::from_secs(600));
    }

    #[test]
    fn flags_beat_the_file_and_fractions_of_seconds_work() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("crnpd.toml");
        std::fs::write(
            &file,
            "client-timeout = 9\nmax-clients = 7\nallow-hosts = \"ALL\"\n",
        )
        .expect("write");
        let settings = parse(&[
            "--config",
            file.to_str().expect("utf8"),
            "--client-timeout",
            "0.2",
        ]);
        let config = settings
            .with_file()
            .expect("file")
            .resolve()
            .expect("valid");
        assert_eq!(config.client_timeout, Duration::from_millis(200));
        assert_eq!(config.max_clients, 7);
        assert_eq!(config.allow_hosts.to_string(), "ALL");
    }

    #[test]
    fn out_of_range_and_unknown_keys_are_refused_with_their_name() {
        let error = parse(&["--client-retry-count", "0"])
            .resolve()
            .expect_err("0 attempts");
        assert!(error.to_string().contains("client-retry-count"), "{error}");
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("bad.toml");
        std::fs::write(&file, "max-client = 7\n").expect("write");
        let error = parse(&["--config", file.to_str().expect("utf8")])
            .with_file()
            .expect_err("typo");
        assert!(error.to_string().contains("max-client"), "{error}");
    }

    #[test]
    fn a_wildcard_listen_leaves_the_source_address_to_the_kernel() {
        let config = parse(&["--listen", "0.0.0.0:9444"])
            .resolve()
            .expect("valid");
        assert_eq!(config.source_addr, None);
    }

    #[test]
    fn deliveries_leave_from_the_listen_port_unless_told_otherwise() {
        let config = Settings::default().resolve().expect("defaults are valid");
        assert_eq!(config.source_port, SourcePort::Listen);
        let ephemeral = parse(&["--source-port", "0"]).resolve().expect("valid");
        assert_eq!(ephemeral.source_port, SourcePort::Ephemeral);
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("crnpd.toml");
        std::fs::write(&file, "source-port = 7444\n").expect("write");
        let fixed = parse(&["--config", file.to_str().expect("utf8")])
            .with_file()
            .expect("file")
            .resolve()
            .expect("valid");
        assert!(matches!(fixed.source_port, SourcePort::Fixed(port) if port.get() == 7444));
    }
}
