//! Starting a namespaced instance from the (multi-threaded) server:
//! `launch` makes the instance's pipes and asks the zygote (`zygote.rs`)
//! for an init in new namespaces, which gets them at fixed numbers. The
//! plan goes to init on a pipe; setup failures come back as `(step,
//! errno[, detail])` on a CLOEXEC status pipe whose EOF means the app was
//! exec'd.

use std::ffi::CString;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd, RawFd};
use std::path::Path;

use super::plan::Plan;
use super::zygote::{self, Ask, InitFds};

/// Where init finds its plan and its status pipe (after stdin, stdout,
/// stderr and the passed socket on 3), and the zygote's word (it was
/// moved into all of its cgroups: the app may be forked).
pub const PLAN_FD: RawFd = 4;
pub const STATUS_FD: RawFd = 5;
pub const GO_FD: RawFd = 6;

/// A setup step that can fail, in the order they run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum Step {
    Setsid = 1,
    Cgroup,
    Fds,
    Zygote,
    Plan,
    Mounts,
    DataDir,
    Hostname,
    Loopback,
    Bounding,
    Ids,
    Workdir,
    Caps,
    NoNewPrivs,
    Landlock,
    Seccomp,
    Fork,
    ExecApp,
}

const STEPS: [Step; 18] = [
    Step::Setsid,
    Step::Cgroup,
    Step::Fds,
    Step::Zygote,
    Step::Plan,
    Step::Mounts,
    Step::DataDir,
    Step::Hostname,
    Step::Loopback,
    Step::Bounding,
    Step::Ids,
    Step::Workdir,
    Step::Caps,
    Step::NoNewPrivs,
    Step::Landlock,
    Step::Seccomp,
    Step::Fork,
    Step::ExecApp,
];

impl Step {
    pub fn from_u32(v: u32) -> Option<Step> {
        STEPS.iter().copied().find(|s| *s as u32 == v)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Step::Setsid => "setsid",
            Step::Cgroup => "join the cgroup",
            Step::Fds => "set up fds",
            Step::Zygote => "start the zygote (ten __zygote)",
            Step::Plan => "read the plan",
            Step::Mounts => "build the root",
            Step::DataDir => "give the data dir to the instance's uid",
            Step::Hostname => "set the hostname",
            Step::Loopback => "bring up lo",
            Step::Bounding => "drop the capability bounding set",
            Step::Ids => "set uid and gid",
            Step::Workdir => "enter the workdir",
            Step::Caps => "drop capabilities",
            Step::NoNewPrivs => "set no_new_privs",
            Step::Landlock => "landlock",
            Step::Seccomp => "seccomp",
            Step::Fork => "fork the app",
            Step::ExecApp => "exec the app",
        }
    }
}

/// A failed step as it comes back over the status pipe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub step: Step,
    pub errno: i32,
    /// Words from init (what was missing, which path); empty from the raw
    /// child.
    pub detail: String,
}

impl Failure {
    pub fn encode(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(8 + self.detail.len());
        b.extend_from_slice(&(self.step as u32).to_le_bytes());
        b.extend_from_slice(&self.errno.to_le_bytes());
        b.extend_from_slice(self.detail.as_bytes());
        b
    }

    pub fn decode(b: &[u8]) -> Option<Failure> {
        let step = Step::from_u32(u32::from_le_bytes(b.get(0..4)?.try_into().ok()?))?;
        let errno = i32::from_le_bytes(b.get(4..8)?.try_into().ok()?);
        Some(Failure {
            step,
            errno,
            detail: String::from_utf8_lossy(&b[8..]).into_owned(),
        })
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.step.as_str())?;
        if !self.detail.is_empty() {
            write!(f, ": {}", self.detail)?;
        }
        if self.errno != 0 {
            write!(f, ": {}", io::Error::from_raw_os_error(self.errno))?;
        }
        Ok(())
    }
}

/// Where a namespaced instance joins its cgroups before its app runs: the
/// hook the cgroup code fills.
#[derive(Debug, Default, Clone, Copy)]
pub struct Cgroups<'a> {
    /// A cgroup v2 folder: the init is created in it (CLONE_INTO_CGROUP).
    pub into: Option<BorrowedFd<'a>>,
    /// `cgroup.procs` files (v1 hierarchies) the zygote moves the init
    /// into while it builds its root, before the app is forked.
    pub procs: &'a [CString],
}

/// A started namespaced instance: its init's pid (in the server's pid
/// namespace) and pidfd, and the read ends of its stdout and stderr.
#[derive(Debug)]
pub struct Launched {
    pub pid: u32,
    pub pidfd: OwnedFd,
    pub stdout: OwnedFd,
    pub stderr: OwnedFd,
}

/// Why `launch` failed.
#[derive(Debug)]
pub enum LaunchError {
    /// Preparing in the parent (pipes, dup, clone3 itself).
    Call {
        call: &'static str,
        source: io::Error,
    },
    /// A step in the child or in init.
    Step(Failure),
}

impl std::fmt::Display for LaunchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LaunchError::Call { call, .. } => f.write_str(call),
            LaunchError::Step(failure) => failure.fmt(f),
        }
    }
}

impl std::error::Error for LaunchError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            LaunchError::Call { source, .. } => Some(source),
            LaunchError::Step(_) => None,
        }
    }
}

fn call(call: &'static str) -> impl FnOnce(io::Error) -> LaunchError {
    move |source| LaunchError::Call { call, source }
}

fn pipe() -> Result<(OwnedFd, OwnedFd), LaunchError> {
    rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).map_err(|e| LaunchError::Call {
        call: "pipe2",
        source: e.into(),
    })
}

/// Starts the instance's init (through the zygote running `exe`,
/// normally /proc/self/exe) as pid 1 of new pid, mount, IPC, UTS and
/// cgroup namespaces (and a network namespace with `plan.network_none`),
/// hands it `plan`, and returns once the app has been exec'd inside, or
/// with the step that failed.
pub fn launch(
    exe: &Path,
    plan: &Plan,
    listen: Option<BorrowedFd<'_>>,
    cgroups: Cgroups<'_>,
) -> Result<Launched, LaunchError> {
    let json = serde_json::to_vec(plan).map_err(|e| LaunchError::Call {
        call: "encode the plan",
        source: io::Error::other(e),
    })?;
    let null = std::fs::File::open("/dev/null").map_err(call("open /dev/null"))?;
    let (out_r, out_w) = pipe()?;
    let (err_r, err_w) = pipe()?;
    let (plan_r, plan_w) = pipe()?;
    let (st_r, st_w) = pipe()?;
    // A plan that fits the pipe is in it before init exists, so init never
    // waits for it; a larger one is written once init reads.
    let mut plan_w = Some(std::fs::File::from(plan_w));
    if fits(plan_w.as_ref(), json.len()) {
        if let Some(mut w) = plan_w.take() {
            w.write_all(&json).map_err(call("write the plan"))?;
        }
    }
    let ask = Ask {
        network_none: plan.network_none,
        fds: InitFds {
            stdin: null.as_fd(),
            stdout: out_w.as_fd(),
            stderr: err_w.as_fd(),
            listen,
            plan: plan_r.as_fd(),
            status: st_w.as_fd(),
        },
        cgroups,
    };
    let pending = zygote::clone_init(exe, &ask)?;
    // The init has its copies: close ours, or EOF never comes.
    drop((null, out_w, err_w, plan_r, st_w));
    if let Some(mut w) = plan_w {
        // A write error means init is gone; the status pipe says why.
        let _ = w.write_all(&json);
    }
    let mut status = Vec::new();
    let read = std::fs::File::from(st_r).read_to_end(&mut status);
    let pid = pending.pid()?;
    // It is our child (CLONE_PARENT): its pid stays its own until we reap
    // it, even after it exited.
    let Some(p) = rustix::process::Pid::from_raw(pid as i32) else {
        return Err(LaunchError::Call {
            call: "the zygote's answer",
            source: io::Error::from_raw_os_error(libc::ESRCH),
        });
    };
    let pidfd = rustix::process::pidfd_open(p, rustix::process::PidfdFlags::empty());
    if read.is_ok() && status.is_empty() {
        if let Ok(pidfd) = pidfd {
            return Ok(Launched {
                pid,
                pidfd,
                stdout: out_r,
                stderr: err_r,
            });
        }
    }
    // Init is exiting (or must): reap it so no zombie stays behind.
    let _ = rustix::process::kill_process(p, rustix::process::Signal::KILL);
    let _ = rustix::process::waitpid(Some(p), rustix::process::WaitOptions::empty());
    if let Err(e) = pidfd {
        return Err(LaunchError::Call {
            call: "pidfd_open",
            source: e.into(),
        });
    }
    match read {
        Err(e) => Err(LaunchError::Call {
            call: "read the status pipe",
            source: e,
        }),
        Ok(_) => Err(LaunchError::Step(Failure::decode(&status).unwrap_or(
            Failure {
                step: Step::Plan,
                errno: 0,
                detail: "garbled status from init".to_string(),
            },
        ))),
    }
}

/// Whether `len` bytes fit in the pipe `w` without blocking (a new pipe
/// holds 64 KiB; root may make it larger).
fn fits(w: Option<&std::fs::File>, len: usize) -> bool {
    let Some(w) = w else { return false };
    let size = rustix::pipe::fcntl_getpipe_size(w).unwrap_or(0);
    size >= len || rustix::pipe::fcntl_setpipe_size(w, len).is_ok_and(|s| s >= len)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_survive_the_pipe() {
        let f = Failure {
            step: Step::Landlock,
            errno: libc::ENOSYS,
            detail: "landlock is not enabled in this kernel (needs 5.13+)".into(),
        };
        assert_eq!(Failure::decode(&f.encode()), Some(f.clone()));
        let text = f.to_string();
        assert!(
            text.starts_with("landlock: landlock is not enabled"),
            "{text}"
        );
        // The raw child sends no words.
        let raw = Failure {
            step: Step::Zygote,
            errno: libc::ENOENT,
            detail: String::new(),
        };
        assert_eq!(Failure::decode(&raw.encode()[..8]), Some(raw));
        assert_eq!(Failure::decode(&[1, 2, 3]), None);
        for s in STEPS {
            assert_eq!(Step::from_u32(s as u32), Some(s));
        }
    }
}
