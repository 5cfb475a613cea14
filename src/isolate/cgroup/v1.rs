//! cgroup v1 files, one hierarchy per controller: limits
//! (`memory.limit_in_bytes` and `memory.memsw.limit_in_bytes`, `cpu.shares`;
//! `pids.max` is shared with v2), OOM kills (`memory.oom_control`), usage
//! (`memory.usage_in_bytes`, `cpuacct.usage`) and the freezer
//! (`freezer.state`).
//!
//! Every function takes the cgroup's directory, so tests use a temp dir of
//! plain files. See Documentation/admin-guide/cgroup-v1/ in the kernel.

use std::path::Path;
use std::time::Duration;

use super::{field, read, read_u64, write, CgroupError};

/// "No limit" in v1's limit files.
const UNLIMITED: &str = "-1";

/// `memory.limit_in_bytes`, and the same for memory plus swap when swap
/// accounting is on (`memory.memsw.limit_in_bytes`), so the limit cannot be
/// dodged by swapping. memsw may never be below the memory limit, so it is
/// lifted first and lowered last.
pub(super) fn set_memory(dir: &Path, bytes: Option<u64>) -> Result<(), CgroupError> {
    let memsw = dir.join("memory.memsw.limit_in_bytes");
    let has_memsw = memsw.exists();
    if has_memsw {
        write(&memsw, UNLIMITED)?;
    }
    let value = bytes.map_or(UNLIMITED.to_string(), |b| b.to_string());
    write(&dir.join("memory.limit_in_bytes"), &value)?;
    if has_memsw && bytes.is_some() {
        write(&memsw, &value)?;
    }
    Ok(())
}

const DEFAULT_SHARES: u64 = 1024;

pub(super) fn set_cpu(dir: &Path, shares: Option<u64>) -> Result<(), CgroupError> {
    write(
        &dir.join("cpu.shares"),
        &shares.unwrap_or(DEFAULT_SHARES).to_string(),
    )
}

/// The file whose `oom_kill` line counts OOM kills (Linux 4.13+).
pub(super) const OOM_COUNTER: &str = "memory.oom_control";

/// `memory.usage_in_bytes` without inactive file pages (`total_` counts the
/// cgroup and its children, like the usage does).
pub(super) fn memory(dir: &Path) -> Option<u64> {
    let usage = read_u64(&dir.join("memory.usage_in_bytes"))?;
    let inactive = read(&dir.join("memory.stat"))
        .ok()
        .and_then(|s| field(&s, "total_inactive_file"))
        .unwrap_or(0);
    Some(usage.saturating_sub(inactive))
}

/// `cpuacct.usage`, in nanoseconds.
pub(super) fn cpu_time(dir: &Path) -> Option<Duration> {
    read_u64(&dir.join("cpuacct.usage")).map(Duration::from_nanos)
}

pub(super) fn freeze(dir: &Path, on: bool) -> Result<(), CgroupError> {
    write(
        &dir.join("freezer.state"),
        if on { "FROZEN" } else { "THAWED" },
    )
}

/// Whether the freeze has taken (`FREEZING` while it is under way).
pub(super) fn frozen(dir: &Path) -> bool {
    read(&dir.join("freezer.state")).is_ok_and(|s| s.trim() == "FROZEN")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("ten-cgroup-v1-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// What the last write left in a plain file.
    fn writes(dir: &Path, file: &str) -> String {
        std::fs::read_to_string(dir.join(file)).unwrap()
    }

    #[test]
    fn memory_limit_covers_swap_when_memsw_exists() {
        let dir = scratch("memsw");
        std::fs::write(dir.join("memory.limit_in_bytes"), "").unwrap();
        std::fs::write(dir.join("memory.memsw.limit_in_bytes"), "").unwrap();
        set_memory(&dir, Some(32 << 20)).unwrap();
        assert_eq!(writes(&dir, "memory.limit_in_bytes"), "33554432");
        assert_eq!(writes(&dir, "memory.memsw.limit_in_bytes"), "33554432");
        set_memory(&dir, None).unwrap();
        assert_eq!(writes(&dir, "memory.limit_in_bytes"), "-1");
        assert_eq!(writes(&dir, "memory.memsw.limit_in_bytes"), "-1");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn memory_limit_without_swap_accounting() {
        let dir = scratch("nomemsw");
        std::fs::write(dir.join("memory.limit_in_bytes"), "").unwrap();
        set_memory(&dir, Some(4096)).unwrap();
        assert_eq!(writes(&dir, "memory.limit_in_bytes"), "4096");
        assert!(!dir.join("memory.memsw.limit_in_bytes").exists());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn shares_default_to_the_kernel_default() {
        let dir = scratch("shares");
        std::fs::write(dir.join("cpu.shares"), "").unwrap();
        set_cpu(&dir, Some(256)).unwrap();
        assert_eq!(writes(&dir, "cpu.shares"), "256");
        set_cpu(&dir, None).unwrap();
        assert_eq!(writes(&dir, "cpu.shares"), "1024");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn oom_usage_cpu_and_freezer_are_read() {
        let dir = scratch("read");
        std::fs::write(
            dir.join("memory.oom_control"),
            "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n",
        )
        .unwrap();
        std::fs::write(dir.join("memory.usage_in_bytes"), "9000\n").unwrap();
        std::fs::write(
            dir.join("memory.stat"),
            "cache 100\ninactive_file 50\ntotal_inactive_file 1000\n",
        )
        .unwrap();
        std::fs::write(dir.join("cpuacct.usage"), "1500000000\n").unwrap();
        std::fs::write(dir.join("freezer.state"), "FREEZING\n").unwrap();
        let oom = || super::super::oom_kills(&std::fs::File::open(dir.join(OOM_COUNTER)).unwrap());
        assert_eq!(oom(), Some(2));
        assert_eq!(memory(&dir), Some(8000));
        assert_eq!(cpu_time(&dir), Some(Duration::from_millis(1500)));
        assert!(!frozen(&dir));
        std::fs::write(dir.join("freezer.state"), "FROZEN\n").unwrap();
        assert!(frozen(&dir));
        // Before Linux 4.13 there is no oom_kill line.
        std::fs::write(
            dir.join("memory.oom_control"),
            "oom_kill_disable 0\nunder_oom 0\n",
        )
        .unwrap();
        assert_eq!(oom(), None);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
