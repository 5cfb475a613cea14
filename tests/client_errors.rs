//! What a client of an app's host is told when its instance cannot serve it
//! (issue 10): a 502, 503 or 504 with a short reason and a request id, also
//! in the server's log line so an operator can find it. Never the app's
//! output, a path or an exec error: those are for `ten logs` and the admin
//! API only.

mod util;

use std::time::Duration;

use util::*;

/// Words the apps below print or that name their files: none may reach an
/// app host's client.
const PRIVATE: &[&str] = &[
    "exit-on-start",
    "refusing to start",
    "never-ready",
    "last output",
    "secret-dir",
    ".py",
];

/// Checks one answer to an app host's client and returns its request id.
#[track_caller]
fn plain(resp: &Resp, status: u16, server: &Server) -> String {
    let text = resp.text();
    assert_eq!(
        resp.status,
        status,
        "{text}\n--- server log ---\n{}",
        server.log()
    );
    for word in PRIVATE {
        assert!(!text.contains(word), "{word:?} in the answer: {text}");
    }
    let body = resp.json();
    let id = body["request_id"]
        .as_str()
        .expect("a request id")
        .to_string();
    assert!(
        id.len() == 16 && id.bytes().all(|b| b.is_ascii_hexdigit()),
        "{id:?}"
    );
    assert_eq!(resp.header("x-request-id"), Some(id.as_str()));
    let reason = body["error"].as_str().expect("a reason");
    assert!(!reason.is_empty() && reason.len() < 60, "{reason:?}");
    // The operator finds the request by its id.
    assert!(
        wait_until(Duration::from_secs(5), || server.log().contains(&id)),
        "request id {id} not in the server log:\n{}",
        server.log()
    );
    id
}

#[test]
fn issue_10_an_app_hosts_client_gets_no_app_output_paths_or_exec_errors() {
    if !tools_present(&["python3"]) {
        return;
    }
    let config = format!(
        "{}{}{}[service.broken]\ncommand = \"/nonexistent/secret-dir/app\"\nautospawn = true\nmax_instances = 3\n",
        settings("backoff_base_ms = 200\nbackoff_max_ms = 200\nmax_restarts = 2"),
        py_service("crash", "exit_on_start.py", ""),
        py_service("slow", "never_ready.py", "startup_timeout = 3"),
    );
    let server = Server::start("client_errors", &config);

    // Held while it crashes and restarts, answered once it has failed: 503.
    server.ten_ok(&["spawn", "crash:a"]);
    let resp = server.http("GET", "a.crash.localhost", "/", &[], b"");
    plain(&resp, 503, &server);
    assert!(resp.header("retry-after").is_some(), "Retry-After on 503");
    // Asked again once failed: the same plain answer, a new id.
    let again = server.http("GET", "a.crash.localhost", "/", &[], b"");
    let (first, second) = (plain(&resp, 503, &server), plain(&again, 503, &server));
    assert_ne!(first, second);

    // Held past startup_timeout: 504.
    server.ten_ok(&["spawn", "slow:a"]);
    let resp = server.http("GET", "a.slow.localhost", "/", &[], b"");
    plain(&resp, 504, &server);

    // An autospawned instance whose command cannot run: 502.
    let resp = server.http("GET", "x.broken.localhost", "/", &[], b"");
    plain(&resp, 502, &server);

    // The output is where the admin looks for it.
    let logs = stdout(&server.ten_ok(&["logs", "crash:a"]));
    assert!(logs.contains("exit-on-start: refusing to start"), "{logs}");
    // The admin's own `spawn --wait` may show the last lines.
    let out = server.ten(&["spawn", "slow:b", "--wait"]);
    assert!(!out.status.success(), "{}", describe(&out));
    assert!(
        stderr(&out).contains("never-ready: running"),
        "{}",
        describe(&out)
    );
}
