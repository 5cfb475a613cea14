//! Readiness and health probes: starting one, stepping it on fd events,
//! cancelling it, and what its outcome means for the instance. A starting
//! instance's readiness over TCP is asked of the kernel (does anything
//! listen on its port?) rather than probed with a connection; its first
//! health check waits for the requests held through the start.

use std::io;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use mio::{Interest, Token};

use super::{
    unix_secs, Supervisor, CHECK_TIMEOUT, FAST_POLL, READY_POLL, READY_PROBES_PER_SEC, RECHECK_POLL,
};
use crate::isolate::owner::{self, Squatter, Verdict};
use crate::isolate::procfs;
use crate::names::InstanceKey;
use crate::state::layout;
use crate::supervisor::health::{self, Outcome, Probe};
use crate::supervisor::lifecycle::{self, Effect, Event};
use crate::supervisor::snapshot::State;
use crate::supervisor::spread;
use crate::supervisor::table::{HeldOut, Source, WaitFor};
use crate::sys::sock_diag;

impl Supervisor {
    /// Drops the probe in flight. Returns whether it was a recheck after a
    /// refusal: the flag describes the probe, so it goes with it.
    pub(super) fn cancel_probe(&mut self, key: &InstanceKey) -> bool {
        let Some(inst) = self.instances.get_mut(key) else {
            return false;
        };
        let recheck = std::mem::take(&mut inst.recheck);
        // Closing the socket takes it out of the poll.
        if let Some((token, _)) = inst.probe.take() {
            self.tokens.remove(&token);
        }
        recheck
    }

    pub(super) fn start_probe(&mut self, key: &InstanceKey, now: Instant) {
        let Some(inst) = self.instances.get(key) else {
            return;
        };
        // Does it accept at all? The question a refused request asks, and
        // the first one of a start: held requests go once it accepts, its
        // health check follows.
        let accepting = inst.run.as_ref().is_some_and(|r| r.accepting);
        let starting = inst.life.state() == State::Starting;
        let bare = inst.recheck || (starting && !accepting);
        if !bare && starting && self.held_unanswered(key, now) {
            // Its first health check waits for the held requests' answers.
            let inst = self.instances.get_mut(key).expect("present above");
            inst.next_probe = Some(now + FAST_POLL);
            return;
        }
        let inst = self.instances.get_mut(key).expect("present above");
        let health = match bare {
            true => None,
            false => self
                .config
                .services
                .get(key.service.as_str())
                .and_then(|s| s.health.as_deref())
                .map(|path| self.requests.get(&key.service, path)),
        };
        let timeout = match inst.life.state() {
            State::Starting => inst
                .start_deadline
                .unwrap_or(now + CHECK_TIMEOUT)
                .max(now + READY_POLL),
            _ => {
                now + CHECK_TIMEOUT.min(self.config.settings.health_check_interval.max(READY_POLL))
            }
        };
        let port = inst.port;
        let look_up = bare && !inst.recheck && inst.listener.is_none();
        let Some(run) = inst.run.as_mut() else {
            return;
        };
        // A health check goes over the connection the last one kept, if
        // any: only TCP connections are kept, and one that still carries
        // checks needs no look at `SOCKET_PATH`.
        if let Some(request) = &health {
            if let Some((token, stream)) = run.kept.conn.take() {
                let probe = Probe::reuse(stream, request.clone(), timeout, run.kept.skip);
                inst.probe = Some((token, probe));
                inst.next_probe = None;
                return self.step_probe(key);
            }
        }
        // A new connection goes to the app's Unix socket when it made one
        // (and connects there each time, so that `owner_unchecked` sees
        // the file it goes to), else TCP to the port.
        let socket = run
            .kept
            .socket
            .get_or_insert_with(|| {
                layout::instance_socket_path(&self.data_dir, &key.service, &key.id).into()
            })
            .clone();
        let via_socket = health::socket_exists(&socket);
        if look_up
            && !via_socket
            && sock_diag::can_look_up()
            && self.look_for_listener(key, port, now)
        {
            return;
        }
        match Probe::start(port, via_socket.then_some(&*socket), health, timeout) {
            Ok(mut probe) => {
                if self.owner_unchecked(key, probe.via_socket(), &socket) {
                    probe.hold();
                }
                let token = self.token(key, Source::Probe);
                if let Err(e) = self.poll.registry().register(
                    &mut probe.stream,
                    token,
                    Interest::READABLE | Interest::WRITABLE,
                ) {
                    self.tokens.remove(&token);
                    let recheck = self.cancel_probe(key);
                    let outcome = Outcome::Fail(format!("register probe: {e}").into());
                    self.probe_done(key, outcome, recheck, now);
                    return;
                }
                let inst = self.instances.get_mut(key).expect("present above");
                inst.probe = Some((token, probe));
                inst.next_probe = None;
                // On loopback the connect is usually done already: go on
                // now rather than after the poll says so.
                self.step_probe(key);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                // A Unix socket's accept queue is full for a moment: the app
                // is busy, not down. Try again shortly; it counts for nothing.
                let inst = self.instances.get_mut(key).expect("present above");
                inst.next_probe = Some(now + READY_POLL);
            }
            Err(e) => {
                let recheck = self.cancel_probe(key);
                let outcome = Outcome::Fail(health::describe(&e));
                self.probe_done(key, outcome, recheck, now)
            }
        }
    }

    /// An event on a probe's socket: the probe in flight goes on. On a
    /// kept connection between checks, if the app closed it (or sent what
    /// nobody asked for) it is dropped, and this process's checks connect
    /// each time from now on.
    pub(super) fn on_probe_event(&mut self, key: &InstanceKey, token: Token) {
        let Some(inst) = self.instances.get_mut(key) else {
            return;
        };
        if inst.probe.as_ref().is_some_and(|(t, _)| *t == token) {
            return self.step_probe(key);
        }
        let Some(run) = inst.run.as_mut() else {
            return;
        };
        let Some((t, stream)) = run.kept.conn.as_ref() else {
            return;
        };
        // Edge-triggered: room to write again is an event too, and means
        // nothing here; nor does the rest of the last answer arriving.
        // Closed, or bytes nobody asked for, end it.
        if *t == token && run.kept.skip == 0 && !health::still_open(stream) {
            run.kept.conn = None;
            run.kept.off = true;
            self.tokens.remove(&token);
        }
    }

    pub(super) fn step_probe(&mut self, key: &InstanceKey) {
        let Some((_, probe)) = self.instances.get_mut(key).and_then(|i| i.probe.as_mut()) else {
            return;
        };
        let mut outcome = probe.step(&mut self.probe_buf[..]);
        if outcome == Outcome::Connected {
            let (via_socket, peer) = (probe.via_socket(), probe.peer());
            outcome = match self.check_owner(key, via_socket, peer, None) {
                Ok(Verdict::Owned) => {
                    match self.instances.get_mut(key).and_then(|i| i.probe.as_mut()) {
                        Some((_, probe)) => {
                            probe.release();
                            probe.step(&mut self.probe_buf[..])
                        }
                        None => return,
                    }
                }
                Ok(Verdict::Missing) => Outcome::Fail("nobody listens there any more".into()),
                Ok(Verdict::Foreign(squatter)) => {
                    self.cancel_probe(key);
                    self.squatted(key, via_socket, &squatter, Instant::now());
                    return;
                }
                Err(e) => Outcome::Fail(format!("cannot tell whose listener it is: {e}").into()),
            };
        }
        let Some(inst) = self.instances.get_mut(key) else {
            return;
        };
        let Some((_, probe)) = inst.probe.as_mut() else {
            return;
        };
        if let (Outcome::Pass(_), Some(run)) = (&outcome, inst.run.as_mut()) {
            // The front connects the way the last passing probe did.
            if run.via_socket != probe.via_socket() {
                run.via_socket = probe.via_socket();
                self.dirty = true;
            }
        }
        match outcome {
            Outcome::Pending => return,
            Outcome::Stale => {
                // The app closed the kept connection: check again on a new
                // one, and connect each time from now on.
                self.cancel_probe(key);
                if let Some(run) = self.instances.get_mut(key).and_then(|i| i.run.as_mut()) {
                    run.kept.off = true;
                }
                return self.start_probe(key, Instant::now());
            }
            _ => {}
        }
        let connect_only = !probe.checks_health();
        let keep = probe.reusable().filter(|_| !probe.via_socket());
        let recheck = match keep {
            Some(skip) => self.keep_probe(key, skip),
            None => self.cancel_probe(key),
        };
        self.readiness_known(key, outcome, connect_only, recheck, Instant::now());
    }

    /// Ends the probe in flight keeping its connection, still registered,
    /// for the next check (unless this process's checks connect each
    /// time), with `skip` bytes of its answer still to drop. Returns what
    /// `cancel_probe` does.
    fn keep_probe(&mut self, key: &InstanceKey, skip: usize) -> bool {
        let Some(inst) = self.instances.get_mut(key) else {
            return false;
        };
        let keep = inst.run.as_ref().is_some_and(|r| !r.kept.off);
        if !keep {
            return self.cancel_probe(key);
        }
        let recheck = std::mem::take(&mut inst.recheck);
        if let (Some(run), Some((token, probe))) = (inst.run.as_mut(), inst.probe.take()) {
            run.kept.conn = Some((token, probe.stream));
            run.kept.skip = skip;
        }
        recheck
    }

    /// A probe's outcome; `connect_only`: it asked only whether the app
    /// accepts (no health path sent).
    fn readiness_known(
        &mut self,
        key: &InstanceKey,
        outcome: Outcome,
        connect_only: bool,
        recheck: bool,
        now: Instant,
    ) {
        let has_health = self
            .config
            .services
            .get(key.service.as_str())
            .is_some_and(|s| s.health.is_some());
        let starting = self
            .instances
            .get(key)
            .is_some_and(|i| i.life.state() == State::Starting);
        match outcome {
            Outcome::Pass(_) if connect_only && has_health && starting => self.accepted(key, now),
            _ => self.probe_done(key, outcome, recheck, now),
        }
    }

    /// Whether a starting instance listens on its TCP port, asked of the
    /// kernel instead of connecting: the app's first connection is then a
    /// held request, not a probe it must accept and drop first. Whose
    /// listener it is is checked as for a probe. False: the kernel could not
    /// say; a probe connects instead.
    fn look_for_listener(&mut self, key: &InstanceKey, port: u16, now: Instant) -> bool {
        let outcome = match sock_diag::tcp_listener_at(port) {
            Err(_) => return false,
            Ok(None) => Outcome::Fail("nobody listens yet".into()),
            Ok(Some(_)) if !self.owner_unchecked(key, false, Path::new("")) => {
                Outcome::Pass("listening".into())
            }
            Ok(Some(found)) => match self.check_owner(key, false, None, Some(found)) {
                Ok(Verdict::Owned) => Outcome::Pass("listening".into()),
                Ok(Verdict::Missing) => Outcome::Fail("nobody listens there any more".into()),
                Ok(Verdict::Foreign(squatter)) => {
                    self.squatted(key, false, &squatter, now);
                    return true;
                }
                Err(e) => Outcome::Fail(format!("cannot tell whose listener it is: {e}").into()),
            },
        };
        if let Some(run) = self.instances.get_mut(key).and_then(|i| i.run.as_mut()) {
            if matches!(outcome, Outcome::Pass(_)) && run.via_socket {
                // The front connects the way readiness was found.
                run.via_socket = false;
                self.dirty = true;
            }
        }
        self.readiness_known(key, outcome, true, false, now);
        true
    }

    /// A starting instance with a `health` path accepts connections on its
    /// own listener: the requests held for it go now, and its first health
    /// check follows (it becomes `running` when that passes): at once when
    /// none was held, else as soon as the front has answered them, so that
    /// the check does not compete with them in the app (`held_unanswered`).
    fn accepted(&mut self, key: &InstanceKey, now: Instant) {
        let Some(inst) = self.instances.get_mut(key) else {
            return;
        };
        let held = inst
            .waiters
            .iter()
            .filter(|w| matches!(w.what, WaitFor::Ready | WaitFor::Accepting))
            .count() as u64;
        // Not past half the time left to pass it, whatever the requests do.
        let left = inst
            .start_deadline
            .map_or(FIRST_CHECK_WAIT, |d| d.saturating_duration_since(now) / 2);
        let held_out = HeldOut {
            answered: inst.stats.answered() + held,
            until: now + FIRST_CHECK_WAIT.min(left),
        };
        let Some(run) = inst.run.as_mut() else {
            return;
        };
        let first = !run.accepting;
        run.accepting = true;
        run.held_out = (held > 0).then_some(held_out);
        let took = now.saturating_duration_since(run.started);
        // The loop comes back to it right after the held requests' go-ahead
        // is sent.
        inst.next_probe = Some(now);
        if first {
            self.note(
                key,
                &format!(
                    "accepts connections after {}ms; held requests go to it, health check follows",
                    took.as_millis()
                ),
            );
        }
        self.resolve_waiters(key);
    }

    /// A probe ended; `recheck`: it was the check after a refusal.
    pub(super) fn probe_done(
        &mut self,
        key: &InstanceKey,
        outcome: Outcome,
        recheck: bool,
        now: Instant,
    ) {
        let interval = self.config.settings.health_check_interval.max(READY_POLL);
        let policy = self.policy(&key.service);
        let Some(inst) = self.instances.get_mut(key) else {
            return;
        };
        if inst.run.is_none() {
            return;
        }
        let (ok, detail) = match outcome {
            Outcome::Pass(d) => (true, d),
            Outcome::Fail(d) => (false, d),
            Outcome::Pending | Outcome::Connected | Outcome::Stale => return,
        };
        let recheck = recheck && inst.life.state() == State::Running;
        let dying = recheck
            && inst.run.as_ref().is_some_and(|r| match r.start_ticks {
                Some(ticks) => !procfs::is_same_process(r.pid, ticks),
                None => !procfs::alive(r.pid),
            });
        if dying {
            // Killed, and its last threads still hold the socket open, so
            // the connect passed; the pidfd reports the exit once they are
            // gone, and held requests then wait for the restart. Checks go
            // on meanwhile, in case the exit never shows.
            inst.next_probe = Some(now + RECHECK_POLL);
            return;
        }
        if recheck && !ok {
            // Refused and not accepting: most likely it just died and the
            // pidfd event is still queued. Reap it now; held requests then
            // wait for the restart.
            self.on_exit(key);
            let Some(inst) = self.instances.get_mut(key) else {
                return;
            };
            if inst.run.is_none() || inst.life.state() != State::Running {
                return;
            }
        }
        let Some(inst) = self.instances.get_mut(key) else {
            return;
        };
        match inst.life.state() {
            State::Starting if !ok => {
                // Once it accepts, held requests no longer wait for the
                // health check: that goes on at the slower pace.
                let accepting = inst.run.as_ref().is_some_and(|r| r.accepting);
                let starting = self.starting();
                let wait = match accepting {
                    true => ready_poll(starting).max(READY_POLL),
                    false => ready_poll(starting),
                };
                let inst = self.instances.get_mut(key).expect("present above");
                inst.next_probe = Some(now + wait);
            }
            State::Starting => {
                let took = inst
                    .run
                    .as_ref()
                    .map(|r| now.saturating_duration_since(r.started))
                    .unwrap_or_default();
                inst.stats
                    .record_check(ok, &detail, unix_secs(SystemTime::now()));
                let fx = lifecycle::on(&mut inst.life, Event::Ready, &policy, now);
                inst.start_deadline = None;
                inst.next_probe = Some(spread::next_check(key, interval, now));
                inst.ready_at = Some(now);
                if inst.cgroup.is_none() {
                    // The first sample; then one every `SAMPLE_TURNS` sweeps.
                    inst.stats
                        .set_memory(inst.run.as_ref().and_then(|r| procfs::rss(r.pid)));
                }
                self.dirty = true;
                inst.stats.ready();
                self.note(key, &format!("ready after {}ms", took.as_millis()));
                self.apply(key, fx, now);
                self.resolve_waiters(key);
            }
            State::Running => {
                // The result is read through `stats`: a check that changes
                // nothing else publishes no new snapshot.
                inst.stats
                    .record_check(ok, &detail, unix_secs(SystemTime::now()));
                inst.next_probe = Some(spread::next_check(key, interval, now));
                if !ok && inst.waiters.iter().any(|w| w.what == WaitFor::Accepting) {
                    inst.next_probe = Some(now + interval.min(RECHECK_POLL));
                }
                let before = inst.life.health();
                let ev = if ok {
                    Event::CheckPassed
                } else {
                    Event::CheckFailed
                };
                let fx = lifecycle::on(&mut inst.life, ev, &policy, now);
                let after = inst.life.health();
                if before != after
                    || !fx.is_empty()
                    || inst.life.state() != State::Running
                    || !inst.waiters.is_empty()
                {
                    self.dirty = true;
                }
                if !ok {
                    self.note(
                        key,
                        &format!("health check failed: {detail} ({})", after.as_str()),
                    );
                } else if before != after {
                    self.note(key, &format!("health check passed ({})", after.as_str()));
                }
                self.apply(key, fx, now);
                self.resolve_waiters(key);
            }
            _ => {}
        }
    }

    /// Whether requests let go to starting instance `key` when it accepted
    /// are still unanswered (and `FIRST_CHECK_WAIT` has not passed): its
    /// first health check waits. Answered: the front has counted as many
    /// more answers as there were held requests, or has no request of the
    /// instance in flight (one failed without an answer).
    fn held_unanswered(&mut self, key: &InstanceKey, now: Instant) -> bool {
        let Some(inst) = self.instances.get_mut(key) else {
            return false;
        };
        let Some(run) = inst.run.as_mut() else {
            return false;
        };
        let Some(held) = run.held_out else {
            return false;
        };
        let waiting =
            now < held.until && inst.stats.open() > 0 && inst.stats.answered() < held.answered;
        if !waiting {
            run.held_out = None;
        }
        waiting
    }

    /// How many instances are starting (their readiness is being polled).
    fn starting(&self) -> usize {
        self.instances
            .values()
            .filter(|i| i.life.state() == State::Starting && i.run.is_some())
            .count()
    }

    /// Whether a probe over this transport must stop once connected, for
    /// `check_owner`: the first over each after a start or a wake, one
    /// after a refusal, and one whenever the file at `SOCKET_PATH` is not
    /// the one checked. With socket activation tenement holds the port
    /// itself, so nobody else can listen there.
    fn owner_unchecked(&self, key: &InstanceKey, via_socket: bool, socket: &Path) -> bool {
        let Some(inst) = self.instances.get(key) else {
            return false;
        };
        let Some(run) = inst.run.as_ref() else {
            return false;
        };
        match via_socket {
            true => run.owner.unix.is_none() || run.owner.unix != file_id(socket),
            false => inst.listener.is_none() && (!run.owner.tcp || inst.recheck),
        }
    }

    /// Whose listener a held probe reached: the instance's own processes'
    /// (its cgroup's, else its process tree), or a squatter's. `found`: the
    /// TCP listener a connection to the port reaches, already looked up
    /// (else every listener on the port is listed and judged). An owned one
    /// is remembered until the process changes.
    fn check_owner(
        &mut self,
        key: &InstanceKey,
        via_socket: bool,
        peer: Option<(u32, u32)>,
        found: Option<sock_diag::Listener>,
    ) -> std::io::Result<Verdict> {
        let socket = layout::instance_socket_path(&self.data_dir, &key.service, &key.id);
        let Some(inst) = self.instances.get_mut(key) else {
            return Ok(Verdict::Missing);
        };
        let Some(run) = inst.run.as_mut() else {
            return Ok(Verdict::Missing);
        };
        let mut members = inst.cgroup.as_ref().map(|c| c.pids()).unwrap_or_default();
        if members.is_empty() {
            members = owner::tree(run.pid);
        }
        let verdict = match (via_socket, found) {
            (true, _) => owner::unix(&socket, peer, &members)?,
            (false, Some(listener)) => owner::judge(&[listener], &members),
            (false, None) => owner::tcp(inst.port, &members)?,
        };
        if verdict == Verdict::Owned {
            match via_socket {
                true => run.owner.unix = file_id(&socket),
                false => run.owner.tcp = true,
            }
        }
        Ok(verdict)
    }

    /// Someone else listens where the instance should: nothing is sent
    /// there, the start counts as failed (the process is killed and its
    /// exit goes through the restart policy), and the log names who.
    fn squatted(&mut self, key: &InstanceKey, via_socket: bool, who: &Squatter, now: Instant) {
        let Some(inst) = self.instances.get_mut(key) else {
            return;
        };
        let place = match via_socket {
            true => layout::instance_socket_path(&self.data_dir, &key.service, &key.id)
                .display()
                .to_string(),
            false => format!("127.0.0.1:{}", inst.port),
        };
        inst.start_deadline = None;
        inst.next_probe = None;
        if let Some(run) = inst.run.as_mut() {
            run.via_socket = false;
        }
        self.dirty = true;
        self.note(
            key,
            &format!(
                "not routing to it: the listener at {place} belongs to {who}, not to this instance; killing it"
            ),
        );
        self.apply(key, vec![Effect::Kill], now);
    }
}

/// How long a starting instance that does not accept yet waits for its
/// next probe, with `starting` instances starting at once: `FAST_POLL`, or
/// longer so that together they make at most `READY_PROBES_PER_SEC`.
fn ready_poll(starting: usize) -> Duration {
    let share = Duration::from_secs(1) / READY_PROBES_PER_SEC;
    FAST_POLL.max(share.saturating_mul(u32::try_from(starting).unwrap_or(u32::MAX)))
}

/// The longest a first health check waits for the answers to the requests
/// held through the start.
const FIRST_CHECK_WAIT: Duration = Duration::from_secs(1);

/// (device, inode) of the file at `path`, followed if a symlink.
fn file_id(path: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readiness_is_polled_fast_until_many_start_at_once() {
        assert_eq!(ready_poll(0), FAST_POLL);
        assert_eq!(ready_poll(1), FAST_POLL);
        let per_probe = Duration::from_secs(1) / READY_PROBES_PER_SEC;
        let knee = (FAST_POLL.as_micros() / per_probe.as_micros()) as usize;
        assert_eq!(ready_poll(knee), FAST_POLL);
        assert!(ready_poll(knee + 1) > FAST_POLL);
        // 200 at once: 5,000 probes a second between them.
        assert_eq!(ready_poll(200), Duration::from_millis(40));
        assert!(ready_poll(usize::MAX) >= Duration::from_secs(1));
    }
}
