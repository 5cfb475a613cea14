//! tenement as the node agent behind an edge proxy (issue 13): `ten export`
//! and the HAProxy example of examples/multi-node/.

mod util;

use std::path::Path;
use std::process::Command;

use util::*;

fn repo(rel: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

#[test]
fn export_prints_a_map_line_per_instance_and_served_service() {
    let config = format!(
        "{}{}{}",
        settings(""),
        py_service("web", "echo.py", ""),
        py_service("api", "echo.py", "")
    );
    let s = Server::start("multinode-export", &config);
    s.ten_ok(&["spawn", "web:alice"]);
    s.ten_ok(&["spawn", "web:bob", "--weight", "0"]);
    s.ten_ok(&["spawn", "api:v1", "--weight", "0"]);
    let out = s.ten_ok(&["export", "--haproxy-map", "--node", "node-a"]);
    // `api` has no instance with weight here: no `api.localhost` line.
    assert_eq!(
        stdout(&out),
        "v1.api.localhost node-a\n\
         alice.web.localhost node-a\n\
         bob.web.localhost node-a\n\
         web.localhost node-a\n"
    );
    // The same over TCP with the admin token, as JSON.
    let out = s.ten_tcp(&s.admin_token, &["export", "--json", "--node", "node-a"]);
    assert!(out.status.success(), "{}", describe(&out));
    let j: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(j["node"], "node-a");
    assert_eq!(j["domain"], "localhost");
    assert_eq!(j["entries"][1]["host"], "alice.web.localhost");
    assert_eq!(j["entries"][1]["instance"], "web:alice");
    // A tenant token may not read the map; a bad node name is a usage error.
    let alice = s.mint_token(Some("alice"));
    let out = s.ten_tcp(&alice, &["export"]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let out = s.ten(&["export", "--node", "a b"]);
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
}

#[test]
fn haproxy_accepts_the_example_config_and_map() {
    if !tools_present(&["haproxy"]) {
        return;
    }
    let scratch = Scratch::new("multinode-haproxy-check");
    let map = repo("examples/multi-node/tenement.map");
    let cfg = std::fs::read_to_string(repo("examples/multi-node/haproxy.cfg")).expect("example");
    assert!(cfg.contains("use_backend %[req.hdr(host),lower,map(/etc/haproxy/tenement.map)]"));
    assert!(cfg.contains("option httpchk GET /health"));
    assert!(cfg.contains("stats socket /run/haproxy/admin.sock"));
    // The same config with the map where this checkout has it.
    let cfg = cfg.replace("/etc/haproxy/tenement.map", map.to_str().expect("UTF-8"));
    let path = scratch.write("haproxy.cfg", &cfg);
    let out = Command::new("haproxy")
        .arg("-c")
        .arg("-f")
        .arg(&path)
        .output()
        .expect("run haproxy -c");
    assert!(
        out.status.success(),
        "haproxy -c refused the example\n{}",
        describe(&out)
    );
    // Every backend the map names exists in the config.
    let text = std::fs::read_to_string(&map).expect("map");
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let node = line.split_whitespace().nth(1).expect("HOST NODE");
        assert!(cfg.contains(&format!("backend {node}\n")), "{line}");
    }
}
