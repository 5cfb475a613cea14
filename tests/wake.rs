//! Wakes and starts of an instance with a `health` path: requests held
//! while it starts go to it as soon as it accepts connections, before its
//! first health check passes; the health check still decides when it is
//! `running`, and a start whose check never passes still ends after
//! `startup_timeout`.
//!
//! The app (`health_gate.py`) answers its health check 503 until it has
//! served another request, so a held request is only answered if it is
//! sent before any check passed; it reports how many checks passed before
//! it, and (`/slow`) how many came while it answered, and how many
//! connections it accepted. Nothing here is timed: waits poll against
//! deadlines.

mod util;

use util::*;

fn gate(extra: &str) -> String {
    py_service(
        "gate",
        "health_gate.py",
        &format!("health = \"/health\"\nisolation = \"process\"\n{extra}"),
    )
}

/// GET / to gate:`id` through the proxy: the app's report of the health
/// checks it saw before this request.
fn held_get(server: &Server, id: &str) -> serde_json::Value {
    held_get_path(server, id, "/")
}

/// `held_get` of `path`.
fn held_get_path(server: &Server, id: &str, path: &str) -> serde_json::Value {
    let resp = server.http("GET", &format!("{id}.gate.localhost"), path, &[], b"");
    assert_eq!(
        resp.status,
        200,
        "a held request reaches the app before its health check passes: {}\n--- server log ---\n{}",
        resp.text(),
        server.log()
    );
    resp.json()
}

#[test]
fn held_requests_go_before_the_first_health_check_passes() {
    if !tools_present(&["python3"]) {
        return;
    }
    // startup_timeout long enough that a 504 could only mean the request
    // waited for a health check that needs it first.
    let config = format!("{}{}", settings(""), gate("startup_timeout = 10"));
    let server = Server::start("wake_held_before_health", &config);
    // Without --wait: returns once the command runs, before it listens.
    server.ten_ok(&["spawn", "gate:a"]);
    let report = held_get(&server, "a");
    assert_eq!(report["passed"], 0, "no check passed before it: {report}");
    // Readiness was seen without connecting to it: the held request is
    // the first connection the app accepts.
    assert_eq!(report["connections"], 1, "{report}");
    // Then the health check passes and it is running and healthy.
    let inst = server.wait_running("gate:a");
    assert_eq!(inst["health"], "healthy", "{inst}");
    wait_log_in_order(
        &server,
        "gate",
        "a",
        &[
            "accepts connections after",
            "held requests go to it",
            "ready after",
        ],
    );
}

#[test]
fn the_first_health_check_waits_for_the_held_requests_answer() {
    if !tools_present(&["python3"]) {
        return;
    }
    let config = format!("{}{}", settings(""), gate("startup_timeout = 30"));
    let server = Server::start("wake_check_after_answer", &config);
    server.ten_ok(&["spawn", "gate:s"]);
    // The app takes a while to answer it; the check comes after that.
    let report = held_get_path(&server, "s", "/slow");
    assert_eq!(report["during"], 0, "no check while it answered: {report}");
    assert_eq!(report["passed"], 0, "{report}");
    let inst = server.wait_running("gate:s");
    assert_eq!(inst["health"], "healthy", "{inst}");
}

#[test]
fn a_woken_instance_takes_its_held_request_before_its_health_check() {
    if !tools_present(&["python3"]) {
        return;
    }
    let config = format!(
        "{}{}",
        settings(""),
        gate("idle_timeout = 1\nstartup_timeout = 10")
    );
    let server = Server::start("wake_health_after", &config);
    server.ten_ok(&["spawn", "gate:w"]);
    held_get(&server, "w");
    server.wait_running("gate:w");
    let asleep = wait_until(DEADLINE, || {
        server
            .instance("gate:w")
            .is_some_and(|i| i["state"] == "sleeping")
    });
    assert!(asleep, "gate:w sleeps after idle_timeout\n{}", server.log());
    // The new process has served nothing: its health check fails until
    // the request that woke it is answered.
    let report = held_get(&server, "w");
    assert_eq!(report["passed"], 0, "{report}");
    assert_eq!(report["connections"], 1, "{report}");
    wait_log_in_order(
        &server,
        "gate",
        "w",
        &[
            "woken by request",
            "accepts connections after",
            "ready after",
        ],
    );
    assert_eq!(server.wait_running("gate:w")["health"], "healthy");
}

#[test]
fn a_start_whose_health_check_never_passes_still_times_out() {
    if !tools_present(&["python3"]) {
        return;
    }
    let config = format!(
        "{}{}[service.gate.env]\nHEALTH = \"never\"\n",
        settings("backoff_base_ms = 100"),
        gate("startup_timeout = 3\nrestart = \"on-failure\"")
    );
    let server = Server::start("wake_health_never", &config);
    server.ten_ok(&["spawn", "gate:n"]);
    // It accepts, so the held request is answered by the app...
    let report = held_get(&server, "n");
    assert_eq!(report["passed"], 0, "{report}");
    // ...but it is never running: the failing health check keeps it
    // starting, and startup_timeout ends the start as before.
    let inst = server.instance("gate:n").expect("gate:n listed");
    assert_ne!(inst["state"], "running", "{inst}");
    assert_ne!(inst["health"], "healthy", "{inst}");
    wait_log_in_order(
        &server,
        "gate",
        "n",
        &[
            "accepts connections after",
            "not ready after 3s, killing it",
            "restarting in",
        ],
    );
}
