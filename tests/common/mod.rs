//! The test harness: a real `crnpd` process on loopback with a real redb file, and the raw
//! protocol clients the tests speak to it with. Everything is bounded in time; ports are
//! picked by the kernel; only 127.0.0.0/8 addresses are used.
#![allow(dead_code, unreachable_pub)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use socket2::{Domain, Socket, Type};

/// Two attempts 0.2 s apart: a dead (refusing) client is removed within a second. Each attempt
/// may take 5 s, so a live subscriber on a loaded machine is never timed out and removed.
pub const QUICK_RETRIES: [&str; 6] = [
    "--client-retry-count",
    "2",
    "--client-retry-interval",
    "0.2",
    "--client-timeout",
    "5",
];

/// How long any single wait in a test may take before the test fails.
pub const WAIT: Duration = Duration::from_secs(30);

/// A running crnpd with its own data directory.
pub struct Crnpd {
    child: Child,
    pub listen: SocketAddr,
    pub http: SocketAddr,
    pub data_dir: PathBuf,
    pub log: PathBuf,
    _temp: Option<tempfile::TempDir>,
}

/// The crnpd binary under test.
pub fn crnpd_bin() -> &'static str {
    env!("CARGO_BIN_EXE_crnpd")
}

impl Crnpd {
    /// Starts crnpd on dynamic ports with a fresh data directory and `args` appended.
    pub fn start(args: &[&str]) -> Crnpd {
        let temp = tempfile::tempdir().expect("tempdir");
        let data_dir = temp.path().join("data");
        let mut crnpd = Crnpd::start_in(&data_dir, temp.path(), args);
        crnpd._temp = Some(temp);
        crnpd
    }

    /// Starts crnpd on `data_dir` (kept after the process ends), logging into `log_dir`.
    pub fn start_in(data_dir: &Path, log_dir: &Path, args: &[&str]) -> Crnpd {
        Crnpd::start_with_env(data_dir, log_dir, args, &[])
    }

    /// [`Crnpd::start_in`] with extra environment variables (e.g. `LD_PRELOAD`).
    pub fn start_with_env(
        data_dir: &Path,
        log_dir: &Path,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Crnpd {
        let (child, log) = spawn_with_env(data_dir, log_dir, args, env);
        Crnpd::await_ready(child, data_dir, log)
    }

    /// Waits for the ready line of a spawned crnpd.
    pub fn await_ready(mut child: Child, data_dir: &Path, log: PathBuf) -> Crnpd {
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            if let Some(Ok(line)) = lines.next() {
                let _ = tx.send(line);
            }
            for _ in lines {}
        });
        let line = match rx.recv_timeout(WAIT) {
            Ok(line) => line,
            Err(_) => {
                let _ = child.kill();
                panic!(
                    "crnpd did not become ready; log:\n{}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
            }
        };
        let field = |name: &str| -> SocketAddr {
            line.split_whitespace()
                .find_map(|part| part.strip_prefix(name))
                .and_then(|addr| addr.parse().ok())
                .unwrap_or_else(|| panic!("bad ready line {line:?}"))
        };
        Crnpd {
            listen: field("listen="),
            http: field("http="),
            child,
            data_dir: data_dir.to_owned(),
            log,
            _temp: None,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends SIGTERM and waits (bounded) for the exit status.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        signal(self.child.id(), libc::SIGTERM);
        wait_exit(&mut self.child)
    }

    /// Waits (bounded) for the exit status of a crnpd already told to stop.
    pub fn wait_exit(mut self) -> std::process::ExitStatus {
        wait_exit(&mut self.child)
    }

    /// SIGKILL, as a crash would.
    pub fn kill9(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// The log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Registers over the CRNP port from `source` and returns the reply's status code.
    pub fn register(&self, source: IpAddr, xml: &str) -> String {
        status_of(&exchange(self.listen, source, xml.as_bytes()))
    }

    /// Publishes JSON; returns the HTTP status and body.
    pub fn publish_json(&self, body: &str) -> (u16, String) {
        http(
            self.http,
            "POST",
            "/v1/events",
            Some(("application/json", body.as_bytes())),
            None,
        )
    }

    /// A metric's value summed over all label sets matching `labels` (e.g. `result="ok"`).
    pub fn metric(&self, name: &str, labels: &[&str]) -> f64 {
        let (_, text) = http(self.http, "GET", "/metrics", None, None);
        metric_sum(&text, name, labels)
    }

    /// Waits until `check` holds on a metric value.
    pub fn wait_metric(&self, name: &str, labels: &[&str], check: impl Fn(f64) -> bool) -> f64 {
        let deadline = Instant::now() + WAIT;
        loop {
            let value = self.metric(name, labels);
            if check(value) {
                return value;
            }
            assert!(
                Instant::now() < deadline,
                "metric {name}{labels:?} stayed at {value}; log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The registered clients as the admin API lists them.
    pub fn clients(&self) -> serde_json::Value {
        let (status, body) = http(self.http, "GET", "/v1/clients", None, None);
        assert_eq!(status, 200, "{body}");
        serde_json::from_str(&body).expect("clients JSON")
    }

    /// How many clients GET /v1/clients lists.
    pub fn client_count(&self) -> usize {
        self.clients().as_array().expect("a client array").len()
    }
}

impl Drop for Crnpd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Spawns crnpd without waiting; stdout is piped (the ready line), stderr goes to a log file.
pub fn spawn(data_dir: &Path, log_dir: &Path, args: &[&str]) -> (Child, PathBuf) {
    spawn_with_env(data_dir, log_dir, args, &[])
}

/// [`spawn`] with extra environment variables.
pub fn spawn_with_env(
    data_dir: &Path,
    log_dir: &Path,
    args: &[&str],
    env: &[(&str, &str)],
) -> (Child, PathBuf) {
    spawn_limited(data_dir, log_dir, args, env, None)
}

/// Starts crnpd with a fresh data directory under a descriptor limit (soft and hard), as
/// `prlimit --nofile=N:N` would.
pub fn start_with_nofile(args: &[&str], nofile: u64) -> Crnpd {
    let temp = tempfile::tempdir().expect("tempdir");
    let data_dir = temp.path().join("data");
    let (child, log) = spawn_limited(&data_dir, temp.path(), args, &[], Some(nofile));
    let mut crnpd = Crnpd::await_ready(child, &data_dir, log);
    crnpd._temp = Some(temp);
    crnpd
}

/// [`spawn_with_env`] with an optional descriptor limit for the child.
pub fn spawn_limited(
    data_dir: &Path,
    log_dir: &Path,
    args: &[&str],
    env: &[(&str, &str)],
    nofile: Option<u64>,
) -> (Child, PathBuf) {
    use std::os::unix::process::CommandExt;
    let log = log_dir.join(format!("crnpd-{}.log", unique()));
    let log_file = std::fs::File::create(&log).expect("log file");
    let defaults = [
        ("--listen", "127.0.0.1:0"),
        ("--http", "127.0.0.1:0"),
        ("--cores", "2"),
    ];
    let mut command = Command::new(crnpd_bin());
    if let Some(limit) = nofile {
        // SAFETY: the hook only makes the setrlimit system call, which is safe after fork.
        unsafe {
            command.pre_exec(move || crnp::budget::set_descriptor_limit(limit));
        }
    }
    let child = command
        .args(
            defaults
                .iter()
                .filter(|(flag, _)| !args.contains(flag))
                .flat_map(|(flag, value)| [*flag, *value]),
        )
        .arg("--data-dir")
        .arg(data_dir)
        .args(args)
        .env("CRNPD_LOG", "info")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(log_file))
        .spawn()
        .expect("spawn crnpd");
    (child, log)
}

fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

pub fn signal(pid: u32, signal: libc::c_int) {
    // SAFETY: kill(2) on our own child's pid.
    unsafe { libc::kill(pid as libc::pid_t, signal) };
}

pub fn wait_exit(child: &mut Child) -> std::process::ExitStatus {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return status;
        }
        assert!(Instant::now() < deadline, "crnpd did not exit");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A loopback address other than 127.0.0.1, so identity-by-source-IP is exercised.
pub fn ip(last: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, last))
}

/// A TCP connection from `source` (port chosen by the kernel).
pub fn connect_from(source: IpAddr, to: SocketAddr) -> TcpStream {
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None).expect("socket");
    socket
        .bind(&SocketAddr::new(source, 0).into())
        .expect("bind source");
    socket.connect_timeout(&to.into(), WAIT).expect("connect");
    let stream: TcpStream = socket.into();
    stream.set_read_timeout(Some(WAIT)).expect("timeout");
    stream
}

/// Writes `message` without half-closing (as CRNP clients do) and reads the reply to EOF.
pub fn exchange(server: SocketAddr, source: IpAddr, message: &[u8]) -> String {
    let mut stream = connect_from(source, server);
    stream.write_all(message).expect("write registration");
    read_to_end(&mut stream)
}

pub fn read_to_end(stream: &mut TcpStream) -> String {
    let mut reply = Vec::new();
    let _ = stream.read_to_end(&mut reply);
    String::from_utf8_lossy(&reply).into_owned()
}

/// The STATUS_CODE of an SC_REPLY text, or `NO_REPLY`.
pub fn status_of(reply: &str) -> String {
    reply
        .split("STATUS_CODE=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .map_or_else(|| "NO_REPLY".to_owned(), str::to_owned)
}

/// An SC_CALLBACK_REG document.
pub fn reg(form: &str, port: u16, types: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><SC_CALLBACK_REG VERSION=\"1.0\" PORT=\"{port}\" REG_TYPE=\"{form}\">{types}</SC_CALLBACK_REG>"
    )
}

/// An SC_EVENT_REG for a class and optional subclass and pairs.
pub fn event_type(class: &str, subclass: Option<&str>, pairs: &[(&str, &str)]) -> String {
    let sub = subclass
        .map(|s| format!(" SUBCLASS=\"{s}\""))
        .unwrap_or_default();
    let pairs: String = pairs
        .iter()
        .map(|(n, v)| format!("<NVPAIR><NAME>{n}</NAME><VALUE>{v}</VALUE></NVPAIR>"))
        .collect();
    format!("<SC_EVENT_REG CLASS=\"{class}\"{sub}>{pairs}</SC_EVENT_REG>")
}

/// A JSON event of class `class`/`subclass` with pairs.
pub fn json_event(class: &str, subclass: &str, pairs: &[(&str, &str)]) -> String {
    let pairs: Vec<String> = pairs
        .iter()
        .map(|(n, v)| format!("{{\"name\":\"{n}\",\"value\":\"{v}\"}}"))
        .collect();
    format!(
        "{{\"class\":\"{class}\",\"subclass\":\"{subclass}\",\"nvpairs\":[{}]}}",
        pairs.join(",")
    )
}

/// A minimal HTTP/1.1 request; returns status and body.
pub fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Option<(&str, &[u8])>,
    token: Option<&str>,
) -> (u16, String) {
    let mut stream = TcpStream::connect_timeout(&addr, WAIT).expect("connect http");
    stream.set_read_timeout(Some(WAIT)).expect("timeout");
    let mut request = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    if let Some(token) = token {
        request.push_str(&format!("Authorization: Bearer {token}\r\n"));
    }
    let payload = body.map_or(&[][..], |(_, bytes)| bytes);
    if let Some((content_type, bytes)) = body {
        request.push_str(&format!(
            "Content-Type: {content_type}\r\nContent-Length: {}\r\n",
            bytes.len()
        ));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).expect("write request");
    stream.write_all(payload).expect("write body");
    let response = read_to_end(&mut stream);
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = response.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    (status, dechunk(body))
}

fn dechunk(body: &str) -> String {
    // axum answers with Content-Length for these bodies; a chunked body is decoded here.
    let mut rest = body;
    let mut out = String::new();
    loop {
        let Some((size, after)) = rest.split_once("\r\n") else {
            return body.to_owned();
        };
        let Ok(size) = usize::from_str_radix(size.trim(), 16) else {
            return body.to_owned();
        };
        if size == 0 {
            return out;
        }
        if after.len() < size {
            return body.to_owned();
        }
        out.push_str(&after[..size]);
        rest = after[size..].trim_start_matches("\r\n");
    }
}

/// Sums a metric over the label sets that contain every one of `labels`.
pub fn metric_sum(text: &str, name: &str, labels: &[&str]) -> f64 {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let (metric, label_text) = series.split_once('{').unwrap_or((series, ""));
            (metric == name && labels.iter().all(|l| label_text.contains(l)))
                .then(|| value.parse::<f64>().ok())?
        })
        .sum()
}

/// A subscriber: a callback listener that records every SC_EVENT it receives, in order.
pub struct Subscriber {
    pub addr: SocketAddr,
    events: mpsc::Receiver<(SocketAddr, Vec<u8>)>,
}

impl Subscriber {
    /// Listens on `ip`:(kernel-chosen port) and accepts deliveries in a background thread.
    pub fn listen(ip: IpAddr) -> Subscriber {
        Subscriber::listen_on(SocketAddr::new(ip, 0))
    }

    /// Listens on `addr` and accepts deliveries in a background thread.
    pub fn listen_on(addr: SocketAddr) -> Subscriber {
        let listener = TcpListener::bind(addr).expect("bind subscriber");
        let addr = listener.local_addr().expect("addr");
        let (tx, events) = mpsc::channel();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                // A connection crnpd reset before it was accepted (an attempt past its
                // deadline) is no delivery: crnpd counts it as failed and tries again.
                let Ok(peer) = stream.peer_addr() else {
                    continue;
                };
                let _ = stream.set_read_timeout(Some(WAIT));
                let mut bytes = Vec::new();
                let _ = stream.read_to_end(&mut bytes);
                if tx.send((peer, bytes)).is_err() {
                    return;
                }
            }
        });
        Subscriber { addr, events }
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// The next delivery (source address and bytes), waiting at most [`WAIT`].
    pub fn next(&self) -> (SocketAddr, String) {
        let (peer, bytes) = self
            .events
            .recv_timeout(WAIT)
            .expect("an event arrives in time");
        (peer, String::from_utf8(bytes).expect("UTF-8 event"))
    }

    /// The next delivery, waiting at most `timeout` (for a delivery known to take longer than
    /// [`WAIT`], such as one waiting out a TIME_WAIT).
    pub fn next_within(&self, timeout: Duration) -> (SocketAddr, String) {
        let (peer, bytes) = self
            .events
            .recv_timeout(timeout)
            .unwrap_or_else(|_| panic!("an event arrives within {timeout:?}"));
        (peer, String::from_utf8(bytes).expect("UTF-8 event"))
    }

    /// The next `n` deliveries' bytes.
    pub fn take(&self, n: usize) -> Vec<String> {
        (0..n).map(|_| self.next().1).collect()
    }

    /// Nothing arrived so far (no waiting).
    pub fn nothing_yet(&self) -> bool {
        self.events.try_recv().is_err()
    }
}

/// A client whose deliveries fail only when the test says so. Each attempt of crnpd's waits,
/// connected, in the listen backlog until [`Gate::reset_next`] accepts and resets it or
/// [`Gate::receive_next`] reads it. A test can therefore look at the client between two failures
/// for as long as it needs, however loaded the machine: nothing is left to crnpd's retry timer
/// racing the test's polling. Give crnpd a `--client-timeout` longer than the test looks.
pub struct Gate {
    listener: TcpListener,
}

impl Gate {
    /// Listens on `ip`:(kernel-chosen port) and accepts nothing until told.
    pub fn listen(ip: IpAddr) -> Gate {
        Gate {
            listener: TcpListener::bind(SocketAddr::new(ip, 0)).expect("bind gate"),
        }
    }

    pub fn port(&self) -> u16 {
        self.listener.local_addr().expect("addr").port()
    }

    /// Waits at most [`WAIT`] for crnpd's next attempt and resets it (SO_LINGER 0), which crnpd
    /// counts as the client's failure with cause `reset`.
    pub fn reset_next(&self) {
        let stream = self.next_attempt();
        socket2::SockRef::from(&stream)
            .set_linger(Some(Duration::ZERO))
            .expect("SO_LINGER 0");
    }

    /// Waits at most [`WAIT`] for crnpd's next attempt and reads it to crnpd's close: a
    /// delivery.
    pub fn receive_next(&self) -> String {
        let mut stream = self.next_attempt();
        stream.set_read_timeout(Some(WAIT)).expect("read timeout");
        let mut bytes = Vec::new();
        stream.read_to_end(&mut bytes).expect("read the delivery");
        String::from_utf8(bytes).expect("UTF-8 event")
    }

    /// Waits at most [`WAIT`] until crnpd's next attempt is waiting, and leaves it there.
    pub fn await_attempt(&self) {
        let waited = i32::try_from(WAIT.as_millis()).expect("WAIT fits poll(2)");
        assert!(self.ready_within(waited), "crnpd attempts within {WAIT:?}");
    }

    /// No attempt is waiting (no waiting).
    pub fn nothing_waiting(&self) -> bool {
        !self.ready_within(0)
    }

    fn next_attempt(&self) -> TcpStream {
        self.await_attempt();
        self.listener.accept().expect("accept the attempt").0
    }

    /// Whether an attempt is ready to accept within `millis`.
    fn ready_within(&self, millis: i32) -> bool {
        use std::os::fd::AsRawFd;
        let mut ready = libc::pollfd {
            fd: self.listener.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd, owned by this frame, for the duration of the call.
        let rc = unsafe { libc::poll(&mut ready, 1, millis) };
        assert!(rc >= 0, "poll: {}", std::io::Error::last_os_error());
        rc == 1
    }
}

/// The value of the first VALUE of pair `name` in an SC_EVENT text.
pub fn pair_value(event: &str, name: &str) -> Option<String> {
    let after = event
        .split(&format!("<NAME><![CDATA[{name}]]></NAME><VALUE><![CDATA["))
        .nth(1)?;
    after.split("]]>").next().map(str::to_owned)
}

/// Moves the calling thread into a network namespace of its own, with loopback up and the
/// given `net.ipv4` sysctls (`("tcp_timestamps", "0")`). Everything the thread starts afterwards
/// (crnpd, subscriber threads, sockets) lives there; the namespace disappears with them, so
/// there is nothing to clean up. Needs root (CAP_SYS_ADMIN): fails, never skips, without it.
pub fn enter_private_netns(sysctls: &[(&str, &str)]) {
    // SAFETY: unshare(2) detaches only this thread's network namespace; it takes no pointers.
    let rc = unsafe { libc::unshare(libc::CLONE_NEWNET) };
    assert_eq!(
        rc,
        0,
        "this test needs root for a private network namespace (unshare(CLONE_NEWNET)): {}",
        std::io::Error::last_os_error()
    );
    let up = Command::new("ip")
        .args(["link", "set", "lo", "up"])
        .status()
        .expect("run ip");
    assert!(up.success(), "ip link set lo up");
    // /proc/sys/net shows the namespace of the thread that opens it: this one's.
    for (key, value) in sysctls {
        std::fs::write(format!("/proc/sys/net/ipv4/{key}"), value)
            .unwrap_or_else(|e| panic!("set net.ipv4.{key}={value} in the namespace: {e}"));
    }
}

/// Runs the OCF agent (tools/pacemaker/crnpd.ocf) as resource `instance`: its `action` with
/// `params` as its `OCF_RESKEY_*`; returns the exit code.
fn ocf_agent(instance: &str, action: &str, params: &[(&str, &str)]) -> i32 {
    let agent = Path::new(env!("CARGO_MANIFEST_DIR")).join("tools/pacemaker/crnpd.ocf");
    assert!(
        Path::new("/usr/lib/ocf/lib/heartbeat/ocf-shellfuncs").exists(),
        "the OCF agent needs resource-agents (scripts/install-test-deps)"
    );
    let mut command = Command::new("bash");
    command
        .arg(agent)
        .arg(action)
        .env("OCF_ROOT", "/usr/lib/ocf")
        .env("OCF_RESOURCE_INSTANCE", instance);
    for (name, value) in params {
        command.env(format!("OCF_RESKEY_{name}"), value);
    }
    let output = command.output().expect("run the OCF agent");
    output.status.code().unwrap_or(-1)
}

/// A crnpd resource the OCF agent runs as Pacemaker would: this build's binaries, a data
/// directory, pidfile and log under `dir`, and the test's own parameters.
pub struct OcfResource {
    instance: String,
    params: Vec<(String, String)>,
    logfile: PathBuf,
}

impl OcfResource {
    /// Resource `instance` with its files under `dir` and `params` besides.
    pub fn new(instance: &str, dir: &Path, params: &[(&str, &str)]) -> OcfResource {
        let path = |name: &str| dir.join(name).to_str().expect("utf8").to_owned();
        let logfile = dir.join("crnpd.log");
        let mut all = vec![
            ("binary".to_owned(), crnpd_bin().to_owned()),
            ("crnp".to_owned(), env!("CARGO_BIN_EXE_crnp").to_owned()),
            ("data_dir".to_owned(), path("data")),
            ("pidfile".to_owned(), path("crnpd.pid")),
            ("logfile".to_owned(), path("crnpd.log")),
        ];
        all.extend(
            params
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        );
        OcfResource {
            instance: instance.to_owned(),
            params: all,
            logfile,
        }
    }

    /// The same resource without parameter `name`.
    pub fn without(&self, name: &str) -> OcfResource {
        OcfResource {
            instance: self.instance.clone(),
            params: self
                .params
                .iter()
                .filter(|(key, _)| key != name)
                .cloned()
                .collect(),
            logfile: self.logfile.clone(),
        }
    }

    /// Runs `action` and asserts it exits with `code`; a failure shows `what` and crnpd's log.
    pub fn expect(&self, action: &str, code: i32, what: &str) {
        let params: Vec<(&str, &str)> = self
            .params
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let got = ocf_agent(&self.instance, action, &params);
        let log = std::fs::read_to_string(&self.logfile).unwrap_or_default();
        assert_eq!(got, code, "{action}: {what}\n{log}");
    }
}

/// A port nobody listens on (bound, read, released).
pub fn dead_port(ip: IpAddr) -> u16 {
    TcpListener::bind(SocketAddr::new(ip, 0))
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

pub fn is_root() -> bool {
    // SAFETY: geteuid(2) has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// Unmounts the small tmpfs when the test ends, however it ends.
pub struct Mounted(PathBuf);

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

pub fn mount_small_tmpfs(at: &Path, size: &str) -> Result<Mounted, String> {
    if !is_root() {
        return Err("not root".into());
    }
    std::fs::create_dir_all(at).map_err(|e| e.to_string())?;
    let output = Command::new("mount")
        .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
        .arg(at)
        .output()
        .map_err(|e| format!("cannot run mount: {e}"))?;
    if output.status.success() {
        Ok(Mounted(at.to_owned()))
    } else {
        Err(String::from_utf8_lossy(&output.stderr).trim().to_owned())
    }
}

/// A subscriber that records the `state_list` marker of every delivery, in arrival order, and
/// may take its time before reading each (a slow client).
pub struct Sink {
    pub addr: SocketAddr,
    received: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    held: std::sync::Arc<Hold>,
}

/// Whether a [`Sink`] reads deliveries yet: a held sink accepts and then waits, so crnpd's
/// attempt stays in flight (within `--client-timeout`) and the backlog stays queued.
#[derive(Default)]
struct Hold {
    held: std::sync::Mutex<bool>,
    released: std::sync::Condvar,
}

impl Hold {
    fn wait_released(&self) {
        let held = self.held.lock().expect("hold");
        let _released = self.released.wait_while(held, |held| *held).expect("hold");
    }
}

impl Sink {
    /// Listens on `ip`; reads each delivery after `delay` (0 for a fast subscriber).
    pub fn listen(ip: IpAddr, delay: Duration) -> Sink {
        Sink::listen_on(SocketAddr::new(ip, 0), delay)
    }

    pub fn listen_on(addr: SocketAddr, delay: Duration) -> Sink {
        Sink::start(addr, delay, false)
    }

    /// Like [`Sink::listen`], but reads nothing until [`Sink::release`]: a test can set things
    /// up (fill a disk) while the whole backlog is still owed, however long that takes.
    pub fn held(ip: IpAddr, delay: Duration) -> Sink {
        Sink::start(SocketAddr::new(ip, 0), delay, true)
    }

    /// A held sink starts reading.
    pub fn release(&self) {
        *self.held.held.lock().expect("hold") = false;
        self.held.released.notify_all();
    }

    fn start(addr: SocketAddr, delay: Duration, held: bool) -> Sink {
        let listener = TcpListener::bind(addr).expect("bind sink");
        let addr = listener.local_addr().expect("addr");
        let received = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let log = std::sync::Arc::clone(&received);
        let hold = std::sync::Arc::new(Hold {
            held: std::sync::Mutex::new(held),
            released: std::sync::Condvar::new(),
        });
        let holding = std::sync::Arc::clone(&hold);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                holding.wait_released();
                // The slow client's whole behaviour: it takes its time before reading.
                std::thread::sleep(delay);
                let _ = stream.set_read_timeout(Some(WAIT));
                let mut bytes = Vec::new();
                if stream.read_to_end(&mut bytes).is_err() || bytes.is_empty() {
                    continue;
                }
                let text = String::from_utf8_lossy(&bytes);
                let marker = pair_value(&text, "state_list").unwrap_or_default();
                log.lock().expect("sink log").push(marker);
            }
        });
        Sink {
            addr,
            received,
            held: hold,
        }
    }

    pub fn received(&self) -> Vec<String> {
        self.received.lock().expect("sink log").clone()
    }

    pub fn count(&self) -> usize {
        self.received.lock().expect("sink log").len()
    }
}
