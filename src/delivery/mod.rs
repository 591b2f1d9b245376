//! Delivery without I/O: a core's shard of clients (who gets which event), each client's
//! queue with its retry schedule and bound, and the typed outcome of an attempt.
//!
//! Time comes in as an argument, so ordering and retry rules are tested exactly, with no
//! sockets and no sleeps (`tests/simulation.rs`). The engine hands the [`Shard`] registry
//! changes and events, asks it what each client's task does next, reports each attempt's
//! outcome back, and carries out the [`Effect`]s.

mod outcome;
mod queue;
mod shard;

pub use outcome::{AttemptError, FailureCause, Shortage};
pub use queue::{AfterFailure, DeliveryQueue, Next, Overflow, RetryPolicy, Run};
pub use shard::{Effect, Item, LastDelivery, Settled, Shard, ShardClient};
