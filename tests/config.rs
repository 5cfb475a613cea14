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
    let cases = [("storage_quota_mb = 100", "storage_quota_mb")];
    for (line, key) in cases {
        let text = format!("[service.api]\ncommand = \"x\"\n{line}\n");
        assert_refused(&scratch, &text, 3, &[key, "not supported yet"]);
    }
    let tls = "[settings]\ndomain = \"localhost\"\n\n[settings.tls]\ncert = \"fullchain.pem\"\nkey = \"privkey.pem\"\n\n[service.api]\ncommand = \"x\"\n";
    let out = check(&scratch, tls);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert!(
        stderr(&out).contains("not supported yet"),
        "TLS is refused\n{}",
        describe(&out)
    );
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
