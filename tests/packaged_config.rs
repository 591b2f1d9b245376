//! Guards the packaged configuration file (`tools/debian/crnpd.toml`, installed as the conffile
//! `/etc/crnpd/crnpd.toml`) against drifting from crnpd's settings: it names every key crnpd's
//! config accepts (every flag of `Settings` but `--config`) and no other; with every commented
//! key uncommented it still parses, and resolves to exactly crnpd's defaults except for the keys
//! whose default is no fixed value (shown with an example) and the data directory the package
//! sets.

use std::collections::BTreeSet;
use std::path::Path;

use clap::CommandFactory;
use crnp::config::{Cli, Settings};

/// Keys whose default is not a value the file can spell (all cores, the listen IP and port, no
/// token, no TLS): the file shows an example for them.
const EXAMPLES: [&str; 7] = [
    "cores",
    "source-addr",
    "source-port",
    "admin-token",
    "admin-token-file",
    "tls-cert",
    "tls-key",
];
/// The one key the package sets: the unit's StateDirectory.
const SET_BY_THE_PACKAGE: &str = "data-dir";

fn packaged() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tools/debian/crnpd.toml");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// The settings keys crnpd accepts in its file: the long flags of `Settings`, but `--config`.
fn settings_keys() -> BTreeSet<String> {
    Cli::command()
        .get_arguments()
        .filter_map(|arg| arg.get_long())
        .filter(|long| !matches!(*long, "config" | "help" | "version"))
        .map(str::to_owned)
        .collect()
}

/// `key = value` lines, commented (`# key = value`) or not: (key, line without the comment
/// mark, commented).
fn key_lines(text: &str) -> Vec<(String, String, bool)> {
    text.lines()
        .filter_map(|line| {
            let (body, commented) = match line.strip_prefix("# ") {
                Some(rest) => (rest, true),
                None => (line, false),
            };
            let (key, _) = body.split_once(" = ")?;
            let is_key = !key.is_empty()
                && key
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
            is_key.then(|| (key.to_owned(), body.to_owned(), commented))
        })
        .collect()
}

#[test]
fn the_packaged_file_lists_every_key_once_commented_at_its_default() {
    let text = packaged();
    let lines = key_lines(&text);
    let mut seen = BTreeSet::new();
    for (key, _, commented) in &lines {
        assert!(seen.insert(key.clone()), "{key} appears twice");
        assert_eq!(
            *commented,
            key != SET_BY_THE_PACKAGE,
            "{key}: only {SET_BY_THE_PACKAGE} is set, every other key is commented out"
        );
    }
    let expected = settings_keys();
    assert!(
        expected.len() >= 19,
        "clap lists too few flags: {expected:?}"
    );
    assert_eq!(
        seen, expected,
        "tools/debian/crnpd.toml and crnpd's settings disagree (left: the file, right: Settings)"
    );

    // Every commented line, uncommented, is a valid setting of crnpd.
    let all: String = lines
        .iter()
        .map(|(_, line, _)| format!("{line}\n"))
        .collect();
    let settings: Settings = toml::from_str(&all)
        .unwrap_or_else(|e| panic!("the uncommented file does not parse: {e}\n{all}"));
    assert_eq!(
        settings.data_dir.as_deref(),
        Some(Path::new("/var/lib/crnpd"))
    );

    // ... and, but for the examples and the data directory, it is crnpd's default.
    let defaults_only: String = lines
        .iter()
        .filter(|(key, _, _)| key != SET_BY_THE_PACKAGE && !EXAMPLES.contains(&key.as_str()))
        .map(|(_, line, _)| format!("{line}\n"))
        .collect();
    let from_file: Settings = toml::from_str(&defaults_only).expect("parses");
    let from_file = from_file.resolve().expect("the file's values are valid");
    let defaults = Settings::default().resolve().expect("defaults are valid");
    assert_eq!(
        format!("{from_file:?}"),
        format!("{defaults:?}"),
        "a commented value in tools/debian/crnpd.toml is not crnpd's default"
    );
}
