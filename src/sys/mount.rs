//! mount_setattr(2), which rustix does not wrap: makes a whole mount tree
//! read-only in one call, where a remount changes only its top.

use std::ffi::CStr;
use std::io;

/// `struct mount_attr` (include/uapi/linux/mount.h).
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

pub const MOUNT_ATTR_RDONLY: u64 = 0x1;
pub const MOUNT_ATTR_NOSUID: u64 = 0x2;
pub const MOUNT_ATTR_NODEV: u64 = 0x4;

/// Sets `set` on the mount at `path` and every mount beneath it
/// (AT_RECURSIVE). Kernel 5.12+.
pub fn mount_setattr_recursive(path: &CStr, set: u64) -> io::Result<()> {
    let attr = MountAttr {
        attr_set: set,
        ..Default::default()
    };
    // SAFETY: `path` is NUL-terminated and `attr` a live mount_attr of the
    // size passed; the kernel only reads both.
    let rc = unsafe {
        libc::syscall(
            super::nr::MOUNT_SETATTR as libc::c_long,
            libc::AT_FDCWD,
            path.as_ptr(),
            libc::AT_RECURSIVE as libc::c_uint,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    super::check(rc).map(drop)
}
