//! What tenement writes to disk must be what it answered: a change that
//! cannot be saved (full disk) is refused with nothing changed, in memory or
//! after a restart; a `ten stop` survives a crash of the server during the
//! stop; a spawn that was answered survives a kill -9, and a registry
//! journal whose last line a crash cut is read up to that line; a state or
//! tokens file that does not validate stops `ten serve`
//! with a message naming the file and the entry.

mod util;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use util::*;

/// A tmpfs mounted for one test; lazily unmounted when dropped (before the
/// server guard declared ahead of it stops the server and removes the dir).
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Tmpfs {
        let out = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0755"),
                "tmpfs",
            ])
            .arg(dir)
            .output()
            .expect("run mount");
        assert!(out.status.success(), "mount tmpfs: {}", describe(&out));
        Tmpfs(dir.to_path_buf())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Fills the file system under `dir` until a write fails with ENOSPC; the
/// filler is `dir/fill`.
fn fill(dir: &Path) {
    use std::io::Write;
    let path = dir.join("fill");
    let mut f = std::fs::File::create(&path).expect("create fill");
    let chunk = vec![0u8; 64 * 1024];
    loop {
        match f.write(&chunk) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => break,
            Err(e) => panic!("fill {}: {e}", path.display()),
        }
    }
    // Whatever of the last page was left: a new file gets no space at all.
    let probe = dir.join("probe");
    let err = std::fs::write(&probe, b"x").expect_err("the disk is full");
    assert_eq!(err.raw_os_error(), Some(libc::ENOSPC), "{err}");
    let _ = std::fs::remove_file(probe);
}

/// "instance weight state" of every instance, sorted.
fn weights(server: &Server) -> Vec<String> {
    let mut all: Vec<String> = server
        .instances()
        .iter()
        .map(|i| format!("{} {} {}", i["instance"], i["weight"], i["state"]))
        .collect();
    all.sort();
    all
}

/// The ids of every token, as `ten token list --json` shows them.
fn token_ids(server: &Server) -> Vec<String> {
    let out = server.ten_ok(&["token", "list", "--json"]);
    let list: Value = serde_json::from_str(&stdout(&out)).expect("token list is JSON");
    let mut ids: Vec<String> = list
        .as_array()
        .expect("an array")
        .iter()
        .map(|t| t["id"].as_str().expect("id").to_string())
        .collect();
    ids.sort();
    ids
}

const FULL: &str = "No space left on device";

#[test]
fn on_a_full_disk_every_change_is_refused_and_none_comes_back_after_a_restart() {
    if !tools_present(&["python3", "mount", "umount"]) || !root_for("mounting a tmpfs") {
        return;
    }
    let config = format!(
        "{}{}{}{}",
        settings("stop_timeout = 5"),
        py_service("api", "echo.py", "health = \"/health\""),
        py_service("nap", "echo.py", "idle_timeout = 1"),
        py_service("n", "echo.py", "idle_timeout = 1")
    );
    let mut mounted = None;
    let mut server = Server::start_prepared("fulldisk", &config, &[], &[], |dir| {
        mounted = Some(Tmpfs::mount(dir, "2m"));
    });
    let _tmpfs = mounted.expect("mounted");
    server.ten_ok(&["spawn", "api:a", "--weight", "50", "--wait"]);
    server.ten_ok(&["spawn", "api:b", "--wait"]);
    // A sleeping instance: a restart would make it `running` in the registry.
    server.ten_ok(&["spawn", "nap:z", "--wait"]);
    // Its weight fills the journal (below).
    server.ten_ok(&["spawn", "n:y", "--wait"]);
    for key in ["nap:z", "n:y"] {
        assert!(
            wait_until(DEADLINE, || server
                .instance(key)
                .is_some_and(|i| i["state"] == "sleeping")),
            "{key} goes to sleep\n{}",
            server.log()
        );
    }
    let alice = server.mint_token(Some("alice"));
    let before = weights(&server);
    assert_eq!(
        before,
        [
            r#""api:a" 50 "running""#,
            r#""api:b" 100 "running""#,
            r#""n:y" 100 "sleeping""#,
            r#""nap:z" 100 "sleeping""#
        ]
    );
    let tokens_before = token_ids(&server);
    assert_eq!(tokens_before.len(), 2);
    let listed = server.ten_ok(&["token", "list", "--json"]);
    let listed: Value = serde_json::from_str(&stdout(&listed)).expect("token list is JSON");
    let alice_id = listed
        .as_array()
        .expect("an array")
        .iter()
        .find(|t| t["tenant"] == "alice")
        .and_then(|t| t["id"].as_str())
        .expect("alice's token is listed")
        .to_string();
    let api_token = std::fs::read(server.data_dir.join("api_token")).expect("api_token");

    fill(&server.data_dir);
    // The registry's journal may still have room in its last page: a
    // change that fits there is saved (and stays). Until it is full, a
    // harmless change goes through; then every change is refused. The
    // filler is the shortest record there is (sleeping `n:y`, weight 1 or
    // 2), so that what is left of the page is shorter than any change
    // below (`nap:z` running with weight 100 is three bytes longer).
    let mut weight = 1;
    for tries in 0.. {
        assert!(tries < 200, "the journal never fills\n{}", server.log());
        let out = server.ten(&["weight", "n:y", &weight.to_string()]);
        if !out.status.success() {
            assert!(stderr(&out).contains(FULL), "{}", describe(&out));
            break;
        }
        weight = 3 - weight;
    }
    let before = weights(&server);

    // Every change through the API: 507 with the OS error, nothing changed.
    let admin = Some(server.admin_token.as_str());
    let changes: Vec<(&str, String, Option<Value>)> = vec![
        (
            "POST",
            "/api/instances/spawn".into(),
            Some(serde_json::json!({"service": "api", "id": "c"})),
        ),
        (
            "PUT",
            "/api/instances/api:a/weight".into(),
            Some(serde_json::json!({"weight": 5})),
        ),
        ("DELETE", "/api/instances/api:a".into(), None),
        (
            "POST",
            "/api/deploy".into(),
            Some(serde_json::json!({"service": "api", "id": "d", "timeout_secs": 10})),
        ),
        (
            "POST",
            "/api/deploy".into(),
            Some(serde_json::json!({"service": "api", "id": "a", "weight": 20})),
        ),
        (
            "POST",
            "/api/route".into(),
            Some(serde_json::json!({"service": "api", "from": "b", "to": "a"})),
        ),
        ("DELETE", format!("/api/tokens/{alice_id}"), None),
        ("POST", "/api/instances/nap:z/restart".into(), None),
    ];
    for (method, path, body) in &changes {
        let resp = server.api(method, path, admin, body.as_ref());
        let what = format!("{method} {path} {body:?}");
        assert_eq!(
            resp.status,
            507,
            "{what}: {}\n--- server log ---\n{}",
            resp.text(),
            server.log()
        );
        let message = resp.json()["error"].as_str().unwrap_or("").to_string();
        assert!(
            message.contains("refused") && message.contains(FULL),
            "{what}: {message}"
        );
        assert_eq!(weights(&server), before, "after {what}");
    }

    // The same through the CLI, and the commands that write the tokens file
    // themselves: exit 1 with the OS error.
    for args in [
        &["spawn", "api:e"][..],
        &["weight", "api:b", "1"],
        &["stop", "api:b"],
        &["restart", "nap:z"],
        &["deploy", "api:f", "--timeout", "10"],
        &["token", "revoke", &alice_id],
        &["token-gen"],
        &["token-gen", "--tenant", "bob"],
        &["token-gen", "--rotate"],
    ] {
        let out = server.ten(args);
        assert_eq!(
            out.status.code(),
            Some(1),
            "ten {args:?}\n{}",
            describe(&out)
        );
        assert!(
            stderr(&out).contains(FULL),
            "ten {args:?} names the OS error\n{}",
            describe(&out)
        );
    }
    assert_eq!(weights(&server), before);
    assert_eq!(token_ids(&server), tokens_before);
    assert_eq!(
        std::fs::read(server.data_dir.join("api_token")).expect("api_token"),
        api_token
    );
    let log = server.log();
    assert!(
        log.lines()
            .any(|l| l.contains("weight api:a refused") && l.contains(FULL)),
        "the log line has the OS error:\n{log}"
    );

    // Space again, then a restart: only what was answered OK is there.
    std::fs::remove_file(server.data_dir.join("fill")).expect("remove fill");
    server.restart();
    for key in ["api:a", "api:b"] {
        server.wait_running(key);
    }
    assert_eq!(weights(&server), before, "\n{}", server.log());
    assert_eq!(token_ids(&server), tokens_before);
    let resp = server.api("GET", "/api/instances", Some(&alice), None);
    assert_eq!(resp.status, 200, "alice's token still works");
    assert_eq!(
        std::fs::read(server.data_dir.join("api_token")).expect("api_token"),
        api_token,
        "the admin token was not rotated"
    );
    // And changes work again.
    server.ten_ok(&["weight", "api:a", "5"]);
    assert_eq!(weights(&server)[0], r#""api:a" 5 "running""#);
}

#[test]
fn a_stop_interrupted_by_a_crash_of_the_server_is_finished_at_the_next_start() {
    if !tools_present(&["python3"]) {
        return;
    }
    let config = format!(
        "{}{}{}",
        settings("stop_timeout = 60"),
        py_service("api", "stubborn.py", "health = \"/health\""),
        py_service("web", "echo.py", "health = \"/health\"")
    );
    let mut server = Server::start("stopcrash", &config);
    server.ten_ok(&["spawn", "api:a", "--wait"]);
    server.ten_ok(&["spawn", "web:keep", "--wait"]);
    let pid = server.wait_running("api:a")["pid"].as_u64().expect("pid") as u32;

    // `ten stop` waits out stop_timeout: the app ignores SIGTERM.
    let mut stop = Command::new(BIN)
        .arg("--config")
        .arg(&server.config)
        .arg("--data-dir")
        .arg(&server.data_dir)
        .args(["stop", "api:a"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("run ten stop");
    assert!(
        wait_until(DEADLINE, || server
            .instance("api:a")
            .is_some_and(|i| i["state"] == "stopping")),
        "api:a is stopping\n{}",
        server.log()
    );
    // In the registry's journal (or in `state`, had it been compacted).
    let state = ["state", "state.journal"]
        .map(|f| {
            std::fs::read_to_string(server.data_dir.join(".tenement").join(f)).unwrap_or_default()
        })
        .concat()
        .replace("\": ", "\":");
    assert!(
        state.contains("\"desired\":\"stopping\""),
        "the stop is saved before the signal:\n{state}"
    );
    assert!(pid_alive(pid), "the app ignores SIGTERM");

    server.kill9();
    let _ = stop.wait();
    assert!(pid_alive(pid), "the app outlives the server");

    server.serve_again();
    server.wait_running("web:keep");
    assert!(
        wait_until(DEADLINE, || !pid_alive(pid)),
        "the leftover process of the stopped instance is killed"
    );
    assert!(server.instance("api:a").is_none(), "api:a stays stopped");
    let log = server.log();
    assert!(
        log.contains("api:a was being stopped when ten serve last exited"),
        "{log}"
    );
    // And it does not come back at the start after that either.
    server.restart();
    server.wait_running("web:keep");
    assert!(server.instance("api:a").is_none());
}

#[test]
fn spawns_answered_before_a_kill_9_survive_it_and_a_torn_last_journal_line_is_ignored() {
    if !tools_present(&["python3"]) {
        return;
    }
    let config = format!("{}{}", settings(""), py_service("api", "echo.py", ""));
    let mut server = Server::start("journalcrash", &config);
    // Spawns one after another until the server is gone; which were
    // answered.
    let (cfg, data) = (server.config.clone(), server.data_dir.clone());
    let spawner = std::thread::spawn(move || {
        let mut answered = Vec::new();
        for i in 0..30 {
            let key = format!("api:i{i}");
            let ok = Command::new(BIN)
                .arg("--config")
                .arg(&cfg)
                .arg("--data-dir")
                .arg(&data)
                .args(["spawn", &key])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if !ok {
                break;
            }
            answered.push(key);
        }
        answered
    });
    assert!(
        wait_until(DEADLINE, || server.instances().len() >= 5),
        "spawns go on\n{}",
        server.log()
    );
    server.kill9();
    let answered = spawner.join().expect("spawner");
    assert!(answered.len() >= 5, "{answered:?}");
    let listed = |server: &Server| -> Vec<String> {
        server
            .instances()
            .iter()
            .filter_map(|i| i["instance"].as_str().map(str::to_string))
            .collect()
    };
    server.serve_again();
    let back = listed(&server);
    for key in &answered {
        assert!(
            back.contains(key),
            "{key} was answered, then lost: {back:?}"
        );
    }

    // A crash in the middle of a write: the journal's last line is cut.
    server.kill9();
    let journal = server.data_dir.join(".tenement/state.journal");
    let bytes = std::fs::read(&journal).expect("the registry's journal");
    std::fs::write(&journal, &bytes[..bytes.len() - 5]).unwrap();
    server.serve_again();
    let log = server.log();
    assert!(log.contains("the last write was cut short"), "{log}");
    let back = listed(&server);
    for key in &answered {
        assert!(
            back.contains(key),
            "{key} lost with the torn line: {back:?}"
        );
    }
    // What comes next is saved after the whole lines, not after the torn
    // bytes: a spawn now is there after a clean restart.
    server.ten_ok(&["spawn", "api:after"]);
    server.restart();
    assert!(listed(&server).contains(&"api:after".to_string()));
}

/// Runs `ten serve` on a fresh data dir whose `.tenement/{file}` holds
/// `text`: it must refuse to start, exit 1 within 10 s, and leave the file
/// as it was. Returns what it printed on stderr.
fn serve_refuses(config: &str, file: &str, text: &str) -> String {
    let scratch = Scratch::new("badstate");
    let config = scratch.write("tenement.toml", config);
    let data = scratch.path("data");
    let path = scratch.write(&format!("data/.tenement/{file}"), text);
    // Where an id of "../../x" would lead an instance's data dir.
    let outside = scratch.write("x/keep", "not tenement's");
    let mut child = Command::new(BIN)
        .arg("serve")
        .arg("--config")
        .arg(&config)
        .arg("--data-dir")
        .arg(&data)
        .args(["--port", "0", "--bind", "127.0.0.1"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run ten serve");
    let exited = wait_until(DEADLINE, || matches!(child.try_wait(), Ok(Some(_))));
    if !exited {
        let _ = child.kill();
    }
    let out = child.wait_with_output().expect("wait for ten serve");
    let err = stderr(&out);
    assert!(exited, "ten serve started with a bad {file}:\n{err}");
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&path.display().to_string()),
        "names the file: {err}"
    );
    assert_eq!(
        std::fs::read_to_string(&path).expect("the file is still there"),
        text,
        "left as it was"
    );
    assert!(outside.exists(), "nothing outside the data dir is touched");
    err
}

#[test]
fn ten_serve_refuses_a_state_or_tokens_file_that_does_not_validate_naming_the_entry() {
    let config = format!(
        "{}[service.api]\ncommand = \"sleep\"\nargs = [\"1000\"]\nstorage_persist = false\n",
        settings("")
    );
    let entry = |id: &str, port: u16, weight: u8| {
        format!(
            r#"{{"service": "api", "id": "{id}", "port": {port}, "weight": {weight},
            "desired": "running", "pid": null, "pgid": null, "start_ticks": null, "restarts": 0}}"#
        )
    };
    let state = |version: u32, entries: &[String]| {
        format!(
            r#"{{"version": {version}, "instances": [{}]}}"#,
            entries.join(", ")
        )
    };
    let ok = entry("a", 30001, 100);
    for (text, want) in [
        (
            state(1, &[ok.clone(), entry("../../x", 30002, 100)]),
            r#"entry 2 (service "api", id "../../x"): invalid instance id"#,
        ),
        (
            state(1, &[ok.clone(), entry("a", 30003, 100)]),
            r#"entry 2 (service "api", id "a"): instance api:a is also entry 1"#,
        ),
        (
            state(1, &[ok.clone(), entry("b", 30001, 100)]),
            r#"entry 2 (service "api", id "b"): port 30001 is also entry 1's (api:a)"#,
        ),
        (
            state(1, &[entry("a", 30001, 101)]),
            "entry 1 (service \"api\", id \"a\"): weight must be 0-100, got 101",
        ),
        (
            state(2, std::slice::from_ref(&ok)),
            "version 2 is not the one this ten reads (1)",
        ),
    ] {
        let err = serve_refuses(&config, "state", &text);
        assert!(err.contains(want), "want {want:?} in\n{err}");
        assert!(
            err.contains("Correct or delete that entry"),
            "says how to fix it: {err}"
        );
    }

    let record = |id: &str, fill: char, tenant: &str| {
        format!(
            r#"{{"id": "{id}", "hash": "{}", "tenant": {tenant}, "description": "", "created_unix": 0}}"#,
            fill.to_string().repeat(64)
        )
    };
    for (records, want) in [
        (
            [
                record("0badf00d", 'a', "null"),
                record("12345678", 'b', "\"../x\""),
            ],
            r#"record 2 (id "12345678"): invalid tenant "../x""#,
        ),
        (
            [
                record("0badf00d", 'a', "null"),
                record("0badf00d", 'b', "null"),
            ],
            r#"record 2 (id "0badf00d"): the id of record 1 too"#,
        ),
    ] {
        let text = format!(r#"{{"version": 1, "tokens": [{}]}}"#, records.join(", "));
        let err = serve_refuses(&config, "tokens", &text);
        assert!(err.contains(want), "want {want:?} in\n{err}");
        assert!(err.contains("ten token-gen"), "says how to fix it: {err}");
    }
}
