//! The `ten` commands against a running server (over `ten.sock`) and on
//! local files: token-gen, spawn (exec errors, --wait), stop (process group,
//! storage_persist), ps/ls (table and JSON), health, restart, deploy, logs,
//! init, and usage errors (exit 2).

mod util;

use std::os::unix::fs::PermissionsExt;

use serde_json::json;
use util::*;

fn echo(name: &str) -> String {
    py_service(name, "echo.py", "health = \"/health\"")
}

/// A token as `ten token-gen` prints it: `ten_` and 64 lowercase hex digits.
fn is_token(s: &str) -> bool {
    s.len() == 68
        && s.starts_with("ten_")
        && s[4..]
            .chars()
            .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c))
}

fn mode(path: &std::path::Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("stat {}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

#[test]
fn token_gen_prints_a_token_once_and_saves_the_admin_one() {
    let scratch = Scratch::new("token_gen");
    let data = scratch.path("data");
    let data_s = data.to_str().expect("UTF-8 path");

    let out = ten_raw(&scratch.root, &["--data-dir", data_s, "token-gen"]);
    assert!(out.status.success(), "{}", describe(&out));
    let text = stdout(&out);
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("  ") && is_token(l.trim()))
        .collect();
    assert_eq!(
        lines.len(),
        1,
        "one token line indented by two spaces:\n{text}"
    );
    assert_eq!(
        lines[0],
        format!("  {}", lines[0].trim()),
        "nothing else on the token line"
    );
    let admin = lines[0].trim().to_string();

    let api_token = data.join("api_token");
    assert_eq!(
        std::fs::read_to_string(&api_token)
            .expect("api_token")
            .trim(),
        admin
    );
    assert_eq!(mode(&api_token), 0o600, "api_token is 0600");
    let tokens = data.join(".tenement").join("tokens");
    assert_eq!(mode(&tokens), 0o600, "tokens is 0600");
    let stored = std::fs::read_to_string(&tokens).expect("tokens file");
    assert!(
        !stored.contains(&admin[4..]),
        "the token store holds hashes, never the token"
    );
    let _: Value = serde_json::from_str(&stored).expect("tokens file is JSON");

    let out = ten_raw(
        &scratch.root,
        &[
            "--data-dir",
            data_s,
            "token-gen",
            "--tenant",
            "alice",
            "--description",
            "alice's laptop",
        ],
    );
    assert!(out.status.success(), "{}", describe(&out));
    let tenant = stdout(&out)
        .lines()
        .map(str::trim)
        .find(|l| is_token(l))
        .expect("tenant token printed")
        .to_string();
    assert_ne!(tenant, admin);
    assert_eq!(
        std::fs::read_to_string(&api_token)
            .expect("api_token")
            .trim(),
        admin,
        "a tenant token does not replace the admin token"
    );
    let stored = std::fs::read_to_string(&tokens).expect("tokens file");
    assert!(
        !stored.contains(&tenant[4..]),
        "the token store holds hashes, never the token"
    );

    let out = ten_raw(
        &scratch.root,
        &["--data-dir", data_s, "token-gen", "--tenant", "Not Valid!"],
    );
    assert_eq!(
        out.status.code(),
        Some(2),
        "bad tenant name is a usage error\n{}",
        describe(&out)
    );
}

#[test]
fn spawn_reports_a_missing_program_at_once() {
    let config = format!(
        "{}[service.broken]\ncommand = \"/nonexistent/ten-test-no-such-program --flag\"\n",
        settings("")
    );
    let server = Server::start("spawn_exec_error", &config);
    // Without --wait: the exec error is still reported, not found later.
    let out = server.ten(&["spawn", "broken:one"]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let err = stderr(&out);
    assert!(err.starts_with("ten: error:"), "{}", describe(&out));
    let lower = err.to_lowercase();
    assert!(
        lower.contains("no such file")
            || lower.contains("not found")
            || lower.contains("ten-test-no-such-program"),
        "the reason is given: {err}"
    );

    // The API says the same with a JSON error.
    let resp = server.api(
        "POST",
        "/api/instances/spawn",
        Some(&server.admin_token),
        Some(&json!({"service": "broken", "id": "two"})),
    );
    assert!(
        matches!(resp.status, 400 | 500),
        "exec error status: {} {}",
        resp.status,
        resp.text()
    );
    assert!(resp.json()["error"].is_string());
}

#[test]
fn spawn_wait_returns_once_ready() {
    if !tools_present(&["python3"]) {
        return;
    }
    let config = format!(
        "{}{}[service.slow.env]\nECHO_DELAY = \"1\"\n",
        settings(""),
        py_service(
            "slow",
            "echo.py",
            "health = \"/health\"\nstartup_timeout = 20"
        )
    );
    let server = Server::start("spawn_wait", &config);
    // The `SVC --id ID` form.
    server.ten_ok(&["spawn", "slow", "--id", "one", "--wait"]);
    // No polling: --wait returned, so it is ready now.
    let inst = server.instance("slow:one").expect("slow:one listed");
    assert_eq!(inst["state"], "running", "{inst}");
    assert_eq!(
        server.echo("one.slow.localhost", "/")["env"]["INSTANCE_ID"],
        "one"
    );
}

#[test]
fn spawn_wait_fails_with_the_reason_and_the_last_output() {
    if !tools_present(&["python3"]) {
        return;
    }
    let config = format!(
        "{}{}",
        settings(""),
        py_service(
            "bad",
            "exit_on_start.py",
            "restart = \"never\"\nstartup_timeout = 5"
        )
    );
    let server = Server::start("spawn_wait_fails", &config);
    let out = server.ten(&["spawn", "bad:one", "--wait"]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let err = stderr(&out);
    assert!(err.starts_with("ten: error:"), "{}", describe(&out));
    assert!(
        err.contains("exit-on-start:"),
        "the last lines the app printed are shown:\n{err}"
    );
}

#[test]
fn stop_kills_the_whole_process_group() {
    if !tools_present(&["python3"]) {
        return;
    }
    let config = format!(
        "{}{}",
        settings(""),
        py_service(
            "forker",
            "forker.py",
            // The grandchild's pid is read from the host.
            "health = \"/health\"\nisolation = \"process\"",
        )
    );
    let server = Server::start("stop_group", &config);
    server.ten_ok(&["spawn", "forker:one", "--wait"]);
    let pid = server.instance("forker:one").expect("listed")["pid"]
        .as_u64()
        .expect("pid") as u32;
    let pid_file = server.instance_dir("forker", "one").join("grandchild.pid");
    assert!(
        wait_until(DEADLINE, || pid_file.exists()),
        "forker wrote {}",
        pid_file.display()
    );
    let grandchild: u32 = std::fs::read_to_string(&pid_file)
        .expect("pid file")
        .trim()
        .parse()
        .expect("a pid");
    assert!(
        pid_alive(grandchild),
        "grandchild {grandchild} runs before the stop"
    );

    server.ten_ok(&["stop", "forker:one"]);
    assert!(
        wait_until(DEADLINE, || !pid_alive(pid) && !pid_alive(grandchild)),
        "instance {pid} alive: {}, grandchild {grandchild} alive: {}\n--- server log ---\n{}",
        pid_alive(pid),
        pid_alive(grandchild),
        server.log()
    );
    assert!(
        server.instance("forker:one").is_none(),
        "a stopped instance is forgotten"
    );
}

#[test]
fn storage_persist_keeps_or_deletes_the_data_dir_on_stop() {
    if !tools_present(&["python3"]) {
        return;
    }
    let config = format!(
        "{}{}{}",
        settings(""),
        py_service(
            "keep",
            "echo.py",
            "health = \"/health\"\nstorage_persist = true"
        ),
        py_service(
            "drop",
            "echo.py",
            "health = \"/health\"\nstorage_persist = false"
        ),
    );
    let server = Server::start("storage_persist", &config);
    server.ten_ok(&["spawn", "keep:one", "--wait"]);
    server.ten_ok(&["spawn", "drop:one", "--wait"]);
    let keep = server.instance_dir("keep", "one");
    let drop_dir = server.instance_dir("drop", "one");
    for dir in [&keep, &drop_dir] {
        assert!(dir.is_dir(), "{} exists while running", dir.display());
        std::fs::write(dir.join("notes.json"), "[\"precious\"]").expect("write into data dir");
    }
    server.ten_ok(&["stop", "keep:one"]);
    server.ten_ok(&["stop", "drop:one"]);
    assert!(
        wait_until(DEADLINE, || !drop_dir.exists()),
        "storage_persist = false deletes {}",
        drop_dir.display()
    );
    assert_eq!(
        std::fs::read_to_string(keep.join("notes.json")).expect("kept file"),
        "[\"precious\"]",
        "storage_persist = true keeps the data"
    );
}

#[test]
fn ps_prints_a_table_and_json() {
    if !tools_present(&["python3"]) {
        return;
    }
    let config = format!("{}{}", settings(""), echo("api"));
    let server = Server::start("ps_json", &config);
    server.ten_ok(&["spawn", "api:two", "--weight", "5", "--wait"]);
    server.ten_ok(&["spawn", "api:one", "--wait"]);

    let columns = [
        "INSTANCE",
        "STATE",
        "HEALTH",
        "PID",
        "PORT",
        "UPTIME",
        "WEIGHT",
        "RESTARTS",
        "MEM",
        "DISK",
        "ISOLATION",
        "UID",
    ];
    for cmd in ["ps", "ls"] {
        let out = server.ten_ok(&[cmd]);
        let text = stdout(&out);
        let header: Vec<&str> = text
            .lines()
            .next()
            .unwrap_or_default()
            .split_whitespace()
            .collect();
        assert_eq!(header, columns, "ten {cmd} header:\n{text}");
        assert!(
            text.contains("api:one") && text.contains("api:two"),
            "ten {cmd}:\n{text}"
        );
        assert!(text.contains("running"), "ten {cmd}:\n{text}");
    }

    for args in [&["ps", "--json"][..], &["--json", "ps"][..]] {
        let out = server.ten_ok(args);
        let listed: Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{args:?} is JSON ({e}):\n{}", describe(&out)));
        let items = listed.as_array().expect("a JSON array");
        let keys: Vec<&str> = items
            .iter()
            .map(|i| i["instance"].as_str().unwrap_or_default())
            .collect();
        assert_eq!(keys, ["api:one", "api:two"], "sorted by service, id");
        for item in items {
            for key in [
                "service",
                "id",
                "state",
                "health",
                "pid",
                "port",
                "weight",
                "restarts",
                "uptime_secs",
                "memory_bytes",
                "last_check",
            ] {
                assert!(item.get(key).is_some(), "{key} in {item}");
            }
            assert_eq!(item["service"], "api");
            assert_eq!(item["state"], "running");
            assert!(item["pid"].as_u64().is_some_and(|p| p > 1));
            assert!(item["port"].as_u64().is_some_and(|p| p > 0));
        }
        assert_eq!(items[1]["weight"], 5);
    }
}

#[test]
fn health_restart_and_logs_commands() {
    if !tools_present(&["python3"]) {
        return;
    }
    let config = format!("{}{}", settings(""), echo("api"));
    let server = Server::start("health_restart_logs", &config);
    server.ten_ok(&["spawn", "api:one", "--wait"]);
    let before = server.wait_running("api:one");
    assert!(
        wait_until(DEADLINE, || server
            .instance("api:one")
            .is_some_and(|i| i["health"] == "healthy")),
        "api:one becomes healthy\n--- server log ---\n{}",
        server.log()
    );
    let out = server.ten_ok(&["health", "api:one"]);
    let text = stdout(&out);
    assert!(
        text.contains("running") && text.contains("healthy"),
        "ten health shows state and health:\n{text}"
    );

    // Logs: what the app printed, newest last.
    let mut last = String::new();
    assert!(
        wait_until(DEADLINE, || {
            last = stdout(&server.ten(&["logs", "api:one"]));
            last.contains("echo listening on")
        }),
        "ten logs shows the app's output:\n{last}"
    );

    let old_pid = before["pid"].as_u64().expect("pid") as u32;
    server.ten_ok(&["restart", "api:one"]);
    assert!(
        wait_until(DEADLINE, || server
            .instance("api:one")
            .is_some_and(|i| i["state"] == "running"
                && i["pid"].as_u64().is_some_and(|p| p as u32 != old_pid))),
        "restart gives a new running process\n--- server log ---\n{}",
        server.log()
    );
    assert!(
        wait_until(DEADLINE, || !pid_alive(old_pid)),
        "the old process {old_pid} is gone"
    );
}

#[test]
fn deploy_waits_for_health_then_sets_the_weight() {
    if !tools_present(&["python3"]) {
        return;
    }
    let config = format!(
        "{}{}[service.api.env]\nECHO_DELAY = \"0.5\"\n",
        settings(""),
        py_service(
            "api",
            "echo.py",
            "health = \"/health\"\nstartup_timeout = 20"
        )
    );
    let server = Server::start("deploy_ok", &config);
    server.ten_ok(&["deploy", "api:v2", "--weight", "40", "--timeout", "20"]);
    // No polling: deploy returned, so it is healthy and weighted now.
    let inst = server.instance("api:v2").expect("api:v2 listed");
    assert_eq!(inst["state"], "running", "{inst}");
    assert_eq!(inst["weight"], 40, "{inst}");
    assert_eq!(
        server.echo("api.localhost", "/")["env"]["INSTANCE_ID"],
        "v2"
    );
}

#[test]
fn deploy_fails_when_the_instance_never_gets_healthy() {
    if !tools_present(&["python3"]) {
        return;
    }
    let config = format!(
        "{}{}",
        settings(""),
        py_service(
            "api",
            "never_ready.py",
            "health = \"/health\"\nstartup_timeout = 2"
        )
    );
    let server = Server::start("deploy_timeout", &config);
    let out = server.ten(&["deploy", "api:v2", "--weight", "100", "--timeout", "2"]);
    assert!(
        !out.status.success(),
        "deploy of a never-ready app must fail\n{}",
        describe(&out)
    );
    assert!(stderr(&out).contains("ten: error:"), "{}", describe(&out));
}

#[test]
fn bad_names_and_bad_usage_exit_2() {
    if !tools_present(&["python3"]) {
        return;
    }
    let config = format!("{}{}", settings(""), echo("api"));
    let server = Server::start("usage_errors", &config);
    let cases: &[&[&str]] = &[
        &["spawn", "Api:one"],
        &["spawn", "api:Bad!"],
        &["spawn", "api:bad name"],
        &["spawn", "api:"],
        &["spawn", ":one"],
        &["spawn", "api"],
        &["spawn"],
        &["spawn", "api", "--id", "x.y"],
        &["stop", "api:no/slash"],
        &["weight", "api:one", "lots"],
        &["weight", "api:one"],
        &["route", "api", "--from", "a"],
        &["frobnicate"],
        &["ps", "--no-such-flag"],
    ];
    for args in cases {
        let out = server.ten(args);
        assert_eq!(
            out.status.code(),
            Some(2),
            "ten {args:?}\n{}",
            describe(&out)
        );
        assert!(
            stderr(&out).starts_with("ten: error:"),
            "ten {args:?}\n{}",
            describe(&out)
        );
    }
    assert!(server.instances().is_empty(), "nothing was spawned");

    let out = ten_raw(server.root(), &["--help"]);
    assert!(out.status.success(), "{}", describe(&out));
    let out = ten_raw(server.root(), &["spawn", "--help"]);
    assert!(out.status.success(), "{}", describe(&out));
    assert!(
        stdout(&out).contains("--wait"),
        "spawn --help documents --wait:\n{}",
        describe(&out)
    );
}

#[test]
fn init_writes_a_config_that_config_check_accepts() {
    let scratch = Scratch::new("init_check");
    let dir = scratch.path("named");
    std::fs::create_dir_all(&dir).expect("mkdir");
    let out = ten_raw(
        &dir,
        &["init", "--name", "web", "--command", "python3 app.py"],
    );
    assert!(out.status.success(), "{}", describe(&out));
    let written =
        std::fs::read_to_string(dir.join("tenement.toml")).expect("ten init wrote tenement.toml");
    assert!(written.contains("[service.web]"), "{written}");
    assert!(written.contains("python3 app.py"), "{written}");
    // Found as ./tenement.toml, and by --config.
    let out = ten_raw(&dir, &["config", "--check"]);
    assert!(
        out.status.success(),
        "config --check accepts what init wrote\n{}",
        describe(&out)
    );
    let path = dir.join("tenement.toml");
    let out = ten_raw(
        &scratch.root,
        &[
            "--config",
            path.to_str().expect("UTF-8"),
            "config",
            "--check",
        ],
    );
    assert!(out.status.success(), "{}", describe(&out));
    let out = ten_raw(&dir, &["config"]);
    assert!(out.status.success(), "{}", describe(&out));
    assert!(
        stdout(&out).contains("web"),
        "ten config prints the resolved config:\n{}",
        describe(&out)
    );

    // With no options at all.
    let plain = scratch.path("plain");
    std::fs::create_dir_all(&plain).expect("mkdir");
    let out = ten_raw(&plain, &["init"]);
    assert!(out.status.success(), "{}", describe(&out));
    let out = ten_raw(&plain, &["config", "--check"]);
    assert!(out.status.success(), "{}", describe(&out));
}

/// A TCP listener that records every request it gets and answers 401, as
/// a stranger's listener on a shared machine would (or could).
struct Snoop {
    addr: std::net::SocketAddr,
    seen: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl Snoop {
    fn start() -> Snoop {
        Snoop::on(std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port"))
    }

    fn on(listener: std::net::TcpListener) -> Snoop {
        use std::io::{Read, Write};
        let addr = listener.local_addr().expect("local addr");
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let log = seen.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { return };
                let _ = conn.set_read_timeout(Some(std::time::Duration::from_secs(2)));
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                    match conn.read(&mut chunk) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                log.lock()
                    .unwrap()
                    .push(String::from_utf8_lossy(&buf).into_owned());
                let body = r#"{"error":"unauthorized"}"#;
                let _ = conn.write_all(
                    format!(
                        "HTTP/1.1 401 Unauthorized\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    )
                    .as_bytes(),
                );
            }
        });
        Snoop { addr, seen }
    }

    fn requests(&self) -> Vec<String> {
        self.seen.lock().unwrap().clone()
    }
}

/// Runs `ten ARGS` in `cwd` with exactly the `TENEMENT_*` variables in `env`.
fn ten_env(cwd: &std::path::Path, env: &[(&str, &str)], args: &[&str]) -> std::process::Output {
    let mut cmd = std::process::Command::new(BIN);
    cmd.args(args)
        .current_dir(cwd)
        .stdin(std::process::Stdio::null());
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("TENEMENT_") {
            cmd.env_remove(key);
        }
    }
    cmd.envs(env.iter().copied());
    cmd.output().expect("run ten")
}

/// The admin token in `{data_dir}/api_token` never leaves over TCP: not to
/// a `--server` or `$TENEMENT_SERVER` given without a token, not to the
/// config's `listen`, not to localhost:8080 when the server is stopped, and
/// not from any command that talks to the API. Over TCP only a token the
/// user gave is sent.
#[test]
fn the_admin_token_file_is_never_sent_over_tcp() {
    let scratch = Scratch::new("token_leak");
    let data = scratch.path("data");
    let data_s = data.to_str().expect("UTF-8 path").to_string();
    let out = ten_raw(&scratch.root, &["--data-dir", &data_s, "token-gen"]);
    assert!(out.status.success(), "{}", describe(&out));
    let admin = std::fs::read_to_string(data.join("api_token"))
        .expect("api_token")
        .trim()
        .to_string();
    assert!(!admin.is_empty());
    let snoop = Snoop::start();
    let config = scratch.write(
        "tenement.toml",
        &format!(
            "[settings]\ndata_dir = {}\nlisten = \"{}\"\n\n[service.api]\ncommand = \"true\"\n",
            toml_str(&data),
            snoop.addr
        ),
    );
    let config_s = config.to_str().expect("UTF-8 path").to_string();
    let url = format!("http://{}", snoop.addr);
    let api_commands: &[&[&str]] = &[
        &["ps"],
        &["spawn", "api:one"],
        &["stop", "api:one"],
        &["restart", "api:one"],
        &["health", "api:one"],
        &["weight", "api:one", "5"],
        &["deploy", "api:two", "--timeout", "1"],
        &["route", "api", "--from", "one", "--to", "two"],
        &["logs"],
        &["reload"],
    ];

    // 1. A server named on the command line or in the environment, no token:
    //    the request goes there, without any Authorization header.
    for cmd in api_commands {
        let mut args = vec!["--data-dir", data_s.as_str(), "--server", url.as_str()];
        args.extend_from_slice(cmd);
        let out = ten_env(&scratch.root, &[], &args);
        assert_eq!(
            out.status.code(),
            Some(1),
            "ten {cmd:?}\n{}",
            describe(&out)
        );
        let out = ten_env(
            &scratch.root,
            &[("TENEMENT_SERVER", &url), ("TENEMENT_DATA_DIR", &data_s)],
            cmd,
        );
        assert_eq!(
            out.status.code(),
            Some(1),
            "ten {cmd:?}\n{}",
            describe(&out)
        );
    }
    let seen = snoop.requests();
    assert!(
        seen.len() >= 2 * api_commands.len(),
        "every command reached the named server: {seen:#?}"
    );
    for req in &seen {
        assert!(
            !req.contains(&admin),
            "the file token was sent over TCP:\n{req}"
        );
        assert!(
            !req.to_ascii_lowercase().contains("authorization:"),
            "no token was given, none may be sent:\n{req}"
        );
    }

    // 2. The server is stopped (no ten.sock) and no server is named: the
    //    CLI says so and sends nothing, wherever the config says it listens.
    let before = snoop.requests().len();
    for cmd in api_commands {
        let mut args = vec!["--config", config_s.as_str()];
        args.extend_from_slice(cmd);
        let out = ten_env(&scratch.root, &[], &args);
        assert_eq!(
            out.status.code(),
            Some(1),
            "ten {cmd:?}\n{}",
            describe(&out)
        );
        assert!(
            stderr(&out).contains("the server is not running"),
            "ten {cmd:?}\n{}",
            describe(&out)
        );
    }
    assert_eq!(
        snoop.requests().len(),
        before,
        "nothing was sent without a token"
    );

    // Nor to the old default address: if this test can hold localhost:8080,
    // nothing may connect to it.
    if let Ok(l8080) = std::net::TcpListener::bind("127.0.0.1:8080") {
        let fallback = Snoop::on(l8080);
        let empty = scratch.path("no-config");
        std::fs::create_dir_all(&empty).expect("mkdir");
        let out = ten_env(&empty, &[], &["--data-dir", &data_s, "ps"]);
        assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
        assert!(
            stderr(&out).contains("the server is not running"),
            "{}",
            describe(&out)
        );
        assert!(
            !stderr(&out).contains("8080"),
            "no guessed address:\n{}",
            describe(&out)
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
        assert!(fallback.requests().is_empty(), "{:#?}", fallback.requests());
    }

    // 3. A token the user gives goes to the config's listen, and only it.
    let before = snoop.requests().len();
    let out = ten_env(
        &scratch.root,
        &[],
        &["--config", &config_s, "--token", "ten_given", "ps"],
    );
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let out = ten_env(
        &scratch.root,
        &[("TENEMENT_TOKEN", "ten_given_env")],
        &["--config", &config_s, "ps"],
    );
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let seen = snoop.requests();
    assert_eq!(seen.len(), before + 2, "{seen:#?}");
    assert!(
        seen[before].contains("Authorization: Bearer ten_given\r\n"),
        "{}",
        seen[before]
    );
    assert!(
        seen[before + 1].contains("Authorization: Bearer ten_given_env\r\n"),
        "{}",
        seen[before + 1]
    );
    assert!(seen.iter().all(|r| !r.contains(&admin)));
}

/// `ten reload` after a bad edit of the config shows the config's error
/// (file, line, key), never an address it could not reach: run in the
/// config's folder with no options (the CLI cannot find the data dir in a
/// config that does not load), and with --data-dir (the server checks it).
#[test]
fn reload_with_a_broken_config_shows_the_config_error() {
    let first = format!("{}[service.api]\ncommand = \"true\"\n", settings(""));
    let server = Server::start("reload_bad_config", &first);
    // The same config, saying where its data dir is (as an operator's does).
    let good = first.replacen(
        "[settings]\n",
        &format!("[settings]\ndata_dir = {}\n", toml_str(&server.data_dir)),
        1,
    );
    std::fs::write(&server.config, &good).expect("write config");
    let out = ten_raw(server.root(), &["reload"]);
    assert!(out.status.success(), "{}", describe(&out));
    for (bad, key) in [
        ("data_dir = \"\"", "settings.data_dir"),
        ("data_dir = 5", "settings.data_dir"),
        ("bogus = 1", "settings.bogus"),
    ] {
        let text = first.replacen("[settings]\n", &format!("[settings]\n{bad}\n"), 1);
        std::fs::write(&server.config, &text).expect("write config");
        let want = format!("tenement.toml:2: key `{key}`");
        let out = ten_raw(server.root(), &["reload"]);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{bad}\n{}", describe(&out));
        assert!(
            err.contains(&want),
            "{bad}: want {want:?}\n{}",
            describe(&out)
        );
        assert!(
            !err.contains("8080") && !err.contains("cannot reach"),
            "{}",
            describe(&out)
        );
        let out = server.ten(&["reload"]);
        assert_eq!(out.status.code(), Some(1), "{bad}\n{}", describe(&out));
        assert!(
            stderr(&out).contains(&want),
            "{bad}: want {want:?}\n{}",
            describe(&out)
        );
    }
    // The server kept its config and still answers.
    std::fs::write(&server.config, &good).expect("write config");
    let out = ten_raw(server.root(), &["reload"]);
    assert!(out.status.success(), "{}", describe(&out));
}

/// The original tenement's command lines work: `deploy SVC --version V`
/// deploys SVC:V (it printed ten's version and exited 0), `-w` is the
/// weight, `serve -d` the domain, `logs --level` a stream filter; and a
/// global switch left before a stray word is a usage error, not a silent 0.
#[test]
fn the_original_tenements_command_lines_work() {
    if !tools_present(&["python3"]) {
        return;
    }
    let config = format!("{}{}", settings(""), echo("api"));
    let server = Server::start_with("original_forms", &config, &["-d", "tenement.test"]);
    let out = server.ten_ok(&[
        "deploy",
        "api",
        "--version",
        "v2",
        "-w",
        "30",
        "--timeout",
        "20",
    ]);
    assert!(
        stdout(&out).contains("deployed api:v2"),
        "{}",
        describe(&out)
    );
    let inst = server
        .instance("api:v2")
        .expect("deploy --version spawned api:v2");
    assert_eq!(inst["weight"], 30, "{inst}");
    // serve -d: the instance answers on the domain given.
    assert_eq!(
        server.echo("v2.api.tenement.test", "/")["env"]["INSTANCE_ID"],
        "v2"
    );
    // logs --level maps onto the streams.
    let out = server.ten_ok(&["--json", "logs", "api:v2", "--level", "info"]);
    let lines: Vec<Value> = serde_json::from_str(&stdout(&out)).expect("JSON");
    assert!(lines.iter().all(|e| e["stream"] == "stdout"), "{lines:?}");
    let out = server.ten_ok(&["--json", "logs", "api:v2", "--level", "error"]);
    let lines: Vec<Value> = serde_json::from_str(&stdout(&out)).expect("JSON");
    assert!(lines.iter().all(|e| e["stream"] == "stderr"), "{lines:?}");
    for bad in [
        &["logs", "api:v2", "--level", "debug"][..],
        &["logs", "--level", "info", "--stream", "stderr"],
        &["deploy", "api:v3", "--version", "v3"],
        &["spawn", "api:v4", "--version", "v4"],
        &["stop", "api:v2", "-V", "now"],
    ] {
        let out = server.ten(bad);
        assert_eq!(
            out.status.code(),
            Some(2),
            "ten {bad:?}\n{}",
            describe(&out)
        );
    }
    assert!(server.instance("api:v3").is_none() && server.instance("api:v4").is_none());
    assert!(
        server.instance("api:v2").is_some(),
        "stop -V now stopped nothing"
    );
}

/// `{name} {id} {data_dir} {port} {socket}` in `command` and `args` reach
/// the app expanded, as in `env` (the app got `{port}` literally).
#[test]
fn templates_in_command_and_args_reach_the_app() {
    let config = format!(
        "{}[service.tpl]\ncommand = \"sh -c 'echo cmd {{name}} {{id}} {{port}} {{{{lit}}}}; exec sleep 60'\"\n\n[service.targs]\ncommand = \"sh\"\nargs = [\"-c\", \"echo args {{name}}/{{id}} $0 $1; exec sleep 60\", \"{{data_dir}}\", \"{{socket}}\"]\n",
        settings("")
    );
    let server = Server::start("argv_templates", &config);
    server.ten_ok(&["spawn", "tpl:one"]);
    server.ten_ok(&["spawn", "targs:two"]);
    let port = |key: &str| {
        server
            .instance(key)
            .and_then(|i| i["port"].as_u64())
            .expect("a port")
    };
    let logged = |svc: &str, id: &str, want: &str| {
        let path = server
            .data_dir
            .join(".tenement/logs")
            .join(svc)
            .join(format!("{id}.log"));
        wait_until(DEADLINE, || {
            std::fs::read_to_string(&path).is_ok_and(|t| t.contains(want))
        })
    };
    let want = format!("cmd tpl one {} {{lit}}", port("tpl:one"));
    assert!(
        logged("tpl", "one", &want),
        "want {want:?}\n{}",
        server.log()
    );
    let data = server.data_dir.display().to_string();
    let want = format!("args targs/two {data} {data}/.tenement/run/targs.two.sock");
    assert!(
        logged("targs", "two", &want),
        "want {want:?}\n{}",
        server.log()
    );
}
