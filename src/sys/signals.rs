//! Process-wide signal handling for `ten serve`: block SIGTERM, SIGINT,
//! SIGHUP and SIGUSR2 in every thread, then take them synchronously with sigwait on the
//! main thread. Children inherit the blocked mask, so the spawn path unblocks
//! everything before exec (see `isolate`); around the start of a child that
//! shares our memory, every signal is blocked (`AllBlocked`).

use std::io;

/// The signals `ten serve` reacts to.
pub const HANDLED: [i32; 4] = [libc::SIGTERM, libc::SIGINT, libc::SIGHUP, libc::SIGUSR2];

fn handled_set() -> libc::sigset_t {
    // SAFETY: sigset_t is a plain bit array; sigemptyset initialises it fully
    // before sigaddset reads it. Both only write the set we own here.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for sig in HANDLED {
            libc::sigaddset(&mut set, sig);
        }
        set
    }
}

/// Blocks the handled signals in the calling thread. Call on the main thread
/// before any other thread starts, so every thread inherits the mask.
pub fn pthread_sigmask_block() -> io::Result<()> {
    let set = handled_set();
    // SAFETY: `set` is an initialised sigset_t living on this stack frame for
    // the whole call; the old-mask pointer is null, which the call allows.
    let rc = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
    if rc != 0 {
        return Err(io::Error::from_raw_os_error(rc));
    }
    Ok(())
}

/// Waits for one of the handled signals and returns its number. Blocks.
pub fn sigwait() -> io::Result<i32> {
    let set = handled_set();
    let mut sig: libc::c_int = 0;
    // SAFETY: both pointers are to initialised locals valid for the call.
    let rc = unsafe { libc::sigwait(&set, &mut sig) };
    if rc != 0 {
        return Err(io::Error::from_raw_os_error(rc));
    }
    Ok(sig)
}

/// Unblocks every signal in the calling process (the mask survives exec,
/// and the server blocks the ones it waits for in every thread): raw,
/// async-signal-safe, for a child before its exec.
pub fn unblock_all() {
    // SAFETY: `set` is a local sigset_t initialised by sigemptyset before
    // sigprocmask reads it; the old-mask pointer may be null.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
    }
}

/// Every signal blocked in the calling thread until this is dropped, when
/// the thread's mask before it comes back: a child that shares the
/// server's memory until it execs (`sys::vfork`) starts with them all
/// blocked, so no handler of the server runs on its stack.
pub struct AllBlocked(libc::sigset_t);

impl AllBlocked {
    pub fn new() -> io::Result<AllBlocked> {
        // SAFETY: `all` is initialised by sigfillset before pthread_sigmask
        // reads it, and `old` is a valid out pointer; both live on this
        // frame for the calls.
        unsafe {
            let mut all: libc::sigset_t = std::mem::zeroed();
            let mut old: libc::sigset_t = std::mem::zeroed();
            libc::sigfillset(&mut all);
            let rc = libc::pthread_sigmask(libc::SIG_SETMASK, &all, &mut old);
            if rc != 0 {
                return Err(io::Error::from_raw_os_error(rc));
            }
            Ok(AllBlocked(old))
        }
    }
}

impl Drop for AllBlocked {
    fn drop(&mut self) {
        // SAFETY: the mask pthread_sigmask returned in `new`, read only;
        // the old-mask pointer may be null.
        unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &self.0, std::ptr::null_mut()) };
    }
}
