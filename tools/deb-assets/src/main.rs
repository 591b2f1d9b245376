//! `crnp-deb-assets OUT_DIR`: writes the man pages and shell completions of `crnpd`, `crnp` and
//! `crnp-load` from their own clap definitions, for the Debian package (`scripts/build-deb`
//! runs it, then `cargo deb` picks the files up through `[package.metadata.deb] assets`).
//!
//! Layout under `OUT_DIR`: `man/` (one page per command and subcommand, `crnp-publish.1` …),
//! `bash/NAME`, `zsh/_NAME`, `fish/NAME.fish`: each directory holds files under the names their
//! install directory expects, so the package's asset list is three globs per kind.
//!
//! The `crnp` and `crnp-load` command lines live in their binaries, not in the library, so their
//! argument modules are compiled in here as well (`#[path]`): the pages always describe the
//! flags the binaries of the same commit parse.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::CommandFactory;
use clap_complete::Shell;

#[allow(dead_code, unreachable_pub)]
#[path = "../../crnp/args.rs"]
mod crnp_args;

#[allow(dead_code, unreachable_pub)]
#[path = "../../load/cli.rs"]
mod load_cli;

/// Writes every page and completion of one command; names the file that failed.
fn write_command(cmd: clap::Command, out: &Path) -> Result<(), String> {
    let name = cmd.get_name().to_owned();
    let man = out.join("man");
    clap_mangen::generate_to(cmd.clone(), &man)
        .map_err(|e| format!("man pages of {name} in {}: {e}", man.display()))?;
    for (shell, dir) in [
        (Shell::Bash, "bash"),
        (Shell::Zsh, "zsh"),
        (Shell::Fish, "fish"),
    ] {
        let dir = out.join(dir);
        let written = clap_complete::generate_to(shell, &mut cmd.clone(), &name, &dir)
            .map_err(|e| format!("{shell} completion of {name} in {}: {e}", dir.display()))?;
        // bash-completion looks a command's completion up under the command's bare name.
        if shell == Shell::Bash {
            let bare = dir.join(&name);
            std::fs::rename(&written, &bare)
                .map_err(|e| format!("rename {} to {}: {e}", written.display(), bare.display()))?;
        }
    }
    Ok(())
}

fn run(out: &Path) -> Result<(), String> {
    for dir in ["man", "bash", "zsh", "fish"] {
        let dir = out.join(dir);
        // Stale pages of a renamed subcommand must not reach the package.
        if dir.exists() {
            std::fs::remove_dir_all(&dir).map_err(|e| format!("clear {}: {e}", dir.display()))?;
        }
        std::fs::create_dir_all(&dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
    }
    write_command(crnp::config::Cli::command(), out)?;
    write_command(crnp_args::Cli::command(), out)?;
    write_command(load_cli::Cli::command(), out)?;
    Ok(())
}

fn main() -> ExitCode {
    let mut args = std::env::args_os().skip(1);
    let (Some(out), None) = (args.next(), args.next()) else {
        eprintln!("usage: crnp-deb-assets OUT_DIR");
        return ExitCode::from(2);
    };
    match run(&PathBuf::from(out)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("crnp-deb-assets: {message}");
            ExitCode::FAILURE
        }
    }
}
