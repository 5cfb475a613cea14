//! The `process` isolation level: the app runs in its own session and
//! process group, with stdin on /dev/null and stdout/stderr on pipes, only
//! fds 0-2 (and 3, a passed socket) open, every signal unblocked and the
//! ones the server handles back at their defaults, in its cgroups and as
//! its user before its first instruction.
//!
//! Called by the supervisor thread only. The child shares the server's
//! memory until it execs (`sys::vfork`: no copy of the server's page
//! tables), created inside its v2 cgroup where the kernel can; it runs
//! only raw calls over what `spawn` prepared, and writes the step that
//! failed, if one did, where `spawn` reads it once the child has exec'd or
//! exited: errors come back synchronously, naming the step.

use std::ffi::{c_void, CString, OsString};
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::atomic::{AtomicI32, AtomicU32, Ordering};

use super::cgroup::Join;
use super::child::{Failure, LaunchError, Step};
use super::plan::candidates;
use super::spawn::{Child, Listen, SpawnError, Spawned, LISTEN_FD};
use crate::config::Isolation;
use crate::sys::vfork;

/// The child's stack: it runs a few small frames and libc's raw calls.
const STACK: usize = 64 * 1024;

/// Starts `argv` in `workdir` with exactly `env`, as its own session leader.
/// With `listen`, the socket becomes fd 3 and `LISTEN_FDS=1`,
/// `LISTEN_PID=<its pid>`, `LISTEN_FDNAMES=<name>` are added to `env`.
/// With `cgroup`, it is in the instance's cgroups before it execs (created
/// in its v2 one when the kernel allows). With `user`, it runs as that uid
/// and gid, with no supplementary groups. Blocks only until the exec.
pub fn spawn(
    argv: &[String],
    workdir: &Path,
    env: &[(OsString, OsString)],
    listen: Option<Listen<'_>>,
    cgroup: Option<&Join>,
    user: Option<(u32, u32)>,
) -> Result<Spawned, SpawnError> {
    // A failed chdir in the child comes back as `Step::Workdir`: the error
    // names the workdir, not the program.
    let workdir_error = |source| SpawnError::Workdir {
        path: workdir.to_path_buf(),
        source,
    };
    let workdir_c = CString::new(workdir.as_os_str().as_bytes())
        .map_err(|_| workdir_error(io::Error::from_raw_os_error(libc::EINVAL)))?;
    let program = argv.first().cloned().unwrap_or_default();
    let exec = Exec::prepare(argv, env, listen).map_err(|source| SpawnError::Exec {
        program: program.clone(),
        workdir: workdir.to_path_buf(),
        source,
    })?;
    let setup = |call: &'static str| {
        move |source: io::Error| SpawnError::Setup {
            level: "process",
            source: LaunchError::Call { call, source },
        }
    };
    let null = std::fs::File::open("/dev/null").map_err(setup("open /dev/null"))?;
    let (out_r, out_w) = pipe().map_err(setup("pipe2"))?;
    let (err_r, err_w) = pipe().map_err(setup("pipe2"))?;
    // Every source above fd 3, so moving one to 0, 1, 2 or 3 clobbers no
    // other (a server started with fds 0-2 closed hands out low numbers).
    let mut high = Vec::new();
    let mut above_3 = |fd: RawFd| -> Result<RawFd, SpawnError> {
        if fd > LISTEN_FD {
            return Ok(fd);
        }
        // SAFETY: `fd` is open for the length of this function (it is one
        // of ours, or the caller's socket, borrowed).
        let borrowed = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
        let h =
            rustix::io::fcntl_dupfd_cloexec(borrowed, 10).map_err(|e| setup("dup")(e.into()))?;
        let raw = h.as_raw_fd();
        high.push(h);
        Ok(raw)
    };
    let stdio = [
        above_3(null.as_raw_fd())?,
        above_3(out_w.as_raw_fd())?,
        above_3(err_w.as_raw_fd())?,
    ];
    let listen_fd = match listen.map(|l| l.fd.as_raw_fd()) {
        Some(LISTEN_FD) => Some(LISTEN_FD),
        Some(fd) => Some(above_3(fd)?),
        None => None,
    };
    // Created inside its v2 cgroup when there is one made for this start;
    // it writes itself into the others.
    let into = cgroup
        .and_then(Join::clone_into)
        .filter(|_| vfork::INTO_CGROUP);
    let files: &[CString] = match (cgroup, into) {
        (Some(j), Some(_)) => j.after_clone(),
        (Some(j), None) => j.files(),
        (None, _) => &[],
    };
    let procs: Vec<*const libc::c_char> = files.iter().map(|f| f.as_ptr()).collect();
    let plan = ChildPlan {
        stdio,
        listen: listen_fd,
        workdir: workdir_c.as_ptr(),
        procs: procs.as_ptr(),
        nprocs: procs.len(),
        ids: user,
        exec: exec.step(),
        report: Report::default(),
    };
    let mut stack = vfork::Stack::new(STACK).map_err(setup("mmap the child's stack"))?;
    let started = {
        let _blocked = crate::sys::signals::AllBlocked::new().map_err(setup("pthread_sigmask"))?;
        // SAFETY: `child_main` makes only raw, async-signal-safe calls over
        // `plan` and what it points to (all alive until this returns, which
        // is after the child exec'd or exited), never unwinds, and ends in
        // execve or _exit; every signal is blocked meanwhile.
        unsafe {
            vfork::run(
                &mut stack,
                into,
                child_main,
                &plan as *const ChildPlan as *mut c_void,
            )
        }
    };
    drop((null, out_w, err_w, high));
    let pid = started.map_err(setup("clone"))?;
    if let Some((step, errno, index)) = plan.report.failed() {
        let mut child = Child::new(pid);
        let _ = child.wait();
        let source = io::Error::from_raw_os_error(errno);
        return Err(match step {
            Step::ExecApp => SpawnError::Exec {
                program,
                workdir: workdir.to_path_buf(),
                source,
            },
            Step::Workdir => workdir_error(source),
            step => SpawnError::Setup {
                level: "process",
                source: LaunchError::Step(Failure {
                    step,
                    errno,
                    detail: match step {
                        Step::Cgroup => files
                            .get(index)
                            .map(|f| f.to_string_lossy().into_owned())
                            .unwrap_or_default(),
                        _ => String::new(),
                    },
                }),
            },
        });
    }
    Ok(Spawned {
        child: Child::new(pid),
        pid,
        pgid: pid,
        start_ticks: super::procfs::stat(pid).map(|s| s.start_ticks),
        stdout: Some(out_r),
        stderr: Some(err_r),
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

fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    Ok(rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)?)
}

/// The program's exec, prepared in the parent: where to look for it, argv,
/// and `env` (with a passed socket: plus `LISTEN_FDS`, `LISTEN_FDNAMES`
/// and a `LISTEN_PID=` entry whose digits the child writes itself, as only
/// it knows its pid before exec).
struct Exec {
    /// Owns the strings `envp`, `argv` and `paths` point into.
    _strings: Vec<CString>,
    /// The paths execvp(3) would try, in its order: the program itself
    /// when it has a slash, else each folder of the child's `PATH` joined
    /// with it. Null-terminated.
    paths: Vec<*const libc::c_char>,
    argv: Vec<*const libc::c_char>,
    /// `LISTEN_PID=` followed by room for the digits and the NUL; from
    /// `Box::into_raw` (the child writes through it, so no reference to it
    /// is ever made), freed on drop. Null without a passed socket.
    pid_entry: *mut [u8; PID_ENTRY_LEN],
    /// Null-terminated.
    envp: Vec<*const libc::c_char>,
}

const PID_PREFIX: &[u8] = b"LISTEN_PID=";
/// The prefix, up to 10 digits (a pid fits in an i32) and the NUL.
const PID_ENTRY_LEN: usize = PID_PREFIX.len() + 11;

impl Exec {
    /// Fails on an argument or a variable with a NUL byte, which no
    /// program can be given (the config check refuses them already).
    fn prepare(
        argv: &[String],
        env: &[(OsString, OsString)],
        listen: Option<Listen<'_>>,
    ) -> io::Result<Exec> {
        let nul = |what: String| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{what} contains a NUL byte"),
            )
        };
        let program = argv.first().map(String::as_str).unwrap_or_default();
        let path_var = env
            .iter()
            .find(|(k, _)| k == "PATH")
            .map(|(_, v)| v.as_os_str());
        let mut strings: Vec<CString> = candidates(program, path_var)
            .into_iter()
            .map(|p| CString::new(p).unwrap_or_default())
            .collect();
        let mut paths: Vec<*const libc::c_char> = strings.iter().map(|c| c.as_ptr()).collect();
        paths.push(std::ptr::null());
        let args = argv
            .iter()
            .enumerate()
            .map(|(i, a)| CString::new(a.as_bytes()).map_err(|_| nul(format!("argument {i}"))))
            .collect::<io::Result<Vec<CString>>>()?;
        let mut arg_ptrs: Vec<*const libc::c_char> = args.iter().map(|c| c.as_ptr()).collect();
        arg_ptrs.push(std::ptr::null());
        let first_env = strings.len() + args.len();
        strings.extend(args);
        let skip: &[&[u8]] = match listen {
            Some(_) => &[b"LISTEN_FDS", b"LISTEN_PID", b"LISTEN_FDNAMES"],
            None => &[],
        };
        for (k, v) in env {
            if skip.contains(&k.as_bytes()) {
                continue;
            }
            let mut entry = k.as_bytes().to_vec();
            entry.push(b'=');
            entry.extend_from_slice(v.as_bytes());
            let c = CString::new(entry)
                .map_err(|_| nul(format!("variable {}", k.to_string_lossy())))?;
            strings.push(c);
        }
        let mut pid_entry = std::ptr::null_mut();
        if let Some(listen) = listen {
            strings.push(CString::new("LISTEN_FDS=1").expect("no NUL in a literal"));
            let name: String = listen
                .name
                .chars()
                .filter(|c| *c != '\0' && *c != ':')
                .collect();
            strings.push(CString::new(format!("LISTEN_FDNAMES={name}")).expect("NULs filtered"));
            let mut entry = [0u8; PID_ENTRY_LEN];
            entry[..PID_PREFIX.len()].copy_from_slice(PID_PREFIX);
            pid_entry = Box::into_raw(Box::new(entry));
        }
        let mut envp: Vec<*const libc::c_char> =
            strings[first_env..].iter().map(|c| c.as_ptr()).collect();
        if !pid_entry.is_null() {
            envp.push(pid_entry.cast_const().cast());
        }
        envp.push(std::ptr::null());
        Ok(Exec {
            _strings: strings,
            paths,
            argv: arg_ptrs,
            pid_entry,
            envp,
        })
    }

    /// What the child needs: raw pointers into this.
    fn step(&self) -> ExecStep {
        ExecStep {
            paths: self.paths.as_ptr(),
            argv: self.argv.as_ptr(),
            envp: self.envp.as_ptr(),
            pid_digits: match self.pid_entry.is_null() {
                true => std::ptr::null_mut(),
                false => self.pid_entry.cast::<u8>().wrapping_add(PID_PREFIX.len()),
            },
        }
    }
}

impl Drop for Exec {
    fn drop(&mut self) {
        if !self.pid_entry.is_null() {
            // SAFETY: from Box::into_raw in `prepare`, freed once, here.
            drop(unsafe { Box::from_raw(self.pid_entry) });
        }
    }
}

/// Raw pointers into an `Exec` the parent keeps alive until the child has
/// exec'd.
struct ExecStep {
    paths: *const *const libc::c_char,
    argv: *const *const libc::c_char,
    envp: *const *const libc::c_char,
    /// Where the digits of `LISTEN_PID=` go; null without a passed socket.
    pid_digits: *mut u8,
}

/// Everything the child does, prepared by `spawn`; the child reads it in
/// place (it shares the parent's memory) and writes only `report` and the
/// `LISTEN_PID` digits.
struct ChildPlan {
    /// Put on 0, 1 and 2: /dev/null, the stdout and stderr pipes.
    stdio: [RawFd; 3],
    /// The passed socket, put on 3 without CLOEXEC.
    listen: Option<RawFd>,
    workdir: *const libc::c_char,
    /// `cgroup.procs` files the child writes itself into.
    procs: *const *const libc::c_char,
    nprocs: usize,
    ids: Option<(u32, u32)>,
    exec: ExecStep,
    report: Report,
}

/// The step that failed in the child, its errno, and for `Step::Cgroup`
/// which file; `step` 0 while none has.
#[derive(Default)]
struct Report {
    step: AtomicU32,
    errno: AtomicI32,
    index: AtomicU32,
}

impl Report {
    fn failed(&self) -> Option<(Step, i32, usize)> {
        let step = Step::from_u32(self.step.load(Ordering::Acquire))?;
        Some((
            step,
            self.errno.load(Ordering::Relaxed),
            self.index.load(Ordering::Relaxed) as usize,
        ))
    }
}

/// The child, on its own stack in the parent's memory: raw,
/// async-signal-safe calls only, no allocation, no panic. Returns only
/// through execve or _exit.
///
/// In order: stdio on 0-2; the workdir; umask 027 (issue 8: files the app
/// creates are not world-readable); every other inherited fd marked
/// CLOEXEC and the passed socket put on 3 without it; a new session, so
/// the app and everything it forks form one process group that a stop can
/// signal as a whole and no terminal signal reaches; the dispositions of
/// the signals the server handles back at their defaults; its cgroups
/// (root's files: before the ids change); its uid and gid; then the
/// signal mask emptied (the server blocks SIGTERM/INT/HUP in every thread,
/// and the spawn blocked all of them around the clone: the mask is
/// inherited across exec) and the exec.
extern "C" fn child_main(arg: *mut c_void) -> libc::c_int {
    // SAFETY: `arg` is the `ChildPlan` `spawn` passed, alive until the
    // clone returns in the parent, which is after this process exec'd or
    // exited.
    let plan = unsafe { &*(arg as *const ChildPlan) };
    // `code`: the errno of the call that failed, taken from it, not read
    // again later (a step may fail by its own check, with errno untouched).
    let fail = |step: Step, index: usize, code: i32| -> ! {
        let r = &plan.report;
        r.errno.store(code, Ordering::Relaxed);
        r.index.store(index as u32, Ordering::Relaxed);
        r.step.store(step as u32, Ordering::Release);
        // SAFETY: _exit takes an int and does not return; nothing of the
        // parent's (buffers, destructors) runs here.
        unsafe { libc::_exit(127) }
    };
    for (to, &from) in plan.stdio.iter().enumerate() {
        // SAFETY: dup2 takes two fd numbers; every source is above 3
        // (`spawn` saw to it), so no move clobbers another's source.
        if unsafe { libc::dup2(from, to as RawFd) } == -1 {
            fail(Step::Fds, 0, errno());
        }
    }
    // SAFETY: a NUL-terminated path prepared by `spawn`.
    if unsafe { libc::chdir(plan.workdir) } == -1 {
        fail(Step::Workdir, 0, errno());
    }
    // SAFETY: umask takes a mode and cannot fail.
    unsafe { libc::umask(0o027) };
    // Marked CLOEXEC, not closed: the passed socket is among them until
    // it is on 3.
    // SAFETY: this child execs or exits next, and nothing here uses a
    // descriptor above 2 but the passed socket, which stays open.
    unsafe { crate::sys::fd::close_from(3, true) };
    if let Some(fd) = plan.listen {
        let rc = match fd {
            // SAFETY: fcntl on an fd of ours with integer arguments only;
            // dup2 onto itself would keep FD_CLOEXEC.
            LISTEN_FD => unsafe { libc::fcntl(LISTEN_FD, libc::F_SETFD, 0) },
            // SAFETY: dup2 takes two fds; the new one has no FD_CLOEXEC.
            _ => unsafe { libc::dup2(fd, LISTEN_FD) },
        };
        if rc == -1 {
            fail(Step::Fds, 0, errno());
        }
        // SAFETY: `pid_digits` is non-null with a passed socket and points
        // at the 11 bytes `Exec::prepare` left for the digits and the NUL.
        unsafe { write_pid(plan.exec.pid_digits) };
    }
    // SAFETY: setsid takes no arguments; a new child leads no group.
    if unsafe { libc::setsid() } == -1 {
        fail(Step::Setsid, 0, errno());
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
        unsafe { libc::signal(sig, libc::SIG_DFL) };
    }
    for i in 0..plan.nprocs {
        // SAFETY: `procs` has `nprocs` pointers to NUL-terminated paths.
        let path = unsafe { std::ffi::CStr::from_ptr(*plan.procs.add(i)) };
        if let Err(e) = crate::sys::write_self_into(path) {
            fail(Step::Cgroup, i, os_code(&e));
        }
    }
    if let Some((uid, gid)) = plan.ids {
        if let Err(e) = super::caps::set_ids(uid, gid) {
            fail(Step::Ids, 0, os_code(&e));
        }
    }
    crate::sys::signals::unblock_all();
    // SAFETY: the three are null-terminated arrays of NUL-terminated
    // strings, alive in the parent until this process has exec'd.
    unsafe { exec_first(&plan.exec) };
    fail(Step::ExecApp, 0, errno())
}

/// The errno an error of a step carries (EPERM for one without: a check
/// of the step's own). Building and reading an OS error allocates nothing.
fn os_code(e: &io::Error) -> i32 {
    e.raw_os_error().unwrap_or(libc::EPERM)
}

/// Tries each of `e.paths` as execvp(3) does: past a path that is
/// missing or not allowed, on to the next; any other error stops. Returns
/// (with errno set, EACCES if any path was not allowed) when none exec'd.
///
/// # Safety
/// As for execve: every pointer of `e` is a null-terminated array of
/// NUL-terminated strings.
unsafe fn exec_first(e: &ExecStep) {
    let mut denied = false;
    let mut at = e.paths;
    // SAFETY: `at` walks the array up to its null terminator.
    while let Some(path) = unsafe { at.as_ref() }.copied().filter(|p| !p.is_null()) {
        // SAFETY: the caller's promise.
        unsafe { libc::execve(path, e.argv, e.envp) };
        match errno() {
            libc::EACCES => denied = true,
            libc::ENOENT | libc::ENOTDIR | libc::ESTALE | libc::ENODEV | libc::ETIMEDOUT => {}
            _ => return,
        }
        // SAFETY: not past the terminator, which ends the loop.
        at = unsafe { at.add(1) };
    }
    if denied {
        // SAFETY: errno is thread-local and writable at any time.
        unsafe { *libc::__errno_location() = libc::EACCES };
    }
}

fn errno() -> i32 {
    // SAFETY: errno is thread-local and readable at any time.
    unsafe { *libc::__errno_location() }
}

/// Writes this process's pid as decimal digits and a NUL at `digits`.
///
/// # Safety
/// `digits` points at 11 writable bytes that nothing else reads or writes
/// meanwhile.
unsafe fn write_pid(digits: *mut u8) {
    // SAFETY: getpid has no preconditions and cannot fail.
    let mut v = unsafe { libc::getpid() }.unsigned_abs();
    let mut buf = [0u8; 10];
    let mut n = 0;
    while n < buf.len() {
        buf[n] = b'0' + (v % 10) as u8;
        n += 1;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    for i in 0..n {
        // SAFETY: i < n <= 10, inside the 11 bytes.
        unsafe { digits.add(i).write(buf[n - 1 - i]) };
    }
    // SAFETY: n <= 10, inside the 11 bytes.
    unsafe { digits.add(n).write(0) };
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
    fn an_argument_or_variable_with_a_nul_byte_fails_the_start_by_name() {
        let argv = vec!["true".to_string(), "ok".to_string(), "a\0b".to_string()];
        let err = spawn(&Request::process(&argv, Path::new("/"), &env(), None)).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("argument 2 contains a NUL byte"), "{text}");
        let argv = vec!["true".to_string()];
        let mut with_nul = env();
        with_nul.push(("BAD".into(), "x\0y".into()));
        let err = spawn(&Request::process(&argv, Path::new("/"), &with_nul, None)).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("variable BAD contains a NUL byte"), "{text}");
    }

    #[test]
    fn a_workdir_that_is_a_file_names_it() {
        let file = std::env::temp_dir().join(format!("ten-workdir-file-{}", std::process::id()));
        std::fs::write(&file, "").unwrap();
        let argv = vec!["true".to_string()];
        let err = spawn(&Request::process(&argv, &file, &env(), None)).unwrap_err();
        std::fs::remove_file(&file).unwrap();
        let text = err.to_string();
        let want = format!("workdir {} is not usable", file.display());
        assert!(text.contains(&want), "{text}");
        assert!(text.contains("Not a directory"), "{text}");
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

    /// As root: the app runs as the uid and gid asked for, every one of
    /// them (real, effective, saved), with no supplementary group. Its
    /// `python3` is looked up as execvp does, as that user: past folders
    /// of PATH it may not search (root's own, where the tests' PATH often
    /// starts) to one it may.
    #[test]
    fn a_user_drops_every_id_and_all_groups() {
        if !rustix::process::geteuid().is_root() {
            eprintln!("skip: dropping ids needs root");
            return;
        }
        let script = "import os\nprint(os.getresuid(), os.getresgid(), os.getgroups())";
        let argv = vec!["python3".to_string(), "-c".to_string(), script.to_string()];
        let mut s = super::spawn(
            &argv,
            Path::new("/"),
            &env(),
            None,
            None,
            Some((300_124, 300_125)),
        )
        .unwrap();
        assert_eq!(s.ids, (300_124, 300_125));
        let mut out = String::new();
        use std::io::Read;
        std::fs::File::from(s.stdout.take().unwrap())
            .read_to_string(&mut out)
            .unwrap();
        assert!(s.child.wait().unwrap().success());
        assert_eq!(
            out.trim(),
            "(300124, 300124, 300124) (300125, 300125, 300125) []"
        );
    }
}
