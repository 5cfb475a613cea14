//! Housekeeping of the host, at most once a `SWEEP_EVERY` while the loop
//! runs: orphans reaped (`ten serve` is a subreaper), data dirs compared
//! with `storage_quota_mb`, OOM kills noticed in instances whose leader
//! lives on; and at shutdown, the tenement cgroup removed.

use std::time::Instant;

use super::{Supervisor, REAP_GAP, SAMPLE_TURNS, SWEEP_EVERY};
use crate::isolate::{cgroup, procfs};
use crate::names::InstanceKey;
use crate::state::layout;
use crate::supervisor::table::Run;

impl Supervisor {
    /// At most once a second (the loop wakes for probes while anything
    /// runs): reaps orphans that came to `ten serve` as subreaper; and, for
    /// the running instances whose turn it is (see `SAMPLE_TURNS`), samples
    /// memory and notices OOM kills inside those whose leader lives on.
    pub(super) fn sweep_host(&mut self, now: Instant) {
        if now.saturating_duration_since(self.last_sweep) < SWEEP_EVERY {
            return;
        }
        self.last_sweep = now;
        if self.save_error.is_some() {
            self.persist_all();
        }
        self.reap();
        self.check_storage();
        // A `SAMPLE_TURNS`th of the table from where the last sweep
        // stopped, in key order: each instance every `SAMPLE_TURNS` sweeps,
        // and a sweep looks at a tenth of the records, not at all of them
        // (most of them sleeping).
        let len = self.instances.len();
        let turn = len.div_ceil(SAMPLE_TURNS);
        let mut live = Vec::new();
        for i in 0..turn {
            let Some(inst) = self.instances.nth((self.sample_at + i) % len) else {
                break;
            };
            let Some(run) = inst.run.as_ref() else {
                continue;
            };
            match &inst.cgroup {
                Some(_) if !exited(run) => live.push(inst.key.clone()),
                Some(_) => {}
                None => inst.stats.set_memory(procfs::rss(run.pid)),
            }
        }
        self.sample_at = match len {
            0 => 0,
            _ => (self.sample_at + turn) % len,
        };
        for key in live {
            if let Some(text) = self.take_oom(&key) {
                self.note(&key, &format!("{text}; the instance keeps running"));
            }
        }
    }

    /// Reaps after stops, at most every `REAP_GAP`.
    pub(super) fn reap_if_due(&mut self, now: Instant) {
        if self.reap_due && now >= self.last_reap + REAP_GAP {
            self.reap();
        }
    }

    /// Collects exited children that are not an instance's tracked process.
    pub(super) fn reap(&mut self) {
        self.reap_due = false;
        self.last_reap = Instant::now();
        if !self.reap_orphans {
            return;
        }
        // Asked only about a child that exited, which is rare: a look
        // through the instances then costs less than a set made every
        // second.
        let instances = &self.instances;
        let tracked = |pid| {
            instances
                .values()
                .any(|i| i.run.as_ref().is_some_and(|r| r.pid == pid))
        };
        for pid in cgroup::orphans::reap(tracked) {
            debug!("supervisor", "reaped orphan pid {pid}");
        }
    }

    /// Data dir sizes against `storage_quota_mb`: the walk runs on the
    /// storage lane at most every 30 s per instance (`state::sizes::refresh`
    /// never blocks); here the last size is compared with the quota, and a
    /// rise past 80 % or 100 % is logged once in the instance's log.
    fn check_storage(&mut self) {
        let quotas = self
            .config
            .services
            .values()
            .any(|s| s.storage_quota_mb.is_some());
        if !quotas && !self.storage_shown {
            return;
        }
        // Without quotas this pass clears every size shown.
        self.storage_shown = quotas;
        let mut notes = Vec::new();
        for inst in self.instances.values_mut() {
            let key = &inst.key;
            let Some(mb) = self
                .config
                .services
                .get(key.service.as_str())
                .and_then(|s| s.storage_quota_mb)
            else {
                if inst.storage_bytes.take().is_some() {
                    inst.storage_level = 0;
                    inst.view = None;
                    self.dirty = true;
                }
                continue;
            };
            let dir = layout::instance_dir(&self.data_dir, &key.service, &key.id);
            let Some(bytes) = crate::state::sizes::refresh(&dir) else {
                continue;
            };
            let quota = mb << 20;
            let level = if bytes > quota {
                2
            } else if bytes * 5 >= quota * 4 {
                1
            } else {
                0
            };
            if inst.storage_bytes != Some(bytes) {
                inst.storage_bytes = Some(bytes);
                inst.view = None;
                self.dirty = true;
            }
            let percent = (bytes as f64 * 100.0 / quota as f64).round();
            for crossed in inst.storage_level + 1..=level {
                notes.push((
                    key.clone(),
                    match crossed {
                        1 => format!(
                            "storage: data dir at {percent}% of storage_quota_mb = {mb} ({bytes} bytes)"
                        ),
                        _ => format!(
                            "storage: over quota: data dir holds {bytes} bytes, storage_quota_mb = {mb} ({percent}%)"
                        ),
                    },
                ));
            }
            inst.storage_level = level;
        }
        notes.sort();
        for (key, text) in notes {
            self.note(&key, &text);
        }
    }

    /// New OOM kills in the instance's cgroup, counted, as a log phrase:
    /// "killed: out of memory (limit 64 MB)".
    pub(super) fn take_oom(&mut self, key: &InstanceKey) -> Option<String> {
        let inst = self.instances.get_mut(key)?;
        let cg = inst.cgroup.as_mut()?;
        let n = cg.take_oom_kills()?;
        if n == 0 {
            return None;
        }
        inst.oom_kills += n;
        inst.view = None;
        self.dirty = true;
        Some(match cg.limits().memory_bytes {
            Some(b) => format!("killed: out of memory (limit {} MB)", b >> 20),
            None => "killed: out of memory".to_string(),
        })
    }

    /// At shutdown: removes the tenement cgroup, killing anything left.
    pub(super) fn release_cgroups(&mut self) {
        if let Some(tree) = self.cgroups.take() {
            for name in tree.sweep() {
                warn!(
                    "supervisor",
                    "cgroup {name} still had processes at shutdown; killed them"
                );
            }
            if let Err(e) = tree.remove() {
                warn!("supervisor", "remove the tenement cgroup: {e}");
            }
        }
        self.reap();
    }
}

/// Whether the process has exited (its pidfd is readable), whatever the
/// loop has handled yet: an OOM kill read then belongs to its exit.
fn exited(run: &Run) -> bool {
    use rustix::event::{poll, PollFd, PollFlags, Timespec};
    let mut fds = [PollFd::new(&run.pidfd, PollFlags::IN)];
    let now = Timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    matches!(poll(&mut fds, Some(&now)), Ok(n) if n > 0)
}
