//! When the supervisor's loop wakes: each instance's next deadline (idle,
//! probe, start, backoff, stop, held requests, moves) kept in `Timers`,
//! recomputed only for the instances a round touched; the timers of the
//! instances that are due; and a held save of the registry (`SAVE_GAP`).

use std::time::Instant;

use super::{Supervisor, IDLE_RECHECK, REAP_GAP, SAVE_GAP};
use crate::supervisor::msg::Command;
use crate::supervisor::table::Instance;

impl Supervisor {
    /// The next flush saves the registry, however recent the last save.
    pub(super) fn save_now(&mut self) {
        self.persist_all();
        self.last_save = None;
    }

    /// When a held save is due: `SAVE_GAP` after the last one (None:
    /// nothing to save; `now`: at once).
    pub(super) fn save_due(&self, now: Instant) -> Option<Instant> {
        match self.persist {
            true => Some(self.last_save.map_or(now, |t| t + SAVE_GAP)),
            false => None,
        }
    }

    /// Recomputes the deadlines of the instances this round touched (or of
    /// all, after a command that may concern any), and drops their
    /// published views: the next publish rebuilds those.
    pub(super) fn reschedule(&mut self) {
        let now = Instant::now();
        match self.timers.take_touched() {
            Some(keys) => {
                for key in keys {
                    let at = self.instances.get(&key).and_then(|i| self.deadline(i, now));
                    self.timers.set(&key, at);
                    if let Some(inst) = self.instances.get_mut(&key) {
                        inst.view = None;
                    }
                }
            }
            None => {
                self.timers.clear();
                for inst in self.instances.values() {
                    let at = self.deadline(inst, now);
                    self.timers.set(&inst.key, at);
                }
                for inst in self.instances.values_mut() {
                    inst.view = None;
                }
            }
        }
    }

    /// When the loop must next wake: the earliest instance deadline, or a
    /// held save of the registry.
    pub(super) fn next_deadline(&mut self) -> Option<Instant> {
        self.reschedule();
        let reap = self.reap_due.then_some(self.last_reap + REAP_GAP);
        [self.timers.next(), self.save_due(Instant::now()), reap]
            .into_iter()
            .flatten()
            .min()
    }

    /// The earliest of an instance's deadlines.
    fn deadline(&self, inst: &Instance, now: Instant) -> Option<Instant> {
        let mut next: Option<Instant> = None;
        let mut at = |t: Option<Instant>| {
            if let Some(t) = t {
                next = Some(next.map_or(t, |n| n.min(t)));
            }
        };
        if self.shutdown.is_none() {
            at(self.idle_deadline(inst, now));
        }
        at(self.linger_deadline(&inst.key, now));
        if inst.moving.as_ref().is_some_and(|m| m.flipped_at.is_some()) && inst.stats.open() > 0 {
            // Moved, with connections open: nothing tells the loop when
            // they close, so it looks again.
            at(Some(now + IDLE_RECHECK));
        }
        at(self.drain_deadline(&inst.key, now));
        at(inst.probe.as_ref().map(|(_, p)| p.deadline));
        if inst.probe.is_none() && inst.run.is_some() {
            at(inst.next_probe);
        }
        at(inst.start_deadline);
        at(inst.backoff_until);
        at(inst.stop.as_ref().and_then(|s| s.phase.deadline()));
        for w in &inst.waiters {
            at(Some(w.deadline));
        }
        next
    }

    /// Runs the timers of the instances that are due (the others have
    /// nothing to do yet); each is scheduled again by `reschedule`.
    pub(super) fn on_timers(&mut self, now: Instant) {
        for key in self.timers.pop_due(now) {
            self.timers.touch(&key);
            self.instance_timers(&key, now);
        }
    }

    /// Marks the instances whose deadlines `cmd` may move: the one it
    /// names, or all for a command that may concern any.
    pub(super) fn touch_for(&mut self, cmd: &Command) {
        match cmd {
            Command::Spawn { key, .. }
            | Command::Stop { key }
            | Command::Restart { key }
            | Command::Weight { key, .. }
            | Command::AwaitReady { key }
            | Command::Refused { key }
            | Command::Move { key, .. }
            | Command::MoveFlipped { key } => self.timers.touch(key),
            Command::Route { from, to } => {
                self.timers.touch(from);
                self.timers.touch(to);
            }
            Command::Subscribe { .. }
            | Command::Unsubscribe { .. }
            | Command::RevokeToken { .. } => {}
            // A reload, a deploy, a shutdown or a hand-over may
            // move anyone's deadlines.
            _ => self.timers.touch_all(),
        }
    }
}
