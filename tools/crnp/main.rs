//! `crnp`: subscribe to, publish and inspect a running crnpd from the command line.
//!
//! Exit codes: 0 ok, 1 the server said no (its status and message are printed), 2 usage,
//! 3 the server could not be reached (the address and what to check are printed).

mod admin;
mod args;
mod log;
mod publish;
mod subscribe;

use std::process::ExitCode;

use clap::Parser;
use crnp::client::ClientError;

use args::{Cli, Command};

/// How a command ended, as the process exit code tells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// Done.
    Ok = 0,
    /// The server answered and refused.
    Refused = 1,
    /// The command line was wrong.
    Usage = 2,
    /// The server could not be reached.
    Unreachable = 3,
}

/// Prints a client error and classifies it.
fn report(error: &ClientError) -> Outcome {
    eprintln!("crnp: {error}");
    if error.is_unreachable() {
        Outcome::Unreachable
    } else {
        Outcome::Refused
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let outcome = match cli.command {
        Command::Subscribe(args) => subscribe::run(args).await,
        Command::Publish(args) => publish::run(args).await,
        Command::Clients(args) => admin::clients(args).await,
        Command::Remove(args) => admin::remove(args).await,
        Command::Health(args) => admin::health(args).await,
        Command::Events(args) => log::events(args).await,
        Command::Replay(args) => log::replay(args).await,
    };
    ExitCode::from(outcome as u8)
}
