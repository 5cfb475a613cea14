//! The zygote: `ten __zygote`, a small single-threaded process the server
//! starts (its own binary re-executed, once) the first time a namespaced
//! instance starts, and keeps. Every namespaced start asks it over a
//! socket pair for an init: it clones one into new pid, mount, IPC, UTS and
//! cgroup namespaces (clone3 with `CLONE_PARENT`, so the init is the
//! server's child, and `CLONE_INTO_CGROUP`), and that child runs
//! `init::main` at once. A fork of a small single-threaded process may
//! allocate and run any code, so no exec, dynamic loader or runtime start-up
//! lies between the request and the init's first mount, and nothing of the
//! server's memory is copied.
//!
//! While the init builds its root, the zygote moves it into the cgroups it
//! could not be created in (v1 hierarchies; a v2 one on kernels without
//! `CLONE_INTO_CGROUP`), then tells it to go on (or why it could not):
//! the init forks the app only after that, so all of the app runs inside
//! its limits. A move waits for the kernel's cgroup lock (an RCU grace
//! period on hosts without `favordynmods`), which then overlaps the mounts
//! instead of preceding them.
//!
//! The zygote exits when the server's end of the socket closes (the server
//! exited or re-executed itself for an upgrade). A zygote that died is
//! started again by the next request.

use std::ffi::CString;
use std::io::{self, Write};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use rustix::net::{
    RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, SendAncillaryBuffer,
    SendAncillaryMessage, SendFlags,
};

use super::child::{Cgroups, Failure, LaunchError, Step, GO_FD, PLAN_FD, STATUS_FD};
use crate::sys::clone3::{clone3, CloneArgs, Forked, CLONE_INTO_CGROUP, CLONE_PIDFD};

/// Where the zygote finds its socket.
const SOCKET_FD: RawFd = 3;

/// The most fds one request carries: stdin, stdout, stderr, the passed
/// socket, the plan and status pipes, the v2 cgroup folder.
const MAX_FDS: usize = 7;

/// What the init reads on its go pipe when it is in all of its cgroups
/// (else an encoded `Failure`).
pub const GO: &[u8] = b"go";

/// A request's flags (its first byte).
const NET: u8 = 1;
const LISTEN: u8 = 2;
const INTO: u8 = 4;

/// The descriptors one init gets, each put at its number (0, 1, 2,
/// `LISTEN_FD`, `PLAN_FD`, `STATUS_FD`).
#[derive(Debug, Clone, Copy)]
pub struct InitFds<'a> {
    pub stdin: BorrowedFd<'a>,
    pub stdout: BorrowedFd<'a>,
    pub stderr: BorrowedFd<'a>,
    pub listen: Option<BorrowedFd<'a>>,
    pub plan: BorrowedFd<'a>,
    pub status: BorrowedFd<'a>,
}

/// One init to clone.
#[derive(Debug, Clone, Copy)]
pub struct Ask<'a> {
    /// Also a new network namespace.
    pub network_none: bool,
    pub fds: InitFds<'a>,
    pub cgroups: Cgroups<'a>,
}

/// A running zygote and the binary it runs.
#[derive(Debug)]
struct Zygote {
    exe: PathBuf,
    /// Its pidfd: safe to signal even after the server's orphan reaper
    /// collected it.
    pidfd: OwnedFd,
    sock: OwnedFd,
}

/// One zygote per binary (the server's own, or the one a test names).
static ZYGOTES: Mutex<Vec<Zygote>> = Mutex::new(Vec::new());

/// Asks the zygote running `exe` (started first when there is none, or
/// when the one there died) to clone an init for `ask`. The init gets
/// duplicates of `ask`'s fds; the caller closes its own and waits on the
/// status pipe, then takes the init's pid from the `Pending` (the reply
/// waits in the socket meanwhile, so the caller sleeps once, not twice).
pub fn clone_init(exe: &Path, ask: &Ask<'_>) -> Result<Pending, LaunchError> {
    let (flags, payload) = encode(ask);
    let mut fds: Vec<BorrowedFd<'_>> = vec![ask.fds.stdin, ask.fds.stdout, ask.fds.stderr];
    fds.extend(ask.fds.listen);
    fds.extend([ask.fds.plan, ask.fds.status]);
    fds.extend(ask.cgroups.into);
    let mut message = vec![flags];
    message.extend_from_slice(&payload);

    // Held until the reply is read: replies come in the order of requests.
    let mut all = ZYGOTES.lock().unwrap_or_else(|e| e.into_inner());
    // A zygote that died (killed, or its socket lost) fails the send
    // before anything is cloned: start another and ask once more.
    for attempt in 0..2 {
        let at = match all.iter().position(|z| z.exe == exe) {
            Some(i) => i,
            None => {
                all.push(start(exe)?);
                all.len() - 1
            }
        };
        match all[at].send(&message, &fds) {
            Ok(()) => return Ok(Pending { all, at }),
            Err(source) => {
                all.swap_remove(at).bury();
                if attempt == 1 {
                    return Err(LaunchError::Call {
                        call: "ask the zygote (ten __zygote) for an init",
                        source,
                    });
                }
            }
        }
    }
    unreachable!("the loop returns on its second attempt")
}

/// Kills the zygote running `exe` and waits until it is dead (not reaped:
/// the next request finds its socket closed). Returns its pid.
#[cfg(test)]
pub fn kill(exe: &Path) -> Option<u32> {
    use rustix::process::{WaitId, WaitIdOptions};
    let all = ZYGOTES.lock().unwrap_or_else(|e| e.into_inner());
    let z = all.iter().find(|z| z.exe == exe)?;
    let info =
        std::fs::read_to_string(format!("/proc/self/fdinfo/{}", z.pidfd.as_raw_fd())).ok()?;
    let pid = info
        .lines()
        .find_map(|l| l.strip_prefix("Pid:"))?
        .trim()
        .parse()
        .ok()?;
    rustix::process::pidfd_send_signal(&z.pidfd, rustix::process::Signal::KILL).ok()?;
    rustix::process::waitid(
        WaitId::PidFd(z.pidfd.as_fd()),
        WaitIdOptions::EXITED | WaitIdOptions::NOWAIT,
    )
    .ok()?;
    Some(pid)
}

/// A request sent, its reply not read yet.
pub struct Pending {
    all: MutexGuard<'static, Vec<Zygote>>,
    at: usize,
}

impl Pending {
    /// The init's pid (in the caller's pid namespace; the caller's child),
    /// or why there is none.
    pub fn pid(mut self) -> Result<u32, LaunchError> {
        match self.all[self.at].reply() {
            Ok(pid) if pid > 0 => Ok(pid as u32),
            Ok(errno) => Err(LaunchError::Call {
                call: "clone3",
                source: io::Error::from_raw_os_error(-errno),
            }),
            Err(source) => {
                self.all.swap_remove(self.at).bury();
                Err(LaunchError::Call {
                    call: "the zygote (ten __zygote) died before it answered",
                    source,
                })
            }
        }
    }
}

/// The request's flags and the `cgroup.procs` paths the zygote moves the
/// init into, each ending in a NUL.
fn encode(ask: &Ask<'_>) -> (u8, Vec<u8>) {
    let mut flags = 0;
    if ask.network_none {
        flags |= NET;
    }
    if ask.fds.listen.is_some() {
        flags |= LISTEN;
    }
    if ask.cgroups.into.is_some() {
        flags |= INTO;
    }
    let mut paths = Vec::new();
    for p in ask.cgroups.procs {
        paths.extend_from_slice(p.as_bytes_with_nul());
    }
    (flags, paths)
}

impl Zygote {
    /// Sends one request. Err: the zygote is gone.
    fn send(&self, message: &[u8], fds: &[BorrowedFd<'_>]) -> io::Result<()> {
        let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(MAX_FDS))];
        let mut control = SendAncillaryBuffer::new(&mut space);
        if !control.push(SendAncillaryMessage::ScmRights(fds)) {
            return Err(io::Error::from_raw_os_error(libc::EMSGSIZE));
        }
        rustix::net::sendmsg(
            &self.sock,
            &[io::IoSlice::new(message)],
            &mut control,
            SendFlags::NOSIGNAL,
        )?;
        Ok(())
    }

    /// Reads the reply to the request before: the init's pid, or -errno
    /// when the zygote could not clone it. Err: the zygote is gone.
    fn reply(&self) -> io::Result<i32> {
        let mut reply = [0u8; 4];
        let n = loop {
            match rustix::net::recv(&self.sock, &mut reply, RecvFlags::empty()) {
                Err(rustix::io::Errno::INTR) => continue,
                r => break r?.0,
            }
        };
        if n != reply.len() {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the zygote closed its socket",
            ));
        }
        Ok(i32::from_le_bytes(reply))
    }

    /// Lets a zygote that failed a request go: killed (it may hang) and
    /// reaped when it already died; otherwise the server's orphan reaper
    /// collects it.
    fn bury(self) {
        use rustix::process::{WaitId, WaitIdOptions};
        let _ = rustix::process::pidfd_send_signal(&self.pidfd, rustix::process::Signal::KILL);
        let _ = rustix::process::waitid(
            WaitId::PidFd(self.pidfd.as_fd()),
            WaitIdOptions::EXITED | WaitIdOptions::NOHANG,
        );
    }
}

fn call(call: &'static str) -> impl FnOnce(io::Error) -> LaunchError {
    move |source| LaunchError::Call { call, source }
}

/// Everything the zygote's starter touches after clone3, built before it.
struct Raw {
    exe: CString,
    argv: [*const libc::c_char; 3],
    envp: [*const libc::c_char; 1],
    /// (from, to): every `from` >= 10, so no move clobbers another's source.
    moves: [(RawFd, RawFd); 5],
    status: RawFd,
}

/// Starts `exe __zygote` with the socket on fd 3 and /dev/null on 0-2, in
/// a session of its own (a terminal's Ctrl-C is not for it), and returns
/// once it was exec'd.
fn start(exe: &Path) -> Result<Zygote, LaunchError> {
    use rustix::net::{AddressFamily, SocketFlags, SocketType};
    let (ours, theirs) = rustix::net::socketpair(
        AddressFamily::UNIX,
        SocketType::SEQPACKET,
        SocketFlags::CLOEXEC,
        None,
    )
    .map_err(|e| LaunchError::Call {
        call: "socketpair",
        source: e.into(),
    })?;
    let null = std::fs::File::open("/dev/null").map_err(call("open /dev/null"))?;
    let (st_r, st_w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).map_err(|e| {
        LaunchError::Call {
            call: "pipe2",
            source: e.into(),
        }
    })?;
    let high = |fd: BorrowedFd<'_>| {
        rustix::io::fcntl_dupfd_cloexec(fd, 10).map_err(|e| LaunchError::Call {
            call: "dup",
            source: e.into(),
        })
    };
    let (null_h, sock_h, st_h) = (
        high(null.as_fd())?,
        high(theirs.as_fd())?,
        high(st_w.as_fd())?,
    );
    let exe_c = CString::new(exe.as_os_str().as_bytes()).map_err(|_| LaunchError::Call {
        call: "exe path",
        source: io::Error::from_raw_os_error(libc::EINVAL),
    })?;
    let raw = Raw {
        argv: [c"ten".as_ptr(), c"__zygote".as_ptr(), std::ptr::null()],
        envp: [std::ptr::null()],
        exe: exe_c,
        moves: [
            (null_h.as_raw_fd(), 0),
            (null_h.as_raw_fd(), 1),
            (null_h.as_raw_fd(), 2),
            (sock_h.as_raw_fd(), SOCKET_FD),
            (st_h.as_raw_fd(), 4),
        ],
        status: st_h.as_raw_fd(),
    };
    let mut args = CloneArgs {
        flags: CLONE_PIDFD,
        exit_signal: libc::SIGCHLD as u64,
        ..Default::default()
    };
    // SAFETY: no memory-sharing flag is set; the child runs only
    // `starter`, which makes raw async-signal-safe syscalls over `raw`
    // (built above, alive in the child's copy) and never returns.
    let forked = unsafe { clone3(&mut args) }.map_err(call("clone3"))?;
    let pidfd = match forked {
        Forked::Child => starter(&raw),
        Forked::Parent { pidfd, .. } => pidfd.ok_or(LaunchError::Call {
            call: "clone3",
            source: io::Error::from_raw_os_error(libc::EBADF),
        })?,
    };
    drop((null_h, sock_h, st_h, null, theirs, st_w));
    let mut status = Vec::new();
    let read = std::io::Read::read_to_end(&mut std::fs::File::from(st_r), &mut status);
    if read.is_ok() && status.is_empty() {
        return Ok(Zygote {
            exe: exe.to_path_buf(),
            pidfd,
            sock: ours,
        });
    }
    let _ = rustix::process::waitid(
        rustix::process::WaitId::PidFd(pidfd.as_fd()),
        rustix::process::WaitIdOptions::EXITED,
    );
    Err(match read {
        Err(source) => LaunchError::Call {
            call: "read the zygote's status pipe",
            source,
        },
        Ok(_) => LaunchError::Step(Failure::decode(&status).unwrap_or(Failure {
            step: Step::Zygote,
            errno: 0,
            detail: "garbled status from the zygote's starter".to_string(),
        })),
    })
}

/// The zygote's starter after clone3: a new session, a clean signal mask,
/// fds 0-4 in place and nothing else open, then exec `ten __zygote`. A
/// failure goes to the status pipe as (step, errno).
///
/// Runs after clone3 in a copy of the multi-threaded server:
/// async-signal-safe calls only.
fn starter(raw: &Raw) -> ! {
    let fail = |fd: RawFd, step: Step| -> ! {
        // SAFETY: errno is thread-local and readable at any time.
        let errno = unsafe { *libc::__errno_location() };
        let mut b = [0u8; 8];
        b[..4].copy_from_slice(&(step as u32).to_le_bytes());
        b[4..].copy_from_slice(&errno.to_le_bytes());
        // SAFETY: writes 8 bytes from a local buffer; a failed write
        // changes nothing we could act on.
        unsafe { libc::write(fd, b.as_ptr().cast(), b.len()) };
        // SAFETY: _exit takes an int and does not return.
        unsafe { libc::_exit(127) }
    };
    // SAFETY: no arguments; a fresh clone3 child never leads a group.
    if unsafe { libc::setsid() } == -1 {
        fail(raw.status, Step::Setsid);
    }
    crate::sys::signals::unblock_all();
    for &(from, to) in &raw.moves {
        // SAFETY: dup2 takes two fd numbers; `to` loses FD_CLOEXEC.
        if unsafe { libc::dup2(from, to) } == -1 {
            fail(raw.status, Step::Fds);
        }
    }
    // SAFETY: fcntl with integer arguments: the status pipe (now fd 4)
    // closes at exec, which is how the server learns it happened.
    unsafe { libc::fcntl(4, libc::F_SETFD, libc::FD_CLOEXEC) };
    // SAFETY: the starter execs or exits next and uses no descriptor
    // above 4; the server's objects that owned the others are not this
    // process's any more (a clone about to exec).
    unsafe { crate::sys::fd::close_from(5, false) };
    // SAFETY: `exe` is NUL-terminated, `argv` and `envp` are
    // null-terminated arrays of NUL-terminated strings, all in this
    // process's copy of memory prepared before clone3.
    unsafe { libc::execve(raw.exe.as_ptr(), raw.argv.as_ptr(), raw.envp.as_ptr()) };
    fail(4, Step::Zygote)
}

// ---- inside the zygote ----------------------------------------------------

/// The entry point, from `cli::run` when argv[1] is `__zygote`: serves
/// requests until the server's end of the socket closes.
pub fn main() -> i32 {
    // SAFETY: fd 3 is the socket the starter put there for this process
    // alone; nothing else owns it.
    let sock = unsafe { OwnedFd::from_raw_fd(SOCKET_FD) };
    let _ = std::env::set_current_dir("/");
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(MAX_FDS))];
        let mut control = RecvAncillaryBuffer::new(&mut space);
        let got = match rustix::net::recvmsg(
            &sock,
            &mut [io::IoSliceMut::new(&mut buf)],
            &mut control,
            RecvFlags::CMSG_CLOEXEC,
        ) {
            Ok(m) => m.bytes,
            Err(rustix::io::Errno::INTR) => continue,
            Err(_) => return 1,
        };
        let mut fds: Vec<OwnedFd> = Vec::new();
        for m in control.drain() {
            if let RecvAncillaryMessage::ScmRights(received) = m {
                fds.extend(received);
            }
        }
        if got == 0 {
            // EOF: the server is gone.
            return 0;
        }
        let reply = serve(&buf[..got], fds, &sock);
        if let Some(r) = reply {
            if rustix::net::send(&sock, &r.to_le_bytes(), SendFlags::NOSIGNAL).is_err() {
                return 1;
            }
        }
    }
}

/// Carries out one request. Returns the reply when it is not sent yet
/// (-errno: the request was refused or clone3 failed).
fn serve(message: &[u8], fds: Vec<OwnedFd>, sock: &OwnedFd) -> Option<i32> {
    let Some((&flags, paths)) = message.split_first() else {
        return Some(-libc::EINVAL);
    };
    let want = 5 + usize::from(flags & LISTEN != 0) + usize::from(flags & INTO != 0);
    if fds.len() != want {
        return Some(-libc::EINVAL);
    }
    // Every source above 10, so putting them at 0..=6 clobbers none.
    let mut high = Vec::with_capacity(fds.len());
    for fd in &fds {
        match rustix::io::fcntl_dupfd_cloexec(fd, 10) {
            Ok(h) => high.push(h),
            Err(e) => return Some(-e.raw_os_error()),
        }
    }
    drop(fds);
    let into = if flags & INTO != 0 { high.pop() } else { None };
    let (go_r, go_w) =
        match rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).and_then(|(r, w)| {
            Ok((
                rustix::io::fcntl_dupfd_cloexec(&r, 10)?,
                rustix::io::fcntl_dupfd_cloexec(&w, 10)?,
            ))
        }) {
            Ok(p) => p,
            Err(e) => return Some(-e.raw_os_error()),
        };
    // At their numbers: 0, 1, 2, [LISTEN_FD], PLAN_FD, STATUS_FD, GO_FD.
    let mut targets: Vec<RawFd> = vec![0, 1, 2];
    if flags & LISTEN != 0 {
        targets.push(super::spawn::LISTEN_FD);
    }
    targets.extend([PLAN_FD, STATUS_FD]);
    let mut moves: Vec<(RawFd, RawFd)> = high
        .iter()
        .map(|f| f.as_raw_fd())
        .zip(targets.iter().copied())
        .collect();
    moves.push((go_r.as_raw_fd(), GO_FD));
    let status = high.last().map(|f| f.as_raw_fd()).unwrap_or(-1);
    // What the init must not keep: all of the above once moved, the go
    // pipe's write end (or the EOF that stands for "no go" never comes),
    // the cgroup folder, and the zygote's socket unless fd 3 was replaced.
    let mut close: Vec<RawFd> = moves.iter().map(|m| m.0).collect();
    close.push(go_w.as_raw_fd());
    close.extend(into.as_ref().map(|d| d.as_raw_fd()));
    if flags & LISTEN == 0 {
        close.push(SOCKET_FD);
    }

    let mut cflags = (libc::CLONE_NEWPID
        | libc::CLONE_NEWNS
        | libc::CLONE_NEWIPC
        | libc::CLONE_NEWUTS
        | libc::CLONE_NEWCGROUP
        | libc::CLONE_PARENT) as u64;
    if flags & NET != 0 {
        cflags |= libc::CLONE_NEWNET as u64;
    }
    // With CLONE_PARENT the init is the server's child and signals it with
    // the zygote's own exit signal (SIGCHLD); clone3 wants 0 here.
    let mut args = CloneArgs {
        flags: cflags,
        ..Default::default()
    };
    if let Some(dir) = &into {
        args.flags |= CLONE_INTO_CGROUP;
        args.cgroup = dir.as_raw_fd() as u64;
    }
    // SAFETY: the zygote is single-threaded and no memory-sharing flag is
    // set, so the child is an ordinary fork: `init_child` may run any code.
    let pid = match unsafe { clone3(&mut args) } {
        Ok(Forked::Child) => init_child(&moves, &close, status),
        Ok(Forked::Parent { pid, .. }) => pid,
        Err(e) => return Some(-e.raw_os_error().unwrap_or(libc::EIO)),
    };
    // Only the init holds its fds now: the server's EOF on the status pipe
    // waits for nothing of ours.
    drop((go_r, high, into));
    // The server writes the plan and waits on the status pipe meanwhile.
    if rustix::net::send(sock, &pid.to_le_bytes(), SendFlags::NOSIGNAL).is_err() {
        return None;
    }
    let mut word: Vec<u8> = GO.to_vec();
    for path in paths.split(|&b| b == 0).filter(|p| !p.is_empty()) {
        let path = Path::new(std::ffi::OsStr::from_bytes(path));
        if let Err(e) = move_into(path, pid) {
            // Instead of the go byte: why not, for the init to report.
            word = Failure {
                step: Step::Cgroup,
                errno: e.raw_os_error().unwrap_or(0),
                detail: path.display().to_string(),
            }
            .encode();
            break;
        }
    }
    let _ = rustix::io::write(&go_w, &word);
    None
}

/// Writes `pid` to the `cgroup.procs` file at `path`.
fn move_into(path: &Path, pid: i32) -> io::Result<()> {
    let mut f = std::fs::OpenOptions::new().write(true).open(path)?;
    f.write_all(pid.to_string().as_bytes())
}

/// Makes the init's command line read `ten __init` for `ps` (as the
/// zygote's fork it read `ten __zygote`): the argument area the kernel
/// shows (fields 48 and 49 of /proc/self/stat) is rewritten in place, the
/// rest of it zeroed. Best effort.
fn name_init() {
    const NAME: &[u8] = b"ten\0__init\0";
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return;
    };
    // Counted from the last `)`: field 3 is the first after it.
    let Some(rest) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
        return;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let (Some(Ok(start)), Some(Ok(end))) = (
        fields.get(48 - 3).map(|f| f.parse::<usize>()),
        fields.get(49 - 3).map(|f| f.parse::<usize>()),
    ) else {
        return;
    };
    if start == 0 || end < start + NAME.len() {
        return;
    }
    // SAFETY: [start, end) is this process's argument area as the kernel
    // reports it: mapped, writable memory at the top of the main stack
    // that no Rust object refers to (the arguments were copied out when
    // the zygote started, and nothing here reads them again).
    unsafe {
        let area = start as *mut u8;
        std::ptr::copy_nonoverlapping(NAME.as_ptr(), area, NAME.len());
        std::ptr::write_bytes(area.add(NAME.len()), 0, end - start - NAME.len());
    }
}

/// The init's side of the clone: its own session, its fds at their numbers
/// and nothing else open, then `init::main`. Setup failures before init
/// runs go to the status pipe.
fn init_child(moves: &[(RawFd, RawFd)], close: &[RawFd], status: RawFd) -> ! {
    let fail = |step: Step, e: io::Error| -> ! {
        let f = Failure {
            step,
            errno: e.raw_os_error().unwrap_or(0),
            detail: String::new(),
        };
        // SAFETY: `status` is the status pipe's descriptor, open in this
        // process until `close` below; the borrow ends with the write.
        let st = unsafe { BorrowedFd::borrow_raw(status) };
        let _ = rustix::io::write(st, &f.encode());
        // SAFETY: _exit takes an int and does not return.
        unsafe { libc::_exit(127) }
    };
    if let Err(e) = rustix::process::setsid() {
        fail(Step::Setsid, e.into());
    }
    for &(from, to) in moves {
        // SAFETY: dup2 takes two fd numbers; every `from` is >= 10 and every
        // `to` <= GO_FD, so no move closes another's source.
        if unsafe { libc::dup2(from, to) } == -1 {
            fail(Step::Fds, io::Error::last_os_error());
        }
    }
    for &fd in close {
        // SAFETY: each is a descriptor of this process that nothing here
        // uses again (the sources were copied to their numbers above).
        unsafe { libc::close(fd) };
    }
    // Anything else the zygote had open (nothing, normally). Before 5.9:
    // what is listed above is closed already.
    // SAFETY: the init uses no descriptor above GO_FD, and this forked
    // copy of the zygote never returns to the code whose objects owned
    // them (it ends in `_exit` below).
    unsafe { crate::sys::fd::close_from(GO_FD as u32 + 1, false) };
    name_init();
    let code = super::init::main();
    // SAFETY: _exit takes an int and does not return; nothing of the
    // zygote's (buffers, destructors) runs in this process.
    unsafe { libc::_exit(code) }
}
