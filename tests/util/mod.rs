//! Shared harness for the integration tests: a `Server` guard that runs the
//! real `ten serve` on a free port with its own temp data dir, a raw HTTP/1.1
//! client over std `TcpStream`, and helpers to run the `ten` CLI and curl.
//!
//! Every test that starts processes owns a guard; dropping it stops the
//! server (SIGTERM, then SIGKILL after 10 s), then checks that no process
//! that refers to the test's temp dir survived, kills any that did and fails
//! the test. Tests wait by polling against deadlines, never by sleeping and
//! then asserting.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

pub use serde_json::Value;

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_ten");

/// How long a server gets to print its address.
const START_DEADLINE: Duration = Duration::from_secs(10);
/// How long a server gets to exit after SIGTERM before SIGKILL.
const STOP_DEADLINE: Duration = Duration::from_secs(10);
/// Default deadline for "eventually" conditions (instance running, pid gone).
pub const DEADLINE: Duration = Duration::from_secs(20);

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// Absolute path of a file in `tests/fixtures/`.
pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("fixtures")
        .join(name)
}

/// `path` as a TOML basic string, quotes included.
pub fn toml_str(path: &Path) -> String {
    let s = path.to_str().expect("test paths are UTF-8");
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A `[settings]` table for a test server: domain `localhost`, a port range
/// of its own (tests run in parallel and each server hands out ports without
/// knowing about the others), then `extra` lines.
pub fn settings(extra: &str) -> String {
    let block = (std::process::id() as usize * 7 + COUNTER.fetch_add(1, Ordering::SeqCst)) % 450;
    // Below the kernel's ephemeral range (32768 and up), so a client socket
    // never holds a port an instance is about to bind.
    let low = 22_000 + block * 20;
    format!(
        "[settings]\ndomain = \"localhost\"\nport_range = [{low}, {}]\nhealth_check_interval = 2\n{extra}\n\n",
        low + 19
    )
}

/// A `[service.NAME]` table running a Python fixture, followed by `extra`
/// lines (e.g. `health = "/health"`).
pub fn py_service(name: &str, script: &str, extra: &str) -> String {
    format!(
        "[service.{name}]\ncommand = \"python3\"\nargs = [\"-u\", {}]\n{extra}\n",
        toml_str(&fixture(script))
    )
}

/// True when the external tools the tests drive are present. Otherwise prints
/// a loud skip; under `TEN_TEST_STRICT=1` (CI) a missing tool fails the test.
pub fn tools_present(tools: &[&str]) -> bool {
    for tool in tools {
        let found = Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .stdout(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        if !found {
            return skip(&format!("{tool} is not installed"));
        }
    }
    true
}

/// Skips the calling test loudly, saying `why`; returns false, so a test
/// starts `if !ok_to_run() { return; }`. Under `TEN_TEST_STRICT=1` (CI) a
/// skip fails the test instead.
pub fn skip(why: &str) -> bool {
    if std::env::var_os("TEN_TEST_STRICT").is_some_and(|v| v == "1") {
        panic!("TEN_TEST_STRICT=1 and the test would skip: {why}");
    }
    eprintln!("skip: {why}");
    false
}

/// True when the tests run as root; otherwise a loud `skip` saying what
/// needs root.
pub fn root_for(what: &str) -> bool {
    rustix::process::geteuid().is_root() || skip(&format!("{what} needs root"))
}

/// Polls `cond` every 25 ms until it holds or `deadline` passes. Returns
/// whether it held.
pub fn wait_until(deadline: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + deadline;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// The instance's own log file.
pub fn instance_log(server: &Server, service: &str, id: &str) -> String {
    let path = server
        .data_dir
        .join(".tenement")
        .join("logs")
        .join(service)
        .join(format!("{id}.log"));
    std::fs::read_to_string(path).unwrap_or_default()
}

/// Waits until every one of `needles` appears in the instance log, in
/// order; returns the log.
pub fn wait_log_in_order(server: &Server, service: &str, id: &str, needles: &[&str]) -> String {
    let mut text = String::new();
    let ok = wait_until(DEADLINE, || {
        text = instance_log(server, service, id);
        let mut at = 0;
        needles.iter().all(|n| match text[at..].find(n) {
            Some(i) => {
                at += i + n.len();
                true
            }
            None => false,
        })
    });
    assert!(
        ok,
        "{service}:{id} log lacks {needles:?} in order\n--- instance log ---\n{text}\n--- server log ---\n{}",
        server.log()
    );
    text
}

/// Output of a finished command, readable in a failure message.
pub fn describe(out: &Output) -> String {
    format!(
        "exit: {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Runs `ten` with exactly `args`, in `cwd`, with no `TENEMENT_*` variables
/// inherited from the environment running the tests.
pub fn ten_raw(cwd: &Path, args: &[&str]) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.args(args).current_dir(cwd).stdin(Stdio::null());
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("TENEMENT_") {
            cmd.env_remove(key);
        }
    }
    cmd.output().unwrap_or_else(|e| panic!("run {BIN}: {e}"))
}

/// Runs `curl -sS` with `args`.
pub fn curl(args: &[&str]) -> Output {
    Command::new("curl")
        .arg("-sS")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("run curl: {e}"))
}

/// Whether `pid` is a live process (a zombie counts as gone: it has exited and
/// only waits to be reaped by whoever inherited it).
pub fn pid_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            // The state letter follows the command name, which is in parens
            // and may itself contain spaces or parens: split at the last ')'.
            let state = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().next());
            !matches!(state, Some("Z") | Some("X") | None)
        }
        Err(_) => false,
    }
}

/// Sends `signal` (a name such as TERM or KILL) to `pid` with the shell's kill.
pub fn signal(pid: u32, signal: &str) {
    let _ = Command::new("sh")
        .args(["-c", &format!("kill -{signal} {pid} 2>/dev/null")])
        .status();
}

/// Live processes whose command line or environment mentions `needle`, as
/// (pid, command line). The test process itself is left out.
pub fn processes_mentioning(needle: &str) -> Vec<(u32, String)> {
    let me = std::process::id();
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return found;
    };
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        if pid == me || !pid_alive(pid) {
            continue;
        }
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
        let hit = |hay: &[u8]| hay.windows(needle.len()).any(|w| w == needle.as_bytes());
        if hit(&cmdline) || hit(&environ) {
            let shown = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            found.push((pid, shown.trim().to_string()));
        }
    }
    found
}

/// The temp-dir helper of the unit tests, so both kinds of test make their
/// folders one way.
#[path = "../../src/state/testdir.rs"]
mod testdir;
pub use testdir::TempDir;

/// A unique temp folder for one test, removed on drop after checking that no
/// process referring to it is still alive.
pub struct Scratch {
    pub root: PathBuf,
    /// Removes the folder when dropped, after `Scratch`'s own check.
    dir: TempDir,
}

impl Scratch {
    /// A fresh `TempDir`. The name is shortened so Unix socket paths under it
    /// stay within the 108-byte limit.
    pub fn new(name: &str) -> Scratch {
        let short: String = name
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .take(20)
            .collect();
        let dir = TempDir::new(&short);
        Scratch {
            root: dir.0.clone(),
            dir,
        }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }

    pub fn write(&self, rel: &str, text: &str) -> PathBuf {
        let path = self.root.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("create parent folder");
        }
        std::fs::write(&path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
        path
    }

    /// Kills survivors; returns them (empty when clean).
    fn reap_survivors(&self) -> Vec<(u32, String)> {
        // With the trailing slash, `.../ten-x-1-4/` never matches `.../ten-x-1-40/`.
        let needle = format!("{}/", self.root.to_str().expect("temp paths are UTF-8"));
        // A process signalled by the server may take a moment to die after the
        // server itself has gone: give survivors a bounded grace period.
        let mut left = Vec::new();
        wait_until(Duration::from_secs(3), || {
            left = processes_mentioning(&needle);
            left.is_empty()
        });
        for (pid, _) in &left {
            signal(*pid, "KILL");
        }
        left
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let left = self.reap_survivors();
        if !left.is_empty() && !std::thread::panicking() {
            let list: Vec<String> = left.iter().map(|(p, c)| format!("  {p} {c}")).collect();
            panic!(
                "processes outlived the test (killed now) in {}:\n{}",
                self.root.display(),
                list.join("\n")
            );
        }
    }
}

/// A running `ten serve` with its own data dir and config.
///
/// Layout: `{root}/tenement.toml` (the config) and `{root}/data` (the data
/// dir). Fields drop in order, so the `Scratch` check runs after the server
/// has been stopped.
pub struct Server {
    pub name: String,
    /// The address the server printed (`listening on http://...`).
    pub addr: SocketAddr,
    /// The HTTPS address it printed (`listening on https://...`), with
    /// `[settings.tls]`.
    pub https: Option<SocketAddr>,
    pub config: PathBuf,
    pub data_dir: PathBuf,
    /// The admin token minted before the server started.
    pub admin_token: String,
    child: Option<Child>,
    log: Arc<Mutex<String>>,
    /// Extra `ten serve` flags (e.g. `--domain`).
    serve_args: Vec<String>,
    /// A command `ten serve` runs under (e.g. `prlimit --nofile=N:N`).
    wrap: Vec<String>,
    /// Pass `--port 0 --bind 127.0.0.1` (else the config's `listen` holds).
    address_flags: bool,
    scratch: Scratch,
}

impl Server {
    /// Writes `config` as the config file, mints an admin token, starts
    /// `ten serve --port 0 --bind 127.0.0.1` and waits for its address.
    pub fn start(name: &str, config: &str) -> Server {
        Server::start_with(name, config, &[])
    }

    /// `start`, with extra `ten serve` flags.
    pub fn start_with(name: &str, config: &str, serve_args: &[&str]) -> Server {
        Server::start_wrapped(name, config, serve_args, &[])
    }

    /// `start_with`, running `ten serve` under `wrap` (a command that execs
    /// its arguments, so the server keeps the pid it was started with).
    pub fn start_wrapped(name: &str, config: &str, serve_args: &[&str], wrap: &[&str]) -> Server {
        Server::launch(name, config, serve_args, wrap, true, |_| {})
    }

    /// `start_wrapped`, running `prepare` on the empty data dir first (e.g.
    /// to mount a file system there).
    pub fn start_prepared(
        name: &str,
        config: &str,
        serve_args: &[&str],
        wrap: &[&str],
        prepare: impl FnOnce(&Path),
    ) -> Server {
        Server::launch(name, config, serve_args, wrap, true, prepare)
    }

    /// `start_wrapped` without `--port 0 --bind 127.0.0.1`: the config's
    /// `listen` decides, and a reload that changes it moves the server.
    pub fn start_unbound(name: &str, config: &str, wrap: &[&str]) -> Server {
        Server::launch(name, config, &[], wrap, false, |_| {})
    }

    fn launch(
        name: &str,
        config: &str,
        serve_args: &[&str],
        wrap: &[&str],
        address_flags: bool,
        prepare: impl FnOnce(&Path),
    ) -> Server {
        let scratch = Scratch::new(name);
        let config_path = scratch.write("tenement.toml", config);
        let data_dir = scratch.path("data");
        std::fs::create_dir_all(&data_dir).expect("create data dir");
        prepare(&data_dir);
        let mut server = Server {
            name: name.to_string(),
            addr: "127.0.0.1:0".parse().expect("literal address"),
            https: None,
            config: config_path,
            data_dir,
            admin_token: String::new(),
            child: None,
            log: Arc::new(Mutex::new(String::new())),
            serve_args: serve_args.iter().map(|s| s.to_string()).collect(),
            wrap: wrap.iter().map(|s| s.to_string()).collect(),
            address_flags,
            scratch,
        };
        server.admin_token = server.mint_token(None);
        server.serve();
        server
    }

    /// The pid of the running `ten serve`, if it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// The test's temp folder (holds the config and the data dir).
    pub fn root(&self) -> &Path {
        &self.scratch.root
    }

    /// Runs `ten token-gen` (with `--tenant` when given) and returns the token
    /// it printed on its own line indented by two spaces.
    pub fn mint_token(&self, tenant: Option<&str>) -> String {
        let mut args = vec!["token-gen"];
        if let Some(t) = tenant {
            args.extend(["--tenant", t]);
        }
        let out = self.ten(&args);
        assert!(
            out.status.success(),
            "ten token-gen failed\n{}",
            describe(&out)
        );
        let text = stdout(&out);
        text.lines()
            .filter(|l| l.starts_with("  "))
            .map(str::trim)
            .find(|l| l.starts_with("ten_"))
            .unwrap_or_else(|| panic!("no token line in token-gen output\n{}", describe(&out)))
            .to_string()
    }

    /// Starts `ten serve` on this guard's config and data dir and waits for
    /// the `listening on http://` line (10 s).
    fn serve(&mut self) {
        assert!(self.child.is_none(), "server already running");
        let mut cmd = match self.wrap.split_first() {
            Some((program, args)) => {
                let mut cmd = Command::new(program);
                cmd.args(args).arg(BIN);
                cmd
            }
            None => Command::new(BIN),
        };
        cmd.arg("serve")
            .arg("--config")
            .arg(&self.config)
            .arg("--data-dir")
            .arg(&self.data_dir)
            .args(match self.address_flags {
                true => &["--port", "0", "--bind", "127.0.0.1"][..],
                false => &[],
            })
            .args(&self.serve_args)
            .current_dir(&self.scratch.root)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("TENEMENT_") {
                cmd.env_remove(key);
            }
        }
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {BIN} serve: {e}"));
        let stderr = child.stderr.take().expect("stderr was piped");
        let stdout = child.stdout.take().expect("stdout was piped");
        self.child = Some(child);

        let (tx, rx) = mpsc::channel::<String>();
        let log = Arc::clone(&self.log);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                log.lock().expect("log lock").push_str(&format!("{line}\n"));
                let _ = tx.send(line);
            }
        });
        // stdout is drained too, so a chatty server never blocks on a full pipe.
        let log = Arc::clone(&self.log);
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                log.lock()
                    .expect("log lock")
                    .push_str(&format!("[stdout] {line}\n"));
            }
        });

        let end = Instant::now() + START_DEADLINE;
        loop {
            let left = end.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => {
                    // The HTTPS line comes first, when there is one.
                    if let Some(addr) = parse_listening_as("https", &line) {
                        self.https = Some(addr);
                    }
                    if let Some(addr) = parse_listening(&line) {
                        self.addr = addr;
                        return;
                    }
                }
                Err(_) => {
                    let status = self
                        .child
                        .as_mut()
                        .and_then(|c| c.try_wait().ok().flatten());
                    panic!(
                        "ten serve did not print `listening on http://` within {:?} (exit: {:?})\n--- server stderr ---\n{}",
                        START_DEADLINE,
                        status,
                        self.log()
                    );
                }
            }
        }
    }

    /// Everything the server printed so far.
    pub fn log(&self) -> String {
        self.log.lock().expect("log lock").clone()
    }

    /// SIGTERMs the server and waits for it to exit (it stops its instances
    /// first); panics if it is still running after the stop deadline. The
    /// data dir is kept.
    pub fn sigterm(&mut self) {
        if let Some(mut child) = self.child.take() {
            signal(child.id(), "TERM");
            let exited = wait_until(STOP_DEADLINE, || matches!(child.try_wait(), Ok(Some(_))));
            if !exited {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "ten serve did not exit within {STOP_DEADLINE:?} of SIGTERM\n--- server log ---\n{}",
                    self.log()
                );
            }
        }
        self.log
            .lock()
            .expect("log lock")
            .push_str("--- server stopped with SIGTERM ---\n");
    }

    /// SIGKILLs the server only (its instances are left as they are), as a
    /// crash would. The data dir is kept.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        self.log
            .lock()
            .expect("log lock")
            .push_str("--- server killed with SIGKILL ---\n");
    }

    /// Starts a new `ten serve` on the same config and data dir.
    pub fn serve_again(&mut self) {
        self.log
            .lock()
            .expect("log lock")
            .push_str("--- server started again ---\n");
        self.serve();
    }

    /// Stops the server with SIGTERM (as `systemctl stop` would), waits
    /// for it, and starts a new one on the same config and data dir.
    pub fn restart(&mut self) {
        if let Some(mut child) = self.child.take() {
            signal(child.id(), "TERM");
            let exited = wait_until(STOP_DEADLINE, || matches!(child.try_wait(), Ok(Some(_))));
            if !exited {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "ten serve did not exit within {STOP_DEADLINE:?} of SIGTERM\n--- server log ---\n{}",
                    self.log()
                );
            }
        }
        self.log
            .lock()
            .expect("log lock")
            .push_str("--- server stopped with SIGTERM, started again ---\n");
        self.serve();
    }

    /// Opens a Server-Sent Events stream (`GET path` on the API with
    /// `token`) and waits for the `: subscribed` greeting.
    pub fn events(&self, path: &str, token: Option<&str>) -> EventStream {
        let mut stream =
            TcpStream::connect(self.addr).unwrap_or_else(|e| panic!("connect {}: {e}", self.addr));
        stream
            .set_read_timeout(Some(Duration::from_millis(200)))
            .expect("set timeout");
        let auth = token
            .map(|t| format!("Authorization: Bearer {t}\r\n"))
            .unwrap_or_default();
        let req = format!("GET {path} HTTP/1.1\r\nHost: {}\r\n{auth}\r\n", self.addr);
        stream.write_all(req.as_bytes()).expect("write request");
        let mut es = EventStream {
            stream,
            text: String::new(),
        };
        assert!(
            es.wait_for(DEADLINE, |t| t.contains(": subscribed")),
            "no `: subscribed` on {path}; got:\n{}\n--- server log ---\n{}",
            es.text,
            self.log()
        );
        es
    }

    /// `http://ADDR`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Runs `ten --config C --data-dir D ARGS` (the CLI then talks to the
    /// server over `{data_dir}/.tenement/ten.sock`).
    pub fn ten(&self, args: &[&str]) -> Output {
        let config = self.config.to_str().expect("UTF-8 path");
        let data = self.data_dir.to_str().expect("UTF-8 path");
        let mut all = vec!["--config", config, "--data-dir", data];
        all.extend_from_slice(args);
        ten_raw(&self.scratch.root, &all)
    }

    /// Runs `ten --server http://ADDR --token TOKEN ARGS`: the CLI over TCP.
    pub fn ten_tcp(&self, token: &str, args: &[&str]) -> Output {
        let url = self.url();
        let mut all = vec!["--server", url.as_str(), "--token", token];
        all.extend_from_slice(args);
        ten_raw(&self.scratch.root, &all)
    }

    /// Runs `ten ARGS` through the unix socket and asserts it succeeded.
    pub fn ten_ok(&self, args: &[&str]) -> Output {
        let out = self.ten(args);
        assert!(
            out.status.success(),
            "ten {} failed\n{}\n--- server log ---\n{}",
            args.join(" "),
            describe(&out),
            self.log()
        );
        out
    }

    /// One request over a fresh TCP connection.
    pub fn http(
        &self,
        method: &str,
        host: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Resp {
        let mut conn = Conn::open(self.addr);
        conn.request(method, host, path, headers, body)
    }

    /// An API call with `token` (None: no Authorization). The Host is the
    /// server's IP address: an IP literal always reaches the API, whatever
    /// the routing rules say.
    pub fn api(&self, method: &str, path: &str, token: Option<&str>, body: Option<&Value>) -> Resp {
        let auth = token.map(|t| format!("Bearer {t}"));
        let mut headers: Vec<(&str, &str)> = Vec::new();
        if let Some(a) = &auth {
            headers.push(("Authorization", a));
        }
        let bytes = body.map(|b| b.to_string().into_bytes()).unwrap_or_default();
        if body.is_some() {
            headers.push(("Content-Type", "application/json"));
        }
        let host = self.addr.to_string();
        self.http(method, &host, path, &headers, &bytes)
    }

    /// `GET /api/instances` with the admin token.
    pub fn instances(&self) -> Vec<Value> {
        let resp = self.api(
            "GET",
            "/api/instances",
            Some(self.admin_token.as_str()),
            None,
        );
        assert_eq!(
            resp.status,
            200,
            "GET /api/instances\n{}\n--- server log ---\n{}",
            resp.text(),
            self.log()
        );
        match resp.json() {
            Value::Array(items) => items,
            other => panic!("GET /api/instances is not an array: {other}"),
        }
    }

    /// The instance object for `svc:id`, if listed.
    pub fn instance(&self, key: &str) -> Option<Value> {
        self.instances().into_iter().find(|i| i["instance"] == key)
    }

    /// Waits until `svc:id` is listed as running and returns its object.
    pub fn wait_running(&self, key: &str) -> Value {
        let mut last = None;
        let ok = wait_until(DEADLINE, || {
            last = self.instance(key);
            last.as_ref().is_some_and(|i| i["state"] == "running")
        });
        assert!(
            ok,
            "{key} not running within {DEADLINE:?}; last seen: {last:?}\n--- server log ---\n{}",
            self.log()
        );
        last.expect("checked above")
    }

    /// A GET to an echo backend through the proxy; returns its JSON report.
    pub fn echo(&self, host: &str, path: &str) -> Value {
        let resp = self.http("GET", host, path, &[], b"");
        assert_eq!(
            resp.status,
            200,
            "GET {path} Host {host}\n{}\n--- server log ---\n{}",
            resp.text(),
            self.log()
        );
        resp.json()
    }

    /// The data dir of one instance: `{data_dir}/{service}/{id}`.
    pub fn instance_dir(&self, service: &str, id: &str) -> PathBuf {
        self.data_dir.join(service).join(id)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            signal(child.id(), "TERM");
            let exited = wait_until(STOP_DEADLINE, || matches!(child.try_wait(), Ok(Some(_))));
            if !exited {
                let _ = child.kill();
                let _ = child.wait();
                if !std::thread::panicking() {
                    panic!(
                        "ten serve did not exit within {STOP_DEADLINE:?} of SIGTERM\n--- server log ---\n{}",
                        self.log()
                    );
                }
            }
        }
        if std::thread::panicking() {
            eprintln!("--- server log ({}) ---\n{}", self.name, self.log());
            self.print_instance_logs();
        }
    }
}

impl Server {
    /// Prints the tail of every instance log, to explain a failed test.
    fn print_instance_logs(&self) {
        let logs = self.data_dir.join(".tenement").join("logs");
        let Ok(services) = std::fs::read_dir(&logs) else {
            return;
        };
        for service in services.flatten() {
            let Ok(files) = std::fs::read_dir(service.path()) else {
                continue;
            };
            for file in files.flatten() {
                let text = std::fs::read_to_string(file.path()).unwrap_or_default();
                let lines: Vec<&str> = text.lines().collect();
                let tail = &lines[lines.len().saturating_sub(30)..];
                eprintln!(
                    "--- {} (last {} lines) ---\n{}",
                    file.path().display(),
                    tail.len(),
                    tail.join("\n")
                );
            }
        }
    }
}

/// Parses `... listening on http://127.0.0.1:PORT ...`.
pub fn parse_listening(line: &str) -> Option<SocketAddr> {
    parse_listening_as("http", line)
}

/// Parses `... listening on SCHEME://IP:PORT ...`.
pub fn parse_listening_as(scheme: &str, line: &str) -> Option<SocketAddr> {
    let marker = format!("listening on {scheme}://");
    let rest = &line[line.find(&marker)? + marker.len()..];
    let addr: String = rest.chars().take_while(|c| !c.is_whitespace()).collect();
    addr.trim_end_matches('/').parse().ok()
}

/// A parsed HTTP response.
#[derive(Debug, Clone)]
pub struct Resp {
    pub status: u16,
    /// In the order received, names as sent.
    pub headers: Vec<(String, String)>,
    /// Decoded body (chunked framing removed).
    pub body: Vec<u8>,
    /// Whether the body came chunked.
    pub chunked: bool,
}

impl Resp {
    /// The first header named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "response body is not JSON ({e}): status {} body {:?}",
                self.status,
                self.text()
            )
        })
    }
}

/// One client connection to the front; requests on it reuse the connection.
pub struct Conn {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Conn {
    pub fn open(addr: SocketAddr) -> Conn {
        let stream = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
        // A bound so a wedged server fails the test instead of hanging it.
        stream
            .set_read_timeout(Some(Duration::from_secs(60)))
            .expect("set timeout");
        let writer = stream.try_clone().expect("clone stream");
        Conn {
            reader: BufReader::new(stream),
            writer,
        }
    }

    /// Writes `bytes` exactly as given.
    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.writer.write_all(bytes).expect("write request");
        self.writer.flush().expect("flush request");
    }

    /// Sends one request with a Content-Length body (when `body` is not empty
    /// or the method usually carries one) and reads its response.
    pub fn request(
        &mut self,
        method: &str,
        host: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Resp {
        let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\n");
        for (k, v) in headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        let chunked = headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("transfer-encoding"));
        if !chunked && (!body.is_empty() || matches!(method, "POST" | "PUT" | "PATCH")) {
            req.push_str(&format!("Content-Length: {}\r\n", body.len()));
        }
        req.push_str("\r\n");
        let mut bytes = req.into_bytes();
        bytes.extend_from_slice(body);
        self.send_raw(&bytes);
        self.read_response(method == "HEAD")
    }

    /// Reads one response (skipping 1xx interim ones).
    pub fn read_response(&mut self, head_only: bool) -> Resp {
        loop {
            let (status, headers) = self.read_head();
            if (100..200).contains(&status) && status != 101 {
                continue;
            }
            let mut resp = Resp {
                status,
                headers,
                body: Vec::new(),
                chunked: false,
            };
            if head_only || status == 204 || status == 304 || (100..200).contains(&status) {
                return resp;
            }
            let te = resp
                .header("transfer-encoding")
                .map(|v| v.to_ascii_lowercase());
            if te
                .as_deref()
                .is_some_and(|v| v.trim_end().ends_with("chunked"))
            {
                resp.chunked = true;
                resp.body = self.read_chunked();
            } else if let Some(len) = resp.header("content-length") {
                let len: usize = len.trim().parse().expect("numeric Content-Length");
                let mut body = vec![0; len];
                self.reader.read_exact(&mut body).expect("read body");
                resp.body = body;
            } else {
                self.reader
                    .read_to_end(&mut resp.body)
                    .expect("read close-delimited body");
            }
            return resp;
        }
    }

    fn read_line(&mut self) -> String {
        let mut line = String::new();
        let n = self.reader.read_line(&mut line).expect("read line");
        assert!(n > 0, "connection closed in the middle of a response");
        line.trim_end_matches(['\r', '\n']).to_string()
    }

    fn read_head(&mut self) -> (u16, Vec<(String, String)>) {
        let status_line = self.read_line();
        let mut parts = status_line.splitn(3, ' ');
        let version = parts.next().unwrap_or_default();
        assert!(
            version.starts_with("HTTP/1."),
            "bad status line {status_line:?}"
        );
        let status: u16 = parts
            .next()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
        let mut headers = Vec::new();
        loop {
            let line = self.read_line();
            if line.is_empty() {
                return (status, headers);
            }
            let (k, v) = line
                .split_once(':')
                .unwrap_or_else(|| panic!("bad header line {line:?}"));
            headers.push((k.to_string(), v.trim().to_string()));
        }
    }

    fn read_chunked(&mut self) -> Vec<u8> {
        let mut body = Vec::new();
        loop {
            let line = self.read_line();
            let size = usize::from_str_radix(line.split(';').next().unwrap_or("").trim(), 16)
                .unwrap_or_else(|_| panic!("bad chunk size line {line:?}"));
            if size == 0 {
                // Trailers, up to the empty line.
                while !self.read_line().is_empty() {}
                return body;
            }
            let start = body.len();
            body.resize(start + size, 0);
            self.reader
                .read_exact(&mut body[start..])
                .expect("read chunk");
            let crlf = self.read_line();
            assert!(crlf.is_empty(), "chunk not followed by CRLF: {crlf:?}");
        }
    }
}

/// The value of header `name` in an echo report's `headers` list.
pub fn echoed_header(report: &Value, name: &str) -> Option<String> {
    report["headers"].as_array()?.iter().find_map(|pair| {
        let k = pair[0].as_str()?;
        k.eq_ignore_ascii_case(name)
            .then(|| pair[1].as_str().unwrap_or_default().to_string())
    })
}

/// Every value of header `name` in an echo report, in order.
pub fn echoed_headers(report: &Value, name: &str) -> Vec<String> {
    report["headers"]
        .as_array()
        .map(|pairs| {
            pairs
                .iter()
                .filter(|p| p[0].as_str().is_some_and(|k| k.eq_ignore_ascii_case(name)))
                .filter_map(|p| p[1].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// An open Server-Sent Events response. `text` is everything received so
/// far, chunk framing included (tests look for substrings of the JSON).
pub struct EventStream {
    stream: TcpStream,
    pub text: String,
}

impl EventStream {
    /// Reads until `cond(text)` holds or `deadline` passes; returns whether
    /// it held.
    pub fn wait_for(&mut self, deadline: Duration, mut cond: impl FnMut(&str) -> bool) -> bool {
        let end = Instant::now() + deadline;
        let mut buf = [0u8; 16 * 1024];
        loop {
            if cond(&self.text) {
                return true;
            }
            if Instant::now() >= end {
                return false;
            }
            match self.stream.read(&mut buf) {
                Ok(0) => return cond(&self.text),
                Ok(n) => self.text.push_str(&String::from_utf8_lossy(&buf[..n])),
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(e) => panic!("read event stream: {e}"),
            }
        }
    }
}
