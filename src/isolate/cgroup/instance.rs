//! One instance's cgroup (`Instance`): its limits, its processes, killing
//! all of them, OOM kills and usage (`Meter`), and what a new child needs to
//! start inside it (`Join`).

use std::ffi::CString;
use std::io;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rustix::fs::{Mode, OFlags};

use super::*;

/// The cgroup of one instance: its directory in each hierarchy in use.
#[derive(Debug)]
pub struct Instance {
    pub(super) name: String,
    pub(super) v2: Option<PathBuf>,
    pub(super) v2_controllers: Vec<Controller>,
    pub(super) v1: Vec<V1Dir>,
    pub(super) limits: Limits,
    /// OOM kills already reported (the counter's value at creation, then
    /// at the last `take_oom_kills`).
    pub(super) oom_seen: u64,
    /// The file the OOM kill counter is read from, kept open after the
    /// first read: the supervisor reads a tenth of the running instances'
    /// counters every second, and a read of an open file is one call where
    /// opening it anew is four more and a walk of its path.
    pub(super) oom_counter: Option<std::fs::File>,
    /// Its v2 cgroup was made anew for this start (`renew_v2`): a child may
    /// be created in it with `CLONE_INTO_CGROUP`.
    pub(super) fresh_v2: bool,
    /// The kernel has `CLONE_INTO_CGROUP` (see `Tree::clone_into`).
    pub(super) clone_into: bool,
    /// Emptied after its last process and its v2 folder made anew: the
    /// next start with the same limits takes it as it is
    /// (`prepare_next_start`).
    pub(super) ready: bool,
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

    pub(super) fn dirs(&self) -> impl Iterator<Item = &Path> {
        self.v2
            .as_deref()
            .into_iter()
            .chain(self.v1.iter().map(|d| d.dir.as_path()))
    }

    pub(super) fn v1_dir(&self, controller: &str) -> Option<&Path> {
        self.v1
            .iter()
            .find(|d| d.has(controller))
            .map(|d| d.dir.as_path())
    }

    /// The directory that holds controller `c`'s files, and its version.
    pub(super) fn place(&self, c: Controller) -> Option<(Version, &Path)> {
        if self.v2_controllers.contains(&c) {
            return self.v2.as_deref().map(|d| (Version::V2, d));
        }
        self.v1_dir(c.name()).map(|d| (Version::V1, d))
    }

    /// Writes its limits, and the kernel's defaults where it has none, so
    /// a reused cgroup loses the limits of an earlier start. `made_now`:
    /// its folders were all made for this start and hold the defaults
    /// already, so only the limits it has are written (and v2's
    /// `memory.oom.group`, which is not a default).
    pub(super) fn apply_limits(&self, made_now: bool) -> Result<(), CgroupError> {
        let l = &self.limits;
        let needed = |c: Controller| !made_now || l.wants(c);
        if let Some((v, dir)) = self.place(Controller::Memory) {
            match v {
                Version::V2 => v2::set_memory(dir, l.memory_bytes)?,
                Version::V1 if needed(Controller::Memory) => v1::set_memory(dir, l.memory_bytes)?,
                Version::V1 => {}
            }
        }
        if let Some((v, dir)) = self
            .place(Controller::Cpu)
            .filter(|_| needed(Controller::Cpu))
        {
            match v {
                Version::V2 => v2::set_cpu(dir, l.cpu_shares)?,
                Version::V1 => v1::set_cpu(dir, l.cpu_shares)?,
            }
        }
        if let Some((_, dir)) = self
            .place(Controller::Pids)
            .filter(|_| needed(Controller::Pids))
        {
            // pids.max reads and writes the same in both versions.
            v2::set_pids(dir, l.pids_max)?;
        }
        Ok(())
    }

    /// Removes its (empty) v2 cgroup and makes it again, so a child can be
    /// created in it with `CLONE_INTO_CGROUP`. Why: a child created in a
    /// cgroup is compared with the cgroup's `cgroup.kill` count and killed
    /// at birth if they differ, and on some kernels (seen on 6.18) the count
    /// it is compared with is the parent's, so once an instance's cgroup was
    /// killed (every `ten stop`), each child created in it would die at
    /// once; a new cgroup starts from no kill. Being created inside also
    /// skips the migration a `cgroup.procs` write is, which takes the
    /// kernel's global cgroup threadgroup lock for writing and waits for an
    /// RCU grace period (milliseconds; see the README's Isolation figures).
    /// A cgroup that cannot be removed (a process still in it) is kept, and
    /// the child writes itself in instead, as on kernels before 5.7.
    pub(super) fn renew_v2(&mut self) -> Result<(), CgroupError> {
        self.fresh_v2 = false;
        let Some(d) = self.v2.as_ref().filter(|_| self.clone_into) else {
            return Ok(());
        };
        if rmdir(d).is_err() {
            return Ok(());
        }
        mkdir(d)?;
        self.fresh_v2 = true;
        if matches!(self.place(Controller::Memory), Some((Version::V2, _))) {
            // The new folder counts OOM kills from 0: what was seen of the
            // old one's count must not hide the next run's kills.
            self.oom_seen = 0;
            self.oom_counter = None;
        }
        Ok(())
    }

    /// After its process ended: when nothing is left in it, readies it for
    /// the next start now, off the path of the request that will wake it
    /// (its v2 folder made anew and given its limits again, as a new folder
    /// has the kernel's defaults; its v1 folders keep theirs), so that
    /// start only opens it (`take_ready`). Something left in it: the next
    /// start empties and renews it as `Tree::instance` does.
    pub fn prepare_next_start(&mut self) {
        self.ready =
            !self.populated() && self.renew_v2().is_ok() && self.apply_limits(true).is_ok();
    }

    /// Whether it stands ready (`prepare_next_start`) for a start with
    /// `limits`; once only.
    pub fn take_ready(&mut self, limits: &Limits) -> bool {
        std::mem::take(&mut self.ready) && self.limits == *limits
    }

    /// What the spawn path needs to start a child inside this cgroup: the
    /// v2 directory opened for `CLONE_INTO_CGROUP` when it was made anew
    /// for this start, and every `cgroup.procs` path the child may write
    /// to, so the child itself allocates nothing.
    pub fn join(&self) -> Result<Join, CgroupError> {
        let dir = match self.v2.as_ref().filter(|_| self.fresh_v2) {
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

    pub(super) fn kill_with(&self, method: KillMethod) {
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

    pub(super) fn kill_listed(&self) {
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

    pub(super) fn kill_and_wait_with(&self, within: Duration, method: KillMethod) -> bool {
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
        rmdir_all(self.dirs())
    }

    pub(super) fn oom_count(&mut self) -> Option<u64> {
        if let Some(n) = self.oom_counter.as_ref().and_then(oom_kills) {
            return Some(n);
        }
        // Not open yet, or its cgroup was made anew since: open it again.
        let (v, dir) = self.place(Controller::Memory)?;
        let name = match v {
            Version::V2 => v2::OOM_COUNTER,
            Version::V1 => v1::OOM_COUNTER,
        };
        self.oom_counter = std::fs::File::open(dir.join(name)).ok();
        oom_kills(self.oom_counter.as_ref()?)
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
    #[cfg(test)]
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

// ---- entering the cgroup from a new child ------------------------------

/// What a new child needs to start inside an instance's cgroup, prepared in
/// the parent: the v2 directory as an fd for clone3's `CLONE_INTO_CGROUP`,
/// and every `cgroup.procs` file as a C string for the child to write "0"
/// to (the calling process) before it execs.
#[derive(Debug)]
pub struct Join {
    /// Some only for a v2 cgroup made anew for this start.
    dir: Option<OwnedFd>,
    files: Vec<CString>,
}

impl Join {
    /// The instance's v2 directory, for `clone_args.cgroup` with
    /// `CLONE_INTO_CGROUP` (Linux 5.7+). None without v2, or when its v2
    /// cgroup could not be made anew (the child then writes itself in).
    pub fn clone_into(&self) -> Option<BorrowedFd<'_>> {
        use std::os::fd::AsFd;
        self.dir.as_ref().map(|d| d.as_fd())
    }

    /// Every `cgroup.procs` file, v2 first: what a child started without
    /// `clone_into` (std's fork) writes itself into.
    pub fn files(&self) -> &[CString] {
        &self.files
    }

    /// What a child created with `clone_into` (when there is one) still
    /// writes itself into: every file but the v2 one.
    pub fn after_clone(&self) -> &[CString] {
        match self.dir {
            Some(_) => &self.files[1..],
            None => &self.files,
        }
    }
}
