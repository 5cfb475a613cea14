//! The `process` isolation level: the app runs in its own session and
//! process group, with stdin on /dev/null and stdout/stderr on pipes, every
//! signal unblocked and the ones the server handles back at their defaults.
//!
//! Called by the supervisor thread only. `spawn` returns once the program has
//! been exec'd, or with the reason it could not be (std reports exec and
//! chdir failures from the child synchronously over a CLOEXEC pipe).

use std::ffi::OsString;
use std::io;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use crate::config::Isolation;

/// A started process.
#[derive(Debug)]
pub struct Spawned {
    pub child: Child,
    pub pid: u32,
    /// The process group it leads (== pid, after setsid).
    pub pgid: u32,
    /// Field 22 of /proc/PID/stat, None if it could not be read.
    pub start_ticks: Option<u64>,
}

/// Why a process could not be started.
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
    /// The isolation level is not available in this build or on this kernel;
    /// we never run with less isolation than asked.
    Unsupported { level: &'static str },
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
            SpawnError::Unsupported { level } => {
                write!(f, "isolation {level:?} is not supported by this build")
            }
        }
    }
}

impl std::error::Error for SpawnError {}

/// Starts `argv` in `workdir` with exactly `env`, as its own session leader.
/// Blocks only for fork and exec.
pub fn spawn(
    isolation: Isolation,
    argv: &[String],
    workdir: &Path,
    env: &[(OsString, OsString)],
) -> Result<Spawned, SpawnError> {
    match isolation {
        Isolation::Process => {}
        Isolation::Namespace => return Err(SpawnError::Unsupported { level: "namespace" }),
        Isolation::Sandbox => return Err(SpawnError::Unsupported { level: "sandbox" }),
    }
    // Checked here so the error names the workdir: a failed chdir in the
    // child comes back as a bare ENOENT that reads like a missing program.
    match std::fs::metadata(workdir) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => {
            return Err(SpawnError::Workdir {
                path: workdir.to_path_buf(),
                source: io::Error::from_raw_os_error(libc::ENOTDIR),
            })
        }
        Err(source) => {
            return Err(SpawnError::Workdir {
                path: workdir.to_path_buf(),
                source,
            })
        }
    }
    let program = argv.first().cloned().unwrap_or_default();
    let mut cmd = Command::new(&program);
    cmd.args(argv.iter().skip(1))
        .current_dir(workdir)
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // SAFETY: `pre_exec` requires the closure to be safe to run between fork
    // and exec in a copy of a multi-threaded process: `child_setup` makes only
    // async-signal-safe calls (setsid, sigprocmask, signal), allocates
    // nothing and takes no lock.
    unsafe {
        cmd.pre_exec(child_setup);
    }
    let child = cmd.spawn().map_err(|source| SpawnError::Exec {
        program: program.clone(),
        workdir: workdir.to_path_buf(),
        source,
    })?;
    let pid = child.id();
    Ok(Spawned {
        child,
        pid,
        pgid: pid,
        start_ticks: super::proc::stat(pid).map(|s| s.start_ticks),
    })
}

/// Runs after fork: async-signal-safe calls only.
///
/// A new session, so the app and everything it forks form one process group
/// that a stop can signal as a whole, and no terminal signal reaches it. The
/// server blocks SIGTERM/INT/HUP in every thread and the mask is inherited
/// across fork and exec, so it is emptied; the dispositions of the signals
/// the server cares about go back to their defaults.
fn child_setup() -> io::Result<()> {
    // SAFETY: setsid takes no arguments; it fails only if we already lead a
    // process group, which a fresh fork child never does.
    if unsafe { libc::setsid() } == -1 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `set` is a local sigset_t, initialised by sigemptyset before
    // sigprocmask reads it; the old-mask pointer may be null (sigprocmask(2)).
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        if libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut()) == -1 {
            return Err(io::Error::last_os_error());
        }
    }
    for sig in [
        libc::SIGTERM,
        libc::SIGINT,
        libc::SIGHUP,
        libc::SIGPIPE,
        libc::SIGCHLD,
    ] {
        // SAFETY: SIG_DFL is a valid disposition for each of these catchable
        // signals; signal(2) is async-signal-safe.
        unsafe {
            libc::signal(sig, libc::SIG_DFL);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env() -> Vec<(OsString, OsString)> {
        vec![("PATH".into(), std::env::var_os("PATH").unwrap_or_default())]
    }

    #[test]
    fn missing_program_names_it() {
        let argv = vec!["/nonexistent/prog-xyz".to_string()];
        let err = spawn(Isolation::Process, &argv, Path::new("/"), &env()).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("/nonexistent/prog-xyz"), "{text}");
    }

    #[test]
    fn missing_workdir_names_it() {
        let argv = vec!["true".to_string()];
        let err = spawn(
            Isolation::Process,
            &argv,
            Path::new("/nonexistent-dir"),
            &env(),
        )
        .unwrap_err();
        assert!(err.to_string().contains("/nonexistent-dir"), "{err}");
    }

    #[test]
    fn child_leads_its_own_group_with_nothing_blocked() {
        // Block SIGTERM in this thread, as the server does, so the child
        // inherits it unless child_setup clears the mask.
        // SAFETY: both sets are locals initialised before use; this only
        // changes the mask of the calling test thread, restored below.
        let old = unsafe {
            let mut set: libc::sigset_t = std::mem::zeroed();
            let mut old: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            libc::sigaddset(&mut set, libc::SIGTERM);
            libc::pthread_sigmask(libc::SIG_BLOCK, &set, &mut old);
            old
        };
        let argv = vec!["sleep".to_string(), "30".to_string()];
        let spawned = spawn(Isolation::Process, &argv, Path::new("/"), &env());
        // SAFETY: `old` is the mask returned above.
        unsafe {
            libc::pthread_sigmask(libc::SIG_SETMASK, &old, std::ptr::null_mut());
        }
        let mut s = spawned.unwrap();
        assert_eq!(s.pgid, s.pid);
        let stat = crate::isolate::proc::stat(s.pid).unwrap();
        assert_eq!(stat.pgrp as u32, s.pid);
        assert_eq!(Some(stat.start_ticks), s.start_ticks);
        let status = std::fs::read_to_string(format!("/proc/{}/status", s.pid)).unwrap();
        let blocked = status.lines().find(|l| l.starts_with("SigBlk:")).unwrap();
        assert!(blocked.ends_with("0000000000000000"), "{blocked}");
        crate::isolate::proc::signal_group(s.pgid, rustix::process::Signal::TERM).unwrap();
        let status = s.child.wait().unwrap();
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(status.signal(), Some(libc::SIGTERM));
    }

    #[test]
    fn namespace_is_refused_not_downgraded() {
        let argv = vec!["true".to_string()];
        let err = spawn(Isolation::Namespace, &argv, Path::new("/"), &env()).unwrap_err();
        assert!(matches!(err, SpawnError::Unsupported { .. }));
    }
}
