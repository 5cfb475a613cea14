//! Token management against the real `ten serve`: `ten token list` and
//! `GET /api/tokens` (never the token or its hash), `ten token revoke` and
//! `DELETE /api/tokens/{id}` (refused at once, also on connections already
//! open; its event streams end), `ten token-gen --rotate` with the server running and stopped, and
//! "last used" kept across a restart, and 429 for repeated wrong tokens.

mod util;

use std::os::unix::fs::PermissionsExt;

use serde_json::Value;
use util::*;

fn sha256_hex_of_file_hashes(server: &Server) -> Vec<String> {
    let text = std::fs::read_to_string(server.data_dir.join(".tenement/tokens"))
        .expect("read the tokens file");
    let file: Value = serde_json::from_str(&text).expect("tokens file is JSON");
    file["tokens"]
        .as_array()
        .expect("tokens array")
        .iter()
        .map(|t| t["hash"].as_str().expect("hash").to_string())
        .collect()
}

/// `ten token list --json` through `ten.sock`.
fn list_json(server: &Server) -> Vec<Value> {
    let out = server.ten_ok(&["token", "list", "--json"]);
    match serde_json::from_str(&stdout(&out)) {
        Ok(Value::Array(items)) => items,
        other => panic!(
            "token list --json is not an array: {other:?}\n{}",
            describe(&out)
        ),
    }
}

fn find(items: &[Value], pred: impl Fn(&Value) -> bool) -> &Value {
    items
        .iter()
        .find(|t| pred(t))
        .unwrap_or_else(|| panic!("no such token in {items:?}"))
}

fn status(server: &Server, token: &str) -> u16 {
    server
        .api("GET", "/api/instances", Some(token), None)
        .status
}

#[test]
fn list_shows_ids_kinds_and_last_use_but_never_secrets() {
    let server = Server::start("tokens_list", &settings(""));
    let alice = server.mint_token(Some("alice"));
    assert_eq!(status(&server, &alice), 200);

    let items = list_json(&server);
    assert_eq!(items.len(), 2, "{items:?}");
    let admin = find(&items, |t| t["kind"] == "admin");
    let tenant = find(&items, |t| t["kind"] == "tenant");
    assert_eq!(admin["tenant"], Value::Null);
    assert_eq!(tenant["tenant"], "alice");
    for t in [admin, tenant] {
        let id = t["id"].as_str().expect("id");
        assert_eq!(id.len(), 8, "{t}");
        assert!(id.bytes().all(|b| b.is_ascii_hexdigit()), "{t}");
        assert!(t["created_unix"].as_u64().is_some(), "{t}");
    }
    // alice's token was used a moment ago; the admin token never over TCP.
    assert!(tenant["last_used_unix"].as_u64().is_some(), "{tenant}");
    assert_eq!(admin["last_used_unix"], Value::Null, "{admin}");

    // Neither the table, the JSON, nor the API holds a token or a hash.
    let table = stdout(&server.ten_ok(&["token", "list"]));
    assert!(table.starts_with("ID "), "{table}");
    assert!(table.contains("alice"), "{table}");
    assert!(table.contains("never"), "{table}");
    let api = server.api("GET", "/api/tokens", Some(&server.admin_token), None);
    assert_eq!(api.status, 200, "{}", api.text());
    assert_eq!(api.json().as_array().map(Vec::len), Some(2));
    let json_text = serde_json::to_string(&items).unwrap();
    for secret in [&server.admin_token, &alice] {
        let hex = &secret[4..];
        for text in [&table, &json_text, &api.text()] {
            assert!(!text.contains(hex), "a token leaked: {text}");
        }
    }
    for hash in sha256_hex_of_file_hashes(&server) {
        for text in [&table, &json_text, &api.text()] {
            assert!(!text.contains(&hash), "a hash leaked: {text}");
        }
    }

    // Tenants may not list or revoke tokens.
    let resp = server.api("GET", "/api/tokens", Some(&alice), None);
    assert_eq!(resp.status, 403, "{}", resp.text());
    let id = admin["id"].as_str().unwrap();
    let resp = server.api("DELETE", &format!("/api/tokens/{id}"), Some(&alice), None);
    assert_eq!(resp.status, 403, "{}", resp.text());
    assert_eq!(status(&server, &server.admin_token), 200);
    // Without a token: 401.
    let resp = server.api("GET", "/api/tokens", None, None);
    assert_eq!(resp.status, 401, "{}", resp.text());
}

#[test]
fn revoked_token_is_refused_at_once_also_on_open_connections() {
    let server = Server::start("tokens_revoke", &settings(""));
    let alice = server.mint_token(Some("alice"));
    let bob = server.mint_token(Some("bob"));
    let host = server.addr.to_string();
    let alice_auth = format!("Bearer {alice}");
    let bob_auth = format!("Bearer {bob}");
    // Keep-alive connections that have already used the tokens.
    let mut alice_conn = Conn::open(server.addr);
    let mut bob_conn = Conn::open(server.addr);
    let get = |conn: &mut Conn, auth: &str| {
        conn.request(
            "GET",
            &host,
            "/api/instances",
            &[("Authorization", auth)],
            b"",
        )
        .status
    };
    assert_eq!(get(&mut alice_conn, &alice_auth), 200);
    assert_eq!(get(&mut bob_conn, &bob_auth), 200);

    // Revoke alice's with the CLI (over ten.sock).
    let items = list_json(&server);
    let alice_id = find(&items, |t| t["tenant"] == "alice")["id"]
        .as_str()
        .unwrap()
        .to_string();
    let out = server.ten_ok(&["token", "revoke", &alice_id]);
    assert!(stdout(&out).contains(&alice_id), "{}", describe(&out));
    assert_eq!(
        get(&mut alice_conn, &alice_auth),
        401,
        "on the open connection"
    );
    assert_eq!(status(&server, &alice), 401, "on a new connection");
    assert_eq!(get(&mut bob_conn, &bob_auth), 200, "others keep working");

    // Revoke bob's through the API.
    let bob_id = find(&items, |t| t["tenant"] == "bob")["id"]
        .as_str()
        .unwrap()
        .to_string();
    let resp = server.api(
        "DELETE",
        &format!("/api/tokens/{bob_id}"),
        Some(&server.admin_token),
        None,
    );
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(resp.json()["revoked"]["id"], bob_id.as_str());
    assert_eq!(get(&mut bob_conn, &bob_auth), 401, "on the open connection");
    assert_eq!(status(&server, &bob), 401);

    // Unknown ids: 404 from the API, exit 1 from the CLI.
    let resp = server.api(
        "DELETE",
        &format!("/api/tokens/{bob_id}"),
        Some(&server.admin_token),
        None,
    );
    assert_eq!(resp.status, 404, "{}", resp.text());
    let out = server.ten(&["token", "revoke", &bob_id]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert!(
        stderr(&out).contains("no token with id"),
        "{}",
        describe(&out)
    );
    // Not an id at all: usage error.
    let out = server.ten(&["token", "revoke", "../x"]);
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));

    let left = list_json(&server);
    assert_eq!(left.len(), 1, "{left:?}");
    assert_eq!(left[0]["kind"], "admin");
    let mode = std::fs::metadata(server.data_dir.join(".tenement/tokens"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
}

#[test]
fn rotate_replaces_the_admin_token_while_running_and_stopped() {
    let mut server = Server::start("tokens_rotate", &settings(""));
    let old = server.admin_token.clone();
    let mut conn = Conn::open(server.addr);
    let host = server.addr.to_string();
    let auth = format!("Bearer {old}");
    let get = |conn: &mut Conn| {
        conn.request(
            "GET",
            &host,
            "/api/instances",
            &[("Authorization", &auth)],
            b"",
        )
        .status
    };
    assert_eq!(get(&mut conn), 200);

    let out = server.ten_ok(&["token-gen", "--rotate"]);
    let new = stdout(&out).trim().to_string();
    assert!(
        new.starts_with("ten_") && new.len() == 68,
        "{}",
        describe(&out)
    );
    assert_eq!(
        std::fs::read_to_string(server.data_dir.join("api_token")).unwrap(),
        format!("{new}\n")
    );
    let mode = std::fs::metadata(server.data_dir.join("api_token"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    assert_eq!(get(&mut conn), 401, "the old token on an open connection");
    assert_eq!(status(&server, &old), 401);
    assert_eq!(status(&server, &new), 200);
    assert_eq!(list_json(&server).len(), 1, "one admin token, not two");

    // Rotating a tenant token is a usage error.
    let out = server.ten(&["token-gen", "--rotate", "--tenant", "alice"]);
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));

    // With the server stopped, rotate and revoke work on the files, and the
    // server started again honours them.
    server.sigterm();
    let out = server.ten_ok(&["token-gen", "--rotate", "--description", "ops"]);
    let newer = stdout(&out).trim().to_string();
    let tenant_out = server.ten_ok(&["token-gen", "--tenant", "carol"]);
    let carol = stdout(&tenant_out).trim().to_string();
    let items = list_json(&server);
    assert_eq!(items.len(), 2, "{items:?}");
    let admin = find(&items, |t| t["kind"] == "admin");
    assert_eq!(admin["description"], "ops");
    let carol_id = find(&items, |t| t["tenant"] == "carol")["id"]
        .as_str()
        .unwrap()
        .to_string();
    server.ten_ok(&["token", "revoke", &carol_id]);
    server.serve_again();
    assert_eq!(status(&server, &new), 401);
    assert_eq!(status(&server, &newer), 200);
    assert_eq!(status(&server, &carol), 401);
}

#[test]
fn last_use_is_written_at_shutdown_not_per_request() {
    let mut server = Server::start("tokens_last_used", &settings(""));
    let tokens_file = server.data_dir.join(".tenement/tokens");
    let before = std::fs::read(&tokens_file).unwrap();
    for _ in 0..5 {
        assert_eq!(status(&server, &server.admin_token), 200);
    }
    // Using a token writes nothing.
    assert_eq!(std::fs::read(&tokens_file).unwrap(), before);
    let live = list_json(&server);
    let used = live[0]["last_used_unix"]
        .as_u64()
        .expect("last use in memory");

    server.sigterm();
    // With the server stopped the CLI reads the file: the use was saved.
    let saved = list_json(&server);
    assert_eq!(saved[0]["last_used_unix"].as_u64(), Some(used), "{saved:?}");
    let mode = std::fs::metadata(&tokens_file)
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
}

#[test]
fn repeated_wrong_tokens_from_one_address_get_429_but_not_on_ten_sock() {
    let server = Server::start("tokens_throttle", &settings(""));
    let wrong = format!("ten_{}", "0".repeat(64));
    for i in 0..10 {
        assert_eq!(status(&server, &wrong), 401, "failure {}", i + 1);
    }
    let resp = server.api("GET", "/api/instances", Some(&wrong), None);
    assert_eq!(resp.status, 429, "{}", resp.text());
    let retry: u64 = resp
        .header("Retry-After")
        .expect("Retry-After")
        .parse()
        .expect("Retry-After in seconds");
    assert!((1..=60).contains(&retry), "Retry-After {retry}");
    // The right token waits too, so a guess cannot be confirmed meanwhile.
    assert_eq!(status(&server, &server.admin_token), 429);
    let out = server.ten_tcp(&server.admin_token, &["ps"]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert!(stderr(&out).contains("retry in"), "{}", describe(&out));
    // Public endpoints are not slowed, and ten.sock never is.
    let host = server.addr.to_string();
    assert_eq!(server.http("GET", &host, "/health", &[], b"").status, 200);
    server.ten_ok(&["ps"]);
    server.ten_ok(&["token", "list"]);

    // A client not in trusted_proxies cannot dodge the count by claiming
    // another address.
    let admin_auth = format!("Bearer {}", server.admin_token);
    let mut conn = Conn::open(server.addr);
    for ip in ["203.0.113.10", "10.9.8.7", "::1"] {
        let resp = conn.request(
            "GET",
            &host,
            "/api/instances",
            &[("Authorization", &admin_auth), ("X-Forwarded-For", ip)],
            b"",
        );
        assert_eq!(resp.status, 429, "X-Forwarded-For: {ip}");
    }
}

#[test]
fn behind_a_trusted_proxy_each_client_counts_on_its_own() {
    let server = Server::start(
        "tokens_throttle_proxy",
        &settings("trusted_proxies = [\"127.0.0.1\", \"::1\"]"),
    );
    let wrong = format!("ten_{}", "0".repeat(64));
    let host = server.addr.to_string();
    let admin_auth = format!("Bearer {}", server.admin_token);
    let wrong_auth = format!("Bearer {wrong}");
    let mut conn = Conn::open(server.addr);
    let mut via = |ip: &str, auth: &str| {
        conn.request(
            "GET",
            &host,
            "/api/instances",
            &[("Authorization", auth), ("X-Forwarded-For", ip)],
            b"",
        )
        .status
    };
    assert_eq!(via("203.0.113.9", &admin_auth), 200);
    for _ in 0..10 {
        assert_eq!(via("203.0.113.9", &wrong_auth), 401);
    }
    assert_eq!(via("203.0.113.9", &admin_auth), 429);
    // What a client wrote before the proxy's entry proves nothing: the
    // rightmost address the proxy added is the one counted.
    assert_eq!(via("198.51.100.1, 203.0.113.9", &admin_auth), 429);
    // One failure each from many more addresses than the table holds:
    // the server keeps answering and the blocked address stays blocked.
    for i in 0..5000u32 {
        let ip = format!("10.{}.{}.{}", i >> 16, (i >> 8) & 255, i & 255);
        assert_eq!(via(&ip, &wrong_auth), 401, "{ip}");
    }
    assert_eq!(via("203.0.113.9", &admin_auth), 429);
    assert_eq!(via("203.0.113.10", &admin_auth), 200);
}

#[test]
fn event_streams_of_a_revoked_token_end() {
    let server = Server::start("tokens_streams", &settings(""));
    let alice = server.mint_token(Some("alice"));
    let bob = server.mint_token(Some("bob"));
    let mut alice_events = server.events("/api/events", Some(&alice));
    let mut alice_logs = server.events("/api/logs/stream", Some(&alice));
    let mut bob_events = server.events("/api/events", Some(&bob));

    let items = list_json(&server);
    let alice_id = find(&items, |t| t["tenant"] == "alice")["id"]
        .as_str()
        .unwrap()
        .to_string();
    server.ten_ok(&["token", "revoke", &alice_id]);
    for stream in [&mut alice_events, &mut alice_logs] {
        let ended = stream.wait_for(DEADLINE, |t| {
            t.contains(": token revoked") && t.ends_with("0\r\n\r\n")
        });
        assert!(ended, "the stream did not end: {:?}", stream.text);
    }
    // bob's stream goes on.
    assert!(
        !bob_events.wait_for(std::time::Duration::from_millis(600), |t| t
            .contains("token revoked")),
        "{:?}",
        bob_events.text
    );
    assert!(
        !bob_events.text.ends_with("0\r\n\r\n"),
        "{:?}",
        bob_events.text
    );
}
