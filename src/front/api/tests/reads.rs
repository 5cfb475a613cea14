//! API tests: the read-only answers (instance list, health, storage,
//! config, events), `/metrics`, `/api/logs` and the token endpoints.

use super::*;

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
            "gid",
            "health",
            "id",
            "instance",
            "isolation",
            "last_check",
            "memory_bytes",
            "oom_kills",
            "over_quota",
            "pid",
            "port",
            "restarts",
            "service",
            "state",
            "storage_bytes",
            "storage_quota_bytes",
            "uid",
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
    // The ids its process runs as; none while it has no process.
    assert_eq!(prod["uid"], 200_000 + prod["port"].as_u64().unwrap() % 1000);
    assert_eq!(prod["gid"], 200_000);
    assert_eq!(list[3]["uid"], serde_json::Value::Null);
    assert_eq!(list[3]["gid"], serde_json::Value::Null);
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
            "isolation": "process",
            "uid": 200_001,
            "gid": 200_000,
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
        client: std::net::IpAddr::from([203, 0, 113, 1]),
    };
    assert_eq!(status(f.api.handle_at(&req, &f.snap, now())), 200);
}
