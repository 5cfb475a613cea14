//! `/api/transfer/{svc:id}` (the receiving end of a move) and
//! `POST /api/instances/{svc:id}/move` (its start at the source).

use super::*;
use crate::transfer::frame::{self, Kind, Record};

fn body(path: &str, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    frame::encode(
        &mut out,
        &Record {
            kind: Kind::File,
            path: path.into(),
            mode: 0o600,
            size: data.len() as u64,
            offset: 0,
            mtime_ns: 1_700_000_000_000_000_000,
            data,
        },
    );
    out
}

/// POSTs `bytes` (ASCII here) with the admin token.
fn post(f: &mut Fixture, target: &str, bytes: &[u8]) -> Response {
    let text = std::str::from_utf8(bytes).expect("the test bodies are ASCII");
    response(f.admin("POST", target, text))
}

#[test]
fn data_for_an_unknown_instance_is_written_under_its_data_dir() {
    let mut f = Fixture::new("api-transfer");
    let r = post(
        &mut f,
        "/api/transfer/notes:carol",
        &body("db/notes.json", b"[1]"),
    );
    assert_eq!(r.status, 200, "{}", body_text(&r));
    assert_eq!(body_json(&r)["bytes"], 3);
    let file = f.dir.0.join("notes/carol/db/notes.json");
    assert_eq!(std::fs::read(&file).unwrap(), b"[1]");
    let m = body_json(&response(f.admin("GET", "/api/transfer/notes:carol", "")));
    let paths: Vec<&str> = m["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["path"].as_str().unwrap())
        .collect();
    assert_eq!(paths, ["db", "db/notes.json"]);
}

#[test]
fn data_is_refused_for_a_live_instance_a_bad_path_or_a_tenant() {
    let mut f = Fixture::new("api-transfer-refused");
    // notes:alice runs here: its data dir has a writer.
    let r = post(&mut f, "/api/transfer/notes:alice", &body("x", b"1"));
    assert_eq!(r.status, 409, "{}", body_text(&r));
    // A path outside the data dir never reaches the disk.
    let evil = format!("f 644 1 0 1 0 {} 6\n../../x1", frame::sha256_hex(b"1"));
    let r = post(&mut f, "/api/transfer/notes:carol", evil.as_bytes());
    assert_eq!(r.status, 400, "{}", body_text(&r));
    assert!(!f.dir.0.join("x").exists());
    // A corrupted byte fails the checksum.
    let mut b = body("a", b"hello");
    let last = b.len() - 1;
    b[last] ^= 1;
    assert_eq!(post(&mut f, "/api/transfer/notes:carol", &b).status, 400);
    assert!(!f.dir.0.join("notes/carol/a").exists());
    error(f.call("GET", "/api/transfer/notes:carol", None, ""), 401);
    error(f.alice("GET", "/api/transfer/notes:carol", ""), 403);
    error(f.admin("GET", "/api/transfer/nope:carol", ""), 400);
    // Once moved away, data may come back.
    let i = f.snap.by_key[&("notes".to_string(), "alice".to_string())];
    std::sync::Arc::make_mut(&mut f.snap.instances[i]).state = State::Moved;
    assert_eq!(
        post(&mut f, "/api/transfer/notes:alice", &body("x", b"1")).status,
        200
    );
    // And the edge map leaves a moved instance out.
    let map = body_text(&response(f.admin(
        "GET",
        "/api/export?node=n&format=haproxy-map",
        "",
    )));
    assert!(!map.contains("alice.notes"), "{map}");
}

#[test]
fn move_requests_become_commands() {
    let mut f = Fixture::new("api-move");
    let (cmd, status) = command(f.admin(
        "POST",
        "/api/instances/notes:alice/move",
        r#"{"to": "http://10.0.0.12:8080", "token": "ten_x"}"#,
    ));
    assert_eq!(status, 202);
    assert!(
        matches!(&cmd, Command::Move { key, to, token }
            if key.to_string() == "notes:alice" && to == "http://10.0.0.12:8080" && token == "ten_x"),
        "{cmd:?}"
    );
    let (cmd, _) = command(f.admin(
        "POST",
        "/api/instances/notes:alice/move",
        r#"{"flipped": true}"#,
    ));
    assert!(matches!(cmd, Command::MoveFlipped { .. }), "{cmd:?}");
    for bad in [
        "{}",
        r#"{"to": "http://x:1"}"#,
        r#"{"to": "ftp://x", "token": "t"}"#,
        r#"{"to": "http://x:1", "token": "a b"}"#,
        r#"{"flipped": true, "to": "http://x:1"}"#,
    ] {
        error(f.admin("POST", "/api/instances/notes:alice/move", bad), 400);
    }
    error(
        f.alice(
            "POST",
            "/api/instances/notes:alice/move",
            r#"{"flipped": true}"#,
        ),
        403,
    );
    error(
        f.admin(
            "POST",
            "/api/instances/notes:nobody/move",
            r#"{"flipped": true}"#,
        ),
        404,
    );
}
