//! Instance logs end to end: capture (streams, long lines, bad UTF-8,
//! lifecycle lines), rotation, persistence across a restart of tenement and
//! of the instance, `ten logs` filters, following live (API stream and
//! `ten logs -f`), and tenant scoping.

mod util;

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::Duration;

use util::*;

fn config(extra_settings: &str) -> String {
    format!(
        "{}{}",
        settings(extra_settings),
        py_service("talker", "talker.py", "")
    )
}

/// `GET /api/logs?QUERY` with `token`; the lines as (instance, stream, line).
fn api_logs(s: &Server, query: &str, token: &str) -> Vec<(String, String, String)> {
    let resp = s.api("GET", &format!("/api/logs?{query}"), Some(token), None);
    assert_eq!(resp.status, 200, "GET /api/logs?{query}: {}", resp.text());
    resp.json()
        .as_array()
        .expect("an array")
        .iter()
        .map(|e| {
            assert!(e["time"].as_str().is_some_and(|t| t.ends_with('Z')), "{e}");
            (
                e["instance"].as_str().unwrap().to_string(),
                e["stream"].as_str().unwrap().to_string(),
                e["line"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// Makes `svc:id` write `line` (to stderr when `stderr`) through the proxy.
fn say(s: &Server, id: &str, line: &str, stderr: bool) {
    let stream = if stderr { "&stream=stderr" } else { "" };
    let resp = s.http(
        "GET",
        &format!("{id}.talker.localhost"),
        &format!("/say?line={line}{stream}"),
        &[],
        b"",
    );
    assert_eq!(resp.status, 200, "say {line}: {}", resp.text());
}

/// Waits until the log of talker:`id` has a line containing `needle`.
fn wait_logged(s: &Server, id: &str, needle: &str) {
    let path = s
        .data_dir
        .join(".tenement/logs/talker")
        .join(format!("{id}.log"));
    let ok = wait_until(DEADLINE, || {
        std::fs::read_to_string(&path).is_ok_and(|t| t.contains(needle))
    });
    assert!(
        ok,
        "{needle:?} not in {} within {DEADLINE:?}\n--- server log ---\n{}",
        path.display(),
        s.log()
    );
}

#[test]
fn output_is_captured_line_by_line_with_time_and_stream() {
    let s = Server::start("logs-capture", &config(""));
    s.ten_ok(&["spawn", "talker:a"]);
    s.wait_running("talker:a");
    wait_logged(&s, "a", "talker warming up");
    let lines = api_logs(&s, "service=talker&id=a&limit=1000", &s.admin_token);
    let has = |stream: &str, line: &str| {
        lines
            .iter()
            .any(|(i, st, l)| i == "talker:a" && st == stream && l == line)
    };
    assert!(has("stdout", "talker starting"), "{lines:?}");
    assert!(has("stderr", "talker warming up"), "{lines:?}");
    assert!(
        has("stdout", "bad \u{fffd} byte"),
        "invalid UTF-8 kept as U+FFFD: {lines:?}"
    );
    // 20000 bytes of `x` are cut at the 16 KiB bound into two lines.
    let xs: Vec<usize> = lines
        .iter()
        .filter(|(_, _, l)| l.starts_with("xxxx"))
        .map(|(_, _, l)| l.len())
        .collect();
    assert_eq!(xs, [16 * 1024, 20000 - 16 * 1024]);
    // Lifecycle lines are in the same stream, marked as tenement's.
    assert!(
        lines
            .iter()
            .any(|(_, st, l)| st == "ten" && l.starts_with("spawned pid ")),
        "{lines:?}"
    );
    assert!(lines
        .iter()
        .any(|(_, st, l)| st == "ten" && l.starts_with("ready after ")));

    // The file on disk has the documented format: `{time} {stream} {text}`.
    let file = std::fs::read_to_string(s.data_dir.join(".tenement/logs/talker/a.log")).unwrap();
    let first = file.lines().next().unwrap();
    let (time, rest) = first.split_once(' ').unwrap();
    assert!(
        time.len() == 24 && time.ends_with('Z') && time.as_bytes()[10] == b'T',
        "{first}"
    );
    assert!(rest.starts_with("ten spawned pid "), "{first}");
}

#[test]
fn ten_logs_filters_by_search_stream_limit_and_since() {
    let s = Server::start("logs-cli", &config(""));
    s.ten_ok(&["spawn", "talker:a"]);
    s.ten_ok(&["spawn", "talker:b"]);
    s.wait_running("talker:a");
    s.wait_running("talker:b");
    say(&s, "a", "needle-one", false);
    say(&s, "a", "needle-two", true);
    say(&s, "b", "needle-three", false);
    wait_logged(&s, "a", "needle-two");
    wait_logged(&s, "b", "needle-three");

    let out = stdout(&s.ten_ok(&["logs", "talker:a", "--search", "needle"]));
    let got: Vec<&str> = out.lines().collect();
    assert_eq!(got.len(), 2, "{out}");
    assert!(got[0].ends_with(" talker:a stdout needle-one"), "{out}");
    assert!(
        got[1].ends_with(" talker:a stderr needle-two"),
        "newest last: {out}"
    );
    assert!(
        !out.contains('\x1b'),
        "no colour when stdout is not a terminal"
    );

    let out = stdout(&s.ten_ok(&["logs", "talker:a", "--stream", "stderr"]));
    assert!(out.lines().all(|l| l.contains(" stderr ")), "{out}");
    assert!(
        out.contains("needle-two") && out.contains("talker warming up"),
        "{out}"
    );

    let out = stdout(&s.ten_ok(&["logs", "talker:a", "--limit", "1"]));
    assert_eq!(out.lines().count(), 1, "{out}");
    assert!(out.contains("needle-two"), "{out}");

    let out = stdout(&s.ten_ok(&["logs", "talker:a", "--since", "10m", "--search", "needle"]));
    assert_eq!(out.lines().count(), 2, "{out}");

    // All instances, merged by time.
    let out = stdout(&s.ten_ok(&["logs", "--search", "needle"]));
    let got: Vec<&str> = out.lines().collect();
    assert_eq!(got.len(), 3, "{out}");
    assert!(got[2].ends_with("talker:b stdout needle-three"), "{out}");

    // --json is an array of objects.
    let out = stdout(&s.ten_ok(&["--json", "logs", "talker:b", "--search", "needle"]));
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v[0]["line"], "needle-three");
    assert_eq!(v[0]["stream"], "stdout");
}

#[test]
fn logs_rotate_at_log_max_bytes_and_stay_searchable() {
    let s = Server::start(
        "logs-rotate",
        &config("log_max_bytes = 2000\nlog_files = 2"),
    );
    s.ten_ok(&["spawn", "talker:a"]);
    s.wait_running("talker:a");
    // ~45 bytes per line: 200 lines are several rotations.
    let resp = s.http(
        "GET",
        "a.talker.localhost",
        "/say?line=rotating&n=200",
        &[],
        b"",
    );
    assert_eq!(resp.status, 200);
    wait_logged(&s, "a", "rotating 199");
    let dir = s.data_dir.join(".tenement/logs/talker");
    for name in ["a.log", "a.log.1", "a.log.2"] {
        let len = std::fs::metadata(dir.join(name))
            .unwrap_or_else(|e| panic!("{name}: {e}"))
            .len();
        assert!(len > 0 && len <= 2000, "{name} has {len} bytes");
    }
    assert!(
        !dir.join("a.log.3").exists(),
        "only log_files = 2 rotated files are kept"
    );
    // A line that rotated out of a.log is still found.
    let in_first_rotated = std::fs::read_to_string(dir.join("a.log.1")).unwrap();
    let line = in_first_rotated.lines().last().unwrap();
    let text = line.splitn(3, ' ').nth(2).unwrap().to_string();
    let found = api_logs(
        &s,
        &format!("service=talker&id=a&search={}", text.replace(' ', "+")),
        &s.admin_token,
    );
    assert_eq!(found.len(), 1, "{text:?}: {found:?}");
    // The newest 10 lines come back oldest first, across files.
    let last: Vec<String> = api_logs(
        &s,
        "service=talker&id=a&limit=10&search=rotating",
        &s.admin_token,
    )
    .into_iter()
    .map(|(_, _, l)| l)
    .collect();
    let want: Vec<String> = (190..200).map(|i| format!("rotating {i}")).collect();
    assert_eq!(last, want);
}

#[test]
fn logs_survive_a_restart_of_tenement_and_of_the_instance() {
    let mut s = Server::start("logs-persist", &config(""));
    s.ten_ok(&["spawn", "talker:a"]);
    s.wait_running("talker:a");
    say(&s, "a", "before-restarts", false);
    wait_logged(&s, "a", "before-restarts");

    s.ten_ok(&["restart", "talker:a"]);
    s.wait_running("talker:a");
    say(&s, "a", "after-instance-restart", false);
    wait_logged(&s, "a", "after-instance-restart");

    s.restart();
    s.wait_running("talker:a");
    say(&s, "a", "after-server-restart", false);
    wait_logged(&s, "a", "after-server-restart");

    let lines = api_logs(&s, "service=talker&id=a&limit=1000", &s.admin_token);
    let texts: Vec<&str> = lines.iter().map(|(_, _, l)| l.as_str()).collect();
    let pos = |t: &str| texts.iter().position(|l| *l == t);
    let (a, b, c) = (
        pos("before-restarts"),
        pos("after-instance-restart"),
        pos("after-server-restart"),
    );
    assert!(a.is_some() && a < b && b < c, "{texts:?}");
    let spawned = lines
        .iter()
        .filter(|(_, st, l)| st == "ten" && l.starts_with("spawned pid "))
        .count();
    assert_eq!(spawned, 3, "three processes, one log: {texts:?}");
}

#[test]
fn the_log_stream_delivers_a_line_written_after_it_opened() {
    let s = Server::start("logs-follow", &config(""));
    s.ten_ok(&["spawn", "talker:a"]);
    s.wait_running("talker:a");
    let mut stream = s.events("/api/logs/stream?service=talker&id=a", Some(&s.admin_token));
    say(&s, "a", "live-line-1", false);
    say(&s, "a", "live-line-2", true);
    assert!(
        stream.wait_for(DEADLINE, |t| t.contains("live-line-2")),
        "got:\n{}",
        stream.text
    );
    assert!(
        stream.text.contains("event: log\ndata: {"),
        "{}",
        stream.text
    );
    assert!(
        stream.text.contains("\"stream\":\"stderr\""),
        "{}",
        stream.text
    );
    let one = stream.text.find("live-line-1").unwrap();
    let two = stream.text.find("live-line-2").unwrap();
    assert!(one < two);

    // `ten logs -f`: the history first, then lines as they are written.
    let mut cmd = Command::new(BIN);
    cmd.args(["--config", s.config.to_str().unwrap()])
        .args(["--data-dir", s.data_dir.to_str().unwrap()])
        .args(["logs", "talker:a", "-f"])
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // A shell without job control starts background commands with SIGINT
    // ignored, and that is inherited: a suite run with `&` would hand the
    // CLI an ignored SIGINT. Ctrl-C in a terminal is what this imitates.
    // SAFETY: signal(2) is async-signal-safe and touches no memory of ours.
    unsafe {
        cmd.pre_exec(|| {
            libc::signal(libc::SIGINT, libc::SIG_DFL);
            Ok(())
        });
    }
    let mut child = cmd.spawn().expect("spawn ten logs -f");
    let mut out = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let reader = std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = out.read(&mut buf) {
            if n == 0
                || tx
                    .send(String::from_utf8_lossy(&buf[..n]).into_owned())
                    .is_err()
            {
                break;
            }
        }
    });
    let mut seen = String::new();
    let mut wait_out = |needle: &str| {
        let end = std::time::Instant::now() + DEADLINE;
        while !seen.contains(needle) && std::time::Instant::now() < end {
            if let Ok(t) = rx.recv_timeout(Duration::from_millis(100)) {
                seen.push_str(&t);
            }
        }
        seen.contains(needle)
    };
    let history = wait_out("live-line-2");
    say(&s, "a", "follow-line-3", false);
    let live = wait_out("follow-line-3");
    // Ctrl-C.
    signal(child.id(), "INT");
    let ended = wait_until(DEADLINE, || matches!(child.try_wait(), Ok(Some(_))));
    if !ended {
        let _ = child.kill();
    }
    let _ = child.wait();
    let _ = reader.join();
    while let Ok(t) = rx.try_recv() {
        seen.push_str(&t);
    }
    assert!(history, "history not printed by ten logs -f:\n{seen}");
    assert!(live, "live line not printed by ten logs -f:\n{seen}");
    assert!(ended, "ten logs -f did not stop on SIGINT");
    assert_eq!(
        seen.matches("follow-line-3").count(),
        1,
        "each line once:\n{seen}"
    );
    assert_eq!(seen.matches("live-line-1").count(), 1, "{seen}");
}

#[test]
fn a_tenant_token_reads_its_own_logs_only() {
    let s = Server::start("logs-tenant", &config(""));
    let alice = s.mint_token(Some("alice"));
    s.ten_ok(&["spawn", "talker:alice"]);
    s.ten_ok(&["spawn", "talker:bob"]);
    s.wait_running("talker:alice");
    s.wait_running("talker:bob");
    say(&s, "alice", "secret-of-alice", false);
    say(&s, "bob", "secret-of-bob", false);
    wait_logged(&s, "alice", "secret-of-alice");
    wait_logged(&s, "bob", "secret-of-bob");

    let all = api_logs(&s, "limit=1000", &alice);
    assert!(!all.is_empty());
    assert!(all.iter().all(|(i, _, _)| i == "talker:alice"), "{all:?}");
    assert!(all.iter().any(|(_, _, l)| l == "secret-of-alice"));
    let resp = s.api("GET", "/api/logs?service=talker&id=bob", Some(&alice), None);
    assert_eq!(resp.status, 403, "{}", resp.text());
    let resp = s.api("GET", "/api/logs/stream?id=bob", Some(&alice), None);
    assert_eq!(resp.status, 403, "{}", resp.text());
    let resp = s.api("GET", "/api/logs", None, None);
    assert_eq!(resp.status, 401);

    // The CLI over TCP with the tenant token: the same scope.
    let out = s.ten_tcp(&alice, &["logs", "--search", "secret"]);
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(stdout(&out).lines().count(), 1, "{}", stdout(&out));
    assert!(stdout(&out).contains("secret-of-alice"));

    // Live: bob's line is written first, alice's second; only alice's arrives.
    let mut stream = s.events("/api/logs/stream", Some(&alice));
    say(&s, "bob", "live-of-bob", false);
    say(&s, "alice", "live-of-alice", false);
    assert!(
        stream.wait_for(DEADLINE, |t| t.contains("live-of-alice")),
        "{}",
        stream.text
    );
    assert!(!stream.text.contains("live-of-bob"), "{}", stream.text);
    assert!(!stream.text.contains("talker:bob"), "{}", stream.text);
}

/// `ten logs -f` running in the background, its stdout gathered as it comes.
struct Follow {
    child: std::process::Child,
    rx: std::sync::mpsc::Receiver<String>,
    seen: String,
}

impl Follow {
    fn start(s: &Server, args: &[&str]) -> Follow {
        let mut child = Command::new(BIN)
            .args(["--config", s.config.to_str().unwrap()])
            .args(["--data-dir", s.data_dir.to_str().unwrap()])
            .args(["logs", "-f"])
            .args(args)
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn ten logs -f");
        let mut out = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel::<String>();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = out.read(&mut buf) {
                if n == 0
                    || tx
                        .send(String::from_utf8_lossy(&buf[..n]).into_owned())
                        .is_err()
                {
                    break;
                }
            }
        });
        Follow {
            child,
            rx,
            seen: String::new(),
        }
    }

    /// Waits until the output holds `count` lines ending in `text`.
    fn wait_lines(&mut self, text: &str, count: usize) -> bool {
        let end = std::time::Instant::now() + DEADLINE;
        loop {
            if self.count(text) >= count {
                return true;
            }
            if std::time::Instant::now() >= end {
                return false;
            }
            if let Ok(t) = self.rx.recv_timeout(Duration::from_millis(50)) {
                self.seen.push_str(&t);
            }
        }
    }

    fn count(&self, text: &str) -> usize {
        let suffix = format!(" {text}");
        self.seen.lines().filter(|l| l.ends_with(&suffix)).count()
    }

    /// Gathers what arrives for `quiet` more, then stops the follower.
    fn finish(mut self, quiet: Duration) -> String {
        let end = std::time::Instant::now() + quiet;
        while std::time::Instant::now() < end {
            if let Ok(t) = self.rx.recv_timeout(Duration::from_millis(20)) {
                self.seen.push_str(&t);
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.seen
    }
}

/// `ten logs -f` prints every line exactly once: a line written right after
/// the history is printed even when an equal line is in the history (it was
/// dropped as a "copy" of it), and lines written while the follower starts
/// (between its subscription and its reading of the history) appear once.
#[test]
fn logs_follow_prints_every_line_once() {
    let s = Server::start("logs-follow-once", &config(""));
    s.ten_ok(&["spawn", "talker:a", "--wait"]);
    for round in 1..=3 {
        say(&s, "a", "hello", false);
        let before = round * 2 - 1;
        wait_logged(&s, "a", "hello");
        let mut f = Follow::start(&s, &["talker:a", "--limit", "1000"]);
        assert!(
            f.wait_lines("hello", before),
            "round {round}: history not printed:\n{}",
            f.seen
        );
        say(&s, "a", "hello", false);
        assert!(
            f.wait_lines("hello", before + 1),
            "round {round}: the line written after the history was dropped:\n{}",
            f.seen
        );
        let seen = f.finish(Duration::from_millis(300));
        let got = seen.lines().filter(|l| l.ends_with(" hello")).count();
        assert_eq!(got, before + 1, "round {round}: each line once:\n{seen}");
    }

    // Lines written while the follower subscribes and reads the history.
    for round in 1..=3 {
        let tag = format!("burst{round}");
        let f = Follow::start(&s, &["talker:a", "--limit", "5000"]);
        let resp = s.http(
            "GET",
            "a.talker.localhost",
            &format!("/say?line={tag}&n=400"),
            &[],
            b"",
        );
        assert_eq!(resp.status, 200);
        let mut f = f;
        assert!(f.wait_lines(&format!("{tag} 399"), 1), "{}", f.seen);
        let seen = f.finish(Duration::from_millis(300));
        for i in 0..400 {
            let want = format!(" {tag} {i}");
            let n = seen.lines().filter(|l| l.ends_with(&want)).count();
            assert_eq!(n, 1, "round {round}: line {i} printed {n} times:\n{seen}");
        }
    }
}

/// What an app writes cannot act on the terminal of whoever reads its logs:
/// no control character (ESC, CR, BS, DEL, C1) and no bidi override reaches
/// `ten logs` output raw, so each app line is one line of output that
/// starts with its own time, instance and stream. `--json` carries the
/// exact text, escaped.
#[test]
fn logs_output_escapes_control_characters() {
    let s = Server::start("logs-escape", &config(""));
    s.ten_ok(&["spawn", "talker:a", "--wait"]);
    // Percent-encoded for the query string: (encoded, decoded).
    let lines: &[(&str, &str)] = &[
        (
            "esc%1b[2K%0dnotes:bob%20stdout%20forged",
            "esc\u{1b}[2K\rnotes:bob stdout forged",
        ),
        ("bs%08%08%08x", "bs\u{8}\u{8}\u{8}x"),
        ("del%7fx", "del\u{7f}x"),
        ("csi%c2%9b31mred", "csi\u{9b}31mred"),
        (
            "bell%07title%1b]0;pwned%07",
            "bell\u{7}title\u{1b}]0;pwned\u{7}",
        ),
        ("rlo%e2%80%aedrow", "rlo\u{202e}drow"),
        ("vt%0bff%0cnul%00end", "vt\u{b}ff\u{c}nul\u{0}end"),
    ];
    for (encoded, _) in lines {
        say(&s, "a", encoded, false);
    }
    wait_logged(&s, "a", "nul");
    let unsafe_char = |c: char| {
        (c.is_control() && c != '\n')
            || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
    };

    let out = s.ten_ok(&["logs", "talker:a", "--stream", "stdout"]);
    let text = stdout(&out);
    assert!(
        !text.chars().any(unsafe_char),
        "raw control characters in ten logs:\n{text:?}"
    );
    for line in text.lines() {
        let mut words = line.split(' ');
        let (_time, instance, stream) = (words.next(), words.next(), words.next());
        assert_eq!(
            (instance, stream),
            (Some("talker:a"), Some("stdout")),
            "{line:?}"
        );
    }
    for prefix in ["esc", "bs", "del", "csi", "bell", "rlo", "vt"] {
        let n = text
            .lines()
            .filter(|l| l.contains(&format!(" stdout {prefix}")))
            .count();
        assert_eq!(n, 1, "one output line for {prefix}:\n{text}");
    }
    assert!(
        text.contains("esc\\x1b[2K\\rnotes:bob stdout forged"),
        "{text}"
    );

    let out = s.ten_ok(&["--json", "logs", "talker:a", "--stream", "stdout"]);
    let text = stdout(&out);
    assert!(!text.chars().any(unsafe_char), "raw in --json:\n{text:?}");
    let got: Vec<Value> = serde_json::from_str(&text).expect("--json is JSON");
    for (_, decoded) in lines {
        assert!(
            got.iter().any(|e| e["line"] == *decoded),
            "{decoded:?} not carried exactly in:\n{text}"
        );
    }
}
