//! crnpd under a real Pacemaker cluster: runs `tests/pacemaker/e2e.sh` with the crnpd and crnp
//! binaries of this build.
//!
//! Guards the Pacemaker integration end to end (issue 7): the OCF resource agent passes
//! `ocf-tester` and runs crnpd next to a filesystem and a floating IP from the sample
//! configuration; the alert agent turns resource, group and membership changes (a
//! pacemaker-remoted node in a network namespace) into CRNP events that real subscribers
//! receive in order, also across a crnpd restart; the monitor restarts a killed crnpd.
//!
//! Needs root (it starts corosync, pacemaker, a network namespace and mounts a tmpfs) and what
//! `scripts/install-test-deps` installs; without root it fails and says so. A developer without
//! root opts out explicitly with `CRNP_SKIP_PACEMAKER=1`. About 45 seconds.

use std::path::Path;
use std::process::Command;

#[test]
fn crnpd_under_pacemaker() {
    if std::env::var_os("CRNP_SKIP_PACEMAKER").is_some_and(|v| v == "1") {
        eprintln!("skipped: CRNP_SKIP_PACEMAKER=1");
        return;
    }
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        panic!(
            "the Pacemaker end-to-end test needs root: run the suite as root (scripts/test), \
             or opt out explicitly with CRNP_SKIP_PACEMAKER=1"
        );
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/pacemaker/e2e.sh");
    let status = Command::new("bash")
        .arg(&script)
        .env("CRNPD", env!("CARGO_BIN_EXE_crnpd"))
        .env("CRNP", env!("CARGO_BIN_EXE_crnp"))
        .status()
        .expect("run tests/pacemaker/e2e.sh");
    assert!(
        status.success(),
        "tests/pacemaker/e2e.sh failed ({status}); its output above says which check"
    );
}
