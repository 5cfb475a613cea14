//! `ten serve` under a service manager: with `NOTIFY_SOCKET` set it speaks
//! sd_notify(3). A Unix datagram socket stands in for systemd, bound at a
//! path or at an abstract name, and the test reads what arrives: READY=1
//! once serving, STATUS= with instance counts, RELOADING=1 + MONOTONIC_USEC
//! then READY=1 around SIGHUP and `ten reload`, WATCHDOG=1 pings, and
//! STOPPING=1 at SIGTERM.

mod util;

use std::os::unix::net::UnixDatagram;
use std::time::{Duration, Instant};

use util::*;

/// The stand-in for systemd: every datagram received, in order.
struct Manager {
    socket: UnixDatagram,
    seen: Vec<String>,
}

impl Manager {
    fn new(socket: UnixDatagram) -> Manager {
        socket
            .set_read_timeout(Some(Duration::from_millis(100)))
            .expect("read timeout");
        Manager {
            socket,
            seen: Vec::new(),
        }
    }

    /// The index in `seen` of the first message that satisfies `pred`,
    /// reading more datagrams until one does; panics with everything seen
    /// after the deadline. Callers clear `seen` to look at new ones only.
    fn wait_for(&mut self, what: &str, pred: impl Fn(&str) -> bool) -> usize {
        if let Some(i) = self.seen.iter().position(|m| pred(m)) {
            return i;
        }
        let deadline = Instant::now() + DEADLINE;
        let mut buf = [0u8; 4096];
        while Instant::now() < deadline {
            match self.socket.recv(&mut buf) {
                Ok(n) => {
                    let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
                    self.seen.push(msg);
                    if pred(self.seen.last().expect("just pushed")) {
                        return self.seen.len() - 1;
                    }
                }
                Err(e)
                    if e.kind() == std::io::ErrorKind::WouldBlock
                        || e.kind() == std::io::ErrorKind::TimedOut => {}
                Err(e) => panic!("recv: {e}"),
            }
        }
        panic!("no {what} within {DEADLINE:?}; got {:#?}", self.seen)
    }

    /// `wait_for` a message equal to `msg`.
    fn wait_exact(&mut self, msg: &str) -> usize {
        self.wait_for(msg, |m| m == msg)
    }
}

fn config() -> String {
    format!(
        "{}{}[instances]\napi = [\"prod\"]\n",
        settings(""),
        py_service("api", "echo.py", "health = \"/health\"")
    )
}

/// Checks the whole conversation of one server's life.
fn conversation(name: &str, manager: UnixDatagram, notify_socket: &str) {
    let mut m = Manager::new(manager);
    let env_socket = format!("NOTIFY_SOCKET={notify_socket}");
    let mut server = Server::start_wrapped(
        name,
        &config(),
        &[],
        &["env", &env_socket, "WATCHDOG_USEC=400000"],
    );
    m.wait_exact("READY=1");
    // The restored instance was launched before READY; it becomes running.
    let instance = server.wait_running("api:prod");
    m.wait_exact("STATUS=1 running");

    // The watchdog pings while the loops and the supervisor are alive.
    m.seen.clear();
    m.wait_exact("WATCHDOG=1");
    m.seen.clear();
    m.wait_exact("WATCHDOG=1");

    // Instances never inherit the manager's variables.
    let pid = instance["pid"].as_u64().expect("instance pid");
    let environ = std::fs::read(format!("/proc/{pid}/environ")).expect("read environ");
    let environ = String::from_utf8_lossy(&environ);
    for var in ["NOTIFY_SOCKET=", "WATCHDOG_USEC=", "WATCHDOG_PID="] {
        assert!(
            !environ.split('\0').any(|kv| kv.starts_with(var)),
            "instance inherited {var}: {environ:?}"
        );
    }

    // SIGHUP: RELOADING=1 with the monotonic clock, then READY=1 again.
    m.seen.clear();
    signal(server.pid().expect("server runs"), "HUP");
    let reloading = m.wait_for("RELOADING=1", |msg| msg.starts_with("RELOADING=1\n"));
    let usec: u64 = m.seen[reloading]
        .strip_prefix("RELOADING=1\nMONOTONIC_USEC=")
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("MONOTONIC_USEC in {:?}", m.seen[reloading]));
    assert!(usec > 0);
    let again = m.wait_exact("READY=1");
    assert!(again > reloading, "{:#?}", m.seen);

    // `ten reload` (the API) does the same.
    m.seen.clear();
    server.ten_ok(&["reload"]);
    let reloading = m.wait_for("RELOADING=1", |msg| msg.starts_with("RELOADING=1\n"));
    let again = m.wait_exact("READY=1");
    assert!(again > reloading, "{:#?}", m.seen);

    // The counts follow the instances.
    server.ten_ok(&["spawn", "api:second"]);
    m.wait_exact("STATUS=2 running");

    // SIGTERM: STOPPING=1 before the instances are stopped.
    m.seen.clear();
    server.sigterm();
    m.wait_exact("STOPPING=1");
}

#[test]
fn sd_notify_on_a_path_socket() {
    if !tools_present(&["python3"]) {
        return;
    }
    let scratch = Scratch::new("notify_path");
    let path = scratch.path("notify.sock");
    let socket = UnixDatagram::bind(&path).expect("bind the notify socket");
    conversation("notify_path", socket, &path.display().to_string());
}

#[test]
fn sd_notify_on_an_abstract_socket() {
    use std::os::linux::net::SocketAddrExt;
    if !tools_present(&["python3"]) {
        return;
    }
    let name = format!("ten-test-notify-{}", std::process::id());
    let addr =
        std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).expect("abstract name");
    let socket = UnixDatagram::bind_addr(&addr).expect("bind the abstract socket");
    conversation("notify_abstract", socket, &format!("@{name}"));
}

#[test]
fn no_watchdog_pings_without_watchdog_usec_and_a_bad_socket_is_not_fatal() {
    let scratch = Scratch::new("notify_plain");
    let path = scratch.path("notify.sock");
    let socket = UnixDatagram::bind(&path).expect("bind the notify socket");
    let mut m = Manager::new(socket);
    let env_socket = format!("NOTIFY_SOCKET={}", path.display());
    let server = Server::start_wrapped("notify_plain", &settings(""), &[], &["env", &env_socket]);
    m.wait_exact("READY=1");
    m.wait_exact("STATUS=no instances");
    let mut all = m.seen.clone();
    // A reload round trip bounds the wait: anything the watchdog would have
    // sent in 3 reloads' time would be there.
    for _ in 0..3 {
        m.seen.clear();
        server.ten_ok(&["reload"]);
        m.wait_exact("READY=1");
        all.append(&mut m.seen);
    }
    assert!(!all.iter().any(|msg| msg == "WATCHDOG=1"), "{all:#?}");
    drop(server);

    // A relative NOTIFY_SOCKET is refused with a warning; the server runs.
    let server = Server::start_wrapped(
        "notify_bad",
        &settings(""),
        &[],
        &["env", "NOTIFY_SOCKET=not/absolute"],
    );
    assert!(
        server.log().contains("NOTIFY_SOCKET=not/absolute"),
        "{}",
        server.log()
    );
}
