//! What survives what: instances come back with their weights after
//! `kill -9` of the server (and the old run's processes are gone), and a
//! SIGTERM to the server stops every instance process.

mod util;

use util::*;

#[test]
fn state_is_restored_after_kill_9_of_the_server() {
    if !tools_present(&["python3"]) {
        return;
    }
    let config = format!(
        "{}{}",
        settings(""),
        // Host pids of the grandchild: process level.
        py_service(
            "api",
            "forker.py",
            "health = \"/health\"\nisolation = \"process\""
        )
    );
    let mut server = Server::start("restore_kill9", &config);
    // Spawned by the CLI, not listed in [instances]: only the registry can bring them back.
    server.ten_ok(&["spawn", "api:one", "--weight", "7", "--wait"]);
    server.ten_ok(&["spawn", "api:two", "--weight", "0", "--wait"]);
    let old_one = server.instance("api:one").expect("api:one")["pid"]
        .as_u64()
        .expect("pid") as u32;
    let old_two = server.instance("api:two").expect("api:two")["pid"]
        .as_u64()
        .expect("pid") as u32;
    let pid_file = server.instance_dir("api", "one").join("grandchild.pid");
    assert!(
        wait_until(DEADLINE, || pid_file.exists()),
        "forker wrote {}",
        pid_file.display()
    );
    let old_grandchild: u32 = std::fs::read_to_string(&pid_file)
        .expect("pid file")
        .trim()
        .parse()
        .expect("pid");
    std::fs::remove_file(&pid_file).expect("remove pid file");

    server.kill9();

    // Whatever the crash hit, the registry is whole JSON.
    let state = server.data_dir.join(".tenement").join("state");
    let text =
        std::fs::read_to_string(&state).unwrap_or_else(|e| panic!("read {}: {e}", state.display()));
    let _: Value =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("state is JSON ({e}):\n{text}"));

    server.serve_again();
    let mut last = Vec::new();
    let back = wait_until(DEADLINE, || {
        last = server.instances();
        let find = |key: &str| last.iter().find(|i| i["instance"] == key).cloned();
        let (Some(one), Some(two)) = (find("api:one"), find("api:two")) else {
            return false;
        };
        one["state"] == "running"
            && two["state"] == "running"
            && one["pid"].as_u64().is_some_and(|p| p as u32 != old_one)
            && two["pid"].as_u64().is_some_and(|p| p as u32 != old_two)
    });
    assert!(back, "both instances running again with new processes; last seen {last:?}\n--- server log ---\n{}", server.log());
    assert_eq!(
        server.instance("api:one").expect("api:one")["weight"],
        7,
        "weight restored"
    );
    assert_eq!(
        server.instance("api:two").expect("api:two")["weight"],
        0,
        "weight 0 restored"
    );

    // No process of the old run is left: instances and their children.
    for pid in [old_one, old_two, old_grandchild] {
        assert!(
            wait_until(DEADLINE, || !pid_alive(pid)),
            "process {pid} of the old run still alive\n--- server log ---\n{}",
            server.log()
        );
    }

    // Traffic reaches the new process; the weights act as before.
    let new_one = server.instance("api:one").expect("api:one")["pid"].clone();
    assert_eq!(server.echo("one.api.localhost", "/")["pid"], new_one);
    assert_eq!(
        server.echo("api.localhost", "/")["env"]["INSTANCE_ID"],
        "one"
    );
    // Tokens survived too: the admin token minted before the crash still works.
    let resp = server.api("GET", "/api/instances", Some(&server.admin_token), None);
    assert_eq!(resp.status, 200);
}

#[test]
fn sigterm_to_the_server_stops_every_instance_process() {
    if !tools_present(&["python3"]) {
        return;
    }
    let config = format!(
        "{}{}[instances]\napi = [\"one\", \"two\"]\n",
        settings(""),
        // Host pids of the grandchild: process level.
        py_service(
            "api",
            "forker.py",
            "health = \"/health\"\nisolation = \"process\""
        )
    );
    let server = Server::start("sigterm_stops_all", &config);
    let mut pids = Vec::new();
    for id in ["one", "two"] {
        let inst = server.wait_running(&format!("api:{id}"));
        pids.push(inst["pid"].as_u64().expect("pid") as u32);
        let pid_file = server.instance_dir("api", id).join("grandchild.pid");
        assert!(
            wait_until(DEADLINE, || pid_file.exists()),
            "forker wrote {}",
            pid_file.display()
        );
        pids.push(
            std::fs::read_to_string(&pid_file)
                .expect("pid file")
                .trim()
                .parse()
                .expect("pid"),
        );
    }
    // Drop sends SIGTERM and waits for the server to exit, then checks for
    // survivors itself; this states the expectation explicitly.
    drop(server);
    for pid in pids {
        assert!(!pid_alive(pid), "process {pid} outlived the server");
    }
}
