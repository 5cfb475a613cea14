//! The namespace and sandbox levels through `ten serve`: an app
//! (tests/fixtures/escape.py) tries to get out and reports what it could
//! do; the default level (namespace as root, process with a warning
//! otherwise); each instance's own uid from `uid_range`, kept across
//! restarts and never shared; `user`. Needs root; without it (or without
//! landlock/seccomp for the sandbox) the tests say so and skip, and fail
//! under TEN_TEST_STRICT=1.

mod util;

use util::*;

fn strict() -> bool {
    std::env::var_os("TEN_TEST_STRICT").is_some_and(|v| v == "1")
}

fn skip(why: &str) -> bool {
    if strict() {
        panic!("TEN_TEST_STRICT=1 and {why}");
    }
    eprintln!("skip: {why}");
    false
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}

fn ready(sandbox: bool) -> bool {
    if !is_root() {
        return skip("isolation tests need root");
    }
    if !tools_present(&["curl"]) || !std::path::Path::new("/usr/bin/python3").exists() {
        return skip("/usr/bin/python3 is needed inside the instance");
    }
    // landlock_create_ruleset(NULL, 0, LANDLOCK_CREATE_RULESET_VERSION).
    // SAFETY: the version query reads no memory.
    if sandbox && unsafe { libc::syscall(444, std::ptr::null::<u8>(), 0usize, 1u32) } < 1 {
        return skip("landlock is not enabled in this kernel");
    }
    true
}

/// A config with service `esc` at `level`, its `extra` lines, and the
/// paths the app tries in its env table. The config lives next to the
/// data dir in the test's folder, which is also the workdir's parent.
fn config(level: &str, extra: &str, escape_env: &str) -> String {
    format!(
        "{}[service.esc]\ncommand = \"/usr/bin/python3\"\nargs = [\"-u\", \"escape.py\"]\n\
         workdir = {}\nisolation = \"{level}\"\n{extra}\n\n[service.esc.env]\n{escape_env}\n",
        settings(""),
        toml_str(&fixture(""))
    )
}

fn escape_env(s: &Server, name: &str) -> String {
    let d = &s.data_dir;
    let read = [
        d.join("esc/b").display().to_string(),
        d.join("esc/b/secret").display().to_string(),
        d.join("api_token").display().to_string(),
        d.join(".tenement/tokens").display().to_string(),
        s.config.display().to_string(),
        "/etc/shadow".to_string(),
    ];
    format!(
        "ESCAPE_READ = \"{}\"\nESCAPE_WRITE = \"/:/etc:/var/tmp:{}:{}\"\nESCAPE_SOCK = \"{}\"\nESCAPE_PID = \"{}\"\nESCAPE_HOST_FILE = \"{}\"\n",
        read.join(":"),
        fixture("").display(),
        s.root().display(),
        d.join(".tenement/ten.sock").display(),
        std::process::id(),
        host_tmp_file(name).display(),
    )
}

/// A file in the host's /tmp, there while the escape app reports: a
/// namespaced instance has a /tmp of its own and must not see it.
fn host_tmp_file(name: &str) -> std::path::PathBuf {
    std::path::PathBuf::from(format!("/tmp/ten-escape-{name}-{}", std::process::id()))
}

/// Starts a server at `level`, with tenant `b` holding a secret, and
/// returns it with `esc:a`'s report.
fn run(name: &str, level: &str, extra: &str) -> (Server, serde_json::Value) {
    // The env table needs the server's paths: start once to learn them,
    // then write the real config and reload.
    let mut server = Server::start(name, &config("process", "", ""));
    let text = config(level, extra, &escape_env(&server, name));
    std::fs::write(&server.config, text).unwrap();
    server.restart();
    server.ten_ok(&["spawn", "esc:b", "--wait"]);
    std::fs::write(server.instance_dir("esc", "b").join("secret"), "b's").unwrap();
    server.ten_ok(&["spawn", "esc:a", "--wait"]);
    std::fs::write(host_tmp_file(name), "host").unwrap();
    let report = server.echo("a.esc.localhost", "/");
    let _ = std::fs::remove_file(host_tmp_file(name));
    (server, report)
}

fn s(v: &serde_json::Value, k: &str) -> String {
    match &v[k] {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[test]
fn namespace_instance_sees_only_itself() {
    if !ready(false) {
        return;
    }
    let (server, r) = run("iso_namespace", "namespace", "");
    assert_ne!(r["uid"], 0, "{r}");
    assert_eq!(s(&r, "hostname"), "a.esc");
    assert_eq!(r["procs"], serde_json::json!([1, r["pid"].clone()]), "{r}");
    assert_eq!(s(&r, "signal_host"), "ESRCH", "{r}");
    assert_eq!(s(&r, "write_data_dir"), "ok", "{r}");
    assert_eq!(s(&r, "write_tmp"), "ok", "{r}");
    // Its /tmp is its own: a file in the host's is not there.
    assert_eq!(r["host_tmp_file"], false, "{r}");
    // Tenement's data dir is an empty folder inside, the config /dev/null.
    let d = &server.data_dir;
    for p in [
        d.join("esc/b"),
        d.join("api_token"),
        d.join(".tenement/tokens"),
    ] {
        assert_eq!(
            r["read"][p.display().to_string()],
            "ENOENT",
            "{}: {r}",
            p.display()
        );
    }
    assert_ne!(s(&r, "connect_sock"), "ok", "{r}");
    let log = server.log();
    assert!(log.contains("isolation namespace"), "{log}");
    let ps = server.ten_ok(&["logs", "esc:a"]);
    assert!(
        stdout(&ps).contains("ten: isolation namespace"),
        "{}",
        describe(&ps)
    );
}

#[test]
fn sandbox_instance_cannot_escape() {
    if !ready(true) {
        return;
    }
    let (server, r) = run("iso_sandbox", "sandbox", "");
    assert_ne!(r["uid"], 0, "{r}");
    for f in ["cap_eff", "cap_prm", "cap_bnd"] {
        assert_eq!(s(&r, f), "0000000000000000", "{f}: {r}");
    }
    assert_eq!(s(&r, "no_new_privs"), "1");
    assert_eq!(s(&r, "seccomp"), "2");
    for call in ["ptrace", "mount", "unshare", "bpf", "keyctl"] {
        assert_eq!(s(&r, call), "EPERM", "{call}: {r}");
    }
    for (p, v) in r["read"].as_object().unwrap() {
        assert_ne!(v, "ok", "read {p}: {r}");
    }
    for (p, v) in r["write"].as_object().unwrap() {
        assert_ne!(v, "ok", "write {p}: {r}");
    }
    assert_eq!(s(&r, "write_data_dir"), "ok", "{r}");
    assert_eq!(s(&r, "write_tmp"), "ok", "{r}");
    assert_eq!(r["host_tmp_file"], false, "{r}");
    assert_ne!(s(&r, "connect_sock"), "ok", "{r}");
    assert!(
        server.log().contains("isolation sandbox"),
        "{}",
        server.log()
    );
    let logs = server.ten_ok(&["logs", "esc:a"]);
    assert!(
        stdout(&logs).contains("landlock ABI"),
        "{}",
        describe(&logs)
    );
}

#[test]
fn sandbox_without_network_is_reached_only_through_tenement() {
    if !ready(true) {
        return;
    }
    let host = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = host.local_addr().unwrap().port();
    let mut server = Server::start("iso_netnone", &config("process", "", ""));
    let text = config(
        "sandbox",
        "socket_activation = true\nnetwork = \"none\"",
        &format!("ESCAPE_TCP = \"127.0.0.1:{port}\"\n"),
    );
    std::fs::write(&server.config, text).unwrap();
    server.restart();
    server.ten_ok(&["spawn", "esc:a", "--wait"]);
    // The request itself came in through the socket tenement holds.
    let r = server.echo("a.esc.localhost", "/");
    assert_eq!(s(&r, "connect_tcp"), "ECONNREFUSED", "{r}");
}

#[test]
fn a_namespaced_app_on_its_unix_socket_is_reached_and_sees_no_other() {
    if !ready(false) {
        return;
    }
    let config = format!(
        "{}{}",
        settings(""),
        py_service(
            "svc",
            "unix_app.py",
            "health = \"/health\"\nisolation = \"namespace\""
        ),
    );
    let server = Server::start("iso_unix", &config);
    server.ten_ok(&["spawn", "svc:a", "--wait"]);
    server.ten_ok(&["spawn", "svc:b", "--wait"]);
    let resp = server.http("GET", "a.svc.localhost", "/", &[], b"");
    assert_eq!(resp.status, 200, "{}\n{}", resp.text(), server.log());
    // Each instance's socket is in a folder of its own, owned by it.
    let run = server.data_dir.join(".tenement/run");
    for id in ["a", "b"] {
        let dir = run.join(format!("svc.{id}.sock.d"));
        assert!(
            dir.join(format!("svc.{id}.sock")).exists(),
            "{}",
            dir.display()
        );
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&dir).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700, "{}", dir.display());
    }
}

#[test]
fn a_namespaced_instance_restarts_inside_its_cgroup() {
    if !ready(false) {
        return;
    }
    let config = format!(
        "{}[service.brief]\ncommand = \"/bin/sh\"\nargs = [\"-c\", \"sleep 0.3\"]\nisolation = \"namespace\"\nrestart = \"always\"\n",
        settings("")
    );
    let server = Server::start("iso_restart", &config);
    server.ten_ok(&["spawn", "brief:a"]);
    // Each restart runs its course: none is killed as it starts.
    let ok = wait_until(DEADLINE, || {
        server.log().matches("brief:a exited with code 0").count() >= 3
    });
    assert!(ok, "{}", server.log());
    assert!(
        !server.log().contains("killed by signal 9"),
        "{}",
        server.log()
    );
}

#[test]
fn as_root_a_service_without_isolation_runs_at_namespace() {
    if !ready(false) {
        return;
    }
    let config = format!(
        "{}{}{}",
        settings(""),
        py_service("dflt", "echo.py", "health = \"/health\""),
        py_service(
            "proc",
            "echo.py",
            "health = \"/health\"\nisolation = \"process\""
        ),
    );
    let server = Server::start("iso_default", &config);
    server.ten_ok(&["spawn", "dflt:a", "--wait"]);
    server.ten_ok(&["spawn", "proc:a", "--wait"]);
    // The app sees itself as pid 2 (init is 1) in its own namespace.
    let r = server.echo("a.dflt.localhost", "/");
    assert_eq!(r["pid"], 2, "{r}");
    assert_eq!(server.instance("dflt:a").unwrap()["isolation"], "namespace");
    // Written out, a level stays what it says.
    assert_eq!(server.instance("proc:a").unwrap()["isolation"], "process");
    let ps = stdout(&server.ten_ok(&["ps"]));
    let row = |key: &str| {
        ps.lines()
            .find(|l| l.starts_with(key))
            .unwrap_or_else(|| panic!("{key} not in ps:\n{ps}"))
            .split_whitespace()
            .nth(10)
            .unwrap_or_default()
            .to_string()
    };
    assert_eq!(row("dflt:a"), "namespace", "{ps}");
    assert_eq!(row("proc:a"), "process", "{ps}");
    // Without `user`, the process level runs as the server's user: root.
    assert_shown(&server, "proc:a", 0);
    let health = stdout(&server.ten_ok(&["health", "dflt:a"]));
    assert!(health.contains("namespace"), "{health}");
    assert!(
        server.log().contains("dflt:a spawned pid")
            && server.log().contains("isolation namespace ("),
        "{}",
        server.log()
    );
    assert!(
        !server.log().contains("isolation defaults to"),
        "{}",
        server.log()
    );
}

/// The uid of a live process, from /proc.
fn proc_uid(pid: u64) -> u32 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|l| l.split_whitespace().next()?.parse().ok())
        .unwrap()
}

fn owner(path: &std::path::Path) -> u32 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).unwrap().uid()
}

/// `svc:ID`'s uid as the host sees it: its process's and its data dir's,
/// which must agree, and what `/api/instances`, `ten ps` and `ten health`
/// say it runs as.
fn uid_of(server: &Server, id: &str) -> u32 {
    let key = format!("svc:{id}");
    let inst = server.wait_running(&key);
    let uid = proc_uid(inst["pid"].as_u64().unwrap());
    assert_eq!(owner(&server.instance_dir("svc", id)), uid, "{key}");
    assert_shown(server, &key, uid);
    uid
}

/// `/api/instances`, `ten ps` (UID) and `ten health` show `uid` for `key`
/// (and the same number as its gid, as tenement gives them).
fn assert_shown(server: &Server, key: &str, uid: u32) {
    let inst = server.instance(key).unwrap();
    assert_eq!(inst["uid"], uid, "{inst}");
    assert_eq!(inst["gid"], uid, "{inst}");
    let ps = stdout(&server.ten_ok(&["ps"]));
    let row = ps
        .lines()
        .find(|l| l.starts_with(&format!("{key} ")))
        .unwrap();
    assert_eq!(
        row.split_whitespace().last(),
        Some(uid.to_string().as_str()),
        "{ps}"
    );
    let health = stdout(&server.ten_ok(&["health", key]));
    assert!(health.contains(&format!("uid         {uid}\n")), "{health}");
}

#[test]
fn each_instance_has_its_own_uid_from_uid_range_for_good() {
    if !ready(false) || !tools_present(&["setpriv"]) {
        return;
    }
    let config = format!(
        "{}{}",
        settings("uid_range = [300000, 300009]"),
        py_service("svc", "echo.py", "health = \"/health\""),
    );
    let mut server = Server::start("iso_uids", &config);
    server.ten_ok(&["spawn", "svc:a", "--wait"]);
    server.ten_ok(&["spawn", "svc:b", "--wait"]);
    let (a, b) = (uid_of(&server, "a"), uid_of(&server, "b"));
    assert_ne!(a, b);
    for uid in [a, b] {
        assert!((300_000..=300_009).contains(&uid), "{uid}");
    }
    use std::os::unix::fs::PermissionsExt;
    let b_dir = server.instance_dir("svc", "b");
    let mode = std::fs::metadata(&b_dir).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o700);
    // On the host too, a's uid cannot read b's data; b's can.
    std::fs::write(b_dir.join("secret"), "b's").unwrap();
    let cat = |uid: u32| {
        std::process::Command::new("setpriv")
            .args([
                &format!("--reuid={uid}"),
                &format!("--regid={uid}"),
                "--clear-groups",
                "cat",
            ])
            .arg(b_dir.join("secret"))
            .output()
            .unwrap()
    };
    let out = cat(a);
    assert!(!out.status.success(), "{}", describe(&out));
    assert!(
        stderr(&out).contains("Permission denied"),
        "{}",
        describe(&out)
    );
    assert_eq!(stdout(&cat(b)), "b's");
    // Kept in the registry: the same after a restart of ten serve...
    // In `state` or in its journal.
    let state = ["state", "state.journal"]
        .map(|f| {
            std::fs::read_to_string(server.data_dir.join(".tenement").join(f)).unwrap_or_default()
        })
        .concat()
        .replace("\": ", "\":");
    assert!(state.contains(&format!("\"uid\":{a}")), "{state}");
    server.restart();
    assert_eq!((uid_of(&server, "a"), uid_of(&server, "b")), (a, b));
    // ...and after a stop (which forgets it) and a new spawn, while an
    // instance spawned in between gets a uid of its own.
    server.ten_ok(&["stop", "svc:a"]);
    server.ten_ok(&["spawn", "svc:c", "--wait"]);
    let c = uid_of(&server, "c");
    assert!(c != a && c != b, "{a} {b} {c}");
    server.ten_ok(&["spawn", "svc:a", "--wait"]);
    assert_eq!(uid_of(&server, "a"), a);
    assert_eq!(uid_of(&server, "b"), b);
}

#[test]
fn user_root_written_out_runs_as_root() {
    if !ready(false) {
        return;
    }
    let (server, r) = run("iso_user_root", "namespace", "user = \"root\"");
    assert_eq!(r["uid"], 0, "{r}");
    assert_eq!(owner(&server.instance_dir("esc", "a")), 0);
    assert!(server.log().contains("uid 0"), "{}", server.log());
}

#[test]
fn user_at_the_process_level_runs_as_that_user() {
    if !ready(false) {
        return;
    }
    let config = format!(
        "{}[service.svc]\ncommand = \"/usr/bin/python3\"\nargs = [\"-u\", {}]\n\
         health = \"/health\"\nisolation = \"process\"\nuser = 300123\n",
        settings(""),
        toml_str(&fixture("echo.py"))
    );
    let server = Server::start("iso_process_user", &config);
    server.ten_ok(&["spawn", "svc:a", "--wait"]);
    let pid = server.wait_running("svc:a")["pid"].as_u64().unwrap();
    assert_eq!(proc_uid(pid), 300_123);
    assert_shown(&server, "svc:a", 300_123);
    let dir = server.instance_dir("svc", "a");
    assert_eq!(owner(&dir), 300_123);
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&dir).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o700);
    assert!(
        server.log().contains("isolation process (") && server.log().contains("uid 300123"),
        "{}",
        server.log()
    );
}

#[test]
fn a_uid_named_in_user_is_never_handed_out_and_a_full_range_fails_the_start() {
    if !ready(false) {
        return;
    }
    let config = format!(
        "{}{}{}",
        settings("uid_range = [300100, 300101]"),
        py_service("pin", "echo.py", "health = \"/health\"\nuser = 300100"),
        py_service("svc", "echo.py", "health = \"/health\""),
    );
    let server = Server::start("iso_uid_full", &config);
    server.ten_ok(&["spawn", "svc:a", "--wait"]);
    assert_eq!(uid_of(&server, "a"), 300_101);
    let out = server.ten(&["spawn", "svc:b"]);
    assert!(!out.status.success(), "{}", describe(&out));
    assert!(
        stderr(&out).contains("no free uid left in uid_range [300100, 300101]"),
        "{}",
        describe(&out)
    );
    server.ten_ok(&["spawn", "pin:a", "--wait"]);
    let pid = server.wait_running("pin:a")["pid"].as_u64().unwrap();
    assert_eq!(proc_uid(pid), 300_100);
}

#[test]
fn without_root_the_default_is_process_with_one_warning_naming_why() {
    if !is_root() {
        // Run by a user: the default is what we want to see, but the
        // test needs root to become someone else.
        skip("becoming an unprivileged user needs root");
        return;
    }
    if !tools_present(&["setpriv", "timeout"]) {
        return;
    }
    let dir = std::env::temp_dir().join(format!("ten-test-nonroot-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("tenement.toml");
    std::fs::write(
        &config,
        "[settings]\nport_range = [29990, 29999]\n[service.svc]\ncommand = \"sleep 30\"\n\
         [service.pinned]\ncommand = \"sleep 30\"\nisolation = \"process\"\n\
         [instances]\nsvc = [\"a\"]\n",
    )
    .unwrap();
    std::os::unix::fs::chown(&dir, Some(65534), Some(65534)).unwrap();
    // nobody runs ten serve for 3 s; SIGTERM then stops it.
    let out = std::process::Command::new("timeout")
        .args([
            "-s",
            "TERM",
            "3",
            "setpriv",
            "--reuid=65534",
            "--regid=65534",
        ])
        .args([
            "--clear-groups",
            BIN,
            "serve",
            "--port",
            "0",
            "--bind",
            "127.0.0.1",
        ])
        .arg("--config")
        .arg(&config)
        .arg("--data-dir")
        .arg(dir.join("data"))
        .current_dir(&dir)
        .env_remove("TENEMENT_DATA_DIR")
        .env_remove("TENEMENT_CONFIG")
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let log = stderr(&out);
    let warning = "isolation defaults to \"process\": ten serve is not running as root";
    assert_eq!(log.matches(warning).count(), 1, "{log}");
    assert!(log.contains("svc:a spawned pid"), "{log}");
    assert!(log.contains("isolation process ("), "{log}");
    assert!(!log.contains("isolation namespace"), "{log}");
}
