//! API tests: what each command endpoint asks of the supervisor, and every
//! 400 and 404 a bad body, segment, query or name gets.

use super::*;

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
    assert_eq!(code, 204);
    // 204 like the original tenement: no body, whatever the supervisor said.
    let r = reply_response(
        Reply::Done(crate::supervisor::Done::Stopped(key("notes", "bob"))),
        204,
    );
    assert_eq!((r.status, r.body.len()), (204, 0));
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

/// Every body and query form of the original tenement's API is accepted:
/// `process` for `service`, `version` for deploy's `id`, `timeout` for
/// `timeout_secs`, `level=` for `stream=`. Giving both names is refused.
#[test]
fn the_original_tenements_api_forms_are_accepted() {
    let mut f = Fixture::new("api-original");
    let (cmd, _) = command(f.admin(
        "POST",
        "/api/instances/spawn",
        r#"{"process":"notes","id":"x"}"#,
    ));
    assert!(matches!(cmd, Command::Spawn { key: k, .. } if k == key("notes", "x")));
    let body = r#"{"process":"api","version":"v2","weight":5,"timeout":7}"#;
    match command(f.admin("POST", "/api/deploy", body)).0 {
        Command::Deploy {
            key: k,
            weight,
            timeout,
        } => assert_eq!(
            (k, weight, timeout),
            (key("api", "v2"), 5, Duration::from_secs(7))
        ),
        other => panic!("{other:?}"),
    }
    let (cmd, _) = command(f.admin(
        "POST",
        "/api/route",
        r#"{"process":"notes","from":"alice","to":"bob"}"#,
    ));
    assert!(matches!(cmd, Command::Route { from, .. } if from == key("notes", "alice")));
    for (path, body) in [
        (
            "/api/instances/spawn",
            r#"{"service":"notes","process":"notes","id":"x"}"#,
        ),
        ("/api/deploy", r#"{"service":"api","id":"a","version":"b"}"#),
        (
            "/api/deploy",
            r#"{"service":"api","id":"a","timeout":1,"timeout_secs":2}"#,
        ),
    ] {
        let m = error(f.admin("POST", path, body), 400);
        assert!(m.contains("duplicate field"), "{body}: {m}");
    }
    for (query, want) in [
        ("level=error", "stderr"),
        ("level=WARN", "stderr"),
        ("level=stderr", "stderr"),
        ("level=info", "stdout"),
        ("level=stdout", "stdout"),
        ("level=error&stream=stderr", "stderr"),
    ] {
        match f.admin("GET", &format!("/api/logs/stream?{query}"), "") {
            Action::Stream(crate::supervisor::msg::Subscription::Logs { stream, .. }, _) => {
                assert_eq!(stream.as_deref(), Some(want), "{query}")
            }
            _ => panic!("{query}: not a stream"),
        }
        assert_eq!(
            status(f.admin("GET", &format!("/api/logs?{query}"), "")),
            200
        );
    }
    for query in ["level=debug", "level=error&stream=stdout"] {
        let m = error(f.admin("GET", &format!("/api/logs?{query}"), ""), 400);
        assert!(m.contains("level"), "{query}: {m}");
    }
}
