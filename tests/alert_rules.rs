//! Guards the Prometheus alerting rules (`tools/prometheus/crnp-alerts.yml`): `promtool check
//! rules` accepts them, `promtool test rules` passes their unit tests
//! (`crnp-alerts.test.yml`), every alert has a test time at which it fires and one at which it
//! is silent, every metric a rule queries is one crnpd exports (`telemetry::ALL_METRICS`), and
//! every alert has its runbook line in docs/OBSERVABILITY.md.
//!
//! `promtool` comes from Debian's `prometheus` package (`scripts/install-test-deps`); without
//! it these tests fail and say so, they never skip.

mod common;
mod observe;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use observe::{metric_names, require};

/// The directory of the rules and their tests.
fn rules_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tools/prometheus")
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// Runs promtool in the rules directory; panics with its output unless it succeeds.
fn promtool(args: &[&str]) -> String {
    let output = Command::new(require("promtool"))
        .args(args)
        .current_dir(rules_dir())
        .output()
        .expect("run promtool");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.status.success(),
        "promtool {} ({}) says:\n{said}",
        args.join(" "),
        output.status
    );
    said
}

/// The alert names of the rules file, in order.
fn alerts() -> Vec<String> {
    let rules = read(&rules_dir().join("crnp-alerts.yml"));
    let names: Vec<String> = rules
        .lines()
        .filter_map(|line| line.trim().strip_prefix("- alert:"))
        .map(|name| name.trim().to_owned())
        .collect();
    assert!(!names.is_empty(), "no alert in crnp-alerts.yml");
    names
}

#[test]
fn promtool_accepts_the_rules_and_their_unit_tests_pass() {
    let checked = promtool(&["check", "rules", "crnp-alerts.yml"]);
    let count = alerts().len();
    assert!(
        checked.contains(&format!("SUCCESS: {count} rules found")),
        "promtool check rules found another number of rules than the {count} alerts:\n{checked}"
    );
    let tested = promtool(&["test", "rules", "crnp-alerts.test.yml"]);
    assert!(tested.contains("SUCCESS"), "{tested}");
}

#[test]
fn every_alert_has_a_firing_and_a_silent_case() {
    let tests = read(&rules_dir().join("crnp-alerts.test.yml"));
    // alertname -> (firing cases, silent cases): a case is the `exp_alerts` after `alertname`.
    let mut cases: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    let mut current: Option<String> = None;
    for line in tests.lines().map(str::trim) {
        if let Some(name) = line.strip_prefix("alertname:") {
            current = Some(name.trim().to_owned());
        } else if let Some(expected) = line.strip_prefix("exp_alerts:") {
            let name = current
                .take()
                .unwrap_or_else(|| panic!("an exp_alerts without an alertname: {line:?}"));
            let entry = cases.entry(name).or_default();
            match expected.split('#').next().unwrap_or("").trim() {
                "[]" => entry.1 += 1,
                "" => entry.0 += 1,
                other => panic!("write exp_alerts as a list or as [], not {other:?}"),
            }
        }
    }
    let mut missing = Vec::new();
    for alert in alerts() {
        match cases.get(&alert) {
            Some(&(firing, silent)) if firing > 0 && silent > 0 => {}
            Some(&(firing, silent)) => {
                missing.push(format!("{alert}: {firing} firing, {silent} silent cases"))
            }
            None => missing.push(format!("{alert}: no case at all")),
        }
    }
    assert!(
        missing.is_empty(),
        "crnp-alerts.test.yml needs a firing and a silent case per alert:\n{}",
        missing.join("\n")
    );
    let unknown: Vec<&String> = cases.keys().filter(|a| !alerts().contains(a)).collect();
    assert!(
        unknown.is_empty(),
        "tests of alerts that do not exist: {unknown:?}"
    );
}

#[test]
fn the_rules_query_only_exported_metrics_and_each_alert_has_a_runbook_line() {
    let rules = read(&rules_dir().join("crnp-alerts.yml"));
    let queried: BTreeSet<String> = rules
        .lines()
        .filter(|line| !line.trim_start().starts_with('#'))
        .flat_map(metric_names)
        .collect();
    assert!(
        queried.contains("crnp_active"),
        "the scan found no metric: {queried:?}"
    );
    let unknown: Vec<&String> = queried
        .iter()
        .filter(|name| !crnp::telemetry::ALL_METRICS.contains(&name.as_str()))
        .collect();
    assert!(
        unknown.is_empty(),
        "the rules query metrics crnpd does not export: {unknown:?}"
    );

    let doc = read(&Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/OBSERVABILITY.md"));
    let alerts_section = doc
        .split("\n## Alerts\n")
        .nth(1)
        .expect("docs/OBSERVABILITY.md has an `## Alerts` section");
    let alerts_section = alerts_section.split("\n## ").next().unwrap_or("");
    let without: Vec<String> = alerts()
        .into_iter()
        .filter(|alert| {
            !alerts_section
                .lines()
                .any(|line| line.starts_with(&format!("| `{alert}` |")))
        })
        .collect();
    assert!(
        without.is_empty(),
        "alerts without a runbook row (| `Name` | …) in the Alerts section of docs/OBSERVABILITY.md: {without:?}"
    );
}
