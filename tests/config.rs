//! Config validation as the user sees it: `ten config --check` names the
//! file, the line and the key, suggests the nearest valid key, refuses keys
//! whose behaviour is not built yet, and `ten serve` refuses a bad config.

mod util;

use std::process::{Command, Stdio};
use std::time::Duration;

use util::*;

/// Writes `text` as tenement.toml and runs `ten --config FILE config --check`.
fn check(scratch: &Scratch, text: &str) -> std::process::Output {
    let path = scratch.write("tenement.toml", text);
    ten_raw(
        &scratch.root,
        &[
            "--config",
            path.to_str().expect("UTF-8 path"),
            "config",
            "--check",
        ],
    )
}

/// Asserts `config --check` fails with exit 1 and an error that contains
/// `tenement.toml:LINE` and every one of `needles`.
fn assert_refused(scratch: &Scratch, text: &str, line: usize, needles: &[&str]) {
    let out = check(scratch, text);
    assert_eq!(
        out.status.code(),
        Some(1),
        "config --check must fail for:\n{text}\n{}",
        describe(&out)
    );
    let err = stderr(&out);
    assert!(err.starts_with("ten: error:"), "{}", describe(&out));
    let at = format!("tenement.toml:{line}");
    assert!(
        err.contains(&at),
        "error names {at} for:\n{text}\n{}",
        describe(&out)
    );
    for needle in needles {
        assert!(
            err.contains(needle),
            "error mentions {needle:?} for:\n{text}\n{}",
            describe(&out)
        );
    }
}

const GOOD: &str = "\
[settings]
domain = \"example.test\"
listen = \"127.0.0.1:8080\"

[service.api]
command = \"python3 app.py\"
health = \"/health\"
storage_persist = false

[service.api.env]
GREETING = \"hello {id}\"

[instances]
api = [\"prod\", \"staging\"]

[routing]
default = \"api\"
";

#[test]
fn a_good_config_passes_the_check() {
    let scratch = Scratch::new("config_good");
    let out = check(&scratch, GOOD);
    assert!(out.status.success(), "{}", describe(&out));
    let path = scratch.path("tenement.toml");
    let out = ten_raw(
        &scratch.root,
        &["--config", path.to_str().expect("UTF-8"), "config"],
    );
    assert!(out.status.success(), "{}", describe(&out));
    assert!(
        stdout(&out).contains("example.test"),
        "ten config prints the resolved config:\n{}",
        describe(&out)
    );
}

#[test]
fn config_errors_name_file_line_key_and_a_suggestion() {
    let scratch = Scratch::new("config_errors");
    // A misspelt service key on line 6: the suggestion is the real key.
    assert_refused(
        &scratch,
        "[settings]\ndomain = \"localhost\"\n\n[service.api]\ncommand = \"python3 app.py\"\nhelth = \"/health\"\n",
        6,
        &["helth", "health"],
    );
    // A misspelt settings key on line 2.
    assert_refused(
        &scratch,
        "[settings]\ndomian = \"localhost\"\n\n[service.api]\ncommand = \"x\"\n",
        2,
        &["domian", "domain"],
    );
    // A misspelt table on line 1.
    assert_refused(
        &scratch,
        "[setings]\ndomain = \"localhost\"\n\n[service.api]\ncommand = \"x\"\n",
        1,
        &["setings", "settings"],
    );
    // A wrong type on line 3.
    assert_refused(
        &scratch,
        "[service.api]\ncommand = \"x\"\nstartup_timeout = \"soon\"\n",
        3,
        &["startup_timeout"],
    );
    assert_refused(
        &scratch,
        "[settings]\nworkers = -1\n\n[service.api]\ncommand = \"x\"\n",
        2,
        &["workers"],
    );
    // An unknown isolation value on line 3.
    assert_refused(
        &scratch,
        "[service.api]\ncommand = \"x\"\nisolation = \"chroot\"\n",
        3,
        &["isolation", "chroot"],
    );
    // A bad service name on line 4.
    assert_refused(
        &scratch,
        "[settings]\ndomain = \"localhost\"\n\n[service.Web_App]\ncommand = \"x\"\n",
        4,
        &["Web_App"],
    );
    // A bad instance id on line 5.
    assert_refused(
        &scratch,
        "[service.api]\ncommand = \"x\"\n\n[instances]\napi = [\"prod\", \"Not Valid\"]\n",
        5,
        &["Not Valid"],
    );
    // Instances of a service that does not exist, line 5.
    assert_refused(
        &scratch,
        "[service.api]\ncommand = \"x\"\n\n[instances]\napj = [\"prod\"]\n",
        5,
        &["apj"],
    );
    // The one required key is missing from the table on line 1.
    let out = check(&scratch, "[service.api]\nhealth = \"/health\"\n");
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert!(
        stderr(&out).contains("command"),
        "names the missing key\n{}",
        describe(&out)
    );
    // Not TOML at all.
    let out = check(&scratch, "[service.api\ncommand = \"x\"\n");
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert!(
        stderr(&out).contains("tenement.toml:1"),
        "{}",
        describe(&out)
    );
}

#[test]
fn keys_not_built_yet_are_refused_not_ignored() {
    let scratch = Scratch::new("config_unsupported");
    // storage_quota_mb is built: accepted within its bounds.
    let out = check(
        &scratch,
        "[service.api]\ncommand = \"x\"\nstorage_quota_mb = 100\n",
    );
    assert!(out.status.success(), "{}", describe(&out));
    assert_refused(
        &scratch,
        "[service.api]\ncommand = \"x\"\nstorage_quota_mb = 0\n",
        3,
        &["storage_quota_mb", "between 1 and 16777216"],
    );
    // ACME is built: accepted, and its keys are checked.
    let acme = "[settings]\ndomain = \"localhost\"\n\n[settings.tls]\nacme_email = \"ops@example.com\"\n\n[service.api]\ncommand = \"x\"\n";
    let out = check(&scratch, acme);
    assert!(out.status.success(), "{}", describe(&out));
    let acme = acme.replace("ops@example.com", "ops");
    assert_refused(&scratch, &acme, 5, &["acme_email", "not an email address"]);
    // The defaults of those keys are accepted.
    let defaults = "[service.api]\ncommand = \"x\"\nisolation = \"process\"\nidle_timeout = 0\nautospawn = false\nsocket_activation = false\n";
    let out = check(&scratch, defaults);
    assert!(out.status.success(), "{}", describe(&out));
}

#[test]
fn cgroup_limits_are_accepted_within_the_kernel_ranges() {
    let scratch = Scratch::new("config_limits");
    let limits =
        "[service.api]\ncommand = \"x\"\nmemory_limit_mb = 256\ncpu_shares = 100\npids_max = 64\n";
    let out = check(&scratch, limits);
    assert!(out.status.success(), "{}", describe(&out));
    let text = "[service.api]\ncommand = \"x\"\ncpu_shares = 300000\n";
    assert_refused(&scratch, text, 3, &["cpu_shares", "between 2 and 262144"]);
}

#[test]
fn serve_refuses_a_bad_config() {
    let scratch = Scratch::new("serve_bad_config");
    let path = scratch.write(
        "tenement.toml",
        "[service.api]\ncommand = \"x\"\nhelth = \"/health\"\n",
    );
    let data = scratch.path("data");
    let mut child = Command::new(BIN)
        .arg("serve")
        .arg("--config")
        .arg(&path)
        .arg("--data-dir")
        .arg(&data)
        .args(["--port", "0", "--bind", "127.0.0.1"])
        .current_dir(&scratch.root)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn ten serve");
    let exited = wait_until(Duration::from_secs(10), || {
        matches!(child.try_wait(), Ok(Some(_)))
    });
    if !exited {
        let _ = child.kill();
        let _ = child.wait();
        panic!("ten serve kept running on a bad config");
    }
    let out = child.wait_with_output().expect("collect output");
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let err = stderr(&out);
    assert!(
        err.contains("tenement.toml:3") && err.contains("helth"),
        "{}",
        describe(&out)
    );
}

/// Configs written for the original tenement (0.2), in the shapes of its
/// examples and docs: each passes `ten config --check`, or fails at the
/// line of the key that differs with a message naming what replaces it.
#[test]
fn the_original_tenements_configs_check_or_name_the_replacement() {
    let scratch = Scratch::new("original_configs");
    let passes = [
        // One bash service, process isolation, a health path.
        "[service.hello]\ncommand = \"./server.sh\"\nhealth = \"/\"\nisolation = \"process\"\n",
        // A data dir, idle timeout and a templated env value.
        "[settings]\ndata_dir = \"./data\"\n\n[service.api]\ncommand = \"uv run python app.py\"\nhealth = \"/health\"\nisolation = \"process\"\nidle_timeout = 300\n\n[service.api.env]\nDATABASE_PATH = \"{data_dir}/{id}/app.db\"\n",
        // Resource limits and a longer startup.
        "[settings]\ndata_dir = \"./data\"\n\n[service.api]\ncommand = \"./server\"\nhealth = \"/health\"\nisolation = \"process\"\nmemory_limit_mb = 64\ncpu_shares = 50\nstartup_timeout = 30\n",
        // Tenants with persistent storage.
        "[service.notes]\ncommand = \"python3 app.py\"\nhealth = \"/health\"\nidle_timeout = 60\nstorage_persist = true\nisolation = \"process\"\n\n[service.notes.env]\nDATA_DIR = \"{data_dir}\"\n",
        // Several runtimes, inline env tables, restart knobs, instances at boot.
        "[settings]\ndata_dir = \"./data\"\nhealth_check_interval = 30\nmax_restarts = 3\nrestart_window = 300\nbackoff_base_ms = 1000\nbackoff_max_ms = 60000\n\n[service.api]\ncommand = \"python3 apps/python/server.py\"\nhealth = \"/health\"\nisolation = \"process\"\nenv = { APP_VERSION = \"1.0.0\" }\nrestart = \"on-failure\"\nrequest_timeout = 30\n\n[service.goapi]\ncommand = \"go run go_app.go\"\nstartup_timeout = 30\n\n[instances]\napi = [\"prod\", \"staging\"]\n",
        // Templates in the command, as the original expanded them.
        "[service.api]\ncommand = \"./api --id {id} --name {name}\"\nargs = [\"--port\", \"{port}\"]\n",
        // A storage quota, as the original wrote it.
        "[service.cache]\ncommand = \"./cache\"\nstorage_quota_mb = 100\n",
    ];
    for text in passes {
        let out = check(&scratch, text);
        assert!(out.status.success(), "{text}\n{}", describe(&out));
    }

    // (config, line, what the message must name)
    let refused: &[(&str, usize, &[&str])] = &[
        // Unix sockets per instance: two services, the first one's line.
        (
            "[settings]\ndata_dir = \"./data\"\n\n[service.worker]\ncommand = \"apps/go/go-worker\"\nsocket = \"/tmp/tenement/{name}-{id}.sock\"\nhealth = \"/health\"\n\n[service.cache]\ncommand = \"apps/rust/cache\"\nsocket = \"/tmp/tenement/{name}-{id}.sock\"\n",
            6,
            &["service.worker.socket", "SOCKET_PATH", "{data_dir}/.tenement/run/{name}.{id}.sock"],
        ),
        // The documented TLS table.
        (
            "[settings.tls]\nenabled = true\nacme_email = \"admin@example.com\"\ndomain = \"example.com\"\n",
            2,
            &["settings.tls.enabled", "`cert` and `key`", "settings.domain = \"example.com\"", "`acme_email` keeps its name"],
        ),
        ("[settings.tls]\ndomain = \"example.com\"\n", 2, &["settings.domain = \"example.com\""]),
        ("[settings.tls]\ncache_dir = \"/var/cache/acme\"\n", 2, &["{data_dir}/.tenement/acme/"]),
        ("[settings.tls]\nstaging = true\n", 2, &["acme_directory = \"https://acme-staging-v02.api.letsencrypt.org/directory\""]),
        ("[settings.tls]\nhttps_port = 8443\n", 2, &["https_listen = \"0.0.0.0:8443\""]),
        ("[settings.tls]\nhttp_port = 8080\n", 2, &["settings.listen = \"0.0.0.0:8080\"", "redirect_http"]),
        ("[settings.tls]\ndns_provider = \"cloudflare\"\n", 2, &["ten caddy --domain D --dns-provider cloudflare"]),
        // ACME's keys are checked.
        ("[settings.tls]\nacme_email = \"a@b.c\"\nacme_challenge = \"dns-01\"\n", 3, &["settings.tls.acme_challenge", "tls-alpn-01"]),
        // The original's VM levels.
        ("[service.vm]\ncommand = \"./app\"\nisolation = \"firecracker\"\n", 3, &["\"sandbox\""]),
    ];
    for (text, line, needles) in refused {
        assert_refused(&scratch, text, *line, needles);
    }
}
