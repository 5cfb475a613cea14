//! `GET /api/tls/allowed`: which names Caddy may get a certificate for, the
//! answers to bad queries, and the rate per address.

use std::net::IpAddr;
use std::time::Instant;

use super::*;
use crate::front::api::allowed::{would_serve, AskLimit, BURST};
use crate::names::ServiceName;

/// The fixture's snapshot plus autospawn on `api` (max 5) and on `idle`
/// (max 0), and `www` routed to `notes`.
fn with_autospawn() -> Snapshot {
    let mut snap = snapshot();
    snap.autospawn.insert(ServiceName::new("api").unwrap());
    snap.max_instances.insert("api".into(), 5);
    snap.autospawn.insert(ServiceName::new("idle").unwrap());
    snap.max_instances.insert("idle".into(), 0);
    snap.routing.subdomain.insert("www".into(), "notes".into());
    snap
}

#[test]
fn names_tenement_serves_are_allowed_and_nothing_else() {
    let snap = with_autospawn();
    for yes in [
        "example.com",
        "notes.example.com",
        "www.example.com",
        "alice.notes.example.com",
        "bob.notes.example.com",
        "prod.api.example.com",
        "new-id.api.example.com",
    ] {
        assert!(would_serve(&snap, yes), "{yes}");
    }
    for no in [
        "alice.api.example.com",
        "zed.notes.example.com",
        "x.idle.example.com",
        "nope.example.com",
        "a.b.notes.example.com",
        "example.org",
        "localhost",
        "127.0.0.1",
        "[::1]",
        "",
        "bad_name.api.example.com",
        "-x.api.example.com",
    ] {
        assert!(!would_serve(&snap, no), "{no:?}");
    }
    let mut full = with_autospawn();
    full.max_instances.insert("api".into(), 2);
    assert!(!would_serve(&full, "new-id.api.example.com"));
    assert!(would_serve(&full, "prod.api.example.com"));
}

#[test]
fn asks_need_no_token_and_bad_queries_are_400() {
    let mut f = Fixture::new("api-allowed");
    f.snap = with_autospawn();
    let mut ask = |query: &str| {
        let target = format!("/api/tls/allowed?{query}");
        response(f.call("GET", &target, None, ""))
    };
    let r = ask("domain=Alice.Notes.Example.COM.");
    assert_eq!((r.status, r.body.as_slice()), (200, &b"ok\n"[..]));
    assert_eq!(ask("domain=ghost.notes.example.com").status, 404);
    assert_eq!(ask("domain=alice.notes.example.com%2Fx").status, 404);
    assert_eq!(ask("domain=").status, 404);
    assert_eq!(ask("name=alice.notes.example.com").status, 400);
    assert_eq!(ask("domain=%zz").status, 400);
}

#[test]
fn each_address_gets_a_burst_then_its_rate() {
    let mut f = Fixture::new("api-allowed-rate");
    for _ in 0..BURST as usize {
        assert_eq!(
            status(f.call("GET", "/api/tls/allowed?domain=example.com", None, "")),
            200
        );
    }
    let r = response(f.call("GET", "/api/tls/allowed?domain=example.com", None, ""));
    assert_eq!(r.status, 429);
    assert!(
        r.headers
            .iter()
            .any(|(k, v)| *k == "Retry-After" && v == "1"),
        "{r:?}"
    );
    f.peer = IpAddr::from([198, 51, 100, 2]);
    assert_eq!(
        status(f.call("GET", "/api/tls/allowed?domain=example.com", None, "")),
        200
    );

    let limit = AskLimit::default();
    let t0 = Instant::now();
    let a = IpAddr::from([198, 51, 100, 1]);
    for _ in 0..BURST as usize {
        assert!(limit.take(a, t0).is_ok());
    }
    let wait = limit.take(a, t0).unwrap_err();
    assert!(
        wait > Duration::ZERO && wait <= Duration::from_millis(100),
        "{wait:?}"
    );
    assert!(limit.take(a, t0 + Duration::from_millis(150)).is_ok());
}
