//! The keeper of an upgrade in place: a process running the old binary
//! that holds everything the hand-over names until the new image says it
//! serves, and serves in its place when it does not.
//!
//! Before the exec, the old image starts the keeper from `/proc/self/exe`
//! (the running, old executable, whatever now lies at the path) with the
//! hand-over's descriptors under the same numbers, its own copy of the
//! description, and the read end of a pipe whose write end only the new
//! image holds (`Description::ready`). The new image writes one byte once
//! its front and supervisor run (`confirm`), and the keeper exits. End of
//! file (the new image died) or no byte within `CONFIRM_TIMEOUT` (it is
//! killed) and the keeper goes on as `ten serve` with the hand-over: the
//! same listening sockets, queued connections and idle keep-alive clients,
//! under a new pid. Instance processes were the dead image's children, so
//! they cannot be adopted: they are stopped and started again.
//!
//! Under systemd the keeper is the service's main pid while it waits
//! (`MAINPID=`), so the death of the new image does not end the service;
//! it hands the role back when the new image confirms.

use std::ffi::OsString;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::process::Command;
use std::time::{Duration, Instant};

use super::handover::Description;
use super::FD_ENV;

/// Names the pipe's read end and the server's pid, in the keeper's
/// environment: `FD PID`.
pub const KEEPER_ENV: &str = "TENEMENT_UPGRADE_KEEPER";
/// How long a new image has to say it serves.
pub const CONFIRM_TIMEOUT: Duration = Duration::from_secs(30);
/// After killing a new image that never confirmed: how long to wait for
/// its end (its descriptors closed) before serving anyway.
const KILL_GRACE: Duration = Duration::from_secs(5);

/// A started keeper, as the old image holds it.
pub struct Keeper {
    pub pid: u32,
    /// The pipe's write end, for the new image (or for this image when the
    /// exec fails).
    pub ready: OwnedFd,
}

/// Starts the keeper for `desc` (whose descriptors lose FD_CLOEXEC), with
/// `extra_env` (the service manager's variables, without `WATCHDOG_PID`:
/// the keeper may become the main process) and tells the service manager
/// it is the main process now.
pub fn spawn(desc: &Description, extra_env: &[(String, String)]) -> Result<Keeper, String> {
    let memfd = desc
        .to_memfd()
        .map_err(|e| format!("write the keeper's hand-over: {e}"))?;
    let (read, write) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)
        .map_err(|e| format!("pipe: {e}"))?;
    let mut keep = desc.fds();
    keep.push(memfd.as_raw_fd());
    keep.push(read.as_raw_fd());
    for fd in keep {
        crate::sys::fd::keep_across_exec(fd).map_err(|e| format!("keep fd {fd} open: {e}"))?;
    }
    let mut args = std::env::args_os();
    let arg0 = args.next().unwrap_or_else(|| OsString::from("ten"));
    let mut cmd = Command::new("/proc/self/exe");
    cmd.arg0(arg0).args(args);
    for (k, v) in extra_env {
        if k != "WATCHDOG_PID" {
            cmd.env(k, v);
        }
    }
    cmd.env(FD_ENV, memfd.as_raw_fd().to_string()).env(
        KEEPER_ENV,
        format!("{} {}", read.as_raw_fd(), std::process::id()),
    );
    let child = cmd
        .spawn()
        .map_err(|e| format!("start the keeper (/proc/self/exe): {e}"))?;
    // The keeper has its copies; ours close here.
    drop((memfd, read));
    crate::notify::main_pid(child.id(), false);
    Ok(Keeper {
        pid: child.id(),
        ready: write,
    })
}

/// In the new image (or the old one after a failed exec), once the front
/// and the supervisor run: tells the keeper, which exits.
pub fn confirm(ready: OwnedFd) {
    if let Err(e) = rustix::io::write(&ready, b"R") {
        warn!("server", "cannot tell the upgrade's keeper we serve: {e}");
    }
}

/// In every `ten serve` at start: when this process is a keeper, waits for
/// the new image. Exits the process when it confirms; Some(why it failed)
/// when this process must serve in its place; None when this is not a
/// keeper. Removes `TENEMENT_UPGRADE_KEEPER` from the environment, so call
/// it before any thread starts.
pub fn stand_by() -> Option<String> {
    let raw = std::env::var_os(KEEPER_ENV)?;
    std::env::remove_var(KEEPER_ENV);
    let parsed = raw.to_str().and_then(|s| {
        let (fd, pid) = s.split_once(' ')?;
        Some((fd.parse::<RawFd>().ok()?, pid.parse::<u32>().ok()?))
    });
    let Some((fd, server)) = parsed else {
        return Some(format!("{KEEPER_ENV}={raw:?} is not `FD PID`"));
    };
    let read = match crate::sys::fd::adopt(fd) {
        Ok(fd) => fd,
        Err(e) => return Some(format!("{KEEPER_ENV}: fd {fd}: {e}")),
    };
    // The server may be gone already (then the pipe is at its end): only
    // a parent that is still ours is the process to kill on a timeout.
    let pidfd = rustix::process::getppid()
        .filter(|p| p.as_raw_nonzero().get() as u32 == server)
        .and_then(|p| rustix::process::pidfd_open(p, rustix::process::PidfdFlags::empty()).ok());
    match wait(&read, CONFIRM_TIMEOUT) {
        Heard::Confirmed => {
            crate::notify::main_pid(server, true);
            std::process::exit(0);
        }
        Heard::Ended => Some(format!(
            "the new image (pid {server}) exited before it served"
        )),
        Heard::Nothing => {
            if let Some(pidfd) = &pidfd {
                let _ = rustix::process::pidfd_send_signal(pidfd, rustix::process::Signal::KILL);
            }
            // Its descriptors close as it dies.
            let _ = wait(&read, KILL_GRACE);
            Some(format!(
                "the new image (pid {server}) did not serve within {}s and was killed",
                CONFIRM_TIMEOUT.as_secs()
            ))
        }
    }
}

/// What the pipe said.
#[derive(Debug, PartialEq, Eq)]
enum Heard {
    /// A byte: the new image serves.
    Confirmed,
    /// End of file: every write end is closed without a byte.
    Ended,
    /// Neither within the time allowed.
    Nothing,
}

fn wait(read: &OwnedFd, within: Duration) -> Heard {
    use rustix::event::{poll, PollFd, PollFlags, Timespec};
    let deadline = Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Heard::Nothing;
        }
        let timeout = Timespec {
            tv_sec: left.as_secs() as _,
            tv_nsec: left.subsec_nanos() as _,
        };
        let mut fds = [PollFd::new(read, PollFlags::IN)];
        match poll(&mut fds, Some(&timeout)) {
            Ok(0) => continue,
            Ok(_) => {}
            Err(rustix::io::Errno::INTR) => continue,
            Err(_) => return Heard::Ended,
        }
        let mut byte = [0u8; 1];
        match rustix::io::read(read, &mut byte) {
            Ok(1) => return Heard::Confirmed,
            Ok(_) => return Heard::Ended,
            Err(rustix::io::Errno::INTR) | Err(rustix::io::Errno::AGAIN) => continue,
            Err(_) => return Heard::Ended,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pipe() -> (OwnedFd, OwnedFd) {
        rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).expect("a pipe")
    }

    #[test]
    fn a_byte_confirms_and_a_closed_pipe_without_one_is_the_end() {
        let (r, w) = pipe();
        confirm(w);
        assert_eq!(wait(&r, Duration::from_secs(5)), Heard::Confirmed);
        let (r, w) = pipe();
        drop(w);
        assert_eq!(wait(&r, Duration::from_secs(5)), Heard::Ended);
    }

    #[test]
    fn silence_with_the_pipe_open_is_nothing() {
        let (r, _w) = pipe();
        assert_eq!(wait(&r, Duration::from_millis(20)), Heard::Nothing);
    }
}
