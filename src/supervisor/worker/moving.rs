//! The supervisor's side of `ten move` (see `supervisor::moving` for the
//! phases): starting a mover thread, entering each phase it asks for (the
//! registry is saved before the answer, so a crash at any point finds the
//! phase on disk), holding requests from `stop` on, forwarding them once
//! `moved`, running the instance here again when a move fails before the
//! target could have started it, and forgetting a moved entry once the edge
//! is flipped and no request came for `LINGER`.
//!
//! Never blocks: the copying and every call to the target happen on the
//! mover thread.

use std::net::SocketAddr;
use std::sync::mpsc::{self, Receiver, Sender, TryRecvError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::Supervisor;
use crate::names::InstanceKey;
use crate::state::layout;
use crate::supervisor::lifecycle::{self, AfterStop, Event};
use crate::supervisor::moving::{Move, MoveMsg, Phase};
use crate::supervisor::msg::{Reply, ReplyTo};
use crate::supervisor::reply::CommandError;
use crate::supervisor::snapshot::State;

/// A moved entry is forgotten once the edge is flipped and no request has
/// come through it for this long.
pub const LINGER: Duration = Duration::from_secs(10);
/// How long requests in flight get to finish before a moving instance is
/// stopped anyway.
const DRAIN_MAX: Duration = Duration::from_secs(10);
/// How often a draining instance's open requests are counted.
const DRAIN_POLL: Duration = Duration::from_millis(5);

/// The mover threads' channel to the supervisor and the supervisor's waker.
pub struct Moves {
    pub tx: Sender<MoveMsg>,
    rx: Receiver<MoveMsg>,
    pub waker: Option<Arc<mio::Waker>>,
}

impl Default for Moves {
    fn default() -> Moves {
        let (tx, rx) = mpsc::channel();
        Moves {
            tx,
            rx,
            waker: None,
        }
    }
}

impl Supervisor {
    /// `Command::Move`: starts (or resumes) moving `key` to the node at
    /// `to`. Answers at once with the instance; progress shows in its
    /// `move` field and in its log.
    pub(super) fn cmd_move(
        &mut self,
        key: InstanceKey,
        to: String,
        token: String,
        reply: Option<ReplyTo>,
    ) {
        let Some(waker) = self.moves.waker.clone() else {
            return self.answer(
                reply,
                Reply::Error(CommandError::Unavailable("moves are not set up".into())),
            );
        };
        let Some(inst) = self.instances.get_mut(&key) else {
            return self.answer(reply, Reply::Error(CommandError::UnknownInstance(key)));
        };
        let from = match (&inst.moving, inst.life.state()) {
            (Some(m), _) if m.active => {
                let e = format!(
                    "{key} is being moved to {} already ({})",
                    m.to,
                    m.phase.as_str()
                );
                return self.answer(reply, Reply::Error(CommandError::Conflict(e)));
            }
            (Some(m), State::Moving | State::Moved) if m.to != to => {
                let e = format!("{key} was moved to {}: finish that move first", m.to);
                return self.answer(reply, Reply::Error(CommandError::Conflict(e)));
            }
            (Some(m), State::Moving | State::Moved) => m.phase,
            (_, State::Stopping) => {
                let e = format!("{key} is stopping");
                return self.answer(reply, Reply::Error(CommandError::Conflict(e)));
            }
            _ => Phase::Copy,
        };
        let prev = inst.moving.take();
        inst.moving = Some(Box::new(Move {
            to: to.clone(),
            addr: prev.as_ref().and_then(|m| m.addr),
            phase: from,
            error: None,
            active: true,
            flipped_at: prev.as_ref().and_then(|m| m.flipped_at),
            stopped: None,
            drain_until: None,
            served_before: prev.as_ref().map_or(0, |m| m.served_before),
        }));
        let job = crate::supervisor::mover::Job {
            key: key.clone(),
            to: to.clone(),
            token,
            dir: layout::instance_dir(&self.data_dir, &key.service, &key.id),
            weight: inst.weight,
            from,
            tx: self.moves.tx.clone(),
            waker,
        };
        self.dirty = true;
        if let Err(e) = crate::supervisor::mover::start(job) {
            if let Some(m) = self.instances.get_mut(&key).and_then(|i| i.moving.as_mut()) {
                m.active = false;
                m.error = Some(e.clone());
            }
            return self.answer(reply, Reply::Error(CommandError::Unavailable(e)));
        }
        self.note(
            &key,
            &format!("moving to {to}: started ({})", from.as_str()),
        );
        self.answer(reply, self.instance_reply(&key));
    }

    /// `Command::MoveFlipped`: the edge sends the instance's host to the
    /// target now; the entry goes once no request came for `LINGER`.
    pub(super) fn cmd_move_flipped(&mut self, key: InstanceKey, reply: Option<ReplyTo>) {
        let Some(inst) = self.instances.get_mut(&key) else {
            return self.answer(reply, Reply::Error(CommandError::UnknownInstance(key)));
        };
        let forwarded = forwarded(inst);
        let Some(m) = inst
            .moving
            .as_mut()
            .filter(|_| inst.life.state() == State::Moved)
        else {
            let e = format!("{key} is not moved: nothing to flip");
            return self.answer(reply, Reply::Error(CommandError::Conflict(e)));
        };
        m.flipped_at.get_or_insert_with(Instant::now);
        let to = m.to.clone();
        self.dirty = true;
        self.note(
            &key,
            &format!("edge flipped to {to}; {forwarded} requests forwarded so far"),
        );
        self.answer(reply, self.instance_reply(&key));
    }

    /// Handles what the mover threads sent. Supervisor loop, every turn.
    pub(super) fn drain_moves(&mut self) {
        loop {
            match self.moves.rx.try_recv() {
                Ok(MoveMsg::Phase {
                    key,
                    phase,
                    addr,
                    detail,
                    done,
                }) => {
                    self.timers.touch(&key);
                    self.enter_phase(&key, phase, addr, &detail, done)
                }
                Ok(MoveMsg::Ended { key, result }) => {
                    self.timers.touch(&key);
                    self.move_ended(&key, result)
                }
                Err(TryRecvError::Empty | TryRecvError::Disconnected) => return,
            }
        }
    }

    fn enter_phase(
        &mut self,
        key: &InstanceKey,
        phase: Phase,
        addr: Option<SocketAddr>,
        detail: &str,
        done: Sender<Result<(), String>>,
    ) {
        let now = Instant::now();
        let Some(inst) = self.instances.get_mut(key) else {
            let _ = done.send(Err(format!("{key} is gone from this node")));
            return;
        };
        let served = inst.stats.answered();
        let Some(m) = inst.moving.as_mut() else {
            let _ = done.send(Err(format!("the move of {key} was cancelled")));
            return;
        };
        m.phase = phase;
        if phase == Phase::Moved {
            m.served_before = served;
        }
        if addr.is_some() {
            m.addr = addr;
        }
        let to = m.to.clone();
        self.dirty = true;
        let text = match phase {
            Phase::Copy => format!("moving to {to}: copying the data dir while it runs"),
            Phase::Stop => format!("moving to {to}: holding requests, stopping it ({detail})"),
            Phase::Sync => format!("moving to {to}: copying what changed"),
            Phase::Start => format!("moving to {to}: starting it there ({detail})"),
            Phase::Moved => format!("moved to {to}: forwarding requests there ({detail})"),
        };
        self.note(key, &text);
        if phase == Phase::Moved {
            let policy = self.policy(&key.service);
            let inst = self.instances.get_mut(key).expect("checked above");
            let fx = lifecycle::on(&mut inst.life, Event::Moved, &policy, now);
            self.apply(key, fx, now);
            self.forward_waiters(key);
        }
        // On disk before the mover takes the step.
        if let Err(e) = self.save_move_phase(key) {
            let _ = done.send(Err(e.to_string()));
            return;
        }
        if phase == Phase::Stop {
            let policy = self.policy(&key.service);
            let inst = self.instances.get_mut(key).expect("checked above");
            if inst.life.state() == State::Moving && inst.run.is_none() && inst.stop.is_none() {
                let _ = done.send(Ok(()));
                return;
            }
            // New requests are held from here; those in flight finish
            // before the stop (`drain_timers`).
            let fx = lifecycle::on(&mut inst.life, Event::MoveHold, &policy, now);
            if let Some(m) = inst.moving.as_mut() {
                m.stopped = Some(done);
                m.drain_until = Some(now + DRAIN_MAX);
            }
            self.apply(key, fx, now);
            self.drain_timers(key, now);
            return;
        }
        let _ = done.send(Ok(()));
    }

    /// While a moving instance drains: begins its stop once no request is
    /// in flight (or `DRAIN_MAX` passed).
    pub(super) fn drain_timers(&mut self, key: &InstanceKey, now: Instant) {
        let Some(inst) = self.instances.get_mut(key) else {
            return;
        };
        let Some(until) = inst.moving.as_ref().and_then(|m| m.drain_until) else {
            return;
        };
        if inst.stats.open() > 0 && now < until {
            return;
        }
        if let Some(m) = inst.moving.as_mut() {
            m.drain_until = None;
        }
        self.begin_stop(key, AfterStop::Move, None, now);
    }

    /// When a draining instance is looked at again.
    pub(super) fn drain_deadline(&self, key: &InstanceKey, now: Instant) -> Option<Instant> {
        let until = self.instances.get(key)?.moving.as_ref()?.drain_until?;
        Some(until.min(now + DRAIN_POLL))
    }

    /// The stop of a moving instance is complete (from `finish_stop`).
    pub(super) fn move_stopped(&mut self, key: &InstanceKey) {
        let saved = self.save_move_phase(key);
        let waiting = self
            .instances
            .get_mut(key)
            .and_then(|i| i.moving.as_mut())
            .and_then(|m| m.stopped.take());
        if let Some(done) = waiting {
            let _ = done.send(saved.map_err(|e| e.to_string()));
        }
    }

    fn move_ended(&mut self, key: &InstanceKey, result: Result<(), String>) {
        let now = Instant::now();
        let Some(inst) = self.instances.get_mut(key) else {
            return;
        };
        let Some(m) = inst.moving.as_mut() else {
            return;
        };
        m.active = false;
        let (phase, to) = (m.phase, m.to.clone());
        let error = match result {
            Ok(()) => return,
            Err(e) => e,
        };
        m.error = Some(error.clone());
        self.dirty = true;
        if phase.target_may_run() {
            // It may run there: never start it here. Requests stay held
            // (and time out) until a re-run of `ten move` finds out.
            self.note(
                key,
                &format!(
                    "move to {to} interrupted at {}: {error}; run `ten move` again to finish it",
                    phase.as_str()
                ),
            );
            return;
        }
        self.note(
            key,
            &format!(
                "move to {to} failed at {}: {error}; it stays here",
                phase.as_str()
            ),
        );
        let policy = self.policy(&key.service);
        let inst = self.instances.get_mut(key).expect("checked above");
        if inst.life.state() == State::Moving {
            let fx = lifecycle::on(&mut inst.life, Event::MoveAborted, &policy, now);
            // Kept (with its error, for `ten ps`) only while nothing else
            // would show it; a running instance needs no move entry.
            inst.moving = None;
            if let Err(e) = self.start_effects(key, fx, now) {
                warn!(
                    "supervisor",
                    "{key} could not start again after the failed move: {e}"
                );
            }
        } else if let Some(inst) = self.instances.get_mut(key) {
            inst.moving = None;
        }
        self.persist(key);
    }

    /// Held requests of a moved instance go to the target.
    fn forward_waiters(&mut self, key: &InstanceKey) {
        let Some(inst) = self.instances.get_mut(key) else {
            return;
        };
        let Some(addr) = inst.moving.as_ref().and_then(|m| m.addr) else {
            return;
        };
        let waiters: Vec<_> = inst.waiters.drain(..).collect();
        for w in waiters {
            self.answer(w.reply, Reply::Ready(addr));
        }
    }

    /// `AwaitReady` for a moved instance: the target's address.
    pub(super) fn moved_addr(&self, key: &InstanceKey) -> Option<SocketAddr> {
        let inst = self.instances.get(key)?;
        if inst.life.state() != State::Moved {
            return None;
        }
        inst.moving.as_ref().and_then(|m| m.addr)
    }

    /// When a flipped moved entry is due to be forgotten.
    pub(super) fn linger_deadline(&self, key: &InstanceKey, now: Instant) -> Option<Instant> {
        let inst = self.instances.get(key)?;
        let flipped = inst.moving.as_ref()?.flipped_at?;
        if inst.life.state() != State::Moved || inst.stats.open() > 0 {
            return None;
        }
        let quiet_at = inst.stats.last_active().map_or(now, |t| t + LINGER);
        Some(quiet_at.max(flipped + LINGER))
    }

    /// Forgets a moved entry once it is due (see `linger_deadline`).
    pub(super) fn moved_timers(&mut self, key: &InstanceKey, now: Instant) {
        if self.linger_deadline(key, now).is_none_or(|t| t > now) {
            return;
        }
        let Some(inst) = self.instances.get(key) else {
            return;
        };
        let to = inst
            .moving
            .as_ref()
            .map(|m| m.to.clone())
            .unwrap_or_default();
        let forwarded = forwarded(inst);
        self.note(
            key,
            &format!("forgotten here: runs on {to} ({forwarded} requests were forwarded)"),
        );
        self.instances.remove(key);
        self.dirty = true;
        self.persist(key);
    }

    /// `ten spawn` (the target's step of a move back) of an instance that
    /// was moved away from here: it runs here again, with `weight`.
    pub(super) fn spawn_moved_back(
        &mut self,
        key: &InstanceKey,
        weight: u8,
        now: Instant,
    ) -> Result<(), String> {
        let policy = self.policy(&key.service);
        let inst = self.instances.get_mut(key).expect("the caller checked");
        inst.moving = None;
        inst.weight = weight;
        let fx = lifecycle::on(&mut inst.life, Event::MoveAborted, &policy, now);
        self.note(key, "moved back here");
        self.persist(key);
        self.start_effects(key, fx, now)
    }

    /// Saves the registry now (not at the end of the turn): a move's phase
    /// is on disk before its step is taken. Err: it could not be, and the
    /// step is not taken.
    fn save_move_phase(&mut self, key: &InstanceKey) -> Result<(), CommandError> {
        self.save_first("move", &[key], |_| {})
    }
}

/// Responses forwarded to the target since the instance was moved.
fn forwarded(inst: &crate::supervisor::table::Instance) -> u64 {
    let before = inst.moving.as_ref().map_or(0, |m| m.served_before);
    inst.stats.answered().saturating_sub(before)
}

impl Supervisor {
    /// Restores an instance whose registry entry records a move that may
    /// have reached the target (`start` or `moved`): kept here without a
    /// process, requests held (`moving`) or forwarded (`moved`). Returns
    /// what to log, or None when the entry starts as usual (no move, or one
    /// that never asked the target to start it: it runs here).
    pub(super) fn restore_move(
        &mut self,
        key: &InstanceKey,
        entry: &crate::state::RegistryEntry,
    ) -> Option<String> {
        let record = entry.moving.as_ref()?;
        let phase = Phase::parse(&record.phase)?;
        if !phase.target_may_run() {
            return None;
        }
        let state = match phase {
            Phase::Moved => State::Moved,
            _ => State::Moving,
        };
        self.insert(key.clone(), entry.port, entry.weight, state);
        let inst = self.instances.get_mut(key).expect("just inserted");
        inst.moving = Some(Box::new(Move {
            to: record.to.clone(),
            addr: record.addr,
            phase,
            error: None,
            active: false,
            flipped_at: None,
            stopped: None,
            drain_until: None,
            served_before: 0,
        }));
        Some(match phase {
            Phase::Moved => format!("moved to {}: forwarding requests there", record.to),
            _ => format!(
                "was being moved to {} (at {}): not started here; run `ten move` again to finish it",
                record.to, record.phase
            ),
        })
    }
}
