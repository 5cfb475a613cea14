//! Cgroups through `ten serve`, as root: a memory hog is OOM-killed at its
//! `memory_limit_mb`, noticed, counted and restarted while a neighbour keeps
//! serving; a fork bomb stops at `pids_max`; a double-forked `setsid` daemon
//! dies with `ten stop` and is reaped (ten serve is a child subreaper);
//! `/api/instances` and `/metrics` report the cgroup's memory and CPU; an
//! instance put to sleep by `idle_timeout` keeps its cgroup for its wake,
//! and `ten stop` removes it, but no more than 256 sleeping instances keep
//! theirs; a failed instance has its cgroup removed.
//! Without root (or without the controller a test needs) each test skips
//! loudly; `TEN_TEST_STRICT=1` turns a skip into a failure.

mod util;

use std::path::{Path, PathBuf};
use std::time::Duration;

use util::{py_service, settings, wait_until, Server, DEADLINE};

fn skip(why: &str) -> bool {
    if std::env::var_os("TEN_TEST_STRICT").is_some_and(|v| v == "1") {
        panic!("TEN_TEST_STRICT=1 and {why}");
    }
    eprintln!("skip: {why}");
    false
}

fn root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let euid = unsafe { libc::geteuid() };
    euid == 0 || skip("cgroup tests need root")
}

/// The server's "cgroups: memory=v1 cpu=v1 pids=v1 kill=..." line; skips
/// when cgroups are not in use or `controller` has no hierarchy.
fn cgroups_with(server: &Server, controller: &str) -> bool {
    let log = server.log();
    let Some(line) = log.lines().find(|l| l.contains("supervisor: cgroups: ")) else {
        return skip(&format!("ten serve uses no cgroups here:\n{log}"));
    };
    eprintln!("{line}");
    if line.contains(&format!("{controller}=none")) {
        return skip(&format!("no {controller} controller: {line}"));
    }
    true
}

/// The folders of instance cgroup `name` (`service@id`), one in each
/// hierarchy the server's "cgroups: ..." line names (`at=DIR`).
fn cgroup_dirs(server: &Server, name: &str) -> Vec<PathBuf> {
    let log = server.log();
    let line = log
        .lines()
        .find(|l| l.contains("supervisor: cgroups: "))
        .expect("checked by cgroups_with");
    let dirs: Vec<_> = line
        .split_whitespace()
        .filter_map(|w| w.strip_prefix("at="))
        .map(|d| Path::new(d).join(name))
        .collect();
    assert!(!dirs.is_empty(), "no at= in {line}");
    dirs
}

fn read_pid(path: &Path) -> Option<u32> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// `(state, ppid, session)` from `/proc/PID/stat`; None once it is gone.
fn stat(pid: u32) -> Option<(char, u32, u32)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let f: Vec<&str> = text[text.rfind(')')? + 1..].split_whitespace().collect();
    Some((
        f.first()?.chars().next()?,
        f.get(1)?.parse().ok()?,
        f.get(3)?.parse().ok()?,
    ))
}

fn live(pid: u32) -> bool {
    stat(pid).is_some_and(|(s, _, _)| s != 'Z' && s != 'X')
}

fn metric(server: &Server, name_and_labels: &str) -> Option<f64> {
    let resp = server.api("GET", "/metrics", Some(server.admin_token.as_str()), None);
    resp.text()
        .lines()
        .find_map(|l| l.strip_prefix(name_and_labels)?.trim().parse().ok())
}

#[test]
fn memory_hog_is_killed_at_its_limit_and_restarted_while_a_neighbour_keeps_serving() {
    if !root() {
        return;
    }
    let config = format!(
        "{}{}\n{}",
        settings("backoff_base_ms = 100\nmax_restarts = 10"),
        service_with_mode("hog", "hog", "memory_limit_mb = 48\nrestart = \"always\""),
        py_service("web", "echo.py", "health = \"/health\"")
    );
    let server = Server::start("cgroup-hog", &config);
    if !cgroups_with(&server, "memory") {
        return;
    }
    server.ten_ok(&["spawn", "hog:a", "--wait"]);
    server.ten_ok(&["spawn", "web:a", "--wait"]);
    let hog = server.wait_running("hog:a");
    let first_pid = hog["pid"].as_u64().unwrap();
    let port = hog["port"].as_u64().unwrap();
    // Straight to the app: the request never gets an answer.
    let _ = std::net::TcpStream::connect(("127.0.0.1", port as u16)).and_then(|mut s| {
        use std::io::{Read, Write};
        s.set_read_timeout(Some(Duration::from_secs(20)))?;
        s.write_all(b"GET /hog HTTP/1.1\r\nHost: x\r\n\r\n")?;
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).map(|_| ())
    });
    assert!(
        wait_until(DEADLINE, || server
            .log()
            .contains("hog:a killed: out of memory (limit 48 MB)")),
        "no OOM line\n{}",
        server.log()
    );
    // The neighbour never noticed.
    assert_eq!(
        server.echo("a.web.localhost", "/")["env"]["INSTANCE_ID"],
        "a"
    );
    // Restarted by its policy.
    let mut again = serde_json::Value::Null;
    assert!(wait_until(DEADLINE, || {
        again = server.instance("hog:a").unwrap_or_default();
        again["state"] == "running" && again["pid"].as_u64() != Some(first_pid)
    }));
    assert!(
        again["restarts"].as_u64().is_some_and(|n| n >= 1),
        "{again}"
    );
    assert_eq!(again["oom_kills"], 1, "{again}");
    assert_eq!(
        metric(
            &server,
            "ten_instance_oom_kills_total{service=\"hog\",id=\"a\"}"
        ),
        Some(1.0)
    );
    assert_eq!(
        server.echo("a.web.localhost", "/")["env"]["INSTANCE_ID"],
        "a"
    );
}

fn service_with_mode(name: &str, mode: &str, extra: &str) -> String {
    let script = util::toml_str(&util::fixture("limits.py"));
    format!(
        "[service.{name}]\ncommand = \"python3\"\nargs = [\"-u\", {script}, \"{mode}\"]\nhealth = \"/health\"\n{extra}\n"
    )
}

#[test]
fn a_fork_bomb_stops_at_pids_max() {
    if !root() {
        return;
    }
    let config = format!(
        "{}{}",
        settings(""),
        // The process level: python is one of the 20 (the namespace level,
        // where init counts too, is the test below).
        service_with_mode("bomb", "bomb", "pids_max = 20\nisolation = \"process\"")
    );
    let server = Server::start("cgroup-bomb", &config);
    if !cgroups_with(&server, "pids") {
        return;
    }
    server.ten_ok(&["spawn", "bomb:a", "--wait"]);
    let dir = server.instance_dir("bomb", "a");
    assert!(wait_until(DEADLINE, || dir.join("forks").exists()));
    // python itself is one of the 20.
    assert_eq!(
        std::fs::read_to_string(dir.join("forks")).unwrap().trim(),
        "19"
    );
    let children: Vec<u32> = std::fs::read_to_string(dir.join("children"))
        .unwrap()
        .lines()
        .map(|l| l.parse().unwrap())
        .collect();
    assert!(children.iter().all(|&p| live(p)));
    server.ten_ok(&["stop", "bomb:a"]);
    assert!(wait_until(DEADLINE, || children
        .iter()
        .all(|&p| stat(p).is_none())));
}

#[test]
fn a_double_forked_setsid_daemon_dies_with_ten_stop_and_no_zombie_is_left() {
    if !root() {
        return;
    }
    let config = format!(
        "{}{}",
        settings("stop_timeout = 1"),
        // The process level: the daemon is re-parented to ten serve (in a
        // namespace it is to the instance's init, and dies with it).
        service_with_mode("daemon", "daemon", "isolation = \"process\"")
    );
    let server = Server::start("cgroup-daemon", &config);
    if !cgroups_with(&server, "pids") {
        return;
    }
    server.ten_ok(&["spawn", "daemon:a", "--wait"]);
    let leader = server.wait_running("daemon:a")["pid"].as_u64().unwrap() as u32;
    let serve_pid = stat(leader).expect("leader alive").1;
    let file = server.instance_dir("daemon", "a").join("daemon.pid");
    assert!(wait_until(DEADLINE, || file.exists()));
    let daemon = read_pid(&file).unwrap();
    let (_, ppid, sid) = stat(daemon).expect("daemon alive");
    // It left the leader's session, and its parent died: it is an orphan,
    // re-parented to ten serve (a child subreaper) rather than to init.
    assert_ne!(sid, leader);
    assert_eq!(ppid, serve_pid);
    // It ignores the SIGTERM of the stop; SIGKILL to the cgroup after
    // stop_timeout takes it.
    server.ten_ok(&["stop", "daemon:a"]);
    assert!(
        wait_until(DEADLINE, || stat(daemon).is_none()),
        "daemon {daemon} left: {:?}\n{}",
        stat(daemon),
        server.log()
    );
    assert!(stat(leader).is_none());
    let log = server.log();
    assert!(
        log.contains("sent SIGKILL to group") && log.contains("and cgroup daemon@a"),
        "{log}"
    );
    let zombies: Vec<u32> = std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .filter(|&p| stat(p).is_some_and(|(s, pp, _)| s == 'Z' && pp == serve_pid))
        .collect();
    assert!(zombies.is_empty(), "zombies of ten serve: {zombies:?}");
}

#[test]
fn usage_in_the_api_and_metrics_comes_from_the_cgroup() {
    if !root() {
        return;
    }
    let config = format!(
        "{}{}",
        settings("stop_timeout = 1"),
        service_with_mode("kids", "daemon", "")
    );
    let server = Server::start("cgroup-usage", &config);
    if !cgroups_with(&server, "memory") {
        return;
    }
    server.ten_ok(&["spawn", "kids:a", "--wait"]);
    let inst = server.wait_running("kids:a");
    let memory = inst["memory_bytes"].as_u64().unwrap();
    assert!(memory > 0, "{inst}");
    assert!(inst["cpu_seconds"].as_f64().is_some(), "{inst}");
    assert_eq!(inst["oom_kills"], 0);
    let labels = "{service=\"kids\",id=\"a\"}";
    assert!(
        metric(&server, &format!("ten_instance_memory_bytes{labels}")).is_some_and(|b| b > 0.0)
    );
    assert!(metric(&server, &format!("ten_instance_cpu_seconds_total{labels}")).is_some());
    assert_eq!(
        metric(&server, &format!("ten_instance_oom_kills_total{labels}")),
        Some(0.0)
    );
    let out = server.ten_ok(&["ps"]);
    assert!(
        util::stdout(&out).contains("kids"),
        "{}",
        util::stdout(&out)
    );
}

/// The namespace level: ten's init (pid 1 inside) and the app both start
/// inside the cgroup, so they count against `pids_max` together.
#[test]
fn a_namespaced_instance_and_its_init_are_in_its_cgroup() {
    if !root() {
        return;
    }
    if !Path::new("/usr/bin/python3").exists() {
        skip("/usr/bin/python3 is needed inside the instance");
        return;
    }
    let config = format!(
        "{}[service.bomb]\ncommand = \"/usr/bin/python3\"\nargs = [\"-u\", \"limits.py\", \"bomb\"]\n\
         workdir = {}\nisolation = \"namespace\"\nhealth = \"/health\"\npids_max = 20\n",
        settings(""),
        util::toml_str(&util::fixture(""))
    );
    let server = Server::start("cgroup-namespace", &config);
    if !cgroups_with(&server, "pids") {
        return;
    }
    server.ten_ok(&["spawn", "bomb:a", "--wait"]);
    let dir = server.instance_dir("bomb", "a");
    assert!(wait_until(DEADLINE, || dir.join("forks").exists()));
    // init and python are two of the 20.
    assert_eq!(
        std::fs::read_to_string(dir.join("forks")).unwrap().trim(),
        "18",
        "{}",
        server.log()
    );
    let init = server.wait_running("bomb:a")["pid"].as_u64().unwrap() as u32;
    let cgroups = std::fs::read_to_string(format!("/proc/{init}/cgroup")).unwrap();
    assert!(cgroups.contains("/bomb@a"), "{cgroups}");
    server.ten_ok(&["stop", "bomb:a"]);
    assert!(wait_until(DEADLINE, || stat(init).is_none()));
}

/// A server with one process-level Python service `svc` (fixture
/// `script`, `extra` lines), and the folders instance `svc:a`'s cgroup
/// gets; None (said) without root or a pids controller.
fn with_instance_a(svc: &str, script: &str, extra: &str) -> Option<(Server, Vec<PathBuf>)> {
    if !root() {
        return None;
    }
    let extra = format!("{extra}\nisolation = \"process\"");
    let config = format!("{}{}", settings(""), py_service(svc, script, &extra));
    let server = Server::start(&format!("cgroup-{svc}"), &config);
    if !cgroups_with(&server, "pids") {
        return None;
    }
    let dirs = cgroup_dirs(&server, &format!("{svc}@a"));
    Some((server, dirs))
}

/// Waits until `key` is listed in `state`.
fn wait_state(server: &Server, key: &str, state: &str) {
    let mut last = None;
    let ok = wait_until(DEADLINE, || {
        last = server.instance(key);
        last.as_ref().is_some_and(|i| i["state"] == state)
    });
    assert!(ok, "{key} never {state}: {last:?}\n{}", server.log());
}

/// Waits until none of `dirs` is left.
fn assert_removed(server: &Server, dirs: &[PathBuf]) {
    assert!(
        wait_until(DEADLINE, || dirs.iter().all(|d| !d.exists())),
        "left: {:?}\n{}",
        dirs.iter().filter(|d| d.exists()).collect::<Vec<_>>(),
        server.log()
    );
}

/// An instance put to sleep by `idle_timeout` keeps its cgroup while it
/// sleeps, and its wake starts the app inside it; `ten stop` of the
/// sleeping instance removes it, in every hierarchy.
#[test]
fn a_sleeping_instance_keeps_its_cgroup_for_its_wake_and_stop_removes_it() {
    let Some((server, dirs)) = with_instance_a("nap", "echo.py", "idle_timeout = 1") else {
        return;
    };
    let holds = |pid: u64| {
        dirs.iter().all(|d| {
            std::fs::read_to_string(d.join("cgroup.procs"))
                .is_ok_and(|t| t.lines().any(|l| l.trim() == pid.to_string()))
        })
    };
    // A request's keep-alive connection, while open, keeps it awake
    // (however slow the box) for the look at its cgroup.
    let awake = || {
        let mut conn = util::Conn::open(server.addr);
        let resp = conn.request("GET", "a.nap.localhost", "/", &[], b"");
        assert_eq!(resp.status, 200, "{}\n{}", resp.text(), server.log());
        let pid = resp.json()["pid"].as_u64().unwrap();
        assert!(holds(pid), "{pid} not in all of {dirs:?}");
        pid
    };
    server.ten_ok(&["spawn", "nap:a", "--wait"]);
    let first = awake();
    wait_state(&server, "nap:a", "sleeping");
    for d in &dirs {
        assert!(d.is_dir(), "{} gone while nap:a sleeps", d.display());
    }
    // A sleeping instance reads nothing from its empty cgroup.
    let sleeping = server.instance("nap:a").unwrap();
    assert!(sleeping["cpu_seconds"].is_null(), "{sleeping}");
    // Woken by a request: the new process runs in the same cgroup.
    let second = awake();
    assert_ne!(first, second);
    wait_state(&server, "nap:a", "sleeping");
    server.ten_ok(&["stop", "nap:a"]);
    assert_removed(&server, &dirs);
}

/// An instance whose process exits and that will not start again by
/// itself (`failed`) has its cgroup removed, in every hierarchy.
#[test]
fn a_failed_instance_has_its_cgroup_removed() {
    let Some((server, dirs)) = with_instance_a("quits", "exit_on_start.py", "restart = \"never\"")
    else {
        return;
    };
    let _ = server.ten(&["spawn", "quits:a"]);
    wait_state(&server, "quits:a", "failed");
    assert_removed(&server, &dirs);
}

/// Sleeping instances keep their cgroups for their wakes only while fewer
/// than 256 are held (each costs the kernel memory in every hierarchy):
/// of 260 instances that fall asleep, 256 keep theirs and 4 have them
/// removed, in every hierarchy.
#[test]
fn no_more_than_256_sleeping_instances_keep_their_cgroups() {
    if !root() {
        return;
    }
    const N: usize = 260;
    const KEPT: usize = 256;
    // An app that exits 0 at once goes to sleep (restart = "on-failure").
    // Every instance holds a port while it sleeps: a range wide enough,
    // below the 22000.. blocks of the other tests.
    let config = "[settings]\ndomain = \"localhost\"\nport_range = [12000, 12399]\n\n\
                  [service.naps]\ncommand = \"/bin/true\"\nisolation = \"process\"\n";
    let server = Server::start("cgroup-cap", config);
    if !cgroups_with(&server, "pids") {
        return;
    }
    for i in 0..N {
        let resp = server.api(
            "POST",
            "/api/instances/spawn",
            Some(&server.admin_token),
            Some(&serde_json::json!({"service": "naps", "id": format!("i{i}")})),
        );
        assert_eq!(
            resp.status,
            201,
            "spawn naps:i{i}: {}\n{}",
            resp.text(),
            server.log()
        );
    }
    let asleep = || {
        server
            .instances()
            .iter()
            .filter(|i| i["service"] == "naps" && i["state"] == "sleeping")
            .count()
    };
    assert!(
        wait_until(DEADLINE, || asleep() == N),
        "{} of {N} asleep\n{}",
        asleep(),
        server.log()
    );
    // The folders `naps@*` in each hierarchy, once the last exit settled.
    let parents: Vec<PathBuf> = cgroup_dirs(&server, "naps@i0")
        .iter()
        .filter_map(|d| d.parent().map(Path::to_path_buf))
        .collect();
    let held = |parent: &Path| {
        std::fs::read_dir(parent)
            .map(|entries| {
                entries
                    .filter_map(Result::ok)
                    .filter(|e| e.file_name().to_string_lossy().starts_with("naps@"))
                    .count()
            })
            .unwrap_or(0)
    };
    for p in &parents {
        assert!(
            wait_until(DEADLINE, || held(p) == KEPT),
            "{} instance cgroups in {}, expected {KEPT}\n{}",
            held(p),
            p.display(),
            server.log()
        );
    }
}
