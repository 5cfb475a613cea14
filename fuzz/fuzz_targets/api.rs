//! The management API never panics and refuses every bad request with a
//! JSON 4xx: the input is split into an endpoint choice, a `{svc:id}` path
//! segment, a query string and a body, and driven through `Api::handle_at`
//! on `ten.sock` (no token, so every request reaches the parsers of JSON
//! bodies, query strings and path segments). Whatever reaches the
//! supervisor is within the bounds of `config::bounds`.
#![no_main]

// The whole crate, compiled in (it is a binary, not a library); its
// `crate::` paths resolve through the re-exports below.
#[allow(dead_code, unused_imports, unused_macros)]
#[path = "../../src/main.rs"]
mod ten;

#[allow(unused_imports)]
pub(crate) use ten::{cli, config, front, http, isolate, log, names, net, notify, server, state, supervisor, sys};

use std::collections::BTreeMap;
use std::sync::OnceLock;
use std::time::{Duration, UNIX_EPOCH};

use front::api::{Action, Api, ApiRequest};
use libfuzzer_sys::fuzz_target;
use supervisor::msg::Command;
use supervisor::Snapshot;

const ENDPOINTS: &[(&str, &str)] = &[
    ("POST", "/api/instances/spawn"),
    ("PUT", "/api/instances/{}/weight"),
    ("POST", "/api/deploy"),
    ("POST", "/api/route"),
    ("GET", "/api/logs"),
    ("GET", "/api/logs/stream"),
    ("DELETE", "/api/instances/{}"),
    ("GET", "/api/instances/{}/health"),
    ("POST", "/api/instances/{}/restart"),
    ("GET", "/api/instances/{}/storage"),
];

fn data_dir() -> &'static std::path::PathBuf {
    static DIR: OnceLock<std::path::PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let d = std::env::temp_dir().join(format!("ten-fuzz-api-{}", std::process::id()));
        std::fs::create_dir_all(&d).expect("temp dir");
        d
    })
}

// Input: one byte picks the endpoint; then segment, query and body split
// at the first two 0xff 0x00 markers (raw bytes; path and query must be text).
fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else { return };
    let mut parts = rest.splitn(3, |&b| b == 0);
    let seg = parts.next().unwrap_or_default();
    let query = parts.next().unwrap_or_default();
    let body = parts.next().unwrap_or_default();
    let (Ok(seg), Ok(query)) = (std::str::from_utf8(seg), std::str::from_utf8(query)) else {
        return;
    };
    let (method, template) = ENDPOINTS[pick as usize % ENDPOINTS.len()];
    let path = template.replace("{}", seg);
    let mut services = BTreeMap::new();
    services.insert("api".to_string(), Vec::new());
    let snap = Snapshot {
        domain: "example.com".into(),
        services,
        ..Snapshot::default()
    };
    let mut api = Api::new(data_dir().clone());
    let req = ApiRequest {
        method,
        path: &path,
        query,
        authorization: None,
        body,
        local: true,
        peer: std::net::IpAddr::from([127, 0, 0, 1]),
        forwarded_for: None,
    };
    let now = UNIX_EPOCH + Duration::from_secs(1_795_812_255);
    match api.handle_at(&req, &snap, now) {
        Action::Respond(resp) if resp.status >= 400 => {
            assert!(resp.status < 500, "{}", resp.status);
            let v: serde_json::Value = serde_json::from_slice(&resp.body).expect("JSON error body");
            assert!(v["error"].is_string());
        }
        Action::Ask { cmd: Command::Deploy { timeout, weight, .. }, .. } => {
            assert!(timeout <= Duration::from_secs(config::bounds::DEPLOY_TIMEOUT.max));
            assert!(weight <= 100);
        }
        Action::Ask { cmd: Command::Weight { weight, .. }, .. } => assert!(weight <= 100),
        _ => {}
    }
});
