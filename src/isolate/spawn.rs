//! The one way the supervisor starts an instance: `spawn(&Request)` runs it
//! at the isolation level asked for (never less) and returns a `Spawned`:
//! its pid, a `Child` to wait on, its output pipes, and the level and
//! measures that took effect, for the instance's log and views.

use std::ffi::OsString;
use std::io;
use std::os::fd::{BorrowedFd, OwnedFd, RawFd};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;

use super::child::{Cgroups, LaunchError};
use super::plan::{self, StartError};
use crate::config::Isolation;

/// A listening socket passed to the app as fd 3 (socket activation, the
/// systemd `sd_listen_fds` protocol).
#[derive(Debug, Clone, Copy)]
pub struct Listen<'a> {
    pub fd: BorrowedFd<'a>,
    /// `LISTEN_FDNAMES`.
    pub name: &'a str,
}

/// The fd the first passed socket gets (`SD_LISTEN_FDS_START`).
pub const LISTEN_FD: RawFd = 3;

/// Everything needed to start one instance.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    pub isolation: Isolation,
    pub argv: &'a [String],
    pub workdir: &'a Path,
    /// Exactly the environment the app gets (`env::build`).
    pub env: &'a [(OsString, OsString)],
    pub listen: Option<Listen<'a>>,
    pub service: &'a str,
    pub id: &'a str,
    /// The instance's data dir (`DATA_DIR`).
    pub data_dir: &'a Path,
    /// Tenement's own data dir: hidden from namespaced instances.
    pub tenement_dir: &'a Path,
    /// Files hidden from namespaced instances (the config file).
    pub hide: &'a [PathBuf],
    pub read_paths: &'a [PathBuf],
    pub write_paths: &'a [PathBuf],
    pub network_none: bool,
    /// (uid, gid) it runs as: `user =`, else the instance's own from
    /// `uid_range`. Required at the namespaced levels; without it the
    /// process level runs as the server's user.
    pub user: Option<(u32, u32)>,
    /// The instance's cgroups: the process is created in (clone3 with
    /// CLONE_INTO_CGROUP) or moves itself into them before exec.
    pub cgroup: Option<&'a super::cgroup::Join>,
}

impl<'a> Request<'a> {
    /// A `process`-level request with nothing else set.
    #[cfg(test)]
    pub fn process(
        argv: &'a [String],
        workdir: &'a Path,
        env: &'a [(OsString, OsString)],
        listen: Option<Listen<'a>>,
    ) -> Request<'a> {
        Request {
            isolation: Isolation::Process,
            argv,
            workdir,
            env,
            listen,
            service: "",
            id: "",
            data_dir: workdir,
            tenement_dir: workdir,
            hide: &[],
            read_paths: &[],
            write_paths: &[],
            network_none: false,
            user: None,
            cgroup: None,
        }
    }
}

/// A process we started and have not reaped yet. Waited for by pid: until
/// it is reaped, the pid cannot be reused.
#[derive(Debug)]
pub struct Child {
    pid: u32,
    /// It is the instance's init (`namespace`, `sandbox`), which exits
    /// with the app's status, 128+N when signal N killed the app.
    init: bool,
}

impl Child {
    pub(super) fn new(pid: u32) -> Child {
        Child { pid, init: false }
    }

    /// The init of a namespaced instance: its status is the app's.
    pub(super) fn init(pid: u32) -> Child {
        Child { pid, init: true }
    }

    /// The app's status: an init's exit code 128+N (N a signal number) is
    /// turned back into "killed by signal N", so an OOM kill or a SIGKILL
    /// reads the same at every level. (An init cannot die by a signal it
    /// sends itself: the kernel shields a namespace's pid 1.)
    fn app_status(&self, status: ExitStatus) -> ExitStatus {
        match status.code() {
            Some(code) if self.init && (129..=128 + libc::SIGRTMAX()).contains(&code) => {
                ExitStatus::from_raw(code - 128)
            }
            _ => status,
        }
    }

    /// A child started by an earlier image of this process (before an
    /// upgrade in place): the pid is the same, so it is still ours to wait
    /// for. The caller checked that `pid` is its child; `init`: it was
    /// started at a level that runs the instance's init.
    pub fn adopt(pid: u32, init: bool) -> Child {
        Child { pid, init }
    }

    fn wait_flags(&mut self, flags: libc::c_int) -> io::Result<Option<ExitStatus>> {
        let mut status = 0;
        // SAFETY: `status` is a valid out pointer; the pid is our child.
        let rc = unsafe { libc::waitpid(self.pid as libc::pid_t, &mut status, flags) };
        match rc {
            -1 => Err(io::Error::last_os_error()),
            0 => Ok(None),
            _ => Ok(Some(self.app_status(ExitStatus::from_raw(status)))),
        }
    }

    /// Its status if it has exited (reaping it), None if it runs.
    pub fn try_wait(&mut self) -> io::Result<Option<ExitStatus>> {
        self.wait_flags(libc::WNOHANG)
    }

    /// Blocks until it exits, and reaps it.
    pub fn wait(&mut self) -> io::Result<ExitStatus> {
        loop {
            match self.wait_flags(0) {
                Ok(Some(s)) => return Ok(s),
                Ok(None) => continue,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }
}

/// A started instance.
#[derive(Debug)]
pub struct Spawned {
    pub child: Child,
    /// The process the supervisor watches: the app itself (`process`), or
    /// the instance's init (`namespace`, `sandbox`), in our pid namespace.
    pub pid: u32,
    /// The process group it leads (== pid, after setsid).
    pub pgid: u32,
    /// Field 22 of /proc/PID/stat, None if it could not be read.
    pub start_ticks: Option<u64>,
    pub stdout: Option<OwnedFd>,
    pub stderr: Option<OwnedFd>,
    /// The level it runs at: always the one asked for.
    pub isolation: Isolation,
    /// The (uid, gid) the app runs as: the request's `user`, else the
    /// server's own.
    pub ids: (u32, u32),
    /// What that level put in place, in words, for the instance's log
    /// (init writes the details of namespaced levels there itself).
    pub enforced: String,
}

/// Why an instance could not be started.
#[derive(Debug)]
pub enum SpawnError {
    /// The workdir is missing or not a folder.
    Workdir { path: PathBuf, source: io::Error },
    /// The program could not be executed (not found, not executable, ...).
    Exec {
        program: String,
        workdir: PathBuf,
        source: io::Error,
    },
    /// The kernel or our privileges cannot give the level; we never run
    /// with less isolation than asked.
    Unsupported {
        level: &'static str,
        missing: String,
    },
    /// Starting the namespaced instance failed at a step.
    Setup {
        level: &'static str,
        source: LaunchError,
    },
}

impl std::fmt::Display for SpawnError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SpawnError::Workdir { path, source } => {
                write!(f, "workdir {} is not usable: {source}", path.display())
            }
            SpawnError::Exec {
                program,
                workdir,
                source,
            } => write!(
                f,
                "cannot execute {program:?} (workdir {}): {source}",
                workdir.display()
            ),
            SpawnError::Unsupported { level, missing } => {
                write!(f, "isolation {level:?} is not available: {missing}")
            }
            SpawnError::Setup { level, source } => {
                write!(f, "isolation {level:?} setup failed: {source}")?;
                if let Some(cause) = std::error::Error::source(source) {
                    write!(f, ": {cause}")?;
                }
                Ok(())
            }
        }
    }
}

impl std::error::Error for SpawnError {}

/// Starts `req` at its level. Blocks until the app has been exec'd (inside
/// its namespaces for `namespace` and `sandbox`) or with why it was not.
pub fn spawn(req: &Request<'_>) -> Result<Spawned, SpawnError> {
    spawn_with_init(req, Path::new("/proc/self/exe"))
}

/// `spawn` with `init_exe` as the `ten` binary run as the instance's init.
pub(super) fn spawn_with_init(req: &Request<'_>, init_exe: &Path) -> Result<Spawned, SpawnError> {
    let level = req.isolation.as_str();
    if req.isolation == Isolation::Process {
        if let Some((uid, gid)) = req.user {
            super::init::give_dir(req.data_dir, uid, gid).map_err(|source| SpawnError::Setup {
                level,
                source: LaunchError::Call {
                    call: "give the data dir to the instance's user",
                    source,
                },
            })?;
        }
        return super::process::spawn(
            req.argv,
            req.workdir,
            req.env,
            req.listen,
            req.cgroup,
            req.user,
        );
    }
    let Some((uid, gid)) = req.user else {
        return Err(SpawnError::Unsupported {
            level,
            missing: "no uid for the instance (user or uid_range)".to_string(),
        });
    };
    let spec = plan::Spec {
        req: *req,
        uid: (uid, gid),
    };
    // Created inside its v2 cgroup (made anew for this start, see
    // `cgroup::Instance::renew_v2`); the child writes itself into the v1
    // hierarchies before it execs init.
    let cgroups = Cgroups {
        into: req.cgroup.and_then(|j| j.clone_into()),
        procs: req.cgroup.map_or(&[][..], |j| j.after_clone()),
    };
    let launched =
        plan::start(init_exe, &spec, req.listen.map(|l| l.fd), cgroups).map_err(|e| match e {
            StartError::Unsupported { missing } => SpawnError::Unsupported { level, missing },
            StartError::Workdir { source } => SpawnError::Workdir {
                path: req.workdir.to_path_buf(),
                source,
            },
            StartError::Program { source } => SpawnError::Exec {
                program: req.argv.first().cloned().unwrap_or_default(),
                workdir: req.workdir.to_path_buf(),
                source,
            },
            StartError::Launch(source) => SpawnError::Setup { level, source },
        })?;
    let enforced = match req.isolation {
        Isolation::Sandbox => format!(
            "pid, mount, ipc, uts, cgroup{} namespaces, uid {uid}, no capabilities, no_new_privs, landlock, seccomp",
            if req.network_none { ", net" } else { "" }
        ),
        _ => format!("pid, mount, ipc, uts, cgroup namespaces, uid {uid}"),
    };
    Ok(Spawned {
        child: Child::init(launched.pid),
        pid: launched.pid,
        pgid: launched.pid,
        start_ticks: super::procfs::stat(launched.pid).map(|s| s.start_ticks),
        stdout: Some(launched.stdout),
        stderr: Some(launched.stderr),
        isolation: req.isolation,
        ids: (uid, gid),
        enforced,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exited(code: i32) -> ExitStatus {
        ExitStatus::from_raw(code << 8)
    }

    #[test]
    fn an_init_status_of_128_plus_n_is_the_app_killed_by_signal_n() {
        let init = Child::init(1);
        assert_eq!(init.app_status(exited(137)).signal(), Some(libc::SIGKILL));
        assert_eq!(init.app_status(exited(143)).signal(), Some(libc::SIGTERM));
        assert_eq!(init.app_status(exited(3)).code(), Some(3));
        assert_eq!(init.app_status(exited(128)).code(), Some(128));
        assert_eq!(init.app_status(exited(255)).code(), Some(255));
        // Init itself killed (cgroup.kill, an OOM group kill).
        let killed = ExitStatus::from_raw(libc::SIGKILL);
        assert_eq!(init.app_status(killed).signal(), Some(libc::SIGKILL));
        // The process level's app is the process itself.
        assert_eq!(Child::new(1).app_status(exited(137)).code(), Some(137));
    }
}
