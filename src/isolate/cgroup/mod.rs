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

mod detect;
pub mod orphans;
#[cfg(test)]
mod tests;

pub use detect::*;
mod v1;
mod v2;

#[cfg(test)]
mod live_tests;

use std::ffi::CString;
use std::fmt;
use std::io;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rustix::fs::{Mode, OFlags};
use rustix::process::{kill_process, Pid, Signal};

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

// ---- files ------------------------------------------------------------

fn read(path: &Path) -> io::Result<String> {
    std::fs::read_to_string(path)
}

/// Writes `value` to an existing kernel file; never creates one, so a
/// missing interface file shows up as an error instead of a silent no-op.
fn write(path: &Path, value: &str) -> Result<(), CgroupError> {
    use std::io::Write;
    // O_TRUNC: ignored by cgroupfs, needed for the plain files of tests.
    std::fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(path)
        .and_then(|mut f| f.write_all(value.as_bytes()))
        .map_err(|source| CgroupError::Write {
            path: path.to_path_buf(),
            wrote: value.to_string(),
            source,
        })
}

/// The number after `key` in a "key value" per line file (`memory.events`,
/// `memory.stat`, `cpu.stat`, `memory.oom_control`).
fn field(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let (k, v) = l.split_once(' ')?;
        (k == key).then(|| v.trim().parse().ok()).flatten()
    })
}

fn read_u64(path: &Path) -> Option<u64> {
    read(path).ok()?.trim().parse().ok()
}

/// The processes (thread group ids) in the cgroup at `dir`.
pub fn procs(dir: &Path) -> io::Result<Vec<u32>> {
    Ok(read(&dir.join("cgroup.procs"))?
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect())
}

fn mkdir(path: &Path) -> Result<(), CgroupError> {
    match std::fs::create_dir(path) {
        Err(e) if e.kind() != io::ErrorKind::AlreadyExists => Err(CgroupError::Mkdir {
            path: path.to_path_buf(),
            source: e,
        }),
        _ => Ok(()),
    }
}

/// Removes an empty cgroup directory (its interface files go with it; a
/// cgroup with processes or children answers EBUSY). Gone already is fine.
fn rmdir(path: &Path) -> io::Result<()> {
    match std::fs::remove_dir(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        r => r,
    }
}

fn sigkill(pid: u32) {
    // pid 0 or 1 never come out of an instance's cgroup.procs read from the
    // host's pid namespace; refuse them anyway: kill(0) would hit our group.
    if pid <= 1 {
        return;
    }
    if let Some(p) = i32::try_from(pid).ok().and_then(Pid::from_raw) {
        let _ = kill_process(p, Signal::KILL);
    }
}

// ---- the tenement cgroup ------------------------------------------------

/// A v1 hierarchy we use, and our directory in it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct V1Dir {
    controllers: Vec<String>,
    dir: PathBuf,
}

impl V1Dir {
    fn has(&self, controller: &str) -> bool {
        self.controllers.iter().any(|c| c == controller)
    }
}

/// Where every instance cgroup of this server goes. Serialisable, so an
/// upgrade in place hands it to the new image as it is (`create` there
/// would look from the leaf the server moved into and find another place).
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct Tree {
    name: String,
    /// Its directory in the v2 hierarchy, with the controllers enabled for
    /// the instances below it.
    v2: Option<PathBuf>,
    v2_controllers: Vec<Controller>,
    v1: Vec<V1Dir>,
    /// Why v2 is not used although it is mounted, if it is not.
    v2_skipped: Option<String>,
    /// Set when `ten serve` moved itself into a leaf of its v2 cgroup.
    moved_to: Option<PathBuf>,
}

impl Tree {
    /// Creates (or reuses) the tenement cgroup `name` in every hierarchy we
    /// need. Fails only when no hierarchy at all is usable. Must be called
    /// on the thread that owns `ten serve`'s process-wide state, once: on v2
    /// it may move the whole process into a leaf cgroup.
    pub fn create(layout: &Layout, name: &str) -> Result<Tree, CgroupError> {
        let mut tree = Tree {
            name: name.to_string(),
            v2: None,
            v2_controllers: Vec::new(),
            v1: Vec::new(),
            v2_skipped: None,
            moved_to: None,
        };
        if let Some(h) = &layout.v2 {
            match v2::prepare_tree(h, name, std::process::id()) {
                Ok(t) => {
                    tree.v2 = Some(t.dir);
                    tree.v2_controllers = t.controllers;
                    tree.moved_to = t.moved_to;
                }
                Err(e) => tree.v2_skipped = Some(error_chain(&e)),
            }
        }
        let mut wanted: Vec<&str> = Controller::ALL
            .iter()
            .filter(|c| !tree.v2_controllers.contains(c))
            .map(|c| c.name())
            .collect();
        if tree.v2.is_none() {
            wanted.extend(["cpuacct", "freezer"]);
        }
        let mut errors = Vec::new();
        for controller in wanted {
            let Some(h) = layout.v1_with(controller) else {
                continue;
            };
            if tree.v1.iter().any(|d| d.has(controller)) {
                continue;
            }
            let dir = h.own.join(name);
            match mkdir(&dir) {
                Ok(()) => tree.v1.push(V1Dir {
                    controllers: h.controllers.clone(),
                    dir,
                }),
                Err(e) => errors.push(error_chain(&e)),
            }
        }
        if tree.v2.is_none() && tree.v1.is_empty() {
            let mut why = errors;
            why.extend(tree.v2_skipped.clone());
            if why.is_empty() {
                why.push("neither cgroup v2 nor a v1 hierarchy is mounted".to_string());
            }
            return Err(CgroupError::Unavailable {
                why: why.join("; "),
            });
        }
        Ok(tree)
    }

    /// Which version serves `c`, if any.
    pub fn version_of(&self, c: Controller) -> Option<Version> {
        if self.v2_controllers.contains(&c) {
            Some(Version::V2)
        } else if self.v1.iter().any(|d| d.has(c.name())) {
            Some(Version::V1)
        } else {
            None
        }
    }

    /// How instances are killed.
    pub fn kill_method(&self) -> KillMethod {
        kill_method(self.v2.as_deref(), &self.v1)
    }

    /// One line for the start-up log: which version serves each controller,
    /// how instances are killed, and where the cgroups are.
    pub fn describe(&self) -> String {
        let mut parts: Vec<String> = Controller::ALL
            .iter()
            .map(|&c| match self.version_of(c) {
                Some(v) => format!("{}={v}", c.name()),
                None => format!("{}=none", c.name()),
            })
            .collect();
        parts.push(format!("kill=\"{}\"", self.kill_method()));
        parts.push(format!("name={}", self.name));
        for dir in self.dirs() {
            parts.push(format!("at={}", dir.display()));
        }
        if let Some(why) = &self.v2_skipped {
            parts.push(format!("v2_unused=\"{why}\""));
        }
        if let Some(leaf) = &self.moved_to {
            parts.push(format!("moved_self_to={}", leaf.display()));
        }
        parts.join(" ")
    }

    fn dirs(&self) -> impl Iterator<Item = &Path> {
        self.v2
            .as_deref()
            .into_iter()
            .chain(self.v1.iter().map(|d| d.dir.as_path()))
    }

    /// Creates (or reuses) the cgroup of one instance and sets its limits.
    /// A reused cgroup is emptied first: what is in it was left by an
    /// earlier run and must not share the new run's limits. Fails, naming
    /// the setting, when a limit needs a controller nobody offers.
    pub fn instance(&self, name: &str, limits: &Limits) -> Result<Instance, CgroupError> {
        for c in Controller::ALL {
            if limits.wants(c) && self.version_of(c).is_none() {
                return Err(CgroupError::NoController {
                    key: Limits::key(c),
                    controller: c.name(),
                });
            }
        }
        let inst = self.handle(name, *limits);
        for dir in inst.dirs() {
            mkdir(dir)?;
        }
        if inst.populated() {
            inst.kill_and_wait(KILL_WAIT);
        }
        inst.apply_limits()?;
        let mut inst = inst;
        inst.oom_seen = inst.oom_count().unwrap_or(0);
        Ok(inst)
    }

    fn handle(&self, name: &str, limits: Limits) -> Instance {
        Instance {
            name: name.to_string(),
            v2: self.v2.as_ref().map(|d| d.join(name)),
            v2_controllers: self.v2_controllers.clone(),
            v1: self
                .v1
                .iter()
                .map(|d| V1Dir {
                    controllers: d.controllers.clone(),
                    dir: d.dir.join(name),
                })
                .collect(),
            limits,
            oom_seen: 0,
        }
    }

    /// The cgroup of an instance whose processes run on (handed over by
    /// an upgrade in place): nothing is created, killed or written.
    pub fn adopt(&self, name: &str, limits: &Limits) -> Instance {
        let mut inst = self.handle(name, *limits);
        inst.oom_seen = inst.oom_count().unwrap_or(0);
        inst
    }

    /// Kills and removes every instance cgroup below the tree: what a
    /// previous run left, or what is left at shutdown. Returns the names of
    /// those that still had processes.
    pub fn sweep(&self) -> Vec<String> {
        self.sweep_except(&[])
    }

    /// `sweep`, leaving the cgroups named in `keep` (adopted instances).
    pub fn sweep_except(&self, keep: &[String]) -> Vec<String> {
        let mut names: Vec<String> = Vec::new();
        for dir in self.dirs() {
            let Ok(entries) = std::fs::read_dir(dir) else {
                continue;
            };
            for e in entries.flatten() {
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    if let Some(n) = e.file_name().to_str() {
                        if !names.iter().any(|x| x == n) {
                            names.push(n.to_string());
                        }
                    }
                }
            }
        }
        let mut busy = Vec::new();
        for n in names.into_iter().filter(|n| !keep.contains(n)) {
            let inst = self.handle(&n, Limits::default());
            if inst.populated() {
                busy.push(n);
                inst.kill_and_wait(KILL_WAIT);
            }
            let _ = inst.remove();
        }
        busy
    }

    /// Sweeps, then removes the tree's own directories. Errors: the first
    /// directory that could not be removed (EBUSY: something still in it).
    pub fn remove(&self) -> io::Result<()> {
        self.sweep();
        let mut first = Ok(());
        for dir in self.dirs() {
            if let Err(e) = rmdir(dir) {
                if first.is_ok() {
                    first = Err(io::Error::new(
                        e.kind(),
                        format!("rmdir {}: {e}", dir.display()),
                    ));
                }
            }
        }
        first
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

fn kill_method(v2: Option<&Path>, v1: &[V1Dir]) -> KillMethod {
    match v2 {
        Some(dir) if dir.join("cgroup.kill").exists() => KillMethod::V2Kill,
        Some(_) => KillMethod::Freeze(Version::V2),
        None if v1.iter().any(|d| d.has("freezer")) => KillMethod::Freeze(Version::V1),
        None => KillMethod::Repeat,
    }
}

/// How long `kill_and_wait` waits for an instance's processes to be gone.
/// SIGKILLed processes leave within milliseconds unless they are stuck in
/// the kernel or free gigabytes of memory.
pub const KILL_WAIT: Duration = Duration::from_secs(2);

// ---- one instance ---------------------------------------------------------

/// The cgroup of one instance: its directory in each hierarchy in use.
#[derive(Debug)]
pub struct Instance {
    name: String,
    v2: Option<PathBuf>,
    v2_controllers: Vec<Controller>,
    v1: Vec<V1Dir>,
    limits: Limits,
    /// OOM kills already reported (the counter's value at creation, then
    /// at the last `take_oom_kills`).
    oom_seen: u64,
}

impl Instance {
    /// Its name below the tree (`service@id`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The limits it was created with.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    fn dirs(&self) -> impl Iterator<Item = &Path> {
        self.v2
            .as_deref()
            .into_iter()
            .chain(self.v1.iter().map(|d| d.dir.as_path()))
    }

    fn v1_dir(&self, controller: &str) -> Option<&Path> {
        self.v1
            .iter()
            .find(|d| d.has(controller))
            .map(|d| d.dir.as_path())
    }

    /// The directory that holds controller `c`'s files, and its version.
    fn place(&self, c: Controller) -> Option<(Version, &Path)> {
        if self.v2_controllers.contains(&c) {
            return self.v2.as_deref().map(|d| (Version::V2, d));
        }
        self.v1_dir(c.name()).map(|d| (Version::V1, d))
    }

    fn apply_limits(&self) -> Result<(), CgroupError> {
        let l = &self.limits;
        if let Some((v, dir)) = self.place(Controller::Memory) {
            match v {
                Version::V2 => v2::set_memory(dir, l.memory_bytes)?,
                Version::V1 => v1::set_memory(dir, l.memory_bytes)?,
            }
        }
        if let Some((v, dir)) = self.place(Controller::Cpu) {
            match v {
                Version::V2 => v2::set_cpu(dir, l.cpu_shares)?,
                Version::V1 => v1::set_cpu(dir, l.cpu_shares)?,
            }
        }
        if let Some((_, dir)) = self.place(Controller::Pids) {
            // pids.max reads and writes the same in both versions.
            v2::set_pids(dir, l.pids_max)?;
        }
        Ok(())
    }

    /// What the spawn path needs to start a child inside this cgroup. Opens
    /// the v2 directory (for `CLONE_INTO_CGROUP`) and builds every path the
    /// child writes to, so the child itself allocates nothing.
    pub fn join(&self) -> Result<Join, CgroupError> {
        let dir = match &self.v2 {
            Some(d) => Some(
                rustix::fs::open(
                    d.as_path(),
                    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
                    Mode::empty(),
                )
                .map_err(|e| CgroupError::Open {
                    path: d.clone(),
                    source: e.into(),
                })?,
            ),
            None => None,
        };
        let mut files = Vec::new();
        for d in self.dirs() {
            let path = d.join("cgroup.procs");
            let c = CString::new(path.as_os_str().as_bytes()).map_err(|_| CgroupError::Open {
                path: path.clone(),
                source: io::Error::from(io::ErrorKind::InvalidInput),
            })?;
            files.push(c);
        }
        Ok(Join { dir, files })
    }

    /// The processes in it (from the first hierarchy that answers).
    pub fn pids(&self) -> Vec<u32> {
        self.dirs().find_map(|d| procs(d).ok()).unwrap_or_default()
    }

    /// Whether any process is still in it, in any hierarchy.
    pub fn populated(&self) -> bool {
        if let Some(p) = self.v2.as_deref().and_then(v2::populated) {
            if p {
                return true;
            }
        }
        self.dirs().any(|d| procs(d).is_ok_and(|p| !p.is_empty()))
    }

    /// Sends SIGKILL to every process in it, once, without waiting for them
    /// to go (see `kill_and_wait`). With a freezer, waits up to 100 ms for
    /// the freeze to take. Callers repeat it until `populated` is false.
    pub fn kill(&self) {
        self.kill_with(kill_method(self.v2.as_deref(), &self.v1));
    }

    fn kill_with(&self, method: KillMethod) {
        match method {
            KillMethod::V2Kill => {
                let dir = self
                    .v2
                    .as_deref()
                    .expect("V2Kill is chosen only with a v2 dir");
                if v2::kill(dir).is_err() {
                    self.kill_listed();
                }
            }
            KillMethod::Freeze(v) => {
                let dir = match v {
                    Version::V2 => self.v2.as_deref(),
                    Version::V1 => self.v1_dir("freezer"),
                }
                .expect("Freeze is chosen only with a freezer");
                // If the freeze does not take within the wait, kill anyway:
                // `kill_and_wait` repeats until nothing is left.
                match v {
                    Version::V2 => {
                        let _ = v2::freeze(dir, true).is_ok() && wait_for(|| v2::frozen(dir));
                    }
                    Version::V1 => {
                        let _ = v1::freeze(dir, true).is_ok() && wait_for(|| v1::frozen(dir));
                    }
                }
                self.kill_listed();
                // SIGKILL takes effect on v2 frozen tasks at once; a v1
                // frozen task dies only once thawed.
                let _ = match v {
                    Version::V2 => v2::freeze(dir, false),
                    Version::V1 => v1::freeze(dir, false),
                };
            }
            KillMethod::Repeat => self.kill_listed(),
        }
    }

    fn kill_listed(&self) {
        for d in self.dirs() {
            for pid in procs(d).unwrap_or_default() {
                sigkill(pid);
            }
        }
    }

    /// Kills everything in it and waits up to `within` for it to be empty.
    /// Returns whether it is empty. Blocks the calling thread.
    pub fn kill_and_wait(&self, within: Duration) -> bool {
        self.kill_and_wait_with(within, kill_method(self.v2.as_deref(), &self.v1))
    }

    fn kill_and_wait_with(&self, within: Duration, method: KillMethod) -> bool {
        let end = Instant::now() + within;
        loop {
            self.kill_with(method);
            if !self.populated() {
                return true;
            }
            for _ in 0..10 {
                std::thread::sleep(Duration::from_millis(2));
                if !self.populated() {
                    return true;
                }
            }
            if Instant::now() >= end {
                return false;
            }
        }
    }

    /// Removes its directories. Errors with EBUSY while a process is left.
    pub fn remove(&self) -> io::Result<()> {
        let mut first = Ok(());
        for d in self.dirs() {
            if let Err(e) = rmdir(d) {
                if first.is_ok() {
                    first = Err(io::Error::new(
                        e.kind(),
                        format!("rmdir {}: {e}", d.display()),
                    ));
                }
            }
        }
        first
    }

    fn oom_count(&self) -> Option<u64> {
        let (v, dir) = self.place(Controller::Memory)?;
        match v {
            Version::V2 => v2::oom_kills(dir),
            Version::V1 => v1::oom_kills(dir),
        }
    }

    /// How many processes the kernel killed for running out of this
    /// cgroup's memory since the last call (or since creation). None without
    /// a memory controller.
    pub fn take_oom_kills(&mut self) -> Option<u64> {
        let now = self.oom_count()?;
        let new = now.saturating_sub(self.oom_seen);
        self.oom_seen = now;
        Some(new)
    }

    /// Memory and CPU of the whole tree of processes.
    pub fn stats(&self) -> Stats {
        self.meter().stats()
    }

    /// A reader of its usage that other threads can keep (the front reads
    /// it for `/metrics` and `/api/instances`).
    pub fn meter(&self) -> Meter {
        // v2's cpu.stat counts usage even without the cpu controller.
        let cpu = match (&self.v2, self.v1_dir("cpuacct")) {
            (Some(d), _) => Some((Version::V2, d.clone())),
            (None, Some(d)) => Some((Version::V1, d.to_path_buf())),
            (None, None) => None,
        };
        Meter {
            memory: self
                .place(Controller::Memory)
                .map(|(v, d)| (v, d.to_path_buf())),
            cpu,
        }
    }
}

/// Where an instance's usage is read: the memory and CPU accounting files'
/// directories. Reading blocks only on cgroupfs (no disk); any thread.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Meter {
    memory: Option<(Version, PathBuf)>,
    cpu: Option<(Version, PathBuf)>,
}

impl Meter {
    /// Memory and CPU of the whole tree; None for what cannot be read (the
    /// cgroup is gone, or no hierarchy accounts it).
    pub fn stats(&self) -> Stats {
        let memory_bytes = self.memory.as_ref().and_then(|(v, d)| match v {
            Version::V2 => v2::memory(d),
            Version::V1 => v1::memory(d),
        });
        let cpu = self.cpu.as_ref().and_then(|(v, d)| match v {
            Version::V2 => v2::cpu_time(d),
            Version::V1 => v1::cpu_time(d),
        });
        Stats { memory_bytes, cpu }
    }
}

fn wait_for(mut cond: impl FnMut() -> bool) -> bool {
    for _ in 0..100 {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    cond()
}

// ---- entering the cgroup from a new child ------------------------------

/// What a new child needs to start inside an instance's cgroup, prepared in
/// the parent: the v2 directory as an fd for clone3's `CLONE_INTO_CGROUP`,
/// and every `cgroup.procs` file as a C string for the child to write "0"
/// to (the calling process) before it execs.
#[derive(Debug)]
pub struct Join {
    // Unused while spawns write themselves into v2 instead of using
    // CLONE_INTO_CGROUP (see `isolate::spawn` for the kernel issue).
    #[allow(dead_code)]
    dir: Option<OwnedFd>,
    files: Vec<CString>,
}

impl Join {
    /// The instance's v2 directory, for `clone_args.cgroup` with
    /// `CLONE_INTO_CGROUP` (Linux 5.7+). None without v2.
    #[allow(dead_code)]
    pub fn clone_into(&self) -> Option<BorrowedFd<'_>> {
        use std::os::fd::AsFd;
        self.dir.as_ref().map(|d| d.as_fd())
    }

    /// Every `cgroup.procs` file the child must enter, v2 first (so a
    /// child created with `clone_into` skips the first).
    pub fn files(&self) -> &[CString] {
        &self.files
    }
}
