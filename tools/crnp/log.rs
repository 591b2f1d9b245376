//! `crnp events` and `crnp replay`: the event log side of the HTTP API.

use crnp::client;

use crate::Outcome;
use crate::args::{EventsArgs, ReplayArgs, seconds};

/// Prints a page of the retained log.
pub(crate) async fn events(args: EventsArgs) -> Outcome {
    let endpoint = match args.http.endpoint() {
        Ok(endpoint) => endpoint,
        Err(e) => return crate::report(&e),
    };
    let page =
        match client::events(endpoint, args.after, args.limit, seconds(args.http.timeout)).await {
            Ok(page) => page,
            Err(e) => return crate::report(&e),
        };
    if args.json {
        return match serde_json::to_string_pretty(&page) {
            Ok(text) => {
                println!("{text}");
                Outcome::Ok
            }
            Err(e) => {
                eprintln!("crnp: cannot encode the log page: {e}");
                Outcome::Refused
            }
        };
    }
    for entry in &page.events {
        println!("seq {}\n{}\n", entry.seq, entry.sc_event.trim_end());
    }
    eprintln!(
        "crnp: {} entries; oldest retained {}, next sequence {}",
        page.events.len(),
        page.oldest
            .map_or_else(|| "none".to_owned(), |seq| seq.to_string()),
        page.next_seq
    );
    Outcome::Ok
}

/// Queues a client's retained events again and says how many.
pub(crate) async fn replay(args: ReplayArgs) -> Outcome {
    let endpoint = match args.http.endpoint() {
        Ok(endpoint) => endpoint,
        Err(e) => return crate::report(&e),
    };
    match client::replay(
        endpoint,
        args.client,
        args.after,
        seconds(args.http.timeout),
    )
    .await
    {
        Ok(queued) => {
            println!("{queued} events queued for {}", args.client);
            Outcome::Ok
        }
        Err(e) => crate::report(&e),
    }
}
