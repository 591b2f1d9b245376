//! Black-box tests of the client library and the `crnp` CLI against a real crnpd.
//!
//! Each test starts its own crnpd on port 0 in a temporary data directory and talks to it
//! only over 127.0.0.0/8; every event type is unique to its test, so no test sees another's
//! events. Every wait is bounded in time; synchronisation is on lines the processes print
//! and on replies, never on sleeps.

use std::io::{BufRead, BufReader};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::Duration;

mod common;

use common::Crnpd;
use crnp::client::{self, CallbackListener};
use crnp::protocol::{CallbackReg, Event, EventType, NvPair, RegType, Reply, StatusCode};

/// Bound of every single wait in these tests.
const WAIT: Duration = Duration::from_secs(20);
/// Loopback.
const LOCAL: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

/// Lines read from a child's pipe by a helper thread.
fn lines_of(pipe: impl std::io::Read + Send + 'static) -> Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    rx
}

/// The first line matching `wanted`, within [`WAIT`].
fn wait_line(lines: &Receiver<String>, wanted: impl Fn(&str) -> bool) -> String {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match lines.recv_timeout(left) {
            Ok(line) if wanted(&line) => return line,
            Ok(_) => {}
            Err(e) => panic!("no expected line within {WAIT:?}: {e}"),
        }
    }
}

/// The exit status of `child`, within [`WAIT`].
fn wait_exit(mut child: Child) -> ExitStatus {
    let (tx, rx) = mpsc::channel();
    let pid = child.id();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait());
    });
    match rx.recv_timeout(WAIT) {
        Ok(status) => status.expect("wait works"),
        Err(_) => {
            // SAFETY: kill has no memory preconditions; the child has not exited (not reaped).
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
            panic!("process {pid} did not exit within {WAIT:?}")
        }
    }
}

/// Runs `crnp ARGS` to completion: (exit code, stdout, stderr).
/// Starts `crnp subscribe` for class `EC_cli_test` and `subclass` on a kernel-chosen port;
/// returns the child and its stdout and stderr lines.
fn subscribe(
    listen: &str,
    subclass: &str,
    extra: &[&str],
) -> (Child, Receiver<String>, Receiver<String>) {
    let mut args = vec![
        "subscribe",
        "--server",
        listen,
        "--port",
        "0",
        "--class",
        "EC_cli_test",
        "--subclass",
        subclass,
    ];
    args.extend_from_slice(extra);
    let mut child = spawn_crnp(&args);
    let out = lines_of(child.stdout.take().expect("stdout"));
    let err = lines_of(child.stderr.take().expect("stderr"));
    (child, out, err)
}

/// `crnp publish` of an `EC_cli_test` event of `subclass`, with `extra` arguments.
fn publish_test_event(http: &str, subclass: &str, extra: &[&str]) -> (i32, String, String) {
    let mut args = vec![
        "publish",
        "--http",
        http,
        "--class",
        "EC_cli_test",
        "--subclass",
        subclass,
    ];
    args.extend_from_slice(extra);
    crnp(&args)
}

/// Runs `crnp` with `args` to its end (at most [`WAIT`]): exit code, stdout, stderr.
fn crnp(args: &[&str]) -> (i32, String, String) {
    finish(spawn_crnp(args))
}

/// Waits (bounded) for a spawned `crnp` to exit: its exit code, stdout and stderr.
fn finish(child: Child) -> (i32, String, String) {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let output = rx
        .recv_timeout(WAIT)
        .expect("crnp finishes in time")
        .expect("output");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Starts `crnp` with `args`, no stdin, and stdout and stderr piped.
fn spawn_crnp(args: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_crnp"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("crnp starts")
}

/// A registration for one (class, subclass) from the given port.
fn reg(port: u16, reg_type: RegType, subclass: &str) -> CallbackReg {
    let events = match reg_type {
        RegType::RemoveClient => Vec::new(),
        _ => vec![EventType {
            class: "EC_cli_test".into(),
            subclass: Some(subclass.into()),
            nvpairs: Vec::new(),
        }],
    };
    CallbackReg {
        port,
        reg_type,
        events,
    }
}

/// An event of the test class.
fn event(subclass: &str, value: &str) -> Event {
    Event {
        class: "EC_cli_test".into(),
        subclass: subclass.into(),
        vendor: "SUNW".into(),
        publisher: "rgm".into(),
        nvpairs: vec![
            NvPair::scalar("rg_name", value),
            NvPair {
                name: "node_list".into(),
                values: vec!["n1".into(), "n2".into()],
            },
        ],
    }
}

/// Sends a registration of `form` for the test's `tag` type from `source`, and returns the reply.
async fn register(server: &Crnpd, source: IpAddr, port: u16, form: RegType, tag: &str) -> Reply {
    client::register(server.listen, Some(source), &reg(port, form, tag), WAIT)
        .await
        .expect("registration answered")
}

/// The clients the admin API lists.
async fn clients(server: &Crnpd) -> Vec<client::ClientInfo> {
    client::clients(server.http, WAIT)
        .await
        .expect("client list")
}

#[tokio::test]
async fn a_registered_client_receives_published_events_in_order_and_can_leave() {
    let server = Crnpd::start(&[]);
    let listener = CallbackListener::bind(SocketAddr::new(LOCAL, 0), 16).expect("listen");
    let port = listener.local_addr().port();

    let reply = register(&server, LOCAL, port, RegType::AddClient, "order").await;
    assert_eq!(reply.status, StatusCode::Ok, "{}", reply.message);

    let events = [event("order", "first"), event("order", "second")];
    let sequences = client::publish(server.http, &events, WAIT)
        .await
        .expect("published");
    assert_eq!(sequences.len(), 2);
    assert!(sequences[0] < sequences[1], "{sequences:?}");

    for expected in &events {
        let received = tokio::time::timeout(WAIT, listener.next_event(WAIT))
            .await
            .expect("in time")
            .expect("event");
        assert_eq!(&received.event, expected);
        assert_eq!(
            Event::parse(&received.raw, &Default::default()).as_ref(),
            Ok(expected)
        );
    }

    let listed = clients(&server).await;
    let me = listener.local_addr().to_string();
    assert!(listed.iter().any(|c| c.address == me), "{listed:?}");

    let reply = register(&server, LOCAL, port, RegType::RemoveClient, "order").await;
    assert_eq!(reply.status, StatusCode::Ok, "{}", reply.message);
    let listed = clients(&server).await;
    assert!(!listed.iter().any(|c| c.address == me), "{listed:?}");
}

#[tokio::test]
async fn identity_is_the_source_ip_and_unknown_clients_are_refused() {
    let server = Crnpd::start(&[]);
    let other = IpAddr::V4(Ipv4Addr::new(127, 0, 2, 7));
    let listener = CallbackListener::bind(SocketAddr::new(other, 0), 16).expect("listen");
    let port = listener.local_addr().port();

    let reply = register(&server, other, port, RegType::AddClient, "identity").await;
    assert_eq!(reply.status, StatusCode::Ok, "{}", reply.message);
    let listed = clients(&server).await;
    assert!(
        listed
            .iter()
            .any(|c| c.address == format!("127.0.2.7:{port}")),
        "{listed:?}"
    );

    // The same port from another source IP is another client, which never registered.
    let reply = register(&server, LOCAL, port, RegType::RemoveClient, "identity").await;
    assert_eq!(reply.status, StatusCode::Fail, "{}", reply.message);

    client::delete_client(server.http, listener.local_addr(), WAIT)
        .await
        .expect("deleted");
    let listed = clients(&server).await;
    assert!(
        listed
            .iter()
            .all(|c| c.address != format!("127.0.2.7:{port}")),
        "{listed:?}"
    );
}

#[tokio::test]
async fn client_errors_name_the_unreachable_address() {
    let closed = {
        let socket = std::net::TcpListener::bind((LOCAL, 0)).expect("bind");
        socket.local_addr().expect("addr")
    };
    let error = client::register(closed, Some(LOCAL), &reg(1, RegType::AddClient, "x"), WAIT)
        .await
        .expect_err("nobody listens");
    assert!(error.is_unreachable());
    assert!(error.to_string().contains(&closed.to_string()), "{error}");
    let error = client::ready(closed, WAIT)
        .await
        .expect_err("nobody listens");
    assert!(error.is_unreachable(), "{error}");
}

#[test]
fn crnp_health_publish_and_clients_report_through_exit_codes() {
    let server = Crnpd::start(&[]);
    let http = server.http.to_string();

    let (code, out, _) = crnp(&["health", "--http", &http]);
    assert_eq!((code, out.trim()), (0, "ready"));

    let (code, out, err) = publish_test_event(&http, "pub", &["--nv", "a=1", "--nv", "l=x,y"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.trim().parse::<u64>().is_ok(), "{out}");

    let (code, _, err) = crnp(&["publish", "--http", &http, "--xml", "/dev/null"]);
    assert_eq!(code, 1, "an empty document is refused by the server: {err}");

    let (code, out, err) = crnp(&["clients", "--http", &http, "--json"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        serde_json::from_str::<Vec<client::ClientInfo>>(&out).is_ok(),
        "{out}"
    );
    let (code, out, _) = crnp(&["clients", "--http", &http]);
    assert_eq!(code, 0);
    assert!(out.starts_with("ADDRESS"), "{out}");

    let closed = {
        let socket = std::net::TcpListener::bind((LOCAL, 0)).expect("bind");
        socket.local_addr().expect("addr").to_string()
    };
    let (code, _, err) = crnp(&["health", "--http", &closed, "--timeout", "5"]);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains(&closed), "{err}");
    let (code, _, _) = crnp(&["publish", "--http", &http]);
    assert_eq!(code, 2, "--class and --subclass are required without --xml");
}

#[test]
fn crnp_health_waits_for_readiness_at_the_address_crnpd_s_config_names() {
    // A port nobody listens on yet: crnpd takes it while `crnp health --wait` keeps asking.
    let http = {
        let socket = std::net::TcpListener::bind((LOCAL, 0)).expect("bind");
        socket.local_addr().expect("addr").to_string()
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("crnpd.toml");
    std::fs::write(&config, format!("http = \"{http}\"\n")).expect("write config");
    let config = config.to_str().expect("utf-8 path");
    let waiting = spawn_crnp(&["health", "--crnpd-config", config, "--wait", "15"]);
    let server = Crnpd::start(&["--http", &http]);
    let (code, out, err) = finish(waiting);
    assert_eq!((code, out.trim()), (0, "ready"), "{err}");

    // CRNPD_HTTP beats the file's key, as it does for crnpd; without --wait one refusal is final.
    let closed = {
        let socket = std::net::TcpListener::bind((LOCAL, 0)).expect("bind");
        socket.local_addr().expect("addr").to_string()
    };
    let child = Command::new(env!("CARGO_BIN_EXE_crnp"))
        .args(["health", "--crnpd-config", config, "--timeout", "5"])
        .env("CRNPD_HTTP", &closed)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("crnp starts");
    let (code, _, err) = finish(child);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains(&closed), "{err}");

    let (code, _, err) = crnp(&["health", "--crnpd-config", "/nonexistent/crnpd.toml"]);
    assert_eq!(code, 2, "an unreadable config is a usage error: {err}");
    assert!(err.contains("/nonexistent/crnpd.toml"), "{err}");
    drop(server);
}

#[test]
fn crnp_subscribe_prints_json_events_and_unregisters_on_sigterm() {
    let server = Crnpd::start(&[]);
    let (listen, http) = (server.listen.to_string(), server.http.to_string());
    let (subscriber, out, err) = subscribe(&listen, "sub", &["--json"]);
    let registered = wait_line(&err, |line| line.contains("registered"));
    let address = registered
        .split_whitespace()
        .nth(2)
        .expect("address in the line")
        .to_owned();

    let (code, _, stderr) = publish_test_event(&http, "sub", &["--nv", "rg_name=rg1"]);
    assert_eq!(code, 0, "{stderr}");
    let line = wait_line(&out, |_| true);
    let json: serde_json::Value = serde_json::from_str(&line).expect("one JSON object per line");
    assert_eq!(json["subclass"], "sub");
    assert_eq!(json["nvpairs"][0]["value"], "rg1");

    // SAFETY: kill has no memory preconditions; the child is alive (it just printed).
    unsafe { libc::kill(subscriber.id() as i32, libc::SIGTERM) };
    assert_eq!(wait_exit(subscriber).code(), Some(0));
    let (_, clients, _) = crnp(&["clients", "--http", &http, "--json"]);
    assert!(
        !clients.contains(&address),
        "{address} still registered: {clients}"
    );
}

#[test]
fn crnp_subscribe_count_exits_after_the_events_and_prints_blocks() {
    let server = Crnpd::start(&[]);
    let (listen, http) = (server.listen.to_string(), server.http.to_string());
    let (subscriber, out, err) = subscribe(&listen, "cnt", &["--count", "1"]);
    wait_line(&err, |line| line.contains("registered"));
    let (code, _, stderr) = publish_test_event(&http, "cnt", &[]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(wait_line(&out, |_| true), "Received event:");
    assert_eq!(wait_line(&out, |_| true), "\tCLASS=EC_cli_test");
    assert_eq!(wait_exit(subscriber).code(), Some(0));
}
