//! The `process` isolation level: the app runs in its own session and
//! process group, with stdin on /dev/null and stdout/stderr on pipes, every
//! signal unblocked and the ones the server handles back at their defaults.
//!
//! Called by the supervisor thread only. `spawn` returns once the program has
//! been exec'd, or with the reason it could not be (std reports exec and
//! chdir failures from the child synchronously over a CLOEXEC pipe).

use std::ffi::{CString, OsString};
use std::io;
use std::os::fd::OwnedFd;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::spawn::{Child, Listen, SpawnError, Spawned, LISTEN_FD};
use crate::config::Isolation;

/// Starts `argv` in `workdir` with exactly `env`, as its own session leader.
/// With `listen`, the socket becomes fd 3 and `LISTEN_FDS=1`,
/// `LISTEN_PID=<its pid>`, `LISTEN_FDNAMES=<name>` are added to `env`.
/// With `user`, it runs as that uid and gid, with no supplementary groups.
/// Blocks only for fork and exec.
pub fn spawn(
    argv: &[String],
    workdir: &Path,
    env: &[(OsString, OsString)],
    listen: Option<Listen<'_>>,
    cgroup_procs: &[CString],
    user: Option<(u32, u32)>,
) -> Result<Spawned, SpawnError> {
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
    if !cgroup_procs.is_empty() {
        let procs = cgroup_procs.to_vec();
        // SAFETY: as above; the closure owns `procs`, built before the
        // fork, and `write_self_into` makes only open, write and close.
        unsafe {
            cmd.pre_exec(move || {
                for p in &procs {
                    crate::sys::write_self_into(p)?;
                }
                Ok(())
            });
        }
    }
    if let Some((uid, gid)) = user {
        // After the cgroup write (root's files) and before the activation
        // step, which execs. Not `Command::uid`: std changes ids before
        // any `pre_exec` step runs.
        // SAFETY: as above; `set_ids` makes only setgroups, setresgid,
        // setresuid and their getters, allocating nothing.
        unsafe {
            cmd.pre_exec(move || super::caps::set_ids(uid, gid));
        }
    }
    // Built here, before the fork; `activation` must outlive `cmd.spawn()`,
    // which returns only after the child has exec'd or failed to.
    if listen.is_some() {
        reserve_fd_3();
    }
    let activation = listen.map(|l| Activation::prepare(argv, env, l));
    if let Some(a) = &activation {
        let step = a.child_step();
        // SAFETY: as above; `ActivationStep::apply` makes only
        // async-signal-safe calls (getpid, dup2, fcntl, execve) and writes
        // into memory prepared by `Activation::prepare`, which is alive until
        // `cmd.spawn()` returns.
        unsafe {
            cmd.pre_exec(move || step.apply());
        }
    }
    let mut child = cmd.spawn().map_err(|source| SpawnError::Exec {
        program: program.clone(),
        workdir: workdir.to_path_buf(),
        source,
    })?;
    let pid = child.id();
    // The std handle is dropped unwaited (that neither kills nor reaps);
    // `Child` waits by pid, which stays ours until it is reaped.
    Ok(Spawned {
        child: Child::new(pid),
        pid,
        pgid: pid,
        start_ticks: super::procfs::stat(pid).map(|s| s.start_ticks),
        stdout: child.stdout.take().map(OwnedFd::from),
        stderr: child.stderr.take().map(OwnedFd::from),
        isolation: Isolation::Process,
        ids: user.unwrap_or_else(|| {
            (
                rustix::process::geteuid().as_raw(),
                rustix::process::getegid().as_raw(),
            )
        }),
        enforced: match user {
            Some((uid, gid)) => format!(
                "own session and process group, inherited fds closed, umask 027, uid {uid} gid {gid}"
            ),
            None => "own session and process group, inherited fds closed, umask 027".to_string(),
        },
    })
}

/// The exec of a socket-activated child, prepared in the parent: the
/// program's resolved path, argv, and `env` plus `LISTEN_FDS`,
/// `LISTEN_FDNAMES` and a `LISTEN_PID=` entry whose digits the child writes
/// itself (only it knows its pid before exec). The child step calls
/// execve(2) with these (async-signal-safe, unlike setenv) instead of
/// letting std exec with the envp it built; if execve fails, the error goes
/// back through std's exec-error pipe like any other.
struct Activation {
    /// Owns the strings `envp`, `argv` and `path` point into.
    _strings: Vec<CString>,
    path: CString,
    argv: Vec<*const libc::c_char>,
    /// `LISTEN_PID=` followed by room for the digits and the NUL; from
    /// `Box::into_raw` (the child writes through it, so no reference to it
    /// is ever made), freed on drop.
    pid_entry: *mut [u8; PID_ENTRY_LEN],
    /// Null-terminated.
    envp: Vec<*const libc::c_char>,
    fd: RawFd,
}

const PID_PREFIX: &[u8] = b"LISTEN_PID=";
/// The prefix, up to 10 digits (a pid fits in an i32) and the NUL.
const PID_ENTRY_LEN: usize = PID_PREFIX.len() + 11;

impl Activation {
    fn prepare(argv: &[String], env: &[(OsString, OsString)], listen: Listen<'_>) -> Activation {
        let program = argv.first().map(String::as_str).unwrap_or_default();
        let path_var = env
            .iter()
            .find(|(k, _)| k == "PATH")
            .map(|(_, v)| v.as_os_str());
        let path = resolve_program(program, path_var);
        let path = CString::new(path.into_os_string().into_vec())
            .unwrap_or_else(|_| CString::new("/nonexistent").expect("no NUL in a literal"));
        let args: Vec<CString> = argv
            .iter()
            .filter_map(|a| CString::new(a.as_bytes()).ok())
            .collect();
        let mut arg_ptrs: Vec<*const libc::c_char> = args.iter().map(|c| c.as_ptr()).collect();
        arg_ptrs.push(std::ptr::null());
        let nargs = args.len();
        let mut strings = args;
        let skip = [b"LISTEN_FDS".as_slice(), b"LISTEN_PID", b"LISTEN_FDNAMES"];
        for (k, v) in env {
            if skip.contains(&k.as_bytes()) {
                continue;
            }
            let mut entry = k.as_bytes().to_vec();
            entry.push(b'=');
            entry.extend_from_slice(v.as_bytes());
            // An interior NUL cannot be passed; std drops such a variable too.
            if let Ok(c) = CString::new(entry) {
                strings.push(c);
            }
        }
        strings.push(CString::new("LISTEN_FDS=1").expect("no NUL in a literal"));
        let name: String = listen
            .name
            .chars()
            .filter(|c| *c != '\0' && *c != ':')
            .collect();
        strings.push(CString::new(format!("LISTEN_FDNAMES={name}")).expect("NULs filtered"));
        let mut entry = [0u8; PID_ENTRY_LEN];
        entry[..PID_PREFIX.len()].copy_from_slice(PID_PREFIX);
        let pid_entry = Box::into_raw(Box::new(entry));
        let mut envp: Vec<*const libc::c_char> =
            strings[nargs..].iter().map(|c| c.as_ptr()).collect();
        envp.push(pid_entry.cast_const().cast());
        envp.push(std::ptr::null());
        Activation {
            _strings: strings,
            path,
            argv: arg_ptrs,
            pid_entry,
            envp,
            fd: listen.fd.as_raw_fd(),
        }
    }

    /// What the child needs: raw pointers into this (the child's copy of
    /// the parent's memory) and the fd.
    fn child_step(&self) -> ActivationStep {
        ActivationStep {
            path: self.path.as_ptr(),
            argv: self.argv.as_ptr(),
            envp: self.envp.as_ptr(),
            pid_digits: self.pid_entry.cast::<u8>().wrapping_add(PID_PREFIX.len()),
            fd: self.fd,
        }
    }
}

impl Drop for Activation {
    fn drop(&mut self) {
        // SAFETY: from Box::into_raw in `prepare`, freed once, here.
        drop(unsafe { Box::from_raw(self.pid_entry) });
    }
}

/// Raw pointers the child step uses. They point into an `Activation` that
/// the parent keeps alive until the fork is over; in the child, nothing
/// else runs, so writing through them races with no one.
#[derive(Clone, Copy)]
struct ActivationStep {
    path: *const libc::c_char,
    argv: *const *const libc::c_char,
    envp: *const *const libc::c_char,
    pid_digits: *mut u8,
    fd: RawFd,
}

// SAFETY: the pointers are only dereferenced in the forked child, where the
// calling thread is the only one; the parent never reads through them.
unsafe impl Send for ActivationStep {}
// SAFETY: as for Send: no shared access happens through them.
unsafe impl Sync for ActivationStep {}

impl ActivationStep {
    /// Runs after fork: async-signal-safe calls only.
    ///
    /// Puts the socket on fd 3 without CLOEXEC, writes this process's pid
    /// into `LISTEN_PID=` (sd_listen_fds(3) ignores the variables when it
    /// differs from getpid()) and execs the program with the prepared envp.
    /// Returns only on failure.
    fn apply(self) -> io::Result<()> {
        if self.fd == LISTEN_FD {
            // dup2 onto itself is a no-op that keeps FD_CLOEXEC: clear it.
            // SAFETY: fcntl on an fd we own with integer arguments only.
            if unsafe { libc::fcntl(LISTEN_FD, libc::F_SETFD, 0) } == -1 {
                return Err(io::Error::last_os_error());
            }
        } else {
            // SAFETY: dup2 takes two fds; the new one never has FD_CLOEXEC.
            if unsafe { libc::dup2(self.fd, LISTEN_FD) } == -1 {
                return Err(io::Error::last_os_error());
            }
        }
        // SAFETY: getpid has no preconditions and cannot fail.
        let pid = unsafe { libc::getpid() };
        let mut digits = [0u8; 10];
        let mut n = 0;
        let mut v = pid.unsigned_abs();
        loop {
            digits[n] = b'0' + (v % 10) as u8;
            n += 1;
            v /= 10;
            if v == 0 {
                break;
            }
        }
        for i in 0..n {
            // SAFETY: `pid_digits` points at 11 writable bytes of the boxed
            // entry (10 digits and the NUL); i < n <= 10.
            unsafe { self.pid_digits.add(i).write(digits[n - 1 - i]) };
        }
        // SAFETY: n <= 10, inside the 11 bytes.
        unsafe { self.pid_digits.add(n).write(0) };
        // SAFETY: `path` is a NUL-terminated string and `argv`, `envp` are
        // null-terminated arrays of NUL-terminated strings, all alive in
        // this process image until exec replaces it.
        unsafe { libc::execve(self.path, self.argv, self.envp) };
        Err(io::Error::last_os_error())
    }
}

/// Keeps fd 3 of the server taken. std's spawn opens a CLOEXEC pipe on
/// which the child reports a failed exec; were that pipe to get the lowest
/// free fd, 3, the child step's dup2 onto fd 3 would close it and exec
/// errors would go unreported (the start would look like a crash). So when
/// fd 3 is free, /dev/null is opened onto it and kept for the life of the
/// server.
fn reserve_fd_3() {
    if std::path::Path::new("/proc/self/fd/3").exists() {
        return;
    }
    if let Ok(null) = std::fs::File::open("/dev/null") {
        if null.as_raw_fd() == LISTEN_FD {
            // Kept open on purpose; CLOEXEC (std's default) keeps it out of
            // children.
            std::mem::forget(null);
        }
    }
}

/// Where execvp(3) would find `program`: itself when it has a slash, else
/// the first executable regular file of that name in `path` (the child's
/// `PATH`, default "/usr/local/bin:/usr/bin:/bin"). Not found: `program`
/// as given, so execve fails with ENOENT and the error names it.
pub(super) fn resolve_program(program: &str, path: Option<&std::ffi::OsStr>) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    if program.contains('/') {
        return PathBuf::from(program);
    }
    let path = path.unwrap_or(std::ffi::OsStr::new("/usr/local/bin:/usr/bin:/bin"));
    for dir in std::env::split_paths(path) {
        let candidate = dir.join(program);
        if std::fs::metadata(&candidate)
            .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        {
            return candidate;
        }
    }
    PathBuf::from(program)
}

/// close_range(2) flag: mark CLOEXEC instead of closing.
const CLOSE_RANGE_CLOEXEC: u32 = 1 << 2;

/// Runs after fork: async-signal-safe calls only.
///
/// A new session, so the app and everything it forks form one process group
/// that a stop can signal as a whole, and no terminal signal reaches it. The
/// server blocks SIGTERM/INT/HUP in every thread and the mask is inherited
/// across fork and exec, so it is emptied; the dispositions of the signals
/// the server cares about go back to their defaults.
fn child_setup() -> io::Result<()> {
    // Files the app creates are not world-readable (issue 8: umask 027).
    // SAFETY: umask takes a mode and cannot fail.
    unsafe { libc::umask(0o027) };
    // Every inherited fd beyond 0-2 is closed at exec: marked CLOEXEC, not
    // closed now, since std's exec-error pipe is among them; the passed
    // socket gets its fd 3 back without CLOEXEC in the step after this.
    // (ENOSYS or EINVAL before 5.11: only the CLOEXEC ones close.)
    // SAFETY: integer arguments only.
    unsafe {
        libc::syscall(
            crate::sys::nr::CLOSE_RANGE as libc::c_long,
            3u32,
            u32::MAX,
            CLOSE_RANGE_CLOEXEC,
        )
    };
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
    use crate::isolate::spawn::{spawn, Request};
    use std::os::fd::AsFd;

    fn env() -> Vec<(OsString, OsString)> {
        vec![("PATH".into(), std::env::var_os("PATH").unwrap_or_default())]
    }

    #[test]
    fn missing_program_names_it() {
        let argv = vec!["/nonexistent/prog-xyz".to_string()];
        let err = spawn(&Request::process(&argv, Path::new("/"), &env(), None)).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("/nonexistent/prog-xyz"), "{text}");
    }

    #[test]
    fn missing_workdir_names_it() {
        let argv = vec!["true".to_string()];
        let err = spawn(&Request::process(
            &argv,
            Path::new("/nonexistent-dir"),
            &env(),
            None,
        ))
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
        let spawned = spawn(&Request::process(&argv, Path::new("/"), &env(), None));
        // SAFETY: `old` is the mask returned above.
        unsafe {
            libc::pthread_sigmask(libc::SIG_SETMASK, &old, std::ptr::null_mut());
        }
        let mut s = spawned.unwrap();
        assert_eq!(s.pgid, s.pid);
        let stat = crate::isolate::procfs::stat(s.pid).unwrap();
        assert_eq!(stat.pgrp as u32, s.pid);
        assert_eq!(Some(stat.start_ticks), s.start_ticks);
        let status = std::fs::read_to_string(format!("/proc/{}/status", s.pid)).unwrap();
        let blocked = status.lines().find(|l| l.starts_with("SigBlk:")).unwrap();
        assert!(blocked.ends_with("0000000000000000"), "{blocked}");
        crate::isolate::procfs::signal_group(s.pgid, rustix::process::Signal::TERM).unwrap();
        let status = s.child.wait().unwrap();
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(status.signal(), Some(libc::SIGTERM));
    }

    #[test]
    fn socket_activation_reports_a_missing_program() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let listen = Listen {
            fd: listener.as_fd(),
            name: "web",
        };
        let argv = vec!["no-such-program-xyz".to_string()];
        let err = spawn(&Request::process(
            &argv,
            Path::new("/"),
            &env(),
            Some(listen),
        ))
        .unwrap_err();
        assert!(err.to_string().contains("no-such-program-xyz"), "{err}");
    }

    #[test]
    fn socket_activation_passes_fd_3_and_the_pid_of_the_child() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        // The child reports what it sees: its pid, the env, and the address
        // fd 3 is bound to (via /proc/self/fd/3 being a socket and ss-free:
        // python's socket.fromfd).
        let script = "import os,socket,sys\n\
s=socket.socket(fileno=3)\n\
print(os.getpid(), os.environ.get('LISTEN_PID'), os.environ.get('LISTEN_FDS'), \
os.environ.get('LISTEN_FDNAMES'), s.getsockname()[1], os.environ.get('KEEP'))\n";
        let argv = vec!["python3".to_string(), "-c".to_string(), script.to_string()];
        let mut env = env();
        env.push(("KEEP".into(), "yes".into()));
        env.push(("LISTEN_PID".into(), "1".into()));
        let listen = Listen {
            fd: listener.as_fd(),
            name: "web",
        };
        let mut s = spawn(&Request::process(&argv, Path::new("/"), &env, Some(listen))).unwrap();
        let mut out = String::new();
        use std::io::Read;
        std::fs::File::from(s.stdout.take().unwrap())
            .read_to_string(&mut out)
            .unwrap();
        s.child.wait().unwrap();
        let f: Vec<&str> = out.split_whitespace().collect();
        assert_eq!(f.len(), 6, "{out}");
        assert_eq!(f[0], s.pid.to_string(), "{out}");
        assert_eq!(f[1], f[0], "LISTEN_PID is the child's pid: {out}");
        assert_eq!(&f[2..4], ["1", "web"], "{out}");
        assert_eq!(f[4], port.to_string(), "{out}");
        assert_eq!(f[5], "yes", "{out}");
    }

    #[test]
    fn inherited_fds_are_closed_and_umask_is_027() {
        // An fd without CLOEXEC, as a careless library would leave it.
        let leaked = std::fs::File::open("/dev/null").unwrap();
        rustix::io::fcntl_setfd(&leaked, rustix::io::FdFlags::empty()).unwrap();
        let script = "import os\nprint(oct(os.umask(0)), sorted(int(f) for f in os.listdir('/proc/self/fd')))";
        let argv = vec!["python3".to_string(), "-c".to_string(), script.to_string()];
        let env = env();
        let mut s = spawn(&Request::process(&argv, Path::new("/"), &env, None)).unwrap();
        let mut out = String::new();
        use std::io::Read;
        std::fs::File::from(s.stdout.take().unwrap())
            .read_to_string(&mut out)
            .unwrap();
        s.child.wait().unwrap();
        // 0-2, and the fd listdir itself has open while it reads.
        assert_eq!(
            out.trim(),
            "0o27 [0, 1, 2, 3]",
            "leaked fd {}",
            leaked.as_raw_fd()
        );
    }
}
