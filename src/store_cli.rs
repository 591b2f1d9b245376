//! `crnpd store check` and `crnpd store export`: operator access to the registry file.

use std::path::Path;
use std::sync::Arc;

use serde::Serialize;

use crate::config::StoreAction;
use crate::event_json::{JsonEvent, JsonEventType};
use crate::registry::{PublishedEvent, Store, StoreContents};

#[derive(Serialize)]
struct Export {
    next_seq: u64,
    clients: Vec<ExportedClient>,
    latest: Vec<ExportedEvent>,
    /// Clients without a cursor row have received everything they are owed below this.
    cursor_floor: Option<u64>,
    cursors: Vec<ExportedCursor>,
    /// The retained event log, oldest first.
    log: Vec<ExportedEvent>,
}

#[derive(Serialize)]
struct ExportedCursor {
    address: String,
    from: u64,
    /// Latest states from this sequence number on are owed again (a replay not confirmed).
    states_from: Option<u64>,
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
    let log = store.read_log_events(0).map_err(|e| e.to_string())?;
    match action {
        StoreAction::Check => {
            println!(
                "{}: ok ({} clients, {} latest events, {} log entries, next sequence {})",
                store.path().display(),
                contents.clients.len(),
                contents.latest.len(),
                log.len(),
                contents.next_seq
            );
        }
        StoreAction::Export => {
            let json =
                serde_json::to_string_pretty(&export(contents, &log)).map_err(|e| e.to_string())?;
            println!("{json}");
        }
    }
    Ok(())
}

fn export(contents: StoreContents, log: &[Arc<PublishedEvent>]) -> Export {
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
    let mut cursors: Vec<ExportedCursor> = contents
        .cursors
        .rows
        .iter()
        .map(|(id, resume)| ExportedCursor {
            address: id.to_string(),
            from: resume.from,
            states_from: resume.states_from,
        })
        .collect();
    cursors.sort_by(|a, b| a.address.cmp(&b.address));
    Export {
        next_seq: contents.next_seq,
        clients,
        latest,
        cursor_floor: contents.cursors.floor,
        cursors,
        log: log
            .iter()
            .map(|e| ExportedEvent {
                seq: e.seq,
                event: JsonEvent::from(&e.event),
            })
            .collect(),
    }
}
