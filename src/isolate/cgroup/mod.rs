//! Cgroups for instances: one tenement cgroup per server, one cgroup per
//! instance below it, used for limits (`memory_limit_mb`, `cpu_shares`,
//! `pids_max`), for accounting (memory and CPU of the whole process tree),
//! for noticing OOM kills, and for killing everything an instance started
//! (nothing escapes by forking or `setsid`).
//!
//! Which hierarchy: cgroup v2 for each controller enabled there (in our own
//! cgroup's `cgroup.controllers`), else the v1 hierarchy that carries it. A
//! v2 hierarchy without controllers (hybrid systems) still tracks and kills
//! (`cgroup.kill`) and accounts CPU (`cpu.stat`); without v2, v1's freezer
//! freezes the cgroup before it is killed. Our cgroups go inside our own
//! cgroup in each hierarchy (under systemd that is the delegated subtree),
//! except on v2 when our own cgroup cannot enable controllers for children
//! (see `v2::base`).
//!
//! Called from the supervisor thread: `Layout::detect` and `Tree::create` once
//! at start-up of `ten serve` as root, `Tree::instance` before each spawn,
//! `Instance::join` hands the spawn path what the child needs to enter the
//! cgroup before it execs. Every function that reads or writes kernel files
//! takes the directory as a value, so tests point it at a fake tree. Nothing
//! here writes outside the cgroups it created, except moving `ten serve` into
//! a leaf of its own v2 cgroup (the kernel's "no internal processes" rule).
//! `orphans` makes `ten serve` a child subreaper and reaps what it inherits.
//!
//! Files: this one holds the shared types (versions, controllers, limits,
//! errors); `detect` finds the hierarchies, `tree` the tenement cgroup,
//! `instance` one instance's cgroup and how a child enters it, `files` the
//! kernel-file helpers, `v1` and `v2` each version's interface files.

mod detect;
mod files;
mod instance;
pub mod orphans;
#[cfg(test)]
mod tests;
mod tree;

pub use detect::*;
pub use files::procs;
use files::{field, mkdir, oom_kills, read, read_u64, rmdir, rmdir_all, sigkill, wait_for, write};
pub use instance::{Instance, Join, Meter};
pub use tree::Tree;
use tree::{kill_method, V1Dir};
mod v1;
mod v2;

#[cfg(test)]
mod live_tests;

use std::fmt;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A cgroup hierarchy version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    V1,
    V2,
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Version::V1 => "v1",
            Version::V2 => "v2",
        })
    }
}

/// The controllers limits need.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Controller {
    Memory,
    Cpu,
    Pids,
}

impl Controller {
    pub const ALL: [Controller; 3] = [Controller::Memory, Controller::Cpu, Controller::Pids];

    /// The kernel's name for it, in both versions.
    pub fn name(self) -> &'static str {
        match self {
            Controller::Memory => "memory",
            Controller::Cpu => "cpu",
            Controller::Pids => "pids",
        }
    }
}

/// The limits of one instance, in kernel units. `None` is "no limit" (or the
/// kernel's default weight), written out so a reused cgroup loses old limits.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Limits {
    pub memory_bytes: Option<u64>,
    /// cgroup v1 `cpu.shares` (default 1024); mapped to `cpu.weight` on v2.
    pub cpu_shares: Option<u64>,
    pub pids_max: Option<u64>,
}

impl Limits {
    /// From the service's settings (`memory_limit_mb` in MiB).
    pub fn new(
        memory_limit_mb: Option<u64>,
        cpu_shares: Option<u64>,
        pids_max: Option<u64>,
    ) -> Limits {
        Limits {
            memory_bytes: memory_limit_mb.map(|mb| mb.saturating_mul(1 << 20)),
            cpu_shares,
            pids_max,
        }
    }

    fn wants(&self, c: Controller) -> bool {
        match c {
            Controller::Memory => self.memory_bytes.is_some(),
            Controller::Cpu => self.cpu_shares.is_some(),
            Controller::Pids => self.pids_max.is_some(),
        }
    }

    /// The setting that asks for `c`, as the config file names it.
    fn key(c: Controller) -> &'static str {
        match c {
            Controller::Memory => "memory_limit_mb",
            Controller::Cpu => "cpu_shares",
            Controller::Pids => "pids_max",
        }
    }
}

/// What the cgroup says an instance uses, its whole process tree included.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Memory in use, without the page cache the kernel can drop at once
    /// (inactive file pages): what an OOM kill is about.
    pub memory_bytes: Option<u64>,
    /// CPU time used since the cgroup was created, user and system.
    pub cpu: Option<Duration>,
}

/// How an instance's processes are killed, strongest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KillMethod {
    /// v2 `cgroup.kill` (Linux 5.14+): one write, the kernel kills every
    /// process, including ones forked while it works.
    V2Kill,
    /// Freeze (v2 `cgroup.freeze` or v1 `freezer.state`), SIGKILL each pid,
    /// thaw: a frozen process cannot fork between the listing and the kill.
    Freeze(Version),
    /// SIGKILL each pid in `cgroup.procs` again until none is left.
    Repeat,
}

impl fmt::Display for KillMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KillMethod::V2Kill => f.write_str("v2 cgroup.kill"),
            KillMethod::Freeze(Version::V2) => f.write_str("v2 freeze then kill"),
            KillMethod::Freeze(Version::V1) => f.write_str("v1 freezer then kill"),
            KillMethod::Repeat => f.write_str("kill every pid until empty"),
        }
    }
}

/// Why a cgroup could not be found, created or set up.
#[derive(Debug)]
pub enum CgroupError {
    /// A file that describes the hierarchies could not be read.
    Read {
        path: PathBuf,
        source: io::Error,
    },
    /// No hierarchy is mounted, or none let us create our cgroup.
    Unavailable {
        why: String,
    },
    Mkdir {
        path: PathBuf,
        source: io::Error,
    },
    Write {
        path: PathBuf,
        wrote: String,
        source: io::Error,
    },
    Open {
        path: PathBuf,
        source: io::Error,
    },
    /// A limit is set but no hierarchy has the controller it needs. We never
    /// run an instance without a limit it asks for.
    NoController {
        key: &'static str,
        controller: &'static str,
    },
}

impl fmt::Display for CgroupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CgroupError::Read { path, .. } => write!(f, "read {}", path.display()),
            CgroupError::Unavailable { why } => write!(f, "no usable cgroup hierarchy: {why}"),
            CgroupError::Mkdir { path, .. } => write!(f, "mkdir {}", path.display()),
            CgroupError::Write { path, wrote, .. } => {
                write!(f, "write {wrote} to {}", path.display())
            }
            CgroupError::Open { path, .. } => write!(f, "open {}", path.display()),
            CgroupError::NoController { key, controller } => write!(
                f,
                "{key} needs the {controller} cgroup controller, which neither cgroup v2 nor v1 offers here"
            ),
        }
    }
}

impl std::error::Error for CgroupError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            CgroupError::Read { source, .. }
            | CgroupError::Mkdir { source, .. }
            | CgroupError::Write { source, .. }
            | CgroupError::Open { source, .. } => Some(source),
            CgroupError::Unavailable { .. } | CgroupError::NoController { .. } => None,
        }
    }
}

/// An error and its causes joined by ": ", for log lines and API errors.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

/// How long `kill_and_wait` waits for an instance's processes to be gone.
/// SIGKILLed processes leave within milliseconds unless they are stuck in
/// the kernel or free gigabytes of memory.
pub const KILL_WAIT: Duration = Duration::from_secs(2);
