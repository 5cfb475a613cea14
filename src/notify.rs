//! Talking to the service manager (sd_notify(3)): when `ten serve` runs with
//! `NOTIFY_SOCKET` set (systemd's `Type=notify`), it sends `READY=1` once the
//! listeners are bound and restored instances launched, `RELOADING=1` with
//! `MONOTONIC_USEC` and then `READY=1` around a reload, `STOPPING=1` on
//! shutdown, `STATUS=` with instance counts, and `WATCHDOG=1` while every
//! loop is alive when `WATCHDOG_USEC` is set.
//!
//! The protocol is one datagram per message on a Unix socket, a path or an
//! abstract name (`@name`); no library needed. `take_environment` reads the
//! variables once, before any thread starts, and removes them so instances
//! never inherit them (an app that speaks sd_notify would otherwise talk to
//! systemd about our unit). Sending never blocks and never fails loudly: a
//! manager that went away is logged once at debug level.
//!
//! The watchdog: each front loop and the supervisor hold a `Beat` and bump
//! it after every poll. The watchdog thread wakes them all every half
//! interval and pings only if every one of them has beaten since the
//! previous wake, so one hung loop is enough for systemd to restart us.

use std::os::unix::net::UnixDatagram;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

/// The manager's socket and, with `WATCHDOG_USEC`, the watchdog interval.
struct Manager {
    socket: UnixDatagram,
    addr: std::os::unix::net::SocketAddr,
    watchdog: Option<Duration>,
    /// The last `STATUS=` sent, so an unchanged one is not repeated.
    status: Mutex<String>,
    /// Loops that beat for the watchdog.
    beats: Mutex<Vec<Registered>>,
}

/// A loop the watchdog watches: its name, its heartbeat and its waker.
type Registered = (String, Arc<BeatState>, Arc<mio::Waker>);

static MANAGER: OnceLock<Option<Manager>> = OnceLock::new();
/// The variables as `take_environment` found them, for the next image of
/// the server after an upgrade in place.
static TAKEN: OnceLock<Vec<(String, String)>> = OnceLock::new();
/// Set by `stopping`: loops end on purpose from then on, so the watchdog
/// stops looking.
static STOPPING: AtomicBool = AtomicBool::new(false);

fn manager() -> Option<&'static Manager> {
    MANAGER.get().and_then(Option::as_ref)
}

/// Reads `NOTIFY_SOCKET`, `WATCHDOG_USEC` and `WATCHDOG_PID`, removes them
/// from the environment, and opens the socket. Call once, from the main
/// thread before any other thread exists (removing variables is not
/// thread-safe). Returns a line for the log when the variables are unusable.
pub fn take_environment() -> Option<String> {
    let socket = std::env::var_os("NOTIFY_SOCKET");
    let usec = std::env::var("WATCHDOG_USEC").ok();
    let pid = std::env::var("WATCHDOG_PID").ok();
    let mut taken = Vec::new();
    for name in ["NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"] {
        if let Some(v) = std::env::var_os(name).and_then(|v| v.into_string().ok()) {
            taken.push((name.to_string(), v));
        }
        std::env::remove_var(name);
    }
    let _ = TAKEN.set(taken);
    let mut problem = None;
    let manager = socket.and_then(|raw| match open(&raw) {
        Ok((socket, addr)) => Some(Manager {
            socket,
            addr,
            watchdog: watchdog_interval(usec.as_deref(), pid.as_deref(), std::process::id()),
            status: Mutex::new(String::new()),
            beats: Mutex::new(Vec::new()),
        }),
        Err(e) => {
            problem = Some(format!(
                "NOTIFY_SOCKET={}: {e}; not notifying the service manager",
                raw.to_string_lossy()
            ));
            None
        }
    });
    let _ = MANAGER.set(manager);
    problem
}

/// The variables `take_environment` removed, to give to the next image of
/// the server when it executes itself again (same pid, same service).
pub fn environment() -> Vec<(String, String)> {
    TAKEN.get().cloned().unwrap_or_default()
}

/// Forgets the loops that ended on purpose (a drained front, a supervisor
/// that handed its instances over), so the watchdog stops counting them as
/// dead; their successors register themselves.
pub fn forget_ended() {
    if let Some(m) = manager() {
        m.beats
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|(_, s, _)| !s.ended.load(Ordering::Relaxed));
    }
}

/// The socket to send from and the manager's address: `@name` is an
/// abstract name, anything else a path.
fn open(raw: &std::ffi::OsStr) -> std::io::Result<(UnixDatagram, std::os::unix::net::SocketAddr)> {
    use std::os::linux::net::SocketAddrExt;
    use std::os::unix::ffi::OsStrExt;
    let bytes = raw.as_bytes();
    let addr = match bytes.strip_prefix(b"@") {
        Some(name) => std::os::unix::net::SocketAddr::from_abstract_name(name)?,
        None if bytes.starts_with(b"/") => std::os::unix::net::SocketAddr::from_pathname(raw)?,
        None => {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "neither an absolute path nor an abstract name (@name)",
            ))
        }
    };
    let socket = UnixDatagram::unbound()?;
    socket.set_nonblocking(true)?;
    Ok((socket, addr))
}

/// The watchdog interval from `WATCHDOG_USEC`, when it is meant for this
/// process (`WATCHDOG_PID` absent or ours) and positive.
fn watchdog_interval(usec: Option<&str>, pid: Option<&str>, ours: u32) -> Option<Duration> {
    if let Some(pid) = pid {
        if pid.trim().parse::<u32>().ok() != Some(ours) {
            return None;
        }
    }
    let usec: u64 = usec?.trim().parse().ok()?;
    (usec > 0).then(|| Duration::from_micros(usec))
}

fn send(message: &str) {
    let Some(m) = manager() else { return };
    if let Err(e) = m.socket.send_to_addr(message.as_bytes(), &m.addr) {
        debug!("server", "sd_notify {message:?}: {e}");
    }
}

/// `READY=1`: the listeners are bound and restored instances launched (also
/// the end of a reload).
pub fn ready() {
    send("READY=1");
}

/// `MAINPID=pid` (and `READY=1` with `ready`): another process is the
/// service's main one now, the keeper of an upgrade in place while the new
/// image starts, or the new image again once it serves.
pub fn main_pid(pid: u32, ready: bool) {
    match ready {
        true => send(&format!("MAINPID={pid}\nREADY=1")),
        false => send(&format!("MAINPID={pid}")),
    }
}

/// `RELOADING=1` with the monotonic clock, as systemd requires for a reload.
pub fn reloading() {
    send(&reloading_message(monotonic_usec()));
}

fn reloading_message(usec: u64) -> String {
    format!("RELOADING=1\nMONOTONIC_USEC={usec}")
}

fn monotonic_usec() -> u64 {
    let ts = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    (ts.tv_sec as u64) * 1_000_000 + (ts.tv_nsec as u64) / 1_000
}

/// `STOPPING=1`: shutdown has begun.
pub fn stopping() {
    STOPPING.store(true, Ordering::Relaxed);
    send("STOPPING=1");
}

/// `STATUS=` with the instance counts of `snapshot`, when they changed
/// since the last one sent. Supervisor thread, after each publish.
pub fn status(snapshot: &crate::supervisor::Snapshot) {
    let Some(m) = manager() else { return };
    let text = status_text(snapshot.instances.iter().map(|v| v.state));
    let mut last = m.status.lock().unwrap_or_else(|e| e.into_inner());
    if *last != text {
        send(&format!("STATUS={text}"));
        *last = text;
    }
}

/// "3 running, 1 sleeping": the non-zero counts in lifecycle order, or
/// "no instances".
fn status_text(states: impl Iterator<Item = crate::supervisor::State>) -> String {
    use crate::supervisor::State;
    const ORDER: [State; 8] = [
        State::Running,
        State::Starting,
        State::Sleeping,
        State::Backoff,
        State::Failed,
        State::Stopping,
        State::Moving,
        State::Moved,
    ];
    let mut counts = [0usize; ORDER.len()];
    for s in states {
        let i = ORDER
            .iter()
            .position(|o| *o == s)
            .expect("ORDER lists every state");
        counts[i] += 1;
    }
    let parts: Vec<String> = ORDER
        .iter()
        .zip(counts)
        .filter(|(_, n)| *n > 0)
        .map(|(s, n)| format!("{n} {}", s.as_str()))
        .collect();
    if parts.is_empty() {
        "no instances".to_string()
    } else {
        parts.join(", ")
    }
}

/// One loop's heartbeat for the watchdog. A no-op when there is no watchdog.
/// Dropping it (the loop ended) counts as a dead loop.
#[derive(Debug, Default)]
pub struct Beat(Option<Arc<BeatState>>);

#[derive(Debug, Default)]
struct BeatState {
    count: AtomicU64,
    ended: AtomicBool,
}

impl Beat {
    /// Called by the loop after every return from poll.
    pub fn beat(&self) {
        if let Some(s) = &self.0 {
            s.count.fetch_add(1, Ordering::Relaxed);
        }
    }
}

impl Drop for Beat {
    fn drop(&mut self) {
        if let Some(s) = &self.0 {
            s.ended.store(true, Ordering::Relaxed);
        }
    }
}

/// Registers a loop named `name` whose poll `waker` wakes. Call before
/// `start_watchdog`, from the thread that creates the loop.
pub fn heartbeat(name: &str, waker: Arc<mio::Waker>) -> Beat {
    let Some(m) = manager().filter(|m| m.watchdog.is_some()) else {
        return Beat(None);
    };
    let state = Arc::new(BeatState::default());
    m.beats.lock().unwrap_or_else(|e| e.into_inner()).push((
        name.to_string(),
        state.clone(),
        waker,
    ));
    Beat(Some(state))
}

/// Which loops have not beaten since the previous round: `before` holds
/// each loop's count at the previous wake, `now` its count and whether it
/// ended. Pure.
fn silent<'a>(names: &[&'a str], before: &[u64], now: &[(u64, bool)]) -> Vec<&'a str> {
    names
        .iter()
        .zip(before.iter().zip(now))
        .filter(|(_, (b, (n, ended)))| *ended || n == *b)
        .map(|(name, _)| *name)
        .collect()
}

/// Starts the watchdog thread when `WATCHDOG_USEC` asked for one: every half
/// interval it pings if every registered loop beat since the last round,
/// then wakes them all for the next. Runs until the process exits.
pub fn start_watchdog() {
    let Some(m) = manager() else { return };
    let Some(interval) = m.watchdog else { return };
    let period = interval / 2;
    let spawned = std::thread::Builder::new()
        .name("watchdog".into())
        .spawn(move || {
            let mut before: Vec<u64> = Vec::new();
            let mut warned = false;
            while !STOPPING.load(Ordering::Relaxed) {
                let beats = m.beats.lock().unwrap_or_else(|e| e.into_inner());
                let names: Vec<&str> = beats.iter().map(|(n, _, _)| n.as_str()).collect();
                let now: Vec<(u64, bool)> = beats
                    .iter()
                    .map(|(_, s, _)| (s.count.load(Ordering::Relaxed), s.ended.load(Ordering::Relaxed)))
                    .collect();
                // The first round has nothing to compare with: wake only.
                if before.len() == now.len() {
                    let quiet = silent(&names, &before, &now);
                    if quiet.is_empty() {
                        send("WATCHDOG=1");
                        warned = false;
                    } else if !warned {
                        warned = true;
                        error!(
                            "server",
                            "{} did not answer within {}ms; no watchdog ping (the service manager will restart ten)",
                            quiet.join(", "),
                            period.as_millis()
                        );
                    }
                }
                before = now.iter().map(|(n, _)| *n).collect();
                for (_, _, waker) in beats.iter() {
                    let _ = waker.wake();
                }
                drop(beats);
                std::thread::sleep(period);
            }
        });
    if let Err(e) = spawned {
        error!("server", "start the watchdog thread: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::supervisor::State;

    #[test]
    fn status_counts_states_in_lifecycle_order() {
        assert_eq!(status_text([].into_iter()), "no instances");
        let states = [
            State::Sleeping,
            State::Running,
            State::Running,
            State::Failed,
            State::Running,
        ];
        assert_eq!(
            status_text(states.into_iter()),
            "3 running, 1 sleeping, 1 failed"
        );
    }

    #[test]
    fn watchdog_interval_is_ours_only() {
        let us = 4242;
        assert_eq!(
            watchdog_interval(Some("30000000"), None, us),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            watchdog_interval(Some("30000000"), Some("4242"), us),
            Some(Duration::from_secs(30))
        );
        assert_eq!(watchdog_interval(Some("30000000"), Some("1"), us), None);
        assert_eq!(watchdog_interval(Some("0"), None, us), None);
        assert_eq!(watchdog_interval(Some("soon"), None, us), None);
        assert_eq!(watchdog_interval(None, None, us), None);
    }

    #[test]
    fn a_loop_that_did_not_beat_or_ended_silences_the_watchdog() {
        let names = ["front-0", "front-1", "supervisor"];
        assert!(silent(&names, &[1, 5, 9], &[(2, false), (6, false), (10, false)]).is_empty());
        assert_eq!(
            silent(&names, &[1, 5, 9], &[(2, false), (5, false), (10, false)]),
            ["front-1"]
        );
        assert_eq!(
            silent(&names, &[1, 5, 9], &[(2, false), (6, false), (10, true)]),
            ["supervisor"]
        );
    }

    #[test]
    fn reloading_carries_the_monotonic_clock() {
        assert_eq!(
            reloading_message(1_234_567),
            "RELOADING=1\nMONOTONIC_USEC=1234567"
        );
        let a = monotonic_usec();
        let b = monotonic_usec();
        assert!(a > 0 && b >= a);
    }

    #[test]
    fn sockets_are_paths_or_abstract_names() {
        assert!(open(std::ffi::OsStr::new("@ten-test-notify")).is_ok());
        assert!(open(std::ffi::OsStr::new("/run/systemd/notify")).is_ok());
        assert!(open(std::ffi::OsStr::new("relative/path")).is_err());
    }
}
