//! Routing by Host: `{id}.{service}.{domain}` to one instance,
//! `{service}.{domain}` by smooth weighted round robin, `[routing]` rules,
//! 404 for everything else; `ten weight` and `ten route` change the spread.

mod util;

use std::collections::BTreeMap;

use util::*;

fn echo_service(name: &str) -> String {
    py_service(name, "echo.py", "health = \"/health\"")
}

/// Sends `n` GETs to `host` and counts the answering instance ids.
fn spread(server: &Server, host: &str, n: usize) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for _ in 0..n {
        let report = server.echo(host, "/spread");
        let id = report["env"]["INSTANCE_ID"]
            .as_str()
            .expect("INSTANCE_ID set")
            .to_string();
        *counts.entry(id).or_insert(0) += 1;
    }
    counts
}

fn counts(pairs: &[(&str, usize)]) -> BTreeMap<String, usize> {
    pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
}

/// Fields 3..=5 of /proc/PID/stat after the command name: ppid, pgrp, session.
fn pgrp_and_session(pid: u64) -> (u64, u64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("read stat");
    let rest = stat.rsplit_once(')').expect("stat has a command name").1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    (
        fields[2].parse().expect("pgrp"),
        fields[3].parse().expect("session"),
    )
}

#[test]
fn instance_host_reaches_that_instance_with_its_environment() {
    if !tools_present(&["python3"]) {
        return;
    }
    let fixtures = fixture("");
    let config = format!(
        // The API's pid is compared with the app's own: process level.
        "{}{}isolation = \"process\"\n{}workdir = {}\n\n[instances]\napi = [\"prod\", \"staging\"]\nweb = [\"main\"]\n",
        settings(""),
        echo_service("api"),
        echo_service("web"),
        toml_str(&fixtures),
    );
    let server = Server::start("instance_host", &config);
    let prod = server.wait_running("api:prod");
    server.wait_running("api:staging");
    server.wait_running("web:main");

    let report = server.echo("prod.api.localhost", "/some/path?q=1&r=two");
    assert_eq!(report["path"], "/some/path");
    assert_eq!(report["query"], "q=1&r=two");
    let env = &report["env"];
    assert_eq!(env["INSTANCE_ID"], "prod");
    assert_eq!(env["SERVICE"], "api");
    assert_eq!(env["HOST"], "127.0.0.1");
    assert_eq!(
        env["PORT"].as_str(),
        Some(prod["port"].to_string().as_str()),
        "PORT is the instance's port"
    );
    let data_dir = server.instance_dir("api", "prod");
    assert_eq!(env["DATA_DIR"].as_str(), data_dir.to_str());
    let socket = server
        .data_dir
        .join(".tenement")
        .join("run")
        .join("api.prod.sock");
    assert_eq!(env["SOCKET_PATH"].as_str(), socket.to_str());
    assert_eq!(
        report["data_dir_existed"], true,
        "DATA_DIR must exist before the app starts"
    );
    assert!(data_dir.is_dir());

    // The default workdir is the config file's folder.
    let root = server.root().canonicalize().expect("canonical root");
    assert_eq!(report["cwd"].as_str(), root.to_str(), "cwd = config folder");

    // The instance is the process tenement started: own session and group,
    // stdin from /dev/null.
    let pid = report["pid"].as_u64().expect("pid");
    assert_eq!(prod["pid"].as_u64(), Some(pid), "API pid is the app's pid");
    assert_eq!(
        pgrp_and_session(pid),
        (pid, pid),
        "instance leads its own session and process group"
    );
    let stdin = std::fs::read_link(format!("/proc/{pid}/fd/0")).expect("read stdin link");
    assert_eq!(stdin, std::path::Path::new("/dev/null"));

    // Host matching ignores case and the port.
    let host = format!("STAGING.Api.LocalHost:{}", server.addr.port());
    let report = server.echo(&host, "/");
    assert_eq!(report["env"]["INSTANCE_ID"], "staging");
    assert_eq!(report["env"]["SERVICE"], "api");

    // An explicit workdir is the cwd.
    let report = server.echo("main.web.localhost", "/");
    assert_eq!(report["env"]["SERVICE"], "web");
    let fixtures = fixtures.canonicalize().expect("canonical fixtures");
    assert_eq!(report["cwd"].as_str(), fixtures.to_str(), "cwd = workdir");
}

#[test]
fn unknown_host_and_unknown_id_are_404_and_create_nothing() {
    if !tools_present(&["python3"]) {
        return;
    }
    let config = format!(
        "{}{}[instances]\napi = [\"prod\"]\n",
        settings(""),
        echo_service("api")
    );
    let server = Server::start("unknown_404", &config);
    server.wait_running("api:prod");

    for host in [
        "ghost.api.localhost",
        "nosuch.localhost",
        "a.b.c.localhost",
        "example.org",
        "prod.api.example.org",
    ] {
        let resp = server.http("GET", host, "/", &[], b"");
        assert_eq!(resp.status, 404, "Host {host}: {}", resp.text());
    }
    // An instance is never created by a Host header.
    let listed: Vec<Value> = server.instances();
    assert_eq!(listed.len(), 1, "only api:prod exists: {listed:?}");
    assert!(server.instance("api:ghost").is_none());
    // The known instance still answers.
    assert_eq!(
        server.echo("prod.api.localhost", "/")["env"]["INSTANCE_ID"],
        "prod"
    );
}

#[test]
fn weighted_spread_is_exact_and_weight_zero_gets_nothing() {
    if !tools_present(&["python3"]) {
        return;
    }
    // One front loop: smooth weighted round robin is then one deterministic sequence.
    let config = format!("{}{}", settings("workers = 1"), echo_service("api"));
    let server = Server::start("weighted_spread", &config);
    server.ten_ok(&["spawn", "api:a", "--weight", "3", "--wait"]);
    server.ten_ok(&["spawn", "api:b", "--weight", "1", "--wait"]);
    server.ten_ok(&["spawn", "api:c", "--weight", "0", "--wait"]);
    assert_eq!(server.instance("api:a").expect("api:a")["weight"], 3);
    assert_eq!(server.instance("api:b").expect("api:b")["weight"], 1);
    assert_eq!(server.instance("api:c").expect("api:c")["weight"], 0);

    assert_eq!(
        spread(&server, "api.localhost", 40),
        counts(&[("a", 30), ("b", 10)])
    );

    // Weight 0 only keeps it out of the spread; its own host still reaches it.
    assert_eq!(
        server.echo("c.api.localhost", "/")["env"]["INSTANCE_ID"],
        "c"
    );

    server.ten_ok(&["weight", "api:a", "0"]);
    assert_eq!(server.instance("api:a").expect("api:a")["weight"], 0);
    assert_eq!(spread(&server, "api.localhost", 8), counts(&[("b", 8)]));
}

#[test]
fn route_moves_all_traffic_from_one_instance_to_another() {
    if !tools_present(&["python3"]) {
        return;
    }
    let config = format!("{}{}", settings("workers = 1"), echo_service("api"));
    let server = Server::start("route_swap", &config);
    server.ten_ok(&["spawn", "api:blue", "--weight", "100", "--wait"]);
    server.ten_ok(&["spawn", "api:green", "--weight", "0", "--wait"]);
    assert_eq!(spread(&server, "api.localhost", 6), counts(&[("blue", 6)]));

    server.ten_ok(&["route", "api", "--from", "blue", "--to", "green"]);
    assert_eq!(server.instance("api:blue").expect("api:blue")["weight"], 0);
    assert_eq!(
        server.instance("api:green").expect("api:green")["weight"],
        100
    );
    assert_eq!(spread(&server, "api.localhost", 6), counts(&[("green", 6)]));
    // Both still run: a swap moves traffic, it stops nothing.
    assert_eq!(
        server.instance("api:blue").expect("api:blue")["state"],
        "running"
    );
}

#[test]
fn request_to_a_starting_instance_is_held_until_ready() {
    if !tools_present(&["python3"]) {
        return;
    }
    let config = format!(
        "{}{}[service.slow.env]\nECHO_DELAY = \"1.5\"\n",
        settings(""),
        py_service(
            "slow",
            "echo.py",
            "health = \"/health\"\nstartup_timeout = 20"
        )
    );
    let server = Server::start("held_while_starting", &config);
    // Without --wait: returns once the command runs, well before it listens.
    server.ten_ok(&["spawn", "slow:one"]);
    let resp = server.http("GET", "one.slow.localhost", "/early", &[], b"");
    assert_eq!(
        resp.status,
        200,
        "held, not failed: {}\n--- server log ---\n{}",
        resp.text(),
        server.log()
    );
    assert_eq!(resp.json()["env"]["INSTANCE_ID"], "one");
}

#[test]
fn routing_rules_send_default_subdomain_and_path_to_their_services() {
    if !tools_present(&["python3"]) {
        return;
    }
    let config = format!(
        "{}{}{}{}[instances]\nweb = [\"main\"]\ndocs = [\"main\"]\npanel = [\"main\"]\n\n\
         [routing]\ndefault = \"web\"\n\n[routing.subdomain]\nadmin = \"panel\"\n\n[routing.path]\n\"/docs\" = \"docs\"\n",
        settings("").replace("domain = \"localhost\"", "domain = \"example.test\""),
        echo_service("web"),
        echo_service("docs"),
        echo_service("panel"),
    );
    let server = Server::start("routing_rules", &config);
    for key in ["web:main", "docs:main", "panel:main"] {
        server.wait_running(key);
    }
    let service = |host: &str, path: &str| {
        server.echo(host, path)["env"]["SERVICE"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };
    assert_eq!(service("example.test", "/"), "web");
    assert_eq!(service("example.test", "/anything/else"), "web");
    assert_eq!(service("example.test", "/docs/intro"), "docs");
    assert_eq!(service("admin.example.test", "/"), "panel");
    assert_eq!(service("main.docs.example.test", "/"), "docs");
    assert_eq!(
        server
            .http("GET", "other.example.test", "/", &[], b"")
            .status,
        404
    );
}
