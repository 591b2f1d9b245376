//! `--crash-every`: kill -9 the crnpd under test every N acknowledged events while publishing,
//! start it again on the same data directory and ports, and say what each round cost.
//!
//! A kill comes only between two publish requests, after a seeded delay while deliveries go
//! on, so every event the tool counts on was acknowledged before the crash: whatever then goes
//! missing or arrives out of order is crnpd's fault. Duplicates are expected (what a subscriber
//! received after its last durable cursor); they are reported per round.

use std::time::{Duration, Instant};

use tokio::sync::Mutex;

use crate::pool::SinkPool;
use crate::report::CrashRound;
use crate::server::{OwnedServer, ServerError};

/// Longest seeded delay between the acknowledgement of the Nth event and the kill.
const MAX_KILL_DELAY_MS: u64 = 200;

/// The crash schedule of one point, and the server it crashes.
pub(crate) struct Crashes<'a> {
    server: &'a Mutex<Option<OwnedServer>>,
    every: u64,
    rng: u64,
    rounds: Vec<Pending>,
}

/// A round as recorded at its kill; its duplicates are known only at the next one.
struct Pending {
    after_event: u64,
    kill_delay_ms: u64,
    restart_seconds: f64,
    duplicates_at_kill: u64,
}

impl<'a> Crashes<'a> {
    /// A crash after every `every` events, delays drawn from `seed`.
    pub(crate) fn new(server: &'a Mutex<Option<OwnedServer>>, every: u64, seed: u64) -> Self {
        Crashes {
            server,
            every,
            rng: seed,
            rounds: Vec::new(),
        }
    }

    /// True when the crnpd is to be killed now, `published` of `total` events acknowledged.
    pub(crate) fn due(&self, published: u64, total: u64) -> bool {
        published < total && published.is_multiple_of(self.every)
    }

    /// Waits the round's delay, kills crnpd, starts it again and waits until it is ready.
    pub(crate) async fn crash(
        &mut self,
        sinks: &mut SinkPool,
        published: u64,
    ) -> Result<(), ServerError> {
        let kill_delay_ms = self.next_random() % (MAX_KILL_DELAY_MS + 1);
        tokio::time::sleep(Duration::from_millis(kill_delay_ms)).await;
        let duplicates_at_kill = sinks.tally().await.counts.duplicate;
        let started = Instant::now();
        let mut slot = self.server.lock().await;
        if let Some(server) = slot.take() {
            *slot = Some(server.crash_and_restart().await?);
        }
        self.rounds.push(Pending {
            after_event: published,
            kill_delay_ms,
            restart_seconds: started.elapsed().as_secs_f64(),
            duplicates_at_kill,
        });
        Ok(())
    }

    /// The rounds, each with the duplicates that arrived between its kill and the next (or
    /// the end of the phase, whose total is `duplicates_at_end`).
    pub(crate) fn rounds(&self, duplicates_at_end: u64) -> Vec<CrashRound> {
        let ends = self
            .rounds
            .iter()
            .skip(1)
            .map(|next| next.duplicates_at_kill)
            .chain([duplicates_at_end]);
        self.rounds
            .iter()
            .zip(ends)
            .map(|(round, end)| CrashRound {
                after_event: round.after_event,
                kill_delay_ms: round.kill_delay_ms,
                restart_seconds: round.restart_seconds,
                duplicates: end.saturating_sub(round.duplicates_at_kill),
            })
            .collect()
    }

    /// SplitMix64: the same seed gives the same delays.
    fn next_random(&mut self) -> u64 {
        self.rng = self.rng.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}
