//! clone3(2): a child in new namespaces, with a pidfd, in one call.

use std::io;
use std::os::fd::{FromRawFd, OwnedFd};

/// `struct clone_args` (include/uapi/linux/sched.h), version 2 (88 bytes,
/// with `cgroup`).
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
pub struct CloneArgs {
    pub flags: u64,
    pub pidfd: u64,
    pub child_tid: u64,
    pub parent_tid: u64,
    pub exit_signal: u64,
    pub stack: u64,
    pub stack_size: u64,
    pub tls: u64,
    pub set_tid: u64,
    pub set_tid_size: u64,
    pub cgroup: u64,
}

pub const CLONE_PIDFD: u64 = 0x1000;
pub const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

/// What clone3 returned: in the parent the child's pid and pidfd, in the
/// child nothing.
#[derive(Debug)]
pub enum Forked {
    Parent { pid: i32, pidfd: Option<OwnedFd> },
    Child,
}

/// clone3 without `CLONE_VM`: like fork(2), the child runs on a copy of the
/// caller's memory and returns from this function. With `CLONE_PIDFD` in
/// `args.flags`, the parent gets the child's pidfd.
///
/// # Safety
/// In a multi-threaded caller, the child may only make async-signal-safe
/// calls (no allocation, no lock, no logging) until it execs or `_exit`s:
/// other threads' locks are copied held. The caller must not set flags
/// that share memory or a stack with the parent (`CLONE_VM`, `CLONE_VFORK`,
/// `CLONE_SETTLS`, `CLONE_PARENT_SETTID`, `CLONE_CHILD_*TID`), which would
/// make returning into Rust code in both processes unsound.
pub unsafe fn clone3(args: &mut CloneArgs) -> io::Result<Forked> {
    let mut pidfd: libc::c_int = -1;
    if args.flags & CLONE_PIDFD != 0 {
        args.pidfd = &mut pidfd as *mut libc::c_int as u64;
    }
    // SAFETY: `args` points at a live, properly sized clone_args; its
    // `pidfd` field (when used) points at the local `pidfd`, which lives
    // across the call. The caller guarantees the flags keep memory separate.
    let rc = unsafe {
        libc::syscall(
            super::nr::CLONE3 as libc::c_long,
            args as *mut CloneArgs,
            std::mem::size_of::<CloneArgs>(),
        )
    };
    let rc = super::check(rc)?;
    if rc == 0 {
        return Ok(Forked::Child);
    }
    let pidfd = if pidfd >= 0 {
        // SAFETY: the kernel just created this fd for us (CLONE_PIDFD sets
        // O_CLOEXEC); nothing else owns it.
        Some(unsafe { OwnedFd::from_raw_fd(pidfd) })
    } else {
        None
    };
    Ok(Forked::Parent {
        pid: rc as i32,
        pidfd,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clone_args_is_version_2() {
        assert_eq!(std::mem::size_of::<CloneArgs>(), 88);
    }

    #[test]
    fn clone3_gives_a_pidfd_and_the_exit_status() {
        let mut args = CloneArgs {
            flags: CLONE_PIDFD,
            exit_signal: libc::SIGCHLD as u64,
            ..Default::default()
        };
        // SAFETY: the child only calls _exit, which is async-signal-safe.
        match unsafe { clone3(&mut args) }.unwrap() {
            Forked::Child => {
                // SAFETY: _exit takes an int and does not return.
                unsafe { libc::_exit(7) }
            }
            Forked::Parent { pid, pidfd } => {
                assert!(pid > 0);
                let pidfd = pidfd.expect("CLONE_PIDFD asked");
                let status = rustix::process::waitid(
                    rustix::process::WaitId::PidFd(std::os::fd::AsFd::as_fd(&pidfd)),
                    rustix::process::WaitIdOptions::EXITED,
                )
                .unwrap()
                .unwrap();
                assert_eq!(status.exit_status(), Some(7));
            }
        }
    }
}
