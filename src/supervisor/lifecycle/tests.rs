//! Tests of `lifecycle.rs`: the table test over every state x event pair,
//! health, backoff and the restart window, stop purposes, and every phase
//! of a stop (SIGTERM, SIGKILL, a group that outlives its leader).

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
