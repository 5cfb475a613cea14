//! Descriptors across `execve`: taking back a descriptor number a previous
//! image of this process left open, replacing the image itself (both for
//! `upgrade`), and what a child leaves open for its exec (`close_from`).
//! Everything else opens descriptors through std or rustix, which own them
//! from the start.

use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

/// Takes ownership of descriptor `raw`, which a previous image of this
/// process (or this image, before a failed `execve`) left open on purpose
/// and described in the hand-over, and sets FD_CLOEXEC on it again.
/// Err(EBADF) when no such descriptor is open. The caller calls it at most
/// once per number.
pub fn adopt(raw: RawFd) -> io::Result<OwnedFd> {
    // SAFETY: F_SETFD takes an integer, no pointer; an fd that is not open
    // comes back as EBADF and nothing changes.
    let rc = unsafe { libc::fcntl(raw, libc::F_SETFD, libc::FD_CLOEXEC) };
    if rc == -1 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the fd is open (checked above) and, by the hand-over's
    // contract, owned by no other object in this process: the image that
    // wrote the hand-over released it (`into_raw_fd`) and each number is
    // adopted once, so the OwnedFd is its only owner.
    Ok(unsafe { OwnedFd::from_raw_fd(raw) })
}

/// Closes every descriptor from `first` up (`cloexec`: marks them
/// FD_CLOEXEC instead, so they close at exec), with close_range(2): a raw
/// call, for a child between clone and exec. Best effort: before 5.9
/// (5.11 for `cloexec`) it does nothing, and exec still closes the
/// descriptors marked CLOEXEC, which all of the server's are.
///
/// # Safety
/// The descriptors from `first` up may be owned by objects of this
/// process (an `OwnedFd`, a `File`, a poll's registration): closed under
/// them, their numbers could be reused and then read, written or closed
/// twice. Only a process in which nothing will use them again may call
/// this: a child between clone and exec (or `_exit`).
pub unsafe fn close_from(first: u32, cloexec: bool) {
    /// close_range(2) flag: mark CLOEXEC instead of closing.
    const CLOSE_RANGE_CLOEXEC: u32 = 1 << 2;
    let flags = if cloexec { CLOSE_RANGE_CLOEXEC } else { 0 };
    // SAFETY: integer arguments only; what it closes, the caller vouches
    // nothing uses again.
    unsafe {
        libc::syscall(
            super::nr::CLOSE_RANGE as libc::c_long,
            first,
            u32::MAX,
            flags,
        )
    };
}

/// Clears FD_CLOEXEC on descriptor `raw`, which the caller owns (it was
/// released with `into_raw_fd` into a hand-over), so it survives `execve`.
pub fn keep_across_exec(raw: RawFd) -> io::Result<()> {
    // SAFETY: F_SETFD takes an integer, no pointer; a descriptor that is
    // not open comes back as EBADF and nothing changes.
    let rc = unsafe { libc::fcntl(raw, libc::F_SETFD, 0) };
    if rc == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Replaces the process image with `path`, keeping the pid, the signal
/// mask and every descriptor without FD_CLOEXEC. Returns only on failure,
/// with the error (ENOENT, EACCES, ENOEXEC ...); the process then goes on
/// as before.
///
/// Unlike std's `Command::exec`, it does not reset the signal mask: the
/// server blocks the signals it takes with sigwait, and a SIGTERM or
/// SIGUSR2 arriving between the exec and the new image's first lines must
/// stay pending, not kill the server.
pub fn execve(path: &CStr, argv: &[CString], envp: &[CString]) -> io::Error {
    let mut args: Vec<*const libc::c_char> = argv.iter().map(|a| a.as_ptr()).collect();
    args.push(std::ptr::null());
    let mut env: Vec<*const libc::c_char> = envp.iter().map(|e| e.as_ptr()).collect();
    env.push(std::ptr::null());
    // SAFETY: `path` and every string are NUL-terminated and borrowed for
    // the call; both arrays end with a null pointer, as execve requires,
    // and live on this frame until it returns (it returns only on error).
    unsafe { libc::execve(path.as_ptr(), args.as_ptr(), env.as_ptr()) };
    io::Error::last_os_error()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::{AsRawFd, IntoRawFd};

    #[test]
    fn a_released_descriptor_is_adopted_and_a_closed_one_refused() {
        let (r, w) = rustix::pipe::pipe().expect("a pipe");
        let raw = w.into_raw_fd();
        let back = adopt(raw).expect("the fd is open");
        assert_eq!(back.as_raw_fd(), raw);
        rustix::io::write(&back, b"x").expect("write through the adopted fd");
        let mut got = [0u8; 1];
        rustix::io::read(&r, &mut got).expect("read");
        assert_eq!(&got, b"x");
        drop(back);
        let e = adopt(raw).expect_err("closed now");
        assert_eq!(e.raw_os_error(), Some(libc::EBADF));
    }

    #[test]
    fn a_failed_execve_returns_its_error() {
        let e = execve(c"/nonexistent/ten", &[CString::from(c"ten")], &[]);
        assert_eq!(e.raw_os_error(), Some(libc::ENOENT));
    }
}
