//! The dashboard in a real browser: headless Chromium, driven over the
//! DevTools protocol by `tests/fixtures/cdp.py`, signs in with a real token,
//! lists the spawned instances, stops one from the page, shows logs, and
//! writes screenshots to `target/dashboard-*.png`.

mod util;

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use util::*;

/// A browser behind the driver script. Dropping it quits the browser and
/// waits for the driver, which kills the browser's process group.
struct Browser {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<String>,
}

impl Browser {
    fn start(user_data_dir: &std::path::Path) -> Browser {
        let mut child = Command::new("python3")
            .arg(fixture("cdp.py"))
            .arg("chromium")
            .arg(user_data_dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start cdp.py");
        let stdin = child.stdin.take();
        let stdout: ChildStdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut b = Browser {
            child,
            stdin,
            lines,
        };
        let ready = b.answer();
        assert_eq!(ready["ready"], true, "browser did not start: {ready}");
        b
    }

    fn answer(&mut self) -> Value {
        let line = self
            .lines
            .recv_timeout(Duration::from_secs(60))
            .expect("an answer from cdp.py within 60 s");
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("cdp.py said {line:?}: {e}"))
    }

    fn send(&mut self, cmd: Value) -> Value {
        let stdin = self.stdin.as_mut().expect("driver running");
        writeln!(stdin, "{cmd}").expect("write to cdp.py");
        stdin.flush().unwrap();
        let a = self.answer();
        assert_eq!(a["ok"], true, "{cmd} failed: {a}");
        a
    }

    fn eval(&mut self, expr: &str) -> Value {
        self.send(serde_json::json!({"cmd": "eval", "expr": expr}))["value"].clone()
    }

    /// Polls `expr` until it is `true`.
    fn wait_js(&mut self, expr: &str, what: &str) {
        let mut last = Value::Null;
        let ok = wait_until(DEADLINE, || {
            last = self.eval(expr);
            last == Value::Bool(true)
        });
        if !ok {
            let body = self.eval("document.body.innerText");
            panic!("{what}: `{expr}` never held (last {last})\n--- page text ---\n{body}");
        }
    }

    fn screenshot(&mut self, name: &str) -> std::path::PathBuf {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target");
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        let a = self.send(serde_json::json!({"cmd": "screenshot", "path": path}));
        assert!(a["bytes"].as_u64().unwrap() > 1000, "{a}");
        path
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if let Some(mut stdin) = self.stdin.take() {
            let _ = writeln!(stdin, "{{\"cmd\":\"quit\"}}");
        }
        let done = wait_until(Duration::from_secs(20), || {
            matches!(self.child.try_wait(), Ok(Some(_)))
        });
        if !done {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The text of the row of `instance` in the instance table, or "" if absent.
fn row_js(instance: &str) -> String {
    format!(
        "(document.querySelector('tr[data-instance=\"{instance}\"]') || {{innerText: ''}}).innerText"
    )
}

#[test]
fn dashboard_in_headless_chromium_lists_stops_and_shows_logs() {
    if !tools_present(&["chromium", "python3"]) {
        return;
    }
    let config = format!(
        "{}{}",
        settings(""),
        py_service("talker", "talker.py", "health = \"/health\"")
    );
    let s = Server::start("dashboard", &config);
    s.ten_ok(&["spawn", "talker:alice"]);
    s.ten_ok(&["spawn", "talker:bob", "--weight", "40"]);
    s.wait_running("talker:alice");
    s.wait_running("talker:bob");

    // The page itself is public and self-contained.
    let page = s.http("GET", &s.addr.to_string(), "/", &[], b"");
    assert_eq!(page.status, 200);
    assert!(page
        .header("content-type")
        .unwrap()
        .starts_with("text/html"));
    assert!(page.header("content-security-policy").is_some());

    // Inside the scratch dir: a leftover browser process fails the test.
    let mut b = Browser::start(&s.root().join("chromium"));
    let url = format!("{}/", s.url());
    b.send(serde_json::json!({"cmd": "viewport", "width": 1100, "height": 900, "mobile": false}));
    b.send(serde_json::json!({"cmd": "navigate", "url": url}));
    b.wait_js(
        "!!document.getElementById('login') && !document.getElementById('login').hidden",
        "login form",
    );

    // A wrong token: a clear message, still on the sign-in form.
    b.eval("document.getElementById('token').value = 'ten_wrong'; document.getElementById('login').requestSubmit(); true");
    b.wait_js(
        "document.getElementById('message').innerText.includes('401')",
        "401 message",
    );
    assert_eq!(b.eval("document.getElementById('app').hidden"), true);

    // The admin token: both instances listed with their state and weight.
    let token = serde_json::to_string(&s.admin_token).unwrap();
    b.eval(&format!(
        "document.getElementById('token').value = {token}; document.getElementById('login').requestSubmit(); true"
    ));
    b.wait_js("!document.getElementById('app').hidden", "dashboard shown");
    b.wait_js(
        &format!("{}.includes('running')", row_js("talker:alice")),
        "alice listed",
    );
    b.wait_js(
        &format!("{}.includes('running')", row_js("talker:bob")),
        "bob listed",
    );
    let bob = b.eval(&row_js("talker:bob")).as_str().unwrap().to_string();
    assert!(bob.contains("40") && bob.contains("healthy"), "{bob:?}");
    assert_eq!(
        b.eval("sessionStorage.getItem('tenement-token') !== null"),
        true
    );

    // Logs: the history of all instances, then a line written while following.
    b.wait_js(
        "document.getElementById('log').innerText.includes('talker starting')",
        "history in the log panel",
    );
    b.wait_js(
        "document.getElementById('live').innerText === '(live)'",
        "events live",
    );
    let resp = s.http(
        "GET",
        "alice.talker.localhost",
        "/say?line=hello-from-the-test",
        &[],
        b"",
    );
    assert_eq!(resp.status, 200);
    b.wait_js(
        "document.getElementById('log').innerText.includes('hello-from-the-test')",
        "followed line",
    );
    b.screenshot("dashboard-desktop.png");

    // Stop bob from the page: two clicks (arm, confirm).
    let click = "document.querySelector('tr[data-instance=\"talker:bob\"] button[data-action=\"stop\"]').click(); true";
    b.eval(click);
    b.eval(click);
    let gone = wait_until(DEADLINE, || s.instance("talker:bob").is_none());
    assert!(
        gone,
        "talker:bob still listed after a stop from the page\n{}",
        s.log()
    );
    b.wait_js(
        &format!("{} === ''", row_js("talker:bob")),
        "bob's row removed live",
    );
    assert!(s.instance("talker:alice").is_some());

    // A phone-sized screen: rows become cards, nothing overflows sideways.
    b.send(serde_json::json!({"cmd": "viewport", "width": 390, "height": 844, "mobile": true}));
    b.wait_js(
        "document.documentElement.scrollWidth <= window.innerWidth + 1",
        "no horizontal overflow on a phone",
    );
    let path = b.screenshot("dashboard-phone.png");
    eprintln!("screenshots: {}", path.parent().unwrap().display());
}
