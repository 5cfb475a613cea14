//! The tenement cgroup of one server (`Tree`): created once at start-up in
//! every hierarchy in use, the place each instance's cgroup is made, swept
//! of what a previous run left, and removed at shutdown.

use std::io;
use std::path::{Path, PathBuf};

use super::*;

/// A v1 hierarchy we use, and our directory in it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(super) struct V1Dir {
    pub(super) controllers: Vec<String>,
    pub(super) dir: PathBuf,
}

impl V1Dir {
    pub(super) fn has(&self, controller: &str) -> bool {
        self.controllers.iter().any(|c| c == controller)
    }
}

/// Where every instance cgroup of this server goes. Serialisable, so an
/// upgrade in place hands it to the new image as it is (`create` there
/// would look from the leaf the server moved into and find another place).
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct Tree {
    pub(super) name: String,
    /// Its directory in the v2 hierarchy, with the controllers enabled for
    /// the instances below it.
    pub(super) v2: Option<PathBuf>,
    pub(super) v2_controllers: Vec<Controller>,
    pub(super) v1: Vec<V1Dir>,
    /// Why v2 is not used although it is mounted, if it is not.
    pub(super) v2_skipped: Option<String>,
    /// Set when `ten serve` moved itself into a leaf of its v2 cgroup.
    pub(super) moved_to: Option<PathBuf>,
    /// The kernel creates a child inside a cgroup (`CLONE_INTO_CGROUP`,
    /// Linux 5.7+); older ones refuse the flag, and their children write
    /// themselves into v2 too. Absent from an older image's hand-over:
    /// asked of the kernel then.
    #[serde(default = "this_kernel_has_clone_into_cgroup")]
    pub(super) clone_into: bool,
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
            clone_into: this_kernel_has_clone_into_cgroup(),
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
                Ok(_) => tree.v1.push(V1Dir {
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

    /// Whether starting an instance moves its process into a cgroup (a
    /// `cgroup.procs` write) rather than having it created inside one: v1
    /// hierarchies, or v2 on kernels without `CLONE_INTO_CGROUP`.
    pub fn moves_on_start(&self) -> bool {
        !self.v1.is_empty() || (self.v2.is_some() && !self.clone_into)
    }

    pub(super) fn dirs(&self) -> impl Iterator<Item = &Path> {
        self.v2
            .as_deref()
            .into_iter()
            .chain(self.v1.iter().map(|d| d.dir.as_path()))
    }

    /// Creates (or reuses) the cgroup of one instance and sets its limits.
    /// A reused cgroup is emptied first: what is in it was left by an
    /// earlier run and must not share the new run's limits. Its v2 cgroup
    /// is then made anew (see `Instance::renew_v2`), so the child can be
    /// created inside it; one made now is new already. Fails, naming the
    /// setting, when a limit needs a controller nobody offers.
    pub fn instance(&self, name: &str, limits: &Limits) -> Result<Instance, CgroupError> {
        for c in Controller::ALL {
            if limits.wants(c) && self.version_of(c).is_none() {
                return Err(CgroupError::NoController {
                    key: Limits::key(c),
                    controller: c.name(),
                });
            }
        }
        let mut inst = self.handle(name, *limits);
        let mut made_now = true;
        for dir in inst.dirs() {
            made_now &= mkdir(dir)?;
        }
        if made_now {
            // Empty, with the kernel's defaults, no OOM kill counted and a
            // v2 folder nothing was ever killed in: nothing to empty,
            // renew or read back.
            inst.fresh_v2 = inst.v2.is_some() && inst.clone_into;
        } else {
            if inst.populated() {
                inst.kill_and_wait(KILL_WAIT);
            }
            inst.renew_v2()?;
            inst.oom_seen = inst.oom_count().unwrap_or(0);
        }
        inst.apply_limits(made_now)?;
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
            oom_counter: None,
            fresh_v2: false,
            ready: false,
            clone_into: self.clone_into,
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
        rmdir_all(self.dirs())
    }
}

fn this_kernel_has_clone_into_cgroup() -> bool {
    rustix::system::uname()
        .release()
        .to_str()
        .is_ok_and(kernel_has_clone_into_cgroup)
}

/// Whether a kernel release (`uname -r`, e.g. `6.18.44-fc`) is Linux 5.7 or
/// later, which creates a child inside a cgroup (`CLONE_INTO_CGROUP`).
pub(super) fn kernel_has_clone_into_cgroup(release: &str) -> bool {
    let mut parts = release.split(['.', '-']);
    let mut number = || parts.next().and_then(|p| p.parse::<u32>().ok());
    match (number(), number()) {
        (Some(major), Some(minor)) => (major, minor) >= (5, 7),
        _ => false,
    }
}

pub(super) fn kill_method(v2: Option<&Path>, v1: &[V1Dir]) -> KillMethod {
    match v2 {
        Some(dir) if dir.join("cgroup.kill").exists() => KillMethod::V2Kill,
        Some(_) => KillMethod::Freeze(Version::V2),
        None if v1.iter().any(|d| d.has("freezer")) => KillMethod::Freeze(Version::V1),
        None => KillMethod::Repeat,
    }
}
