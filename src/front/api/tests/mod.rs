//! Tests for the management API, through `Api::handle_at`: the fixture and
//! helpers, routing, methods, tokens and what a tenant may see. Commands and
//! bad requests are in `commands.rs`; read-only answers, metrics, logs and
//! tokens in `reads.rs`.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::time::UNIX_EPOCH;

use super::*;
use crate::state::testdir::TempDir;
use crate::state::tokens::{self, TokenRecord};
use crate::supervisor::snapshot::Health;
use crate::supervisor::State;

const NOW_UNIX: u64 = 1_795_812_255;

fn now() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(NOW_UNIX)
}

fn view(service: &str, id: &str, state: State, port: u16) -> InstanceView {
    let running = state == State::Running;
    let stats = std::sync::Arc::new(crate::supervisor::snapshot::InstanceStats::default());
    if running {
        stats.set_memory(Some(1 << 20));
        stats.record_check(true, "200", NOW_UNIX - 1);
    }
    InstanceView {
        health: if running {
            Health::Healthy
        } else {
            Health::Unknown
        },
        pid: running.then_some(4000 + u32::from(port % 1000)),
        restarts: 1,
        started_at: running.then(|| now() - Duration::from_secs(42)),
        request_timeout: Duration::from_secs(30),
        ids: running.then_some((200_000 + u32::from(port % 1000), 200_000)),
        stats,
        ..InstanceView::for_test(service, id, state, port)
    }
}

/// Services `api`, `notes` (and `idle`, with no instances):
/// api:prod, notes:alice, notes:bob (sleeping), api:alice.
fn snapshot() -> Snapshot {
    let mut instances = vec![
        view("notes", "alice", State::Running, 30001),
        view("notes", "bob", State::Sleeping, 30002),
        view("api", "prod", State::Running, 30003),
        view("api", "alice", State::Failed, 30004),
    ];
    instances.sort_by(|a, b| (&a.service, &a.id).cmp(&(&b.service, &b.id)));
    let mut by_key = HashMap::new();
    let mut services: BTreeMap<String, Vec<usize>> = ["api", "idle", "notes"]
        .iter()
        .map(|s| (s.to_string(), Vec::new()))
        .collect();
    for (i, v) in instances.iter().enumerate() {
        by_key.insert((v.service.to_string(), v.id.to_string()), i);
        services.get_mut(v.service.as_str()).unwrap().push(i);
    }
    Snapshot {
        domain: "example.com".into(),
        instances: instances.into_iter().map(std::sync::Arc::new).collect(),
        by_key,
        services,
        config_json: std::sync::Arc::new(
            serde_json::json!({"settings": {"domain": "example.com"}}),
        ),
        ..Snapshot::default()
    }
}

/// A data dir with an admin and an `alice` tenant token.
struct Fixture {
    dir: TempDir,
    api: Api,
    snap: Snapshot,
    admin: String,
    alice: String,
    /// The client address requests come from.
    peer: std::net::IpAddr,
}

impl Fixture {
    fn new(name: &str) -> Fixture {
        let dir = TempDir::new(name);
        let admin = tokens::mint(&dir.0, None, "test admin").unwrap();
        let alice = tenant_token(&dir.0, "alice");
        let api = Api::new(dir.0.clone());
        Fixture {
            dir,
            api,
            snap: snapshot(),
            admin,
            alice,
            peer: std::net::IpAddr::from([203, 0, 113, 1]),
        }
    }

    fn call(&mut self, method: &str, target: &str, token: Option<&str>, body: &str) -> Action {
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        let auth = token.map(|t| format!("Bearer {t}"));
        let req = ApiRequest {
            method,
            path,
            query,
            authorization: auth.as_deref().map(str::as_bytes),
            body: body.as_bytes(),
            local: false,
            client: self.peer,
        };
        self.api.handle_at(&req, &self.snap, now())
    }

    fn admin(&mut self, method: &str, target: &str, body: &str) -> Action {
        let t = self.admin.clone();
        self.call(method, target, Some(&t), body)
    }

    fn alice(&mut self, method: &str, target: &str, body: &str) -> Action {
        let t = self.alice.clone();
        self.call(method, target, Some(&t), body)
    }
}

/// Adds a tenant token the way `mint` does, without `names::check`.
fn tenant_token(data_dir: &Path, tenant: &str) -> String {
    let token = format!("ten_{}", "ab".repeat(32));
    let path = crate::state::layout::tokens_path(data_dir);
    let mut file = tokens::load(&path).unwrap();
    file.tokens.push(TokenRecord {
        id: "0000beef".into(),
        hash: crate::state::sha256::hex(&crate::state::sha256::digest(token.as_bytes())),
        tenant: Some(tenant.into()),
        description: String::new(),
        created_unix: NOW_UNIX,
        last_used_unix: None,
    });
    crate::state::atomic::write(&path, &serde_json::to_vec(&file).unwrap(), 0o600).unwrap();
    token
}

/// The response the client gets; an offloaded job is run here, as its
/// lane's thread would.
#[track_caller]
fn response(action: Action) -> Response {
    match action {
        Action::Respond(r) => r,
        Action::Offload {
            job,
            success_status,
        } => super::reply_response(job.run(), success_status),
        Action::Ask { cmd, .. } => panic!("expected a response, got command {cmd:?}"),
        Action::Stream(what, _) => panic!("expected a response, got a stream of {what:?}"),
    }
}

#[track_caller]
fn command(action: Action) -> (Command, u16) {
    match action {
        Action::Ask {
            cmd,
            success_status,
        } => (cmd, success_status),
        Action::Respond(r) => panic!("expected a command, got {} {}", r.status, body_text(&r)),
        Action::Stream(what, _) => panic!("expected a command, got a stream of {what:?}"),
        Action::Offload { job, .. } => panic!("expected a command, got {job:?}"),
    }
}

fn body_text(r: &Response) -> String {
    String::from_utf8_lossy(&r.body).into_owned()
}

fn body_json(r: &Response) -> serde_json::Value {
    serde_json::from_slice(&r.body).unwrap_or_else(|e| panic!("not json ({e}): {}", body_text(r)))
}

#[track_caller]
fn status(action: Action) -> u16 {
    response(action).status
}

/// The error message of an error response with `expected` status.
#[track_caller]
fn error(action: Action, expected: u16) -> String {
    let r = response(action);
    assert_eq!(r.status, expected, "{}", body_text(&r));
    assert_eq!(r.content_type, "application/json");
    body_json(&r)["error"]
        .as_str()
        .expect("error is a string")
        .to_string()
}

fn key(service: &str, id: &str) -> InstanceKey {
    InstanceKey {
        service: service.into(),
        id: id.into(),
    }
}

fn header<'r>(r: &'r Response, name: &str) -> Option<&'r str> {
    r.headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

fn write_log(data_dir: &Path, service: &str, id: &str, lines: &[&str]) {
    let path = crate::state::layout::log_path(data_dir, service, id);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(
        path,
        lines.iter().map(|l| format!("{l}\n")).collect::<String>(),
    )
    .unwrap();
}

/// `instance stream line` per returned object; also checks the keys.
fn lines(r: &Response) -> Vec<String> {
    body_json(r)
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            assert!(o["time"].as_str().unwrap().ends_with('Z'));
            format!(
                "{} {} {}",
                o["instance"].as_str().unwrap(),
                o["stream"].as_str().unwrap(),
                o["line"].as_str().unwrap()
            )
        })
        .collect()
}

fn log_fixture(name: &str) -> Fixture {
    let f = Fixture::new(name);
    write_log(
        &f.dir.0,
        "api",
        "prod",
        &[
            "2026-11-27T20:40:00.000Z ten spawned pid 1 port 30003",
            "2026-11-27T20:41:00.000Z stdout GET /one",
            "2026-11-27T20:43:00.000Z stderr slow query",
            "2026-11-27T20:44:10.000Z stdout GET /two",
        ],
    );
    write_log(
        &f.dir.0,
        "notes",
        "alice",
        &[
            "2026-11-27T20:42:00.000Z stdout GET /n1",
            "2026-11-27T20:44:00.000Z stdout saved",
        ],
    );
    f
}

// --- routing, public endpoints --------------------------------------

#[test]
fn health_is_ok_without_token() {
    let mut f = Fixture::new("api-health");
    let r = response(f.call("GET", "/health", None, ""));
    assert_eq!(
        (r.status, r.content_type, body_text(&r).as_str()),
        (200, "text/plain; charset=utf-8", "ok")
    );
}

#[test]
fn dashboard_page_is_public_html() {
    let mut f = Fixture::new("api-dashboard");
    let r = response(f.call("GET", "/", None, ""));
    assert_eq!(r.status, 200);
    assert!(r.content_type.starts_with("text/html"));
    let html = body_text(&r);
    assert!(html.contains("<title>tenement</title>"));
    assert!(html.contains("/api/instances"));
    assert!(!html.contains("notes"), "the page shows no instances");
}

#[test]
fn unknown_paths_are_404_json() {
    let mut f = Fixture::new("api-404");
    for path in [
        "/api/nope",
        "/api/instances/",
        "/api/instances/notes:alice/frobnicate",
        "/favicon.ico",
    ] {
        let message = error(f.admin("GET", path, ""), 404);
        assert!(message.contains(path), "{message}");
    }
}

#[test]
fn wrong_method_is_405_with_allow() {
    let mut f = Fixture::new("api-405");
    for (method, path, allow) in [
        ("POST", "/api/instances", "GET, HEAD"),
        ("GET", "/api/instances/spawn", "POST"),
        ("GET", "/api/instances/notes:alice", "DELETE"),
        ("GET", "/api/instances/notes:alice/restart", "POST"),
        ("POST", "/api/instances/notes:alice/weight", "PUT"),
        ("DELETE", "/api/instances/notes:alice/health", "GET, HEAD"),
        ("GET", "/api/reload", "POST"),
        ("POST", "/health", "GET, HEAD"),
        ("HEAD", "/api/events", "GET"),
        ("HEAD", "/api/logs/stream", "GET"),
        ("HEAD", "/api/reload", "POST"),
    ] {
        let r = response(f.call(method, path, None, ""));
        assert_eq!(r.status, 405, "{method} {path}");
        assert_eq!(header(&r, "Allow"), Some(allow), "{method} {path}");
    }
}

// --- authentication ---------------------------------------------------

#[test]
fn missing_malformed_or_wrong_token_is_401_with_challenge() {
    let mut f = Fixture::new("api-401");
    let wrong = format!("ten_{}", "0".repeat(64));
    let cases: [(&str, Option<Vec<u8>>); 5] = [
        ("missing", None),
        ("wrong", Some(format!("Bearer {wrong}").into_bytes())),
        ("basic", Some(b"Basic dXNlcjpwYXNz".to_vec())),
        ("empty bearer", Some(b"Bearer ".to_vec())),
        ("not utf-8", Some(b"Bearer \xff\xfe".to_vec())),
    ];
    for (n, (what, auth)) in cases.into_iter().enumerate() {
        for (method, path) in [
            ("GET", "/api/instances"),
            ("POST", "/api/instances/spawn"),
            ("GET", "/api/instances/notes:alice/health"),
            ("GET", "/api/logs"),
            ("GET", "/metrics"),
            ("GET", "/api/config"),
        ] {
            let req = ApiRequest {
                method,
                path,
                query: "",
                authorization: auth.as_deref(),
                body: b"",
                local: false,
                // One address per case: 24 failures from one would be 429.
                client: std::net::IpAddr::from([203, 0, 113, 10 + n as u8]),
            };
            let r = response(f.api.handle_at(&req, &f.snap, now()));
            assert_eq!(r.status, 401, "{what}: {method} {path}");
            assert_eq!(
                header(&r, "WWW-Authenticate"),
                Some("Bearer"),
                "{what}: {method} {path}"
            );
        }
    }
}

#[test]
fn local_socket_is_admin_without_token() {
    let mut f = Fixture::new("api-local");
    let req = ApiRequest {
        method: "GET",
        path: "/api/config",
        query: "",
        authorization: None,
        body: b"",
        local: true,
        client: std::net::IpAddr::from([127, 0, 0, 1]),
    };
    let r = response(f.api.handle_at(&req, &f.snap, now()));
    assert_eq!(r.status, 200);
    assert_eq!(body_json(&r)["settings"]["domain"], "example.com");
}

#[test]
fn bearer_scheme_is_case_insensitive() {
    let mut f = Fixture::new("api-bearer");
    let auth = format!("bearer  {}", f.admin);
    let req = ApiRequest {
        method: "GET",
        path: "/api/instances",
        query: "",
        authorization: Some(auth.as_bytes()),
        body: b"",
        local: false,
        client: f.peer,
    };
    assert_eq!(status(f.api.handle_at(&req, &f.snap, now())), 200);
}

#[test]
fn token_minted_while_serving_is_accepted_at_once() {
    let mut f = Fixture::new("api-newtoken");
    assert_eq!(status(f.admin("GET", "/api/instances", "")), 200);
    let second = tokens::mint(&f.dir.0, None, "later").unwrap();
    assert_eq!(
        status(f.call("GET", "/api/instances", Some(&second), "")),
        200
    );
}

// --- tenant tokens ----------------------------------------------------

#[test]
fn tenant_list_shows_only_its_own_id() {
    let mut f = Fixture::new("api-tenant-list");
    let r = response(f.alice("GET", "/api/instances", ""));
    assert_eq!(r.status, 200);
    let list = body_json(&r);
    let names: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["instance"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["api:alice", "notes:alice"]);
}

#[test]
fn tenant_may_check_restart_and_read_storage_of_own_instances() {
    let mut f = Fixture::new("api-tenant-own");
    assert_eq!(
        status(f.alice("GET", "/api/instances/notes:alice/health", "")),
        200
    );
    assert_eq!(
        status(f.alice("GET", "/api/instances/notes:alice/storage", "")),
        200
    );
    let (cmd, code) = command(f.alice("POST", "/api/instances/api:alice/restart", ""));
    assert!(matches!(cmd, Command::Restart { key: k } if k == key("api", "alice")));
    assert_eq!(code, 200);
}

#[test]
fn tenant_gets_403_for_other_ids_existing_or_not() {
    let mut f = Fixture::new("api-tenant-other");
    for path in [
        "/api/instances/notes:bob/health",
        "/api/instances/notes:ghost/health",
        "/api/instances/nosuchservice:ghost/health",
        "/api/instances/notes:bob/storage",
        "/api/instances/notes:ghost/storage",
    ] {
        let message = error(f.alice("GET", path, ""), 403);
        assert!(!message.contains("unknown"), "{message}");
    }
    for path in [
        "/api/instances/notes:bob/restart",
        "/api/instances/notes:ghost/restart",
    ] {
        error(f.alice("POST", path, ""), 403);
    }
    // The answers for an existing and a missing instance are identical
    // apart from the name itself.
    let a = error(f.alice("GET", "/api/instances/notes:bob/health", ""), 403);
    let b = error(f.alice("GET", "/api/instances/notes:bbb/health", ""), 403);
    assert_eq!(a.replace("bob", "bbb"), b);
}

#[test]
fn tenant_gets_403_on_everything_else() {
    let mut f = Fixture::new("api-tenant-admin");
    for (method, path, body) in [
        (
            "POST",
            "/api/instances/spawn",
            r#"{"service":"notes","id":"alice"}"#,
        ),
        ("DELETE", "/api/instances/notes:alice", ""),
        (
            "PUT",
            "/api/instances/notes:alice/weight",
            r#"{"weight":5}"#,
        ),
        ("POST", "/api/deploy", r#"{"service":"notes","id":"alice"}"#),
        (
            "POST",
            "/api/route",
            r#"{"service":"notes","from":"alice","to":"bob"}"#,
        ),
        ("GET", "/api/config", ""),
        ("POST", "/api/reload", ""),
        ("GET", "/api/tls/status", ""),
        ("GET", "/metrics", ""),
    ] {
        error(f.alice(method, path, body), 403);
    }
}

#[test]
fn tenant_logs_only_own_id() {
    let mut f = Fixture::new("api-tenant-logs");
    write_log(
        &f.dir.0,
        "notes",
        "alice",
        &["2026-01-01T00:00:01.000Z stdout mine"],
    );
    write_log(
        &f.dir.0,
        "notes",
        "bob",
        &["2026-01-01T00:00:02.000Z stdout bobs"],
    );
    let r = response(f.alice("GET", "/api/logs", ""));
    assert_eq!(r.status, 200);
    assert_eq!(lines(&r), ["notes:alice stdout mine"]);
    let r = response(f.alice("GET", "/api/logs?service=notes", ""));
    assert_eq!(lines(&r), ["notes:alice stdout mine"]);
    error(f.alice("GET", "/api/logs?service=notes&id=bob", ""), 403);
    error(f.alice("GET", "/api/logs?id=bob", ""), 403);
}

mod allowed;
mod commands;
mod export;
mod reads;
mod transfer;
