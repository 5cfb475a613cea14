//! Stopping an instance: SIGTERM to its group, SIGKILL after
//! `stop_timeout`, waiting for the group to empty, and what follows the stop
//! (forget, sleep, restart, shutdown).

use std::io;
use std::time::Instant;

use rustix::process::Signal;

use super::{err, Supervisor, GROUP_POLL, KILL_GRACE};
use crate::isolate::{self, cgroup, proc};
use crate::names::InstanceKey;
use crate::supervisor::msg::{Reply, ReplyTo};
use crate::supervisor::snapshot::{Health, State};
use crate::supervisor::table::{AfterStop, Stop};

impl Supervisor {
    pub(super) fn stop_timers(&mut self, key: &InstanceKey, now: Instant) {
        let Some(inst) = self.instances.get_mut(key) else {
            return;
        };
        let Some(stop) = inst.stop.as_mut() else {
            return;
        };
        if !stop.killed && stop.kill_at <= now {
            stop.killed = true;
            stop.give_up_at = Some(now + KILL_GRACE);
            let pgid = stop.pgid;
            let _ = proc::signal_group(pgid, Signal::KILL);
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
        if !stop.leader_exited {
            // A leader that survives SIGKILL (stuck in the kernel) is waited
            // for through its pidfd, without a timer.
            if stop.give_up_at.is_some_and(|t| t <= now) {
                stop.give_up_at = None;
            }
            return;
        }
        if stop.next_check.is_some_and(|t| t > now) {
            return;
        }
        // What escaped the group (a setsid daemon) is still in the cgroup:
        // it got SIGTERM too and has until stop_timeout, then SIGKILL.
        let cgroup_left = inst.cgroup.as_ref().is_some_and(|cg| cg.populated());
        if stop.killed && cgroup_left {
            // Repeated for the kill methods that need it (v1 without a
            // freezer: whatever forked since the last round).
            if let Some(cg) = &inst.cgroup {
                cg.kill();
            }
        }
        if !proc::group_alive(stop.pgid) && !cgroup_left {
            self.finish_stop(key, now);
        } else if stop.give_up_at.is_some_and(|t| t <= now) {
            warn!(
                "supervisor",
                "{key} process group {} outlived SIGKILL; forgetting it", stop.pgid
            );
            self.finish_stop(key, now);
        } else {
            stop.next_check = Some(now + GROUP_POLL);
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
        self.cancel_probe(key);
        let Some(inst) = self.instances.get_mut(key) else {
            return;
        };
        if let Some(stop) = inst.stop.as_mut() {
            // Already stopping: a forget wins over anything, a restart over
            // going to sleep.
            if then == AfterStop::Forget
                || (then == AfterStop::Restart && stop.then == AfterStop::Sleep)
            {
                stop.then = then;
            }
            stop.replies.extend(to);
            return;
        }
        inst.life.state = State::Stopping;
        inst.next_probe = None;
        inst.start_deadline = None;
        inst.backoff_until = None;
        self.dirty = true;
        let pgid = match inst.run.as_ref() {
            Some(run) => run.pgid,
            None => {
                inst.stop = Some(Stop {
                    then,
                    pgid: 0,
                    leader_exited: true,
                    kill_at: now,
                    killed: true,
                    give_up_at: None,
                    next_check: None,
                    replies: to.into_iter().collect(),
                });
                self.finish_stop(key, now);
                return;
            }
        };
        inst.stop = Some(Stop {
            then,
            pgid,
            leader_exited: false,
            kill_at: now + stop_timeout,
            killed: false,
            give_up_at: None,
            next_check: None,
            replies: to.into_iter().collect(),
        });
        if let Err(e) = proc::signal_group(pgid, Signal::TERM) {
            warn!("supervisor", "{key} kill(-{pgid}, SIGTERM): {e}");
        }
        // Processes of its cgroup outside the group left it on purpose
        // (setsid); they are the instance's all the same.
        let escaped: Vec<u32> = inst.cgroup.as_ref().map_or_else(Vec::new, |cg| {
            cg.pids()
                .into_iter()
                .filter(|&p| proc::stat(p).is_some_and(|s| s.pgrp as u32 != pgid))
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
        let Some(inst) = self.instances.get_mut(key) else {
            return;
        };
        let Some(stop) = inst.stop.take() else { return };
        if let Some(cg) = inst.cgroup.take() {
            // Normally empty by now; after a give-up, one last kill.
            if cg.populated() && !cg.kill_and_wait(cgroup::KILL_WAIT) {
                warn!(
                    "supervisor",
                    "{key} cgroup {} still has processes {:?}",
                    cg.name(),
                    cg.pids()
                );
            }
            if let Err(e) = cg.remove() {
                warn!("supervisor", "{key} remove its cgroup: {e}");
            }
        }
        self.reap();
        self.dirty = true;
        self.persist = true;
        self.note(key, "stopped");
        match stop.then {
            AfterStop::Forget => {
                let inst = self.instances.remove(key).expect("present above");
                for w in inst.waiters {
                    self.answer(w.reply, err(503, "instance stopped"));
                }
                let persist = self
                    .config
                    .services
                    .get(&key.service)
                    .is_none_or(|s| s.storage_persist);
                if !persist {
                    let dir = isolate::env::instance_dir(&self.data_dir, &key.service, &key.id);
                    if let Err(e) = std::fs::remove_dir_all(&dir) {
                        if e.kind() != io::ErrorKind::NotFound {
                            warn!("supervisor", "{key} remove {}: {e}", dir.display());
                        }
                    }
                }
                for to in stop.replies {
                    self.outbox.push((
                        to,
                        Reply::Done(serde_json::json!({ "stopped": key.to_string() })),
                    ));
                }
            }
            AfterStop::Restart => {
                let inst = self.instances.get_mut(key).expect("present above");
                inst.life.restarts.clear();
                inst.life.state = State::Starting;
                let r = match self.launch(key, now) {
                    Ok(()) => Reply::Done(self.json(key)),
                    Err(e) => {
                        self.note(key, &format!("spawn failed: {e}"));
                        if let Some(inst) = self.instances.get_mut(key) {
                            inst.life.state = State::Failed;
                        }
                        self.fail_waiters_if_down(key);
                        err(400, e)
                    }
                };
                for to in stop.replies {
                    self.outbox.push((to, r.clone()));
                }
            }
            AfterStop::Shutdown => {
                for to in stop.replies {
                    self.outbox.push((to, Reply::Done(serde_json::json!({}))));
                }
            }
            AfterStop::Sleep => {
                let idle = self
                    .config
                    .services
                    .get(&key.service)
                    .and_then(|s| s.idle_timeout)
                    .unwrap_or_default();
                let inst = self.instances.get_mut(key).expect("present above");
                inst.life.state = State::Sleeping;
                inst.life.health = Health::Unknown;
                inst.ready_at = None;
                self.note(key, &format!("sleeping after {}s idle", idle.as_secs()));
                for to in stop.replies {
                    self.outbox.push((to, Reply::Done(self.json(key))));
                }
                // Requests that arrived while it was going to sleep wake it.
                if self.shutdown.is_none() && !self.instances[key].waiters.is_empty() {
                    self.wake_if_down(key, now, "woken by request");
                }
            }
        }
    }
}
