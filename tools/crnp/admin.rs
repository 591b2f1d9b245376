//! `crnp clients`, `crnp remove`, `crnp health`: the admin side of the HTTP API.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crnp::client::{self, ClientInfo, HttpEndpoint};
use crnp::config::{DEFAULT_HTTP, Settings};

use crate::Outcome;
use crate::args::{ClientsArgs, HealthArgs, RemoveArgs, seconds};

/// Prints the registered clients as a table or as JSON.
pub(crate) async fn clients(args: ClientsArgs) -> Outcome {
    let endpoint = match args.http.endpoint() {
        Ok(endpoint) => endpoint,
        Err(e) => return crate::report(&e),
    };
    match client::clients(endpoint, seconds(args.http.timeout)).await {
        Ok(list) if args.json => match serde_json::to_string_pretty(&list) {
            Ok(text) => {
                println!("{text}");
                Outcome::Ok
            }
            Err(e) => {
                eprintln!("crnp: cannot encode the client list: {e}");
                Outcome::Refused
            }
        },
        Ok(list) => {
            print!("{}", table(&list));
            Outcome::Ok
        }
        Err(e) => crate::report(&e),
    }
}

/// Removes one client.
pub(crate) async fn remove(args: RemoveArgs) -> Outcome {
    let endpoint = match args.http.endpoint() {
        Ok(endpoint) => endpoint,
        Err(e) => return crate::report(&e),
    };
    match client::delete_client(endpoint, args.client, seconds(args.http.timeout)).await {
        Ok(()) => Outcome::Ok,
        Err(e) => crate::report(&e),
    }
}

/// Asks /readyz, again every 100 ms while `--wait` allows, and says whether it is ready.
pub(crate) async fn health(args: HealthArgs) -> Outcome {
    let (http, crnpd_cert) = match &args.crnpd_config {
        Some(path) => match crnpd_http(path) {
            Ok(found) => found,
            Err(message) => {
                eprintln!("crnp: {message}");
                return Outcome::Usage;
            }
        },
        None => (args.http.http, None),
    };
    // Without --cacert, crnpd's own certificate is the CA to trust: enough for a
    // self-signed certificate or a chain that ends with its CA.
    let ca = args.http.cacert.as_deref().or(crnpd_cert.as_deref());
    let endpoint = match HttpEndpoint::new(http, ca) {
        Ok(endpoint) => endpoint,
        Err(e) => return crate::report(&e),
    };
    // No deadline past what an Instant can hold: wait for as long as it takes.
    let deadline = Instant::now().checked_add(seconds(args.wait));
    loop {
        match client::ready(endpoint.clone(), seconds(args.http.timeout)).await {
            Ok(true) => {
                println!("ready");
                return Outcome::Ok;
            }
            _ if deadline.is_none_or(|d| Instant::now() < d) => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Ok(false) => {
                println!("not ready");
                return Outcome::Refused;
            }
            Err(e) => return crate::report(&e),
        }
    }
}

/// crnpd's HTTP address as crnpd resolves it from `path` and the environment (CRNPD_HTTP, then
/// the file's `http` key, then the default), and its `--tls-cert` if it has one.
fn crnpd_http(path: &Path) -> Result<(SocketAddr, Option<PathBuf>), String> {
    let cert = std::env::var_os("CRNPD_TLS_CERT").map(PathBuf::from);
    if let Some(value) = std::env::var_os("CRNPD_HTTP") {
        let text = value.to_string_lossy();
        let addr = text
            .parse()
            .map_err(|_| format!("CRNPD_HTTP={text} is not an address (IP:PORT)"))?;
        let file_cert = file_settings(path)?.tls_cert;
        return Ok((addr, cert.or(file_cert)));
    }
    let settings = file_settings(path)?;
    let addr = match settings.http {
        Some(addr) => addr,
        None => DEFAULT_HTTP
            .parse()
            .map_err(|_| format!("crnpd's default address {DEFAULT_HTTP} does not parse"))?,
    };
    Ok((addr, cert.or(settings.tls_cert)))
}

/// The settings of crnpd's configuration file `path`.
fn file_settings(path: &Path) -> Result<Settings, String> {
    Settings {
        config: Some(path.to_owned()),
        ..Settings::default()
    }
    .with_file()
    .map_err(|e| e.to_string())
}

/// An aligned table: address, queued, registered at, last delivery, event types.
fn table(list: &[ClientInfo]) -> String {
    let header = [
        "ADDRESS",
        "QUEUED",
        "REGISTERED_AT",
        "LAST_DELIVERY",
        "EVENT_TYPES",
    ];
    let rows: Vec<[String; 5]> = list
        .iter()
        .map(|c| {
            [
                c.address.clone(),
                c.queued.to_string(),
                c.registered_at.clone(),
                c.last_delivery.clone().unwrap_or_else(|| "-".into()),
                c.event_types
                    .iter()
                    .map(event_type_text)
                    .collect::<Vec<_>>()
                    .join(" "),
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.len());
        }
    }
    let mut out = String::new();
    let mut line = |cells: [&str; 5]| {
        let text: Vec<String> = cells
            .iter()
            .zip(widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        out.push_str(text.join("  ").trim_end());
        out.push('\n');
    };
    line(header);
    for row in &rows {
        line([&row[0], &row[1], &row[2], &row[3], &row[4]]);
    }
    out
}

/// An event type compactly: a string as is, an object as `CLASS/SUBCLASS{k=v}` when it has
/// those fields, anything else as JSON.
fn event_type_text(value: &serde_json::Value) -> String {
    let field = |name: &str| value.get(name).and_then(|v| v.as_str());
    match (value.as_str(), field("class")) {
        (Some(text), _) => text.to_owned(),
        (None, Some(class)) => match field("subclass") {
            Some(subclass) => format!("{class}/{subclass}"),
            None => class.to_owned(),
        },
        (None, None) => value.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_aligns_columns_and_renders_event_types() {
        let list = vec![ClientInfo {
            address: "127.0.0.1:7000".into(),
            event_types: vec![serde_json::json!({"class": "EC_Cluster", "subclass": "ESC_x"})],
            queued: 3,
            registered_at: "2025-01-01T00:00:00Z".into(),
            last_delivery: None,
        }];
        let text = table(&list);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2);
        assert!(lines[0].starts_with("ADDRESS         QUEUED"));
        assert!(lines[1].starts_with("127.0.0.1:7000  3 "));
        assert!(lines[1].ends_with("-              EC_Cluster/ESC_x"));
    }
}
