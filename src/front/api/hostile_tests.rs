//! No request reaches a panic: a bounded, deterministic generator of hostile
//! inputs (huge and negative numbers, floats, wrong types, deep nesting,
//! invalid UTF-8, bad percent-encoding, very long strings, truncations)
//! driven through `Api::handle_at` at every endpoint, as JSON bodies, query
//! strings and `{svc:id}` path segments. Every refusal must be a JSON
//! `{"error": ...}` with a 4xx status; nothing may panic (the release build
//! aborts on panic, taking every instance's front down with it).

use std::collections::BTreeMap;
use std::time::{Duration, UNIX_EPOCH};

use super::*;
use crate::state::testdir::TempDir;

/// xorshift64*: the same sequence on every run, so a failure replays.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<'a>(&mut self, from: &[&'a str]) -> &'a str {
        from[self.below(from.len())]
    }
}

const NUMBERS: &[&str] = &[
    "0",
    "1",
    "-1",
    "100",
    "101",
    "86400",
    "86401",
    "9223372036854775807",
    "9223372036854775808",
    "-9223372036854775808",
    "18446744073709551615",
    "18446744073709551616",
    "340282366920938463463374607431768211456",
    "1e308",
    "1e309",
    "-1e309",
    "0.5",
    "-0",
    "1E2",
    "0x10",
];

const STRINGS: &[&str] = &[
    "\"\"",
    "\"api\"",
    "\"x\"",
    "\"prod\"",
    "\"../../etc\"",
    "\"a:b\"",
    "\"\\u0000\"",
    "\"\\ud800\"",
    "\"\\udfff\\ud800\"",
    "\"é\"",
    "\"UPPER\"",
    "\"-lead\"",
];

const KEYS: &[&str] = &[
    "service",
    "id",
    "weight",
    "wait",
    "timeout_secs",
    "from",
    "to",
    "process",
    "version",
    "timeout",
    "",
    "extra",
];

const QUERY_KEYS: &[&str] = &[
    "service", "process", "id", "search", "stream", "limit", "since", "level", "follow", "domain",
];

const QUERY_VALUES: &[&str] = &[
    "",
    "api",
    "x",
    "stdout",
    "stderr",
    "ten",
    "bogus",
    "%",
    "%z",
    "%zz",
    "%ff%fe",
    "%c3%28",
    "%00",
    "+",
    "a%2Fb",
    "0",
    "-1",
    "10000",
    "4294967296",
    "18446744073709551615",
    "18446744073709551616",
    "99999999999999999999d",
    "213503982334601s",
    "3650d",
    "3651d",
    "10m",
    "1h",
    "1x",
    "d",
];

const SEGMENTS: &[&str] = &[
    "api:x",
    "api:prod",
    "api",
    ":",
    "api:",
    ":x",
    "a:b:c",
    "%",
    "%zz",
    "api%3Ax",
    "%ff:%fe",
    "api:..",
    "api:%2e%2e",
    "API:X",
];

/// A JSON value, at most `depth` levels deep.
fn value(r: &mut Rng, depth: usize) -> String {
    match r.below(if depth == 0 { 4 } else { 7 }) {
        0 => r.pick(NUMBERS).to_string(),
        1 => r.pick(STRINGS).to_string(),
        2 => r.pick(&["null", "true", "false"]).to_string(),
        3 => format!("\"{}\"", "x".repeat(r.below(3) * 40_000)),
        4 => format!("[{}]", value(r, depth - 1)),
        5 => object(r, depth - 1),
        _ => {
            // Nesting far past serde_json's recursion limit.
            let n = 100 + r.below(5_000);
            format!("{}{}", "[".repeat(n), "]".repeat(n))
        }
    }
}

fn object(r: &mut Rng, depth: usize) -> String {
    let fields: Vec<String> = (0..r.below(6))
        .map(|_| format!("\"{}\":{}", r.pick(KEYS), value(r, depth)))
        .collect();
    format!("{{{}}}", fields.join(","))
}

/// The fields of a valid body for every endpoint that takes one.
const TEMPLATE: &[(&str, &str)] = &[
    ("service", "\"api\""),
    ("id", "\"x\""),
    ("weight", "50"),
    ("wait", "false"),
    ("timeout_secs", "60"),
    ("from", "\"x\""),
    ("to", "\"y\""),
];

/// An endpoint's valid body with some of its values swapped for hostile
/// ones, so the hostile value gets past the other fields' checks.
fn mutated(r: &mut Rng, fields: &[usize]) -> String {
    let parts: Vec<String> = fields
        .iter()
        .map(|&i| {
            let (k, v) = TEMPLATE[i];
            let v = if r.below(3) == 0 {
                value(r, 1)
            } else {
                v.to_string()
            };
            format!("\"{k}\":{v}")
        })
        .collect();
    format!("{{{}}}", parts.join(","))
}

/// A request body: a mutated valid body or a random object, sometimes cut
/// short, raw bytes or invalid UTF-8.
fn body(r: &mut Rng, fields: &[usize]) -> Vec<u8> {
    let mut b = if fields.is_empty() || r.below(3) == 0 {
        object(r, 2).into_bytes()
    } else {
        mutated(r, fields).into_bytes()
    };
    match r.below(16) {
        0 => b.truncate(r.below(b.len() + 1)),
        1 => {
            let at = r.below(b.len() + 1);
            b.splice(at..at, [0xff, 0xfe, 0xc3, 0x28, 0x80]);
        }
        2 => b = (0..r.below(64)).map(|_| r.next() as u8).collect(),
        3 => b = value(r, 3).into_bytes(),
        _ => {}
    }
    b
}

fn query(r: &mut Rng) -> String {
    let pairs: Vec<String> = (0..r.below(6))
        .map(|_| match r.below(10) {
            0 => r.pick(QUERY_VALUES).to_string(),
            1 => format!(
                "{}={}",
                r.pick(QUERY_KEYS),
                "9".repeat(r.below(3) * 5_000 + 1)
            ),
            _ => format!("{}={}", r.pick(QUERY_KEYS), r.pick(QUERY_VALUES)),
        })
        .collect();
    let sep = r.pick(&["&", "&&", ";", "&="]);
    pairs.join(sep)
}

fn snapshot() -> Snapshot {
    let mut services = BTreeMap::new();
    services.insert("api".to_string(), Vec::new());
    Snapshot {
        domain: "example.com".into(),
        services,
        ..Snapshot::default()
    }
}

#[test]
fn hostile_bodies_queries_and_paths_never_panic_and_are_refused_with_json() {
    let dir = TempDir::new("api-hostile");
    let mut api = Api::new(dir.0.clone());
    let snap = snapshot();
    let now = UNIX_EPOCH + Duration::from_secs(1_795_812_255);
    let mut r = Rng(0x9e37_79b9_7f4a_7c15);
    let mut refused = 0;
    let mut deploys = 0;
    for round in 0..20_000 {
        let seg = r.pick(SEGMENTS);
        let (method, path, fields): (_, _, &[usize]) = match r.below(10) {
            0 => ("POST", "/api/instances/spawn".to_string(), &[0, 1, 2, 3]),
            1 => ("PUT", format!("/api/instances/{seg}/weight"), &[2]),
            2 => ("POST", "/api/deploy".to_string(), &[0, 1, 2, 4]),
            3 => ("POST", "/api/route".to_string(), &[0, 5, 6]),
            4 => ("GET", "/api/logs".to_string(), &[]),
            5 => ("GET", "/api/logs/stream".to_string(), &[]),
            6 => ("DELETE", format!("/api/instances/{seg}"), &[]),
            7 => ("GET", format!("/api/instances/{seg}/health"), &[]),
            8 => ("POST", format!("/api/instances/{seg}/restart"), &[]),
            _ => ("GET", format!("/api/instances/{seg}/storage"), &[]),
        };
        let q = query(&mut r);
        let b = body(&mut r, fields);
        let req = ApiRequest {
            method,
            path: &path,
            query: &q,
            authorization: None,
            body: &b,
            local: true,
            client: std::net::IpAddr::from([127, 0, 0, 1]),
        };
        let what = || {
            format!(
                "round {round}: {method} {path}?{} body {:?}",
                q.chars().take(200).collect::<String>(),
                String::from_utf8_lossy(&b[..b.len().min(200)])
            )
        };
        match api.handle_at(&req, &snap, now) {
            Action::Respond(resp) if resp.status >= 400 => {
                refused += 1;
                assert!(resp.status < 500, "{}: {}", what(), resp.status);
                let v: serde_json::Value = serde_json::from_slice(&resp.body)
                    .unwrap_or_else(|e| panic!("{}: body is not JSON ({e})", what()));
                assert!(v["error"].is_string(), "{}: {v}", what());
            }
            // What reaches the supervisor is within its bounds: a duration
            // it turns into a deadline, a weight.
            Action::Ask { cmd, .. } => match cmd {
                Command::Deploy {
                    timeout, weight, ..
                } => {
                    deploys += 1;
                    let max = Duration::from_secs(bounds::DEPLOY_TIMEOUT.max);
                    assert!(timeout <= max, "{}: timeout {timeout:?}", what());
                    assert!(weight <= 100, "{}", what());
                }
                Command::Spawn { weight, .. } => {
                    assert!(weight.unwrap_or(0) <= 100, "{}", what())
                }
                Command::Weight { weight, .. } => assert!(weight <= 100, "{}", what()),
                _ => {}
            },
            _ => {}
        }
    }
    // Most requests are bad, and some good ones reach the supervisor.
    assert!(refused > 10_000, "only {refused} refused");
    assert!(deploys > 100, "only {deploys} deploys asked");
}
