//! Traffic goes only to the instance: a process of another uid that listens
//! where an instance should (its TCP port while it sleeps, or its
//! `SOCKET_PATH`) receives not one byte; the start fails, the client gets a
//! plain error and the log names the squatter's pid. And an app whose
//! listener lives in a child process still passes the check.
//!
//! Needs root (to run the squatter as uid 65534 with setpriv); without it the
//! tests say so and skip, and fail under TEN_TEST_STRICT=1.

mod util;

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};

use util::*;

const NOBODY: u32 = 65534;
const PYTHON: &str = "/usr/bin/python3";

fn ready() -> bool {
    let root = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            let line = s.lines().find(|l| l.starts_with("Uid:"))?.to_string();
            Some(line.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false);
    let why = if !root {
        "the squat tests need root"
    } else if !std::path::Path::new(PYTHON).exists() {
        "the squat tests need /usr/bin/python3"
    } else {
        return tools_present(&["setpriv"]);
    };
    if std::env::var_os("TEN_TEST_STRICT").is_some_and(|v| v == "1") {
        panic!("TEN_TEST_STRICT=1 and {why}");
    }
    eprintln!("skip: {why}");
    false
}

/// A process of uid 65534 listening where it should not
/// (tests/fixtures/squatter.py), and what reached it.
struct Squatter {
    child: Child,
    pid: u32,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Squatter {
    fn start(kind: &str, at: &str) -> Squatter {
        let mut child = Command::new("setpriv")
            .args([
                &format!("--reuid={NOBODY}"),
                &format!("--regid={NOBODY}"),
                "--clear-groups",
                PYTHON,
                "-u",
            ])
            .arg(fixture("squatter.py"))
            .args([kind, at])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .expect("run setpriv");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let out = child.stdout.take().expect("piped");
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        let mut pid = None;
        let up = wait_until(DEADLINE, || {
            pid = lines.lock().unwrap().iter().find_map(|l| {
                let rest = l.strip_prefix("squatting pid ")?;
                let (pid, uid) = rest.split_once(" uid ")?;
                assert_eq!(uid, NOBODY.to_string(), "{l}");
                pid.parse::<u32>().ok()
            });
            pid.is_some() || matches!(child.try_wait(), Ok(Some(_)))
        });
        let Some(pid) = pid.filter(|_| up) else {
            let _ = child.kill();
            panic!("squatter did not start: {:?}", lines.lock().unwrap());
        };
        Squatter { child, pid, lines }
    }

    /// Bytes that reached it, over all its connections.
    fn bytes(&self) -> usize {
        self.lines
            .lock()
            .unwrap()
            .iter()
            .filter_map(|l| l.strip_prefix("bytes ")?.parse::<usize>().ok())
            .sum()
    }
}

impl Drop for Squatter {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn state(server: &Server, key: &str) -> String {
    server
        .instance(key)
        .map(|i| i["state"].as_str().unwrap_or("").to_string())
        .unwrap_or_default()
}

fn wait_state(server: &Server, key: &str, want: &str) {
    let ok = wait_until(DEADLINE, || state(server, key) == want);
    assert!(
        ok,
        "{key} not {want}: {:?}\n--- server log ---\n{}",
        server.instance(key),
        server.log()
    );
}

/// A server with service `svc` running `script` at the process level,
/// never restarted (so a failed start stays failed), and `svc:a` spawned.
fn started(name: &str, svc: &str, script: &str, extra: &str) -> Server {
    let lines = format!("isolation = \"process\"\nrestart = \"never\"\n{extra}");
    let config = format!("{}{}", settings(""), py_service(svc, script, &lines));
    let server = Server::start(name, &config);
    server.ten_ok(&["spawn", &format!("{svc}:a"), "--wait"]);
    server
}

/// The squat at `key` was refused: a request (which would wake or start
/// it) gets a plain 503 that says nothing about who squats, the log names
/// the squatter's pid, the instance is failed, and no byte reached the
/// squatter.
fn refused(server: &Server, key: &str, squatter: &Squatter) {
    let host = format!("a.{}.localhost", key.split(':').next().unwrap());
    let resp = server.http("GET", &host, "/", &[], b"secret-cookie");
    let body = resp.text();
    assert_eq!(
        resp.status,
        503,
        "{body}\n--- server log ---\n{}",
        server.log()
    );
    assert!(
        !body.contains(&squatter.pid.to_string()) && !body.contains("belongs to"),
        "the error tells a visitor who squats: {body}"
    );
    let line = format!("belongs to pid {} (uid {NOBODY})", squatter.pid);
    assert!(
        wait_until(DEADLINE, || server.log().contains(&line)),
        "no log line names pid {}\n--- server log ---\n{}",
        squatter.pid,
        server.log()
    );
    wait_state(server, key, "failed");
    assert_eq!(squatter.bytes(), 0, "{:?}", squatter.lines.lock().unwrap());
}

#[test]
fn a_squatter_on_a_sleeping_instance_port_gets_nothing() {
    if !ready() {
        return;
    }
    // No health path: without the check, a connect would be enough to
    // call the squatter ready and send it the request.
    let server = started("squat_tcp", "app", "echo.py", "idle_timeout = 1");
    let inst = server.instance("app:a").expect("listed");
    let port = inst["port"].as_u64().expect("port");
    let old = inst["pid"].as_u64().expect("pid") as u32;
    wait_state(&server, "app:a", "sleeping");
    assert!(wait_until(DEADLINE, || !pid_alive(old)), "old process gone");

    let squatter = Squatter::start("tcp", &port.to_string());
    refused(&server, "app:a", &squatter);

    // Once the port is free again, the instance comes back.
    drop(squatter);
    server.ten_ok(&["restart", "app:a"]);
    server.wait_running("app:a");
    let report = server.echo("a.app.localhost", "/");
    assert_eq!(report["env"]["PORT"], port.to_string());
}

#[test]
fn a_squatter_at_the_socket_path_gets_nothing() {
    if !ready() {
        return;
    }
    let server = started("squat_unix", "svc", "late_unix_app.py", "");
    let resp = server.http("GET", "a.svc.localhost", "/", &[], b"");
    assert_eq!(resp.text(), "late a", "{}", server.log());
    let socket = server.data_dir.join(".tenement/run/svc.a.sock");
    assert!(socket.exists(), "the app listens on {}", socket.display());

    // Another uid can neither replace it nor bind next to it: the socket
    // folder is inside {data_dir}/.tenement (0700).
    let mode = std::fs::metadata(server.data_dir.join(".tenement"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o700);
    let tries = Command::new("setpriv")
        .args([
            &format!("--reuid={NOBODY}"),
            &format!("--regid={NOBODY}"),
            "--clear-groups",
            PYTHON,
            "-c",
            "import os, socket, sys\n\
             for what, f in (('unlink', lambda: os.unlink(sys.argv[1])),\n\
                             ('bind', lambda: socket.socket(socket.AF_UNIX).bind(sys.argv[1] + '.x'))):\n\
             \x20   try:\n\
             \x20       f(); print(what, 'ok')\n\
             \x20   except PermissionError:\n\
             \x20       print(what, 'denied')\n",
        ])
        .arg(&socket)
        .output()
        .expect("run setpriv");
    assert_eq!(
        stdout(&tries),
        "unlink denied\nbind denied\n",
        "{}",
        describe(&tries)
    );

    // A squatter that can write there all the same (one running as
    // tenement's own uid) replaces it: it listens as uid 65534 in a folder
    // of its own, and its socket is linked in at SOCKET_PATH.
    let own = server.root().join("squat");
    std::fs::create_dir(&own).unwrap();
    std::fs::set_permissions(&own, std::fs::Permissions::from_mode(0o777)).unwrap();
    let squat_sock = own.join("s.sock");
    let squatter = Squatter::start("unix", squat_sock.to_str().unwrap());
    let replace = || {
        let _ = std::fs::remove_file(&socket);
        std::fs::hard_link(&squat_sock, &socket).expect("link the squatter's socket in");
    };
    replace();
    // A restart: tenement clears SOCKET_PATH before the start, the squatter
    // puts itself back before the app binds (the app then serves on its
    // port and leaves the squatter's socket alone).
    let restart = Command::new(BIN)
        .args(["--config", server.config.to_str().unwrap()])
        .args(["--data-dir", server.data_dir.to_str().unwrap()])
        .args(["restart", "svc:a"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("run ten restart");
    let cleared = wait_until(DEADLINE, || {
        std::fs::symlink_metadata(&socket).is_err()
            || !std::fs::metadata(&socket)
                .ok()
                .zip(std::fs::metadata(&squat_sock).ok())
                .is_some_and(|(a, b)| {
                    use std::os::unix::fs::MetadataExt;
                    a.ino() == b.ino()
                })
    });
    assert!(cleared, "the restart never cleared SOCKET_PATH");
    replace();
    let mut restart = restart;
    let _ = restart.wait();

    refused(&server, "svc:a", &squatter);
}

#[test]
fn a_listener_held_by_a_child_process_is_the_instance_own() {
    if !ready() {
        return;
    }
    let server = started("squat_child", "fork", "forked_server.py", "");
    let inst = server.wait_running("fork:a");
    let leader = inst["pid"].as_u64().expect("pid") as u32;
    let report = server.echo("a.fork.localhost", "/");
    // The child answered, not the process tenement started.
    assert_ne!(report["pid"].as_u64(), Some(u64::from(leader)), "{report}");
    assert!(!server.log().contains("belongs to"), "{}", server.log());
}
