//! The real supervisor thread with real processes: a hand-built `Config`, a
//! temp data dir, small Python backends, commands sent through a
//! `SupervisorHandle` and answered through a `ReplyTo` woken by a `mio::Poll`
//! owned by the test. Every test polls against a deadline; none sleeps and
//! then asserts.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::mpsc::{channel, Receiver};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use mio::{Events, Poll, Token, Waker};

use super::snapshot::Health;
use super::*;
use crate::config::{Config, RestartPolicy, Routing, Service, Settings};
use crate::isolate::procfs;
use crate::names::InstanceKey;
use crate::state::testdir::TempDir;
use crate::state::{Desired, Registry, RegistryEntry};
use crate::supervisor::reply::CommandError;

/// A backend on $PORT answering every GET with 200 `hello {INSTANCE_ID}`,
/// except `/health` while $DATA_DIR/sick exists (removed at start-up).
/// With GRANDCHILD set it first forks `sleep 1000` and writes its pid to
/// $DATA_DIR/grandchild.pid.
const BACKEND: &str = r#"
import http.server, os, subprocess, sys
if os.environ.get("GRANDCHILD"):
    p = subprocess.Popen(["sleep", "1000"])
    with open(os.path.join(os.environ["DATA_DIR"], "grandchild.pid"), "w") as f:
        f.write(str(p.pid))
sick = os.path.join(os.environ["DATA_DIR"], "sick")
if os.path.exists(sick):
    os.remove(sick)
print("booting", os.environ["INSTANCE_ID"], flush=True)
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/health" and os.path.exists(sick):
            self.send_response(500)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        body = ("hello " + os.environ["INSTANCE_ID"]).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
http.server.HTTPServer(("127.0.0.1", int(os.environ["PORT"])), H).serve_forever()
"#;

/// Prints a line and never listens.
const NEVER_READY: &str = "import time; print('still booting', flush=True); time.sleep(1000)";

static NEXT_PORTS: AtomicU16 = AtomicU16::new(0);

fn service(name: &str, argv: &[&str]) -> Service {
    let mut s = crate::isolate::env::tests::service(name, argv);
    s.startup_timeout = Duration::from_secs(20);
    s
}

fn python(name: &str, script: &str) -> Service {
    service(name, &["python3", "-c", script])
}

/// Ports each test's supervisor hands out, from `FIRST_PORT` up in blocks.
const BLOCK: u16 = 40;
const BLOCKS: u16 = 200;
const FIRST_PORT: u16 = 12_000;

/// The first port of a block of `BLOCK` ports that are all free right now
/// (nothing on the box has bound one: another test's instances, a
/// benchmark's), so tests running in parallel, and `tests/bench/scale.sh`'s
/// thousand instances meanwhile, never race for one. Blocks are tried from
/// one that the pid and a counter pick, so two test runs on one machine
/// rarely try the same first. Below the integration tests' ranges (22000
/// up) and the kernel's ephemeral ports (32768 up).
fn free_block() -> u16 {
    let start = (std::process::id() as usize * 7
        + NEXT_PORTS.fetch_add(1, Ordering::Relaxed) as usize)
        % BLOCKS as usize;
    (0..BLOCKS as usize)
        .map(|i| FIRST_PORT + BLOCK * ((start + i) % BLOCKS as usize) as u16)
        .find(|base| (*base..base + BLOCK).all(ports::bindable))
        .expect("a block of 40 free ports between 12000 and 19999")
}

fn config(dir: &Path, services: Vec<Service>) -> Config {
    let base = free_block();
    Config {
        overrides: Default::default(),
        path: dir.join("tenement.toml"),
        dir: dir.to_path_buf(),
        settings: Settings {
            data_dir: Some(dir.to_path_buf()),
            domain: "localhost".into(),
            listen: "127.0.0.1:0".parse().unwrap(),
            health_check_interval: Duration::from_secs(1),
            max_restarts: 3,
            restart_window: Duration::from_secs(300),
            backoff_base: Duration::from_millis(50),
            backoff_max: Duration::from_secs(1),
            port_range: (base, base + BLOCK - 1),
            stop_timeout: Duration::from_secs(5),
            workers: 1,
            metrics_public: false,
            log_max_bytes: 1 << 20,
            log_files: 2,
            uid_range: crate::config::bounds::UID_RANGE,
            tls: None,
            ..Settings::default()
        },
        services: services
            .into_iter()
            .map(|s| (s.name.to_string(), s))
            .collect::<BTreeMap<_, _>>(),
        instances: Vec::new(),
        routing: Routing::default(),
    }
}

fn key(service: &str, id: &str) -> InstanceKey {
    InstanceKey::new(service, id).expect("a valid test key")
}

/// A running supervisor and the test's own reply channel.
struct Harness {
    handle: SupervisorHandle,
    thread: Option<JoinHandle<Option<Handover>>>,
    published: Arc<Published>,
    poll: Poll,
    waker: Arc<Waker>,
    replies: Receiver<(usize, Reply)>,
    reply_tx: std::sync::mpsc::Sender<(usize, Reply)>,
    data_dir: PathBuf,
}

impl Harness {
    /// Spawns `key` (waiting until it is ready with `wait`): its JSON.
    fn spawn(&mut self, key: &InstanceKey, weight: Option<u8>, wait: bool) -> serde_json::Value {
        done(self.send(Command::Spawn {
            key: key.clone(),
            weight,
            wait,
        }))
    }

    fn start(config: Config, data_dir: &Path) -> Harness {
        Harness::start_handed(config, data_dir, None)
    }

    /// `start`, adopting what a previous supervisor handed over.
    fn start_handed(config: Config, data_dir: &Path, handed: Option<Handover>) -> Harness {
        let published = Arc::new(Published::default());
        let (handle, thread) = start(
            config,
            data_dir.to_path_buf(),
            published.clone(),
            None,
            handed,
            None,
        )
        .expect("supervisor starts");
        let poll = Poll::new().unwrap();
        let waker = Arc::new(Waker::new(poll.registry(), Token(0)).unwrap());
        let (reply_tx, replies) = channel();
        Harness {
            handle,
            thread: Some(thread),
            published,
            poll,
            waker,
            replies,
            reply_tx,
            data_dir: data_dir.into(),
        }
    }

    fn send(&mut self, cmd: Command) -> Reply {
        self.send_within(cmd, Duration::from_secs(30))
    }

    fn send_within(&mut self, cmd: Command, limit: Duration) -> Reply {
        let to = ReplyTo {
            tx: self.reply_tx.clone(),
            waker: self.waker.clone(),
            conn: 7,
        };
        assert!(self.handle.send(cmd.clone(), Some(to)));
        let deadline = Instant::now() + limit;
        let mut events = Events::with_capacity(4);
        loop {
            if let Ok((conn, reply)) = self.replies.try_recv() {
                assert_eq!(conn, 7);
                return reply;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(!left.is_zero(), "no reply to {cmd:?} within {limit:?}");
            self.poll.poll(&mut events, Some(left)).unwrap();
        }
    }

    fn view(&self, k: &InstanceKey) -> Option<InstanceView> {
        self.published.load().get(&k.service, &k.id).cloned()
    }

    /// Polls the published snapshot until `cond` holds.
    fn wait_for(&self, what: &str, mut cond: impl FnMut(&Snapshot) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !cond(&self.published.load()) {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn shutdown(&mut self) {
        if let Some(t) = self.thread.take() {
            let _ = self.send(Command::Shutdown);
            t.join().expect("supervisor thread ends");
        }
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            self.shutdown();
        } else if let Some(_t) = self.thread.take() {
            let _ = self.handle.send(Command::Shutdown, None);
        }
        let _ = &self.data_dir;
    }
}

fn http_get(addr: SocketAddr) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

fn done(r: Reply) -> serde_json::Value {
    match r {
        Reply::Done(d) => crate::front::api::reply::done_json(&d, std::time::SystemTime::now()),
        other => panic!("expected Done, got {other:?}"),
    }
}

fn gone(pid: u32) -> bool {
    procfs::stat(pid).is_none_or(|s| s.state == 'Z' || s.state == 'X')
}

#[test]
fn a_handed_over_instance_is_adopted_with_its_process() {
    let dir = TempDir::new("handover");
    let cfg = || config(&dir, vec![python("web", BACKEND)]);
    let mut h = Harness::start(cfg(), &dir);
    let k = key("web", "alice");
    h.spawn(&k, Some(40), true);
    let before = h.view(&k).expect("listed");
    let pid = before.pid.expect("runs");
    assert!(h.handle.send(Command::HandOver, None));
    let handed = h
        .thread
        .take()
        .expect("running")
        .join()
        .expect("supervisor thread ends")
        .expect("a hand-over, not a shutdown");
    assert!(!gone(pid), "handing over stopped the process");
    assert_eq!(handed.instances.len(), 1);

    let h = Harness::start_handed(cfg(), &dir, Some(handed));
    let after = h.view(&k).expect("still listed");
    assert_eq!(after.pid, Some(pid), "not restarted");
    assert_eq!((after.state, after.weight), (State::Running, 40));
    let resp = http_get(after.addr);
    assert!(resp.ends_with("hello alice"), "{resp}");
    let log = std::fs::read_to_string(dir.join(".tenement/logs/web/alice.log")).unwrap();
    assert!(log.contains(&format!("pid {pid} adopted")), "{log}");
    // Its exit is still seen: the adopted pidfd works.
    let _ = procfs::signal_group(pid, rustix::process::Signal::KILL);
    h.wait_for("a restart after the kill", |s| {
        s.get("web", "alice")
            .is_some_and(|v| v.pid.is_some_and(|p| p != pid))
    });
}

#[test]
fn spawn_then_await_ready_serves_http() {
    let dir = TempDir::new("spawn");
    let mut h = Harness::start(config(&dir, vec![python("web", BACKEND)]), &dir);
    let k = key("web", "alice");
    let v = h.spawn(&k, None, false);
    assert_eq!(v["instance"], "web:alice");
    assert_eq!(v["weight"], 100);
    assert!(v["pid"].as_u64().is_some(), "{v}");
    let addr = match h.send(Command::AwaitReady { key: k.clone() }) {
        Reply::Ready(addr) => addr,
        other => panic!("expected Ready, got {other:?}"),
    };
    let resp = http_get(addr);
    assert!(
        resp.starts_with("HTTP/1.0 200") || resp.starts_with("HTTP/1.1 200"),
        "{resp}"
    );
    assert!(resp.ends_with("hello alice"), "{resp}");

    let view = h.view(&k).unwrap();
    assert_eq!((view.state, view.health), (State::Running, Health::Healthy));
    let cgroup = view.meter.as_ref().and_then(|m| m.stats().memory_bytes);
    assert!(cgroup.or(view.stats.memory()).unwrap_or(0) > 0);
    assert!(h.published.load().services.contains_key("web"));
    assert!(dir.join("web/alice").is_dir());

    match h.send(Command::Spawn {
        key: k.clone(),
        weight: None,
        wait: false,
    }) {
        Reply::Error(CommandError::Exists(_)) => {}
        other => panic!("expected 409, got {other:?}"),
    }
    let log = std::fs::read_to_string(dir.join(".tenement/logs/web/alice.log")).unwrap();
    assert!(log.contains(" ten spawned pid "), "{log}");
    assert!(log.contains(" stdout booting alice"), "{log}");
    assert!(log.contains(" ten ready after "), "{log}");
    h.shutdown();
}

#[test]
fn missing_program_is_a_400_naming_it() {
    let dir = TempDir::new("noexec");
    let mut h = Harness::start(
        config(
            &dir,
            vec![service("broken", &["/nonexistent/app-xyz", "--flag"])],
        ),
        &dir,
    );
    match h.send(Command::Spawn {
        key: key("broken", "a"),
        weight: None,
        wait: true,
    }) {
        Reply::Error(CommandError::SpawnFailed(message)) => {
            assert!(message.contains("/nonexistent/app-xyz"), "{message}")
        }
        other => panic!("expected 400, got {other:?}"),
    }
    assert!(h.view(&key("broken", "a")).is_none());
    match h.send(Command::Spawn {
        key: key("nosuch", "a"),
        weight: None,
        wait: false,
    }) {
        Reply::Error(e @ CommandError::UnknownService(_)) => {
            assert!(e.to_string().contains("nosuch"), "{e}")
        }
        other => panic!("expected 400, got {other:?}"),
    }
    h.shutdown();
}

#[test]
fn killed_child_is_restarted_with_a_new_pid() {
    let dir = TempDir::new("restart");
    let mut h = Harness::start(config(&dir, vec![python("web", BACKEND)]), &dir);
    let k = key("web", "a");
    h.spawn(&k, None, true);
    let old = h.view(&k).unwrap().pid.unwrap();
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(old as i32).unwrap(),
        rustix::process::Signal::KILL,
    )
    .unwrap();
    h.wait_for("a new running process", |s| {
        s.get("web", "a")
            .is_some_and(|v| v.state == State::Running && v.pid.is_some_and(|p| p != old))
    });
    assert_eq!(h.view(&k).unwrap().restarts, 1);
    assert!(matches!(
        h.send(Command::AwaitReady { key: k.clone() }),
        Reply::Ready(_)
    ));
    let log = std::fs::read_to_string(dir.join(".tenement/logs/web/a.log")).unwrap();
    assert!(
        log.contains("ten killed by signal 9, restarting in 50ms"),
        "{log}"
    );
    h.shutdown();
}

#[test]
fn stop_kills_a_forked_grandchild() {
    let dir = TempDir::new("grandchild");
    let mut svc = python("web", BACKEND);
    svc.env_clear = false;
    let mut cfg = config(&dir, vec![svc]);
    // The grandchild switch travels in the inherited environment.
    cfg.services.get_mut("web").unwrap().argv = vec![
        "env".into(),
        "GRANDCHILD=1".into(),
        "python3".into(),
        "-c".into(),
        BACKEND.into(),
    ];
    let mut h = Harness::start(cfg, &dir);
    let k = key("web", "g");
    h.spawn(&k, None, true);
    let pid = h.view(&k).unwrap().pid.unwrap();
    let grandchild: u32 = std::fs::read_to_string(dir.join("web/g/grandchild.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(!gone(grandchild));
    let v = done(h.send(Command::Stop { key: k.clone() }));
    assert_eq!(v["stopped"], "web:g");
    assert!(gone(pid), "leader {pid} still alive");
    assert!(gone(grandchild), "grandchild {grandchild} still alive");
    assert!(h.view(&k).is_none());
    // storage_persist defaults to true: the data survives a stop.
    assert!(dir.join("web/g/grandchild.pid").exists());
    match h.send(Command::Stop { key: k }) {
        Reply::Error(CommandError::UnknownInstance(_)) => {}
        other => panic!("expected 404, got {other:?}"),
    }
    h.shutdown();
}

#[test]
fn stop_without_storage_persist_deletes_the_data_dir() {
    let dir = TempDir::new("nopersist");
    let mut svc = python("tmp", BACKEND);
    svc.storage_persist = false;
    let mut h = Harness::start(config(&dir, vec![svc]), &dir);
    let k = key("tmp", "x");
    h.spawn(&k, None, false);
    assert!(dir.join("tmp/x").is_dir());
    done(h.send(Command::Stop { key: k }));
    assert!(!dir.join("tmp/x").exists());
    h.shutdown();
}

#[test]
fn spawn_wait_times_out_with_the_last_output() {
    let dir = TempDir::new("timeout");
    let mut svc = python("slow", NEVER_READY);
    svc.startup_timeout = Duration::from_secs(3);
    svc.restart = RestartPolicy::Never;
    let mut h = Harness::start(config(&dir, vec![svc]), &dir);
    match h.send(Command::Spawn {
        key: key("slow", "a"),
        weight: None,
        wait: true,
    }) {
        Reply::Error(e @ CommandError::TimedOut { .. }) => {
            assert!(e.to_string().contains("still booting"), "{e}")
        }
        other => panic!("expected 504, got {other:?}"),
    }
    // Not ready in time under restart = never: killed and failed.
    h.wait_for("failed", |s| {
        s.get("slow", "a").is_some_and(|v| v.state == State::Failed)
    });
    match h.send(Command::AwaitReady {
        key: key("slow", "a"),
    }) {
        Reply::Error(CommandError::Failed { .. }) => {}
        other => panic!("expected 503, got {other:?}"),
    }
    h.shutdown();
}

#[test]
fn max_instances_caps_a_service() {
    let dir = TempDir::new("cap");
    let mut svc = python("web", BACKEND);
    svc.max_instances = 1;
    let mut h = Harness::start(config(&dir, vec![svc]), &dir);
    h.spawn(&key("web", "a"), None, false);
    match h.send(Command::Spawn {
        key: key("web", "b"),
        weight: None,
        wait: false,
    }) {
        Reply::Error(e @ CommandError::MaxInstances { .. }) => {
            assert!(e.to_string().contains("max_instances reached"), "{e}")
        }
        other => panic!("expected 409, got {other:?}"),
    }
    h.shutdown();
}

#[test]
fn health_path_weight_route_and_deploy() {
    let dir = TempDir::new("deploy");
    let mut svc = python("api", BACKEND);
    svc.health = Some("/health".into());
    let mut h = Harness::start(config(&dir, vec![svc]), &dir);
    let (blue, green) = (key("api", "blue"), key("api", "green"));
    h.spawn(&blue, Some(100), true);
    let v = done(h.send(Command::Deploy {
        key: green.clone(),
        weight: 30,
        timeout: Duration::from_secs(20),
    }));
    assert_eq!(
        (
            v["state"].as_str(),
            v["health"].as_str(),
            v["weight"].as_u64()
        ),
        (Some("running"), Some("healthy"), Some(30))
    );
    assert_eq!(v["last_check"]["detail"], "200");
    let v = done(h.send(Command::Route {
        from: key("api", "blue"),
        to: key("api", "green"),
    }));
    assert_eq!(
        (v["from"]["weight"].as_u64(), v["to"]["weight"].as_u64()),
        (Some(0), Some(100))
    );
    assert_eq!(h.view(&blue).unwrap().weight, 0);
    let v = done(h.send(Command::Weight {
        key: blue.clone(),
        weight: 5,
    }));
    assert_eq!(v["weight"], 5);
    match h.send(Command::Route {
        from: key("api", "blue"),
        to: key("api", "nope"),
    }) {
        Reply::Error(CommandError::UnknownInstance(_)) => {}
        other => panic!("expected 404, got {other:?}"),
    }
    let old = h.view(&green).unwrap().pid.unwrap();
    let v = done(h.send(Command::Restart { key: green.clone() }));
    assert_ne!(v["pid"].as_u64(), Some(u64::from(old)));
    assert!(gone(old));
    assert!(matches!(
        h.send(Command::AwaitReady { key: green }),
        Reply::Ready(_)
    ));
    h.shutdown();
}

/// Kills its process when dropped.
struct Leftover(std::process::Child);

impl Drop for Leftover {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn registry_restore_kills_leftovers_and_restarts() {
    let dir = TempDir::new("restore");
    let cfg = config(&dir, vec![python("web", BACKEND)]);
    let port = cfg.settings.port_range.0 + 7;
    // A leftover of "a previous run": its own process group, like an
    // instance; output to /dev/null so it cannot hold the harness's pipes,
    // and killed by the guard if the test fails before tenement does.
    let mut leftover = Leftover({
        use std::os::unix::process::CommandExt;
        std::process::Command::new("sleep")
            .arg("1000")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .process_group(0)
            .spawn()
            .unwrap()
    });
    let pid = leftover.0.id();
    let ticks = procfs::stat(pid).unwrap().start_ticks;
    let entry = |id: &str, desired: Desired, pid: Option<u32>| RegistryEntry {
        service: "web".into(),
        id: id.into(),
        port,
        weight: 42,
        desired,
        pid,
        pgid: pid,
        start_ticks: pid.map(|_| ticks),
        restarts: 2,
        uid: None,
        moving: None,
    };
    let registry = Registry {
        version: 1,
        generation: 0,
        instances: vec![entry("a", Desired::Running, Some(pid)), {
            let mut e = entry("z", Desired::Sleeping, None);
            e.port = port + 1;
            e
        }],
    };
    std::fs::create_dir_all(dir.join(".tenement")).unwrap();
    registry.save(&dir.join(".tenement/state")).unwrap();
    let mut cfg = cfg;
    cfg.instances = vec![key("web", "a"), key("web", "b")];

    let mut h = Harness::start(cfg, &dir);
    // The leftover was killed before start() returned.
    let status = leftover.0.wait().unwrap();
    assert!(!status.success());
    let snap = h.published.load();
    let a = snap.get("web", "a").unwrap();
    assert_eq!((a.port, a.weight, a.restarts), (port, 42, 0));
    assert!(matches!(a.state, State::Starting | State::Running));
    assert_eq!(snap.get("web", "z").unwrap().state, State::Sleeping);
    assert!(snap.get("web", "b").is_some(), "[instances] entry spawned");
    assert!(matches!(
        h.send(Command::AwaitReady {
            key: key("web", "a")
        }),
        Reply::Ready(_)
    ));
    // A sleeping instance is woken by a held request.
    assert!(matches!(
        h.send(Command::AwaitReady {
            key: key("web", "z")
        }),
        Reply::Ready(_)
    ));

    h.shutdown();
    let saved = Registry::load(&dir.join(".tenement/state")).unwrap();
    let desired: Vec<(&str, Desired)> = saved
        .instances
        .iter()
        .map(|e| (e.id.as_str(), e.desired))
        .collect();
    assert_eq!(
        desired,
        [
            ("a", Desired::Running),
            ("b", Desired::Running),
            ("z", Desired::Running)
        ]
    );
}

#[test]
fn unhealthy_instance_is_restarted() {
    let dir = TempDir::new("unhealthy");
    let mut svc = python("api", BACKEND);
    svc.health = Some("/health".into());
    let mut cfg = config(&dir, vec![svc]);
    cfg.settings.health_check_interval = Duration::from_millis(100);
    let mut h = Harness::start(cfg, &dir);
    let k = key("api", "a");
    h.spawn(&k, None, true);
    let old = h.view(&k).unwrap().pid.unwrap();
    std::fs::write(dir.join("api/a/sick"), "").unwrap();
    h.wait_for("degraded", |s| {
        s.get("api", "a")
            .is_some_and(|v| v.health != Health::Healthy)
    });
    h.wait_for("a healthy replacement", |s| {
        s.get("api", "a")
            .is_some_and(|v| v.health == Health::Healthy && v.pid.is_some_and(|p| p != old))
    });
    assert!(gone(old));
    let log = std::fs::read_to_string(dir.join(".tenement/logs/api/a.log")).unwrap();
    assert!(
        log.contains("ten health check failed: HTTP 500 (degraded)"),
        "{log}"
    );
    assert!(
        log.contains("ten health check failed: HTTP 500 (unhealthy)"),
        "{log}"
    );
    h.shutdown();
}

#[test]
fn refused_is_answered_after_a_check_or_the_restart() {
    let dir = TempDir::new("refused");
    let mut h = Harness::start(config(&dir, vec![python("web", BACKEND)]), &dir);
    let k = key("web", "a");
    h.spawn(&k, None, true);
    // It accepts: the immediate check passes and the request goes ahead.
    assert!(matches!(
        h.send(Command::Refused { key: k.clone() }),
        Reply::Ready(_)
    ));
    let old = h.view(&k).unwrap().pid.unwrap();
    // Killed, and the refusal arrives before or after the exit is seen:
    // either way the answer comes once the new process is ready.
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(old as i32).unwrap(),
        rustix::process::Signal::KILL,
    )
    .unwrap();
    // A connection is refused only once the socket is closed, which is
    // when the last thread of the process is gone.
    // On a busy machine the restart may already be listening on the same
    // port before this thread looks again: a new pid ends the wait too.
    let port = h.view(&k).unwrap().port;
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", port)).is_ok() && h.view(&k).unwrap().pid == Some(old) {
        assert!(Instant::now() < deadline, "port {port} still accepts");
        std::thread::sleep(Duration::from_millis(1));
    }
    let addr = match h.send(Command::Refused { key: k.clone() }) {
        Reply::Ready(addr) => addr,
        other => panic!("expected Ready, got {other:?}"),
    };
    let view = h.view(&k).unwrap();
    assert_eq!(view.state, State::Running);
    assert_ne!(view.pid, Some(old), "answered by the restarted process");
    assert!(http_get(addr).contains("200"), "the new process serves");
    h.shutdown();
}
