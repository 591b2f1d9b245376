//! Guards the durability contract of a real crnpd on a real redb file (issue 4):
//!
//! - an `SC_REPLY OK` means durable: kill -9 at a random moment of a registration storm loses
//!   no acknowledged client, changes no acknowledged event-type set, and keeps every client
//!   whose registration got an error reply out;
//! - after kill -9 and restart, and after failover to a `--standby`, every client receives the
//!   current state of each type it registered for, and new events flow again;
//! - a corrupt, unreadable or foreign-owned store is a clear start-up error naming the path,
//!   never a panic and never a silently empty registry; a full disk refuses registrations
//!   with `SYSTEM_ERROR` while crnpd stays up, keeps what it acknowledged, and recovers;
//! - `crnpd store check` and `crnpd store export` describe a stopped store and refuse a held or
//!   missing one.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::*;
use socket2::{Domain, Socket, Type};

// ---------------------------------------------------------------------------------------------
// Shared helpers

/// A registered event type in a comparable form: `class|subclass|name=value,...`.
type TypeKey = String;

/// Client address -> its event types, as the store export or the admin API shows them.
type Registry = BTreeMap<String, BTreeSet<TypeKey>>;

fn type_key(class: &str, subclass: Option<&str>, pairs: &[(&str, &str)]) -> TypeKey {
    let pairs: Vec<String> = pairs.iter().map(|(n, v)| format!("{n}={v}")).collect();
    format!("{class}|{}|{}", subclass.unwrap_or("-"), pairs.join(","))
}

/// The registry in a JSON list of clients (`crnpd store export`'s `clients`, or `/v1/clients`).
fn registry_of(clients: &serde_json::Value) -> Registry {
    let mut registry = Registry::new();
    for client in clients.as_array().expect("a client array") {
        let address = client["address"].as_str().expect("address").to_owned();
        let mut types = BTreeSet::new();
        for t in client["event_types"].as_array().expect("event_types") {
            let pairs: Vec<(String, String)> = t["nvpairs"]
                .as_array()
                .expect("nvpairs")
                .iter()
                .map(|p| {
                    let name = p["name"].as_str().expect("pair name").to_owned();
                    let value = match &p["value"] {
                        serde_json::Value::String(v) => v.clone(),
                        other => other.to_string(),
                    };
                    (name, value)
                })
                .collect();
            let pairs: Vec<(&str, &str)> = pairs
                .iter()
                .map(|(n, v)| (n.as_str(), v.as_str()))
                .collect();
            types.insert(type_key(
                t["class"].as_str().expect("class"),
                t["subclass"].as_str(),
                &pairs,
            ));
        }
        assert!(
            registry.insert(address.clone(), types).is_none(),
            "{address} listed twice"
        );
    }
    registry
}

/// Runs `crnpd store <action>` on `data_dir`.
fn store_command(action: &str, data_dir: &Path) -> Output {
    Command::new(crnpd_bin())
        .args(["store", action, "--data-dir"])
        .arg(data_dir)
        .env("CRNPD_LOG", "warn")
        .output()
        .expect("run crnpd store")
}

/// `crnpd store export` of a store no process holds, parsed.
fn export(data_dir: &Path) -> serde_json::Value {
    let output = store_command("export", data_dir);
    assert!(
        output.status.success(),
        "store export failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("export is JSON")
}

/// Spawns crnpd on `data_dir`, expects it to exit at start-up; returns its exit code and stderr.
fn start_fails(data_dir: &Path, log_dir: &Path) -> (Option<i32>, String) {
    let (mut child, log) = spawn(data_dir, log_dir, &[]);
    let status = wait_exit(&mut child);
    (
        status.code(),
        std::fs::read_to_string(log).unwrap_or_default(),
    )
}

fn assert_clear_startup_error(code: Option<i32>, stderr: &str, path: &Path, words: &[&str]) {
    assert!(
        matches!(code, Some(c) if c != 0),
        "a non-zero exit, got {code:?}; stderr:\n{stderr}"
    );
    assert!(
        stderr.contains(&path.display().to_string()),
        "stderr names {}:\n{stderr}",
        path.display()
    );
    for word in words {
        assert!(stderr.contains(word), "stderr says {word:?}:\n{stderr}");
    }
    assert!(!stderr.contains("panicked"), "no panic message:\n{stderr}");
    assert!(
        !stderr.contains("crnpd ready"),
        "it did not serve:\n{stderr}"
    );
}

/// Polls until `check` holds, at most `limit`; a short sleep between tries.
fn wait_until(limit: Duration, what: &str, check: impl FnMut() -> bool) -> Duration {
    wait_until_explained(limit, what, check, String::new)
}

/// [`wait_until`], whose failure also shows `explain()` (a process's log).
fn wait_until_explained(
    limit: Duration,
    what: &str,
    mut check: impl FnMut() -> bool,
    explain: impl Fn() -> String,
) -> Duration {
    let started = Instant::now();
    loop {
        if check() {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < limit,
            "{what} did not happen within {limit:?}\n{}",
            explain()
        );
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// GET /readyz status, or `None` while nothing listens on `http`.
fn readyz(http_addr: SocketAddr) -> Option<u16> {
    TcpStream::connect_timeout(&http_addr, Duration::from_secs(1)).ok()?;
    Some(http(http_addr, "GET", "/readyz", None, None).0)
}

fn membership() -> String {
    event_type("EC_Cluster", Some("ESC_cluster_membership"), &[])
}

fn r_state(name: &str) -> String {
    event_type(
        "EC_Cluster",
        Some("ESC_cluster_r_state"),
        &[("r_name", name)],
    )
}

// ---------------------------------------------------------------------------------------------
// The kill -9 registration storm

/// A small, seeded generator (xorshift64*): the storm is reproducible from its printed seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// What one registration of the storm got.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Outcome {
    /// `SC_REPLY OK`.
    Ok,
    /// An `SC_REPLY` with another status.
    Refused(String),
    /// Sent (at least partly), but the connection ended without a reply: the kill cut it.
    NoReply,
    /// Never reached crnpd (connection refused after the kill).
    NotSent,
}

const STORM_CLIENTS: usize = 2_000;
const STORM_THREADS: usize = 16;
const STORM_SOURCES: usize = 50;

/// Client `i` of storm round `round`: its source IP, callback port, message and expected types.
/// Every tenth client sends ADD_EVENTS without being registered: it must get FAIL and stay out.
struct StormClient {
    ip: IpAddr,
    port: u16,
    message: String,
    types: Option<BTreeSet<TypeKey>>,
}

fn storm_client(round: usize, i: usize) -> StormClient {
    let ip = ip(2 + (i % STORM_SOURCES) as u8);
    let port = u16::try_from(20_000 + round * STORM_CLIENTS + i).expect("port");
    let r_name = format!("r{round}-{i}");
    let mut xml = r_state(&r_name);
    let mut types = BTreeSet::from([type_key(
        "EC_Cluster",
        Some("ESC_cluster_r_state"),
        &[("r_name", &r_name)],
    )]);
    if i.is_multiple_of(2) {
        xml.push_str(&membership());
        types.insert(type_key("EC_Cluster", Some("ESC_cluster_membership"), &[]));
    }
    if i.is_multiple_of(3) {
        let group = format!("g{}", i % 5);
        xml.push_str(&event_type(
            "EC_Cluster",
            Some("ESC_cluster_rg_state"),
            &[("rg_name", &group)],
        ));
        types.insert(type_key(
            "EC_Cluster",
            Some("ESC_cluster_rg_state"),
            &[("rg_name", &group)],
        ));
    }
    if i.is_multiple_of(7) {
        xml.push_str(&event_type("EC_Cluster", None, &[]));
        types.insert(type_key("EC_Cluster", None, &[]));
    }
    if i % 10 == 9 {
        StormClient {
            ip,
            port,
            message: reg("ADD_EVENTS", port, &xml),
            types: None,
        }
    } else {
        StormClient {
            ip,
            port,
            message: reg("ADD_CLIENT", port, &xml),
            types: Some(types),
        }
    }
}

/// One registration that tolerates the server dying at any point.
fn try_register(server: SocketAddr, source: IpAddr, message: &str) -> Outcome {
    let Ok(socket) = Socket::new(Domain::IPV4, Type::STREAM, None) else {
        return Outcome::NotSent;
    };
    if socket.bind(&SocketAddr::new(source, 0).into()).is_err() {
        return Outcome::NotSent;
    }
    if socket
        .connect_timeout(&server.into(), Duration::from_secs(5))
        .is_err()
    {
        return Outcome::NotSent;
    }
    let mut stream: TcpStream = socket.into();
    let _ = stream.set_read_timeout(Some(WAIT));
    if stream.write_all(message.as_bytes()).is_err() {
        return Outcome::NoReply;
    }
    let mut reply = Vec::new();
    let _ = stream.read_to_end(&mut reply);
    match status_of(&String::from_utf8_lossy(&reply)).as_str() {
        "NO_REPLY" => Outcome::NoReply,
        "OK" => Outcome::Ok,
        other => Outcome::Refused(other.to_owned()),
    }
}

/// Registers the round's clients from many threads and source IPs; a killer thread kill -9s
/// crnpd once `kill_after` replies have arrived. Returns every client's outcome.
fn storm(crnpd: &Crnpd, round: usize, kill_after: usize) -> Vec<Outcome> {
    let replies = AtomicUsize::new(0);
    let killed = AtomicBool::new(false);
    let done = AtomicUsize::new(0);
    let listen = crnpd.listen;
    let pid = crnpd.pid();
    let mut outcomes = vec![Outcome::NotSent; STORM_CLIENTS];
    std::thread::scope(|scope| {
        scope.spawn(|| {
            let deadline = Instant::now() + WAIT;
            while replies.load(Ordering::SeqCst) < kill_after
                && done.load(Ordering::SeqCst) < STORM_THREADS
                && Instant::now() < deadline
            {
                std::thread::sleep(Duration::from_micros(200));
            }
            signal(pid, libc::SIGKILL);
            killed.store(true, Ordering::SeqCst);
        });
        let workers: Vec<_> = (0..STORM_THREADS)
            .map(|t| {
                let (replies, killed, done) = (&replies, &killed, &done);
                scope.spawn(move || {
                    let mut mine = Vec::new();
                    let mut dead = false;
                    for i in (t..STORM_CLIENTS).step_by(STORM_THREADS) {
                        if dead {
                            mine.push((i, Outcome::NotSent));
                            continue;
                        }
                        let client = storm_client(round, i);
                        let outcome = try_register(listen, client.ip, &client.message);
                        if matches!(outcome, Outcome::Ok | Outcome::Refused(_)) {
                            replies.fetch_add(1, Ordering::SeqCst);
                        } else if killed.load(Ordering::SeqCst) {
                            dead = true;
                        }
                        mine.push((i, outcome));
                    }
                    done.fetch_add(1, Ordering::SeqCst);
                    mine
                })
            })
            .collect();
        for worker in workers {
            for (i, outcome) in worker.join().expect("storm thread") {
                outcomes[i] = outcome;
            }
        }
    });
    outcomes
}

#[test]
fn kill9_during_a_registration_storm_keeps_every_acknowledged_client_and_no_refused_one() {
    let seed = std::env::var("CRNP_STORM_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
                | 1
        });
    println!("storm seed {seed} (rerun with CRNP_STORM_SEED={seed})");
    let mut rng = Rng(seed);
    let temp = tempfile::tempdir().expect("tempdir");
    let data = temp.path().join("data");
    let args = ["--max-clients", "100000"];
    let mut crnpd = Crnpd::start_in(&data, temp.path(), &args);
    // What the store held after the previous rounds: it must survive every later kill.
    let mut before = Registry::new();
    let started = Instant::now();
    let mut round = 0;
    while round < 5 && (round < 2 || started.elapsed() < Duration::from_secs(40)) {
        let kill_after = 50 + rng.below(STORM_CLIENTS as u64 - 100) as usize;
        let outcomes = storm(&crnpd, round, kill_after);
        crnpd.kill9();

        let on_disk = registry_of(&export(&data)["clients"]);
        let mut count = BTreeMap::<&str, usize>::new();
        let mut cut_present = 0;
        for (i, outcome) in outcomes.iter().enumerate() {
            let client = storm_client(round, i);
            let address = SocketAddr::new(client.ip, client.port).to_string();
            let stored = on_disk.get(&address);
            match outcome {
                Outcome::Ok => {
                    *count.entry("ok").or_default() += 1;
                    let expected = client.types.as_ref().expect("only ADD_CLIENT gets OK");
                    assert_eq!(
                        stored,
                        Some(expected),
                        "round {round}: {address} got OK (seed {seed})"
                    );
                }
                Outcome::Refused(status) => {
                    *count.entry("error reply").or_default() += 1;
                    assert!(
                        client.types.is_none(),
                        "round {round}: {address} refused with {status}"
                    );
                    assert_eq!(
                        stored, None,
                        "round {round}: {address} got {status} but is stored (seed {seed})"
                    );
                }
                Outcome::NoReply | Outcome::NotSent => {
                    let key = if *outcome == Outcome::NoReply {
                        "no reply"
                    } else {
                        "not sent"
                    };
                    *count.entry(key).or_default() += 1;
                    if let Some(stored) = stored {
                        cut_present += 1;
                        assert_eq!(
                            Some(stored),
                            client.types.as_ref(),
                            "round {round}: {address} half applied"
                        );
                    }
                }
            }
        }
        for (address, types) in &before {
            assert_eq!(
                on_disk.get(address),
                Some(types),
                "round {round}: {address} of an earlier round changed"
            );
        }
        let oks = count.get("ok").copied().unwrap_or(0);
        let known = on_disk.len() - before.len();
        assert_eq!(
            known,
            oks + cut_present,
            "round {round}: the store holds clients nobody registered"
        );
        println!(
            "round {round}: killed after {kill_after} replies; {count:?}; {cut_present} cut by the kill were stored"
        );
        assert!(oks >= 30, "the kill came after at least 30 OKs");

        crnpd = Crnpd::start_in(&data, temp.path(), &args);
        assert_eq!(
            registry_of(&crnpd.clients()),
            on_disk,
            "round {round}: restarted crnpd serves the store"
        );
        before = on_disk;
        round += 1;
    }
    println!("{round} rounds in {:?}", started.elapsed());
}

/// Registers `n` clients over `threads` concurrent connections; returns (commits, requests
/// committed) from crnpd's commit-batch histogram.
fn concurrent_registrations(crnpd: &Crnpd, n: usize, threads: usize) -> (f64, f64) {
    let next = AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= n {
                        return;
                    }
                    let port = u16::try_from(9000 + i).expect("port");
                    assert_eq!(
                        crnpd.register(
                            ip(100 + (i % 20) as u8),
                            &reg("ADD_CLIENT", port, &membership())
                        ),
                        "OK"
                    );
                }
            });
        }
    });
    // One scrape for both: cursor reports keep committing in the background.
    let (_, text) = http(crnpd.http, "GET", "/metrics", None, None);
    (
        metric_sum(&text, "crnp_registry_commit_batch_size_count", &[]),
        metric_sum(&text, "crnp_registry_commit_batch_size_sum", &[]),
    )
}

#[test]
fn concurrent_registrations_share_commits_unless_the_batch_is_limited_to_one() {
    let grouped = Crnpd::start(&[]);
    let (commits, requests) = concurrent_registrations(&grouped, 400, 32);
    assert!(
        requests >= 400.0,
        "every registration went through a commit ({requests})"
    );
    assert!(
        commits < requests,
        "{commits} commits for {requests} requests: some were shared"
    );
    println!("group commit: {requests} requests in {commits} commits");

    let single = Crnpd::start(&["--max-commit-batch", "1"]);
    let (commits, requests) = concurrent_registrations(&single, 100, 16);
    assert!(requests >= 100.0);
    assert_eq!(
        commits, requests,
        "--max-commit-batch 1: one commit per request"
    );
}

// ---------------------------------------------------------------------------------------------
// Recovery and failover delivery

/// Three subscribers with distinct interests, registered after four events were published.
struct Scene {
    resource: Subscriber,
    members: Subscriber,
    everything: Subscriber,
}

const MEMBERSHIP_EVENT: (&str, &str) = ("EC_Cluster", "ESC_cluster_membership");
const R_STATE: (&str, &str) = ("EC_Cluster", "ESC_cluster_r_state");
const RG_STATE: (&str, &str) = ("EC_Cluster", "ESC_cluster_rg_state");

fn publish_ok(crnpd: &Crnpd, (class, subclass): (&str, &str), pairs: &[(&str, &str)]) {
    let (status, body) = crnpd.publish_json(&json_event(class, subclass, pairs));
    assert_eq!(status, 202, "publish: {body}");
}

/// (subclass, the value that tells the events apart) of a delivery.
fn describe(event: &str) -> (String, String) {
    let subclass = event
        .split("SUBCLASS=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap_or_default()
        .to_owned();
    let value = pair_value(event, "state_list")
        .or_else(|| pair_value(event, "node_list"))
        .unwrap_or_default();
    (subclass, value)
}

fn described(events: Vec<String>) -> Vec<(String, String)> {
    events.iter().map(|e| describe(e)).collect()
}

fn pair(subclass: &str, value: &str) -> (String, String) {
    (subclass.to_owned(), value.to_owned())
}

/// Publishes the history, registers the three subscribers, and takes the replay each gets.
fn set_scene(crnpd: &Crnpd, first_ip: u8) -> Scene {
    publish_ok(crnpd, MEMBERSHIP_EVENT, &[("node_list", "n1")]);
    publish_ok(
        crnpd,
        R_STATE,
        &[("r_name", "a"), ("state_list", "OFFLINE")],
    );
    publish_ok(crnpd, R_STATE, &[("r_name", "a"), ("state_list", "ONLINE")]);
    publish_ok(
        crnpd,
        RG_STATE,
        &[("rg_name", "g"), ("state_list", "PENDING_ONLINE")],
    );
    let scene = Scene {
        resource: Subscriber::listen(ip(first_ip)),
        members: Subscriber::listen(ip(first_ip + 1)),
        everything: Subscriber::listen(ip(first_ip + 2)),
    };
    let resource_types = format!("{}{}", r_state("a"), r_state("never-published"));
    let everything_types = event_type("EC_Cluster", None, &[]);
    for (sub, types) in [
        (&scene.resource, resource_types),
        (&scene.members, membership()),
        (&scene.everything, everything_types),
    ] {
        assert_eq!(
            crnpd.register(sub.addr.ip(), &reg("ADD_CLIENT", sub.port(), &types)),
            "OK"
        );
    }
    // The latest state on registration (spec §5.2); taken here so the restart's replay is distinct.
    scene.resource.take(1);
    scene.members.take(1);
    scene.everything.take(3);
    scene
}

/// Waits until every client's cursor is durable at the floor: each has received what it is
/// owed and a commit has said so.
fn wait_for_cursors_at_the_floor(crnpd: &Crnpd) {
    crnpd.wait_metric("crnp_cursor_write_batches_total", &[], |v| v >= 1.0);
    crnpd.wait_metric("crnp_cursor_rows", &[], |v| v == 0.0);
}

/// After a restart or takeover of a crnpd whose cursors were durable: no subscriber gets
/// again what it had received; each gets the newly published events, in order.
fn assert_nothing_again_then_new_events(crnpd: &Crnpd, scene: &Scene) {
    publish_ok(
        crnpd,
        R_STATE,
        &[("r_name", "a"), ("state_list", "STOPPING")],
    );
    publish_ok(crnpd, MEMBERSHIP_EVENT, &[("node_list", "n2")]);
    assert_eq!(
        described(scene.resource.take(1)),
        vec![pair("ESC_cluster_r_state", "STOPPING")]
    );
    assert_eq!(
        described(scene.members.take(1)),
        vec![pair("ESC_cluster_membership", "n2")]
    );
    assert_eq!(
        described(scene.everything.take(2)),
        vec![
            pair("ESC_cluster_r_state", "STOPPING"),
            pair("ESC_cluster_membership", "n2")
        ]
    );
    assert!(
        scene.resource.nothing_yet(),
        "no stale state after the new event"
    );
    assert!(scene.members.nothing_yet());
}

#[test]
fn after_kill9_and_restart_clients_whose_cursors_were_written_get_only_new_events() {
    let temp = tempfile::tempdir().expect("tempdir");
    let data = temp.path().join("data");
    let crnpd = Crnpd::start_in(&data, temp.path(), &[]);
    let scene = set_scene(&crnpd, 60);
    let registry = registry_of(&crnpd.clients());
    wait_for_cursors_at_the_floor(&crnpd);
    crnpd.kill9();

    let again = Crnpd::start_in(&data, temp.path(), &[]);
    assert_eq!(registry_of(&again.clients()), registry, "the same registry");
    assert_nothing_again_then_new_events(&again, &scene);
    let newcomer = Subscriber::listen(ip(63));
    assert_eq!(
        again.register(ip(63), &reg("ADD_CLIENT", newcomer.port(), &r_state("a"))),
        "OK"
    );
    assert_eq!(
        described(newcomer.take(1)),
        vec![pair("ESC_cluster_r_state", "STOPPING")]
    );
}

/// The latest states of `names` (r_state, one event each), published in this order.
fn publish_states(crnpd: &Crnpd, names: &[&str]) {
    for name in names {
        publish_ok(
            crnpd,
            R_STATE,
            &[("r_name", name), ("state_list", "ONLINE")],
        );
    }
}

/// The `r_name` of the next delivery the gate lets through.
fn next_r_name(gate: &Gate) -> String {
    pair_value(&gate.receive_next(), "r_name").expect("an r_state event")
}

#[test]
fn a_clean_stop_during_a_latest_state_replay_resends_only_the_states_not_yet_delivered() {
    let temp = tempfile::tempdir().expect("tempdir");
    let data = temp.path().join("data");
    let crnpd = Crnpd::start_in(&data, temp.path(), &[]);
    publish_states(&crnpd, &["a", "b", "c", "d", "e"]);
    let client = ip(64);
    let gate = Gate::listen(client);
    let class_wide = event_type("EC_Cluster", None, &[]);
    assert_eq!(
        crnpd.register(client, &reg("ADD_CLIENT", gate.port(), &class_wide)),
        "OK"
    );
    assert_eq!([next_r_name(&gate), next_r_name(&gate)], ["a", "b"]);
    // The attempt with c is under way when crnpd is told to stop; the client resets it.
    gate.await_attempt();
    signal(crnpd.pid(), libc::SIGTERM);
    gate.reset_next();
    assert!(crnpd.wait_exit().success());

    let again = Crnpd::start_in(&data, temp.path(), &[]);
    assert_eq!(
        [next_r_name(&gate), next_r_name(&gate), next_r_name(&gate)],
        ["c", "d", "e"],
        "the replay goes on where it stopped: a and b were delivered"
    );
    publish_states(&again, &["f"]);
    assert_eq!(
        next_r_name(&gate),
        "f",
        "and nothing else came before new events"
    );
}

#[test]
fn a_standby_takes_over_within_seconds_of_kill9_with_the_same_ports_and_registry() {
    let temp = tempfile::tempdir().expect("tempdir");
    let data = temp.path().join("data");
    let active = Crnpd::start_in(&data, temp.path(), &[]);
    let listen = active.listen.to_string();
    let standby_http = SocketAddr::new(ip(1), dead_port(ip(1)));
    let standby_http_arg = standby_http.to_string();
    let (standby, standby_log) = spawn(
        &data,
        temp.path(),
        &[
            "--standby",
            "--listen",
            &listen,
            "--http",
            &standby_http_arg,
        ],
    );
    wait_until(WAIT, "the standby's control plane answering", || {
        readyz(standby_http).is_some()
    });
    assert_eq!(
        readyz(standby_http),
        Some(503),
        "a waiting standby is not ready"
    );
    assert_eq!(
        readyz(active.http),
        Some(200),
        "the active instance is ready"
    );
    wait_until(WAIT, "the standby logging that it waits", || {
        std::fs::read_to_string(&standby_log)
            .unwrap_or_default()
            .contains("standby: waiting")
    });

    let scene = set_scene(&active, 70);
    let registry = registry_of(&active.clients());
    wait_for_cursors_at_the_floor(&active);
    assert_eq!(
        readyz(standby_http),
        Some(503),
        "still waiting while the active one serves"
    );
    let killed_at = Instant::now();
    active.kill9();
    // The bound is the suite's WAIT, not a performance figure: the take-over time is printed.
    let took = wait_until_explained(
        WAIT,
        "the standby becoming ready",
        || readyz(standby_http) == Some(200),
        || std::fs::read_to_string(&standby_log).unwrap_or_default(),
    );
    println!(
        "standby ready {took:?} after the kill -9 ({:?} measured from the kill)",
        killed_at.elapsed()
    );
    let standby = Crnpd::await_ready(standby, &data, standby_log);
    assert_eq!(standby.listen.to_string(), listen, "the same CRNP port");
    assert_eq!(standby.http, standby_http);
    assert!(standby.log().contains("standby: took over the store"));
    assert_eq!(
        registry_of(&standby.clients()),
        registry,
        "the same registry"
    );
    assert_nothing_again_then_new_events(&standby, &scene);
    assert_eq!(
        standby.register(ip(73), &reg("ADD_CLIENT", 7300, &membership())),
        "OK"
    );
}

// ---------------------------------------------------------------------------------------------
// Start-up errors

/// A store with two clients and one event, written by a crnpd that then stopped cleanly.
fn populated_store(data: &Path, log_dir: &Path) -> PathBuf {
    let crnpd = Crnpd::start_in(data, log_dir, &[]);
    assert_eq!(
        crnpd.register(ip(80), &reg("ADD_CLIENT", 8000, &membership())),
        "OK"
    );
    assert_eq!(
        crnpd.register(ip(81), &reg("ADD_CLIENT", 8001, &r_state("a"))),
        "OK"
    );
    publish_ok(&crnpd, MEMBERSHIP_EVENT, &[("node_list", "n1")]);
    assert!(crnpd.terminate().success());
    data.join("registry.redb")
}

#[test]
fn a_corrupt_store_is_a_clear_startup_error_never_a_panic_nor_an_empty_registry() {
    let temp = tempfile::tempdir().expect("tempdir");
    let good = populated_store(&temp.path().join("good"), temp.path());
    let healthy = std::fs::read(&good).expect("store bytes");
    let mut garbage = vec![0u8; 64 * 1024];
    let mut rng = Rng(0x5eed);
    garbage.iter_mut().for_each(|b| *b = rng.next() as u8);
    let mut overwritten = healthy.clone();
    // Past the 512-byte header, over the first pages the tables' roots live in.
    overwritten[512..12288].fill(0xAB);
    let damaged: [(&str, Vec<u8>); 5] = [
        ("empty", Vec::new()),
        ("random bytes", garbage),
        ("text", b"not a database\n".to_vec()),
        ("overwritten header pages", overwritten),
        ("truncated", healthy[..3000].to_vec()),
    ];
    for (what, bytes) in damaged {
        let data = temp.path().join(what.replace(' ', "-"));
        std::fs::create_dir_all(&data).expect("dir");
        let file = data.join("registry.redb");
        std::fs::write(&file, &bytes).expect("write damaged store");
        let (code, stderr) = start_fails(&data, temp.path());
        assert_clear_startup_error(code, &stderr, &file, &["corrupt"]);
        assert_eq!(
            std::fs::read(&file).expect("still there"),
            bytes,
            "{what}: the file is left as it was"
        );
        let check = store_command("check", &data);
        let said = String::from_utf8_lossy(&check.stderr);
        assert_clear_startup_error(check.status.code(), &said, &file, &["corrupt"]);
    }
}

#[test]
fn a_data_directory_or_store_owned_by_another_user_is_refused_at_startup_naming_the_owner() {
    assert!(
        is_root(),
        "this test needs root: only root can hand a directory to another user"
    );
    let temp = tempfile::tempdir().expect("tempdir");
    let nobody = 65534;
    let foreign_dir = temp.path().join("foreign-dir");
    std::fs::create_dir_all(&foreign_dir).expect("dir");
    std::os::unix::fs::chown(&foreign_dir, Some(nobody), Some(nobody)).expect("chown dir");
    let (code, stderr) = start_fails(&foreign_dir, temp.path());
    assert_clear_startup_error(code, &stderr, &foreign_dir, &["owned by uid 65534"]);
    assert!(
        !foreign_dir.join("registry.redb").exists(),
        "no store created"
    );

    let data = temp.path().join("foreign-file");
    let file = populated_store(&data, temp.path());
    std::os::unix::fs::chown(&file, Some(nobody), Some(nobody)).expect("chown store");
    let (code, stderr) = start_fails(&data, temp.path());
    assert_clear_startup_error(code, &stderr, &file, &["owned by uid 65534"]);
}

#[test]
fn an_unreadable_store_file_is_refused_at_startup_naming_its_mode() {
    use std::os::unix::fs::PermissionsExt;
    let temp = tempfile::tempdir().expect("tempdir");
    let data = temp.path().join("data");
    let file = populated_store(&data, temp.path());
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o000)).expect("chmod 000");
    // Root would read it anyway: the owner's permission bits are checked, not the open.
    let (code, stderr) = start_fails(&data, temp.path());
    assert_clear_startup_error(code, &stderr, &file, &["mode 000"]);
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).expect("chmod 600");
    let again = Crnpd::start_in(&data, temp.path(), &[]);
    assert_eq!(again.client_count(), 2, "nothing was lost");
}

/// An ADD_CLIENT of about 5 KB, so a 2 MiB disk fills within a few hundred of them.
fn bulky(port: u16) -> String {
    let types: String = (0..20)
        .map(|k| r_state(&format!("{port}-{k}-{}", "x".repeat(200))))
        .collect();
    reg("ADD_CLIENT", port, &types)
}

fn addresses(crnpd: &Crnpd) -> BTreeSet<String> {
    registry_of(&crnpd.clients()).into_keys().collect()
}

#[test]
fn a_full_disk_refuses_registrations_with_system_error_keeps_earlier_ones_and_recovers() {
    let temp = tempfile::tempdir().expect("tempdir");
    let mount_point = temp.path().join("small-disk");
    let mounted = mount_small_tmpfs(&mount_point, "2m")
        .unwrap_or_else(|reason| panic!("this test needs root to mount a small tmpfs: {reason}"));
    let data = mount_point.join("data");
    let crnpd = Crnpd::start_in(&data, temp.path(), &["--max-clients", "100000"]);
    let source = ip(90);
    let mut acknowledged = BTreeSet::new();
    let mut refused = None;
    for port in 10_000..12_000u16 {
        let reply = exchange(crnpd.listen, source, bulky(port).as_bytes());
        match status_of(&reply).as_str() {
            "OK" => {
                acknowledged.insert(SocketAddr::new(source, port).to_string());
            }
            "SYSTEM_ERROR" => {
                assert!(reply.contains("could not be made durable"), "{reply}");
                assert!(
                    reply.contains("registry.redb"),
                    "the reply names the store: {reply}"
                );
                refused = Some(SocketAddr::new(source, port).to_string());
                break;
            }
            other => panic!("unexpected {other}: {reply}"),
        }
    }
    let refused = refused.expect("the 2 MiB disk filled within 2,000 registrations");
    println!(
        "{} registrations fitted before the disk was full",
        acknowledged.len()
    );
    assert!(acknowledged.len() >= 10);
    assert!(
        crnpd.log().contains("No space left on device"),
        "the log names the cause"
    );

    // Still serving: ready, earlier registrations intact, the refused one absent.
    assert_eq!(readyz(crnpd.http), Some(200));
    assert_eq!(addresses(&crnpd), acknowledged);
    // Still full: registrations keep being refused. A few may fit first into the pages the
    // failed commit left free once the store is reopened (how many depends on the record
    // size); those are acknowledged, so they must be stored like any other.
    let mut port = 12_000u16;
    loop {
        match crnpd.register(source, &bulky(port)).as_str() {
            "OK" => {
                acknowledged.insert(SocketAddr::new(source, port).to_string());
            }
            "SYSTEM_ERROR" => break,
            other => panic!("unexpected {other} on a full disk"),
        }
        port += 1;
        assert!(
            port < 12_020,
            "the full disk accepted 20 more registrations"
        );
    }
    println!("{} more fitted after the reopen", port - 12_000);
    let (status, _) = crnpd.publish_json(&json_event(
        MEMBERSHIP_EVENT.0,
        MEMBERSHIP_EVENT.1,
        &[("node_list", "full")],
    ));
    let event_acknowledged = status == 202;
    assert!(
        event_acknowledged || status == 503,
        "publish answers 202 or 503, got {status}"
    );

    // Room again: registrations succeed without a restart.
    let remount = Command::new("mount")
        .args(["-o", "remount,size=64m"])
        .arg(&mount_point)
        .status()
        .expect("run mount");
    assert!(remount.success(), "remount larger");
    let port = port + 1;
    assert_eq!(
        crnpd.register(source, &bulky(port)),
        "OK",
        "writes resume once there is room"
    );
    acknowledged.insert(SocketAddr::new(source, port).to_string());

    crnpd.kill9();
    let exported = export(&data);
    let on_disk: BTreeSet<String> = registry_of(&exported["clients"]).into_keys().collect();
    assert_eq!(
        on_disk, acknowledged,
        "exactly the acknowledged registrations are durable"
    );
    assert!(!on_disk.contains(&refused));
    let event_stored = exported["latest"]
        .as_array()
        .expect("latest")
        .iter()
        .any(|e| e["event"]["nvpairs"][0]["value"] == "full");
    assert_eq!(
        event_stored, event_acknowledged,
        "a publish is acknowledged exactly when durable"
    );
    let again = Crnpd::start_in(&data, temp.path(), &[]);
    assert_eq!(addresses(&again), acknowledged);
    drop(again);
    drop(mounted);
}

// ---------------------------------------------------------------------------------------------
// The operator's store commands

#[test]
fn store_check_and_export_describe_a_stopped_store_as_json() {
    let temp = tempfile::tempdir().expect("tempdir");
    let data = temp.path().join("data");
    let file = populated_store(&data, temp.path());

    let check = store_command("check", &data);
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
    let said = String::from_utf8_lossy(&check.stdout);
    assert!(said.contains(&file.display().to_string()), "{said}");
    assert!(
        said.contains("ok (2 clients, 1 latest events, 1 log entries, next sequence 1)"),
        "{said}"
    );

    let json = export(&data);
    assert_eq!(json["next_seq"], 1);
    let clients = json["clients"].as_array().expect("clients");
    assert_eq!(clients.len(), 2);
    assert_eq!(
        clients[0]["address"], "127.0.0.80:8000",
        "sorted by address"
    );
    assert!(
        clients[0]["registered_at_ms"]
            .as_u64()
            .is_some_and(|ms| ms > 1_600_000_000_000)
    );
    assert_eq!(
        clients[0]["event_types"],
        serde_json::json!([{"class": "EC_Cluster", "subclass": "ESC_cluster_membership", "nvpairs": []}])
    );
    assert_eq!(
        clients[1]["event_types"],
        serde_json::json!([{
            "class": "EC_Cluster",
            "subclass": "ESC_cluster_r_state",
            "nvpairs": [{"name": "r_name", "value": "a"}]
        }])
    );
    assert_eq!(
        json["latest"],
        serde_json::json!([{
            "seq": 0,
            "event": {
                "class": "EC_Cluster",
                "subclass": "ESC_cluster_membership",
                "vendor": "SUNW",
                "publisher": "rgm",
                "nvpairs": [{"name": "node_list", "value": "n1"}]
            }
        }])
    );
    assert_eq!(
        json["log"], json["latest"],
        "the one event is retained in the log: its subscriber has not received it"
    );
    assert_eq!(json["cursor_floor"], 1);
    assert_eq!(
        json["cursors"],
        serde_json::json!([{"address": "127.0.0.80:8000", "from": 0, "states_from": null}]),
        "nobody listens at 8000, so its cursor is still before the event; the other client is at the floor"
    );
}

#[test]
fn store_commands_refuse_while_crnpd_holds_the_store() {
    let crnpd = Crnpd::start(&[]);
    assert_eq!(crnpd.register(ip(85), &reg("ADD_CLIENT", 8500, "")), "OK");
    let file = crnpd.data_dir.join("registry.redb");
    for action in ["check", "export"] {
        let output = store_command(action, &crnpd.data_dir);
        let said = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{action} refuses");
        assert!(
            said.contains(&file.display().to_string()),
            "{action}: {said}"
        );
        assert!(
            said.contains("held by another crnpd process"),
            "{action}: {said}"
        );
        assert!(
            output.stdout.is_empty(),
            "{action} prints no partial result"
        );
    }
    assert_eq!(
        crnpd.register(ip(85), &reg("ADD_CLIENT", 8501, "")),
        "OK",
        "crnpd is unaffected"
    );
}

#[test]
fn store_commands_refuse_a_missing_store_instead_of_creating_an_empty_one() {
    let temp = tempfile::tempdir().expect("tempdir");
    let data = temp.path().join("mistyped");
    for action in ["check", "export"] {
        let output = store_command(action, &data);
        let said = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{action} refuses");
        assert!(
            said.contains(&data.join("registry.redb").display().to_string()),
            "{action}: {said}"
        );
        assert!(said.contains("No such file"), "{action}: {said}");
    }
    assert!(!data.exists(), "nothing was created");
}

// ---------------------------------------------------------------------------------------------
// Upgrades: stores written by earlier versions

/// The tables exactly as earlier versions declared them (redb checks the key and value types).
const SLOT_CLIENTS: redb::TableDefinition<u64, &[u8]> =
    redb::TableDefinition::new("clients_by_slot");
const FIRST_LAYOUT_CLIENTS: redb::TableDefinition<&str, &[u8]> =
    redb::TableDefinition::new("clients");
const LATEST_TABLE: redb::TableDefinition<&str, (u64, &[u8])> =
    redb::TableDefinition::new("latest");
const META_TABLE: redb::TableDefinition<&str, u64> = redb::TableDefinition::new("meta");

/// A client record in the JSON form earlier versions stored; `address` is `None` in the first
/// layout, whose key was the address. `r_name` `None` is a membership registration.
fn json_record(address: Option<&str>, r_name: Option<&str>) -> String {
    let address = address.map_or(String::new(), |a| format!("\"address\":\"{a}\","));
    let event_type = match r_name {
        Some(name) => format!(
            "{{\"class\":\"EC_Cluster\",\"subclass\":\"ESC_cluster_r_state\",\"nvpairs\":[[\"r_name\",[\"{name}\"]]]}}"
        ),
        None => "{\"class\":\"EC_Cluster\",\"subclass\":\"ESC_cluster_membership\",\"nvpairs\":[]}"
            .to_owned(),
    };
    format!("{{{address}\"types\":[{event_type}],\"registered_at_ms\":1790000000000}}")
}

/// Writes `data/registry.redb` as an earlier crnpd left it: `slot_rows` in `clients_by_slot`
/// (the JSON records of versions up to the binary encoding), or `first_rows` in the first
/// layout's `clients` table, keyed by address; `next_seq` 3 in `meta`.
fn earlier_store(data: &Path, slot_rows: &[(u64, String)], first_rows: &[(&str, String)]) {
    std::fs::create_dir_all(data).expect("data dir");
    let db = redb::Database::create(data.join("registry.redb")).expect("create the store");
    let txn = db.begin_write().expect("write transaction");
    {
        if first_rows.is_empty() {
            let mut clients = txn.open_table(SLOT_CLIENTS).expect("clients_by_slot");
            for (slot, record) in slot_rows {
                clients
                    .insert(*slot, record.as_bytes())
                    .expect("insert client");
            }
        } else {
            let mut clients = txn.open_table(FIRST_LAYOUT_CLIENTS).expect("clients");
            for (address, record) in first_rows {
                clients
                    .insert(*address, record.as_bytes())
                    .expect("insert client");
            }
        }
        txn.open_table(LATEST_TABLE).expect("latest");
        let mut meta = txn.open_table(META_TABLE).expect("meta");
        meta.insert("next_seq", 3).expect("next_seq");
    }
    txn.commit().expect("commit");
}

/// The first byte of each stored client record, by slot, and whether the first layout's table
/// is still there; read from a store no process holds.
fn stored_layout(data: &Path) -> (BTreeMap<u64, u8>, bool) {
    use redb::{ReadableDatabase, ReadableTable};
    let db = redb::Database::open(data.join("registry.redb")).expect("open the store");
    let txn = db.begin_read().expect("read transaction");
    let clients = txn.open_table(SLOT_CLIENTS).expect("clients_by_slot");
    let first_bytes = clients
        .iter()
        .expect("iterate")
        .map(|row| {
            let (slot, record) = row.expect("row");
            (slot.value(), record.value()[0])
        })
        .collect();
    let first_layout = match txn.open_table(FIRST_LAYOUT_CLIENTS) {
        Ok(_) => true,
        Err(redb::TableError::TableDoesNotExist(_)) => false,
        Err(e) => panic!("reading the first layout's table: {e}"),
    };
    (first_bytes, first_layout)
}

fn expected(clients: &[(&str, Option<&str>)]) -> Registry {
    clients
        .iter()
        .map(|(address, r_name)| {
            let key = match r_name {
                Some(name) => type_key(
                    "EC_Cluster",
                    Some("ESC_cluster_r_state"),
                    &[("r_name", name)],
                ),
                None => type_key("EC_Cluster", Some("ESC_cluster_membership"), &[]),
            };
            ((*address).to_owned(), BTreeSet::from([key]))
        })
        .collect()
}

#[test]
fn a_store_of_json_records_keeps_every_client_and_changed_ones_are_rewritten_in_binary() {
    let temp = tempfile::tempdir().expect("tempdir");
    let data = temp.path().join("data");
    earlier_store(
        &data,
        &[
            (0, json_record(Some("127.0.0.90:9000"), Some("a"))),
            (1, json_record(Some("127.0.0.91:9001"), Some("b"))),
            (5, json_record(Some("127.0.0.92:9002"), None)),
        ],
        &[],
    );
    let crnpd = Crnpd::start_in(&data, temp.path(), &[]);
    assert_eq!(
        registry_of(&crnpd.clients()),
        expected(&[
            ("127.0.0.90:9000", Some("a")),
            ("127.0.0.91:9001", Some("b")),
            ("127.0.0.92:9002", None),
        ]),
        "every client of the old store is registered"
    );
    assert_eq!(
        crnpd.register(ip(91), &reg("ADD_EVENTS", 9001, &r_state("c"))),
        "OK"
    );
    assert_eq!(
        crnpd.register(ip(92), &reg("REMOVE_CLIENT", 9002, "")),
        "OK"
    );
    assert_eq!(
        crnpd.register(ip(93), &reg("ADD_CLIENT", 9003, &membership())),
        "OK"
    );
    crnpd.kill9();

    let mut now = expected(&[
        ("127.0.0.90:9000", Some("a")),
        ("127.0.0.91:9001", Some("b")),
        ("127.0.0.93:9003", None),
    ]);
    now.get_mut("127.0.0.91:9001")
        .expect("client b")
        .insert(type_key(
            "EC_Cluster",
            Some("ESC_cluster_r_state"),
            &[("r_name", "c")],
        ));
    let again = Crnpd::start_in(&data, temp.path(), &[]);
    assert_eq!(
        registry_of(&again.clients()),
        now,
        "after kill -9 and restart"
    );
    assert!(again.terminate().success());
    let json = export(&data);
    assert_eq!(registry_of(&json["clients"]), now, "store export");
    assert_eq!(json["next_seq"], 3);
    let (records, first_layout) = stored_layout(&data);
    assert!(!first_layout);
    assert_eq!(
        records,
        BTreeMap::from([(0, b'{'), (1, 1), (6, 1)]),
        "the untouched record stays JSON; the changed and the new one are binary (version 1)"
    );
}

/// The cursor tables before and since `states_from` (redb checks the key and value types).
const CURSORS_WITH_A_FLAG: redb::TableDefinition<u64, (u64, bool)> =
    redb::TableDefinition::new("cursors");
const CURSORS_BY_SLOT: redb::TableDefinition<u64, (u64, Option<u64>)> =
    redb::TableDefinition::new("cursors_by_slot");

/// Rewrites the cursor rows of a stopped store the way the version before `states_from` stored
/// them: (`from`, latest states pending) in table `cursors`.
fn rewrite_cursors_with_a_flag(data: &Path) {
    use redb::ReadableTable;
    let db = redb::Database::open(data.join("registry.redb")).expect("open the store");
    let txn = db.begin_write().expect("write transaction");
    {
        let rows: Vec<(u64, (u64, Option<u64>))> = txn
            .open_table(CURSORS_BY_SLOT)
            .expect("cursors_by_slot")
            .iter()
            .expect("iterate")
            .map(|row| {
                let (slot, value) = row.expect("row");
                (slot.value(), value.value())
            })
            .collect();
        assert!(!rows.is_empty(), "a cursor row to move");
        let mut old = txn.open_table(CURSORS_WITH_A_FLAG).expect("cursors");
        for (slot, (from, states_from)) in rows {
            old.insert(slot, (from, states_from.is_some()))
                .expect("insert cursor");
        }
    }
    txn.delete_table(CURSORS_BY_SLOT)
        .expect("drop cursors_by_slot");
    txn.commit().expect("commit");
}

#[test]
fn a_store_with_the_earlier_cursor_table_keeps_what_each_client_is_owed() {
    let temp = tempfile::tempdir().expect("tempdir");
    let data = temp.path().join("data");
    let crnpd = Crnpd::start_in(&data, temp.path(), &[]);
    publish_states(&crnpd, &["a", "b"]);
    // Nobody listens yet: the latest-state replay stays owed, and the stop writes it down.
    let absent = SocketAddr::new(ip(65), dead_port(ip(65)));
    assert_eq!(
        crnpd.register(
            absent.ip(),
            &reg("ADD_CLIENT", absent.port(), &r_state("a"))
        ),
        "OK"
    );
    assert_eq!(
        crnpd.register(
            absent.ip(),
            &reg("ADD_EVENTS", absent.port(), &r_state("b"))
        ),
        "OK"
    );
    assert!(crnpd.terminate().success());
    rewrite_cursors_with_a_flag(&data);

    let subscriber = Subscriber::listen_on(absent);
    let again = Crnpd::start_in(&data, temp.path(), &[]);
    assert!(
        again
            .log()
            .contains("moved the cursors of the earlier store layout"),
        "{}",
        again.log()
    );
    let names: Vec<Option<String>> = subscriber
        .take(2)
        .iter()
        .map(|e| pair_value(e, "r_name"))
        .collect();
    assert_eq!(
        names,
        [Some("a".to_owned()), Some("b".to_owned())],
        "the pending flag still means every latest state"
    );
    assert!(again.terminate().success());
    let db = redb::Database::open(data.join("registry.redb")).expect("open the store");
    let txn = redb::ReadableDatabase::begin_read(&db).expect("read transaction");
    assert!(
        matches!(
            txn.open_table(CURSORS_WITH_A_FLAG),
            Err(redb::TableError::TableDoesNotExist(_))
        ),
        "the earlier table is gone"
    );
}

#[test]
fn a_store_of_the_first_layout_moves_its_clients_to_the_slot_table_when_opened() {
    let temp = tempfile::tempdir().expect("tempdir");
    let data = temp.path().join("data");
    earlier_store(
        &data,
        &[],
        &[
            ("127.0.0.94:9004", json_record(None, Some("a"))),
            ("127.0.0.95:9005", json_record(None, None)),
        ],
    );
    let crnpd = Crnpd::start_in(&data, temp.path(), &[]);
    let old = expected(&[("127.0.0.94:9004", Some("a")), ("127.0.0.95:9005", None)]);
    assert_eq!(registry_of(&crnpd.clients()), old);
    assert_eq!(
        crnpd.register(ip(96), &reg("ADD_CLIENT", 9006, &r_state("b"))),
        "OK"
    );
    assert!(crnpd.terminate().success());

    let (records, first_layout) = stored_layout(&data);
    assert!(!first_layout, "the first layout's table is gone");
    assert_eq!(records.len(), 3, "{records:?}");
    let mut now = old;
    now.extend(expected(&[("127.0.0.96:9006", Some("b"))]));
    let again = Crnpd::start_in(&data, temp.path(), &[]);
    assert_eq!(registry_of(&again.clients()), now, "after a restart");
    assert!(again.terminate().success());
}
