//! `crnp publish`: one event from flags, or an SC_EVENT document from a file.

use std::io::Read;

use bytes::Bytes;
use crnp::client::Publisher;
use crnp::protocol::Event;

use crate::Outcome;
use crate::args::{PublishArgs, seconds};

/// Runs `crnp publish` and prints the assigned sequence number(s), one per line.
pub(crate) async fn run(args: PublishArgs) -> Outcome {
    let body = match &args.xml {
        Some(path) => match read_document(path) {
            Ok(bytes) => Some(bytes),
            Err(e) => {
                eprintln!("crnp: cannot read {}: {e}", path.display());
                return Outcome::Usage;
            }
        },
        None => None,
    };
    let endpoint = match args.http.endpoint() {
        Ok(endpoint) => endpoint,
        Err(e) => return crate::report(&e),
    };
    let mut publisher = match Publisher::connect(endpoint, seconds(args.http.timeout)).await {
        Ok(publisher) => publisher,
        Err(e) => return crate::report(&e),
    };
    let published = match body {
        Some(xml) => publisher.publish_body("application/xml", xml).await,
        None => {
            let event = Event {
                class: args.class.unwrap_or_default().into(),
                subclass: args.subclass.unwrap_or_default().into(),
                vendor: args.vendor.into(),
                publisher: args.publisher.into(),
                nvpairs: args.nv,
            };
            publisher.publish(std::slice::from_ref(&event)).await
        }
    };
    match published {
        Ok(sequences) => {
            for sequence in sequences {
                println!("{sequence}");
            }
            Outcome::Ok
        }
        Err(e) => crate::report(&e),
    }
}

/// The document at `path`, or standard input for `-`.
fn read_document(path: &std::path::Path) -> std::io::Result<Bytes> {
    if path.as_os_str() == "-" {
        let mut buf = Vec::new();
        std::io::stdin().read_to_end(&mut buf)?;
        Ok(buf.into())
    } else {
        std::fs::read(path).map(Bytes::from)
    }
}
