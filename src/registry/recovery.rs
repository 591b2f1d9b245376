//! What every client is owed after a start, without I/O: from its cursor, the retained log
//! and the latest-state table.
//!
//! A client whose cursor is at `from` gets, in sequence order:
//! 1. the latest states of its types that the log cannot give it: those below the first
//!    retained entry when retention passed its cursor (the spec's resync after missed
//!    events), and, when a latest-state replay of its was not confirmed delivered, those below
//!    `from` as well;
//! 2. every retained log entry from its cursor on (or from the first retained one) that
//!    matches its types.
//!
//! Both parts are ordered by sequence number and the first ends below where the second
//! begins, so a resync never reorders against the log.

use std::sync::Arc;

use hashbrown::HashMap;

use super::cursor::Resume;
use super::matching::matches;
use super::record::{ClientRecord, PublishedEvent};
use super::state::{Registry, Replay};
use crate::protocol::EventType;

/// One client's share of a recovery.
#[derive(Debug)]
pub struct Recovered {
    /// The client.
    pub record: ClientRecord,
    /// Latest states to deliver first (not covered by the cursor).
    pub replay: Replay,
    /// Log entries it is owed, after `replay`.
    pub backlog: Replay,
    /// Its cursor once this is queued.
    pub resume: Resume,
}

/// What a start recovers.
#[derive(Debug, Default)]
pub struct Recovery {
    /// Every registered client, with what it is owed.
    pub clients: Vec<Recovered>,
    /// Clients whose cursor was behind the retained log: they get the latest-state resync.
    pub resynced: usize,
    /// Deliveries queued from the log.
    pub from_log: usize,
}

impl Recovery {
    /// Plans the recovery of every client of `registry` from `log` (the retained entries from
    /// the lowest cursor on, in sequence order); `oldest` is the first entry the store
    /// retains (the next sequence number when it retains none).
    pub fn plan(registry: &Registry, log: &[Arc<PublishedEvent>], oldest: u64) -> Recovery {
        let mut recovery = Recovery::default();
        // Clients with the same types and cursor share their lists.
        let mut shared: HashMap<(*const [EventType], Resume), (Replay, Replay)> = HashMap::new();
        for record in registry.clients() {
            let resume = registry.resume(record.id);
            let start = resume.from.max(oldest);
            let (replay, backlog) = shared
                .entry((Arc::as_ptr(&record.types), resume))
                .or_insert_with(|| {
                    let replay = registry
                        .latest()
                        .filter(|e| {
                            e.seq < start
                                && (resume.states_from.is_some_and(|from| e.seq >= from)
                                    || e.seq >= resume.from)
                        })
                        .filter(|e| record.types.iter().any(|t| matches(t, &e.event)))
                        .cloned()
                        .collect::<Vec<_>>();
                    let mut replay = replay;
                    replay.sort_by_key(|e| e.seq);
                    let first = log.partition_point(|e| e.seq < start);
                    let backlog: Vec<Arc<PublishedEvent>> = log[first..]
                        .iter()
                        .filter(|e| record.types.iter().any(|t| matches(t, &e.event)))
                        .cloned()
                        .collect();
                    (replay.into(), backlog.into())
                })
                .clone();
            if resume.from < oldest {
                recovery.resynced += 1;
            }
            recovery.from_log += backlog.len();
            recovery.clients.push(Recovered {
                record: record.clone(),
                resume: Resume {
                    from: start,
                    states_from: replay.first().map(|e| e.seq),
                },
                replay,
                backlog,
            });
        }
        recovery
    }
}
