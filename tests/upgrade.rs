//! `ten upgrade` and SIGUSR2: the server executes the binary at its path
//! again in place. Under a loop of requests (fresh connections and
//! keep-alive ones) none fails, the server's pid and the instance's pid
//! stay, and the instance's log goes on; a broken new binary leaves the old
//! one serving, and so does an exec that fails after the hand-over and a
//! new binary that dies or hangs right after the exec (the old binary's
//! keeper serves on the same sockets); `ten logs -f` goes on across an
//! upgrade; a reload that changes `workers` and `listen` moves the front
//! without restarting instances.
//!
//! The server runs from a copy of the binary in the test's own folder, so
//! the test can replace that file as an operator would (copy, rename).

mod util;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use util::*;

static BINS: AtomicUsize = AtomicUsize::new(0);

/// A folder of the test's own holding a copy of `ten`; removed on drop.
struct Bin {
    dir: PathBuf,
    path: PathBuf,
}

impl Bin {
    fn new(name: &str) -> Bin {
        let n = BINS.fetch_add(1, Ordering::SeqCst);
        let dir =
            std::env::temp_dir().join(format!("ten-upgrade-bin-{name}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create the binary's folder");
        let path = dir.join("ten");
        std::fs::copy(BIN, &path).expect("copy ten");
        Bin { dir, path }
    }

    /// `sh -c 'shift; exec "$0" "$@"' COPY`: the harness appends its own
    /// binary and the serve arguments; the copy runs with the same pid.
    fn wrap(&self) -> Vec<String> {
        vec![
            "sh".into(),
            "-c".into(),
            "shift; exec \"$0\" \"$@\"".into(),
            self.path.to_str().expect("UTF-8 path").into(),
        ]
    }

    /// Replaces the file as an operator would: a new file renamed over it.
    fn replace_with(&self, from: &Path) {
        let tmp = self.dir.join("ten.new");
        std::fs::copy(from, &tmp).expect("copy the new binary");
        std::fs::rename(&tmp, &self.path).expect("rename it over the old one");
    }

    /// A new "binary" that is a shell script failing at once.
    fn replace_with_broken(&self) {
        self.replace_with_script("#!/bin/sh\necho 'this binary is broken' >&2\nexit 1\n");
    }

    /// A new "binary" that passes the self-check (the real binary's) and,
    /// executed with the hand-over, runs the shell lines `then`.
    fn replace_with_checked(&self, then: &str) {
        self.replace_with_script(&format!(
            "#!/bin/sh\nif [ -n \"$TENEMENT_UPGRADE_CHECK\" ]; then exec {BIN} \"$@\"; fi\n{then}\n"
        ));
    }

    /// A new "binary" that is the shell script `text`.
    fn replace_with_script(&self, text: &str) {
        let tmp = self.dir.join("script");
        std::fs::write(&tmp, text).expect("write the script");
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        std::fs::rename(&tmp, &self.path).expect("rename it over the old one");
    }
}

impl Drop for Bin {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn wrap_args(bin: &Bin) -> Vec<String> {
    bin.wrap()
}

fn start(name: &str, config: &str, bin: &Bin) -> Server {
    let wrap = wrap_args(bin);
    let wrap: Vec<&str> = wrap.iter().map(String::as_str).collect();
    Server::start_wrapped(name, config, &[], &wrap)
}

fn config() -> String {
    format!(
        "{}{}[instances]\nweb = [\"a\"]\n",
        settings("workers = 2"),
        py_service("web", "echo.py", "health = \"/health\"")
    )
}

/// What a load thread saw.
#[derive(Default)]
struct Tally {
    ok: usize,
    failed: Vec<String>,
    worst: Duration,
}

/// One GET over `stream`; Ok(whether the server will close the
/// connection). The response is read whole (Content-Length).
fn get(stream: &mut TcpStream, path: &str, keep: bool) -> Result<bool, String> {
    let conn = if keep { "" } else { "Connection: close\r\n" };
    let req = format!("GET {path} HTTP/1.1\r\nHost: a.web.localhost\r\n{conn}\r\n");
    stream
        .write_all(req.as_bytes())
        .map_err(|e| format!("write: {e}"))?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        match stream.read(&mut chunk) {
            Ok(0) => return Err("closed before the response".into()),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) => return Err(format!("read: {e}")),
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_lowercase();
    if !head.starts_with("http/1.1 200") {
        return Err(head.lines().next().unwrap_or("").to_string());
    }
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .ok_or("no content-length")?;
    while buf.len() < head_end + length {
        match stream.read(&mut chunk) {
            Ok(0) => return Err("closed in the body".into()),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) => return Err(format!("read body: {e}")),
        }
    }
    Ok(head.contains("connection: close"))
}

/// Requests until `stop` (at most 5000, at most 60 s): over a kept
/// connection (reopened when the server says close) or a fresh one each.
fn load(addr: SocketAddr, keep: bool, stop: Arc<AtomicBool>) -> JoinHandle<Tally> {
    std::thread::spawn(move || {
        let mut t = Tally::default();
        let end = Instant::now() + Duration::from_secs(60);
        let mut conn: Option<TcpStream> = None;
        for i in 0..5000 {
            if stop.load(Ordering::Relaxed) || Instant::now() > end {
                break;
            }
            let began = Instant::now();
            let stream = match conn.take() {
                Some(s) => s,
                None => match TcpStream::connect(addr) {
                    Ok(s) => s,
                    Err(e) => {
                        t.failed.push(format!("connect: {e}"));
                        continue;
                    }
                },
            };
            let mut stream = stream;
            let _ = stream.set_read_timeout(Some(Duration::from_secs(20)));
            match get(&mut stream, &format!("/load/{i}"), keep) {
                Ok(closing) => {
                    t.ok += 1;
                    t.worst = t.worst.max(began.elapsed());
                    if keep && !closing {
                        conn = Some(stream);
                    }
                }
                Err(e) => t.failed.push(e),
            }
        }
        t
    })
}

fn upgrade_status(s: &Server) -> Value {
    let r = s.api("GET", "/api/upgrade", Some(s.admin_token.as_str()), None);
    assert_eq!(r.status, 200, "GET /api/upgrade: {}", r.text());
    r.json()
}

fn exe_of(pid: u32) -> String {
    std::fs::read_link(format!("/proc/{pid}/exe"))
        .map(|p| p.display().to_string())
        .unwrap_or_default()
}

#[test]
fn upgrade_under_load_fails_no_request_and_keeps_every_pid() {
    let bin = Bin::new("load");
    let s = start("upgrade-load", &config(), &bin);
    let pid = s.pid().expect("server runs");
    let inst = s.wait_running("web:a");
    let inst_pid = inst["pid"].as_u64().expect("a pid");

    let stop = Arc::new(AtomicBool::new(false));
    let mut threads = Vec::new();
    for keep in [true, true, false, false] {
        threads.push(load(s.addr, keep, stop.clone()));
    }
    // Some traffic first, so the upgrade happens under it.
    std::thread::sleep(Duration::from_millis(500));
    bin.replace_with(Path::new(BIN));
    assert!(
        exe_of(pid).ends_with("(deleted)"),
        "the running image is the replaced file"
    );
    let out = s.ten_ok(&["upgrade"]);
    let said = stdout(&out);
    assert!(
        said.contains(&format!("pid {pid} unchanged")),
        "ten upgrade said: {said}"
    );
    // Traffic after it too, then stop.
    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, Ordering::Relaxed);
    let mut ok = 0;
    let mut failed = Vec::new();
    for t in threads {
        let tally = t.join().expect("load thread");
        ok += tally.ok;
        failed.extend(tally.failed);
        eprintln!("load thread: {} ok, longest {:?}", tally.ok, tally.worst);
    }
    assert!(
        failed.is_empty(),
        "{} of {} requests failed during the upgrade: {:?}\n--- server log ---\n{}",
        failed.len(),
        ok + failed.len(),
        &failed[..failed.len().min(10)],
        s.log()
    );
    assert!(ok > 0, "no request went through");

    // The same process runs the new file now.
    assert_eq!(s.pid(), Some(pid));
    assert!(
        pid_alive(pid) && !exe_of(pid).ends_with("(deleted)"),
        "pid {pid} runs {}",
        exe_of(pid)
    );
    let status = upgrade_status(&s);
    assert_eq!(status["pid"], pid);
    assert_eq!(status["upgrades"], 1);
    assert_eq!(status["last"]["ok"], true);

    // The instance was adopted, not restarted, and its log goes on.
    let after = s.wait_running("web:a");
    assert_eq!(after["pid"].as_u64(), Some(inst_pid), "instance restarted");
    assert_eq!(after["restarts"], 0);
    let marker = "/written-after-the-upgrade";
    s.echo("a.web.localhost", marker);
    let mut logs = String::new();
    let seen = wait_until(DEADLINE, || {
        logs = stdout(&s.ten_ok(&["logs", "web:a", "--search", "written-after"]));
        logs.contains(marker)
    });
    assert!(seen, "the instance's log stopped at the upgrade:\n{logs}");
}

#[test]
fn a_broken_new_binary_leaves_the_old_one_serving_and_sigusr2_upgrades() {
    let bin = Bin::new("broken");
    let s = start("upgrade-broken", &config(), &bin);
    let pid = s.pid().expect("server runs");
    let inst_pid = s.wait_running("web:a")["pid"].as_u64();

    bin.replace_with_broken();
    let out = s.ten(&["upgrade"]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let err = stderr(&out);
    assert!(
        err.contains("upgrade failed") && err.contains("this binary is broken"),
        "{err}"
    );
    // Still serving, same process, same instance.
    s.echo("a.web.localhost", "/still-here");
    assert_eq!(s.pid(), Some(pid));
    assert!(pid_alive(pid));
    let status = upgrade_status(&s);
    assert_eq!(status["last"]["ok"], false);
    assert_eq!(status["upgrades"], 0);
    assert_eq!(s.wait_running("web:a")["pid"].as_u64(), inst_pid);

    // A good binary again, and SIGUSR2 instead of the command.
    bin.replace_with(Path::new(BIN));
    signal(pid, "USR2");
    let mut last = Value::Null;
    let upgraded = wait_until(DEADLINE, || {
        last = upgrade_status(&s);
        last["upgrades"] == 1
    });
    assert!(upgraded, "SIGUSR2 did not upgrade: {last}\n{}", s.log());
    assert_eq!(last["pid"], pid);
    assert!(!exe_of(pid).ends_with("(deleted)"));
    assert_eq!(s.wait_running("web:a")["pid"].as_u64(), inst_pid);
    s.echo("a.web.localhost", "/after-sigusr2");
}

#[test]
fn a_reload_that_changes_workers_and_listen_restarts_no_instance() {
    let bin = Bin::new("reload");
    let text = |listen: &str, workers: u32| {
        format!(
            "{}{}[instances]\nweb = [\"a\"]\n",
            settings(&format!("listen = \"{listen}\"\nworkers = {workers}")),
            py_service("web", "echo.py", "health = \"/health\"")
        )
    };
    let wrap = wrap_args(&bin);
    let wrap: Vec<&str> = wrap.iter().map(String::as_str).collect();
    let s = Server::start_unbound("upgrade-reload", &text("127.0.0.1:0", 1), &wrap);
    let inst_pid = s.wait_running("web:a")["pid"].as_u64();
    // A keep-alive connection made before the reload.
    let mut kept = TcpStream::connect(s.addr).expect("connect");
    kept.set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    assert_eq!(get(&mut kept, "/before", true), Ok(false));

    let new_port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let new_addr: SocketAddr = format!("127.0.0.1:{new_port}").parse().expect("addr");
    std::fs::write(&s.config, text(&new_addr.to_string(), 3)).expect("rewrite the config");
    s.ten_ok(&["reload"]);

    let moved = wait_until(DEADLINE, || {
        TcpStream::connect(new_addr)
            .ok()
            .is_some_and(|mut c| get(&mut c, "/moved", false).is_ok())
    });
    assert!(
        moved,
        "nothing serves {new_addr} after the reload\n{}",
        s.log()
    );
    let gone = wait_until(DEADLINE, || TcpStream::connect(s.addr).is_err());
    assert!(gone, "{} still accepts after listen moved", s.addr);
    assert!(
        s.log().contains("workers 3"),
        "the reload's front change is not logged:\n{}",
        s.log()
    );
    // The connection made before goes on, on the new front.
    assert_eq!(get(&mut kept, "/after", true), Ok(false));
    // The instance was not touched.
    let out = s.ten_ok(&["ps", "--json"]);
    let list: Value = serde_json::from_str(&stdout(&out)).expect("ps --json");
    assert_eq!(
        list[0]["pid"].as_u64(),
        inst_pid,
        "instance restarted: {list}"
    );
}

#[test]
fn a_failed_exec_resumes_the_old_image_with_everything_it_had() {
    let bin = Bin::new("exec-fails");
    let s = start("upgrade-exec-fails", &config(), &bin);
    let pid = s.pid().expect("server runs");
    let inst_pid = s.wait_running("web:a")["pid"].as_u64();
    // A keep-alive connection made before: handed over and back.
    let mut kept = TcpStream::connect(s.addr).expect("connect");
    kept.set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    assert_eq!(get(&mut kept, "/before", true), Ok(false));

    // Passes its self-check, then takes its own execute bit away, so the
    // exec that follows fails (EACCES) after the drain and the hand-over.
    let line = stdout(&ten_raw(s.root(), &["--version"]));
    let version = line.split_whitespace().nth(1).expect("a version");
    let script = format!(
        "#!/bin/sh\nif [ -n \"$TENEMENT_UPGRADE_CHECK\" ]; then chmod 0644 \"$0\"; echo 'ten {version} handover 1 confirm'; exit 0; fi\nexit 1\n"
    );
    bin.replace_with_script(&script);
    let out = s.ten(&["upgrade"]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert!(stderr(&out).contains("execve"), "{}", describe(&out));

    // Everything is back: the listeners, the kept connection, the instance
    // (adopted in the same image), the local socket.
    assert_eq!(s.pid(), Some(pid));
    assert!(pid_alive(pid));
    assert_eq!(get(&mut kept, "/after", true), Ok(false));
    s.echo("a.web.localhost", "/after-a-failed-exec");
    assert_eq!(s.wait_running("web:a")["pid"].as_u64(), inst_pid);
    let status = upgrade_status(&s);
    assert_eq!(status["last"]["ok"], false);
    // The keeper started for the attempt was told the old image serves,
    // and left.
    let keeper = keeper_pid(&s.log());
    assert!(
        wait_until(DEADLINE, || !pid_alive(keeper)),
        "the keeper pid {keeper} stays after a failed exec\n{}",
        s.log()
    );
    assert_eq!(s.pid(), Some(pid));

    // And a good binary upgrades it after all.
    bin.replace_with(Path::new(BIN));
    s.ten_ok(&["upgrade"]);
    assert_eq!(s.wait_running("web:a")["pid"].as_u64(), inst_pid);
    assert_eq!(upgrade_status(&s)["upgrades"], 1);
}

/// The keeper's pid, from the last "pid N keeps the old binary" line.
fn keeper_pid(log: &str) -> u32 {
    log.lines()
        .rev()
        .find_map(|l| {
            let (_, rest) = l.split_once("pid ")?;
            let (n, tail) = rest.split_once(' ')?;
            tail.starts_with("keeps the old binary")
                .then(|| n.parse().ok())
                .flatten()
        })
        .unwrap_or_else(|| panic!("no keeper in the log:\n{log}"))
}

/// `ten upgrade` exits 1 saying the upgrade failed because `why`.
fn upgrade_fails(s: &Server, why: &str) {
    let out = s.ten(&["upgrade"]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let err = stderr(&out);
    assert!(
        err.contains("upgrade failed") && err.contains(why),
        "{err}\n{}",
        s.log()
    );
}

/// A `ten serve` the test did not start itself (the keeper that took
/// over): SIGTERM on drop, and wait until it is gone.
struct Adopted(u32);

impl Drop for Adopted {
    fn drop(&mut self) {
        signal(self.0, "TERM");
        if !wait_until(DEADLINE, || !pid_alive(self.0)) {
            signal(self.0, "KILL");
        }
    }
}

/// Every sd_notify datagram that arrived at `socket` so far, appended to
/// `seen`, until `pred` holds for what was seen (or the deadline).
fn notified(
    socket: &std::os::unix::net::UnixDatagram,
    seen: &mut Vec<String>,
    pred: impl Fn(&[String]) -> bool,
) -> bool {
    let mut buf = [0u8; 4096];
    wait_until(DEADLINE, || {
        while let Ok(n) = socket.recv(&mut buf) {
            seen.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
        pred(seen)
    })
}

#[test]
fn a_new_binary_that_dies_after_the_exec_leaves_the_old_one_serving() {
    let bin = Bin::new("dies");
    // A datagram socket stands in for systemd: the keeper is the main
    // process while it stands by, and says READY=1 when it serves.
    let manager_dir =
        std::env::temp_dir().join(format!("ten-upgrade-notify-{}", std::process::id()));
    std::fs::create_dir_all(&manager_dir).expect("create the manager's folder");
    let manager_path = manager_dir.join("notify");
    let _ = std::fs::remove_file(&manager_path);
    let manager = std::os::unix::net::UnixDatagram::bind(&manager_path).expect("bind");
    manager.set_nonblocking(true).expect("nonblocking");
    let mut wrap = vec![
        "env".to_string(),
        format!("NOTIFY_SOCKET={}", manager_path.display()),
    ];
    wrap.extend(bin.wrap());
    let wrap: Vec<&str> = wrap.iter().map(String::as_str).collect();
    let s = Server::start_wrapped("upgrade-dies", &config(), &[], &wrap);
    let mut seen = Vec::new();
    assert!(notified(&manager, &mut seen, |m| m
        .iter()
        .any(|m| m == "READY=1")));
    seen.clear();
    let pid = s.pid().expect("server runs");
    let inst_pid = s.wait_running("web:a")["pid"].as_u64().expect("a pid");
    let mut kept = TcpStream::connect(s.addr).expect("connect");
    kept.set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    assert_eq!(get(&mut kept, "/before", true), Ok(false));

    // Exits as soon as it is executed with the hand-over.
    bin.replace_with_checked("echo 'this binary dies at once' >&2\nexit 3");
    upgrade_fails(&s, "exited before it served");
    assert!(
        wait_until(DEADLINE, || !pid_alive(pid)),
        "pid {pid} still runs"
    );
    assert!(
        s.log().contains("this binary dies at once"),
        "the new binary never ran:\n{}",
        s.log()
    );

    // The keeper serves: another pid, the old executable, the same
    // sockets, the idle keep-alive connection made before.
    let status = upgrade_status(&s);
    let keeper = status["pid"].as_u64().expect("a pid") as u32;
    let _keeper = Adopted(keeper);
    assert_eq!(keeper, keeper_pid(&s.log()));
    assert_ne!(keeper, pid);
    assert!(
        exe_of(keeper).ends_with("(deleted)"),
        "the keeper runs {}, not the replaced file",
        exe_of(keeper)
    );
    assert_eq!(status["last"]["ok"], false, "{status}");
    assert_eq!(status["upgrades"], 0);
    assert_eq!(status["in_progress"], false);
    assert!(
        status["last"]["error"]
            .as_str()
            .is_some_and(|e| e.contains(&format!("pid {pid}"))),
        "{status}"
    );
    assert_eq!(get(&mut kept, "/after", true), Ok(false));
    s.echo("a.web.localhost", "/served-by-the-keeper");
    let main = format!("MAINPID={keeper}");
    let told = notified(&manager, &mut seen, |m| {
        m.iter()
            .position(|x| *x == main)
            .is_some_and(|i| m[i..].iter().any(|x| x == "READY=1"))
    });
    assert!(told, "the manager heard {seen:?}");
    assert!(
        !seen
            .iter()
            .any(|m| m.lines().any(|l| l == format!("MAINPID={pid}"))),
        "the dead image was made the main process again: {seen:?}"
    );
    // The instance was the dead image's child: started again, the old
    // process gone.
    let after = s.wait_running("web:a");
    assert_ne!(after["pid"].as_u64(), Some(inst_pid));
    assert!(
        wait_until(DEADLINE, || !pid_alive(inst_pid as u32)),
        "the instance's old process {inst_pid} lives on"
    );

    // A good binary upgrades the keeper in place.
    bin.replace_with(Path::new(BIN));
    s.ten_ok(&["upgrade"]);
    let status = upgrade_status(&s);
    assert_eq!(status["pid"], keeper);
    assert_eq!(status["upgrades"], 1);
    assert!(!exe_of(keeper).ends_with("(deleted)"));
    s.echo("a.web.localhost", "/upgraded-after-all");
    // Its own keeper handed the main process back once it served.
    let back = format!("MAINPID={keeper}\nREADY=1");
    assert!(
        notified(&manager, &mut seen, |m| m.contains(&back)),
        "the manager heard {seen:?}"
    );
    let _ = std::fs::remove_dir_all(&manager_dir);
}

#[test]
fn logs_follow_goes_on_across_an_upgrade_without_repeating_a_line() {
    let bin = Bin::new("follow");
    let s = start("upgrade-follow", &config(), &bin);
    s.wait_running("web:a");
    s.echo("a.web.localhost", "/line-before-the-upgrade");
    let mut child = std::process::Command::new(BIN)
        .args(["--config", s.config.to_str().expect("UTF-8 path")])
        .args(["--data-dir", s.data_dir.to_str().expect("UTF-8 path")])
        .args(["logs", "web:a", "-f"])
        .env("NO_COLOR", "1")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn ten logs -f");
    let mut out = child.stdout.take().expect("stdout");
    let seen = Arc::new(std::sync::Mutex::new(String::new()));
    let reader = {
        let seen = seen.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = out.read(&mut buf) {
                if n == 0 {
                    break;
                }
                let text = String::from_utf8_lossy(&buf[..n]).into_owned();
                seen.lock().expect("lock").push_str(&text);
            }
        })
    };
    let shows = |needle: &str| wait_until(DEADLINE, || seen.lock().expect("lock").contains(needle));
    assert!(shows("/line-before-the-upgrade"), "no history");

    bin.replace_with(Path::new(BIN));
    s.ten_ok(&["upgrade"]);
    s.echo("a.web.localhost", "/line-after-the-upgrade");
    assert!(
        shows("/line-after-the-upgrade"),
        "logs -f stopped at the upgrade:\n{}\n--- server log ---\n{}",
        seen.lock().expect("lock"),
        s.log()
    );
    assert!(
        matches!(child.try_wait(), Ok(None)),
        "logs -f ended: {:?}",
        child.try_wait()
    );
    let _ = child.kill();
    let _ = child.wait();
    let _ = reader.join();
    let text = seen.lock().expect("lock").clone();
    for line in ["/line-before-the-upgrade", "/line-after-the-upgrade"] {
        assert_eq!(text.matches(line).count(), 1, "{line} shown twice:\n{text}");
    }
}

#[test]
fn a_new_binary_that_hangs_after_the_exec_is_killed_and_the_old_one_serves() {
    let bin = Bin::new("hangs");
    let s = start("upgrade-hangs", &config(), &bin);
    let pid = s.pid().expect("server runs");
    s.wait_running("web:a");
    // Never serves: it sleeps in the server's pid with every socket open.
    bin.replace_with_checked("exec sleep 600");
    upgrade_fails(&s, "did not serve within 30s and was killed");
    assert!(
        wait_until(DEADLINE, || !pid_alive(pid)),
        "the hung image {pid} still runs"
    );
    let status = upgrade_status(&s);
    let keeper = status["pid"].as_u64().expect("a pid") as u32;
    let _keeper = Adopted(keeper);
    assert_ne!(keeper, pid);
    assert_eq!(status["last"]["ok"], false, "{status}");
    s.echo("a.web.localhost", "/served-after-the-hang");
    s.wait_running("web:a");
}
