//! The lifecycle as a state x event table (REFERENCE "Lifecycle"), and the
//! phases of a stop.
//!
//! `on(life, event, policy, now)` updates an instance's state and health and
//! returns what the caller must do as data: kill the process group, spawn
//! now, spawn after a delay, persist the registry. It is the only writer of
//! an instance's state: `Life`'s fields are private, read through getters.
//! `StopPhase` is the bookkeeping of one stop (SIGTERM, SIGKILL, waiting for
//! the group to empty). No I/O and no clock here, so every transition is
//! unit-tested without a process.

use crate::config::bounds::later;
use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::backoff;
use super::snapshot::{Health, State};
use crate::config::{RestartPolicy, Settings};

/// Consecutive failed checks from which an instance is unhealthy.
pub const UNHEALTHY_AFTER: u32 = 3;
/// How often a stopping group is looked at once its leader is gone.
pub const GROUP_POLL: Duration = Duration::from_millis(10);
/// After SIGKILL, how long to wait for members that init has not reaped yet.
pub const KILL_GRACE: Duration = Duration::from_secs(2);

/// What decides restarts: the service's policy and the global limits.
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    pub restart: RestartPolicy,
    pub max_restarts: u32,
    pub window: Duration,
    pub backoff_base: Duration,
    pub backoff_max: Duration,
}

impl Policy {
    pub fn new(restart: RestartPolicy, settings: &Settings) -> Policy {
        Policy {
            restart,
            max_restarts: settings.max_restarts,
            window: settings.restart_window,
            backoff_base: settings.backoff_base,
            backoff_max: settings.backoff_max,
        }
    }
}

/// An instance's lifecycle state; only `on` changes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Life {
    state: State,
    health: Health,
    /// Failed checks in a row.
    failures: u32,
    /// When each restart within the window happened, oldest first.
    restarts: VecDeque<Instant>,
    /// Restarts since the instance was created (shown by `ten ps`).
    total_restarts: u32,
}

impl Life {
    pub fn new(state: State) -> Life {
        Life {
            state,
            health: Health::Unknown,
            failures: 0,
            restarts: VecDeque::new(),
            total_restarts: 0,
        }
    }

    /// The life of an instance whose process an upgrade in place handed
    /// over: in `state` (starting or running), health unknown until the
    /// next check, its restart count carried on.
    pub fn adopted(state: State, total_restarts: u32) -> Life {
        Life {
            total_restarts,
            ..Life::new(state)
        }
    }

    pub fn state(&self) -> State {
        self.state
    }

    pub fn health(&self) -> Health {
        self.health
    }

    /// Restarts since the instance was created (shown by `ten ps`).
    pub fn total_restarts(&self) -> u32 {
        self.total_restarts
    }
}

/// What follows a stop: its purpose.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterStop {
    /// `ten stop`: forget the instance.
    Forget,
    /// `ten restart`: start it again.
    Restart,
    /// Server shutdown: keep it in the registry.
    Shutdown,
    /// Idle: keep it, asleep, until a request wakes it.
    Sleep,
    /// `ten move`: keep it, without a process, while its data goes to
    /// another node; requests stay held.
    Move,
}

impl AfterStop {
    /// The purpose once `asked` is requested during a stop for `self`: a
    /// forget wins over anything, a restart over going to sleep.
    pub fn merge(self, asked: AfterStop) -> AfterStop {
        match (self, asked) {
            (_, AfterStop::Forget) | (AfterStop::Sleep, AfterStop::Restart) => asked,
            _ => self,
        }
    }
}

/// Something that happened to an instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// Its process was started.
    Spawned,
    /// The readiness probe passed.
    Ready,
    /// A health check while running.
    CheckPassed,
    CheckFailed,
    /// Still not ready when `startup_timeout` ran out.
    NotReadyInTime,
    /// Its process ended (or could not be started on a restart). `success`:
    /// exited normally with code 0.
    Exited {
        success: bool,
    },
    /// The backoff delay is over.
    BackoffElapsed,
    /// A request or command wants a sleeping instance up.
    Wake,
    /// `ten deploy` on a failed instance: forget the failures and start it.
    Revive,
    /// `ten restart` (or `ten spawn` of a failed instance) while no process
    /// runs: forget the failures and start afresh. The command carries out
    /// the `Spawn` itself, so that its failure is the command's answer.
    Restart,
    /// A stop was asked for, with its purpose. During a stop the purposes
    /// merge (`AfterStop::merge`), which is the caller's bookkeeping.
    StopRequested(AfterStop),
    /// The stopped process group is gone (or there was none). The caller
    /// saves the registry after every stop and forgets a `Forget`ed
    /// instance; a `Restart` spawns, carried out like `Restart`'s.
    StopDone(AfterStop),
    /// The process could not be started. `crash`: the start was automatic
    /// (after a backoff, a wake, a revive) and counts as a crash, so the
    /// restart limit ends the retries; otherwise a command asked for it and
    /// gets the error as its answer, and the instance fails.
    SpawnFailed {
        crash: bool,
    },
    /// `ten move` holds new requests before stopping it: the requests in
    /// flight finish while new ones wait.
    MoveHold,
    /// `ten move`: the target node runs it now; requests are forwarded.
    Moved,
    /// Run it here again: `ten move` failed before the target could have
    /// started it, or a moved instance is moved back to this node.
    MoveAborted,
}

/// What the caller must do after an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    /// SIGKILL the process group; its exit arrives as `Event::Exited`.
    Kill,
    /// Start the process now.
    Spawn,
    /// Start the process after this delay (state is `Backoff` meanwhile).
    SpawnAfter(Duration),
    /// The registry changed in a way that must survive a restart of tenement.
    Persist,
}

/// Applies `event` to `life`. Events that do not apply in the current state
/// (a late probe result, a stale timer) change nothing and return no effect.
pub fn on(life: &mut Life, event: Event, policy: &Policy, now: Instant) -> Vec<Effect> {
    use State::*;
    match (life.state, event) {
        (_, Event::Spawned) => {
            life.state = Starting;
            life.health = Health::Unknown;
            life.failures = 0;
            vec![Effect::Persist]
        }
        (Starting, Event::Ready) => {
            life.state = Running;
            life.health = Health::Healthy;
            life.failures = 0;
            vec![Effect::Persist]
        }
        (Running, Event::CheckPassed) => {
            life.health = Health::Healthy;
            life.failures = 0;
            vec![]
        }
        (Running, Event::CheckFailed) => {
            life.failures += 1;
            if life.failures >= UNHEALTHY_AFTER {
                life.health = Health::Unhealthy;
                vec![Effect::Kill]
            } else {
                life.health = Health::Degraded;
                vec![]
            }
        }
        (Starting, Event::NotReadyInTime) => vec![Effect::Kill],
        (Starting | Running, Event::Exited { success }) => exited(life, success, policy, now),
        (Backoff, Event::BackoffElapsed) => vec![Effect::Spawn],
        (Sleeping, Event::Wake) => vec![Effect::Spawn],
        (Failed, Event::Revive) => {
            life.restarts.clear();
            vec![Effect::Spawn]
        }
        (Starting | Backoff | Sleeping | Failed, Event::Restart) => {
            life.restarts.clear();
            life.state = Starting;
            vec![Effect::Spawn]
        }
        (Stopping, Event::StopRequested(_)) => vec![],
        (_, Event::StopRequested(_)) => {
            life.state = Stopping;
            vec![]
        }
        (Stopping, Event::StopDone(AfterStop::Restart)) => {
            life.restarts.clear();
            life.state = Starting;
            vec![Effect::Spawn]
        }
        (Stopping, Event::StopDone(AfterStop::Move)) => {
            life.state = Moving;
            life.health = Health::Unknown;
            vec![Effect::Persist]
        }
        (Starting | Running | Backoff | Sleeping | Failed, Event::MoveHold) => {
            life.state = Moving;
            vec![]
        }
        (Moving, Event::Moved) => {
            life.state = Moved;
            vec![Effect::Persist]
        }
        (Moving | Moved, Event::MoveAborted) => {
            life.restarts.clear();
            life.state = Starting;
            vec![Effect::Spawn]
        }
        // A moving or moved instance has no process here: nothing starts it.
        (Moving | Moved, _) => vec![],
        (Stopping, Event::StopDone(AfterStop::Sleep)) => {
            life.state = Sleeping;
            life.health = Health::Unknown;
            vec![]
        }
        (Starting | Backoff | Sleeping | Failed, Event::SpawnFailed { crash: true }) => {
            exited(life, false, policy, now)
        }
        (Starting | Backoff | Sleeping | Failed, Event::SpawnFailed { crash: false }) => {
            life.state = Failed;
            vec![Effect::Persist]
        }
        _ => vec![],
    }
}

fn exited(life: &mut Life, success: bool, policy: &Policy, now: Instant) -> Vec<Effect> {
    life.health = Health::Unknown;
    life.failures = 0;
    let restart = match policy.restart {
        RestartPolicy::Never => false,
        RestartPolicy::OnFailure => !success,
        RestartPolicy::Always => true,
    };
    if !restart {
        life.state = if success {
            State::Sleeping
        } else {
            State::Failed
        };
        return vec![Effect::Persist];
    }
    let n = backoff::prune(&mut life.restarts, policy.window, now) + 1;
    if n > policy.max_restarts {
        life.state = State::Failed;
        return vec![Effect::Persist];
    }
    life.restarts.push_back(now);
    life.total_restarts += 1;
    life.state = State::Backoff;
    vec![
        Effect::SpawnAfter(backoff::delay(n, policy.backoff_base, policy.backoff_max)),
        Effect::Persist,
    ]
}

/// Where a stop is. It begins with SIGTERM to the group; SIGKILL follows
/// at `kill_at` if the group is not gone by then.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopPhase {
    /// SIGTERM sent, the leader runs; SIGKILL is due at `kill_at`.
    Terminating { kill_at: Instant },
    /// SIGKILL sent, the leader not reaped yet. `give_up_at` is cleared once
    /// it passes: a leader that survives SIGKILL (stuck in the kernel) is
    /// waited for through its pidfd, without a timer.
    Killed { give_up_at: Option<Instant> },
    /// The leader was reaped before SIGKILL; the rest of its group is looked
    /// at again at `next_check`, and still gets SIGKILL at `kill_at`.
    Draining {
        kill_at: Instant,
        next_check: Instant,
    },
    /// The leader was reaped and SIGKILL sent; the group is looked at again
    /// at `next_check`, and forgotten at `give_up_at` if members that init
    /// has not reaped remain.
    DrainingKilled {
        give_up_at: Option<Instant>,
        next_check: Instant,
    },
}

/// What a look at a stopping group found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupCheck {
    /// Not due, or members are still alive: wait.
    Wait,
    /// The leader is reaped and the group is empty: the stop is done.
    Gone,
    /// Members outlived SIGKILL past the grace: forget them, the stop is done.
    GiveUp,
}

impl StopPhase {
    /// The phase after SIGTERM at `now`.
    pub fn begin(now: Instant, stop_timeout: Duration) -> StopPhase {
        StopPhase::Terminating {
            kill_at: later(now, stop_timeout),
        }
    }

    /// The leader was reaped: look at its group now.
    pub fn leader_exited(&mut self, now: Instant) {
        *self = match *self {
            StopPhase::Terminating { kill_at } | StopPhase::Draining { kill_at, .. } => {
                StopPhase::Draining {
                    kill_at,
                    next_check: now,
                }
            }
            StopPhase::Killed { give_up_at } | StopPhase::DrainingKilled { give_up_at, .. } => {
                StopPhase::DrainingKilled {
                    give_up_at,
                    next_check: now,
                }
            }
        };
    }

    /// Whether SIGKILL is due at `now`; if so the phase counts it as sent.
    pub fn kill_due(&mut self, now: Instant) -> bool {
        let give_up_at = Some(now + KILL_GRACE);
        match *self {
            StopPhase::Terminating { kill_at } if kill_at <= now => {
                *self = StopPhase::Killed { give_up_at };
            }
            StopPhase::Draining {
                kill_at,
                next_check,
            } if kill_at <= now => {
                *self = StopPhase::DrainingKilled {
                    give_up_at,
                    next_check,
                };
            }
            _ => return false,
        }
        true
    }

    /// Looks at the group if that is due; `group_alive` is asked only then,
    /// and told whether SIGKILL was sent.
    pub fn check(&mut self, now: Instant, group_alive: impl FnOnce(bool) -> bool) -> GroupCheck {
        let (killed, give_up_at, next_check) = match self {
            StopPhase::Terminating { .. } => return GroupCheck::Wait,
            StopPhase::Killed { give_up_at } => {
                if give_up_at.is_some_and(|t| t <= now) {
                    *give_up_at = None;
                }
                return GroupCheck::Wait;
            }
            StopPhase::Draining { next_check, .. } => (false, None, next_check),
            StopPhase::DrainingKilled {
                give_up_at,
                next_check,
            } => (true, *give_up_at, next_check),
        };
        if *next_check > now {
            return GroupCheck::Wait;
        }
        if !group_alive(killed) {
            GroupCheck::Gone
        } else if give_up_at.is_some_and(|t| t <= now) {
            GroupCheck::GiveUp
        } else {
            *next_check = now + GROUP_POLL;
            GroupCheck::Wait
        }
    }

    /// The nearest moment something is due.
    pub fn deadline(&self) -> Option<Instant> {
        let (a, b) = match *self {
            StopPhase::Terminating { kill_at } => (Some(kill_at), None),
            StopPhase::Killed { give_up_at } => (give_up_at, None),
            StopPhase::Draining {
                kill_at,
                next_check,
            } => (Some(kill_at), Some(next_check)),
            StopPhase::DrainingKilled {
                give_up_at,
                next_check,
            } => (give_up_at, Some(next_check)),
        };
        match (a, b) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(restart: RestartPolicy) -> Policy {
        Policy {
            restart,
            max_restarts: 3,
            window: Duration::from_secs(300),
            backoff_base: Duration::from_secs(1),
            backoff_max: Duration::from_secs(60),
        }
    }

    fn running() -> Life {
        let mut l = Life::new(State::Starting);
        l.state = State::Running;
        l.health = Health::Healthy;
        l
    }

    #[test]
    fn ready_makes_running_and_healthy() {
        let p = policy(RestartPolicy::OnFailure);
        let mut l = Life::new(State::Sleeping);
        on(&mut l, Event::Spawned, &p, Instant::now());
        assert_eq!((l.state, l.health), (State::Starting, Health::Unknown));
        on(&mut l, Event::Ready, &p, Instant::now());
        assert_eq!((l.state, l.health), (State::Running, Health::Healthy));
    }

    #[test]
    fn failed_checks_degrade_then_kill_at_three() {
        let p = policy(RestartPolicy::OnFailure);
        let now = Instant::now();
        let mut l = running();
        assert!(on(&mut l, Event::CheckFailed, &p, now).is_empty());
        assert_eq!(l.health, Health::Degraded);
        assert!(on(&mut l, Event::CheckFailed, &p, now).is_empty());
        assert_eq!(l.health, Health::Degraded);
        assert_eq!(on(&mut l, Event::CheckFailed, &p, now), vec![Effect::Kill]);
        assert_eq!(l.health, Health::Unhealthy);
        let mut l = running();
        on(&mut l, Event::CheckFailed, &p, now);
        on(&mut l, Event::CheckPassed, &p, now);
        assert_eq!((l.health, l.failures), (Health::Healthy, 0));
    }

    #[test]
    fn crashes_back_off_exponentially_then_fail() {
        let p = policy(RestartPolicy::OnFailure);
        let t0 = Instant::now();
        let mut l = running();
        let mut delays = Vec::new();
        for i in 0..3 {
            let fx = on(
                &mut l,
                Event::Exited { success: false },
                &p,
                t0 + Duration::from_secs(i),
            );
            assert_eq!(l.state, State::Backoff);
            delays.push(fx[0]);
            assert_eq!(
                on(&mut l, Event::BackoffElapsed, &p, t0),
                vec![Effect::Spawn]
            );
            on(&mut l, Event::Spawned, &p, t0);
        }
        let s = Duration::from_secs;
        assert_eq!(
            delays,
            [
                Effect::SpawnAfter(s(1)),
                Effect::SpawnAfter(s(2)),
                Effect::SpawnAfter(s(4))
            ]
        );
        on(&mut l, Event::Exited { success: false }, &p, t0 + s(10));
        assert_eq!(l.state, State::Failed);
        assert_eq!(l.total_restarts, 3);
        assert_eq!(on(&mut l, Event::Revive, &p, t0), vec![Effect::Spawn]);
        assert!(l.restarts.is_empty());
    }

    #[test]
    fn restarts_outside_the_window_are_forgotten() {
        let p = policy(RestartPolicy::Always);
        let t0 = Instant::now();
        let mut l = running();
        for i in 0..10u64 {
            let fx = on(
                &mut l,
                Event::Exited { success: false },
                &p,
                t0 + Duration::from_secs(400 * i),
            );
            assert_eq!(
                fx[0],
                Effect::SpawnAfter(Duration::from_secs(1)),
                "crash {i}"
            );
            on(&mut l, Event::Spawned, &p, t0);
        }
    }

    #[test]
    fn clean_exit_follows_the_policy() {
        let now = Instant::now();
        let mut l = running();
        on(
            &mut l,
            Event::Exited { success: true },
            &policy(RestartPolicy::OnFailure),
            now,
        );
        assert_eq!(l.state, State::Sleeping);
        let mut l = running();
        let fx = on(
            &mut l,
            Event::Exited { success: true },
            &policy(RestartPolicy::Always),
            now,
        );
        assert_eq!(
            (l.state, fx[0]),
            (State::Backoff, Effect::SpawnAfter(Duration::from_secs(1)))
        );
        let mut l = running();
        on(
            &mut l,
            Event::Exited { success: false },
            &policy(RestartPolicy::Never),
            now,
        );
        assert_eq!(l.state, State::Failed);
    }

    #[test]
    fn slow_start_is_killed_and_counts_as_a_crash() {
        let p = policy(RestartPolicy::OnFailure);
        let now = Instant::now();
        let mut l = Life::new(State::Starting);
        assert_eq!(
            on(&mut l, Event::NotReadyInTime, &p, now),
            vec![Effect::Kill]
        );
        on(&mut l, Event::Exited { success: false }, &p, now);
        assert_eq!(l.state, State::Backoff);
    }

    #[test]
    fn stale_events_change_nothing() {
        let p = policy(RestartPolicy::OnFailure);
        let now = Instant::now();
        let mut l = Life::new(State::Stopping);
        assert!(on(&mut l, Event::Exited { success: false }, &p, now).is_empty());
        assert!(on(&mut l, Event::Ready, &p, now).is_empty());
        assert_eq!(l.state, State::Stopping);
        let mut l = running();
        assert!(on(&mut l, Event::BackoffElapsed, &p, now).is_empty());
        assert!(on(&mut l, Event::NotReadyInTime, &p, now).is_empty());
        let mut l = Life::new(State::Sleeping);
        assert_eq!(on(&mut l, Event::Wake, &p, now), vec![Effect::Spawn]);
    }

    /// Every state x event pair: the next state and the effects, under
    /// `restart = on-failure`, one restart and one failed check behind it (so
    /// a crash backs off 2s, and a reset shows). A pair whose effects are
    /// empty and state unchanged must leave the whole `Life` untouched,
    /// except for the health bookkeeping of a running instance's checks.
    #[test]
    fn every_state_and_event() {
        use AfterStop::*;
        use Effect::*;
        use State::*;
        let p = policy(RestartPolicy::OnFailure);
        let now = Instant::now();
        let crash = [SpawnAfter(Duration::from_secs(2)), Persist];
        let states = [
            Starting, Running, Backoff, Sleeping, Failed, Stopping, Moving, Moved,
        ];
        type Row<'a> = (Event, [(State, &'a [Effect]); 8]);
        #[rustfmt::skip]
        let table: Vec<Row> = vec![
            // Columns: from Starting, Running, Backoff, Sleeping, Failed, Stopping, Moving, Moved.
            (Event::Spawned,            [(Starting, &[Persist]), (Starting, &[Persist]), (Starting, &[Persist]), (Starting, &[Persist]), (Starting, &[Persist]), (Starting, &[Persist]), (Starting, &[Persist]), (Starting, &[Persist])]),
            (Event::Ready,              [(Running, &[Persist]), (Running, &[]), (Backoff, &[]), (Sleeping, &[]), (Failed, &[]), (Stopping, &[]), (Moving, &[]), (Moved, &[])]),
            (Event::CheckPassed,        [(Starting, &[]), (Running, &[]), (Backoff, &[]), (Sleeping, &[]), (Failed, &[]), (Stopping, &[]), (Moving, &[]), (Moved, &[])]),
            (Event::CheckFailed,        [(Starting, &[]), (Running, &[]), (Backoff, &[]), (Sleeping, &[]), (Failed, &[]), (Stopping, &[]), (Moving, &[]), (Moved, &[])]),
            (Event::NotReadyInTime,     [(Starting, &[Kill]), (Running, &[]), (Backoff, &[]), (Sleeping, &[]), (Failed, &[]), (Stopping, &[]), (Moving, &[]), (Moved, &[])]),
            (Event::Exited { success: true },  [(Sleeping, &[Persist]), (Sleeping, &[Persist]), (Backoff, &[]), (Sleeping, &[]), (Failed, &[]), (Stopping, &[]), (Moving, &[]), (Moved, &[])]),
            (Event::Exited { success: false }, [(Backoff, &crash), (Backoff, &crash), (Backoff, &[]), (Sleeping, &[]), (Failed, &[]), (Stopping, &[]), (Moving, &[]), (Moved, &[])]),
            (Event::BackoffElapsed,     [(Starting, &[]), (Running, &[]), (Backoff, &[Spawn]), (Sleeping, &[]), (Failed, &[]), (Stopping, &[]), (Moving, &[]), (Moved, &[])]),
            (Event::Wake,               [(Starting, &[]), (Running, &[]), (Backoff, &[]), (Sleeping, &[Spawn]), (Failed, &[]), (Stopping, &[]), (Moving, &[]), (Moved, &[])]),
            (Event::Revive,             [(Starting, &[]), (Running, &[]), (Backoff, &[]), (Sleeping, &[]), (Failed, &[Spawn]), (Stopping, &[]), (Moving, &[]), (Moved, &[])]),
            (Event::Restart,            [(Starting, &[Spawn]), (Running, &[]), (Starting, &[Spawn]), (Starting, &[Spawn]), (Starting, &[Spawn]), (Stopping, &[]), (Moving, &[]), (Moved, &[])]),
            (Event::StopRequested(Forget),   [(Stopping, &[]), (Stopping, &[]), (Stopping, &[]), (Stopping, &[]), (Stopping, &[]), (Stopping, &[]), (Stopping, &[]), (Stopping, &[])]),
            (Event::StopRequested(Sleep),    [(Stopping, &[]), (Stopping, &[]), (Stopping, &[]), (Stopping, &[]), (Stopping, &[]), (Stopping, &[]), (Stopping, &[]), (Stopping, &[])]),
            (Event::StopRequested(Restart),  [(Stopping, &[]), (Stopping, &[]), (Stopping, &[]), (Stopping, &[]), (Stopping, &[]), (Stopping, &[]), (Stopping, &[]), (Stopping, &[])]),
            (Event::StopRequested(Shutdown), [(Stopping, &[]), (Stopping, &[]), (Stopping, &[]), (Stopping, &[]), (Stopping, &[]), (Stopping, &[]), (Stopping, &[]), (Stopping, &[])]),
            (Event::StopDone(Forget),   [(Starting, &[]), (Running, &[]), (Backoff, &[]), (Sleeping, &[]), (Failed, &[]), (Stopping, &[]), (Moving, &[]), (Moved, &[])]),
            (Event::StopDone(Sleep),    [(Starting, &[]), (Running, &[]), (Backoff, &[]), (Sleeping, &[]), (Failed, &[]), (Sleeping, &[]), (Moving, &[]), (Moved, &[])]),
            (Event::StopDone(Restart),  [(Starting, &[]), (Running, &[]), (Backoff, &[]), (Sleeping, &[]), (Failed, &[]), (Starting, &[Spawn]), (Moving, &[]), (Moved, &[])]),
            (Event::StopDone(Shutdown), [(Starting, &[]), (Running, &[]), (Backoff, &[]), (Sleeping, &[]), (Failed, &[]), (Stopping, &[]), (Moving, &[]), (Moved, &[])]),
            (Event::StopRequested(Move),     [(Stopping, &[]), (Stopping, &[]), (Stopping, &[]), (Stopping, &[]), (Stopping, &[]), (Stopping, &[]), (Stopping, &[]), (Stopping, &[])]),
            (Event::StopDone(Move),     [(Starting, &[]), (Running, &[]), (Backoff, &[]), (Sleeping, &[]), (Failed, &[]), (Moving, &[Persist]), (Moving, &[]), (Moved, &[])]),
            (Event::MoveHold,           [(Moving, &[]), (Moving, &[]), (Moving, &[]), (Moving, &[]), (Moving, &[]), (Stopping, &[]), (Moving, &[]), (Moved, &[])]),
            (Event::Moved,              [(Starting, &[]), (Running, &[]), (Backoff, &[]), (Sleeping, &[]), (Failed, &[]), (Stopping, &[]), (Moved, &[Persist]), (Moved, &[])]),
            (Event::MoveAborted,        [(Starting, &[]), (Running, &[]), (Backoff, &[]), (Sleeping, &[]), (Failed, &[]), (Stopping, &[]), (Starting, &[Spawn]), (Starting, &[Spawn])]),
            (Event::SpawnFailed { crash: true },  [(Backoff, &crash), (Running, &[]), (Backoff, &crash), (Backoff, &crash), (Backoff, &crash), (Stopping, &[]), (Moving, &[]), (Moved, &[])]),
            (Event::SpawnFailed { crash: false }, [(Failed, &[Persist]), (Running, &[]), (Failed, &[Persist]), (Failed, &[Persist]), (Failed, &[Persist]), (Stopping, &[]), (Moving, &[]), (Moved, &[])]),
        ];
        // Every event variant is in the table (adding one breaks this match).
        for (event, _) in &table {
            match event {
                Event::Spawned
                | Event::Ready
                | Event::CheckPassed
                | Event::CheckFailed
                | Event::NotReadyInTime
                | Event::Exited { .. }
                | Event::BackoffElapsed
                | Event::Wake
                | Event::Revive
                | Event::Restart
                | Event::StopRequested(_)
                | Event::StopDone(_)
                | Event::SpawnFailed { .. }
                | Event::MoveHold
                | Event::Moved
                | Event::MoveAborted => {}
            }
        }
        assert_eq!(table.len(), 26);
        for (event, row) in table {
            for (from, (to, effects)) in states.into_iter().zip(row) {
                let mut life = Life::new(from);
                life.restarts.push_back(now);
                life.failures = 1;
                let before = life.clone();
                let got = on(&mut life, event, &p, now);
                assert_eq!(
                    (life.state, got.as_slice()),
                    (to, effects),
                    "{from:?} x {event:?}"
                );
                let health_only =
                    from == Running && matches!(event, Event::CheckPassed | Event::CheckFailed);
                if to == from && effects.is_empty() && !health_only {
                    assert_eq!(life, before, "{from:?} x {event:?} must change nothing");
                }
            }
        }
    }

    #[test]
    fn restarts_and_revives_forget_past_crashes() {
        let p = policy(RestartPolicy::OnFailure);
        let now = Instant::now();
        for (from, event) in [
            (State::Failed, Event::Restart),
            (State::Failed, Event::Revive),
            (State::Stopping, Event::StopDone(AfterStop::Restart)),
        ] {
            let mut l = Life::new(from);
            l.restarts.extend([now, now, now]);
            l.total_restarts = 3;
            on(&mut l, event, &p, now);
            assert!(l.restarts.is_empty(), "{from:?} x {event:?}");
            assert_eq!(l.total_restarts(), 3, "`ten ps` keeps counting");
        }
    }

    #[test]
    fn going_to_sleep_forgets_health() {
        let p = policy(RestartPolicy::OnFailure);
        let now = Instant::now();
        let mut l = running();
        on(&mut l, Event::StopRequested(AfterStop::Sleep), &p, now);
        assert_eq!((l.state(), l.health()), (State::Stopping, Health::Healthy));
        on(&mut l, Event::StopDone(AfterStop::Sleep), &p, now);
        assert_eq!((l.state(), l.health()), (State::Sleeping, Health::Unknown));
    }

    #[test]
    fn a_failing_automatic_start_counts_against_the_restart_limit() {
        let p = policy(RestartPolicy::OnFailure);
        let now = Instant::now();
        let mut l = Life::new(State::Sleeping);
        for _ in 0..3 {
            on(&mut l, Event::SpawnFailed { crash: true }, &p, now);
            assert_eq!(l.state(), State::Backoff);
            on(&mut l, Event::BackoffElapsed, &p, now);
        }
        on(&mut l, Event::SpawnFailed { crash: true }, &p, now);
        assert_eq!(l.state(), State::Failed);
    }

    #[test]
    fn stop_purposes_merge() {
        use AfterStop::*;
        let all = [Forget, Restart, Shutdown, Sleep];
        for current in all {
            assert_eq!(
                current.merge(Forget),
                Forget,
                "forget wins over {current:?}"
            );
        }
        assert_eq!(Sleep.merge(Restart), Restart);
        assert_eq!(Shutdown.merge(Restart), Shutdown);
        assert_eq!(Forget.merge(Restart), Forget);
        assert_eq!(Restart.merge(Sleep), Restart);
        assert_eq!(Shutdown.merge(Sleep), Shutdown);
        assert_eq!(Restart.merge(Shutdown), Restart);
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn a_group_that_goes_on_sigterm_is_done_without_sigkill() {
        let t0 = Instant::now();
        let mut phase = StopPhase::begin(t0, ms(500));
        assert_eq!(phase.deadline(), Some(t0 + ms(500)));
        assert!(!phase.kill_due(t0 + ms(100)));
        assert_eq!(
            phase.check(t0 + ms(100), |_| panic!("not due")),
            GroupCheck::Wait
        );
        phase.leader_exited(t0 + ms(100));
        assert_eq!(phase.deadline(), Some(t0 + ms(100)));
        // A member is still alive: look again after GROUP_POLL.
        assert_eq!(phase.check(t0 + ms(100), |_| true), GroupCheck::Wait);
        assert_eq!(phase.deadline(), Some(t0 + ms(100) + GROUP_POLL));
        assert_eq!(
            phase.check(t0 + ms(105), |_| panic!("not due")),
            GroupCheck::Wait
        );
        assert_eq!(phase.check(t0 + ms(110), |_| false), GroupCheck::Gone);
    }

    #[test]
    fn a_group_that_ignores_sigterm_is_killed_then_given_up() {
        let t0 = Instant::now();
        let mut phase = StopPhase::begin(t0, ms(500));
        assert!(phase.kill_due(t0 + ms(500)));
        assert!(!phase.kill_due(t0 + ms(501)), "SIGKILL is sent once");
        assert_eq!(phase.deadline(), Some(t0 + ms(500) + KILL_GRACE));
        phase.leader_exited(t0 + ms(600));
        assert_eq!(phase.check(t0 + ms(600), |_| true), GroupCheck::Wait);
        let late = t0 + ms(500) + KILL_GRACE;
        assert_eq!(phase.check(late, |_| true), GroupCheck::GiveUp);
    }

    #[test]
    fn members_outliving_the_leader_still_get_sigkill() {
        let t0 = Instant::now();
        let mut phase = StopPhase::begin(t0, ms(500));
        phase.leader_exited(t0 + ms(10));
        assert_eq!(phase.check(t0 + ms(10), |_| true), GroupCheck::Wait);
        assert!(phase.kill_due(t0 + ms(500)));
        assert!(matches!(phase, StopPhase::DrainingKilled { .. }));
        assert_eq!(
            phase.check(t0 + ms(500), |killed| !killed),
            GroupCheck::Gone,
            "the look after SIGKILL knows it was sent"
        );
    }

    #[test]
    fn a_leader_surviving_sigkill_is_waited_for_without_a_timer() {
        let t0 = Instant::now();
        let mut phase = StopPhase::begin(t0, ms(500));
        assert!(phase.kill_due(t0 + ms(500)));
        let late = t0 + ms(500) + KILL_GRACE;
        assert_eq!(
            phase.check(late, |_| panic!("leader not reaped")),
            GroupCheck::Wait
        );
        assert_eq!(phase.deadline(), None);
        // Reaped at last: the group is looked at, and never given up on.
        phase.leader_exited(late + ms(1000));
        assert_eq!(phase.check(late + ms(1000), |_| true), GroupCheck::Wait);
        assert_eq!(
            phase.check(late + ms(1000) + GROUP_POLL, |_| false),
            GroupCheck::Gone
        );
    }
}
