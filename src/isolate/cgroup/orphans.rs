//! `ten serve` as a child subreaper: a process an instance orphans (a
//! double-forked daemon, a child whose parent died) becomes our child
//! instead of init's, and is reaped here once it exits, never left a zombie.
//!
//! The supervisor also waits for the processes it started itself (through
//! their pidfds and `std::process::Child`), and their exit status must reach
//! it: `reap` only ever collects a child the caller says it does not track.
//! It looks at exited children with `waitid(WNOWAIT)`, which leaves them
//! waitable, and collects an untracked one by its pid. Call it from the
//! thread that starts and tracks children (the supervisor's), so that no
//! child can be started between the look and the collect.

use std::io;

use rustix::process::{waitpid, Pid, WaitOptions};

/// Makes the calling process a child subreaper (prctl(2)
/// `PR_SET_CHILD_SUBREAPER`): orphans below it are re-parented to it.
pub fn become_subreaper() -> io::Result<()> {
    rustix::process::set_child_subreaper(Some(rustix::process::getpid())).map_err(io::Error::from)
}

/// Whether the calling process is a child subreaper (`ten serve` is; the
/// test harness running the supervisor in-process is not, and must not
/// have its children collected by `reap`).
pub fn is_subreaper() -> bool {
    matches!(rustix::process::child_subreaper(), Ok(Some(_)))
}

/// The pid of one exited child, left waitable (`WNOWAIT`); None when no
/// child has exited (or there is no child).
fn peek_exited() -> io::Result<Option<u32>> {
    // SAFETY: siginfo_t is plain data; all-zero is a valid value, and
    // waitid with WNOHANG leaves si_pid 0 when no child has exited
    // (waitid(2)), which the zeroing makes reliable.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    // SAFETY: `info` is a valid, writable siginfo_t for the length of the
    // call; P_ALL ignores the id argument.
    let rc = unsafe {
        libc::waitid(
            libc::P_ALL,
            0,
            &mut info,
            libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
        )
    };
    if rc == -1 {
        let e = io::Error::last_os_error();
        return match e.raw_os_error() {
            Some(libc::ECHILD) => Ok(None),
            _ => Err(e),
        };
    }
    // SAFETY: waitid filled `info` for a SIGCHLD (or left it zeroed); si_pid
    // is the field the kernel sets for SIGCHLD.
    let pid = unsafe { info.si_pid() };
    Ok(u32::try_from(pid).ok().filter(|&p| p != 0))
}

/// Collects exited children that `tracked` does not claim and returns
/// their pids. Never blocks. A tracked child that has exited stays
/// waitable for its owner; while one does, the children are found through
/// `/proc` instead (waitid would keep returning that one).
pub fn reap(tracked: impl Fn(u32) -> bool) -> Vec<u32> {
    let mut reaped = Vec::new();
    loop {
        match peek_exited() {
            Ok(Some(pid)) if !tracked(pid) => {
                if collect(pid) {
                    reaped.push(pid);
                } else {
                    break;
                }
            }
            Ok(Some(_)) => {
                for pid in zombie_children() {
                    if !tracked(pid) && collect(pid) {
                        reaped.push(pid);
                    }
                }
                break;
            }
            Ok(None) | Err(_) => break,
        }
    }
    reaped
}

fn collect(pid: u32) -> bool {
    let Some(p) = i32::try_from(pid).ok().and_then(Pid::from_raw) else {
        return false;
    };
    matches!(waitpid(Some(p), WaitOptions::NOHANG), Ok(Some(_)))
}

/// Our children that have exited and wait to be reaped, from `/proc`.
fn zombie_children() -> Vec<u32> {
    let me = std::process::id();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| {
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|s| parse_state_ppid(&s))
                .is_some_and(|(state, ppid)| state == 'Z' && ppid == me)
        })
        .collect()
}

/// Fields 3 (state) and 4 (parent pid) of a `/proc/PID/stat` line, counted
/// from the last `)` since the command name may hold spaces and parentheses.
fn parse_state_ppid(stat: &str) -> Option<(char, u32)> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut f = rest.split_whitespace();
    let state = f.next()?.chars().next()?;
    let ppid = f.next()?.parse().ok()?;
    Some((state, ppid))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::{Command, Stdio};
    use std::time::{Duration, Instant};

    #[test]
    fn state_and_parent_are_read_past_odd_names() {
        let line = "4242 (a) b (c) Z 17 4242 4242 0 -1 4194560 120 0";
        assert_eq!(parse_state_ppid(line), Some(('Z', 17)));
        assert_eq!(parse_state_ppid("12 (x)"), None);
    }

    const CHILD_ENV: &str = "TEN_TEST_SUBREAPER_CHILD";

    /// Runs `subreaper_child` in a fresh copy of this test binary: becoming
    /// a subreaper and reaping changes the whole process, which the test
    /// harness (with other tests' children) must not share.
    #[test]
    fn orphans_are_reaped_and_tracked_children_are_left_to_their_owner() {
        let exe = std::env::current_exe().unwrap();
        let out = Command::new(exe)
            .args([
                "--exact",
                "isolate::cgroup::orphans::tests::subreaper_child",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, "1")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "child test failed:\n{text}");
        assert!(text.contains("1 passed"), "child test did not run:\n{text}");
    }

    #[test]
    #[ignore = "run by orphans_are_reaped_and_tracked_children_are_left_to_their_owner"]
    fn subreaper_child() {
        if std::env::var_os(CHILD_ENV).is_none() {
            return;
        }
        become_subreaper().unwrap();
        // A tracked child that exits at once: its status must stay ours.
        let mut tracked_child = Command::new("sh").args(["-c", "exit 7"]).spawn().unwrap();
        // A double fork: sh starts a background sh in a new session and
        // exits; the grandchild is orphaned to us and exits a bit later.
        let mut parent = Command::new("sh")
            .args(["-c", "setsid sh -c 'sleep 0.2; exit 3' & echo $!"])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let out = {
            use std::io::Read;
            let mut s = String::new();
            parent
                .stdout
                .take()
                .unwrap()
                .read_to_string(&mut s)
                .unwrap();
            s
        };
        assert!(parent.wait().unwrap().success());
        let orphan: u32 = out.trim().parse().unwrap();
        let tracked_pid = tracked_child.id();
        let is_tracked = |pid: u32| pid == tracked_pid;
        let end = Instant::now() + Duration::from_secs(10);
        let mut reaped = Vec::new();
        while !reaped.contains(&orphan) {
            assert!(Instant::now() < end, "orphan {orphan} never reaped");
            std::thread::sleep(Duration::from_millis(20));
            reaped.extend(reap(is_tracked));
        }
        assert!(!reaped.contains(&tracked_pid));
        assert!(zombie_children().iter().all(|&p| p == tracked_pid));
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(tracked_child.wait().unwrap().into_raw() >> 8, 7);
        assert!(zombie_children().is_empty());
    }
}
