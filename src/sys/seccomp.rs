//! seccomp(2) with SECCOMP_SET_MODE_FILTER.

use std::io;

/// Installs the classic BPF `program` as a seccomp filter on the calling
/// thread. Needs `no_new_privs` (or CAP_SYS_ADMIN). Filters stack and can
/// never be removed.
pub fn seccomp_set_mode_filter(program: &[libc::sock_filter]) -> io::Result<()> {
    let len =
        u16::try_from(program.len()).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    let prog = libc::sock_fprog {
        len,
        filter: program.as_ptr().cast_mut(),
    };
    // SAFETY: `prog` points at `len` sock_filter entries borrowed from
    // `program` for the length of the call; the kernel copies them and
    // never writes through the pointer.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            0u32,
            &prog as *const libc::sock_fprog,
        )
    };
    super::check(rc).map(drop)
}
