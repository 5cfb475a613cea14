//! Upgrades in place (`ten upgrade`, SIGUSR2): the running server executes
//! the binary at its own path again, keeping its pid, its listening
//! sockets, its instance processes with their log pipes, and the registry.
//!
//! The steps, run on the server thread (`server.rs` calls `run`):
//! 1. the new binary checks itself: run with `TENEMENT_UPGRADE_CHECK=1` and
//!    the server's own arguments, it loads the config as `serve` would and
//!    prints its version and hand-over format; anything else refuses the
//!    upgrade and nothing stops;
//! 2. the front drains (no new connections are accepted, they queue in the
//!    kernel; exchanges in flight finish) and hands its listeners back;
//! 3. the supervisor hands its processes over (`supervisor::Handover`);
//! 4. a keeper starts from the old executable (`keeper.rs`) holding a copy
//!    of everything, when the new binary's check line says it confirms;
//! 5. the description (`handover.rs`) goes into a memfd whose number is in
//!    `TENEMENT_UPGRADE_FD`, the descriptors lose FD_CLOEXEC, and `execve`;
//! 6. if the exec fails, the same description is adopted in this image, as
//!    the new image would have, and the old binary serves on; if the new
//!    image dies or hangs before it serves, the keeper serves instead.
//!
//! This module also owns `Control`, how the API, the supervisor (a reload
//! that moves the listeners) and the signal thread ask the server thread
//! for something, and the upgrade status `GET /api/upgrade` shows. It never
//! touches an instance or a connection itself.

pub mod handover;
pub mod keeper;

use std::ffi::{CString, OsString};
use std::io::Read;
use std::net::SocketAddr;
use std::os::unix::ffi::OsStringExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc::Sender;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// Set in the environment of the new binary's self-check.
pub const CHECK_ENV: &str = "TENEMENT_UPGRADE_CHECK";
/// Names the memfd holding the hand-over, in the new image's environment.
pub const FD_ENV: &str = "TENEMENT_UPGRADE_FD";
/// How long the new binary's self-check may take.
const CHECK_TIMEOUT: Duration = Duration::from_secs(30);

/// What the server thread is asked to do.
#[derive(Debug)]
pub enum Request {
    /// A signal arrived (taken by the signal thread).
    Signal(i32),
    /// `POST /api/upgrade`: this attempt number was assigned.
    Upgrade { attempt: u64 },
    /// A reload changed where or how many loops listen: rebuild the front
    /// on the same listening sockets.
    Front(FrontSettings),
}

/// The settings a front is built from that a reload may change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrontSettings {
    pub listen: SocketAddr,
    pub workers: usize,
    /// `https_listen`, with `[settings.tls]`.
    pub https: Option<SocketAddr>,
}

/// The result of one upgrade attempt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outcome {
    pub attempt: u64,
    pub ok: bool,
    /// The version that ran before.
    pub from: String,
    /// The version running after (the new one, or `from` when it failed).
    pub to: String,
    /// Why it failed.
    pub error: Option<String>,
    /// Seconds since the epoch when it ended.
    pub at: u64,
}

/// What `GET /api/upgrade` shows.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Status {
    /// Attempts so far (since the first start, across upgrades).
    pub attempts: u64,
    /// Successful upgrades so far.
    pub upgrades: u64,
    /// An attempt is running now.
    pub in_progress: bool,
    pub last: Option<Outcome>,
}

/// The server thread's mailbox and the upgrade status, shared with the
/// API loops, the supervisor and the signal thread.
pub struct Control {
    tx: Mutex<Sender<Request>>,
    status: Mutex<Status>,
    /// The binary to execute: the path this server was started from.
    pub exe: PathBuf,
}

impl Control {
    pub fn new(tx: Sender<Request>, exe: PathBuf, status: Status) -> Control {
        Control {
            tx: Mutex::new(tx),
            status: Mutex::new(status),
            exe,
        }
    }

    /// Sends a request to the server thread; false when it is gone.
    pub fn send(&self, r: Request) -> bool {
        self.tx.lock().expect("control lock").send(r).is_ok()
    }

    /// The status now.
    pub fn status(&self) -> Status {
        self.status.lock().expect("control lock").clone()
    }

    /// Starts an attempt: its number, or None when one is in progress.
    pub fn begin(&self) -> Option<u64> {
        let mut s = self.status.lock().expect("control lock");
        if s.in_progress {
            return None;
        }
        s.in_progress = true;
        s.attempts += 1;
        Some(s.attempts)
    }

    /// `POST /api/upgrade`: starts an attempt and wakes the server thread.
    /// The attempt number, or None when one is already in progress.
    pub fn request(&self) -> Option<u64> {
        let attempt = self.begin()?;
        if !self.send(Request::Upgrade { attempt }) {
            self.finish(attempt, VERSION, Err("the server is shutting down".into()));
            return None;
        }
        Some(attempt)
    }

    /// Records how attempt `attempt` from version `from` ended: Ok(the
    /// version now running) or Err(why).
    pub fn finish(&self, attempt: u64, from: &str, result: Result<String, String>) {
        let mut s = self.status.lock().expect("control lock");
        s.in_progress = false;
        let from = from.to_string();
        s.last = Some(match result {
            Ok(to) => {
                s.upgrades += 1;
                Outcome {
                    attempt,
                    ok: true,
                    from,
                    to,
                    error: None,
                    at: unix_now(),
                }
            }
            Err(e) => Outcome {
                attempt,
                ok: false,
                to: from.clone(),
                from,
                error: Some(e),
                at: unix_now(),
            },
        });
    }

    /// The status as JSON, with this process's pid and version.
    pub fn json(&self) -> serde_json::Value {
        let s = self.status();
        serde_json::json!({
            "pid": std::process::id(),
            "version": VERSION,
            "exe": self.exe.display().to_string(),
            "attempts": s.attempts,
            "upgrades": s.upgrades,
            "in_progress": s.in_progress,
            "last": s.last,
        })
    }
}

/// This binary's version.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The path this process was started from: /proc/self/exe as it reads at
/// start-up, before anyone replaces the file.
pub fn own_path() -> PathBuf {
    match std::fs::read_link("/proc/self/exe") {
        Ok(p) => {
            let raw = p.into_os_string().into_vec();
            let trimmed = raw
                .strip_suffix(b" (deleted)")
                .map(<[u8]>::to_vec)
                .unwrap_or(raw);
            PathBuf::from(OsString::from_vec(trimmed))
        }
        Err(_) => std::env::args_os()
            .next()
            .map(PathBuf::from)
            .unwrap_or_default(),
    }
}

/// The line the self-check prints: the version, the hand-over format, and
/// `confirm` (it tells the keeper once it serves; see `keeper.rs`).
pub fn check_line() -> String {
    format!("ten {VERSION} handover {} {CONFIRMS}", handover::FORMAT)
}

/// The word a self-check line ends with when the binary confirms.
const CONFIRMS: &str = "confirm";

/// What the self-check said of the new binary.
#[derive(Debug, PartialEq, Eq)]
pub struct Checked {
    pub version: String,
    /// It confirms once it serves, so a keeper can stand by.
    pub confirms: bool,
}

/// Step 1: runs the binary at `exe` with `args` (the server's own command
/// line, without argv[0]) as a self-check. Ok(what it said) when it printed
/// a check line with our hand-over format; Err(why) otherwise.
pub fn check(exe: &Path, args: &[OsString]) -> Result<Checked, String> {
    let mut child = Command::new(exe)
        .args(args)
        .env(CHECK_ENV, "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("run {}: {e}", exe.display()))?;
    let deadline = Instant::now() + CHECK_TIMEOUT;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(5)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "{} did not finish its self-check within {}s",
                    exe.display(),
                    CHECK_TIMEOUT.as_secs()
                ));
            }
            Err(e) => return Err(format!("wait for {}: {e}", exe.display())),
        }
    };
    let mut out = String::new();
    let mut err = String::new();
    if let Some(mut s) = child.stdout.take() {
        let _ = s.read_to_string(&mut out);
    }
    if let Some(mut s) = child.stderr.take() {
        let _ = s.read_to_string(&mut err);
    }
    let said = |text: &str| {
        let text = text.trim();
        let tail: Vec<&str> = text.lines().rev().take(5).collect();
        tail.into_iter().rev().collect::<Vec<_>>().join(" / ")
    };
    if !status.success() {
        let what = match status.code() {
            Some(code) => format!("exited with code {code}"),
            None => "was killed by a signal".to_string(),
        };
        return Err(format!(
            "the new binary {} failed its self-check: it {what}: {}",
            exe.display(),
            said(&format!("{out}\n{err}"))
        ));
    }
    let line = out.lines().find(|l| l.starts_with("ten ")).unwrap_or("");
    parse_check_line(line).map_err(|e| match e {
        Some(format) => format!(
            "the new binary {} takes hand-over format {format}, this server writes {}",
            exe.display(),
            handover::FORMAT
        ),
        None => format!(
            "the new binary {} does not support upgrades in place (its self-check printed {:?})",
            exe.display(),
            said(&out)
        ),
    })
}

/// A self-check line: Ok(what it says) with our format; Err(Some(its
/// format)) with another; Err(None) when it is not one.
fn parse_check_line(line: &str) -> Result<Checked, Option<String>> {
    let mut words = line.split_whitespace();
    match (words.next(), words.next(), words.next(), words.next()) {
        (Some("ten"), Some(version), Some("handover"), Some(format))
            if format == handover::FORMAT.to_string() =>
        {
            Ok(Checked {
                version: version.to_string(),
                confirms: words.any(|w| w == CONFIRMS),
            })
        }
        (Some("ten"), Some(_), Some("handover"), Some(format)) => Err(Some(format.to_string())),
        _ => Err(None),
    }
}

/// Steps 4: writes `desc` to a memfd and executes `exe` with this
/// process's own arguments and environment (plus `FD_ENV` and `extra_env`),
/// keeping every descriptor the description names. Returns only when the
/// exec failed, with why; the descriptors then still belong to `desc`.
pub fn exec(exe: &Path, desc: &handover::Description, extra_env: &[(String, String)]) -> String {
    let memfd = match desc.to_memfd() {
        Ok(fd) => fd,
        Err(e) => return format!("write the hand-over: {e}"),
    };
    let mut keep = desc.fds();
    keep.extend(desc.ready);
    keep.push(std::os::fd::AsRawFd::as_raw_fd(&memfd));
    for fd in &keep {
        if let Err(e) = crate::sys::fd::keep_across_exec(*fd) {
            return format!("keep fd {fd} open across exec: {e}");
        }
    }
    let cstring = |b: Vec<u8>| CString::new(b).map_err(|_| "a NUL byte in an argument".to_string());
    let result = (|| -> Result<std::io::Error, String> {
        let path = cstring(exe.as_os_str().to_owned().into_vec())?;
        let argv = std::env::args_os()
            .map(|a| cstring(a.into_vec()))
            .collect::<Result<Vec<_>, _>>()?;
        let mut envp = Vec::new();
        for (k, v) in std::env::vars_os() {
            if k == FD_ENV || extra_env.iter().any(|(n, _)| k == n.as_str()) {
                continue;
            }
            let mut kv = k.into_vec();
            kv.push(b'=');
            kv.extend(v.into_vec());
            envp.push(cstring(kv)?);
        }
        let fd = std::os::fd::AsRawFd::as_raw_fd(&memfd);
        envp.push(cstring(format!("{FD_ENV}={fd}").into_bytes())?);
        for (k, v) in extra_env {
            envp.push(cstring(format!("{k}={v}").into_bytes())?);
        }
        Ok(crate::sys::fd::execve(&path, &argv, &envp))
    })();
    match result {
        Ok(e) => format!("execve {}: {e}", exe.display()),
        Err(e) => e,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_check_line_gives_the_version_and_whether_the_binary_confirms() {
        let ours = parse_check_line(&check_line()).expect("our own line");
        assert_eq!(ours.version, VERSION);
        assert!(ours.confirms);
        let older = format!("ten 0.9.0 handover {}", handover::FORMAT);
        assert_eq!(
            parse_check_line(&older),
            Ok(Checked {
                version: "0.9.0".into(),
                confirms: false
            })
        );
        assert_eq!(
            parse_check_line("ten 2.0.0 handover 99 confirm"),
            Err(Some("99".into()))
        );
        assert_eq!(parse_check_line("tenement 1.0"), Err(None));
    }
}
