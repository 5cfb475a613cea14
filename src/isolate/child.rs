//! Starting a namespaced instance from the (multi-threaded) server:
//! `launch` prepares everything, calls clone3 into new namespaces, and
//! the child (`child_main`) only moves fds and execs `ten __init`, with raw
//! async-signal-safe calls over memory prepared before the clone. The
//! plan goes to init on a pipe; setup failures come back as `(step,
//! errno[, detail])` on a CLOEXEC status pipe whose EOF means the app was
//! exec'd.

use std::ffi::CString;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use crate::sys::clone3::{clone3, CloneArgs, Forked, CLONE_INTO_CGROUP, CLONE_PIDFD};

use super::plan::Plan;

/// Where init finds its plan and its status pipe (after stdin, stdout,
/// stderr and the passed socket on 3).
pub const PLAN_FD: RawFd = 4;
pub const STATUS_FD: RawFd = 5;

/// A setup step that can fail, in the order they run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum Step {
    Setsid = 1,
    Cgroup,
    Fds,
    ExecInit,
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
    Step::ExecInit,
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
            Step::ExecInit => "exec ten __init",
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

/// Where a namespaced instance joins its cgroups before anything of it
/// runs: the hook the cgroup code fills.
#[derive(Debug, Default, Clone, Copy)]
pub struct Cgroups<'a> {
    /// A cgroup v2 folder: the child is created in it (CLONE_INTO_CGROUP).
    pub into: Option<BorrowedFd<'a>>,
    /// `cgroup.procs` files (v1 hierarchies) the child writes "0" to,
    /// i.e. moves itself into, before it execs init.
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

/// Everything `child_main` touches, built before clone3.
struct Raw<'a> {
    exe: CString,
    argv: [*const libc::c_char; 3],
    envp: [*const libc::c_char; 1],
    /// (from, to): `from` is always >= 10, `to` <= 5, so no move clobbers
    /// another's source.
    moves: [(RawFd, RawFd); 6],
    nmoves: usize,
    procs: &'a [CString],
    status_src: RawFd,
}

fn dup_high(fd: BorrowedFd<'_>) -> io::Result<OwnedFd> {
    rustix::io::fcntl_dupfd_cloexec(fd, 10).map_err(io::Error::from)
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

/// Starts `ten __init` (`exe`, normally /proc/self/exe) as pid 1 of new
/// pid, mount, IPC, UTS and cgroup namespaces (and a network namespace
/// with `plan.network_none`), hands it `plan`, and returns once the app
/// has been exec'd inside, or with the step that failed.
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
    // Every source fd >= 10, so dup2 onto 0..=5 never closes a source.
    let mut high: Vec<(OwnedFd, RawFd)> = Vec::new();
    let sources: [(Option<BorrowedFd<'_>>, RawFd); 6] = [
        (Some(null.as_fd()), 0),
        (Some(out_w.as_fd()), 1),
        (Some(err_w.as_fd()), 2),
        (listen, 3),
        (Some(plan_r.as_fd()), PLAN_FD),
        (Some(st_w.as_fd()), STATUS_FD),
    ];
    for (src, to) in sources {
        if let Some(src) = src {
            high.push((dup_high(src).map_err(call("dup"))?, to));
        }
    }
    let exe_c = CString::new(exe.as_os_str().as_bytes()).map_err(|_| LaunchError::Call {
        call: "exe path",
        source: io::Error::from_raw_os_error(libc::EINVAL),
    })?;
    let mut raw = Raw {
        argv: [c"ten".as_ptr(), c"__init".as_ptr(), std::ptr::null()],
        envp: [std::ptr::null()],
        exe: exe_c,
        moves: [(-1, -1); 6],
        nmoves: high.len(),
        procs: cgroups.procs,
        status_src: -1,
    };
    for (i, (fd, to)) in high.iter().enumerate() {
        raw.moves[i] = (fd.as_raw_fd(), *to);
        if *to == STATUS_FD {
            raw.status_src = fd.as_raw_fd();
        }
    }
    let mut flags = (libc::CLONE_NEWPID
        | libc::CLONE_NEWNS
        | libc::CLONE_NEWIPC
        | libc::CLONE_NEWUTS
        | libc::CLONE_NEWCGROUP) as u64
        | CLONE_PIDFD;
    if plan.network_none {
        flags |= libc::CLONE_NEWNET as u64;
    }
    let mut args = CloneArgs {
        flags,
        exit_signal: libc::SIGCHLD as u64,
        ..Default::default()
    };
    if let Some(cg) = cgroups.into {
        args.flags |= CLONE_INTO_CGROUP;
        args.cgroup = cg.as_raw_fd() as u64;
    }
    // SAFETY: no memory-sharing flag is set; the child runs only
    // `child_main`, which makes raw async-signal-safe syscalls over `raw`
    // (built above, alive in the child's copy) and never returns.
    let forked = unsafe { clone3(&mut args) }.map_err(call("clone3"))?;
    let (pid, pidfd) = match forked {
        Forked::Child => child_main(&raw),
        Forked::Parent { pid, pidfd } => (pid, pidfd),
    };
    let pidfd = pidfd.ok_or(LaunchError::Call {
        call: "clone3",
        source: io::Error::from_raw_os_error(libc::EBADF),
    })?;
    // The child has its copies: close ours, or EOF never comes.
    drop((high, null, out_w, err_w, plan_r, st_w));
    let mut plan_w = std::fs::File::from(plan_w);
    // A write error means init is gone; the status pipe says why.
    let _ = plan_w.write_all(&json);
    drop(plan_w);
    let mut status = Vec::new();
    let read = std::fs::File::from(st_r).read_to_end(&mut status);
    if read.is_ok() && status.is_empty() {
        return Ok(Launched {
            pid: pid as u32,
            pidfd,
            stdout: out_r,
            stderr: err_r,
        });
    }
    // Init is exiting (or must): reap it so no zombie stays behind.
    let _ = rustix::process::pidfd_send_signal(&pidfd, rustix::process::Signal::KILL);
    let _ = rustix::process::waitid(
        rustix::process::WaitId::PidFd(pidfd.as_fd()),
        rustix::process::WaitIdOptions::EXITED,
    );
    match read {
        Err(e) => Err(LaunchError::Call {
            call: "read the status pipe",
            source: e,
        }),
        Ok(_) => Err(LaunchError::Step(Failure::decode(&status).unwrap_or(
            Failure {
                step: Step::ExecInit,
                errno: 0,
                detail: "garbled status from init".to_string(),
            },
        ))),
    }
}

/// Writes `(step, errno)` to `fd` and exits.
///
/// Runs after clone3: async-signal-safe calls only.
fn fail(fd: RawFd, step: Step) -> ! {
    // SAFETY: errno is thread-local and readable at any time.
    let errno = unsafe { *libc::__errno_location() };
    let mut b = [0u8; 8];
    b[..4].copy_from_slice(&(step as u32).to_le_bytes());
    b[4..].copy_from_slice(&errno.to_le_bytes());
    // SAFETY: writes 8 bytes from a local buffer; a failed write changes
    // nothing we could act on.
    unsafe { libc::write(fd, b.as_ptr().cast(), b.len()) };
    // SAFETY: _exit takes an int and does not return.
    unsafe { libc::_exit(127) }
}

/// The child after clone3: a new session, a clean signal mask, its
/// cgroups, fds 0-5 in place and nothing else open, then exec init.
///
/// Runs after clone3: async-signal-safe calls only.
fn child_main(raw: &Raw<'_>) -> ! {
    let status = raw.status_src;
    // SAFETY: no arguments; a fresh clone3 child never leads a group.
    if unsafe { libc::setsid() } == -1 {
        fail(status, Step::Setsid);
    }
    // SAFETY: `set` is a local sigset_t initialised by sigemptyset before
    // sigprocmask reads it; the old-mask pointer may be null. The server
    // blocks SIGTERM/INT/HUP and the mask survives exec.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
    }
    // Before anything of the instance runs, so its limits cover all of it.
    for path in raw.procs {
        if crate::sys::write_self_into(path).is_err() {
            fail(status, Step::Cgroup);
        }
    }
    for &(from, to) in &raw.moves[..raw.nmoves] {
        // SAFETY: dup2 takes two fd numbers; `to` loses FD_CLOEXEC.
        if unsafe { libc::dup2(from, to) } == -1 {
            fail(status, Step::Fds);
        }
    }
    // Every other fd: inherited ones without CLOEXEC must not reach the
    // instance. (ENOSYS before 5.9: exec still closes the CLOEXEC ones.)
    // SAFETY: integer arguments only.
    unsafe {
        libc::syscall(
            crate::sys::nr::CLOSE_RANGE as libc::c_long,
            STATUS_FD + 1,
            u32::MAX,
            0u32,
        )
    };
    // SAFETY: `exe` is NUL-terminated, `argv` and `envp` are
    // null-terminated arrays of NUL-terminated strings, all in this
    // process's copy of memory prepared before clone3.
    unsafe { libc::execve(raw.exe.as_ptr(), raw.argv.as_ptr(), raw.envp.as_ptr()) };
    fail(STATUS_FD, Step::ExecInit)
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
            step: Step::ExecInit,
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
