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
mod tests;
