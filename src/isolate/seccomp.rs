//! The sandbox's seccomp filter: a classic BPF program, built once in the
//! parent and installed by `ten __init` as its last setup step.
//!
//! Shape: the audit arch is checked first (a syscall made through another
//! ABI, e.g. 32-bit int 0x80 on x86_64, kills the process: its numbers
//! mean other syscalls); on x86_64, x32 numbers are refused; then one
//! `jeq nr` / `ret ERRNO` pair per refused syscall; `ioctl`, `personality`,
//! the calls that set a file's mode and `clone` are looked at more closely
//! (terminal injection refused, personality limited to the harmless
//! values, no setuid or setgid bit on a file, clone refused only when its
//! flags ask for a new namespace); everything else is allowed. The unit tests run the program through a
//! small BPF interpreter and check each syscall's verdict.

use crate::sys::nr;

// Classic BPF opcodes (include/uapi/linux/bpf_common.h).
const BPF_LD: u16 = 0x00;
const BPF_W: u16 = 0x00;
const BPF_ABS: u16 = 0x20;
const BPF_JMP: u16 = 0x05;
const BPF_JEQ: u16 = 0x10;
const BPF_JGE: u16 = 0x30;
const BPF_JSET: u16 = 0x40;
const BPF_K: u16 = 0x00;
const BPF_RET: u16 = 0x06;

// Offsets into `struct seccomp_data { int nr; u32 arch; u64 ip; u64 args[6]; }`.
const OFF_NR: u32 = 0;
const OFF_ARCH: u32 = 4;
/// The low 32 bits of args[0] (little-endian: first in memory).
const OFF_ARG0_LO: u32 = 16;
/// The low 32 bits of args[n].
const fn off_arg_lo(n: u32) -> u32 {
    16 + 8 * n
}
const OFF_ARG1_LO: u32 = off_arg_lo(1);

const RET_KILL_PROCESS: u32 = 0x8000_0000;
const RET_ERRNO: u32 = 0x0005_0000;
const RET_ALLOW: u32 = 0x7fff_0000;

#[cfg(target_arch = "x86_64")]
pub const AUDIT_ARCH: u32 = 0xc000_003e; // AUDIT_ARCH_X86_64
#[cfg(target_arch = "aarch64")]
pub const AUDIT_ARCH: u32 = 0xc000_00b7; // AUDIT_ARCH_AARCH64

/// x86_64's x32 ABI shares the audit arch and marks its numbers with this bit.
#[cfg(target_arch = "x86_64")]
const X32_SYSCALL_BIT: u32 = 0x4000_0000;

/// Namespace flags of clone(2)'s first argument. CLONE_NEWTIME (0x80) is
/// left out: in clone(2) that bit belongs to the exit signal.
const CLONE_NS_FLAGS: u32 = (libc::CLONE_NEWNS
    | libc::CLONE_NEWCGROUP
    | libc::CLONE_NEWUTS
    | libc::CLONE_NEWIPC
    | libc::CLONE_NEWUSER
    | libc::CLONE_NEWPID
    | libc::CLONE_NEWNET) as u32;

/// Syscalls answered with EPERM, by name (for logs and tests).
pub const DENIED: &[(&str, i64)] = &[
    ("ptrace", libc::SYS_ptrace),
    ("process_vm_readv", libc::SYS_process_vm_readv),
    ("process_vm_writev", libc::SYS_process_vm_writev),
    ("mount", libc::SYS_mount),
    ("umount2", libc::SYS_umount2),
    ("pivot_root", libc::SYS_pivot_root),
    ("open_tree", nr::OPEN_TREE),
    ("move_mount", nr::MOVE_MOUNT),
    ("fsopen", nr::FSOPEN),
    ("fsconfig", nr::FSCONFIG),
    ("fsmount", nr::FSMOUNT),
    ("fspick", nr::FSPICK),
    ("mount_setattr", nr::MOUNT_SETATTR),
    ("bpf", libc::SYS_bpf),
    ("perf_event_open", libc::SYS_perf_event_open),
    ("kexec_load", libc::SYS_kexec_load),
    ("kexec_file_load", libc::SYS_kexec_file_load),
    ("init_module", libc::SYS_init_module),
    ("finit_module", libc::SYS_finit_module),
    ("delete_module", libc::SYS_delete_module),
    ("add_key", libc::SYS_add_key),
    ("request_key", libc::SYS_request_key),
    ("keyctl", libc::SYS_keyctl),
    ("userfaultfd", libc::SYS_userfaultfd),
    ("unshare", libc::SYS_unshare),
    ("setns", libc::SYS_setns),
    ("reboot", libc::SYS_reboot),
    ("swapon", libc::SYS_swapon),
    ("swapoff", libc::SYS_swapoff),
    ("acct", libc::SYS_acct),
    ("open_by_handle_at", libc::SYS_open_by_handle_at),
    // io_uring runs reads, writes, opens, connects... in kernel threads
    // that this filter never sees.
    ("io_uring_setup", nr::IO_URING_SETUP),
    ("io_uring_enter", nr::IO_URING_ENTER),
    ("io_uring_register", nr::IO_URING_REGISTER),
    // ptrace's relatives: another process's fds, memory advice, kernel
    // object comparison.
    ("pidfd_getfd", nr::PIDFD_GETFD),
    ("process_madvise", nr::PROCESS_MADVISE),
    ("kcmp", libc::SYS_kcmp),
];

/// ioctl requests refused on any fd: pushing input into a terminal
/// (TIOCSTI) and the Linux console's commands (TIOCLINUX, which can also
/// paste). The kernel takes the request as 32 bits, so only the low word
/// is compared: bits above it cannot smuggle one through.
pub const DENIED_IOCTLS: &[(&str, u32)] = &[("TIOCSTI", 0x5412), ("TIOCLINUX", 0x541c)];

/// personality(2) values allowed: Linux (0), its 32-bit flavour
/// (PER_LINUX32, 8), UNAME26 (0x20000) and both, and 0xffffffff, which
/// only asks. Anything else (no address randomisation, read implies exec,
/// other ABIs) is refused.
pub const PERSONALITIES: &[u32] = &[0, 0x0008, 0x0002_0000, 0x0002_0008, 0xffff_ffff];

/// S_ISUID | S_ISGID: refused in any mode the sandbox gives a file. Its
/// data dir is a folder of the host: a setuid or setgid program left there
/// would let whoever runs it on the host act as the instance's uid or gid
/// (root's, with `user = "root"`).
pub const SET_ID_BITS: u32 = 0o6000;

/// O_CREAT | __O_TMPFILE (the same on x86_64 and aarch64): an open that
/// may create a file, whose mode argument then counts.
const OPEN_CREATES: u32 = 0o100 | 0o20_000_000;

/// The calls that give a file a mode: (name, number, index of the mode
/// argument, index of the open flags when the mode counts only with
/// O_CREAT or O_TMPFILE). A mode with a setuid or setgid bit gets EPERM.
/// (mkdir is left alone: setgid on a folder only passes its group on.)
pub const MODE_CALLS: &[(&str, i64, u32, Option<u32>)] = &[
    #[cfg(target_arch = "x86_64")]
    ("chmod", libc::SYS_chmod, 1, None),
    ("fchmod", libc::SYS_fchmod, 1, None),
    ("fchmodat", libc::SYS_fchmodat, 2, None),
    ("fchmodat2", nr::FCHMODAT2, 2, None),
    #[cfg(target_arch = "x86_64")]
    ("creat", libc::SYS_creat, 1, None),
    #[cfg(target_arch = "x86_64")]
    ("open", libc::SYS_open, 2, Some(1)),
    ("openat", libc::SYS_openat, 3, Some(2)),
    #[cfg(target_arch = "x86_64")]
    ("mknod", libc::SYS_mknod, 1, None),
    ("mknodat", libc::SYS_mknodat, 2, None),
];

/// openat2 passes its mode in memory, out of the filter's sight: ENOSYS,
/// on which callers fall back to openat (libc's open never uses it).
pub const OPENAT2_ERRNO: u32 = libc::ENOSYS as u32;

/// clone3 passes its flags in memory, which a seccomp filter cannot read,
/// so clone3 is refused as a whole. With ENOSYS rather than EPERM: glibc
/// (2.34+) and musl fall back to clone(2) on ENOSYS only, so threads and
/// fork keep working, through clone, whose flags the filter checks.
pub const CLONE3_ERRNO: u32 = libc::ENOSYS as u32;

fn stmt(code: u16, k: u32) -> libc::sock_filter {
    libc::sock_filter {
        code,
        jt: 0,
        jf: 0,
        k,
    }
}

fn jump(code: u16, k: u32, jt: u8, jf: u8) -> libc::sock_filter {
    libc::sock_filter { code, jt, jf, k }
}

fn errno(e: u32) -> u32 {
    RET_ERRNO | (e & 0xffff)
}

/// The sandbox filter for this build's architecture.
pub fn program() -> Vec<libc::sock_filter> {
    let mut p = vec![
        stmt(BPF_LD | BPF_W | BPF_ABS, OFF_ARCH),
        jump(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH, 1, 0),
        stmt(BPF_RET | BPF_K, RET_KILL_PROCESS),
        stmt(BPF_LD | BPF_W | BPF_ABS, OFF_NR),
    ];
    #[cfg(target_arch = "x86_64")]
    {
        p.push(jump(BPF_JMP | BPF_JGE | BPF_K, X32_SYSCALL_BIT, 0, 1));
        p.push(stmt(BPF_RET | BPF_K, errno(libc::EPERM as u32)));
    }
    for &(_, n) in DENIED {
        p.push(jump(BPF_JMP | BPF_JEQ | BPF_K, n as u32, 0, 1));
        p.push(stmt(BPF_RET | BPF_K, errno(libc::EPERM as u32)));
    }
    p.push(jump(BPF_JMP | BPF_JEQ | BPF_K, nr::CLONE3 as u32, 0, 1));
    p.push(stmt(BPF_RET | BPF_K, errno(CLONE3_ERRNO)));
    p.push(jump(BPF_JMP | BPF_JEQ | BPF_K, nr::OPENAT2 as u32, 0, 1));
    p.push(stmt(BPF_RET | BPF_K, errno(OPENAT2_ERRNO)));
    // The checks below load an argument, which clobbers the syscall
    // number; each block ends in a return, so the number is still in the
    // accumulator wherever a block is skipped.
    let mut ioctl = vec![stmt(BPF_LD | BPF_W | BPF_ABS, OFF_ARG1_LO)];
    for &(_, req) in DENIED_IOCTLS {
        ioctl.push(jump(BPF_JMP | BPF_JEQ | BPF_K, req, 0, 1));
        ioctl.push(stmt(BPF_RET | BPF_K, errno(libc::EPERM as u32)));
    }
    ioctl.push(stmt(BPF_RET | BPF_K, RET_ALLOW));
    block(&mut p, libc::SYS_ioctl, ioctl);
    let mut personality = vec![stmt(BPF_LD | BPF_W | BPF_ABS, OFF_ARG0_LO)];
    for &v in PERSONALITIES {
        personality.push(jump(BPF_JMP | BPF_JEQ | BPF_K, v, 0, 1));
        personality.push(stmt(BPF_RET | BPF_K, RET_ALLOW));
    }
    personality.push(stmt(BPF_RET | BPF_K, errno(libc::EPERM as u32)));
    block(&mut p, libc::SYS_personality, personality);
    for &(_, n, mode, flags) in MODE_CALLS {
        let mut body = Vec::new();
        if let Some(flags) = flags {
            // No O_CREAT, no O_TMPFILE: the mode is not used; allow.
            body.push(stmt(BPF_LD | BPF_W | BPF_ABS, off_arg_lo(flags)));
            body.push(jump(BPF_JMP | BPF_JSET | BPF_K, OPEN_CREATES, 0, 3));
        }
        body.push(stmt(BPF_LD | BPF_W | BPF_ABS, off_arg_lo(mode)));
        body.push(jump(BPF_JMP | BPF_JSET | BPF_K, SET_ID_BITS, 0, 1));
        body.push(stmt(BPF_RET | BPF_K, errno(libc::EPERM as u32)));
        body.push(stmt(BPF_RET | BPF_K, RET_ALLOW));
        block(&mut p, n, body);
    }
    // clone: refuse any namespace flag.
    block(
        &mut p,
        libc::SYS_clone,
        vec![
            stmt(BPF_LD | BPF_W | BPF_ABS, OFF_ARG0_LO),
            jump(BPF_JMP | BPF_JSET | BPF_K, CLONE_NS_FLAGS, 0, 1),
            stmt(BPF_RET | BPF_K, errno(libc::EPERM as u32)),
            stmt(BPF_RET | BPF_K, RET_ALLOW),
        ],
    );
    p.push(stmt(BPF_RET | BPF_K, RET_ALLOW));
    p
}

/// Appends `body` (which must end in a return) to run for syscall `nr`
/// only: a jump over it for every other number.
fn block(p: &mut Vec<libc::sock_filter>, nr: i64, body: Vec<libc::sock_filter>) {
    let skip = u8::try_from(body.len()).expect("a short block");
    p.push(jump(BPF_JMP | BPF_JEQ | BPF_K, nr as u32, 0, skip));
    p.extend(body);
}

/// What the filter refuses, in words, for the instance's log.
pub fn summary() -> String {
    let ioctls: Vec<&str> = DENIED_IOCTLS.iter().map(|d| d.0).collect();
    format!(
        "seccomp: {} syscalls refused (io_uring included), {} ioctls refused, personality limited, no setuid or setgid files",
        DENIED.len() + 2,
        ioctls.join(" and ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Clone, PartialEq, Eq)]
    enum Verdict {
        Allow,
        Errno(u32),
        KillProcess,
    }

    /// Runs `prog` the way the kernel does on a `seccomp_data`.
    fn run(prog: &[libc::sock_filter], arch: u32, nr: u32, arg0: u64) -> Verdict {
        run_args(prog, arch, nr, &[arg0])
    }

    /// `run` with several arguments (args[0], args[1], ...).
    fn run_args(prog: &[libc::sock_filter], arch: u32, nr: u32, args: &[u64]) -> Verdict {
        let mut data = [0u8; 64];
        data[0..4].copy_from_slice(&nr.to_le_bytes());
        data[4..8].copy_from_slice(&arch.to_le_bytes());
        for (i, a) in args.iter().enumerate() {
            data[16 + 8 * i..24 + 8 * i].copy_from_slice(&a.to_le_bytes());
        }
        let mut acc: u32 = 0;
        let mut pc = 0usize;
        loop {
            let i = prog.get(pc).expect("program ran off its end");
            match i.code {
                c if c == BPF_LD | BPF_W | BPF_ABS => {
                    let o = i.k as usize;
                    acc = u32::from_le_bytes(data[o..o + 4].try_into().unwrap());
                    pc += 1;
                }
                c if c & 0x07 == BPF_JMP => {
                    let taken = match c & 0xf0 {
                        BPF_JEQ => acc == i.k,
                        BPF_JGE => acc >= i.k,
                        BPF_JSET => acc & i.k != 0,
                        other => panic!("unexpected jump {other:#x}"),
                    };
                    pc += 1 + if taken { i.jt } else { i.jf } as usize;
                }
                c if c == BPF_RET | BPF_K => {
                    return match i.k & 0xffff_0000 {
                        RET_ALLOW => Verdict::Allow,
                        RET_ERRNO => Verdict::Errno(i.k & 0xffff),
                        RET_KILL_PROCESS => Verdict::KillProcess,
                        other => panic!("unexpected action {other:#x}"),
                    };
                }
                other => panic!("unexpected opcode {other:#x}"),
            }
        }
    }

    #[test]
    fn every_listed_syscall_gets_eperm() {
        let p = program();
        for &(name, n) in DENIED {
            assert_eq!(
                run(&p, AUDIT_ARCH, n as u32, 0),
                Verdict::Errno(libc::EPERM as u32),
                "{name}"
            );
        }
        let names: Vec<&str> = DENIED.iter().map(|d| d.0).collect();
        for must in [
            "ptrace",
            "mount",
            "unshare",
            "setns",
            "bpf",
            "keyctl",
            "kexec_load",
            "finit_module",
            "userfaultfd",
            "perf_event_open",
            "open_by_handle_at",
            "pivot_root",
            "fsopen",
            "io_uring_setup",
            "io_uring_enter",
            "io_uring_register",
            "pidfd_getfd",
        ] {
            assert!(names.contains(&must), "{must} missing");
        }
    }

    #[test]
    fn ordinary_syscalls_pass() {
        let p = program();
        for n in [
            libc::SYS_read,
            libc::SYS_write,
            libc::SYS_openat,
            libc::SYS_execve,
            libc::SYS_exit_group,
            libc::SYS_socket,
            libc::SYS_kill,
            libc::SYS_wait4,
            libc::SYS_mmap,
        ] {
            assert_eq!(run(&p, AUDIT_ARCH, n as u32, 0), Verdict::Allow, "{n}");
        }
    }

    #[test]
    fn a_foreign_arch_is_killed_before_the_number_is_read() {
        let p = program();
        // AUDIT_ARCH_I386: same numbers mean other syscalls there.
        assert_eq!(
            run(&p, 0x4000_0003, libc::SYS_read as u32, 0),
            Verdict::KillProcess
        );
        assert_eq!(run(&p, 0, 0, 0), Verdict::KillProcess);
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn x32_numbers_are_refused() {
        let p = program();
        assert_eq!(
            run(&p, AUDIT_ARCH, X32_SYSCALL_BIT | libc::SYS_read as u32, 0),
            Verdict::Errno(libc::EPERM as u32)
        );
    }

    #[test]
    fn clone_is_refused_only_with_namespace_flags() {
        let p = program();
        let clone = libc::SYS_clone as u32;
        // What fork() and pthread_create pass.
        let fork = libc::SIGCHLD as u64;
        let thread = (libc::CLONE_VM
            | libc::CLONE_FS
            | libc::CLONE_FILES
            | libc::CLONE_SIGHAND
            | libc::CLONE_THREAD
            | libc::CLONE_SYSVSEM
            | libc::CLONE_SETTLS
            | libc::CLONE_PARENT_SETTID
            | libc::CLONE_CHILD_CLEARTID) as u64;
        assert_eq!(run(&p, AUDIT_ARCH, clone, fork), Verdict::Allow);
        assert_eq!(run(&p, AUDIT_ARCH, clone, thread), Verdict::Allow);
        for flag in [
            libc::CLONE_NEWNS,
            libc::CLONE_NEWPID,
            libc::CLONE_NEWUSER,
            libc::CLONE_NEWNET,
            libc::CLONE_NEWUTS,
            libc::CLONE_NEWIPC,
            libc::CLONE_NEWCGROUP,
        ] {
            assert_eq!(
                run(&p, AUDIT_ARCH, clone, fork | flag as u64),
                Verdict::Errno(libc::EPERM as u32),
                "{flag:#x}"
            );
        }
        assert_eq!(
            run(&p, AUDIT_ARCH, nr::CLONE3 as u32, 0),
            Verdict::Errno(libc::ENOSYS as u32)
        );
    }

    #[test]
    fn terminal_injection_is_refused_and_other_ioctls_pass() {
        let p = program();
        let ioctl = libc::SYS_ioctl as u32;
        for req in [0x5412u64, 0x541c] {
            assert_eq!(
                run_args(&p, AUDIT_ARCH, ioctl, &[0, req]),
                Verdict::Errno(libc::EPERM as u32),
                "{req:#x}"
            );
            // The kernel drops the upper half of the request: so does the
            // filter.
            assert_eq!(
                run_args(&p, AUDIT_ARCH, ioctl, &[0, req | 1 << 32]),
                Verdict::Errno(libc::EPERM as u32),
                "{req:#x} with high bits"
            );
        }
        // TCGETS (isatty), FIONREAD, FIONBIO.
        for req in [0x5401u64, 0x541b, 0x5421] {
            assert_eq!(
                run_args(&p, AUDIT_ARCH, ioctl, &[0, req]),
                Verdict::Allow,
                "{req:#x}"
            );
        }
        // The fd is not the request: TIOCSTI's number as an fd is fine.
        assert_eq!(
            run_args(&p, AUDIT_ARCH, ioctl, &[0x5412, 0x5401]),
            Verdict::Allow
        );
    }

    #[test]
    fn personality_may_be_asked_not_changed_to_weaken() {
        let p = program();
        let nr = libc::SYS_personality as u32;
        for allowed in [0u64, 8, 0x20000, 0x20008, 0xffff_ffff] {
            assert_eq!(
                run(&p, AUDIT_ARCH, nr, allowed),
                Verdict::Allow,
                "{allowed:#x}"
            );
        }
        // ADDR_NO_RANDOMIZE, READ_IMPLIES_EXEC, PER_SVR4.
        for refused in [0x0004_0000u64, 0x0040_0000, 0x0400_0068] {
            assert_eq!(
                run(&p, AUDIT_ARCH, nr, refused),
                Verdict::Errno(libc::EPERM as u32),
                "{refused:#x}"
            );
        }
    }

    #[test]
    fn no_file_gets_a_setuid_or_setgid_bit() {
        let p = program();
        let eperm = Verdict::Errno(libc::EPERM as u32);
        for &(name, n, mode, flags) in MODE_CALLS {
            let mut args = [0u64; 6];
            if let Some(f) = flags {
                args[f as usize] = (libc::O_WRONLY | libc::O_CREAT) as u64;
            }
            for (bits, want) in [
                (0o644, Verdict::Allow),
                (0o755, Verdict::Allow),
                (0o1777, Verdict::Allow),
                (0o4755, eperm.clone()),
                (0o2755, eperm.clone()),
                (libc::S_IFREG as u64 | 0o6755, eperm.clone()),
            ] {
                args[mode as usize] = bits;
                assert_eq!(
                    run_args(&p, AUDIT_ARCH, n as u32, &args),
                    want,
                    "{name} {bits:o}"
                );
            }
            // Bits above the 32 the kernel reads do not matter either way.
            args[mode as usize] = 1 << 32 | 0o4755;
            assert_eq!(run_args(&p, AUDIT_ARCH, n as u32, &args), eperm, "{name}");
            if let Some(f) = flags {
                // Without O_CREAT or O_TMPFILE the mode is ignored by the
                // kernel: so it is here, whatever it holds.
                args[f as usize] = libc::O_RDONLY as u64;
                assert_eq!(
                    run_args(&p, AUDIT_ARCH, n as u32, &args),
                    Verdict::Allow,
                    "{name}"
                );
                args[f as usize] = (libc::O_RDWR | libc::O_TMPFILE) as u64;
                assert_eq!(
                    run_args(&p, AUDIT_ARCH, n as u32, &args),
                    eperm,
                    "{name} O_TMPFILE"
                );
            }
        }
        let names: Vec<&str> = MODE_CALLS.iter().map(|m| m.0).collect();
        for must in ["fchmod", "fchmodat", "fchmodat2", "openat", "mknodat"] {
            assert!(names.contains(&must), "{must} missing");
        }
        assert_eq!(
            run(&p, AUDIT_ARCH, nr::OPENAT2 as u32, 0),
            Verdict::Errno(libc::ENOSYS as u32)
        );
        // mkdir with setgid (a shared folder's group) stays allowed.
        assert_eq!(
            run_args(&p, AUDIT_ARCH, libc::SYS_mkdirat as u32, &[0, 0, 0o2775]),
            Verdict::Allow
        );
    }

    #[test]
    fn the_summary_names_what_is_refused() {
        let s = summary();
        assert!(s.contains("io_uring"), "{s}");
        assert!(s.contains("TIOCSTI and TIOCLINUX"), "{s}");
        assert!(s.contains(&format!("{} syscalls", DENIED.len() + 2)), "{s}");
        assert!(s.contains("no setuid or setgid files"), "{s}");
    }

    #[test]
    fn program_fits_the_kernel_limit() {
        // BPF_MAXINSNS; jumps are relative and short by construction.
        assert!(program().len() < 4096);
    }

    /// Installs the filter in a forked child and tries the real calls.
    #[test]
    fn installed_filter_refuses_unshare_and_allows_getpid() {
        let prog = program();
        let mut args = crate::sys::clone3::CloneArgs {
            exit_signal: libc::SIGCHLD as u64,
            flags: crate::sys::clone3::CLONE_PIDFD,
            ..Default::default()
        };
        // SAFETY: the child below makes only raw syscalls over memory
        // prepared before the fork (`prog`), then _exits.
        match unsafe { crate::sys::clone3::clone3(&mut args) }.unwrap() {
            crate::sys::clone3::Forked::Child => {
                let code = (|| {
                    // SAFETY: prctl with integer arguments.
                    if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
                        return 10;
                    }
                    let fprog = libc::sock_fprog {
                        len: prog.len() as u16,
                        filter: prog.as_ptr().cast_mut(),
                    };
                    // SAFETY: fprog points at the prepared program, read only.
                    let rc = unsafe {
                        libc::syscall(libc::SYS_seccomp, libc::SECCOMP_SET_MODE_FILTER, 0, &fprog)
                    };
                    if rc != 0 {
                        return 11;
                    }
                    // SAFETY: unshare with a flags word; errno read right after.
                    let rc = unsafe { libc::unshare(libc::CLONE_NEWUTS) };
                    // SAFETY: errno location of this thread.
                    if rc != -1 || unsafe { *libc::__errno_location() } != libc::EPERM {
                        return 12;
                    }
                    // SAFETY: getpid has no preconditions.
                    if unsafe { libc::getpid() } <= 0 {
                        return 13;
                    }
                    0
                })();
                // SAFETY: _exit does not return and takes an int.
                unsafe { libc::_exit(code) }
            }
            crate::sys::clone3::Forked::Parent { pidfd, .. } => {
                let pidfd = pidfd.unwrap();
                let st = rustix::process::waitid(
                    rustix::process::WaitId::PidFd(std::os::fd::AsFd::as_fd(&pidfd)),
                    rustix::process::WaitIdOptions::EXITED,
                )
                .unwrap()
                .unwrap();
                assert_eq!(st.exit_status(), Some(0));
            }
        }
    }
}
