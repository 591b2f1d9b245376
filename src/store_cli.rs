//! `crnpd store check` and `crnpd store export`: operator access to the registry file.

use std::path::Path;

use serde::Serialize;

use crate::config::StoreAction;
use crate::event_json::{JsonEvent, JsonEventType};
use crate::registry::{Store, StoreContents};

#[derive(Serialize)]
struct Export {
    next_seq: u64,
    clients: Vec<ExportedClient>,
    latest: Vec<ExportedEvent>,
}

#[derive(Serialize)]
struct ExportedClient {
    address: String,
    registered_at_ms: u64,
    event_types: Vec<JsonEventType>,
}

#[derive(Serialize)]
struct ExportedEvent {
    seq: u64,
    event: JsonEvent,
}

/// Runs a store command; the error is the message for the operator.
pub fn run(action: StoreAction, data_dir: &Path) -> Result<(), String> {
    let mut store = Store::open_existing(data_dir).map_err(|e| e.to_string())?;
    let contents = store.load().map_err(|e| e.to_string())?;
    match action {
        StoreAction::Check => {
            println!(
                "{}: ok ({} clients, {} latest events, next sequence {})",
                store.path().display(),
                contents.clients.len(),
                contents.latest.len(),
                contents.next_seq
            );
        }
        StoreAction::Export => {
            let json =
                serde_json::to_string_pretty(&export(contents)).map_err(|e| e.to_string())?;
            println!("{json}");
        }
    }
    Ok(())
}

fn export(contents: StoreContents) -> Export {
    let mut clients: Vec<ExportedClient> = contents
        .clients
        .iter()
        .map(|c| ExportedClient {
            address: c.id.to_string(),
            registered_at_ms: c.registered_at_ms,
            event_types: c.types.iter().map(JsonEventType::from).collect(),
        })
        .collect();
    clients.sort_by(|a, b| a.address.cmp(&b.address));
    let mut latest: Vec<ExportedEvent> = contents
        .latest
        .iter()
        .map(|e| ExportedEvent {
            seq: e.seq,
            event: JsonEvent::from(&e.event),
        })
        .collect();
    latest.sort_by_key(|e| e.seq);
    Export {
        next_seq: contents.next_seq,
        clients,
        latest,
    }
}
