//! Thin wrappers over the few syscalls the rest of the server needs that
//! rustix does not wrap safely. Each keeps the kernel's name.
#![deny(clippy::undocumented_unsafe_blocks)]

pub mod clone3;
pub mod fd;
pub mod landlock;
pub mod memory;
pub mod mount;
pub mod seccomp;
pub mod signals;
pub mod sock_diag;
pub mod vfork;

/// Numbers of syscalls added after the unified numbering (5.1+): the same
/// on every architecture, and missing from libc's musl tables.
pub mod nr {
    pub const IO_URING_SETUP: i64 = 425;
    pub const IO_URING_ENTER: i64 = 426;
    pub const IO_URING_REGISTER: i64 = 427;
    pub const OPEN_TREE: i64 = 428;
    pub const MOVE_MOUNT: i64 = 429;
    pub const FSOPEN: i64 = 430;
    pub const FSCONFIG: i64 = 431;
    pub const FSMOUNT: i64 = 432;
    pub const FSPICK: i64 = 433;
    pub const CLONE3: i64 = 435;
    pub const CLOSE_RANGE: i64 = 436;
    pub const OPENAT2: i64 = 437;
    pub const PIDFD_GETFD: i64 = 438;
    pub const PROCESS_MADVISE: i64 = 440;
    pub const MOUNT_SETATTR: i64 = 442;
    pub const LANDLOCK_CREATE_RULESET: i64 = 444;
    pub const LANDLOCK_ADD_RULE: i64 = 445;
    pub const LANDLOCK_RESTRICT_SELF: i64 = 446;
    pub const FCHMODAT2: i64 = 452;
}

/// `rc == -1` -> the errno, else the value.
fn check(rc: libc::c_long) -> std::io::Result<libc::c_long> {
    if rc == -1 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

/// Opens the `cgroup.procs` file at `path`, writes "0" (the calling
/// process) and closes it: raw calls only, for a child between fork and
/// exec.
pub fn write_self_into(path: &std::ffi::CStr) -> std::io::Result<()> {
    // SAFETY: `path` is NUL-terminated and borrowed for the call; open
    // only reads it.
    let fd = unsafe { libc::open(path.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC) };
    if fd == -1 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: writes one byte from a static string to the fd opened above.
    let rc = unsafe { libc::write(fd, c"0".as_ptr().cast(), 1) };
    let err = std::io::Error::last_os_error();
    // SAFETY: closes the fd opened above, once.
    unsafe { libc::close(fd) };
    if rc == -1 {
        Err(err)
    } else {
        Ok(())
    }
}
