//! landlock_create_ruleset(2), landlock_add_rule(2), landlock_restrict_self(2)
//! and the uapi structs they take (include/uapi/linux/landlock.h).

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

/// `struct landlock_ruleset_attr` up to ABI 6 (`scoped`). The size passed
/// to the kernel says which fields it reads, so older kernels get a
/// prefix (see `create_ruleset`).
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
pub struct RulesetAttr {
    pub handled_access_fs: u64,
    pub handled_access_net: u64,
    pub scoped: u64,
}

/// `struct landlock_path_beneath_attr` (packed in the uapi header).
#[repr(C, packed)]
#[derive(Debug, Clone, Copy)]
pub struct PathBeneathAttr {
    pub allowed_access: u64,
    pub parent_fd: i32,
}

pub const CREATE_RULESET_VERSION: u32 = 1;
pub const RULE_PATH_BENEATH: u32 = 1;

/// The ABI version the kernel implements: Err(ENOSYS) when landlock is not
/// built in, Err(EOPNOTSUPP) when it is built but not enabled at boot.
pub fn landlock_abi_version() -> io::Result<u32> {
    // SAFETY: with LANDLOCK_CREATE_RULESET_VERSION the attr pointer must be
    // null and the size 0; nothing is read or written.
    let rc = unsafe {
        libc::syscall(
            super::nr::LANDLOCK_CREATE_RULESET as libc::c_long,
            std::ptr::null::<RulesetAttr>(),
            0usize,
            CREATE_RULESET_VERSION,
        )
    };
    super::check(rc).map(|v| v as u32)
}

/// Creates a ruleset handling what `attr` lists. `size` is how many bytes
/// of `attr` the kernel reads: 8 before ABI 4, 16 before ABI 6, else 24.
pub fn landlock_create_ruleset(attr: &RulesetAttr, size: usize) -> io::Result<OwnedFd> {
    let size = size.min(std::mem::size_of::<RulesetAttr>());
    // SAFETY: `attr` is a live RulesetAttr and `size` is at most its size,
    // so the kernel reads only memory we own.
    let rc = unsafe {
        libc::syscall(
            super::nr::LANDLOCK_CREATE_RULESET as libc::c_long,
            attr as *const RulesetAttr,
            size,
            0u32,
        )
    };
    let fd = super::check(rc)?;
    // SAFETY: the kernel returned a new fd (O_CLOEXEC) that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// Allows `access` beneath the file or folder `parent` (an O_PATH fd).
pub fn landlock_add_rule(
    ruleset: BorrowedFd<'_>,
    parent: BorrowedFd<'_>,
    access: u64,
) -> io::Result<()> {
    let attr = PathBeneathAttr {
        allowed_access: access,
        parent_fd: parent.as_raw_fd(),
    };
    // SAFETY: `attr` is a live packed path_beneath_attr on this frame; both
    // fds are borrowed, so open, for the length of the call.
    let rc = unsafe {
        libc::syscall(
            super::nr::LANDLOCK_ADD_RULE as libc::c_long,
            ruleset.as_raw_fd(),
            RULE_PATH_BENEATH,
            &attr as *const PathBeneathAttr,
            0u32,
        )
    };
    super::check(rc).map(drop)
}

/// Enforces the ruleset on the calling thread (and what it execs). Needs
/// `no_new_privs` or CAP_SYS_ADMIN.
pub fn landlock_restrict_self(ruleset: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: takes an fd and a flags word, no pointers; a bad fd comes back
    // as EBADF. The borrow keeps the fd open for the length of the call.
    let rc = unsafe {
        libc::syscall(
            super::nr::LANDLOCK_RESTRICT_SELF as libc::c_long,
            ruleset.as_raw_fd(),
            0u32,
        )
    };
    super::check(rc).map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uapi_sizes() {
        assert_eq!(std::mem::size_of::<RulesetAttr>(), 24);
        assert_eq!(std::mem::size_of::<PathBeneathAttr>(), 12);
    }

    #[test]
    fn abi_version_is_a_number_or_a_named_absence() {
        match landlock_abi_version() {
            Ok(v) => assert!(v >= 1),
            Err(e) => assert!(
                matches!(
                    e.raw_os_error(),
                    Some(libc::ENOSYS) | Some(libc::EOPNOTSUPP)
                ),
                "{e}"
            ),
        }
    }
}
