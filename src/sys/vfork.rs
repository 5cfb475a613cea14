//! A child that shares our memory until it execs: clone with `CLONE_VM |
//! CLONE_VFORK` on a stack of its own (`Stack`), as posix_spawn does.
//! Nothing of the server's address space is copied (a fork of the server
//! copies its page tables and then takes a fault for every page either side
//! writes), and the calling thread sleeps until the child has exec'd or
//! exited, so whatever the child wrote into memory the caller prepared is
//! there to read when this returns. With a cgroup folder, the child is
//! created inside it (clone3 with `CLONE_INTO_CGROUP`, x86_64 only: other
//! architectures say so through `INTO_CGROUP` and the caller moves the
//! child in another way).

use std::ffi::c_void;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

use super::clone3::{CloneArgs, CLONE_INTO_CGROUP};

/// Whether `run` can create the child inside a cgroup.
pub const INTO_CGROUP: bool = cfg!(target_arch = "x86_64");

/// The child's stack: anonymous memory with an inaccessible page below it,
/// so an overflow faults instead of writing over whatever lies there.
pub struct Stack {
    base: *mut c_void,
    len: usize,
}

/// One page of guard below the stack.
const GUARD: usize = 4096;

impl Stack {
    /// `size` bytes of stack (a multiple of the page size) and the guard.
    pub fn new(size: usize) -> io::Result<Stack> {
        let len = size + GUARD;
        // SAFETY: an anonymous private mapping at an address the kernel
        // picks; no pointer is read. The result is checked below.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_STACK,
                -1,
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let stack = Stack { base, len };
        // SAFETY: the lowest page of the mapping made above, ours alone.
        if unsafe { libc::mprotect(base, GUARD, libc::PROT_NONE) } == -1 {
            return Err(io::Error::last_os_error());
        }
        Ok(stack)
    }

    /// The lowest usable address (above the guard).
    fn low(&self) -> *mut c_void {
        self.base.cast::<u8>().wrapping_add(GUARD).cast()
    }

    /// One past the highest address: where a downward-growing stack starts
    /// (page-aligned, so 16-byte aligned as both ABIs want).
    fn top(&self) -> *mut c_void {
        self.base.cast::<u8>().wrapping_add(self.len).cast()
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `new`, unmapped once; no child runs
        // on it any more (`run` returns after the child exec'd or exited).
        unsafe { libc::munmap(self.base, self.len) };
    }
}

/// The function the child runs, with the argument given to `run`.
pub type Entry = extern "C" fn(*mut c_void) -> libc::c_int;

/// Starts a child running `entry(arg)` on `stack`, sharing this process's
/// memory (its own descriptor table, cwd, umask and signal dispositions,
/// as after fork), created inside the cgroup folder `into` when given
/// (`INTO_CGROUP` must hold). Returns its pid once it has exec'd or exited;
/// SIGCHLD tells its parent when it ends, as for a forked child.
///
/// # Safety
/// `entry` runs on `stack` in a process that shares this one's memory
/// while the other threads of this process keep running: it may make only
/// raw, async-signal-safe calls (no allocation, no lock, nothing that
/// touches libc's thread list, such as its set*id wrappers), must not
/// unwind, and must end in execve or `_exit`. Every signal should be
/// blocked around the call, so that no handler of this process runs on
/// the child's stack. `arg` must stay valid until this returns.
pub unsafe fn run(
    stack: &mut Stack,
    into: Option<BorrowedFd<'_>>,
    entry: Entry,
    arg: *mut c_void,
) -> io::Result<u32> {
    let rc: libc::c_long = match into {
        Some(dir) => {
            let mut args = CloneArgs {
                flags: (libc::CLONE_VM | libc::CLONE_VFORK) as u64 | CLONE_INTO_CGROUP,
                exit_signal: libc::SIGCHLD as u64,
                stack: stack.low() as u64,
                stack_size: (stack.top() as usize - stack.low() as usize) as u64,
                cgroup: dir.as_raw_fd() as u64,
                ..Default::default()
            };
            // SAFETY: `args` describes `stack`, which lives across the call;
            // the caller vouches for `entry` and `arg`.
            unsafe { clone3_on_stack(&mut args, entry, arg)? }
        }
        // SAFETY: libc's clone switches to the stack and calls `entry`
        // there; the flags share memory only with a parent that sleeps
        // until the child execs or exits (CLONE_VFORK).
        None => unsafe {
            libc::clone(
                entry,
                stack.top(),
                libc::CLONE_VM | libc::CLONE_VFORK | libc::SIGCHLD,
                arg,
            )
        }
        .into(),
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(rc as u32)
}

/// clone3 whose child starts on `args.stack` by calling `entry(arg)` (the
/// kernel returns into the child with the stack pointer at the top of its
/// new stack, where no Rust frame of ours could run).
#[cfg(target_arch = "x86_64")]
unsafe fn clone3_on_stack(
    args: &mut CloneArgs,
    entry: Entry,
    arg: *mut c_void,
) -> io::Result<libc::c_long> {
    let rc: libc::c_long;
    // SAFETY: the syscall instruction clobbers rax (the result), rcx and
    // r11, all declared; r12 and r13 survive it in both processes. In the
    // parent the block falls through to label 2 with the stack untouched.
    // The child (rax == 0) runs on its own stack, aligned to 16 bytes
    // before the call as the ABI wants, and never comes back into the
    // parent's code: `entry` ends in execve or _exit, and should it return,
    // the child exits with its value.
    unsafe {
        std::arch::asm!(
            "syscall",
            "test rax, rax",
            "jnz 2f",
            "xor ebp, ebp",
            "mov rdi, r12",
            "call r13",
            "mov edi, eax",
            "mov eax, 231",
            "syscall",
            "ud2",
            "2:",
            inlateout("rax") super::nr::CLONE3 => rc,
            in("rdi") args as *mut CloneArgs,
            in("rsi") std::mem::size_of::<CloneArgs>(),
            in("r12") arg,
            in("r13") entry,
            out("rcx") _,
            out("r11") _,
            options(nostack),
        );
    }
    if rc < 0 {
        return Err(io::Error::from_raw_os_error(-rc as i32));
    }
    Ok(rc)
}

#[cfg(not(target_arch = "x86_64"))]
unsafe fn clone3_on_stack(
    _args: &mut CloneArgs,
    _entry: Entry,
    _arg: *mut c_void,
) -> io::Result<libc::c_long> {
    Err(io::Error::from_raw_os_error(libc::ENOSYS))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicI32, Ordering};

    extern "C" fn write_and_exit(arg: *mut c_void) -> libc::c_int {
        // SAFETY: `arg` is the AtomicI32 the test passes, alive until
        // `run` returns, which is after this process exits.
        let seen = unsafe { &*(arg as *const AtomicI32) };
        // SAFETY: getpid has no preconditions.
        seen.store(unsafe { libc::getpid() }, Ordering::Relaxed);
        // SAFETY: _exit takes an int and does not return.
        unsafe { libc::_exit(9) }
    }

    fn reap(pid: u32) -> i32 {
        let mut status = 0;
        // SAFETY: `status` is a valid out pointer; `pid` is our child.
        let reaped = unsafe { libc::waitpid(pid as i32, &mut status, 0) };
        assert_eq!(reaped, pid as i32);
        libc::WEXITSTATUS(status)
    }

    #[test]
    fn the_child_writes_into_our_memory_before_run_returns() {
        let mut stack = Stack::new(64 * 1024).unwrap();
        let seen = AtomicI32::new(0);
        // SAFETY: the entry only calls getpid, an atomic store and _exit.
        let pid = unsafe {
            run(
                &mut stack,
                None,
                write_and_exit,
                &seen as *const AtomicI32 as *mut c_void,
            )
        }
        .unwrap();
        assert_eq!(seen.load(Ordering::Relaxed), pid as i32);
        assert_eq!(reap(pid), 9);
    }

    extern "C" fn exec_sleep(_: *mut c_void) -> libc::c_int {
        let argv = [c"sleep".as_ptr(), c"30".as_ptr(), std::ptr::null()];
        // SAFETY: NUL-terminated strings and a null-terminated array, all
        // static or on this stack.
        unsafe { libc::execv(c"/bin/sleep".as_ptr(), argv.as_ptr()) };
        // SAFETY: _exit takes an int and does not return.
        unsafe { libc::_exit(127) }
    }

    /// A scratch folder in the v2 hierarchy, inside our own cgroup. None
    /// (said) without root or without a v2 hierarchy.
    fn v2_scratch() -> Option<std::path::PathBuf> {
        let mounts = std::fs::read_to_string("/proc/self/mounts").ok()?;
        let mount = mounts
            .lines()
            .map(|l| l.split_whitespace().collect::<Vec<_>>())
            .find(|f| f.get(2) == Some(&"cgroup2"))
            .and_then(|f| f.get(1).map(|m| m.to_string()));
        let own = std::fs::read_to_string("/proc/self/cgroup")
            .ok()?
            .lines()
            .find_map(|l| l.strip_prefix("0::").map(str::to_string));
        let (Some(mount), Some(own), true) = (mount, own, rustix::process::geteuid().is_root())
        else {
            eprintln!("skip: needs root and a cgroup v2 hierarchy");
            return None;
        };
        let dir = std::path::Path::new(&mount)
            .join(own.trim_start_matches('/'))
            .join(format!("ten-vfork-test-{}", std::process::id()));
        std::fs::create_dir(&dir).ok()?;
        Some(dir)
    }

    /// Created inside a cgroup: the program it exec'd is in it, and was
    /// from its start (it never wrote itself anywhere).
    #[test]
    fn a_child_created_inside_a_v2_cgroup_runs_there() {
        if !INTO_CGROUP {
            return;
        }
        let Some(v2) = v2_scratch() else {
            return;
        };
        let dir = std::fs::File::open(&v2).unwrap();
        let mut stack = Stack::new(64 * 1024).unwrap();
        // SAFETY: the entry only calls execv and _exit.
        let pid = unsafe {
            run(
                &mut stack,
                Some(std::os::fd::AsFd::as_fd(&dir)),
                exec_sleep,
                std::ptr::null_mut(),
            )
        }
        .unwrap();
        let procs = std::fs::read_to_string(v2.join("cgroup.procs")).unwrap();
        assert_eq!(procs.trim(), pid.to_string());
        // The parent wakes once the child's old memory is released, inside
        // execve; the new program's arguments are set up just after, so
        // its cmdline can still read empty for a moment.
        let read = || std::fs::read_to_string(format!("/proc/{pid}/cmdline")).unwrap();
        let mut cmdline = read();
        for _ in 0..500 {
            if !cmdline.is_empty() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
            cmdline = read();
        }
        assert!(cmdline.starts_with("sleep\0"), "{cmdline:?}");
        // SAFETY: kill with a pid we own and a signal number.
        unsafe { libc::kill(pid as i32, libc::SIGKILL) };
        let mut status = 0;
        // SAFETY: a valid out pointer; `pid` is our child.
        unsafe { libc::waitpid(pid as i32, &mut status, 0) };
        std::fs::remove_dir(&v2).unwrap();
    }
}
