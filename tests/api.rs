//! The management API over TCP: `/health` without a token, 401 with
//! `WWW-Authenticate: Bearer`, the admin/tenant 403 matrix, tokens minted
//! while serving, and the JSON errors.

mod util;

use std::time::Duration;

use serde_json::json;
use util::*;

fn config() -> String {
    format!(
        "{}{}[instances]\napi = [\"alice\", \"bob\"]\n",
        settings(""),
        py_service("api", "echo.py", "health = \"/health\"")
    )
}

fn assert_error(resp: &Resp, status: u16, what: &str) {
    assert_eq!(resp.status, status, "{what}: {}", resp.text());
    let body = resp.json();
    assert!(
        body["error"].is_string(),
        "{what}: error body is {{\"error\": ...}}: {body}"
    );
}

#[test]
fn health_answers_200_without_a_token() {
    let server = Server::start("health_no_token", &settings(""));
    let host = server.addr.to_string();
    for host in ["localhost", host.as_str()] {
        let resp = server.http("GET", host, "/health", &[], b"");
        assert_eq!(resp.status, 200, "Host {host}: {}", resp.text());
        assert_eq!(resp.text().trim(), "ok");
        let ctype = resp.header("content-type").unwrap_or_default();
        assert!(ctype.starts_with("text/plain"), "Content-Type {ctype:?}");
    }
}

#[test]
fn api_refuses_missing_and_wrong_tokens_with_401() {
    let server = Server::start("api_401", &settings(""));
    let wrong = format!("ten_{}", "0".repeat(64));
    let wrong_auth = format!("Bearer {wrong}");
    let cases: Vec<(&str, Vec<(&str, &str)>)> = vec![
        ("no Authorization", vec![]),
        ("wrong token", vec![("Authorization", wrong_auth.as_str())]),
        (
            "not bearer",
            vec![("Authorization", "Basic YWRtaW46YWRtaW4=")],
        ),
        ("empty bearer", vec![("Authorization", "Bearer ")]),
    ];
    let host = server.addr.to_string();
    for (what, headers) in &cases {
        for path in ["/api/instances", "/api/config"] {
            let resp = server.http("GET", &host, path, headers, b"");
            assert_error(&resp, 401, &format!("{what} {path}"));
            let challenge = resp.header("www-authenticate").unwrap_or_default();
            assert!(
                challenge.starts_with("Bearer"),
                "{what}: WWW-Authenticate {challenge:?}"
            );
        }
    }
    let resp = server.api("GET", "/api/instances", Some(&server.admin_token), None);
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert!(resp.json().is_array());

    // The CLI over TCP with a wrong token fails cleanly.
    let out = server.ten_tcp(&wrong, &["ps"]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert!(stderr(&out).contains("ten: error:"), "{}", describe(&out));
}

#[test]
fn tenant_token_sees_and_acts_on_its_own_instances_only() {
    if !tools_present(&["python3"]) {
        return;
    }
    let server = Server::start("tenant_matrix", &config());
    server.wait_running("api:alice");
    let bob = server.wait_running("api:bob");

    // Minted while the server runs; used at once, with no wait or reload.
    let alice = server.mint_token(Some("alice"));
    let tenant = Some(alice.as_str());
    let resp = server.api("GET", "/api/instances", tenant, None);
    assert_eq!(
        resp.status,
        200,
        "tenant token minted while serving works at once: {}",
        resp.text()
    );
    let listed: Vec<Value> = resp.json().as_array().expect("array").clone();
    let keys: Vec<&str> = listed
        .iter()
        .map(|i| i["instance"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(keys, ["api:alice"]);

    // Allowed on its own instance.
    for (method, path) in [
        ("GET", "/api/instances/api:alice/health"),
        ("GET", "/api/instances/api:alice/storage"),
        ("GET", "/api/logs?service=api&id=alice"),
    ] {
        let resp = server.api(method, path, tenant, None);
        assert_eq!(resp.status, 200, "tenant {method} {path}: {}", resp.text());
    }

    // Everything else is 403.
    let forbidden: Vec<(&str, &str, Option<Value>)> = vec![
        ("GET", "/api/instances/api:bob/health", None),
        ("GET", "/api/instances/api:bob/storage", None),
        ("GET", "/api/logs?service=api&id=bob", None),
        ("POST", "/api/instances/api:bob/restart", None),
        (
            "POST",
            "/api/instances/spawn",
            Some(json!({"service": "api", "id": "carol"})),
        ),
        ("DELETE", "/api/instances/api:bob", None),
        ("DELETE", "/api/instances/api:alice", None),
        (
            "PUT",
            "/api/instances/api:alice/weight",
            Some(json!({"weight": 5})),
        ),
        (
            "PUT",
            "/api/instances/api:bob/weight",
            Some(json!({"weight": 5})),
        ),
        (
            "POST",
            "/api/deploy",
            Some(json!({"service": "api", "id": "alice", "weight": 100, "timeout_secs": 5})),
        ),
        (
            "POST",
            "/api/route",
            Some(json!({"service": "api", "from": "alice", "to": "bob"})),
        ),
        ("GET", "/api/config", None),
        ("POST", "/api/reload", None),
    ];
    for (method, path, body) in &forbidden {
        let resp = server.api(method, path, tenant, body.as_ref());
        assert_error(&resp, 403, &format!("tenant {method} {path}"));
    }

    // Its own restart is allowed.
    let resp = server.api("POST", "/api/instances/api:alice/restart", tenant, None);
    assert_eq!(
        resp.status,
        200,
        "tenant restarts its own instance: {}",
        resp.text()
    );

    // None of the refused calls had an effect.
    let all = server.instances();
    assert!(
        !all.iter().any(|i| i["id"] == "carol"),
        "spawn was refused: {all:?}"
    );
    let bob_now = server.instance("api:bob").expect("api:bob still exists");
    assert_eq!(bob_now["pid"], bob["pid"], "bob was not restarted");
    assert_eq!(bob_now["weight"], bob["weight"], "bob's weight unchanged");
    assert!(
        server.instance("api:alice").is_some(),
        "alice was not stopped"
    );

    // The admin token may do what the tenant may not.
    let resp = server.api("GET", "/api/config", Some(&server.admin_token), None);
    assert_eq!(resp.status, 200, "{}", resp.text());

    // The CLI over TCP with the tenant token lists only alice.
    let out = server.ten_tcp(&alice, &["ps", "--json"]);
    assert!(out.status.success(), "{}", describe(&out));
    let listed: Value = serde_json::from_slice(&out.stdout).expect("ps --json is JSON");
    let ids: Vec<&str> = listed
        .as_array()
        .expect("array")
        .iter()
        .map(|i| i["id"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(ids, ["alice"]);
}

#[test]
fn admin_token_minted_while_serving_works_at_once() {
    let server = Server::start("admin_mint_live", &settings(""));
    let second = server.mint_token(None);
    assert_ne!(second, server.admin_token);
    let resp = server.api("GET", "/api/instances", Some(&second), None);
    assert_eq!(
        resp.status,
        200,
        "new admin token works at once: {}",
        resp.text()
    );
    let resp = server.api("GET", "/api/instances", Some(&server.admin_token), None);
    assert_eq!(
        resp.status,
        200,
        "the first admin token still works: {}",
        resp.text()
    );
    let saved = std::fs::read_to_string(server.data_dir.join("api_token")).expect("read api_token");
    assert_eq!(
        saved.trim(),
        second,
        "api_token holds the newest admin token"
    );
}

#[test]
fn api_reports_bad_requests_as_json_errors() {
    if !tools_present(&["python3"]) {
        return;
    }
    let config = format!(
        "{}{}",
        settings(""),
        py_service("api", "echo.py", "health = \"/health\"")
    );
    let server = Server::start("api_errors", &config);
    let admin = Some(server.admin_token.as_str());
    let host = server.addr.to_string();
    let auth = format!("Bearer {}", server.admin_token);

    let resp = server.http(
        "POST",
        &host,
        "/api/instances/spawn",
        &[
            ("Authorization", &auth),
            ("Content-Type", "application/json"),
        ],
        b"{not json",
    );
    assert_error(&resp, 400, "bad JSON");
    for (body, what) in [
        (json!({"service": "api", "id": "Bad Name!"}), "bad id"),
        (json!({"service": "API", "id": "one"}), "bad service name"),
        (json!({"service": "nosuch", "id": "one"}), "unknown service"),
        (json!({"id": "one"}), "missing service"),
    ] {
        let resp = server.api("POST", "/api/instances/spawn", admin, Some(&body));
        assert_error(&resp, 400, what);
    }

    let resp = server.api(
        "POST",
        "/api/instances/spawn",
        admin,
        Some(&json!({"service": "api", "id": "one"})),
    );
    assert_eq!(resp.status, 201, "{}", resp.text());
    let created = resp.json();
    assert_eq!(created["instance"], "api:one");
    for key in [
        "instance",
        "service",
        "id",
        "state",
        "health",
        "pid",
        "port",
        "weight",
        "restarts",
        "uptime_secs",
        "memory_bytes",
    ] {
        assert!(
            created.get(key).is_some(),
            "instance object has {key}: {created}"
        );
    }
    let resp = server.api(
        "POST",
        "/api/instances/spawn",
        admin,
        Some(&json!({"service": "api", "id": "one"})),
    );
    assert_error(&resp, 409, "already exists");

    let resp = server.api("DELETE", "/api/instances/api:nosuch", admin, None);
    assert_error(&resp, 404, "stop unknown");
    let resp = server.api(
        "PUT",
        "/api/instances/api:one/weight",
        admin,
        Some(&json!({"weight": 101})),
    );
    assert_error(&resp, 400, "weight over 100");
    let resp = server.api(
        "PUT",
        "/api/instances/api:one/weight",
        admin,
        Some(&json!({"weight": 42})),
    );
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(resp.json()["weight"], 42);

    // 204 without a body, as the original tenement answered.
    let resp = server.api("DELETE", "/api/instances/api:one", admin, None);
    assert_eq!(resp.status, 204, "{}", resp.text());
    assert!(resp.body.is_empty(), "{}", resp.text());
    assert_eq!(resp.header("content-length"), None);
    assert!(server.instance("api:one").is_none());
    // The CLI reports it as the success it is, in words and in JSON.
    server.ten_ok(&["spawn", "api:two"]);
    let out = server.ten_tcp(&server.admin_token, &["stop", "api:two"]);
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(stdout(&out), "stopped api:two\n");
    server.ten_ok(&["spawn", "api:two"]);
    let out = server.ten_ok(&["--json", "stop", "api:two"]);
    let v: Value = serde_json::from_str(&stdout(&out)).expect("JSON");
    assert_eq!(v, json!({"stopped": "api:two"}));
}

#[test]
fn reload_keeps_serve_flags_and_applies_the_new_file() {
    let server = Server::start_with("api-reload", &config(), &["--domain", "Example.Test"]);
    let host = "alice.api.example.test";
    let ok = |s: &Server| s.http("GET", host, "/x", &[], b"").status == 200;
    assert!(
        wait_until(Duration::from_secs(10), || ok(&server)),
        "{}",
        server.log()
    );
    assert_eq!(server.api("GET", "/metrics", None, None).status, 401);

    // The file now makes /metrics public and changes nothing else.
    let text = config().replacen("[settings]\n", "[settings]\nmetrics_public = true\n", 1);
    std::fs::write(&server.config, text).unwrap();
    let out = server.ten(&["reload"]);
    assert!(out.status.success(), "{}", describe(&out));

    // --domain still holds after the reload, and the new setting is live.
    assert!(ok(&server), "--domain was lost on reload: {}", server.log());
    assert_eq!(server.api("GET", "/metrics", None, None).status, 200);
    let token = server.admin_token.clone();
    let cfg = server.api("GET", "/api/config", Some(&token), None).json();
    assert_eq!(cfg["settings"]["metrics_public"], json!(true), "{cfg}");
}
