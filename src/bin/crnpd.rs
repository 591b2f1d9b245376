//! `crnpd`: parse the configuration, serve until a signal, stop cleanly; or run a store command.

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use crnp::config::{Cli, Command};
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_env("CRNPD_LOG").unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let cli = Cli::parse();
    let config = match cli.settings.with_file().and_then(|s| s.resolve()) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("crnpd: configuration error: {error}");
            return ExitCode::from(2);
        }
    };
    let result = match cli.command {
        Some(Command::Store { action }) => crnp::store_cli::run(action, &config.data_dir),
        None => crnp::server::run(config).map_err(|e| e.to_string()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("crnpd: {message}");
            ExitCode::FAILURE
        }
    }
}
