//! `crnp subscribe`: register, print events as they arrive, unregister on a signal.

use std::io::Write;
use std::net::SocketAddr;

use crnp::client::{self, CallbackListener, ClientError};
use crnp::event_json::JsonEvent;
use crnp::protocol::{CallbackReg, Event, EventType, RegType, StatusCode};
use tokio::signal::unix::{SignalKind, signal};

use crate::Outcome;
use crate::args::{SubscribeArgs, seconds};

/// Pending delivery connections the callback socket queues.
const BACKLOG: u32 = 128;

/// Runs `crnp subscribe` to the end.
pub(crate) async fn run(args: SubscribeArgs) -> Outcome {
    let timeout = seconds(args.timeout);
    let listener = match CallbackListener::bind(SocketAddr::new(args.bind, args.port), BACKLOG) {
        Ok(listener) => listener,
        Err(e) => {
            eprintln!("crnp: {e}");
            return Outcome::Usage;
        }
    };
    let (Ok(mut interrupt), Ok(mut terminate)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        eprintln!("crnp: cannot install the SIGINT/SIGTERM handlers");
        return Outcome::Usage;
    };
    let port = listener.local_addr().port();
    let event_type = EventType {
        class: args.class.into(),
        subclass: args.subclass.map(Into::into),
        nvpairs: args.nv,
    };
    let add = CallbackReg {
        port,
        reg_type: RegType::AddClient,
        events: vec![event_type],
    };
    match client::register(args.server, Some(args.bind), &add, timeout).await {
        Ok(reply) if reply.status == StatusCode::Ok => {}
        Ok(reply) => {
            eprintln!(
                "crnp: registration refused: {}: {}",
                reply.status.as_str(),
                reply.message
            );
            return Outcome::Refused;
        }
        Err(e) => return crate::report(&e),
    }
    eprintln!(
        "crnp: registered {} with {}; waiting for events",
        listener.local_addr(),
        args.server
    );

    let mut received = 0u64;
    while args.count.is_none_or(|count| received < count) {
        tokio::select! {
            _ = interrupt.recv() => break,
            _ = terminate.recv() => break,
            delivery = listener.next_event(timeout) => match delivery {
                Ok(delivery) => {
                    received += 1;
                    if let Err(e) = print_event(&delivery.event, args.json) {
                        eprintln!("crnp: cannot write to standard output: {e}");
                        break;
                    }
                }
                Err(e) => eprintln!("crnp: bad delivery: {e}"),
            },
        }
    }

    let remove = CallbackReg {
        port,
        reg_type: RegType::RemoveClient,
        events: Vec::new(),
    };
    match client::register(args.server, Some(args.bind), &remove, timeout).await {
        Ok(reply) if reply.status == StatusCode::Ok => Outcome::Ok,
        Ok(reply) => {
            eprintln!(
                "crnp: unregistering refused: {}: {}",
                reply.status.as_str(),
                reply.message
            );
            Outcome::Ok
        }
        Err(e) => {
            warn_not_unregistered(&e);
            Outcome::Ok
        }
    }
}

/// Says that the server may still hold the registration.
fn warn_not_unregistered(error: &ClientError) {
    eprintln!(
        "crnp: could not unregister ({error}); the server drops the client after its retries"
    );
}

/// Prints one event as a readable block or one JSON line, and flushes.
fn print_event(event: &Event, json: bool) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    if json {
        let line = serde_json::to_string(&JsonEvent::from(event)).map_err(std::io::Error::other)?;
        writeln!(out, "{line}")?;
    } else {
        out.write_all(format_event(event).as_bytes())?;
    }
    out.flush()
}

/// The readable block, in the style of the sample Java client.
fn format_event(event: &Event) -> String {
    let mut text = format!(
        "Received event:\n\tCLASS={}\n\tSUBCLASS={}\n\tVENDOR={}\n\tPUBLISHER={}\n",
        event.class, event.subclass, event.vendor, event.publisher
    );
    for pair in &event.nvpairs {
        match pair.values.as_slice() {
            [one] => text.push_str(&format!("\t{}={}\n", pair.name, one)),
            many => text.push_str(&format!("\t{}=[{}]\n", pair.name, many.join(", "))),
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crnp::protocol::NvPair;

    #[test]
    fn the_block_lists_attributes_then_pairs() {
        let event = Event {
            class: "EC_Cluster".into(),
            subclass: "ESC_cluster_membership".into(),
            vendor: "SUNW".into(),
            publisher: "rgm".into(),
            nvpairs: vec![
                NvPair::scalar("rg_name", "rg1"),
                NvPair {
                    name: "node_list".into(),
                    values: vec!["n1".into(), "n2".into()],
                },
            ],
        };
        assert_eq!(
            format_event(&event),
            "Received event:\n\tCLASS=EC_Cluster\n\tSUBCLASS=ESC_cluster_membership\n\
             \tVENDOR=SUNW\n\tPUBLISHER=rgm\n\trg_name=rg1\n\tnode_list=[n1, n2]\n"
        );
    }
}
