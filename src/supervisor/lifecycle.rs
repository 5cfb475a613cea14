//! The lifecycle as a state x event table (REFERENCE "Lifecycle").
//!
//! `on(life, event, policy, now)` updates an instance's state and health and
//! returns what the caller must do as data: kill the process group, spawn
//! now, spawn after a delay, persist the registry. No I/O and no clock here,
//! so every transition is unit-tested without a process.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::backoff;
use super::snapshot::{Health, State};
use crate::config::{RestartPolicy, Settings};

/// Consecutive failed checks from which an instance is unhealthy.
pub const UNHEALTHY_AFTER: u32 = 3;

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

/// An instance's lifecycle state.
#[derive(Debug, Clone)]
pub struct Life {
    pub state: State,
    pub health: Health,
    /// Failed checks in a row.
    pub failures: u32,
    /// When each restart within the window happened, oldest first.
    pub restarts: VecDeque<Instant>,
    /// Restarts since the instance was created (shown by `ten ps`).
    pub total_restarts: u32,
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
    /// `ten restart`/`ten spawn` on a failed instance: forget the failures.
    Revive,
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
}
