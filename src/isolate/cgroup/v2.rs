//! cgroup v2 files: where the tenement cgroup goes in the unified hierarchy
//! and which controllers it gets, limits (`memory.max`, `memory.swap.max`,
//! `memory.oom.group`, `cpu.weight`, `pids.max`), OOM kills
//! (`memory.events`), usage (`memory.current`, `cpu.stat`), and killing
//! (`cgroup.kill`, or `cgroup.freeze` before Linux 5.14).
//!
//! Every function takes the cgroup's directory, so tests use a temp dir of
//! plain files. See Documentation/admin-guide/cgroup-v2.rst in the kernel.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{field, mkdir, procs, read, read_u64, write, CgroupError, Controller, Hierarchy};

/// The tenement cgroup in the v2 hierarchy.
#[derive(Debug)]
pub(super) struct V2Tree {
    pub dir: PathBuf,
    /// Enabled for the instance cgroups below `dir`.
    pub controllers: Vec<Controller>,
    /// The leaf `ten serve` moved itself into, if it had to.
    pub moved_to: Option<PathBuf>,
}

/// Where the tenement cgroup goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Base {
    /// Inside our own cgroup, as it is.
    Own,
    /// Inside our own cgroup, after moving `ten serve` into a leaf below it:
    /// a cgroup that enables controllers for its children may hold no
    /// process itself ("no internal processes", cgroup-v2.rst), and we are
    /// the only process in it (a delegated systemd service).
    MoveSelfThenOwn,
    /// At the root of the hierarchy: our own cgroup has other processes we
    /// must not move. The root cgroup is exempt from the rule.
    Root,
}

/// Pure: where the tenement cgroup goes. `own_is_root`: our cgroup is the
/// real root (no `cgroup.type` file); `wants_controllers`: some controller
/// must be enabled below it; `own_procs`: the processes in our cgroup.
pub(super) fn base(own_is_root: bool, wants_controllers: bool, own_procs: &[u32], me: u32) -> Base {
    if own_is_root || !wants_controllers {
        // Without a controller enabled, processes may sit next to child
        // cgroups: the tree is used to track and kill, nothing else.
        Base::Own
    } else if own_procs == [me] {
        Base::MoveSelfThenOwn
    } else {
        Base::Root
    }
}

/// The leaf `ten serve` moves into when it must (`Base::MoveSelfThenOwn`).
const SERVER_LEAF: &str = "supervisor";

/// Finds the base, enables what it can there and creates `base/name` with
/// the same controllers enabled for its children.
pub(super) fn prepare_tree(h: &Hierarchy, name: &str, me: u32) -> Result<V2Tree, CgroupError> {
    let listed = read(&h.own.join("cgroup.controllers")).map_err(|source| CgroupError::Read {
        path: h.own.join("cgroup.controllers"),
        source,
    })?;
    let available: Vec<Controller> = Controller::ALL
        .into_iter()
        .filter(|c| listed.split_whitespace().any(|l| l == c.name()))
        .collect();
    let own_is_root = !h.own.join("cgroup.type").exists();
    let own_procs = procs(&h.own).unwrap_or_default();
    let mut moved_to = None;
    let base_dir = match base(own_is_root, !available.is_empty(), &own_procs, me) {
        Base::Own => h.own.clone(),
        Base::MoveSelfThenOwn => {
            let leaf = h.own.join(SERVER_LEAF);
            mkdir(&leaf)?;
            write(&leaf.join("cgroup.procs"), &me.to_string())?;
            moved_to = Some(leaf);
            h.own.clone()
        }
        Base::Root => {
            if h.mount.join("cgroup.type").exists() {
                return Err(CgroupError::Unavailable {
                    why: format!(
                        "{} holds other processes, so it cannot enable controllers for children, and the hierarchy's root is not ours",
                        h.own.display()
                    ),
                });
            }
            h.mount.clone()
        }
    };
    let enabled = enable(&base_dir, &available);
    let dir = base_dir.join(name);
    mkdir(&dir)?;
    let controllers = enable(&dir, &enabled);
    Ok(V2Tree {
        dir,
        controllers,
        moved_to,
    })
}

/// Enables each of `wanted` for the children of `dir`, one write each so one
/// refusal (cpu with a realtime task, say) does not take the others down.
/// Returns what `cgroup.subtree_control` lists afterwards.
fn enable(dir: &Path, wanted: &[Controller]) -> Vec<Controller> {
    let file = dir.join("cgroup.subtree_control");
    for c in wanted {
        let _ = write(&file, &format!("+{}", c.name()));
    }
    let now = read(&file).unwrap_or_default();
    wanted
        .iter()
        .copied()
        .filter(|c| now.split_whitespace().any(|n| n == c.name()))
        .collect()
}

/// `memory.max`, and no swap beyond it (`memory.swap.max`, absent without
/// swap accounting). `memory.oom.group`: an OOM kill takes the whole
/// instance, so it restarts cleanly instead of limping on without one of
/// its processes.
pub(super) fn set_memory(dir: &Path, bytes: Option<u64>) -> Result<(), CgroupError> {
    let value = bytes.map_or("max".to_string(), |b| b.to_string());
    write(&dir.join("memory.max"), &value)?;
    let swap = dir.join("memory.swap.max");
    if swap.exists() {
        write(&swap, if bytes.is_some() { "0" } else { "max" })?;
    }
    let group = dir.join("memory.oom.group");
    if group.exists() {
        write(&group, "1")?;
    }
    Ok(())
}

/// `cpu.weight` from v1-style shares.
pub(super) fn set_cpu(dir: &Path, shares: Option<u64>) -> Result<(), CgroupError> {
    write(
        &dir.join("cpu.weight"),
        &shares
            .map_or(DEFAULT_WEIGHT, weight_from_shares)
            .to_string(),
    )
}

const DEFAULT_WEIGHT: u64 = 100;

/// Maps v1 `cpu.shares` (2..=262144, default 1024) onto v2 `cpu.weight`
/// (1..=10000, default 100) in proportion, so the default maps to the
/// default and the ratio between two instances is kept (within the range).
/// runc's linear map of the two ranges sends 1024 to 39, which would make
/// a configured instance weigh less than an unconfigured process.
pub(super) fn weight_from_shares(shares: u64) -> u64 {
    (shares.saturating_mul(100).saturating_add(512) / 1024).clamp(1, 10_000)
}

/// `pids.max` (same file in v1).
pub(super) fn set_pids(dir: &Path, max: Option<u64>) -> Result<(), CgroupError> {
    write(
        &dir.join("pids.max"),
        &max.map_or("max".to_string(), |m| m.to_string()),
    )
}

/// The file whose `oom_kill` line counts processes killed by the OOM
/// killer in this cgroup and below.
pub(super) const OOM_COUNTER: &str = "memory.events";

/// `memory.current` without inactive file pages.
pub(super) fn memory(dir: &Path) -> Option<u64> {
    let current = read_u64(&dir.join("memory.current"))?;
    let inactive = read(&dir.join("memory.stat"))
        .ok()
        .and_then(|s| field(&s, "inactive_file"))
        .unwrap_or(0);
    Some(current.saturating_sub(inactive))
}

/// `usage_usec` of `cpu.stat`, present with or without the cpu controller.
pub(super) fn cpu_time(dir: &Path) -> Option<Duration> {
    field(&read(&dir.join("cpu.stat")).ok()?, "usage_usec").map(Duration::from_micros)
}

/// Writes `cgroup.kill`: SIGKILL to every process in the cgroup and below.
pub(super) fn kill(dir: &Path) -> Result<(), CgroupError> {
    write(&dir.join("cgroup.kill"), "1")
}

pub(super) fn freeze(dir: &Path, on: bool) -> Result<(), CgroupError> {
    write(&dir.join("cgroup.freeze"), if on { "1" } else { "0" })
}

pub(super) fn frozen(dir: &Path) -> bool {
    read(&dir.join("cgroup.events"))
        .ok()
        .and_then(|s| field(&s, "frozen"))
        == Some(1)
}

/// `populated` of `cgroup.events`: a process lives in it or below. None when
/// the file cannot be read.
pub(super) fn populated(dir: &Path) -> Option<bool> {
    field(&read(&dir.join("cgroup.events")).ok()?, "populated").map(|n| n != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_map_in_proportion_with_the_defaults_aligned() {
        assert_eq!(weight_from_shares(1024), 100);
        assert_eq!(weight_from_shares(2048), 200);
        assert_eq!(weight_from_shares(512), 50);
        assert_eq!(weight_from_shares(100), 10);
        assert_eq!(weight_from_shares(2), 1);
        assert_eq!(weight_from_shares(0), 1);
        assert_eq!(weight_from_shares(262_144), 10_000);
        assert_eq!(weight_from_shares(u64::MAX), 10_000);
    }

    #[test]
    fn base_is_own_cgroup_unless_controllers_need_a_leaf() {
        assert_eq!(base(true, true, &[1, 2, 3], 2), Base::Own);
        assert_eq!(base(false, false, &[7, 8], 7), Base::Own);
        assert_eq!(base(false, true, &[7], 7), Base::MoveSelfThenOwn);
        assert_eq!(base(false, true, &[7, 8], 7), Base::Root);
        assert_eq!(base(false, true, &[], 7), Base::Root);
    }

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("ten-cgroup-v2-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn files(dir: &Path, names: &[&str]) {
        for n in names {
            std::fs::write(dir.join(n), "").unwrap();
        }
    }

    /// A systemd service with `Delegate=yes`: `ten serve` alone in its
    /// cgroup, controllers offered. It moves itself into a leaf and the
    /// instances' tree goes inside the service's cgroup, never at the root.
    /// With another process in the service's cgroup, the tree goes to the
    /// root (where the rule does not apply), never moving that process.
    #[test]
    fn under_a_delegated_service_the_tree_goes_inside_its_cgroup() {
        let mount = scratch("delegate");
        let own = mount.join("system.slice/ten.service");
        std::fs::create_dir_all(own.join("supervisor")).unwrap();
        files(&own, &["cgroup.type", "cgroup.subtree_control"]);
        std::fs::write(own.join("cgroup.controllers"), "cpu memory pids\n").unwrap();
        std::fs::write(own.join("cgroup.procs"), "4242\n").unwrap();
        files(&own.join("supervisor"), &["cgroup.procs"]);
        std::fs::create_dir_all(own.join("tenement-x")).unwrap();
        files(&own.join("tenement-x"), &["cgroup.subtree_control"]);
        let h = Hierarchy {
            controllers: Vec::new(),
            mount: mount.clone(),
            own: own.clone(),
        };
        let tree = prepare_tree(&h, "tenement-x", 4242).unwrap();
        assert_eq!(tree.dir, own.join("tenement-x"));
        assert_eq!(tree.moved_to, Some(own.join("supervisor")));
        assert_eq!(
            std::fs::read_to_string(own.join("supervisor/cgroup.procs")).unwrap(),
            "4242"
        );
        // Someone else in the service's cgroup: left where it is.
        std::fs::write(own.join("cgroup.procs"), "4242\n777\n").unwrap();
        std::fs::write(own.join("supervisor/cgroup.procs"), "").unwrap();
        std::fs::create_dir_all(mount.join("tenement-x")).unwrap();
        files(&mount.join("tenement-x"), &["cgroup.subtree_control"]);
        let tree = prepare_tree(&h, "tenement-x", 4242).unwrap();
        assert_eq!(tree.dir, mount.join("tenement-x"));
        assert_eq!(tree.moved_to, None);
        assert_eq!(
            std::fs::read_to_string(own.join("supervisor/cgroup.procs")).unwrap(),
            ""
        );
        let _ = std::fs::remove_dir_all(&mount);
    }

    #[test]
    fn memory_without_swap_accounting_sets_only_memory_max() {
        let dir = scratch("noswap");
        files(&dir, &["memory.max"]);
        set_memory(&dir, Some(64 << 20)).unwrap();
        assert_eq!(
            std::fs::read_to_string(dir.join("memory.max")).unwrap(),
            "67108864"
        );
        assert!(!dir.join("memory.swap.max").exists());
        assert!(!dir.join("memory.oom.group").exists());
        set_memory(&dir, None).unwrap();
        assert_eq!(
            std::fs::read_to_string(dir.join("memory.max")).unwrap(),
            "max"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_missing_interface_file_is_an_error_naming_it() {
        let dir = scratch("missing");
        let e = set_pids(&dir, Some(5)).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!("write 5 to {}", dir.join("pids.max").display())
        );
        assert!(std::error::Error::source(&e).is_some());
        assert!(!dir.join("pids.max").exists());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn defaults_are_written_back_when_no_limit_is_set() {
        let dir = scratch("defaults");
        files(&dir, &["cpu.weight", "pids.max"]);
        set_cpu(&dir, None).unwrap();
        set_pids(&dir, None).unwrap();
        assert_eq!(
            std::fs::read_to_string(dir.join("cpu.weight")).unwrap(),
            "100"
        );
        assert_eq!(
            std::fs::read_to_string(dir.join("pids.max")).unwrap(),
            "max"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn events_report_populated_frozen_and_oom_kills() {
        let dir = scratch("events");
        std::fs::write(dir.join("cgroup.events"), "populated 1\nfrozen 0\n").unwrap();
        std::fs::write(
            dir.join("memory.events"),
            "low 0\nhigh 0\nmax 4\noom 2\noom_kill 2\n",
        )
        .unwrap();
        assert_eq!(populated(&dir), Some(true));
        assert!(!frozen(&dir));
        let counter = std::fs::File::open(dir.join(OOM_COUNTER)).unwrap();
        assert_eq!(super::super::oom_kills(&counter), Some(2));
        std::fs::write(dir.join("cgroup.events"), "populated 0\nfrozen 1\n").unwrap();
        assert_eq!(populated(&dir), Some(false));
        assert!(frozen(&dir));
        assert_eq!(populated(&dir.join("gone")), None);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn memory_use_leaves_out_inactive_file_pages() {
        let dir = scratch("memory");
        std::fs::write(dir.join("memory.current"), "5000\n").unwrap();
        assert_eq!(memory(&dir), Some(5000));
        std::fs::write(dir.join("memory.stat"), "anon 3000\ninactive_file 7000\n").unwrap();
        assert_eq!(memory(&dir), Some(0));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
