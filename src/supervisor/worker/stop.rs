//! Stopping an instance: SIGTERM to its group, SIGKILL after
//! `stop_timeout`, waiting for the group to empty (the phases are
//! `lifecycle::StopPhase`), and what follows the stop (forget, sleep,
//! restart, shutdown).

use std::io;
use std::time::Instant;

use rustix::process::Signal;

use super::Supervisor;
use crate::isolate::{cgroup, procfs};
use crate::names::InstanceKey;
use crate::state::layout;
use crate::supervisor::lifecycle::{self, AfterStop, Event, GroupCheck, StopPhase};
use crate::supervisor::msg::{Reply, ReplyTo};
use crate::supervisor::reply::{CommandError, Done};
use crate::supervisor::snapshot::State;
use crate::supervisor::table::Stop;

/// At most this many cgroups are held for instances without a process
/// when one more goes to sleep after `idle_timeout`: past it, the sleeper's
/// cgroup is removed and made anew by its wake (four mkdirs, 0.2 ms), so
/// 10,000 sleeping instances do not keep 40,000 cgroups and their kernel
/// memory.
const KEPT_IDLE_CGROUPS: usize = 256;

impl Supervisor {
    pub(super) fn stop_timers(&mut self, key: &InstanceKey, now: Instant) {
        let Some(inst) = self.instances.get_mut(key) else {
            return;
        };
        let Some(stop) = inst.stop.as_mut() else {
            return;
        };
        if stop.phase.kill_due(now) {
            let pgid = stop.pgid;
            let _ = procfs::signal_group(pgid, Signal::KILL);
            let text = match &inst.cgroup {
                Some(cg) => {
                    cg.kill();
                    format!("still running after stop_timeout, sent SIGKILL to group {pgid} and cgroup {}", cg.name())
                }
                None => format!("still running after stop_timeout, sent SIGKILL to group {pgid}"),
            };
            self.note(key, &text);
        }
        let Some(inst) = self.instances.get_mut(key) else {
            return;
        };
        let Some(stop) = inst.stop.as_mut() else {
            return;
        };
        let pgid = stop.pgid;
        let cgroup = &inst.cgroup;
        let alive = |killed: bool| {
            // What escaped the group (a setsid daemon) is still in the
            // cgroup: it got SIGTERM too and has until stop_timeout, then
            // SIGKILL.
            let cgroup_left = cgroup.as_ref().is_some_and(|cg| cg.populated());
            if killed && cgroup_left {
                // Repeated for the kill methods that need it (v1 without a
                // freezer: whatever forked since the last round).
                if let Some(cg) = cgroup {
                    cg.kill();
                }
            }
            procfs::group_alive(pgid) || cgroup_left
        };
        match stop.phase.check(now, alive) {
            GroupCheck::Wait => {}
            GroupCheck::Gone => self.finish_stop(key, now),
            GroupCheck::GiveUp => {
                warn!(
                    "supervisor",
                    "{key} process group {pgid} outlived SIGKILL; forgetting it"
                );
                self.finish_stop(key, now);
            }
        }
    }

    /// Sends SIGTERM to the group and arms the SIGKILL timer; with no process,
    /// finishes at once.
    pub(super) fn begin_stop(
        &mut self,
        key: &InstanceKey,
        then: AfterStop,
        to: Option<ReplyTo>,
        now: Instant,
    ) {
        let stop_timeout = self.config.settings.stop_timeout;
        let policy = self.policy(&key.service);
        self.cancel_probe(key);
        let Some(inst) = self.instances.get_mut(key) else {
            return;
        };
        if let Some(stop) = inst.stop.as_mut() {
            stop.then = stop.then.merge(then);
            stop.replies.extend(to);
            return;
        }
        let fx = lifecycle::on(&mut inst.life, Event::StopRequested(then), &policy, now);
        debug_assert!(fx.is_empty(), "a stop request has no effects: {fx:?}");
        inst.next_probe = None;
        inst.start_deadline = None;
        inst.backoff_until = None;
        self.dirty = true;
        let pgid = match inst.run.as_ref() {
            Some(run) => run.pgid,
            None => {
                inst.stop = Some(Box::new(Stop {
                    then,
                    pgid: 0,
                    phase: StopPhase::DrainingKilled {
                        give_up_at: None,
                        next_check: now,
                    },
                    replies: to.into_iter().collect(),
                }));
                self.finish_stop(key, now);
                return;
            }
        };
        inst.stop = Some(Box::new(Stop {
            then,
            pgid,
            phase: StopPhase::begin(now, stop_timeout),
            replies: to.into_iter().collect(),
        }));
        if let Err(e) = procfs::signal_group(pgid, Signal::TERM) {
            warn!("supervisor", "{key} kill(-{pgid}, SIGTERM): {e}");
        }
        // Processes of its cgroup outside the group left it on purpose
        // (setsid); they are the instance's all the same.
        let escaped: Vec<u32> = inst.cgroup.as_ref().map_or_else(Vec::new, |cg| {
            cg.pids()
                .into_iter()
                .filter(|&p| procfs::stat(p).is_some_and(|s| s.pgrp as u32 != pgid))
                .collect()
        });
        for &p in &escaped {
            if let Some(p) = rustix::process::Pid::from_raw(p as i32) {
                let _ = rustix::process::kill_process(p, Signal::TERM);
            }
        }
        if escaped.is_empty() {
            self.note(key, &format!("stopping: sent SIGTERM to group {pgid}"));
        } else {
            self.note(
                key,
                &format!(
                    "stopping: sent SIGTERM to group {pgid} and {} more processes of its cgroup",
                    escaped.len()
                ),
            );
        }
    }

    pub(super) fn finish_stop(&mut self, key: &InstanceKey, now: Instant) {
        let policy = self.policy(&key.service);
        // Counted (a walk of the table) only for a sleep.
        let sleeps = self
            .instances
            .get(key)
            .and_then(|i| i.stop.as_ref())
            .is_some_and(|s| s.then == AfterStop::Sleep);
        let room = sleeps && self.room_to_keep(key);
        let Some(inst) = self.instances.get_mut(key) else {
            return;
        };
        let Some(stop) = inst.stop.take() else { return };
        let fx = lifecycle::on(&mut inst.life, Event::StopDone(stop.then), &policy, now);
        // An instance that starts again here (restarted, or woken from
        // sleep while fewer than `KEPT_IDLE_CGROUPS` are kept) keeps its
        // cgroup, readied for that start now rather than made anew on the
        // path of the request that wakes it; one that leaves (stopped,
        // moved, at shutdown) has it removed.
        let again = match stop.then {
            AfterStop::Restart => true,
            AfterStop::Sleep => room,
            _ => false,
        };
        if let Some(mut cg) = inst.cgroup.take() {
            if again {
                // Normally empty by now; after a give-up, one last kill.
                empty(key, &cg);
                cg.prepare_next_start();
                inst.cgroup = Some(cg);
            } else {
                remove(key, &cg);
            }
        }
        // Its reparented processes are collected with those of the other
        // stops of this moment: one pass, not one per stop.
        self.reap_due = true;
        self.dirty = true;
        self.persist(key);
        self.note(key, "stopped");
        match stop.then {
            AfterStop::Forget => {
                let inst = self.instances.remove(key).expect("present above");
                for w in inst.waiters {
                    self.answer(w.reply, Reply::Error(CommandError::Stopped));
                }
                self.drop_storage(key);
                for to in stop.replies {
                    self.outbox
                        .push((to, Reply::Done(Done::Stopped(key.clone()))));
                }
            }
            AfterStop::Restart => {
                let r = match self.start_effects(key, fx, now) {
                    Ok(()) => self.instance_reply(key),
                    Err(e) => Reply::Error(CommandError::SpawnFailed(e)),
                };
                for to in stop.replies {
                    self.outbox.push((to, r.clone()));
                }
            }
            AfterStop::Move => {
                self.apply(key, fx, now);
                for to in stop.replies {
                    self.outbox.push((to, Reply::Done(Done::Nothing)));
                }
                self.move_stopped(key);
            }
            AfterStop::Shutdown => {
                for to in stop.replies {
                    self.outbox.push((to, Reply::Done(Done::Nothing)));
                }
            }
            AfterStop::Sleep => {
                let idle = self
                    .config
                    .services
                    .get(key.service.as_str())
                    .and_then(|s| s.idle_timeout)
                    .unwrap_or_default();
                let inst = self.instances.get_mut(key).expect("present above");
                inst.ready_at = None;
                self.note(key, &format!("sleeping after {}s idle", idle.as_secs()));
                for to in stop.replies {
                    self.outbox.push((to, self.instance_reply(key)));
                }
                // Requests that arrived while it was going to sleep wake it.
                if self.shutdown.is_none() && !self.instances[key].waiters.is_empty() {
                    self.wake_if_down(key, now, "woken by request");
                }
            }
        }
    }

    /// After an instance's process ended on its own (its cgroup emptied
    /// and readied for the next start): a failed instance, which starts
    /// again only when told, has its cgroup removed; so has one gone to
    /// sleep beyond `KEPT_IDLE_CGROUPS`. A restart in backoff keeps it.
    pub(super) fn settle_cgroup_after_exit(&mut self, key: &InstanceKey) {
        let keep = match self.instances.get(key).map(|i| i.life.state()) {
            Some(State::Failed) => false,
            Some(State::Sleeping) => self.room_to_keep(key),
            _ => true,
        };
        if keep {
            return;
        }
        if let Some(cg) = self.instances.get_mut(key).and_then(|i| i.cgroup.take()) {
            remove(key, &cg);
        }
    }

    /// Whether sleeping instance `key` may keep its cgroup: the other
    /// instances that hold a cgroup with no process of theirs running
    /// (asleep, in backoff, failed) are fewer than `KEPT_IDLE_CGROUPS`, so
    /// that at most that many are held. Each holds a folder in every
    /// hierarchy, and the kernel's memory for each.
    fn room_to_keep(&self, key: &InstanceKey) -> bool {
        let others = self
            .instances
            .values()
            .filter(|i| i.run.is_none() && i.cgroup.is_some() && i.key != *key)
            .count();
        others < KEPT_IDLE_CGROUPS
    }

    /// A stopped instance is forgotten: without `storage_persist` its data
    /// dir goes too.
    pub(super) fn drop_storage(&self, key: &InstanceKey) {
        let persist = self
            .config
            .services
            .get(key.service.as_str())
            .is_none_or(|s| s.storage_persist);
        if !persist {
            let dir = layout::instance_dir(&self.data_dir, &key.service, &key.id);
            if let Err(e) = std::fs::remove_dir_all(&dir) {
                if e.kind() != io::ErrorKind::NotFound {
                    warn!("supervisor", "{key} remove {}: {e}", dir.display());
                }
            }
        }
    }

    /// At start-up, an instance the registry has as `stopping`: `ten stop`
    /// was asked and the last run ended before the stop did. Its process is
    /// already killed (`kill_leftover`); it is forgotten as the stop would
    /// have.
    pub(super) fn forget_stopped(&mut self, key: &InstanceKey) {
        info!(
            "supervisor",
            "{key} was being stopped when ten serve last exited: stopped and forgotten"
        );
        self.drop_storage(key);
    }
}

/// Kills what is left in `key`'s cgroup (normally nothing), saying so if
/// something outlives the kill.
fn empty(key: &InstanceKey, cg: &cgroup::Instance) {
    if cg.populated() && !cg.kill_and_wait(cgroup::KILL_WAIT) {
        warn!(
            "supervisor",
            "{key} cgroup {} still has processes {:?}",
            cg.name(),
            cg.pids()
        );
    }
}

/// Empties `key`'s cgroup and removes its folders.
fn remove(key: &InstanceKey, cg: &cgroup::Instance) {
    empty(key, cg);
    if let Err(e) = cg.remove() {
        warn!("supervisor", "{key} remove its cgroup: {e}");
    }
}
