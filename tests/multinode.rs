//! tenement as the node agent behind an edge proxy (issue 13): `ten export`
//! and the HAProxy example of examples/multi-node/.

mod util;

use std::path::Path;
use std::process::Command;

use util::*;

fn repo(rel: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

#[test]
fn export_prints_a_map_line_per_instance_and_served_service() {
    let config = format!(
        "{}{}{}",
        settings(""),
        py_service("web", "echo.py", ""),
        py_service("api", "echo.py", "")
    );
    let s = Server::start("multinode-export", &config);
    s.ten_ok(&["spawn", "web:alice"]);
    s.ten_ok(&["spawn", "web:bob", "--weight", "0"]);
    s.ten_ok(&["spawn", "api:v1", "--weight", "0"]);
    let out = s.ten_ok(&["export", "--haproxy-map", "--node", "node-a"]);
    // `api` has no instance with weight here: no `api.localhost` line.
    assert_eq!(
        stdout(&out),
        "v1.api.localhost node-a\n\
         alice.web.localhost node-a\n\
         bob.web.localhost node-a\n\
         web.localhost node-a\n"
    );
    // The same over TCP with the admin token, as JSON.
    let out = s.ten_tcp(&s.admin_token, &["export", "--json", "--node", "node-a"]);
    assert!(out.status.success(), "{}", describe(&out));
    let j: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(j["node"], "node-a");
    assert_eq!(j["domain"], "localhost");
    assert_eq!(j["entries"][1]["host"], "alice.web.localhost");
    assert_eq!(j["entries"][1]["instance"], "web:alice");
    // A tenant token may not read the map; a bad node name is a usage error.
    let alice = s.mint_token(Some("alice"));
    let out = s.ten_tcp(&alice, &["export"]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let out = s.ten(&["export", "--node", "a b"]);
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
}

#[test]
fn haproxy_accepts_the_example_config_and_map() {
    if !tools_present(&["haproxy"]) {
        return;
    }
    let scratch = Scratch::new("multinode-haproxy-check");
    let map = repo("examples/multi-node/tenement.map");
    let cfg = std::fs::read_to_string(repo("examples/multi-node/haproxy.cfg")).expect("example");
    assert!(cfg.contains("use_backend %[req.hdr(host),lower,map(/etc/haproxy/tenement.map)]"));
    assert!(cfg.contains("option httpchk GET /health"));
    assert!(cfg.contains("stats socket /run/haproxy/admin.sock"));
    // The same config with the map where this checkout has it.
    let cfg = cfg.replace("/etc/haproxy/tenement.map", map.to_str().expect("UTF-8"));
    let path = scratch.write("haproxy.cfg", &cfg);
    let out = Command::new("haproxy")
        .arg("-c")
        .arg("-f")
        .arg(&path)
        .output()
        .expect("run haproxy -c");
    assert!(
        out.status.success(),
        "haproxy -c refused the example\n{}",
        describe(&out)
    );
    // Every backend the map names exists in the config.
    let text = std::fs::read_to_string(&map).expect("map");
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let node = line.split_whitespace().nth(1).expect("HOST NODE");
        assert!(cfg.contains(&format!("backend {node}\n")), "{line}");
    }
}

// --- ten move behind a real HAProxy -------------------------------------

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// True as root; otherwise a loud skip (a failure under TEN_TEST_STRICT=1).
fn root_or_skip() -> bool {
    let root = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false);
    if !root {
        if std::env::var_os("TEN_TEST_STRICT").is_some_and(|v| v == "1") {
            panic!("TEN_TEST_STRICT=1 and the multi-node test needs root");
        }
        eprintln!("skip: the multi-node move test needs root");
    }
    root
}

/// A port free on `ip` now.
fn free_port(ip: &str) -> u16 {
    TcpListener::bind((ip, 0))
        .and_then(|l| l.local_addr())
        .unwrap_or_else(|e| panic!("bind {ip}:0: {e}"))
        .port()
}

/// One node: `ten serve` on its own loopback address, port, data dir and
/// port range, running the notes example.
fn node(name: &str, ip: &str) -> Server {
    let app = repo("examples/notes/app.py");
    let config = format!(
        "{}[service.notes]\ncommand = \"python3\"\nargs = [\"-u\", {}]\nhealth = \"/health\"\nstartup_timeout = 30\n",
        settings(""),
        toml_str(&app)
    );
    let port = free_port(ip).to_string();
    Server::start_with(name, &config, &["--bind", ip, "--port", &port])
}

/// HAProxy in the foreground on 127.0.0.1, killed on drop.
struct Haproxy {
    child: std::process::Child,
    addr: SocketAddr,
    socket: std::path::PathBuf,
    map: std::path::PathBuf,
    _scratch: Scratch,
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn haproxy(nodes: &[(&str, &Server)]) -> Haproxy {
    let scratch = Scratch::new("multinode-haproxy");
    let mut map = String::new();
    for (name, s) in nodes {
        map.push_str(&stdout(&s.ten_ok(&[
            "export",
            "--haproxy-map",
            "--node",
            name,
        ])));
    }
    let map_path = scratch.write("tenement.map", &map);
    let socket = scratch.path("admin.sock");
    let port = free_port("127.0.0.1");
    let mut cfg = format!(
        "global\n    stats socket {} mode 600 level admin\n\ndefaults\n    mode http\n    timeout connect 2s\n    timeout client 60s\n    timeout server 60s\n    retries 3\n\nfrontend tenants\n    bind 127.0.0.1:{port}\n    use_backend %[req.hdr(host),lower,map({})]\n    default_backend unknown_host\n\n",
        socket.display(),
        map_path.display()
    );
    for (name, s) in nodes {
        cfg.push_str(&format!(
            "backend {name}\n    option httpchk GET /health\n    http-check expect status 200\n    server {name} {} check inter 1s\n\n",
            s.addr
        ));
    }
    cfg.push_str("backend unknown_host\n    http-request deny deny_status 404\n");
    let cfg_path = scratch.write("haproxy.cfg", &cfg);
    let child = Command::new("haproxy")
        .arg("-db")
        .arg("-f")
        .arg(&cfg_path)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start haproxy");
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let h = Haproxy {
        child,
        addr,
        socket,
        map: map_path,
        _scratch: scratch,
    };
    assert!(
        wait_until(DEADLINE, || TcpStream::connect(addr).is_ok()
            && h.socket.exists()),
        "haproxy did not listen on {addr}"
    );
    h
}

/// One request on a fresh connection: (status, body), or why it failed.
fn request(
    addr: SocketAddr,
    method: &str,
    host: &str,
    path: &str,
    body: &str,
) -> Result<(u16, String), String> {
    let mut s =
        TcpStream::connect_timeout(&addr, Duration::from_secs(5)).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(60)))
        .map_err(|e| e.to_string())?;
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    s.read_to_end(&mut out).map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("no status line in {text:?}"))?;
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Ok((status, body))
}

/// The notes `host` has, read through `addr`.
fn notes(addr: SocketAddr, host: &str) -> Vec<String> {
    let (status, body) = request(addr, "GET", host, "/?format=json", "").expect("read notes");
    assert_eq!(status, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"));
    v["notes"]
        .as_array()
        .expect("notes")
        .iter()
        .map(|n| n["text"].as_str().expect("text").to_string())
        .collect()
}

/// What a client loop saw.
#[derive(Default)]
struct Seen {
    written: Vec<String>,
    failed: Vec<String>,
    longest: Duration,
}

/// Writes notes through `addr` until `stop` (at most `max` or 120 s).
fn client_loop(addr: SocketAddr, stop: Arc<AtomicBool>, seen: Arc<Mutex<Seen>>, max: usize) {
    let end = Instant::now() + Duration::from_secs(120);
    for n in 0..max {
        if stop.load(Ordering::SeqCst) || Instant::now() > end {
            break;
        }
        let text = format!("note-{n}");
        let t = Instant::now();
        let r = request(addr, "POST", "alice.notes.localhost", "/", &text);
        let took = t.elapsed();
        let mut s = seen.lock().unwrap();
        s.longest = s.longest.max(took);
        match r {
            Ok((201, _)) => s.written.push(text),
            Ok((status, body)) => s.failed.push(format!("{text}: {status} {body}")),
            Err(e) => s.failed.push(format!("{text}: {e}")),
        }
    }
}

/// `svc:id`'s object on a node, if it has it.
fn on(s: &Server, key: &str) -> Option<Value> {
    s.instance(key)
}

/// Runs (Some: has a process) on this node.
fn runs_on(s: &Server, key: &str) -> bool {
    on(s, key).is_some_and(|o| o["state"] == "running" && !o["pid"].is_null())
}

#[test]
fn move_under_load_through_haproxy_fails_no_request_and_survives_a_kill() {
    if !root_or_skip() || !tools_present(&["haproxy", "python3"]) {
        return;
    }
    let a = node("multinode-a", "127.0.0.2");
    let mut b = node("multinode-b", "127.0.0.3");
    let c = node("multinode-c", "127.0.0.4");
    a.ten_ok(&["spawn", "notes:alice", "--wait"]);
    let edge = haproxy(&[("node-a", &a), ("node-b", &b), ("node-c", &c)]);
    let host = "alice.notes.localhost";
    assert!(
        wait_until(DEADLINE, || request(edge.addr, "GET", host, "/health", "")
            .is_ok_and(|(s, _)| s == 200)),
        "alice not reachable through haproxy"
    );
    for n in 0..20 {
        let (status, body) = request(edge.addr, "POST", host, "/", &format!("before-{n}")).unwrap();
        assert_eq!(status, 201, "{body}");
    }

    // 1. Move A -> B under a client loop, flipping the edge map.
    let stop = Arc::new(AtomicBool::new(false));
    let seen = Arc::new(Mutex::new(Seen::default()));
    let loop_thread = {
        let (stop, seen, addr) = (stop.clone(), seen.clone(), edge.addr);
        std::thread::spawn(move || client_loop(addr, stop, seen, 5000))
    };
    assert!(wait_until(DEADLINE, || seen.lock().unwrap().written.len() >= 20));
    let sock = edge.socket.to_str().unwrap().to_string();
    let burl = b.url();
    let out = a.ten(&[
        "move",
        "notes:alice",
        "--to",
        &burl,
        "--to-token",
        &b.admin_token,
        "--to-node",
        "node-b",
        "--haproxy-socket",
        &sock,
    ]);
    assert!(
        out.status.success(),
        "ten move failed\n{}\n--- A ---\n{}\n--- B ---\n{}",
        describe(&out),
        a.log(),
        b.log()
    );
    let printed = stdout(&out);
    assert!(printed.contains("notes:alice: moved"), "{printed}");
    // Every step is in the instance's log at the source.
    let log = stdout(&a.ten_ok(&["logs", "notes:alice"]));
    for step in [
        "copying the data dir while it runs",
        "holding requests, stopping it",
        "copying what changed",
        "starting it there",
        "moved to",
        "edge flipped",
    ] {
        assert!(log.contains(step), "{step:?} not in the log\n{log}");
    }
    // Keep writing a little after the flip, then stop the loop.
    let after = seen.lock().unwrap().written.len();
    assert!(wait_until(DEADLINE, || seen.lock().unwrap().written.len()
        >= after + 20));
    stop.store(true, Ordering::SeqCst);
    loop_thread.join().unwrap();
    let seen = std::mem::take(&mut *seen.lock().unwrap());
    assert!(
        seen.failed.is_empty(),
        "failed requests during the move: {:?}",
        seen.failed
    );
    eprintln!(
        "move A->B: {} notes written during the move, longest request {:?}",
        seen.written.len(),
        seen.longest
    );
    // Every note is on B; A no longer runs it.
    let direct_b = notes(b.addr, host);
    for n in 0..20 {
        assert!(
            direct_b.contains(&format!("before-{n}")),
            "before-{n} missing on B"
        );
    }
    for text in &seen.written {
        assert!(direct_b.contains(text), "{text} missing on B");
    }
    assert!(runs_on(&b, "notes:alice"), "{:?}", on(&b, "notes:alice"));
    assert!(!runs_on(&a, "notes:alice"), "{:?}", on(&a, "notes:alice"));
    assert!(!runs_on(&c, "notes:alice"));
    let map = std::fs::read_to_string(&edge.map).unwrap();
    assert!(map.contains("alice.notes.localhost node-a"), "{map}");
    // The running map (not the file) sends alice to B now.
    let shown = {
        let mut s = std::os::unix::net::UnixStream::connect(&edge.socket).unwrap();
        s.write_all(format!("show map {}\n", edge.map.display()).as_bytes())
            .unwrap();
        let mut t = String::new();
        s.read_to_string(&mut t).unwrap();
        t
    };
    assert!(shown.contains("alice.notes.localhost node-b"), "{shown}");
    // `ten ps` on A shows where it went.
    let ps = stdout(&a.ten_ok(&["ps", "--all"]));
    assert!(ps.contains("moved->"), "{ps}");

    // 2. Move back B -> A, with B's server killed in the middle, restarted,
    // and the move run again.
    let big = b.instance_dir("notes", "alice").join("blob.bin");
    std::fs::write(&big, vec![7u8; 64 << 20]).unwrap();
    let before_kill = notes(b.addr, host);
    let aurl = a.url();
    let mover = {
        let (config, data) = (b.config.clone(), b.data_dir.clone());
        let (aurl, token) = (aurl.clone(), a.admin_token.clone());
        std::thread::spawn(move || {
            ten_raw(
                Path::new("/"),
                &[
                    "--config",
                    config.to_str().unwrap(),
                    "--data-dir",
                    data.to_str().unwrap(),
                    "move",
                    "notes:alice",
                    "--to",
                    &aurl,
                    "--to-token",
                    &token,
                ],
            )
        })
    };
    assert!(
        wait_until(DEADLINE, || on(&b, "notes:alice")
            .is_some_and(|o| !o["move"].is_null())),
        "the second move did not start\n{}",
        b.log()
    );
    let at_kill = on(&b, "notes:alice").map(|o| o["move"]["phase"].clone());
    b.kill9();
    let _ = mover.join();
    eprintln!("second move: B's server killed at phase {at_kill:?}");
    b.serve_again();
    let out = b.ten(&[
        "move",
        "notes:alice",
        "--to",
        &aurl,
        "--to-token",
        &a.admin_token,
        "--to-node",
        "node-a",
    ]);
    assert!(
        out.status.success(),
        "re-run of ten move failed\n{}\n--- A ---\n{}\n--- B ---\n{}",
        describe(&out),
        a.log(),
        b.log()
    );
    // Exactly one node runs it, with all its data.
    assert!(runs_on(&a, "notes:alice"), "{:?}", on(&a, "notes:alice"));
    assert!(!runs_on(&b, "notes:alice"), "{:?}", on(&b, "notes:alice"));
    assert!(!runs_on(&c, "notes:alice"));
    let on_a = notes(a.addr, host);
    for text in &before_kill {
        assert!(
            on_a.contains(text),
            "{text} missing on A after the second move"
        );
    }
    let blob = a.instance_dir("notes", "alice").join("blob.bin");
    assert_eq!(
        std::fs::metadata(&blob).map(|m| m.len()).ok(),
        Some(64 << 20)
    );
    // B forwards what still reaches it.
    assert_eq!(notes(b.addr, host), on_a);
}
