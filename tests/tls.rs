//! Guards TLS on the HTTP API (issue 15) against a real crnpd and real clients (curl, and the
//! `crnp` CLI), with certificates made in the test (rcgen):
//!
//! - with `--tls-cert`/`--tls-key`, HTTPS works with the right CA; a wrong CA fails; plain HTTP
//!   to the TLS port fails cleanly and crnpd stays up;
//! - SIGHUP with a new certificate: new connections get it, while registrations and
//!   deliveries go on;
//! - a token over plain HTTP off loopback is refused at start-up, unless
//!   `--allow-plaintext-token` (or TLS) is given;
//! - `crnp publish`/`crnp health` speak HTTPS with `--cacert`; the Pacemaker OCF agent passes
//!   the TLS files to crnpd and its monitor checks over HTTPS.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Instant;

use common::*;
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};

/// A certificate authority made for the test.
struct Authority {
    issuer: Issuer<'static, KeyPair>,
    pem: String,
}

impl Authority {
    fn new(name: &str) -> Authority {
        let key = KeyPair::generate().expect("CA key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        let pem = params.self_signed(&key).expect("CA certificate").pem();
        Authority {
            issuer: Issuer::new(params, key),
            pem,
        }
    }

    /// A server certificate for 127.0.0.1, and its key, both PEM.
    fn server_certificate(&self) -> (String, String) {
        let key = KeyPair::generate().expect("server key");
        let params = CertificateParams::new(vec!["127.0.0.1".to_owned()]).expect("params");
        let cert = params
            .signed_by(&key, &self.issuer)
            .expect("server certificate");
        (cert.pem(), key.serialize_pem())
    }
}

fn write(path: &Path, text: &str) -> PathBuf {
    std::fs::write(path, text).expect("write PEM");
    path.to_owned()
}

fn curl(args: &[&str]) -> Output {
    Command::new("curl")
        .args(["--silent", "--show-error", "--max-time", "10"])
        .args(args)
        .output()
        .expect("run curl (Debian's curl package)")
}

fn https(crnpd: &Crnpd, path: &str) -> String {
    format!("https://{}{path}", crnpd.http)
}

/// A crnpd serving HTTPS with a certificate from a CA made here; the CA file and the directory
/// that holds the files.
fn crnpd_with_tls() -> (Crnpd, PathBuf, tempfile::TempDir) {
    let temp = tempfile::tempdir().expect("tempdir");
    let authority = Authority::new("CA");
    let ca = write(&temp.path().join("ca.pem"), &authority.pem);
    let (cert, key) = authority.server_certificate();
    let cert_file = write(&temp.path().join("cert.pem"), &cert);
    let key_file = write(&temp.path().join("key.pem"), &key);
    let crnpd = Crnpd::start(&[
        "--tls-cert",
        cert_file.to_str().expect("utf8"),
        "--tls-key",
        key_file.to_str().expect("utf8"),
    ]);
    (crnpd, ca, temp)
}

#[test]
fn https_needs_the_right_ca_refuses_plain_http_and_a_sighup_swaps_the_certificate() {
    let temp = tempfile::tempdir().expect("tempdir");
    let (first, second) = (Authority::new("first CA"), Authority::new("second CA"));
    let first_ca = write(&temp.path().join("first-ca.pem"), &first.pem);
    let second_ca = write(&temp.path().join("second-ca.pem"), &second.pem);
    let (cert, key) = first.server_certificate();
    let cert_file = write(&temp.path().join("cert.pem"), &cert);
    let key_file = write(&temp.path().join("key.pem"), &key);
    let crnpd = Crnpd::start(&[
        "--tls-cert",
        cert_file.to_str().expect("utf8"),
        "--tls-key",
        key_file.to_str().expect("utf8"),
    ]);
    let first_ca = first_ca.to_str().expect("utf8");
    let second_ca = second_ca.to_str().expect("utf8");

    let ready = curl(&["--cacert", first_ca, &https(&crnpd, "/readyz")]);
    assert!(ready.status.success(), "{ready:?}");
    assert_eq!(String::from_utf8_lossy(&ready.stdout).trim(), "active");
    let wrong = curl(&["--cacert", second_ca, &https(&crnpd, "/readyz")]);
    assert_eq!(
        wrong.status.code(),
        Some(60),
        "a certificate the CA did not sign: {wrong:?}"
    );
    let plain = curl(&[&format!("http://{}/readyz", crnpd.http)]);
    assert!(
        !plain.status.success(),
        "plain HTTP to the TLS port: {plain:?}"
    );

    let sub = Subscriber::listen(ip(90));
    let membership = event_type("EC_Cluster", Some("ESC_cluster_membership"), &[]);
    assert_eq!(
        crnpd.register(sub.addr.ip(), &reg("ADD_CLIENT", sub.port(), &membership)),
        "OK"
    );
    let publish = |ca: &str, node: &str| {
        curl(&[
            "--cacert",
            ca,
            "-H",
            "Content-Type: application/json",
            "--data",
            &json_event(
                "EC_Cluster",
                "ESC_cluster_membership",
                &[("node_list", node)],
            ),
            "--write-out",
            "%{http_code}",
            &https(&crnpd, "/v1/events"),
        ])
    };
    let published = publish(first_ca, "n1");
    assert!(
        String::from_utf8_lossy(&published.stdout).ends_with("202"),
        "{published:?}"
    );
    assert_eq!(
        pair_value(&sub.next().1, "node_list").as_deref(),
        Some("n1")
    );

    let (cert, key) = second.server_certificate();
    write(&cert_file, &cert);
    write(&key_file, &key);
    signal(crnpd.pid(), libc::SIGHUP);
    let deadline = Instant::now() + WAIT;
    while !curl(&["--cacert", second_ca, &https(&crnpd, "/readyz")])
        .status
        .success()
    {
        assert!(
            Instant::now() < deadline,
            "the new certificate was never served"
        );
    }
    let old = curl(&["--cacert", first_ca, &https(&crnpd, "/readyz")]);
    assert_eq!(
        old.status.code(),
        Some(60),
        "the old certificate is gone: {old:?}"
    );

    let late = Subscriber::listen(ip(91));
    assert_eq!(
        crnpd.register(late.addr.ip(), &reg("ADD_CLIENT", late.port(), &membership)),
        "OK"
    );
    let published = publish(second_ca, "n2");
    assert!(
        String::from_utf8_lossy(&published.stdout).ends_with("202"),
        "{published:?}"
    );
    assert_eq!(
        pair_value(&sub.next().1, "node_list").as_deref(),
        Some("n2")
    );
    let both = late.take(2);
    assert_eq!(
        pair_value(&both[0], "node_list").as_deref(),
        Some("n1"),
        "latest state"
    );
    assert_eq!(pair_value(&both[1], "node_list").as_deref(), Some("n2"));
    assert!(
        crnpd.log().contains("TLS certificate reloaded"),
        "{}",
        crnpd.log()
    );

    std::fs::write(&key_file, "not a key").expect("break the key");
    signal(crnpd.pid(), libc::SIGHUP);
    let deadline = Instant::now() + WAIT;
    while !crnpd.log().contains("TLS certificate not reloaded") {
        assert!(Instant::now() < deadline, "a failed reload is logged");
    }
    let kept = curl(&["--cacert", second_ca, &https(&crnpd, "/readyz")]);
    assert!(
        kept.status.success(),
        "a failed reload keeps the certificate: {kept:?}"
    );
}

#[test]
fn a_token_over_plain_http_off_loopback_is_refused_at_start_up_unless_allowed() {
    enter_private_netns(&[]);
    let temp = tempfile::tempdir().expect("tempdir");
    let data = temp.path().join("data");
    let off_loopback = ["--http", "0.0.0.0:0", "--admin-token", "secret"];
    let (mut child, log) = spawn(&data, temp.path(), &off_loopback);
    let status = wait_exit(&mut child);
    let said = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(!status.success(), "{said}");
    assert!(
        said.contains("clear text") && said.contains("--allow-plaintext-token"),
        "the refusal says why and what to do: {said}"
    );

    let allowed = Crnpd::start(&[&off_loopback[..], &["--allow-plaintext-token"]].concat());
    assert!(allowed.terminate().success());

    let authority = Authority::new("CA");
    let (cert, key) = authority.server_certificate();
    let cert_file = write(&temp.path().join("cert.pem"), &cert);
    let key_file = write(&temp.path().join("key.pem"), &key);
    let with_tls = Crnpd::start(
        &[
            &off_loopback[..],
            &[
                "--tls-cert",
                cert_file.to_str().expect("utf8"),
                "--tls-key",
                key_file.to_str().expect("utf8"),
            ],
        ]
        .concat(),
    );
    assert!(with_tls.terminate().success());
}

#[test]
fn the_crnp_cli_publishes_over_https_with_its_ca_and_refuses_without_it() {
    let (crnpd, ca, _temp) = crnpd_with_tls();
    let sub = Subscriber::listen(ip(92));
    let membership = event_type("EC_Cluster", Some("ESC_cluster_membership"), &[]);
    assert_eq!(
        crnpd.register(sub.addr.ip(), &reg("ADD_CLIENT", sub.port(), &membership)),
        "OK"
    );
    let http = crnpd.http.to_string();
    let crnp = |extra: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_crnp"))
            .args(["publish", "--http", &http, "--timeout", "2"])
            .args([
                "--class",
                "EC_Cluster",
                "--subclass",
                "ESC_cluster_membership",
            ])
            .args(["--nv", "node_list=n1"])
            .args(extra)
            .output()
            .expect("run crnp")
    };
    let published = crnp(&["--cacert", ca.to_str().expect("utf8")]);
    assert!(published.status.success(), "{published:?}");
    assert_eq!(
        pair_value(&sub.next().1, "node_list").as_deref(),
        Some("n1")
    );
    let plain = crnp(&[]);
    assert!(
        !plain.status.success(),
        "plain HTTP to the TLS port: {plain:?}"
    );
    let health = Command::new(env!("CARGO_BIN_EXE_crnp"))
        .args([
            "health",
            "--http",
            &http,
            "--cacert",
            ca.to_str().expect("utf8"),
        ])
        .output()
        .expect("run crnp health");
    assert!(health.status.success(), "{health:?}");
}

#[test]
fn the_ocf_agent_starts_crnpd_with_tls_and_monitors_it_over_https() {
    let temp = tempfile::tempdir().expect("tempdir");
    let authority = Authority::new("CA");
    let ca = write(&temp.path().join("ca.pem"), &authority.pem);
    let (cert, key) = authority.server_certificate();
    let cert_file = write(&temp.path().join("cert.pem"), &cert);
    let key_file = write(&temp.path().join("key.pem"), &key);
    let free = || dead_port(ip(1));
    let listen = format!("127.0.0.1:{}", free());
    let http = format!("127.0.0.1:{}", free());
    let ocf = OcfResource::new(
        "crnpd_tls",
        temp.path(),
        &[
            ("listen", &listen),
            ("http", &http),
            ("tls_cert", cert_file.to_str().expect("utf8")),
            ("tls_key", key_file.to_str().expect("utf8")),
            ("tls_ca", ca.to_str().expect("utf8")),
        ],
    );
    ocf.expect("start", 0, "starts");
    ocf.expect("monitor", 0, "monitor over HTTPS");
    let ready = curl(&[
        "--cacert",
        ca.to_str().expect("utf8"),
        &format!("https://{http}/readyz"),
    ]);
    assert!(ready.status.success(), "{ready:?}");
    ocf.expect("stop", 0, "stops");
    ocf.expect("monitor", 7, "not running after stop");
    ocf.without("tls_key").expect(
        "start",
        6,
        "tls_cert without tls_key is a configuration error",
    );
}

#[test]
fn the_alert_agent_publishes_over_https_with_crnp_cacert() {
    let (crnpd, ca, temp) = crnpd_with_tls();
    let sub = Subscriber::listen(ip(93));
    let resources = event_type(
        "EC_Cluster",
        Some("ESC_cluster_r_state"),
        &[("r_name", "d1")],
    );
    assert_eq!(
        crnpd.register(sub.addr.ip(), &reg("ADD_CLIENT", sub.port(), &resources)),
        "OK"
    );
    let agent = Path::new(env!("CARGO_MANIFEST_DIR")).join("tools/pacemaker/crnp-alert");
    let epoch = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs()
        .to_string();
    let status = Command::new("bash")
        .arg(agent)
        .envs([
            ("CRM_alert_kind", "resource"),
            ("CRM_alert_rsc", "d1"),
            ("CRM_alert_task", "start"),
            ("CRM_alert_desc", "ok"),
            ("CRM_alert_rc", "0"),
            ("CRM_alert_target_rc", "0"),
            ("CRM_alert_status", "0"),
            ("CRM_alert_node", "n1"),
            ("CRM_alert_node_sequence", "1"),
            ("CRM_alert_timestamp_epoch", epoch.as_str()),
            ("CRM_alert_timestamp_usec", "0"),
            ("CRM_alert_recipient", &crnpd.http.to_string()),
            ("crnp_cacert", ca.to_str().expect("utf8")),
            ("crnp_settle_ms", "0"),
        ])
        .env("crnp_spool", temp.path().join("spool"))
        .env("crnp_log", temp.path().join("alert.log"))
        .status()
        .expect("run crnp-alert");
    assert!(status.success());
    let event = sub.next().1;
    assert_eq!(
        pair_value(&event, "r_name").as_deref(),
        Some("d1"),
        "{event}"
    );
}
