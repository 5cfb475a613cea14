//! Scale to zero and self-healing against the real binary: health states,
//! restart backoff, failed after max_restarts, crashes without failed
//! requests, idle sleep, wake (one start for many requests, 504 when it
//! never gets ready), socket activation, restart policies, autospawn and the
//! registry across a kill -9 of the server.
//!
//! Waits poll against deadlines; nothing asserts on timing except lower
//! bounds the supervisor guarantees (a restart never comes before its
//! backoff delay).

mod util;

use std::net::SocketAddr;
use std::sync::{Arc, Barrier};
use std::time::Duration;

use util::*;

/// `[settings]` with health checks every `interval` seconds and fast
/// restarts, then `extra` lines.
fn settings_with(interval: u64, extra: &str) -> String {
    settings(extra).replace(
        "health_check_interval = 2\n",
        &format!("health_check_interval = {interval}\n"),
    )
}

fn app(name: &str, extra: &str) -> String {
    py_service(name, "scale_app.py", extra)
}

/// Waits until nothing listens on 127.0.0.1:port any more (a killed
/// process's threads may outlive its main thread, and its sockets with them).
fn wait_port_closed(port: u16) {
    let closed = wait_until(DEADLINE, || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err()
    });
    assert!(closed, "port {port} still accepts");
}

fn pid_of(server: &Server, key: &str) -> Option<u32> {
    server.instance(key)?["pid"].as_u64().map(|p| p as u32)
}

fn wait_state(server: &Server, key: &str, state: &str) -> Value {
    let mut last = None;
    let ok = wait_until(DEADLINE, || {
        last = server.instance(key);
        last.as_ref().is_some_and(|i| i["state"] == state)
    });
    assert!(
        ok,
        "{key} not {state} within {DEADLINE:?}; last seen {last:?}\n--- server log ---\n{}",
        server.log()
    );
    last.expect("checked")
}

/// One GET over a fresh connection; the status and body.
fn get(addr: SocketAddr, host: &str, path: &str) -> Resp {
    let mut conn = Conn::open(addr);
    conn.request("GET", host, path, &[], b"")
}

/// Timestamps (ms of the day) of the instance log lines containing `needle`.
fn line_times(log: &str, needle: &str) -> Vec<u64> {
    log.lines()
        .filter(|l| l.contains(needle))
        .filter_map(|l| {
            // 2026-11-27T21:26:26.933Z ten ...
            let t = l.split_whitespace().next()?;
            let time = t.split('T').nth(1)?.trim_end_matches('Z');
            let mut parts = time.split([':', '.']);
            let h: u64 = parts.next()?.parse().ok()?;
            let m: u64 = parts.next()?.parse().ok()?;
            let s: u64 = parts.next()?.parse().ok()?;
            let ms: u64 = parts.next()?.parse().ok()?;
            Some(((h * 60 + m) * 60 + s) * 1000 + ms)
        })
        .collect()
}

#[test]
fn failing_health_goes_degraded_then_unhealthy_then_restarts() {
    if !tools_present(&["python3"]) {
        return;
    }
    let config = format!(
        "{}{}",
        settings_with(1, "backoff_base_ms = 100"),
        app("api", "health = \"/health\"")
    );
    let server = Server::start("health_states", &config);
    server.ten_ok(&["spawn", "api:a", "--wait"]);
    let old = pid_of(&server, "api:a").expect("pid");
    std::fs::write(server.instance_dir("api", "a").join("unhealthy"), "").unwrap();
    wait_log_in_order(
        &server,
        "api",
        "a",
        &[
            "health check failed: HTTP 500 (degraded)",
            "health check failed: HTTP 500 (degraded)",
            "health check failed: HTTP 500 (unhealthy)",
            "killed by signal 9, restarting in 100ms",
            "spawned pid",
        ],
    );
    std::fs::remove_file(server.instance_dir("api", "a").join("unhealthy")).unwrap();
    let mut last = None;
    let back = wait_until(DEADLINE, || {
        last = server.instance("api:a");
        last.as_ref().is_some_and(|i| {
            i["state"] == "running"
                && i["health"] == "healthy"
                && i["pid"].as_u64().is_some_and(|p| p as u32 != old)
                && i["restarts"].as_u64().is_some_and(|r| r >= 1)
        })
    });
    assert!(back, "restarted and healthy again: {last:?}");
    let health = server.ten_ok(&["health", "api:a"]);
    let text = stdout(&health);
    assert!(text.contains("healthy"), "ten health shows it:\n{text}");
}

#[test]
fn health_checks_reuse_the_connection_an_app_keeps_open() {
    if !tools_present(&["python3"]) {
        return;
    }
    let config = format!(
        "{}{}",
        settings_with(1, ""),
        app(
            "api",
            "health = \"/health\"\nenv = { LOG_CONNECTIONS = \"1\" }"
        )
    );
    let server = Server::start("health_keepalive", &config);
    server.ten_ok(&["spawn", "api:a", "--wait"]);
    // The app keeps connections (HTTP/1.1): after the first check, the
    // next ones come over its connection, with no new one between them.
    let mut text = String::new();
    let checks = |t: &str| t.lines().filter(|l| l.contains("request /health")).count();
    let enough = wait_until(DEADLINE, || {
        text = instance_log(&server, "api", "a");
        checks(&text) >= 5
    });
    assert!(enough, "five health checks:\n{text}");
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("request /health") || l.contains("connection from"))
        .collect();
    let first = lines
        .iter()
        .position(|l| l.contains("request /health"))
        .expect("a check");
    let new_conns = lines[first..]
        .iter()
        .filter(|l| l.contains("connection from"))
        .count();
    assert_eq!(
        new_conns, 0,
        "checks after the first connect again:\n{text}"
    );
    assert_eq!(server.instance("api:a").unwrap()["health"], "healthy");
}

#[test]
fn backoff_delays_grow_then_failed_answers_503_with_retry_after() {
    if !tools_present(&["python3"]) {
        return;
    }
    let config = format!(
        "{}{}",
        settings("backoff_base_ms = 100\nbackoff_max_ms = 10000\nmax_restarts = 4"),
        py_service("crash", "exit_on_start.py", "")
    );
    let server = Server::start("backoff", &config);
    // Returns once the command runs; it then exits with 1 again and again.
    server.ten_ok(&["spawn", "crash:a"]);
    let log = wait_log_in_order(
        &server,
        "crash",
        "a",
        &[
            "exited with code 1, restarting in 100ms",
            "exited with code 1, restarting in 200ms",
            "exited with code 1, restarting in 400ms",
            "exited with code 1, restarting in 800ms",
            "exited with code 1, failed after 4 restarts",
        ],
    );
    // Each restart came no earlier than its delay: the gaps between exits
    // and the next spawn are at least 100, 200, 400, 800 ms.
    let exits = line_times(&log, "exited with code 1");
    let spawns = line_times(&log, "spawned pid");
    assert_eq!(spawns.len(), 5, "one start and four restarts\n{log}");
    for (i, want) in [100u64, 200, 400, 800].iter().enumerate() {
        let gap = spawns[i + 1].saturating_sub(exits[i]);
        assert!(
            gap + 2 >= *want,
            "restart {} after {gap}ms, before its {want}ms delay\n{log}",
            i + 1
        );
    }
    let inst = wait_state(&server, "crash:a", "failed");
    assert_eq!(inst["restarts"], 4);
    let resp = server.http("GET", "a.crash.localhost", "/", &[], b"");
    assert_eq!(resp.status, 503, "{}", resp.text());
    assert!(resp.header("retry-after").is_some(), "Retry-After on 503");
    // `ten logs` shows the lifecycle lines.
    let logs = server.ten_ok(&["logs", "crash:a"]);
    assert!(
        stdout(&logs).contains("exited with code 1, restarting in 100ms"),
        "{}",
        stdout(&logs)
    );
    // ten restart clears failed.
    server.ten_ok(&["restart", "crash:a"]);
    wait_log_in_order(
        &server,
        "crash",
        "a",
        &["failed after 4 restarts", "spawned pid"],
    );
}

#[test]
fn kill_9_right_after_requests_costs_no_5xx() {
    if !tools_present(&["python3"]) {
        return;
    }
    let config = format!(
        "{}{}",
        settings("backoff_base_ms = 200"),
        app("api", "health = \"/health\"")
    );
    let server = Server::start("kill9_no_5xx", &config);
    server.ten_ok(&["spawn", "api:a", "--wait"]);
    let host = "a.api.localhost";
    assert_eq!(get(server.addr, host, "/").status, 200);
    let old = pid_of(&server, "api:a").expect("pid");
    // The kill, then a burst as soon as the process is gone: the pooled
    // upstream connection is dead and new ones are refused until the
    // restart, so every request is held and served by the new process.
    // (Connections the dying process's backlog took before its sockets
    // closed are reset: the in-flight case below.)
    signal(old, "KILL");
    let port = server.instance("api:a").unwrap()["port"].as_u64().unwrap() as u16;
    wait_port_closed(port);
    let addr = server.addr;
    let threads: Vec<_> = (0..20)
        .map(|_| {
            std::thread::spawn(move || {
                let r = get(addr, "a.api.localhost", "/");
                if r.status != 200 {
                    eprintln!("non-200: {} {}", r.status, r.text());
                }
                r.status
            })
        })
        .collect();
    let statuses: Vec<u16> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    assert!(
        statuses.iter().all(|&s| s == 200),
        "statuses after kill -9: {statuses:?}\n--- server log ---\n{}",
        server.log()
    );
    let new = pid_of(&server, "api:a").expect("pid");
    assert_ne!(new, old, "served by the restarted process");
}

/// A request the app is working on when it is killed: the front must retry
/// it (it was not answered and had no body) once the instance is back.
#[test]
fn kill_9_with_a_request_in_flight_costs_no_5xx() {
    if !tools_present(&["python3"]) {
        return;
    }
    let config = format!(
        "{}{}",
        settings("backoff_base_ms = 200"),
        app("api", "health = \"/health\"")
    );
    let server = Server::start("kill9_inflight", &config);
    server.ten_ok(&["spawn", "api:a", "--wait"]);
    let old = pid_of(&server, "api:a").expect("pid");
    let addr = server.addr;
    let started = server.instance_dir("api", "a").join("delaying");
    let inflight = std::thread::spawn(move || get(addr, "a.api.localhost", "/delay?secs=1").status);
    // The app marks the request as it starts sleeping on it: kill it then.
    assert!(
        wait_until(DEADLINE, || started.exists()),
        "the app never got the in-flight request\n--- server log ---\n{}",
        server.log()
    );
    signal(old, "KILL");
    // And a burst at the very moment of the kill: some land in the dying
    // process's backlog and are reset.
    let burst: Vec<_> = (0..20)
        .map(|_| std::thread::spawn(move || get(addr, "a.api.localhost", "/").status))
        .collect();
    let mut statuses: Vec<u16> = burst.into_iter().map(|t| t.join().unwrap()).collect();
    statuses.push(inflight.join().unwrap());
    assert!(statuses.iter().all(|&s| s == 200), "{statuses:?}");
}

#[test]
fn killing_one_of_two_weighted_instances_fails_no_request() {
    if !tools_present(&["python3"]) {
        return;
    }
    let config = format!(
        "{}{}",
        settings("backoff_base_ms = 500"),
        app("web", "health = \"/health\"")
    );
    let server = Server::start("weighted_kill", &config);
    server.ten_ok(&["spawn", "web:a", "--wait"]);
    server.ten_ok(&["spawn", "web:b", "--wait"]);
    let victim = pid_of(&server, "web:a").expect("pid");
    let victim_port = server.instance("web:a").unwrap()["port"].as_u64().unwrap() as u16;
    let mut statuses = Vec::new();
    let mut conn = Conn::open(server.addr);
    for i in 0..200 {
        if i == 50 {
            signal(victim, "KILL");
            // Once its sockets are closed, connections to it are refused
            // (until then they land in its backlog and are reset: the
            // in-flight case, which needs a retry in the front).
            wait_port_closed(victim_port);
        }
        // Alternate kept-alive and fresh connections.
        let resp = if i % 2 == 0 {
            conn.request("GET", "web.localhost", "/", &[], b"")
        } else {
            get(server.addr, "web.localhost", "/")
        };
        statuses.push(resp.status);
    }
    let failed: Vec<(usize, u16)> = statuses
        .iter()
        .enumerate()
        .filter(|(_, s)| **s != 200)
        .map(|(i, s)| (i, *s))
        .collect();
    assert!(
        failed.is_empty(),
        "failed requests (index, status): {failed:?}\n--- server log ---\n{}",
        server.log()
    );
}

#[test]
fn idle_instance_sleeps_and_wakes_on_the_next_request() {
    if !tools_present(&["python3"]) {
        return;
    }
    let config = format!("{}{}", settings(""), app("api", "idle_timeout = 1"));
    let server = Server::start("idle_sleep", &config);
    server.ten_ok(&["spawn", "api:a", "--wait"]);
    let old = pid_of(&server, "api:a").expect("pid");
    let port = server.instance("api:a").unwrap()["port"].clone();
    let weight_before = server.instance("api:a").unwrap()["weight"].clone();
    let asleep = wait_state(&server, "api:a", "sleeping");
    assert!(asleep["pid"].is_null(), "no process while asleep: {asleep}");
    assert_eq!(asleep["port"], port, "keeps its port");
    assert_eq!(asleep["weight"], weight_before, "keeps its weight");
    assert!(wait_until(DEADLINE, || !pid_alive(old)), "old process gone");
    wait_log_in_order(
        &server,
        "api",
        "a",
        &["stopping: sent SIGTERM", "sleeping after 1s idle"],
    );
    // ten ps hides it, ten ps --all shows it.
    let ps = stdout(&server.ten_ok(&["ps"]));
    assert!(!ps.contains("api:a"), "ten ps without --all:\n{ps}");
    let all = stdout(&server.ten_ok(&["ps", "--all"]));
    assert!(
        all.contains("api:a") && all.contains("sleeping"),
        "ten ps --all:\n{all}"
    );
    let listed = |args: &[&str]| -> Vec<Value> {
        let out = stdout(&server.ten_ok(args));
        serde_json::from_str(&out)
            .unwrap_or_else(|e| panic!("{args:?}: not a JSON array ({e}):\n{out}"))
    };
    assert_eq!(
        listed(&["ps", "--json"]),
        Vec::<Value>::new(),
        "ten ps --json hides it"
    );
    let all = listed(&["ps", "--all", "--json"]);
    assert!(
        all.len() == 1 && all[0]["instance"] == "api:a" && all[0]["state"] == "sleeping",
        "ten ps --all --json: {all:?}"
    );

    let resp = get(server.addr, "a.api.localhost", "/");
    assert_eq!(resp.status, 200, "{}", resp.text());
    let new = resp.json()["pid"].as_u64().unwrap() as u32;
    assert_ne!(new, old);
    wait_log_in_order(
        &server,
        "api",
        "a",
        &["sleeping after 1s idle", "woken by request", "ready after"],
    );
    // And it falls asleep again.
    wait_state(&server, "api:a", "sleeping");
}

#[test]
fn open_long_response_keeps_an_instance_awake() {
    if !tools_present(&["python3"]) {
        return;
    }
    let config = format!("{}{}", settings(""), app("api", "idle_timeout = 1"));
    let server = Server::start("idle_open", &config);
    server.ten_ok(&["spawn", "api:a", "--wait"]);
    let pid = pid_of(&server, "api:a").expect("pid");
    let addr = server.addr;
    let slow = std::thread::spawn(move || get(addr, "a.api.localhost", "/slow?secs=4"));
    // Four idle timeouts while the response streams: still running every time
    // we look, until the response has ended.
    let mut seen = Vec::new();
    let ended = wait_until(DEADLINE, || {
        seen.push(server.instance("api:a").unwrap()["state"].clone());
        slow.is_finished()
    });
    assert!(ended, "the 4 s response did not end within {DEADLINE:?}");
    let resp = slow.join().unwrap();
    assert_eq!(resp.status, 200);
    assert!(resp.text().matches("tick").count() >= 10, "{}", resp.text());
    assert!(
        seen.iter().all(|s| s == "running"),
        "states while streaming: {seen:?}\n--- server log ---\n{}",
        server.log()
    );
    assert_eq!(
        pid_of(&server, "api:a"),
        Some(pid),
        "same process throughout"
    );
    // Once it ends, idle again: asleep.
    wait_state(&server, "api:a", "sleeping");
}

#[test]
fn fifty_requests_to_a_sleeping_instance_start_one_process() {
    if !tools_present(&["python3"]) {
        return;
    }
    let config = format!(
        "{}{}",
        settings(""),
        app("api", "idle_timeout = 1\nhealth = \"/health\"")
    );
    let server = Server::start("wake_herd", &config);
    server.ten_ok(&["spawn", "api:a", "--wait"]);
    wait_state(&server, "api:a", "sleeping");
    let spawned_before = instance_log(&server, "api", "a")
        .matches("spawned pid")
        .count();
    let barrier = Arc::new(Barrier::new(50));
    let addr = server.addr;
    let threads: Vec<_> = (0..50)
        .map(|_| {
            let b = barrier.clone();
            std::thread::spawn(move || {
                let mut conn = Conn::open(addr);
                b.wait();
                conn.request("GET", "a.api.localhost", "/", &[], b"")
            })
        })
        .collect();
    let resps: Vec<Resp> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    let statuses: Vec<u16> = resps.iter().map(|r| r.status).collect();
    assert!(statuses.iter().all(|&s| s == 200), "{statuses:?}");
    let mut pids: Vec<u64> = resps
        .iter()
        .map(|r| r.json()["pid"].as_u64().unwrap())
        .collect();
    pids.dedup();
    assert_eq!(pids.len(), 1, "one process served them all: {pids:?}");
    let log = instance_log(&server, "api", "a");
    assert_eq!(
        log.matches("spawned pid").count(),
        spawned_before + 1,
        "exactly one start for 50 requests\n{log}"
    );
    assert_eq!(log.matches("woken by request").count(), 1, "{log}");
}

#[test]
fn a_wake_that_never_gets_ready_answers_504() {
    if !tools_present(&["python3"]) {
        return;
    }
    let config = format!(
        "{}{}",
        settings("backoff_base_ms = 100"),
        app("api", "idle_timeout = 1\nstartup_timeout = 3")
    );
    let server = Server::start("wake_504", &config);
    server.ten_ok(&["spawn", "api:a", "--wait"]);
    wait_state(&server, "api:a", "sleeping");
    let hang = server.instance_dir("api", "a").join("hang");
    std::fs::write(&hang, "").unwrap();
    let resp = get(server.addr, "a.api.localhost", "/");
    assert_eq!(resp.status, 504, "{}", resp.text());
    wait_log_in_order(
        &server,
        "api",
        "a",
        &[
            "woken by request",
            "not ready after 3s, killing it",
            "restarting in",
        ],
    );
    // Marked as a failed start: it is retried per policy; once the app
    // starts again it is served.
    std::fs::remove_file(&hang).unwrap();
    let mut last = 0;
    let served = wait_until(DEADLINE, || {
        last = get(server.addr, "a.api.localhost", "/").status;
        last == 200
    });
    assert!(served, "served after the app can start again (last {last})");
}

#[test]
fn socket_activation_passes_fd_3_and_the_env() {
    if !tools_present(&["python3"]) {
        return;
    }
    let config = format!(
        "{}{}",
        settings(""),
        // Compares the app's pids across restarts: process level.
        app(
            "api",
            "socket_activation = true\nidle_timeout = 1\nisolation = \"process\"",
        )
    );
    let server = Server::start("socket_act", &config);
    server.ten_ok(&["spawn", "api:a", "--wait"]);
    let port = server.instance("api:a").unwrap()["port"].as_u64().unwrap();
    let report = server.echo("a.api.localhost", "/");
    assert_eq!(report["activated"], true, "{report}");
    assert_eq!(
        report["listen_pid_ok"], true,
        "LISTEN_PID == getpid(): {report}"
    );
    assert_eq!(report["listen_fds"], "1");
    assert_eq!(report["listen_fdnames"], "api");
    assert_eq!(report["fd3_port"], port, "fd 3 is 127.0.0.1:PORT");
    let old = report["pid"].as_u64().unwrap();
    // Asleep, the socket stays bound; the wake serves at once.
    wait_state(&server, "api:a", "sleeping");
    let again = server.echo("a.api.localhost", "/");
    assert_ne!(again["pid"].as_u64().unwrap(), old);
    assert_eq!(again["listen_pid_ok"], true);
    assert_eq!(again["fd3_port"], port);
    wait_log_in_order(
        &server,
        "api",
        "a",
        &["woken by request", "ready (socket activation"],
    );
}

#[test]
fn restart_policies() {
    if !tools_present(&["python3"]) {
        return;
    }
    let config = format!(
        "{}{}{}{}",
        settings("backoff_base_ms = 100"),
        app("onfail", "restart = \"on-failure\""),
        app("never", "restart = \"never\""),
        app("always", "restart = \"always\""),
    );
    let server = Server::start("policies", &config);
    for key in ["onfail:a", "never:a", "always:a"] {
        server.ten_ok(&["spawn", key, "--wait"]);
    }
    // on-failure, exit 0: sleeping (and woken by the next request).
    assert_eq!(
        get(server.addr, "a.onfail.localhost", "/exit?code=0").status,
        200
    );
    wait_state(&server, "onfail:a", "sleeping");
    wait_log_in_order(&server, "onfail", "a", &["exited with code 0, sleeping"]);
    assert_eq!(get(server.addr, "a.onfail.localhost", "/").status, 200);
    // never, crash: failed.
    assert_eq!(
        get(server.addr, "a.never.localhost", "/exit?code=3").status,
        200
    );
    wait_state(&server, "never:a", "failed");
    wait_log_in_order(
        &server,
        "never",
        "a",
        &["exited with code 3, failed (restart = never)"],
    );
    // always, exit 0: restarted.
    let old = pid_of(&server, "always:a").unwrap();
    assert_eq!(
        get(server.addr, "a.always.localhost", "/exit?code=0").status,
        200
    );
    wait_log_in_order(
        &server,
        "always",
        "a",
        &["exited with code 0, restarting in 100ms", "spawned pid"],
    );
    let inst = wait_state(&server, "always:a", "running");
    assert_ne!(inst["pid"].as_u64().unwrap() as u32, old);
}

#[test]
fn autospawn_creates_within_max_instances_and_404s_beyond() {
    if !tools_present(&["python3"]) {
        return;
    }
    let config = format!(
        "{}{}{}",
        settings(""),
        app("notes", "autospawn = true\nmax_instances = 2"),
        app("plain", ""),
    );
    let server = Server::start("autospawn", &config);
    assert_eq!(
        get(server.addr, "alice.plain.localhost", "/").status,
        404,
        "no autospawn: 404"
    );
    let a = get(server.addr, "alice.notes.localhost", "/");
    assert_eq!(a.status, 200, "{}", a.text());
    assert_eq!(get(server.addr, "bob.notes.localhost", "/").status, 200);
    let c = get(server.addr, "carol.notes.localhost", "/");
    assert_eq!(c.status, 404, "beyond max_instances: 404 ({})", c.text());
    assert!(server.instance("notes:carol").is_none());
    assert_eq!(server.instance("notes:alice").unwrap()["weight"], 100);
    wait_log_in_order(
        &server,
        "notes",
        "alice",
        &["spawned pid", "created by request (autospawn)"],
    );
    let out = server.ten(&["spawn", "notes:carol"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("max_instances"), "{}", describe(&out));
    let resp = server.api(
        "POST",
        "/api/instances/spawn",
        Some(&server.admin_token),
        Some(&serde_json::json!({"service": "notes", "id": "carol"})),
    );
    assert_eq!(resp.status, 409, "{}", resp.text());
}

#[test]
fn registry_restored_after_kill_9_with_no_leftover_process() {
    if !tools_present(&["python3"]) {
        return;
    }
    let config = format!(
        "{}{}{}{}[instances]\nweb = [\"boot\"]\n",
        settings(""),
        app("web", "health = \"/health\""),
        app("sleepy", "idle_timeout = 1"),
        app("act", "socket_activation = true"),
    );
    let mut server = Server::start("restore_sleep", &config);
    server.wait_running("web:boot");
    server.ten_ok(&["spawn", "sleepy:a", "--wait"]);
    server.ten_ok(&["spawn", "web:two", "--wait", "--weight", "30"]);
    server.ten_ok(&["spawn", "act:a", "--wait"]);
    assert_eq!(get(server.addr, "a.act.localhost", "/").status, 200);
    wait_state(&server, "sleepy:a", "sleeping");
    let boot = pid_of(&server, "web:boot").unwrap();
    let two = pid_of(&server, "web:two").unwrap();
    let act = pid_of(&server, "act:a").unwrap();

    server.kill9();
    assert!(
        pid_alive(boot) && pid_alive(two) && pid_alive(act),
        "instances outlive a kill -9 of the server"
    );
    server.serve_again();

    let mut last = Vec::new();
    let back = wait_until(DEADLINE, || {
        last = server.instances();
        let find = |k: &str| last.iter().find(|i| i["instance"] == k).cloned();
        let (Some(b), Some(t), Some(s)) = (find("web:boot"), find("web:two"), find("sleepy:a"))
        else {
            return false;
        };
        b["state"] == "running"
            && t["state"] == "running"
            && s["state"] == "sleeping"
            && s["pid"].is_null()
            && t["weight"] == 30
    });
    assert!(back, "running back, sleeping still asleep: {last:?}");
    // The socket-activated one got its port back (the old process held
    // the socket) and serves from a new process.
    let report = server.echo("a.act.localhost", "/");
    assert_eq!(report["activated"], true);
    assert_ne!(report["pid"].as_u64().unwrap() as u32, act);
    for pid in [boot, two, act] {
        assert!(
            wait_until(DEADLINE, || !pid_alive(pid)),
            "process {pid} of the old run still alive"
        );
    }
}

/// The server and an instance's leader both die; the leader's child lives
/// on in its process group. The next server kills it by group.
#[test]
fn restart_kills_group_members_whose_leader_died() {
    if !tools_present(&["python3"]) {
        return;
    }
    let config = format!(
        "{}{}",
        settings(""),
        // Host pids of the grandchild: process level.
        py_service(
            "api",
            "forker.py",
            "health = \"/health\"\nisolation = \"process\""
        )
    );
    let mut server = Server::start("restore_orphans", &config);
    server.ten_ok(&["spawn", "api:a", "--wait"]);
    let leader = pid_of(&server, "api:a").unwrap();
    let pid_file = server.instance_dir("api", "a").join("grandchild.pid");
    assert!(wait_until(DEADLINE, || pid_file.exists()));
    let grandchild: u32 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    std::fs::remove_file(&pid_file).unwrap();
    server.kill9();
    signal(leader, "KILL");
    assert!(wait_until(DEADLINE, || !pid_alive(leader)));
    assert!(pid_alive(grandchild), "the grandchild outlives its leader");
    server.serve_again();
    server.wait_running("api:a");
    assert!(
        wait_until(DEADLINE, || !pid_alive(grandchild)),
        "grandchild {grandchild} of the old run still alive\n--- server log ---\n{}",
        server.log()
    );
}

#[test]
fn socket_activation_example_serves_on_the_passed_socket() {
    if !tools_present(&["python3"]) {
        return;
    }
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/socket-activation");
    let check = ten_raw(&dir, &["--config", "tenement.toml", "config", "--check"]);
    assert!(check.status.success(), "{}", describe(&check));
    let config = format!(
        "{}[service.hello]\ncommand = \"python3 app.py\"\nworkdir = {}\nsocket_activation = true\nautospawn = true\nmax_instances = 20\n",
        settings(""),
        toml_str(&dir)
    );
    let server = Server::start("example_socket", &config);
    let resp = get(server.addr, "demo.hello.localhost", "/");
    assert_eq!(resp.status, 200, "{}", resp.text());
    let text = resp.text();
    assert!(
        text.contains("hello from hello:demo") && text.contains("socket hello"),
        "{text}"
    );
}

#[test]
fn sigterm_to_the_server_persists_and_brings_back_what_ran() {
    if !tools_present(&["python3"]) {
        return;
    }
    let config = format!(
        "{}{}{}",
        settings(""),
        app("web", "health = \"/health\""),
        app("sleepy", "idle_timeout = 1"),
    );
    let mut server = Server::start("restore_sigterm", &config);
    server.ten_ok(&["spawn", "web:a", "--wait", "--weight", "40"]);
    server.ten_ok(&["spawn", "sleepy:a", "--wait"]);
    wait_state(&server, "sleepy:a", "sleeping");
    let old = pid_of(&server, "web:a").unwrap();
    server.sigterm();
    assert!(!pid_alive(old), "SIGTERM to the server stops its instances");
    wait_log_in_order(&server, "web", "a", &["stopping: sent SIGTERM", "stopped"]);
    let state = server.data_dir.join(".tenement").join("state");
    let text = std::fs::read_to_string(&state).unwrap();
    let registry: Value = serde_json::from_str(&text).unwrap();
    let desired = |svc: &str| {
        registry["instances"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["service"] == svc)
            .map(|i| i["desired"].clone())
    };
    assert_eq!(desired("web"), Some(Value::from("running")), "{text}");
    assert_eq!(desired("sleepy"), Some(Value::from("sleeping")), "{text}");

    server.serve_again();
    let web = server.wait_running("web:a");
    assert_eq!(web["weight"], 40);
    assert_eq!(
        wait_state(&server, "sleepy:a", "sleeping")["pid"],
        Value::Null
    );
}

#[test]
fn a_weighted_request_wakes_a_sleeping_instance() {
    if !tools_present(&["python3"]) {
        return;
    }
    let config = format!("{}{}", settings(""), app("web", "idle_timeout = 1"));
    let server = Server::start("weighted_wake", &config);
    server.ten_ok(&["spawn", "web:a", "--wait"]);
    wait_state(&server, "web:a", "sleeping");
    let resp = get(server.addr, "web.localhost", "/");
    assert_eq!(resp.status, 200, "{}", resp.text());
    wait_log_in_order(
        &server,
        "web",
        "a",
        &["sleeping after 1s idle", "woken by request"],
    );
}

#[test]
fn lifecycle_changes_are_events() {
    if !tools_present(&["python3"]) {
        return;
    }
    use std::io::{Read, Write};
    let config = format!(
        "{}{}",
        settings("backoff_base_ms = 100"),
        app("api", "idle_timeout = 1")
    );
    let server = Server::start("events", &config);
    let mut stream = std::net::TcpStream::connect(server.addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    write!(
        stream,
        "GET /api/events HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {}\r\n\r\n",
        server.addr, server.admin_token
    )
    .unwrap();
    server.ten_ok(&["spawn", "api:a", "--wait"]);
    assert_eq!(
        get(server.addr, "a.api.localhost", "/exit?code=1").status,
        200
    );
    let wanted = [
        "spawned pid",
        "ready after",
        "exited with code 1, restarting in 100ms",
        "sleeping after 1s idle",
        "woken by request",
    ];
    let mut seen = Vec::new();
    let mut woke = false;
    let got_all = wait_until(DEADLINE, || {
        let mut buf = [0u8; 8192];
        if let Ok(n) = stream.read(&mut buf) {
            seen.extend_from_slice(&buf[..n]);
        }
        let text = String::from_utf8_lossy(&seen);
        if !woke && text.contains("sleeping after 1s idle") {
            woke = true;
            assert_eq!(get(server.addr, "a.api.localhost", "/").status, 200);
        }
        wanted.iter().all(|w| text.contains(w))
    });
    let text = String::from_utf8_lossy(&seen);
    assert!(got_all, "events lack some of {wanted:?}:\n{text}");
    assert!(text.contains("event: lifecycle"), "{text}");
}
