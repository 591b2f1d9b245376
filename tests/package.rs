//! Guards the Debian package end to end (issue 15): `scripts/build-deb` builds it (a release
//! build and cargo-deb); its maintainer scripts parse; `dpkg -i` installs the three binaries, the
//! unit (enabled), the conffile `/etc/crnpd/crnpd.toml`, the Pacemaker agents, the man pages, the
//! completions and the sysctl drop-in (not applied), and creates the `crnpd` system user and
//! `/var/lib/crnpd`; `systemd-analyze verify` accepts the unit and rejects broken copies of it
//! (so the check is real), and `systemd-analyze security` scores its hardening no worse than
//! now; the installed crnpd, started with the packaged config as the `crnpd` user as the unit
//! would start it (setpriv: this machine runs no systemd), passes the unit's own readiness
//! check, takes a registration from the installed `crnp subscribe` and delivers the event the
//! installed `crnp publish` sends; `dpkg -r` keeps only the conffile; `dpkg -P` leaves nothing
//! behind but the registry in `/var/lib/crnpd`.
//!
//! It installs and purges the package `crnp` on this machine, so it needs root, and refuses to
//! run where that package is installed or `/var/lib/crnpd` exists; whatever happens, it purges
//! what it installed and removes the user and the directory it caused to be created. Loopback
//! only, on ports the kernel picks. Needs dpkg, setpriv, systemd-analyze and cargo-deb
//! (`scripts/install-test-deps`); without them it fails and says so. A developer without root
//! opts out explicitly with `CRNP_SKIP_PACKAGE=1`. The release build is most of its time.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

/// The Debian package's name.
const PACKAGE: &str = "crnp";
/// Where the package keeps the registry (the unit's StateDirectory).
const STATE_DIR: &str = "/var/lib/crnpd";
/// The service user.
const USER: &str = "crnpd";
/// The packaged config.
const CONFFILE: &str = "/etc/crnpd/crnpd.toml";
/// The installed unit.
const UNIT: &str = "/usr/lib/systemd/system/crnpd.service";
/// Bound of every wait on crnpd, crnp or dpkg.
const WAIT: Duration = Duration::from_secs(60);
/// Bound of the release build and packaging.
const BUILD_WAIT: Duration = Duration::from_secs(45 * 60);

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Waits for `child` at most `limit`, killing it when it overruns; its output and status.
fn finish(mut child: Child, what: &str, limit: Duration) -> Output {
    let out = child.stdout.take().map(drain);
    let err = child.stderr.take().map(drain);
    let deadline = Instant::now() + limit;
    let status = loop {
        match child.try_wait().expect("wait") {
            Some(status) => break status,
            None if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("{what} did not finish within {limit:?}");
            }
            None => std::thread::sleep(Duration::from_millis(20)),
        }
    };
    let collect = |rx: Option<Receiver<Vec<u8>>>| {
        rx.and_then(|rx| rx.recv_timeout(WAIT).ok())
            .unwrap_or_default()
    };
    Output {
        status,
        stdout: collect(out),
        stderr: collect(err),
    }
}

/// Reads a pipe to its end on a helper thread.
fn drain(mut pipe: impl Read + Send + 'static) -> Receiver<Vec<u8>> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = pipe.read_to_end(&mut bytes);
        let _ = tx.send(bytes);
    });
    rx
}

/// Runs a command to its end (bounded), stdin closed, output captured.
fn run(program: &str, args: &[&str]) -> Output {
    run_in(
        Command::new(program).args(args),
        &format!("{program} {}", args.join(" ")),
        WAIT,
    )
}

fn run_in(command: &mut Command, what: &str, limit: Duration) -> Output {
    let child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {what}: {e}"));
    finish(child, what, limit)
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Runs a command that must succeed; its stdout.
fn ok(program: &str, args: &[&str]) -> String {
    let output = run(program, args);
    assert!(
        output.status.success(),
        "{program} {} failed ({}):\n{}",
        args.join(" "),
        output.status,
        text(&output)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// dpkg's status of the package: `None` when dpkg knows nothing of it.
fn package_status() -> Option<String> {
    let output = run("dpkg-query", &["-W", "-f=${db:Status-Abbrev}", PACKAGE]);
    let status = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    (output.status.success() && !status.is_empty() && status != "un").then_some(status)
}

fn user_exists() -> bool {
    run("getent", &["passwd", USER]).status.success()
}

/// What the test changed on the machine, undone on drop whatever happened.
struct Machine {
    /// The crnpd started from the package, while it runs.
    crnpd: Option<Child>,
    /// The crnpd user did not exist before the test.
    remove_user: bool,
}

impl Drop for Machine {
    fn drop(&mut self) {
        if let Some(mut crnpd) = self.crnpd.take() {
            let _ = crnpd.kill();
            let _ = crnpd.wait();
        }
        if package_status().is_some() {
            let purge = run("dpkg", &["--purge", PACKAGE]);
            if !purge.status.success() {
                eprintln!("cleanup: dpkg --purge {PACKAGE} failed:\n{}", text(&purge));
            }
        }
        // Refused to start when it existed: this directory is the test's.
        let _ = std::fs::remove_dir_all(STATE_DIR);
        if self.remove_user && user_exists() {
            let _ = run("userdel", &[USER]);
            let _ = run("groupdel", &[USER]);
        }
    }
}

/// Every path under the roots the package may touch, without following symlinks; the
/// directories dpkg, apt and logging change on their own are left out.
fn tree() -> BTreeSet<PathBuf> {
    const ROOTS: [&str; 5] = ["/etc", "/usr", "/var/lib", "/opt", "/srv"];
    const OWN_LIFE: [&str; 4] = [
        "/var/lib/dpkg",
        "/var/lib/apt",
        "/var/lib/man-db",
        "/var/lib/ucf",
    ];
    let mut found = BTreeSet::new();
    let mut stack: Vec<PathBuf> = ROOTS.iter().map(PathBuf::from).collect();
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if OWN_LIFE.iter().any(|own| path.starts_with(own)) {
                continue;
            }
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push(path.clone());
            }
            found.insert(path);
        }
    }
    found
}

fn mode(path: &str) -> u32 {
    std::fs::symlink_metadata(path)
        .unwrap_or_else(|e| panic!("{path} is not installed: {e}"))
        .permissions()
        .mode()
        & 0o7777
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// Lines of a pipe, read on a helper thread.
fn lines(pipe: impl Read + Send + 'static) -> Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// The first line from `rx` that `wanted` accepts, within [`WAIT`].
fn wait_line(rx: &Receiver<String>, what: &str, wanted: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + WAIT;
    let mut seen = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) if wanted(&line) => return line,
            Ok(line) => seen.push(line),
            Err(_) => panic!("no {what} within {WAIT:?}; got:\n{}", seen.join("\n")),
        }
    }
}

fn field<'a>(line: &'a str, name: &str) -> &'a str {
    line.split_whitespace()
        .find_map(|part| part.strip_prefix(name))
        .unwrap_or_else(|| panic!("no {name} in {line:?}"))
}

/// Builds the package with the project's script; the path of the .deb.
fn build() -> PathBuf {
    let started = Instant::now();
    let output = run_in(
        Command::new(repo().join("scripts/build-deb")).current_dir(repo()),
        "scripts/build-deb",
        BUILD_WAIT,
    );
    assert!(
        output.status.success(),
        "scripts/build-deb failed ({}):\n{}",
        output.status,
        text(&output)
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    let deb = PathBuf::from(stdout.lines().last().unwrap_or("").trim());
    assert!(
        deb.extension().is_some_and(|e| e == "deb") && deb.is_file(),
        "scripts/build-deb did not end with the path of a .deb:\n{}",
        text(&output)
    );
    eprintln!(
        "package: built {} in {:.0?}",
        deb.display(),
        started.elapsed()
    );
    deb
}

/// The maintainer scripts of the .deb parse as POSIX shell (cargo-deb splices its own
/// fragments into ours).
fn check_maintainer_scripts(deb: &Path) {
    let dir = tempfile::tempdir().expect("tempdir");
    let control = dir.path().join("control");
    ok(
        "dpkg-deb",
        &[
            "-e",
            deb.to_str().expect("utf-8"),
            control.to_str().expect("utf-8"),
        ],
    );
    for script in ["postinst", "prerm", "postrm"] {
        let path = control.join(script);
        assert!(path.is_file(), "the package has no {script}");
        ok("sh", &["-n", path.to_str().expect("utf-8")]);
    }
    let postinst = read(&control.join("postinst"));
    assert!(
        postinst.contains("adduser --system") && postinst.contains("deb-systemd-helper enable"),
        "postinst lacks the user or the unit's enabling:\n{postinst}"
    );
}

/// Everything the package installs is where the README says, as it says.
fn check_installed_files() {
    let version = env!("CARGO_PKG_VERSION");
    for binary in ["crnpd", "crnp", "crnp-load"] {
        let path = format!("/usr/bin/{binary}");
        assert_eq!(mode(&path), 0o755, "{path}");
        let said = ok(&path, &["--version"]);
        assert!(said.contains(version), "{path} --version: {said}");
    }
    for (installed, source, want_mode) in [
        (CONFFILE, "tools/debian/crnpd.toml", 0o644),
        (UNIT, "tools/debian/crnpd.service", 0o644),
        (
            "/usr/lib/ocf/resource.d/crnp/crnpd",
            "tools/pacemaker/crnpd.ocf",
            0o755,
        ),
        (
            "/usr/share/crnp/crnp-alert",
            "tools/pacemaker/crnp-alert",
            0o755,
        ),
        (
            "/usr/share/crnp/sysctl-large-installation.conf",
            "tools/debian/sysctl-large-installation.conf",
            0o644,
        ),
        (
            "/usr/share/crnp/prometheus/crnp-alerts.yml",
            "tools/prometheus/crnp-alerts.yml",
            0o644,
        ),
    ] {
        assert_eq!(mode(installed), want_mode, "{installed}");
        assert!(
            read(Path::new(installed)) == read(&repo().join(source)),
            "{installed} differs from {source}"
        );
    }
    let conffiles = ok("dpkg-query", &["-W", "-f=${Conffiles}", PACKAGE]);
    assert!(
        conffiles.lines().any(|l| l.trim().starts_with(CONFFILE)),
        "{CONFFILE} is not a conffile: {conffiles:?}"
    );
    for page in [
        "crnpd",
        "crnpd-store",
        "crnp",
        "crnp-subscribe",
        "crnp-publish",
        "crnp-clients",
        "crnp-remove",
        "crnp-health",
        "crnp-load",
    ] {
        let path = format!("/usr/share/man/man1/{page}.1.gz");
        ok("gzip", &["-t", &path]);
    }
    for binary in ["crnpd", "crnp", "crnp-load"] {
        let bash = format!("/usr/share/bash-completion/completions/{binary}");
        ok("bash", &["-n", &bash]);
        for path in [
            format!("/usr/share/zsh/vendor-completions/_{binary}"),
            format!("/usr/share/fish/vendor_completions.d/{binary}.fish"),
        ] {
            assert_eq!(mode(&path), 0o644, "{path}");
        }
    }
    let listed = ok("dpkg", &["-L", PACKAGE]);
    assert!(
        !listed.contains("sysctl.d"),
        "the sysctl settings must not be applied by the package:\n{listed}"
    );
    // The unit is enabled (deb-systemd-helper), for when systemd runs.
    let wants = "/etc/systemd/system/multi-user.target.wants/crnpd.service";
    assert!(
        std::fs::read_link(wants).is_ok(),
        "{wants} is missing: the unit is not enabled"
    );
    // The service user and its state directory.
    let passwd = ok("getent", &["passwd", USER]);
    let fields: Vec<&str> = passwd.trim().split(':').collect();
    assert_eq!(fields.get(5), Some(&STATE_DIR), "home of {USER}: {passwd}");
    assert!(
        fields
            .get(6)
            .is_some_and(|shell| shell.ends_with("nologin")),
        "{USER} must not have a login shell: {passwd}"
    );
    let state = std::fs::metadata(STATE_DIR).expect("the state directory exists");
    assert_eq!(state.uid(), uid_of(USER), "{STATE_DIR} belongs to {USER}");
    assert_eq!(state.permissions().mode() & 0o777, 0o750, "{STATE_DIR}");
}

fn uid_of(user: &str) -> u32 {
    ok("id", &["-u", user])
        .trim()
        .parse()
        .expect("id -u prints a number")
}

/// `systemd-analyze verify` finds nothing to say about the unit (binaries, man pages of
/// Documentation=, every key), and does speak up about broken copies of it.
fn check_unit() {
    let verify = |path: &Path| {
        run(
            "systemd-analyze",
            &["verify", path.to_str().expect("utf-8")],
        )
    };
    let output = verify(Path::new(UNIT));
    assert!(
        output.status.success() && text(&output).trim().is_empty(),
        "systemd-analyze verify {UNIT} ({}):\n{}",
        output.status,
        text(&output)
    );
    // The hardening, as systemd itself scores it (0 safest, 10 unprotected): ours is 2.9.
    let security = ok("systemd-analyze", &["security", "--offline=yes", UNIT]);
    let exposure: f64 = security
        .lines()
        .find_map(|l| l.split("Overall exposure level for crnpd.service:").nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|level| level.parse().ok())
        .unwrap_or_else(|| panic!("no exposure level in:\n{security}"));
    assert!(
        exposure <= 3.5,
        "the unit's hardening got weaker: exposure {exposure} (was 2.9):\n{security}"
    );
    let unit = read(Path::new(UNIT));
    for key in [
        "User=crnpd",
        "StateDirectory=crnpd",
        "ProtectSystem=strict",
        "NoNewPrivileges=yes",
        "PrivateTmp=yes",
        "LimitNOFILE=1048576",
        "Restart=on-failure",
    ] {
        assert!(unit.lines().any(|l| l == key), "the unit lacks {key}");
    }

    let dir = tempfile::tempdir().expect("tempdir");
    let broken = dir.path().join("crnpd.service");
    for (what, from, to) in [
        (
            "a missing binary",
            "ExecStart=/usr/bin/crnpd ",
            "ExecStart=/usr/bin/crnpd-missing ",
        ),
        (
            "an unknown key",
            "Restart=on-failure",
            "Restart=on-failure\nRestartEverything=yes",
        ),
        ("a missing man page", "man:crnpd(1)", "man:crnpd-missing(1)"),
    ] {
        assert!(unit.contains(from), "the unit has no {from:?}");
        std::fs::write(&broken, unit.replacen(from, to, 1)).expect("write");
        let output = verify(&broken);
        assert!(
            !output.status.success() || !text(&output).trim().is_empty(),
            "systemd-analyze verify says nothing about a unit with {what}: the check is not real"
        );
    }
}

/// The command line of the unit's `key=` (ExecStart, ExecStartPost), split on spaces.
fn unit_command(key: &str) -> Vec<String> {
    let unit = read(Path::new(UNIT));
    let line = unit
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{key}=")))
        .unwrap_or_else(|| panic!("the unit has no {key}="));
    line.split_whitespace().map(str::to_owned).collect()
}

/// Starts the installed crnpd as the unit does (its ExecStart, as its User), on ports the
/// kernel picks (CRNPD_* beat the file); waits for its ready line: (listen, http).
fn start_crnpd(machine: &mut Machine) -> (String, String) {
    let exec_start = unit_command("ExecStart");
    let mut child = Command::new("setpriv")
        .args(["--reuid", USER, "--regid", USER, "--init-groups", "--"])
        .args(&exec_start)
        .env("CRNPD_LISTEN", "127.0.0.1:0")
        .env("CRNPD_HTTP", "127.0.0.1:0")
        .current_dir("/")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the installed crnpd with setpriv");
    let stdout = lines(child.stdout.take().expect("stdout"));
    let stderr = lines(child.stderr.take().expect("stderr"));
    let pid = child.id();
    machine.crnpd = Some(child);
    let ready = wait_line(&stdout, "ready line from the installed crnpd", |l| {
        l.starts_with("crnpd ready")
    });
    std::thread::spawn(move || for _ in stdout {});
    std::thread::spawn(move || {
        for line in stderr {
            eprintln!("installed crnpd: {line}");
        }
    });
    let status = read(Path::new(&format!("/proc/{pid}/status")));
    let uids = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .expect("a Uid line");
    let uid = uid_of(USER).to_string();
    assert!(
        uids.split_whitespace().all(|u| u == uid),
        "crnpd runs as uids {uids}, not as {USER} ({uid})"
    );
    (
        field(&ready, "listen=").to_owned(),
        field(&ready, "http=").to_owned(),
    )
}

/// The unit's ExecStartPost (the readiness check), run as the unit would, with the environment
/// that moved crnpd's address.
fn check_readiness(http: &str) {
    let post = unit_command("ExecStartPost");
    let output = run_in(
        Command::new("setpriv")
            .args(["--reuid", USER, "--regid", USER, "--init-groups", "--"])
            .args(&post)
            .env("CRNPD_HTTP", http),
        "the unit's ExecStartPost",
        WAIT,
    );
    assert!(
        output.status.success() && text(&output).contains("ready"),
        "the unit's readiness check {post:?} failed ({}):\n{}",
        output.status,
        text(&output)
    );
}

/// The installed `crnp subscribe` registers and receives what the installed `crnp publish`
/// sends.
fn subscribe_and_publish(listen: &str, http: &str) {
    let mut subscriber = Command::new("/usr/bin/crnp")
        .args(["subscribe", "--server", listen, "--port", "0"])
        .args([
            "--class",
            "EC_Cluster",
            "--subclass",
            "ESC_cluster_membership",
        ])
        .args(["--count", "1", "--json", "--timeout", "30"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start crnp subscribe");
    let err = lines(subscriber.stderr.take().expect("stderr"));
    wait_line(&err, "registration of crnp subscribe", |l| {
        l.contains("registered")
    });
    std::thread::spawn(move || for _ in err {});
    let published = ok(
        "/usr/bin/crnp",
        &[
            "publish",
            "--http",
            http,
            "--class",
            "EC_Cluster",
            "--subclass",
            "ESC_cluster_membership",
            "--nv",
            "node_list=packaged-node",
        ],
    );
    assert!(published.trim().parse::<u64>().is_ok(), "{published}");
    let output = finish(subscriber, "crnp subscribe --count 1", WAIT);
    assert!(
        output.status.success(),
        "crnp subscribe ({}):\n{}",
        output.status,
        text(&output)
    );
    let event = String::from_utf8_lossy(&output.stdout);
    assert!(
        event.contains("packaged-node") && event.contains("ESC_cluster_membership"),
        "the subscriber did not get the event: {event}"
    );
}

/// Stops the installed crnpd with SIGTERM, as systemd would; it exits 0.
fn stop_crnpd(machine: &mut Machine) -> ExitStatus {
    let mut child = machine.crnpd.take().expect("crnpd runs");
    // SAFETY: kill has no memory preconditions; the pid is our child's, not yet reaped.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            return status;
        }
        if Instant::now() >= deadline {
            machine.crnpd = Some(child);
            panic!("the installed crnpd did not stop within {WAIT:?} of SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn the_debian_package_installs_serves_and_purges_cleanly() {
    if std::env::var_os("CRNP_SKIP_PACKAGE").is_some_and(|v| v == "1") {
        eprintln!("skipped: CRNP_SKIP_PACKAGE=1");
        return;
    }
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        panic!(
            "the package test installs and purges a Debian package and needs root: run the \
             suite as root (scripts/test), or opt out explicitly with CRNP_SKIP_PACKAGE=1"
        );
    }
    if let Some(status) = package_status() {
        panic!(
            "the package {PACKAGE} is already on this machine (dpkg status {status:?}); this test \
             installs and purges it, so it runs only where it is absent: dpkg --purge {PACKAGE}"
        );
    }
    assert!(
        !Path::new(STATE_DIR).exists(),
        "{STATE_DIR} exists (an earlier installation's registry?); this test creates and removes \
         it, so it runs only where it is absent: move it away if it is not needed"
    );
    let deb = build();
    check_maintainer_scripts(&deb);

    let started = Instant::now();
    let before = tree();
    let mut machine = Machine {
        crnpd: None,
        remove_user: !user_exists(),
    };
    ok("dpkg", &["--install", deb.to_str().expect("utf-8")]);
    assert_eq!(package_status().as_deref(), Some("ii"));
    // The snapshot sees what an installation adds (so its comparison after the purge is real).
    let installed = tree();
    for path in ["/usr/bin/crnpd", CONFFILE, UNIT, STATE_DIR] {
        assert!(
            installed.contains(Path::new(path)) && !before.contains(Path::new(path)),
            "the file-system snapshot misses {path}"
        );
    }
    check_installed_files();
    check_unit();
    if Path::new("/run/systemd/system").is_dir() {
        // Where systemd runs, the postinst started the service on the registry this test's
        // crnpd is about to open: stop it (the drop guard's purge stops it too).
        ok("systemctl", &["stop", "crnpd.service"]);
    }

    let (listen, http) = start_crnpd(&mut machine);
    check_readiness(&http);
    subscribe_and_publish(&listen, &http);
    let status = stop_crnpd(&mut machine);
    assert!(status.success(), "the installed crnpd exited with {status}");
    let registry = Path::new(STATE_DIR).join("registry.redb");
    let meta = std::fs::metadata(&registry).expect("crnpd wrote its registry to the state dir");
    assert_eq!(
        meta.uid(),
        uid_of(USER),
        "{} belongs to {USER}",
        registry.display()
    );

    let files: Vec<String> = ok("dpkg", &["-L", PACKAGE])
        .lines()
        .map(str::to_owned)
        .filter(|p| Path::new(p).is_file())
        .collect();
    ok("dpkg", &["--remove", PACKAGE]);
    assert_eq!(package_status().as_deref(), Some("rc"));
    assert!(
        !Path::new("/usr/bin/crnpd").exists(),
        "dpkg -r left /usr/bin/crnpd"
    );
    assert!(
        Path::new(CONFFILE).is_file(),
        "dpkg -r removed the conffile"
    );

    ok("dpkg", &["--purge", PACKAGE]);
    assert_eq!(package_status(), None);
    let left: Vec<&String> = files.iter().filter(|p| Path::new(p).exists()).collect();
    assert!(
        left.is_empty(),
        "dpkg -P left files of the package: {left:?}"
    );
    let after = tree();
    let state = Path::new(STATE_DIR);
    let new: Vec<&PathBuf> = after
        .difference(&before)
        .filter(|p| !p.starts_with(state))
        .collect();
    assert!(
        new.is_empty(),
        "install, use and purge left paths behind (only {STATE_DIR} may stay): {new:?}"
    );
    let kept: Vec<PathBuf> = std::fs::read_dir(state)
        .expect("the state directory stays")
        .flatten()
        .map(|e| e.path())
        .collect();
    assert_eq!(
        kept,
        vec![registry],
        "{STATE_DIR} keeps the registry and nothing else"
    );
    eprintln!(
        "package: installed, served, removed and purged in {:.1?}",
        started.elapsed()
    );
    drop(machine);
    assert!(!state.exists(), "the test's cleanup removes {STATE_DIR}");
}
