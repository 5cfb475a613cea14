//! An app that listens on its Unix socket (`SOCKET_PATH`) instead of on
//! `PORT`: readiness and health checks go over the socket, and the proxy
//! reaches it there.

mod util;

use util::*;

fn unix_config() -> String {
    format!(
        "{}{}",
        settings(""),
        py_service("svc", "unix_app.py", "health = \"/health\""),
    )
}

/// `ten ps --json`'s object for `svc:id`.
fn listed(server: &Server, key: &str) -> Value {
    let out = server.ten_ok(&["ps", "--json"]);
    let all: Value = serde_json::from_slice(&out.stdout).expect("ps --json is JSON");
    all.as_array()
        .expect("array")
        .iter()
        .find(|i| i["instance"] == key)
        .cloned()
        .unwrap_or_else(|| panic!("{key} not listed: {all}"))
}

#[test]
fn spawn_waits_for_an_app_on_its_unix_socket() {
    if !tools_present(&["python3"]) {
        return;
    }
    let server = Server::start("unix_ready", &unix_config());
    server.ten_ok(&["spawn", "svc:a", "--wait"]);
    let inst = listed(&server, "svc:a");
    assert_eq!(inst["state"], "running", "{inst}");
    // The readiness probe was the health check, over the socket.
    assert_eq!(inst["last_check"]["detail"], "200", "{inst}");
    let socket = server.data_dir.join(".tenement/run/svc.a.sock");
    assert!(socket.exists(), "{} missing", socket.display());
}

#[test]
fn proxy_reaches_an_app_on_its_unix_socket() {
    if !tools_present(&["python3", "curl"]) {
        return;
    }
    let server = Server::start("unix_proxy", &unix_config());
    server.ten_ok(&["spawn", "svc:a", "--wait"]);
    let url = format!("{}/", server.url());
    let out = curl(&["-sS", "-H", "Host: a.svc.localhost", &url]);
    assert!(
        out.status.success(),
        "{}\n--- server log ---\n{}",
        describe(&out),
        server.log()
    );
    assert_eq!(
        stdout(&out),
        "unix a",
        "--- server log ---\n{}",
        server.log()
    );
}
