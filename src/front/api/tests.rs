//! Tests for the management API: routing, methods, tokens and what a tenant
//! may see, request bodies and parameters, storage and logs, through `Api::handle_at`.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::time::UNIX_EPOCH;

use super::*;
use crate::state::testdir::TempDir;
use crate::state::tokens::{self, TokenRecord};
use crate::supervisor::snapshot::{CheckResult, Health};
use crate::supervisor::State;

const NOW_UNIX: u64 = 1_795_812_255;

fn now() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(NOW_UNIX)
}

fn view(service: &str, id: &str, state: State, port: u16) -> InstanceView {
    let running = state == State::Running;
    InstanceView {
        service: service.into(),
        id: id.into(),
        state,
        health: if running {
            Health::Healthy
        } else {
            Health::Unknown
        },
        pid: running.then_some(4000 + u32::from(port % 1000)),
        port,
        addr: ([127, 0, 0, 1], port).into(),
        socket: None,
        weight: 100,
        restarts: 1,
        started_at: running.then(|| now() - Duration::from_secs(42)),
        memory_bytes: running.then_some(1 << 20),
        meter: None,
        oom_kills: 0,
        last_check: running.then(|| CheckResult {
            ok: true,
            detail: "200".into(),
            at_unix: NOW_UNIX - 1,
        }),
        request_timeout: Duration::from_secs(30),
        startup_timeout: Duration::from_secs(10),
        isolation: crate::config::Isolation::Process,
        stats: Default::default(),
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
        by_key.insert((v.service.clone(), v.id.clone()), i);
        services.get_mut(&v.service).unwrap().push(i);
    }
    Snapshot {
        domain: "example.com".into(),
        instances,
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
            peer: self.peer,
            forwarded_for: None,
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
                peer: std::net::IpAddr::from([203, 0, 113, 10 + n as u8]),
                forwarded_for: None,
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
        peer: std::net::IpAddr::from([127, 0, 0, 1]),
        forwarded_for: None,
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
        peer: f.peer,
        forwarded_for: None,
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

// --- commands ---------------------------------------------------------

#[test]
fn spawn_of_known_id_in_another_service_asks_supervisor() {
    let mut f = Fixture::new("api-spawn");
    // `prod` exists as api:prod, so its name is known good.
    let (cmd, code) = command(f.admin(
        "POST",
        "/api/instances/spawn",
        r#"{"service":"notes","id":"prod"}"#,
    ));
    assert_eq!(code, 201);
    assert!(
        matches!(cmd, Command::Spawn { key: k, weight: None, wait: false } if k == key("notes", "prod"))
    );
    let body = r#"{"service":"idle","id":"alice","weight":30,"wait":true}"#;
    let (cmd, _) = command(f.admin("POST", "/api/instances/spawn", body));
    assert!(
        matches!(cmd, Command::Spawn { key: k, weight: Some(30), wait: true } if k == key("idle", "alice"))
    );
}

#[test]
fn delete_restart_weight_ask_supervisor() {
    let mut f = Fixture::new("api-commands");
    let (cmd, code) = command(f.admin("DELETE", "/api/instances/notes:bob", ""));
    assert!(matches!(cmd, Command::Stop { key: k } if k == key("notes", "bob")));
    assert_eq!(code, 200);
    let (cmd, code) = command(f.admin("POST", "/api/instances/notes%3Abob/restart", ""));
    assert!(matches!(cmd, Command::Restart { key: k } if k == key("notes", "bob")));
    assert_eq!(code, 200);
    let (cmd, code) = command(f.admin("PUT", "/api/instances/api:prod/weight", r#"{"weight":0}"#));
    assert!(matches!(cmd, Command::Weight { key: k, weight: 0 } if k == key("api", "prod")));
    assert_eq!(code, 200);
    let (cmd, _) = command(f.admin(
        "PUT",
        "/api/instances/api%3aprod/weight",
        r#"{"weight":100}"#,
    ));
    assert!(matches!(cmd, Command::Weight { weight: 100, .. }));
}

#[test]
fn deploy_defaults_and_explicit_values() {
    let mut f = Fixture::new("api-deploy");
    let (cmd, code) = command(f.admin("POST", "/api/deploy", r#"{"service":"api","id":"prod"}"#));
    assert_eq!(code, 200);
    assert_eq!(
        deploy_args(cmd),
        (key("api", "prod"), 100, Duration::from_secs(60))
    );
    let body = r#"{"service":"notes","id":"prod","weight":10,"timeout_secs":5}"#;
    assert_eq!(
        deploy_args(command(f.admin("POST", "/api/deploy", body)).0),
        (key("notes", "prod"), 10, Duration::from_secs(5))
    );
}

/// The key, weight and timeout of a `Command::Deploy`.
fn deploy_args(cmd: Command) -> (InstanceKey, u8, Duration) {
    match cmd {
        Command::Deploy {
            key,
            weight,
            timeout,
        } => (key, weight, timeout),
        other => panic!("expected a deploy, got {other:?}"),
    }
}

#[test]
fn route_and_reload_ask_supervisor() {
    let mut f = Fixture::new("api-route");
    let (cmd, code) = command(f.admin(
        "POST",
        "/api/route",
        r#"{"service":"notes","from":"alice","to":"bob"}"#,
    ));
    assert_eq!(code, 200);
    assert!(
        matches!(cmd, Command::Route { from, to } if from.to_string() == "notes:alice" && to.to_string() == "notes:bob")
    );
    let (cmd, code) = command(f.admin("POST", "/api/reload", ""));
    assert!(matches!(cmd, Command::Reload));
    assert_eq!(code, 200);
}

// --- 400s ---------------------------------------------------------------

#[test]
fn bad_bodies_are_400_with_serde_message() {
    let mut f = Fixture::new("api-badjson");
    let m = error(f.admin("POST", "/api/instances/spawn", "{not json"), 400);
    assert!(
        m.starts_with("invalid request body: key must be a string"),
        "{m}"
    );
    let m = error(f.admin("POST", "/api/instances/spawn", ""), 400);
    assert!(m.contains("EOF"), "{m}");
    let m = error(
        f.admin(
            "POST",
            "/api/instances/spawn",
            r#"{"service":"notes","id":"prod","colour":1}"#,
        ),
        400,
    );
    assert!(m.contains("unknown field `colour`"), "{m}");
    let m = error(
        f.admin("POST", "/api/instances/spawn", r#"{"service":"notes"}"#),
        400,
    );
    assert!(m.contains("missing field `id`"), "{m}");
    let m = error(
        f.admin(
            "PUT",
            "/api/instances/api:prod/weight",
            r#"{"weight":"high"}"#,
        ),
        400,
    );
    assert!(m.contains("invalid type"), "{m}");
    let m = error(
        f.admin(
            "POST",
            "/api/route",
            r#"{"service":"notes","from":"alice"}"#,
        ),
        400,
    );
    assert!(m.contains("missing field `to`"), "{m}");
    let m = error(
        f.admin(
            "POST",
            "/api/deploy",
            r#"{"service":"api","id":"prod","timeout_secs":-1}"#,
        ),
        400,
    );
    assert!(m.contains("invalid value"), "{m}");
}

#[test]
fn weight_outside_0_to_100_is_400() {
    let mut f = Fixture::new("api-weight");
    for w in ["101", "-1", "1000", "256"] {
        let body = format!(r#"{{"weight":{w}}}"#);
        let m = error(f.admin("PUT", "/api/instances/api:prod/weight", &body), 400);
        assert_eq!(m, format!("weight must be 0-100, got {w}"));
    }
    let m = error(
        f.admin(
            "POST",
            "/api/instances/spawn",
            r#"{"service":"notes","id":"prod","weight":101}"#,
        ),
        400,
    );
    assert_eq!(m, "weight must be 0-100, got 101");
    let m = error(
        f.admin(
            "POST",
            "/api/deploy",
            r#"{"service":"notes","id":"prod","weight":-5}"#,
        ),
        400,
    );
    assert_eq!(m, "weight must be 0-100, got -5");
}

#[test]
fn bad_instance_segments_are_400() {
    let mut f = Fixture::new("api-badseg");
    let m = error(f.admin("DELETE", "/api/instances/notes-alice", ""), 400);
    assert_eq!(m, "invalid instance `notes-alice`: expected service:id");
    let m = error(
        f.admin("GET", "/api/instances/notes%zzalice/health", ""),
        400,
    );
    assert!(m.contains("percent-encoding"), "{m}");
}

#[test]
fn route_to_same_instance_is_400() {
    let mut f = Fixture::new("api-route-same");
    let m = error(
        f.admin(
            "POST",
            "/api/route",
            r#"{"service":"notes","from":"alice","to":"alice"}"#,
        ),
        400,
    );
    assert!(m.contains("same instance"), "{m}");
}

#[test]
fn bad_log_queries_are_400() {
    let mut f = Fixture::new("api-badlogs");
    assert!(error(f.admin("GET", "/api/logs?stream=both", ""), 400).contains("stream"));
    assert!(error(f.admin("GET", "/api/logs?limit=ten", ""), 400).contains("limit"));
    assert!(error(f.admin("GET", "/api/logs?limit=-1", ""), 400).contains("limit"));
    assert!(error(f.admin("GET", "/api/logs?since=yesterday", ""), 400).contains("since"));
    assert!(error(f.admin("GET", "/api/logs?search=%zz", ""), 400).contains("percent-encoding"));
}

#[test]
fn unknown_service_is_400() {
    let mut f = Fixture::new("api-unknown-service");
    let m = error(
        f.admin(
            "POST",
            "/api/instances/spawn",
            r#"{"service":"nope","id":"x"}"#,
        ),
        400,
    );
    assert_eq!(m, "unknown service `nope`");
    let m = error(
        f.admin("POST", "/api/deploy", r#"{"service":"nope","id":"x"}"#),
        400,
    );
    assert_eq!(m, "unknown service `nope`");
    let m = error(
        f.admin(
            "POST",
            "/api/route",
            r#"{"service":"nope","from":"a","to":"b"}"#,
        ),
        400,
    );
    assert_eq!(m, "unknown service `nope`");
    let m = error(f.admin("GET", "/api/logs?service=nope", ""), 400);
    assert_eq!(m, "unknown service `nope`");
}

#[test]
fn invalid_names_are_400_with_name_error() {
    let mut f = Fixture::new("api-badnames");
    for (method, path, body) in [
        (
            "POST",
            "/api/instances/spawn",
            r#"{"service":"Notes!","id":"x"}"#,
        ),
        (
            "POST",
            "/api/instances/spawn",
            r#"{"service":"notes","id":"-x"}"#,
        ),
        (
            "POST",
            "/api/instances/spawn",
            r#"{"service":"notes","id":""}"#,
        ),
        ("POST", "/api/deploy", r#"{"service":"notes","id":"a b"}"#),
        (
            "POST",
            "/api/route",
            r#"{"service":"notes","from":"alice","to":"B!"}"#,
        ),
        ("DELETE", "/api/instances/notes:a%20b", ""),
        ("GET", "/api/instances/BAD:x/health", ""),
        ("GET", "/api/logs?id=..%2F..", ""),
    ] {
        let m = error(f.admin(method, path, body), 400);
        assert!(m.starts_with("invalid "), "{method} {path}: {m}");
    }
}

#[test]
fn unknown_instances_are_404() {
    let mut f = Fixture::new("api-404-instance");
    for (method, path, body) in [
        ("DELETE", "/api/instances/notes:ghost", ""),
        ("POST", "/api/instances/notes:ghost/restart", ""),
        (
            "PUT",
            "/api/instances/notes:ghost/weight",
            r#"{"weight":1}"#,
        ),
        ("GET", "/api/instances/notes:ghost/health", ""),
        ("GET", "/api/instances/notes:ghost/storage", ""),
        ("GET", "/api/instances/nosuch:ghost/health", ""),
        (
            "POST",
            "/api/route",
            r#"{"service":"notes","from":"alice","to":"ghost"}"#,
        ),
    ] {
        let m = error(f.admin(method, path, body), 404);
        assert!(m.starts_with("unknown instance"), "{method} {path}: {m}");
    }
}

#[test]
fn spawn_of_new_id_asks_supervisor() {
    let mut f = Fixture::new("api-spawn-new");
    let (cmd, code) = command(f.admin(
        "POST",
        "/api/instances/spawn",
        r#"{"service":"notes","id":"carol"}"#,
    ));
    assert_eq!(code, 201);
    assert!(matches!(cmd, Command::Spawn { key: k, .. } if k == key("notes", "carol")));
}

// --- read-only answers ----------------------------------------------------

#[test]
fn list_has_every_instance_with_the_contract_keys() {
    let mut f = Fixture::new("api-list");
    let r = response(f.admin("GET", "/api/instances", ""));
    assert_eq!((r.status, r.content_type), (200, "application/json"));
    let list = body_json(&r);
    let list = list.as_array().unwrap();
    let names: Vec<&str> = list
        .iter()
        .map(|o| o["instance"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["api:alice", "api:prod", "notes:alice", "notes:bob"]);
    let prod = &list[1];
    let mut keys: Vec<&str> = prod
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "cpu_seconds",
            "health",
            "id",
            "instance",
            "isolation",
            "last_check",
            "memory_bytes",
            "oom_kills",
            "pid",
            "port",
            "restarts",
            "service",
            "state",
            "uptime_secs",
            "weight"
        ]
    );
    assert_eq!(prod["service"], "api");
    assert_eq!(prod["id"], "prod");
    assert_eq!(prod["state"], "running");
    assert_eq!(prod["health"], "healthy");
    assert_eq!(prod["isolation"], "process");
    assert_eq!(prod["uptime_secs"], 42);
    assert_eq!(prod["last_check"]["detail"], "200");
    assert_eq!(list[3]["state"], "sleeping");
    assert_eq!(list[3]["pid"], serde_json::Value::Null);
}

#[test]
fn instance_health_shape() {
    let mut f = Fixture::new("api-inst-health");
    let r = response(f.admin("GET", "/api/instances/notes:alice/health", ""));
    assert_eq!(
        body_json(&r),
        serde_json::json!({
            "instance": "notes:alice",
            "state": "running",
            "health": "healthy",
            "last_check": {"ok": true, "detail": "200", "at_unix": NOW_UNIX - 1},
            "restarts": 1,
        })
    );
}

#[test]
fn storage_sums_regular_files_without_following_symlinks() {
    let mut f = Fixture::new("api-storage");
    let root = f.dir.0.join("notes/alice");
    std::fs::create_dir_all(root.join("sub/deeper")).unwrap();
    std::fs::write(root.join("a"), vec![0u8; 100]).unwrap();
    std::fs::write(root.join("sub/b"), vec![0u8; 20]).unwrap();
    std::fs::write(root.join("sub/deeper/c"), vec![0u8; 3]).unwrap();
    let outside = f.dir.0.join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(outside.join("big"), vec![0u8; 5000]).unwrap();
    std::os::unix::fs::symlink(&outside, root.join("link-dir")).unwrap();
    std::os::unix::fs::symlink(outside.join("big"), root.join("link-file")).unwrap();
    let r = response(f.admin("GET", "/api/instances/notes:alice/storage", ""));
    assert_eq!(
        body_json(&r),
        serde_json::json!({
            "instance": "notes:alice",
            "path": root.display().to_string(),
            "bytes": 123,
            "quota_bytes": null,
            "percent": null,
            "measured_at": body_json(&r)["measured_at"],
        })
    );
    assert!(body_json(&r)["measured_at"]
        .as_str()
        .unwrap()
        .ends_with('Z'));
    // No data dir yet: zero bytes.
    let r = response(f.admin("GET", "/api/instances/notes:bob/storage", ""));
    assert_eq!(body_json(&r)["bytes"], 0);
}

#[test]
fn config_and_tls_status_for_admin() {
    let mut f = Fixture::new("api-config");
    assert_eq!(
        body_json(&response(f.admin("GET", "/api/config", "")))["settings"]["domain"],
        "example.com"
    );
    assert_eq!(
        body_json(&response(f.admin("GET", "/api/tls/status", ""))),
        serde_json::json!({"enabled": false})
    );
}

#[test]
fn event_streams_are_subscriptions_scoped_to_the_token() {
    use crate::supervisor::msg::Subscription;
    let mut f = Fixture::new("api-sse");
    error(f.call("GET", "/api/events", None, ""), 401);
    error(f.call("GET", "/api/logs/stream", None, ""), 401);
    let stream = |a: Action| match a {
        Action::Stream(what, _) => what,
        _ => panic!("expected a stream"),
    };
    assert_eq!(
        stream(f.admin("GET", "/api/events", "")),
        Subscription::Events { tenant: None }
    );
    assert_eq!(
        stream(f.alice("GET", "/api/events", "")),
        Subscription::Events {
            tenant: Some("alice".into())
        }
    );
    assert_eq!(
        stream(f.alice("GET", "/api/logs/stream?search=boom&stream=stderr", "")),
        Subscription::Logs {
            service: None,
            id: Some("alice".into()),
            search: Some("boom".into()),
            stream: Some("stderr".into()),
            tenant: Some("alice".into()),
        }
    );
    error(f.alice("GET", "/api/logs/stream?id=bob", ""), 403);
}

// --- metrics ------------------------------------------------------------------

#[test]
fn metrics_text_from_snapshot() {
    let mut f = Fixture::new("api-metrics");
    let r = response(f.admin("GET", "/metrics", ""));
    assert_eq!((r.status, r.content_type), (200, metrics::CONTENT_TYPE));
    let text = body_text(&r);
    for line in [
        "# TYPE ten_instances gauge",
        "ten_instances{state=\"starting\"} 0",
        "ten_instances{state=\"running\"} 2",
        "ten_instances{state=\"sleeping\"} 1",
        "ten_instances{state=\"failed\"} 1",
        "# TYPE ten_instance_up gauge",
        "ten_instance_up{service=\"api\",id=\"prod\"} 1",
        "ten_instance_up{service=\"notes\",id=\"bob\"} 0",
        "ten_instance_weight{service=\"notes\",id=\"alice\"} 100",
        "# TYPE ten_instance_restarts_total counter",
        "ten_instance_restarts_total{service=\"api\",id=\"alice\"} 1",
        "ten_instance_memory_bytes{service=\"api\",id=\"prod\"} 1048576",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "missing {line:?} in\n{text}"
        );
    }
    assert!(text.ends_with('\n'));
    assert!(!text.contains("ten_instance_memory_bytes{service=\"notes\",id=\"bob\"}"));
}

#[test]
fn metrics_needs_token_unless_public() {
    let mut f = Fixture::new("api-metrics-public");
    error(f.call("GET", "/metrics", None, ""), 401);
    f.snap.metrics_public = true;
    assert_eq!(status(f.call("GET", "/metrics", None, "")), 200);
}

// --- logs -------------------------------------------------------------------------

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

#[test]
fn logs_of_one_instance_filtered() {
    let mut f = log_fixture("api-logs-one");
    let r = response(f.admin("GET", "/api/logs?service=api&id=prod", ""));
    assert_eq!(lines(&r).len(), 4);
    let r = response(f.admin("GET", "/api/logs?process=api&id=prod&stream=stdout", ""));
    assert_eq!(
        lines(&r),
        ["api:prod stdout GET /one", "api:prod stdout GET /two"]
    );
    let r = response(f.admin("GET", "/api/logs?service=api&id=prod&search=slow+query", ""));
    assert_eq!(lines(&r), ["api:prod stderr slow query"]);
    let r = response(f.admin("GET", "/api/logs?service=api&id=prod&limit=2", ""));
    assert_eq!(
        lines(&r),
        ["api:prod stderr slow query", "api:prod stdout GET /two"]
    );
    // NOW is 20:44:15; 10s back leaves one line.
    let r = response(f.admin("GET", "/api/logs?service=api&id=prod&since=10s", ""));
    assert_eq!(lines(&r), ["api:prod stdout GET /two"]);
}

#[test]
fn logs_of_everything_merged_by_time() {
    let mut f = log_fixture("api-logs-all");
    let r = response(f.admin("GET", "/api/logs?search=GET", ""));
    assert_eq!(
        lines(&r),
        [
            "api:prod stdout GET /one",
            "notes:alice stdout GET /n1",
            "api:prod stdout GET /two"
        ]
    );
    let r = response(f.admin("GET", "/api/logs?limit=2", ""));
    assert_eq!(
        lines(&r),
        ["notes:alice stdout saved", "api:prod stdout GET /two"]
    );
    let r = response(f.admin("GET", "/api/logs?id=alice", ""));
    assert_eq!(
        lines(&r),
        ["notes:alice stdout GET /n1", "notes:alice stdout saved"]
    );
    let r = response(f.admin("GET", "/api/logs?service=notes", ""));
    assert_eq!(lines(&r).len(), 2);
}

#[test]
fn logs_limit_defaults_to_100() {
    let mut f = Fixture::new("api-logs-limit");
    let many: Vec<String> = (0..150)
        .map(|i| {
            format!(
                "2026-11-27T20:40:{:02}.{:03}Z stdout n{i}",
                i / 60,
                i % 1000
            )
        })
        .collect();
    let refs: Vec<&str> = many.iter().map(String::as_str).collect();
    write_log(&f.dir.0, "api", "prod", &refs);
    let got = lines(&response(f.admin(
        "GET",
        "/api/logs?service=api&id=prod",
        "",
    )));
    assert_eq!(got.len(), 100);
    assert_eq!(got[0], "api:prod stdout n50");
    assert_eq!(got[99], "api:prod stdout n149");
    // A limit over the cap is clamped, not refused.
    let got = lines(&response(f.admin(
        "GET",
        "/api/logs?service=api&id=prod&limit=1000000",
        "",
    )));
    assert_eq!(got.len(), 150);
}

#[test]
fn head_answers_like_get_wherever_get_is_allowed() {
    // Issue 10: HEAD on /health, /metrics and the dashboard was 405. The
    // loop leaves the body out; the status and headers are GET's.
    let mut f = Fixture::new("api-head");
    for path in ["/health", "/", "/metrics", "/api/instances", "/api/config"] {
        let get = response(f.admin("GET", path, ""));
        let head = response(f.admin("HEAD", path, ""));
        assert_eq!(get.status, 200, "{path}");
        assert_eq!(
            (head.status, head.content_type),
            (get.status, get.content_type),
            "{path}"
        );
    }
    // Without a token HEAD is refused exactly as GET is.
    assert_eq!(status(f.call("HEAD", "/metrics", None, "")), 401);
    assert_eq!(status(f.call("HEAD", "/health", None, "")), 200);
}

// --- tokens ------------------------------------------------------------

#[test]
fn token_list_is_admin_only_and_has_no_hashes() {
    let mut f = Fixture::new("api-tokens-list");
    let r = response(f.admin("GET", "/api/tokens", ""));
    assert_eq!(r.status, 200, "{}", body_text(&r));
    let list = body_json(&r);
    let list = list.as_array().expect("an array");
    assert_eq!(list.len(), 2);
    let alice = list.iter().find(|t| t["tenant"] == "alice").unwrap();
    assert_eq!(alice["id"], "0000beef");
    assert_eq!(alice["kind"], "tenant");
    assert!(!body_text(&r).contains("hash"), "{}", body_text(&r));
    // The admin's listing request itself counts as a use of its token.
    let admin = list.iter().find(|t| t["kind"] == "admin").unwrap();
    assert!(admin["last_used_unix"].is_u64(), "{admin}");
    assert_eq!(alice["last_used_unix"], serde_json::Value::Null);

    assert!(error(f.alice("GET", "/api/tokens", ""), 403).contains("admin token"));
    assert_eq!(status(f.call("GET", "/api/tokens", None, "")), 401);
    let e = error(f.admin("POST", "/api/tokens", ""), 405);
    assert!(e.contains("POST"), "{e}");
}

#[test]
fn token_revoke_asks_supervisor_for_admins_only() {
    let mut f = Fixture::new("api-tokens-revoke");
    let (cmd, ok) = command(f.admin("DELETE", "/api/tokens/0000beef", ""));
    assert_eq!(ok, 200);
    assert!(
        matches!(&cmd, Command::RevokeToken { id } if id == "0000beef"),
        "{cmd:?}"
    );
    assert!(!error(f.alice("DELETE", "/api/tokens/0000beef", ""), 403).is_empty());
    assert_eq!(
        status(f.call("DELETE", "/api/tokens/0000beef", None, "")),
        401
    );
    assert_eq!(status(f.admin("GET", "/api/tokens/0000beef", "")), 405);
    for path in ["/api/tokens/", "/api/tokens/a/b"] {
        assert_eq!(status(f.admin("DELETE", path, "")), 404, "{path}");
    }
}

#[test]
fn repeated_failed_authentication_is_slowed_but_never_on_ten_sock() {
    let mut f = Fixture::new("api-throttle");
    let wrong = format!("ten_{}", "0".repeat(64));
    // Requests without any token are not failed authentications.
    for _ in 0..30 {
        assert_eq!(status(f.call("GET", "/api/instances", None, "")), 401);
    }
    for i in 0..10 {
        let r = response(f.call("GET", "/api/instances", Some(&wrong), ""));
        assert_eq!(r.status, 401, "attempt {}", i + 1);
    }
    let r = response(f.call("GET", "/api/instances", Some(&wrong), ""));
    assert_eq!(r.status, 429, "{}", body_text(&r));
    let retry: u64 = header(&r, "Retry-After").unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    assert!(body_json(&r)["error"]
        .as_str()
        .unwrap()
        .contains("retry in"));
    // Even a good token waits: a 200 here would confirm a guess.
    let r = response(f.admin("GET", "/api/instances", ""));
    assert_eq!(r.status, 429);
    // Public endpoints stay open.
    assert_eq!(status(f.call("GET", "/health", None, "")), 200);
    // Another address is not slowed.
    f.peer = std::net::IpAddr::from([203, 0, 113, 2]);
    assert_eq!(status(f.admin("GET", "/api/instances", "")), 200);
    // ten.sock never is.
    let req = ApiRequest {
        method: "GET",
        path: "/api/instances",
        query: "",
        authorization: None,
        body: b"",
        local: true,
        peer: std::net::IpAddr::from([203, 0, 113, 1]),
        forwarded_for: None,
    };
    assert_eq!(status(f.api.handle_at(&req, &f.snap, now())), 200);
}
