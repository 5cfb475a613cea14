//! The sandbox's landlock rule set: which paths stay readable, which stay
//! writable, everything else denied. Built as a plain list of (path,
//! access) in the plan, narrowed to what the kernel's ABI knows (`prepare`,
//! pure and unit-tested), then enforced by `ten __init` (`enforce`), which
//! reports what took effect.

use std::fmt;
use std::io;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use crate::sys::landlock as sys;

/// LANDLOCK_ACCESS_FS_* (include/uapi/linux/landlock.h), all of them,
/// used or not.
#[allow(dead_code)]
pub mod fs {
    pub const EXECUTE: u64 = 1 << 0;
    pub const WRITE_FILE: u64 = 1 << 1;
    pub const READ_FILE: u64 = 1 << 2;
    pub const READ_DIR: u64 = 1 << 3;
    pub const REMOVE_DIR: u64 = 1 << 4;
    pub const REMOVE_FILE: u64 = 1 << 5;
    pub const MAKE_CHAR: u64 = 1 << 6;
    pub const MAKE_DIR: u64 = 1 << 7;
    pub const MAKE_REG: u64 = 1 << 8;
    pub const MAKE_SOCK: u64 = 1 << 9;
    pub const MAKE_FIFO: u64 = 1 << 10;
    pub const MAKE_BLOCK: u64 = 1 << 11;
    pub const MAKE_SYM: u64 = 1 << 12;
    /// ABI 2.
    pub const REFER: u64 = 1 << 13;
    /// ABI 3.
    pub const TRUNCATE: u64 = 1 << 14;
    /// ABI 5.
    pub const IOCTL_DEV: u64 = 1 << 15;
    /// The rights a rule on a file (not a folder) may carry.
    pub const FILE: u64 = EXECUTE | WRITE_FILE | READ_FILE | TRUNCATE | IOCTL_DEV;
}

/// LANDLOCK_SCOPE_* (ABI 6).
pub mod scope {
    pub const ABSTRACT_UNIX_SOCKET: u64 = 1 << 0;
    pub const SIGNAL: u64 = 1 << 1;
}

/// What a path is allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Read, list and execute.
    Read,
    /// Read and write files that exist (device nodes): no creating.
    Devices,
    /// Everything the ruleset handles.
    Write,
}

impl Access {
    fn bits(self, handled: u64) -> u64 {
        let b = match self {
            Access::Read => fs::EXECUTE | fs::READ_FILE | fs::READ_DIR,
            Access::Devices => {
                fs::READ_FILE | fs::READ_DIR | fs::WRITE_FILE | fs::TRUNCATE | fs::IOCTL_DEV
            }
            Access::Write => handled,
        };
        b & handled
    }
}

/// The fs rights ABI `abi` can handle (each ABI adds to the previous).
pub fn handled_fs(abi: u32) -> u64 {
    match abi {
        0 => 0,
        1 => (1 << 13) - 1,
        2 => (1 << 14) - 1,
        3 | 4 => (1 << 15) - 1,
        _ => (1 << 16) - 1,
    }
}

/// The scopes ABI `abi` can restrict.
pub fn handled_scope(abi: u32) -> u64 {
    if abi >= 6 {
        scope::ABSTRACT_UNIX_SOCKET | scope::SIGNAL
    } else {
        0
    }
}

/// The rules of one sandbox, before the kernel is asked anything.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Ruleset {
    pub read_only: Vec<PathBuf>,
    /// Existing files readable and writable, nothing created (/dev).
    pub read_write_files: Vec<PathBuf>,
    pub read_write: Vec<PathBuf>,
}

/// A ruleset narrowed to one ABI: what to hand the kernel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prepared {
    pub abi: u32,
    pub handled_fs: u64,
    pub scoped: u64,
    pub rules: Vec<(PathBuf, Access)>,
}

impl Ruleset {
    /// Narrows the rules to `abi`. A path listed twice keeps its widest
    /// access, since landlock adds up the rights of every rule that
    /// applies anyway.
    pub fn prepare(&self, abi: u32) -> Prepared {
        let mut rules: Vec<(PathBuf, Access)> = Vec::new();
        let lists = [
            (&self.read_only, Access::Read),
            (&self.read_write_files, Access::Devices),
            (&self.read_write, Access::Write),
        ];
        for (paths, access) in lists {
            for p in paths {
                match rules.iter_mut().find(|(q, _)| q == p) {
                    Some(r) => r.1 = access,
                    None => rules.push((p.clone(), access)),
                }
            }
        }
        Prepared {
            abi,
            handled_fs: handled_fs(abi),
            scoped: handled_scope(abi),
            rules,
        }
    }
}

/// The rights a rule on `path` gets: `access` within what is handled, and
/// only file rights when it is not a folder (the kernel refuses others).
pub fn rule_bits(access: Access, handled: u64, is_dir: bool) -> u64 {
    let b = access.bits(handled);
    if is_dir {
        b
    } else {
        b & fs::FILE
    }
}

/// What `enforce` put in place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Enforced {
    pub abi: u32,
    pub rules: usize,
    /// Listed paths that do not exist, hence got no rule (denied).
    pub missing: Vec<PathBuf>,
    pub scoped: u64,
}

impl fmt::Display for Enforced {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "landlock ABI {}: {} path rules", self.abi, self.rules)?;
        if self.abi < 3 {
            f.write_str(", truncate not restricted")?;
        }
        if self.abi < 5 {
            f.write_str(", device ioctls not restricted")?;
        }
        if self.scoped & scope::SIGNAL != 0 {
            f.write_str(", signals and abstract unix sockets scoped")?;
        } else {
            f.write_str(", signals and abstract unix sockets not scoped (needs ABI 6)")?;
        }
        Ok(())
    }
}

/// Why landlock could not be put in place.
#[derive(Debug)]
pub enum LandlockError {
    /// The kernel has no landlock to give.
    Unavailable { missing: &'static str },
    /// A syscall failed.
    Call {
        call: &'static str,
        path: Option<PathBuf>,
        source: io::Error,
    },
}

impl fmt::Display for LandlockError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LandlockError::Unavailable { missing } => f.write_str(missing),
            LandlockError::Call {
                call,
                path: Some(p),
                ..
            } => write!(f, "{call} {}", p.display()),
            LandlockError::Call {
                call, path: None, ..
            } => f.write_str(call),
        }
    }
}

impl std::error::Error for LandlockError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            LandlockError::Call { source, .. } => Some(source),
            LandlockError::Unavailable { .. } => None,
        }
    }
}

/// The kernel's landlock ABI, or what is missing in words.
pub fn abi() -> Result<u32, LandlockError> {
    match sys::landlock_abi_version() {
        Ok(v) => Ok(v),
        Err(e) if e.raw_os_error() == Some(libc::EOPNOTSUPP) => Err(LandlockError::Unavailable {
            missing: "landlock is built into this kernel but not enabled at boot (add it to lsm=)",
        }),
        Err(_) => Err(LandlockError::Unavailable {
            missing: "landlock is not enabled in this kernel (needs 5.13+)",
        }),
    }
}

/// Builds the ruleset in the kernel and restricts the calling process
/// (single-threaded: `ten __init`). Needs no_new_privs set before.
pub fn enforce(rules: &Ruleset) -> Result<Enforced, LandlockError> {
    restrict(&rules.prepare(abi()?))
}

/// Scopes the calling process, with no path rule at all: no connect to
/// an abstract Unix socket and no signal to a process outside its own
/// landlock domain (ABI 6). For the namespace level, whose init still has
/// CAP_SYS_ADMIN, which landlock takes in place of no_new_privs. Ok(None)
/// when the kernel cannot scope (no landlock, or an ABI before 6): that
/// level does not promise it.
pub fn scope_only() -> Result<Option<u32>, LandlockError> {
    let abi = match abi() {
        Ok(v) if handled_scope(v) != 0 => v,
        _ => return Ok(None),
    };
    let scope = Prepared {
        abi,
        handled_fs: 0,
        scoped: handled_scope(abi),
        rules: Vec::new(),
    };
    restrict(&scope).map(|_| Some(abi))
}

/// Hands `prepared` to the kernel: the ruleset, a rule for each of its
/// paths that exists, then the restriction of the calling process.
fn restrict(prepared: &Prepared) -> Result<Enforced, LandlockError> {
    let attr = sys::RulesetAttr {
        handled_access_fs: prepared.handled_fs,
        handled_access_net: 0,
        scoped: prepared.scoped,
    };
    let size = if prepared.abi >= 6 { 24 } else { 8 };
    fn call(call: &'static str, path: Option<&Path>) -> impl FnOnce(io::Error) -> LandlockError {
        let path = path.map(Path::to_path_buf);
        move |source| LandlockError::Call { call, path, source }
    }
    let ruleset =
        sys::landlock_create_ruleset(&attr, size).map_err(call("landlock_create_ruleset", None))?;
    let mut added = 0;
    let mut missing = Vec::new();
    for (path, access) in &prepared.rules {
        let fd = match rustix::fs::open(
            path,
            rustix::fs::OFlags::PATH | rustix::fs::OFlags::CLOEXEC,
            rustix::fs::Mode::empty(),
        ) {
            Ok(fd) => fd,
            Err(rustix::io::Errno::NOENT) => {
                missing.push(path.clone());
                continue;
            }
            Err(e) => return Err(call("open", Some(path))(e.into())),
        };
        let is_dir = rustix::fs::fstat(&fd)
            .map(|st| {
                rustix::fs::FileType::from_raw_mode(st.st_mode) == rustix::fs::FileType::Directory
            })
            .map_err(|e| call("fstat", Some(path))(e.into()))?;
        let bits = rule_bits(*access, prepared.handled_fs, is_dir);
        sys::landlock_add_rule(ruleset.as_fd(), fd.as_fd(), bits)
            .map_err(call("landlock_add_rule", Some(path)))?;
        added += 1;
    }
    sys::landlock_restrict_self(ruleset.as_fd()).map_err(call("landlock_restrict_self", None))?;
    Ok(Enforced {
        abi: prepared.abi,
        rules: added,
        missing,
        scoped: prepared.scoped,
    })
}

/// What `scope_only` did, for the instance's log.
pub fn describe_scope(abi: Option<u32>) -> String {
    match abi {
        Some(v) => format!("landlock ABI {v}: signals and abstract unix sockets scoped"),
        None => "signals and abstract unix sockets not scoped (needs landlock ABI 6)".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set() -> Ruleset {
        Ruleset {
            read_only: vec!["/usr".into(), "/etc".into(), "/srv/app".into()],
            read_write_files: vec!["/dev".into()],
            read_write: vec!["/data/notes/alice".into(), "/tmp".into()],
        }
    }

    #[test]
    fn each_abi_handles_what_it_knows() {
        assert_eq!(handled_fs(1), 0x1fff);
        assert_eq!(handled_fs(2) & fs::REFER, fs::REFER);
        assert_eq!(handled_fs(2) & fs::TRUNCATE, 0);
        assert_eq!(handled_fs(3) & fs::TRUNCATE, fs::TRUNCATE);
        assert_eq!(handled_fs(4), handled_fs(3));
        assert_eq!(handled_fs(5) & fs::IOCTL_DEV, fs::IOCTL_DEV);
        assert_eq!(handled_fs(7), handled_fs(5));
        assert_eq!(handled_scope(5), 0);
        assert_eq!(
            handled_scope(6),
            scope::SIGNAL | scope::ABSTRACT_UNIX_SOCKET
        );
    }

    #[test]
    fn read_only_paths_cannot_be_written_or_changed() {
        let p = set().prepare(7);
        let (path, access) = &p.rules[0];
        assert_eq!(path, Path::new("/usr"));
        let bits = rule_bits(*access, p.handled_fs, true);
        assert_eq!(bits, fs::EXECUTE | fs::READ_FILE | fs::READ_DIR);
        for denied in [
            fs::WRITE_FILE,
            fs::MAKE_REG,
            fs::REMOVE_FILE,
            fs::TRUNCATE,
            fs::REFER,
        ] {
            assert_eq!(bits & denied, 0);
        }
    }

    #[test]
    fn data_dir_and_tmp_get_everything_handled() {
        let p = set().prepare(7);
        for want in ["/data/notes/alice", "/tmp"] {
            let (_, access) = p.rules.iter().find(|(q, _)| q == Path::new(want)).unwrap();
            assert_eq!(
                rule_bits(*access, p.handled_fs, true),
                handled_fs(7),
                "{want}"
            );
        }
        // Under ABI 1 the same rule asks for nothing the kernel does not know.
        let p1 = set().prepare(1);
        let (_, access) = p1
            .rules
            .iter()
            .find(|(q, _)| q == Path::new("/tmp"))
            .unwrap();
        assert_eq!(rule_bits(*access, p1.handled_fs, true), 0x1fff);
    }

    #[test]
    fn devices_are_written_never_created() {
        let p = set().prepare(7);
        let (_, access) = p
            .rules
            .iter()
            .find(|(q, _)| q == Path::new("/dev"))
            .unwrap();
        let bits = rule_bits(*access, p.handled_fs, true);
        assert_ne!(bits & fs::WRITE_FILE, 0);
        assert_ne!(bits & fs::IOCTL_DEV, 0);
        assert_eq!(
            bits & (fs::MAKE_REG | fs::MAKE_CHAR | fs::MAKE_BLOCK | fs::REMOVE_FILE),
            0
        );
        // ABI 4 has no IOCTL_DEV: not asked for.
        let p4 = set().prepare(4);
        assert_eq!(rule_bits(*access, p4.handled_fs, true) & fs::IOCTL_DEV, 0);
    }

    #[test]
    fn a_rule_on_a_file_carries_only_file_rights() {
        let bits = rule_bits(Access::Write, handled_fs(7), false);
        assert_eq!(bits & !fs::FILE, 0);
        assert_ne!(bits & fs::WRITE_FILE, 0);
        assert_eq!(
            rule_bits(Access::Read, handled_fs(7), false),
            fs::EXECUTE | fs::READ_FILE
        );
    }

    #[test]
    fn a_path_listed_twice_keeps_the_wider_access() {
        let mut r = set();
        r.read_write.push("/srv/app".into());
        let p = r.prepare(7);
        let hits: Vec<_> = p
            .rules
            .iter()
            .filter(|(q, _)| q == Path::new("/srv/app"))
            .collect();
        assert_eq!(hits.len(), 1);
        assert_eq!(hits[0].1, Access::Write);
    }

    #[test]
    fn the_log_line_says_what_an_older_abi_leaves_open() {
        let at = |abi| {
            Enforced {
                abi,
                rules: 3,
                missing: Vec::new(),
                scoped: handled_scope(abi),
            }
            .to_string()
        };
        let old = at(5);
        assert!(
            old.contains("signals and abstract unix sockets not scoped (needs ABI 6)"),
            "{old}"
        );
        assert!(!old.contains("truncate"), "{old}");
        let new = at(6);
        assert!(
            new.ends_with(", signals and abstract unix sockets scoped"),
            "{new}"
        );
        let first = at(1);
        assert!(
            first.contains("truncate not restricted")
                && first.contains("device ioctls not restricted"),
            "{first}"
        );
    }

    #[test]
    fn the_namespace_level_says_whether_it_scoped() {
        assert_eq!(
            describe_scope(Some(6)),
            "landlock ABI 6: signals and abstract unix sockets scoped"
        );
        assert_eq!(
            describe_scope(None),
            "signals and abstract unix sockets not scoped (needs landlock ABI 6)"
        );
    }

    #[test]
    fn unlisted_paths_get_no_rule() {
        let p = set().prepare(7);
        for never in ["/", "/root", "/data", "/data/notes/bob", "/data/.tenement"] {
            assert!(
                p.rules.iter().all(|(q, _)| q != Path::new(never)),
                "{never}"
            );
        }
    }
}
