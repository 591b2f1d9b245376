//! The command line.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use crnp::client::{ClientError, HttpEndpoint};
use crnp::protocol::NvPair;

/// Talk to a crnpd server: subscribe to events, publish events, list clients, check health.
#[derive(Debug, Parser)]
#[command(name = "crnp", version)]
pub(crate) struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub(crate) command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Register for an event type and print each event as it arrives (until SIGINT/SIGTERM).
    Subscribe(SubscribeArgs),
    /// Publish one event (or an SC_EVENT XML document) and print its sequence number(s).
    Publish(PublishArgs),
    /// List the registered clients.
    Clients(ClientsArgs),
    /// Remove a registered client by its callback address.
    Remove(RemoveArgs),
    /// Exit 0 iff the server is ready (GET /readyz answers 200).
    Health(HealthArgs),
    /// Print the retained event log: every acknowledged event some subscriber may still need.
    Events(EventsArgs),
    /// Deliver a client's retained events to it again, in order, behind what it has queued.
    Replay(ReplayArgs),
}

/// `crnp events`.
#[derive(Debug, Args)]
pub(crate) struct EventsArgs {
    /// Where crnpd's HTTP API is.
    #[command(flatten)]
    pub(crate) http: HttpArgs,
    /// Only entries after this sequence number (from the oldest retained without it).
    #[arg(long)]
    pub(crate) after: Option<u64>,
    /// Entries at most (1-10000).
    #[arg(long, default_value_t = 100)]
    pub(crate) limit: usize,
    /// Print the page as JSON instead of each entry as a `seq N` line, its SC_EVENT document
    /// and an empty line.
    #[arg(long)]
    pub(crate) json: bool,
}

/// `crnp replay`.
#[derive(Debug, Args)]
pub(crate) struct ReplayArgs {
    /// Where crnpd's HTTP API is.
    #[command(flatten)]
    pub(crate) http: HttpArgs,
    /// The client's callback address, IP:PORT.
    pub(crate) client: SocketAddr,
    /// Only events after this sequence number (every retained one without it).
    #[arg(long)]
    pub(crate) after: Option<u64>,
}

/// Where crnpd's HTTP API is, and how long to wait for it.
#[derive(Debug, Args)]
pub(crate) struct HttpArgs {
    /// crnpd's HTTP API address (its --http).
    #[arg(long, env = "CRNP_HTTP", default_value = "127.0.0.1:9445")]
    pub(crate) http: SocketAddr,
    /// Speak HTTPS, trusting the CA certificates in this PEM file (crnpd's --tls-cert must
    /// be signed by one of them and name the --http IP).
    #[arg(long, env = "CRNP_CACERT", value_name = "FILE")]
    pub(crate) cacert: Option<PathBuf>,
    /// Seconds to wait for an answer.
    #[arg(long, default_value_t = 10.0)]
    pub(crate) timeout: f64,
    /// The admin token, for the calls that change state (publish, remove, replay) when crnpd
    /// has one.
    #[arg(long, env = "CRNP_ADMIN_TOKEN", hide_env_values = true)]
    pub(crate) admin_token: Option<String>,
}

impl HttpArgs {
    /// The HTTP API these arguments name.
    pub(crate) fn endpoint(&self) -> Result<HttpEndpoint, ClientError> {
        Ok(HttpEndpoint::new(self.http, self.cacert.as_deref())?
            .with_token(self.admin_token.clone()))
    }
}

/// `crnp health`.
#[derive(Debug, Args)]
pub(crate) struct HealthArgs {
    /// Where crnpd's HTTP API is.
    #[command(flatten)]
    pub(crate) http: HttpArgs,
    /// Ask again until the server is ready or this many seconds have passed (0: ask once).
    #[arg(long, value_name = "SECS", default_value_t = 0.0)]
    pub(crate) wait: f64,
    /// Take the HTTP address from this crnpd configuration file instead of --http: its `http`
    /// key, under CRNPD_HTTP as for crnpd itself (the readiness check of crnpd.service).
    #[arg(long, value_name = "FILE")]
    pub(crate) crnpd_config: Option<PathBuf>,
}

/// `crnp subscribe`.
#[derive(Debug, Args)]
pub(crate) struct SubscribeArgs {
    /// crnpd's registration address (its --listen).
    #[arg(long, env = "CRNP_SERVER", default_value = "127.0.0.1:9444")]
    pub(crate) server: SocketAddr,
    /// The callback port to listen on and register (0: pick a free one and print it).
    #[arg(long)]
    pub(crate) port: u16,
    /// The callback IP: events arrive here, and the registration is sent from it.
    #[arg(long, default_value = "127.0.0.1")]
    pub(crate) bind: IpAddr,
    /// The event class to register for, e.g. EC_Cluster.
    #[arg(long)]
    pub(crate) class: String,
    /// The event subclass (all subclasses of the class when absent).
    #[arg(long)]
    pub(crate) subclass: Option<String>,
    /// A pair the event must carry, `name=value` (repeatable), e.g. rg_name=rg1.
    #[arg(long = "nv", value_parser = parse_nv)]
    pub(crate) nv: Vec<NvPair>,
    /// Print one JSON object per event and line instead of a readable block.
    #[arg(long)]
    pub(crate) json: bool,
    /// Exit (after unregistering) once this many events have arrived.
    #[arg(long)]
    pub(crate) count: Option<u64>,
    /// Seconds allowed for the registration exchange and for reading one event.
    #[arg(long, default_value_t = 10.0)]
    pub(crate) timeout: f64,
}

/// `crnp publish`.
#[derive(Debug, Args)]
pub(crate) struct PublishArgs {
    /// Where crnpd's HTTP API is.
    #[command(flatten)]
    pub(crate) http: HttpArgs,
    /// The event class, e.g. EC_Cluster.
    #[arg(long, required_unless_present = "xml", conflicts_with = "xml")]
    pub(crate) class: Option<String>,
    /// The event subclass, e.g. ESC_cluster_rg_state.
    #[arg(long, required_unless_present = "xml", conflicts_with = "xml")]
    pub(crate) subclass: Option<String>,
    /// The vendor.
    #[arg(long, default_value = crnp::event_json::DEFAULT_VENDOR, conflicts_with = "xml")]
    pub(crate) vendor: String,
    /// The publisher.
    #[arg(long, default_value = crnp::event_json::DEFAULT_PUBLISHER, conflicts_with = "xml")]
    pub(crate) publisher: String,
    /// A pair, `name=value`, or `name=v1,v2` for an array (repeatable, kept in order).
    #[arg(long = "nv", value_parser = parse_nv, conflicts_with = "xml")]
    pub(crate) nv: Vec<NvPair>,
    /// Publish this SC_EVENT XML document instead (`-` reads standard input).
    #[arg(long)]
    pub(crate) xml: Option<PathBuf>,
}

/// `crnp clients`.
#[derive(Debug, Args)]
pub(crate) struct ClientsArgs {
    /// Where crnpd's HTTP API is.
    #[command(flatten)]
    pub(crate) http: HttpArgs,
    /// Print the server's JSON instead of a table.
    #[arg(long)]
    pub(crate) json: bool,
}

/// `crnp remove`.
#[derive(Debug, Args)]
pub(crate) struct RemoveArgs {
    /// Where crnpd's HTTP API is.
    #[command(flatten)]
    pub(crate) http: HttpArgs,
    /// The client's callback address, IP:PORT.
    pub(crate) client: SocketAddr,
}

/// Parses `name=value` or `name=v1,v2,...`.
fn parse_nv(text: &str) -> Result<NvPair, String> {
    let (name, values) = text
        .split_once('=')
        .ok_or_else(|| format!("`{text}` is not name=value"))?;
    if name.is_empty() {
        return Err(format!("`{text}` has an empty name"));
    }
    Ok(NvPair::array(name, values.split(',')))
}

/// Seconds from the command line as a duration (negative or NaN values count as zero).
pub(crate) fn seconds(secs: f64) -> std::time::Duration {
    std::time::Duration::try_from_secs_f64(secs).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crnp::protocol::Text;

    #[test]
    fn nv_pairs_split_arrays_on_commas_and_need_a_name() {
        assert_eq!(
            parse_nv("rg_name=rg1"),
            Ok(NvPair::scalar("rg_name", "rg1"))
        );
        assert_eq!(
            parse_nv("node_list=a,b").map(|p| p.values),
            Ok(vec!["a".into(), "b".into()])
        );
        assert_eq!(parse_nv("x=").map(|p| p.values), Ok(vec![Text::default()]));
        assert!(parse_nv("novalue").is_err());
        assert!(parse_nv("=v").is_err());
    }
}
