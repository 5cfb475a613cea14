//! The instance's init: pid 1 of a namespaced instance, cloned by the
//! zygote (`zygote.rs`). A fork of a single-threaded process, so unlike a
//! child of the server it may allocate and use ordinary calls. It reads its
//! plan from fd 4, sets up the instance (`setup`, one step per line),
//! reports a failed step on the status pipe (fd 5), waits for the zygote's
//! word on fd 6 (it is in all of its cgroups), then forks and execs the
//! app, reaps every zombie, forwards SIGTERM/SIGINT/SIGHUP to the app's
//! process group and exits with the app's status (128+N when a signal N
//! killed it).

use std::ffi::CString;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::FromRawFd;
use std::os::unix::ffi::OsStrExt;

use super::child::{Failure, Step, GO_FD, PLAN_FD, STATUS_FD};
use super::plan::Plan;
use super::{caps, landlock, mount, seccomp};

/// The entry point, in the zygote's child with its fds in place.
pub fn main() -> i32 {
    // SAFETY: fd 5 was put there by the zygote's child for us alone;
    // nothing else in this process owns it.
    let mut status = unsafe { File::from_raw_fd(STATUS_FD) };
    // Closed by the app's exec: EOF then tells the server it is running.
    // SAFETY: fcntl with integer arguments on our own fd.
    unsafe { libc::fcntl(STATUS_FD, libc::F_SETFD, libc::FD_CLOEXEC) };
    // SAFETY: fd 6 was put there by the zygote's child for us alone.
    let go = unsafe { File::from_raw_fd(GO_FD) };
    let plan = match read_plan() {
        Ok(p) => p,
        Err(f) => return report(&mut status, &f),
    };
    let enforced = match setup(&plan) {
        Ok(e) => e,
        Err(f) => return report(&mut status, &f),
    };
    // The app is forked only once the zygote moved us into every cgroup
    // we were not created in.
    if let Err(f) = go_on(go) {
        return report(&mut status, &f);
    }
    // To the instance's log (stderr is its pipe).
    eprintln!("ten: isolation {}", enforced.join("; "));
    run_app(&plan, status)
}

/// Reads the zygote's word on the go pipe: `GO`, or why it could not move
/// us into a cgroup.
fn go_on(mut go: File) -> Result<(), Failure> {
    let mut word = Vec::new();
    go.read_to_end(&mut word)
        .map_err(|e| fail(Step::Cgroup, e, "read the zygote's word".into()))?;
    if word == super::zygote::GO {
        return Ok(());
    }
    Err(Failure::decode(&word).unwrap_or(Failure {
        step: Step::Cgroup,
        errno: 0,
        detail: "the zygote did not say go".into(),
    }))
}

fn report(status: &mut File, f: &Failure) -> i32 {
    let _ = status.write_all(&f.encode());
    127
}

fn read_plan() -> Result<Plan, Failure> {
    // SAFETY: fd 4 is the plan pipe the zygote's child put there; we own it.
    let mut f = unsafe { File::from_raw_fd(PLAN_FD) };
    let mut buf = Vec::new();
    f.read_to_end(&mut buf)
        .map_err(|e| fail(Step::Plan, e, String::new()))?;
    serde_json::from_slice(&buf).map_err(|e| Failure {
        step: Step::Plan,
        errno: libc::EINVAL,
        detail: e.to_string(),
    })
}

fn fail(step: Step, e: io::Error, detail: String) -> Failure {
    Failure {
        step,
        errno: e.raw_os_error().unwrap_or(0),
        detail,
    }
}

/// `Err(io)` of a step -> its Failure.
fn at<T>(step: Step, r: io::Result<T>) -> Result<T, Failure> {
    r.map_err(|e| fail(step, e, String::new()))
}

/// The setup order. Returns what was enforced, for the instance's log.
fn setup(plan: &Plan) -> Result<Vec<String>, Failure> {
    let mut done = vec![format!(
        "{}: pid, mount, ipc, uts, cgroup{} namespaces",
        if plan.sandbox { "sandbox" } else { "namespace" },
        if plan.network_none { ", net" } else { "" }
    )];
    let mnt = |r: Result<(), mount::MountError>| {
        r.map_err(|e| {
            let errno = e.source.raw_os_error().unwrap_or(0);
            Failure {
                step: Step::Mounts,
                errno,
                detail: format!("{} {}", e.what, e.path.display()),
            }
        })
    };
    // First: nothing mounted below may propagate back to the host.
    mnt(mount::make_private())?;
    // While the host's paths are still plain paths: the data dir becomes
    // the instance's (0700, its uid) before it is bound in.
    own_data_dir(plan)?;
    // The new root, filled from the host's paths, becomes / and the host's
    // tree is detached.
    mnt(mount::build_root(&plan.mounts))?;
    done.push(format!("own root, hostname {}", plan.hostname));
    // Needs CAP_SYS_ADMIN in the new UTS namespace: before the uid drop.
    at(
        Step::Hostname,
        rustix::system::sethostname(plan.hostname.as_bytes()).map_err(io::Error::from),
    )?;
    // Needs CAP_NET_ADMIN in the new network namespace: before the drop.
    if plan.network_none {
        at(Step::Loopback, loopback_up())?;
        done.push("network: lo only".into());
    }
    // Abstract Unix sockets and signals stay inside the instance where the
    // kernel can scope them. Landlock takes CAP_SYS_ADMIN in place of
    // no_new_privs: before the uid drop. (The sandbox's full rule set
    // below scopes them too.)
    if !plan.sandbox {
        let scoped = landlock::scope_only().map_err(landlock_failed)?;
        done.push(landlock::describe_scope(scoped));
    }
    // Needs CAP_SETPCAP: while still root.
    if plan.sandbox {
        at(Step::Bounding, caps::drop_bounding_set())?;
    }
    // Groups, gid, uid in that order, each read back; a uid change from 0
    // empties the permitted and effective sets.
    at(Step::Ids, caps::set_ids(plan.uid, plan.gid))?;
    done.push(format!("uid {} gid {}", plan.uid, plan.gid));
    // After the mounts (their folders keep 0755); the app's files are not
    // world-readable, as at the process level.
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o027));
    // As the instance's uid, so a workdir it cannot enter fails here, by name.
    std::env::set_current_dir(&plan.workdir)
        .map_err(|e| fail(Step::Workdir, e, plan.workdir.display().to_string()))?;
    if !plan.sandbox {
        return Ok(done);
    }
    // Explicit and checked, ambient set included.
    at(Step::Caps, caps::clear())?;
    done.push("no capabilities, bounding set empty".into());
    // Landlock and seccomp need it; nothing exec'd can gain privileges.
    at(
        Step::NoNewPrivs,
        rustix::thread::set_no_new_privs(true).map_err(io::Error::from),
    )?;
    done.push("no_new_privs".into());
    // After the mounts: its rules open the final paths.
    let ll = landlock::enforce(&plan.landlock).map_err(landlock_failed)?;
    done.push(ll.to_string());
    // Last: the filter forbids the mounts above.
    at(
        Step::Seccomp,
        crate::sys::seccomp::seccomp_set_mode_filter(&seccomp::program()),
    )?;
    done.push(seccomp::summary());
    Ok(done)
}

fn landlock_failed(e: landlock::LandlockError) -> Failure {
    let errno = match &e {
        landlock::LandlockError::Call { source, .. } => source.raw_os_error().unwrap_or(0),
        landlock::LandlockError::Unavailable { .. } => 0,
    };
    Failure {
        step: Step::Landlock,
        errno,
        detail: e.to_string(),
    }
}

/// Makes the data dir 0700 and the instance's. The first time (its owner
/// differs), everything in it is handed over too: files an earlier run at
/// another level left behind.
fn own_data_dir(plan: &Plan) -> Result<(), Failure> {
    give_dir(&plan.data_dir, plan.uid, plan.gid)
        .map_err(|e| fail(Step::DataDir, e, plan.data_dir.display().to_string()))
}

/// Makes `dir` 0700 and uid:gid's, with everything in it when its owner
/// differs. Also the process level's data dir with `user`.
pub(super) fn give_dir(dir: &std::path::Path, uid: u32, gid: u32) -> io::Result<()> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let meta = std::fs::metadata(dir)?;
    if meta.uid() != uid || meta.gid() != gid {
        chown_tree(dir, uid, gid)?;
    }
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
}

fn chown_tree(path: &std::path::Path, uid: u32, gid: u32) -> io::Result<()> {
    std::os::unix::fs::lchown(path, Some(uid), Some(gid))?;
    if std::fs::symlink_metadata(path)?.is_dir() {
        for entry in std::fs::read_dir(path)? {
            chown_tree(&entry?.path(), uid, gid)?;
        }
    }
    Ok(())
}

/// `struct ifreq` with the flags member (include/uapi/linux/if.h).
#[repr(C)]
struct IfreqFlags {
    name: [u8; 16],
    flags: libc::c_short,
    _pad: [u8; 22],
}

/// Sets IFF_UP on `lo`: a new network namespace starts with it down.
fn loopback_up() -> io::Result<()> {
    use std::os::fd::{AsRawFd, OwnedFd};
    // SAFETY: socket(2) with integer arguments; the fd is owned below.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd == -1 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a fresh fd nothing else owns.
    let sock = unsafe { OwnedFd::from_raw_fd(fd) };
    let mut req = IfreqFlags {
        name: [0; 16],
        flags: 0,
        _pad: [0; 22],
    };
    req.name[..2].copy_from_slice(b"lo");
    // The request number is an unsigned long in glibc and an int in musl:
    // `libc::Ioctl` is whichever this target has.
    let (get, set) = (
        libc::SIOCGIFFLAGS as libc::Ioctl,
        libc::SIOCSIFFLAGS as libc::Ioctl,
    );
    // SAFETY: `req` is an ifreq-sized, initialised local the kernel reads
    // and writes for the length of the call.
    if unsafe { libc::ioctl(sock.as_raw_fd(), get, &mut req) } == -1 {
        return Err(io::Error::last_os_error());
    }
    req.flags |= libc::IFF_UP as libc::c_short;
    // SAFETY: as above.
    if unsafe { libc::ioctl(sock.as_raw_fd(), set, &mut req) } == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn sigset(sigs: &[i32]) -> libc::sigset_t {
    // SAFETY: sigemptyset initialises the set before sigaddset writes it.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for &s in sigs {
            libc::sigaddset(&mut set, s);
        }
        set
    }
}

const FORWARDED: [i32; 3] = [libc::SIGTERM, libc::SIGINT, libc::SIGHUP];

/// Forks and execs the app, then reaps and forwards until it exits.
fn run_app(plan: &Plan, mut status: File) -> i32 {
    let cstr = |b: &[u8]| CString::new(b).unwrap_or_default();
    let program = cstr(plan.program.as_os_str().as_bytes());
    let args: Vec<CString> = plan.argv.iter().map(|a| cstr(a.as_bytes())).collect();
    let mut argv: Vec<*const libc::c_char> = args.iter().map(|c| c.as_ptr()).collect();
    argv.push(std::ptr::null());
    let mut env: Vec<CString> = plan.env.iter().map(|e| cstr(e)).collect();
    let pid_slot = if plan.listen {
        // The app's pid in this namespace: init is 1, the app the next one
        // forked; its child writes the real value before exec anyway.
        env.push(cstr(b"LISTEN_PID=0000000000"));
        Some(env.len() - 1)
    } else {
        None
    };
    let mut envp: Vec<*const libc::c_char> = env.iter().map(|c| c.as_ptr()).collect();
    envp.push(std::ptr::null());
    // Blocked before the fork so no SIGCHLD or forwarded signal is lost;
    // taken with sigwaitinfo below.
    let set = sigset(&[libc::SIGTERM, libc::SIGINT, libc::SIGHUP, libc::SIGCHLD]);
    // SAFETY: `set` is an initialised local; old-mask pointer null.
    unsafe { libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
    // SAFETY: this process is single-threaded, so the child may do
    // anything; it only execs or exits.
    let pid = unsafe { libc::fork() };
    if pid == -1 {
        return report(
            &mut status,
            &fail(Step::Fork, io::Error::last_os_error(), String::new()),
        );
    }
    if pid == 0 {
        app_child(&program, &argv, &env, pid_slot, &envp, &mut status);
    }
    drop(status);
    loop {
        // SAFETY: `set` is initialised; a null info pointer is allowed.
        let sig = unsafe { libc::sigwaitinfo(&set, std::ptr::null_mut()) };
        if FORWARDED.contains(&sig) {
            // SAFETY: integer arguments; the app leads its own group.
            if unsafe { libc::kill(-pid, sig) } == -1 {
                // SAFETY: as above.
                unsafe { libc::kill(pid, sig) };
            }
            continue;
        }
        loop {
            let mut st = 0;
            // SAFETY: `st` is a valid out pointer.
            let reaped = unsafe { libc::waitpid(-1, &mut st, libc::WNOHANG) };
            if reaped <= 0 {
                break;
            }
            if reaped == pid {
                if libc::WIFEXITED(st) {
                    return libc::WEXITSTATUS(st);
                }
                return 128 + libc::WTERMSIG(st);
            }
        }
    }
}

/// The app's side of the fork: its own session, signals back to their
/// defaults, LISTEN_PID filled in, exec.
fn app_child(
    program: &CString,
    argv: &[*const libc::c_char],
    env: &[CString],
    pid_slot: Option<usize>,
    envp: &[*const libc::c_char],
    status: &mut File,
) -> ! {
    // SAFETY: no arguments.
    unsafe { libc::setsid() };
    let empty = sigset(&[]);
    // SAFETY: initialised local set; old-mask pointer null.
    unsafe { libc::sigprocmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut()) };
    for sig in [
        libc::SIGPIPE,
        libc::SIGTERM,
        libc::SIGINT,
        libc::SIGHUP,
        libc::SIGCHLD,
    ] {
        // SAFETY: SIG_DFL is valid for each of these catchable signals.
        unsafe { libc::signal(sig, libc::SIG_DFL) };
    }
    if let Some(i) = pid_slot {
        // SAFETY: getpid has no preconditions.
        let me = unsafe { libc::getpid() };
        let text = format!("LISTEN_PID={me}");
        let slot = env[i].as_ptr().cast_mut();
        let bytes = text.as_bytes();
        // SAFETY: the slot holds "LISTEN_PID=" plus ten digits and a NUL;
        // a pid has at most ten digits, so the write stays inside it.
        unsafe {
            std::ptr::copy_nonoverlapping(bytes.as_ptr(), slot.cast::<u8>(), bytes.len());
            *slot.add(bytes.len()) = 0;
        }
    }
    // SAFETY: NUL-terminated program, null-terminated argv/envp arrays of
    // NUL-terminated strings kept alive by the caller.
    unsafe { libc::execve(program.as_ptr(), argv.as_ptr(), envp.as_ptr()) };
    let e = io::Error::last_os_error();
    let _ = status.write_all(
        &fail(
            Step::ExecApp,
            e,
            format!("{:?}", std::ffi::OsStr::from_bytes(program.as_bytes())),
        )
        .encode(),
    );
    // SAFETY: _exit does not return.
    unsafe { libc::_exit(127) }
}
