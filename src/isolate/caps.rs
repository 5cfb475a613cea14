//! Who the instance runs as: its uid and gid, a session keyring of its
//! own, and (sandbox) no capability at all. Used by `ten __init` and by
//! the `process` level's new child, single-threaded processes both, so the
//! per-thread credential calls cover the whole process.

use std::io;

/// KEYCTL_JOIN_SESSION_KEYRING (include/uapi/linux/keyctl.h).
const KEYCTL_JOIN_SESSION_KEYRING: libc::c_long = 1;

/// Leaves the server's session keyring for a new, empty, anonymous one.
/// The session keyring survives fork, exec and uid changes, and whoever
/// has it possesses its keys (reads, writes and links them whatever their
/// owner), so without this every instance would hold the server's, which
/// a service manager gives it, and whatever keys it holds. Joined while
/// still root, so it counts against root's key quota, not against a uid
/// many instances may share. A kernel without keys has nothing to leak.
///
/// Raw syscall only: also called between fork and exec.
pub fn fresh_session_keyring() -> io::Result<()> {
    // SAFETY: a null name asks for a new anonymous keyring; nothing is
    // read through it.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_keyctl,
            KEYCTL_JOIN_SESSION_KEYRING,
            std::ptr::null::<libc::c_char>(),
        )
    };
    if rc == -1 {
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::ENOSYS) {
            return Err(e);
        }
    }
    Ok(())
}

/// Joins a session keyring of its own (`fresh_session_keyring`), then sets
/// supplementary groups to none, then the gid, then the uid: in that
/// order, since setting groups and the gid needs the privilege the uid
/// change gives up. Each is checked by reading it back.
///
/// Raw syscalls, which change the calling thread only: libc's wrappers
/// would pass the change on to every thread libc knows of, which in a
/// child that shares the server's memory (`sys::vfork`) are the server's.
/// Its callers are single-threaded (`ten __init`, a new child), so the
/// calling thread is the whole process.
pub fn set_ids(uid: u32, gid: u32) -> io::Result<()> {
    fresh_session_keyring()?;
    // SAFETY: a count of 0 with a null list is how setgroups(2) clears the
    // supplementary groups; nothing is read through the pointer.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_setgroups,
            0 as libc::c_long,
            std::ptr::null::<libc::gid_t>(),
        )
    };
    if rc == -1 {
        return Err(io::Error::last_os_error());
    }
    let (uid_l, gid_l) = (uid as libc::c_long, gid as libc::c_long);
    // SAFETY: integer arguments only.
    if unsafe { libc::syscall(libc::SYS_setresgid, gid_l, gid_l, gid_l) } == -1 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: integer arguments only.
    if unsafe { libc::syscall(libc::SYS_setresuid, uid_l, uid_l, uid_l) } == -1 {
        return Err(io::Error::last_os_error());
    }
    let (mut r, mut e, mut s) = (0, 0, 0);
    // SAFETY: three valid pointers to locals.
    unsafe { libc::getresuid(&mut r, &mut e, &mut s) };
    let (mut gr, mut ge, mut gs) = (0, 0, 0);
    // SAFETY: three valid pointers to locals.
    unsafe { libc::getresgid(&mut gr, &mut ge, &mut gs) };
    // SAFETY: a size of 0 asks for the count only; the pointer is unused.
    let groups = unsafe { libc::getgroups(0, std::ptr::null_mut()) };
    if [r, e, s] != [uid; 3] || [gr, ge, gs] != [gid; 3] || groups != 0 {
        return Err(io::Error::from_raw_os_error(libc::EPERM));
    }
    Ok(())
}

/// The highest capability number this kernel knows.
fn last_cap() -> u32 {
    std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(40)
}

/// Drops every capability from the bounding set, so nothing exec'd can
/// gain one back (file capabilities, setuid-root). Needs CAP_SETPCAP:
/// call while still root.
pub fn drop_bounding_set() -> io::Result<()> {
    for cap in 0..=last_cap() {
        // SAFETY: prctl with integer arguments; EINVAL only for a number
        // the kernel does not know, which `last_cap` rules out.
        if unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong, 0, 0, 0) } == -1 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Empties the effective, permitted, inheritable and ambient sets, and
/// checks that they are empty.
pub fn clear() -> io::Result<()> {
    use rustix::thread::{capabilities, set_capabilities, CapabilitySet, CapabilitySets};
    rustix::thread::clear_ambient_capability_set()?;
    let empty = CapabilitySets {
        effective: CapabilitySet::empty(),
        permitted: CapabilitySet::empty(),
        inheritable: CapabilitySet::empty(),
    };
    set_capabilities(None, empty)?;
    let now = capabilities(None)?;
    if !now.effective.is_empty() || !now.permitted.is_empty() || !now.inheritable.is_empty() {
        return Err(io::Error::from_raw_os_error(libc::EPERM));
    }
    Ok(())
}
