//! The supervisor thread: one `mio::Poll` over the command channel's waker,
//! every child's pidfd, every child's stdout and stderr, and the probes in
//! flight; timers are the poll timeout (the nearest deadline), so an idle
//! supervisor sleeps.
//!
//! Every state change goes through `lifecycle::on`, whose effects are carried
//! out here; after each round of events the snapshot is republished if
//! anything changed and the registry saved if something that must survive a
//! restart did. Never blocks on the front: replies go down its channels.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, TryRecvError};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};
use rustix::process::Signal;

use super::health::{Outcome, Probe};
use super::lifecycle::{self, Effect, Event, Life, Policy};
use super::logs::{self, LogFile, Ring, Splitter};
use super::msg::{Command, Envelope, Reply, ReplyTo};
use super::snapshot::{instance_json, Check, InstanceView, Published, Snapshot, State};
use super::subscribers::Subscribers;
use super::table::{AfterStop, Instance, Pipe, Run, Source, Stop, WaitFor, Waiter};
use super::{ports, SuperviseError};
use crate::config::{Config, RestartPolicy, Service};
use crate::isolate::{self, proc};
use crate::names::InstanceKey;
use crate::state::{Registry, RegistryEntry};

/// The waker's token; instance fds get tokens from 1 up.
pub const WAKER: Token = Token(0);
/// How often readiness is polled while an instance starts.
const READY_POLL: Duration = Duration::from_millis(5);
/// While a refused request is held and the instance still runs but does not
/// accept: how soon to check again.
const RECHECK_POLL: Duration = Duration::from_millis(200);
/// How often an idle-timed instance with open connections is looked at
/// again (when they close, the front marks activity, which moves the
/// deadline past this anyway).
const IDLE_RECHECK: Duration = Duration::from_secs(1);
/// How long one health check may take.
const CHECK_TIMEOUT: Duration = Duration::from_secs(5);
/// How often a stopping group is looked at once its leader is gone.
const GROUP_POLL: Duration = Duration::from_millis(10);
/// After SIGKILL, how long to wait for members that init has not reaped yet.
const KILL_GRACE: Duration = Duration::from_secs(2);
/// Output lines quoted in a 504.
const TAIL_LINES: usize = 20;
const DEFAULT_WEIGHT: u8 = 100;

fn err(status: u16, message: impl Into<String>) -> Reply {
    Reply::Error {
        status,
        message: message.into(),
    }
}

/// Queues a reply; replies go out after the snapshot that reflects them is
/// published, so a front that gets an answer never reads an older snapshot.
fn post(outbox: &mut Vec<(ReplyTo, Reply)>, to: Option<ReplyTo>, r: Reply) {
    if let Some(to) = to {
        outbox.push((to, r));
    }
}

fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn unix_secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// How a process ended, in words for the log.
fn describe_exit(status: &ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exited with code {code}"),
        (None, Some(sig)) => format!("killed by signal {sig}"),
        _ => "exited".to_string(),
    }
}

fn human(d: Duration) -> String {
    if d.as_millis() % 1000 == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}

/// The supervisor's whole state; lives on its thread.
pub struct Supervisor {
    config: Config,
    data_dir: PathBuf,
    published: Arc<Published>,
    poll: Poll,
    rx: Receiver<Envelope>,
    instances: BTreeMap<InstanceKey, Instance>,
    tokens: HashMap<Token, (InstanceKey, Source)>,
    next_token: usize,
    /// Republish before sleeping.
    dirty: bool,
    /// Save the registry before sleeping.
    persist: bool,
    /// Set by `Shutdown`: who to tell once every instance is down.
    shutdown: Option<Option<ReplyTo>>,
    /// Replies waiting for the next publish.
    outbox: Vec<(ReplyTo, Reply)>,
    /// `/api/events` and `/api/logs/stream` subscribers.
    subscribers: Subscribers,
    /// The resolved config as `GET /api/config` shows it.
    config_json: Arc<serde_json::Value>,
}

impl Supervisor {
    pub fn new(
        config: Config,
        data_dir: PathBuf,
        published: Arc<Published>,
        poll: Poll,
        rx: Receiver<Envelope>,
    ) -> Supervisor {
        Supervisor {
            config_json: Arc::new(config.to_json()),
            config,
            data_dir,
            published,
            poll,
            rx,
            instances: BTreeMap::new(),
            tokens: HashMap::new(),
            next_token: 1,
            dirty: true,
            persist: false,
            shutdown: None,
            outbox: Vec::new(),
            subscribers: Subscribers::default(),
        }
    }

    fn registry_path(&self) -> PathBuf {
        crate::state::internal_dir(&self.data_dir).join("state")
    }

    fn token(&mut self, key: &InstanceKey, src: Source) -> Token {
        let t = Token(self.next_token);
        self.next_token += 1;
        self.tokens.insert(t, (key.clone(), src));
        t
    }

    /// The restart policy of `service`; an instance whose service a reload
    /// removed is never restarted.
    fn policy(&self, service: &str) -> Policy {
        let restart = self
            .config
            .services
            .get(service)
            .map_or(RestartPolicy::Never, |s| s.restart);
        Policy::new(restart, &self.config.settings)
    }

    fn startup_timeout(&self, service: &str) -> Duration {
        self.config
            .services
            .get(service)
            .map(|s| s.startup_timeout)
            .unwrap_or(Duration::from_secs(10))
    }

    /// Writes a lifecycle line to the instance log and the server log.
    fn note(&mut self, key: &InstanceKey, text: &str) {
        info!("supervisor", "{key} {text}");
        if let Some(inst) = self.instances.get_mut(key) {
            inst.log.write("ten", text);
            inst.ring.push("ten", text);
        }
        self.subscribers.lifecycle(key, text);
    }

    // ---- start-up -------------------------------------------------------

    /// Restores the registry and spawns `[instances]`; see `super::start`.
    pub fn restore(&mut self) -> Result<(), SuperviseError> {
        let registry = Registry::load(&self.registry_path()).map_err(SuperviseError::State)?;
        for entry in &registry.instances {
            kill_leftover(entry);
        }
        let now = Instant::now();
        for entry in registry.instances {
            let key = InstanceKey {
                service: entry.service.clone(),
                id: entry.id.clone(),
            };
            if !self.config.services.contains_key(&key.service) {
                warn!(
                    "supervisor",
                    "{key} dropped from the registry: service {:?} is no longer configured",
                    key.service
                );
                continue;
            }
            let state = match entry.desired.as_str() {
                "sleeping" => State::Sleeping,
                "failed" => State::Failed,
                _ => State::Starting,
            };
            self.insert(key.clone(), entry.port, entry.weight, state);
            if state == State::Starting {
                if let Err(e) = self.launch(&key, now) {
                    self.spawn_failed_at_boot(&key, &e);
                }
            }
        }
        for (service, id) in self.config.instances.clone() {
            let key = InstanceKey { service, id };
            if self.instances.contains_key(&key) || !self.config.services.contains_key(&key.service)
            {
                continue;
            }
            let Some(port) = self.alloc_port() else {
                error!(
                    "supervisor",
                    "{key} not started: no free port in {:?}", self.config.settings.port_range
                );
                continue;
            };
            self.insert(key.clone(), port, DEFAULT_WEIGHT, State::Starting);
            if let Err(e) = self.launch(&key, now) {
                self.spawn_failed_at_boot(&key, &e);
            }
        }
        self.persist = true;
        self.flush();
        Ok(())
    }

    fn spawn_failed_at_boot(&mut self, key: &InstanceKey, e: &str) {
        self.note(key, &format!("spawn failed: {e}"));
        if let Some(inst) = self.instances.get_mut(key) {
            inst.life.state = State::Failed;
        }
    }

    fn insert(&mut self, key: InstanceKey, port: u16, weight: u8, state: State) {
        let s = &self.config.settings;
        let log = LogFile::open(
            logs::log_path(&self.data_dir, &key.service, &key.id),
            s.log_max_bytes,
            s.log_files,
        );
        let inst = Instance {
            key: key.clone(),
            port,
            weight,
            life: Life::new(state),
            run: None,
            probe: None,
            next_probe: None,
            start_deadline: None,
            backoff_until: None,
            stop: None,
            last_check: None,
            ring: Ring::default(),
            log,
            waiters: Vec::new(),
            resume: false,
            stats: Default::default(),
            ready_at: None,
            listener: None,
            recheck: false,
        };
        self.instances.insert(key, inst);
        self.dirty = true;
    }

    fn alloc_port(&self) -> Option<u16> {
        let used: HashSet<u16> = self.instances.values().map(|i| i.port).collect();
        ports::pick(self.config.settings.port_range, &used, ports::bindable)
    }

    // ---- the loop -------------------------------------------------------

    /// Runs until `Shutdown` (or until every handle is dropped).
    pub fn run(mut self) {
        let mut events = Events::with_capacity(256);
        loop {
            let now = Instant::now();
            let timeout = self
                .next_deadline()
                .map(|d| d.saturating_duration_since(now));
            if let Err(e) = self.poll.poll(&mut events, timeout) {
                if e.kind() != io::ErrorKind::Interrupted {
                    error!("supervisor", "epoll_wait: {e}");
                    std::thread::sleep(Duration::from_millis(100));
                }
                continue;
            }
            for ev in events.iter() {
                if ev.token() != WAKER {
                    self.on_fd(ev.token());
                }
            }
            self.drain_commands();
            self.on_timers(Instant::now());
            self.flush();
            if self.shutdown.is_some() && self.instances.values().all(|i| i.stop.is_none()) {
                self.persist = true;
                if let Some(to) = self.shutdown.take() {
                    self.answer(to, Reply::Done(serde_json::json!({})));
                }
                self.flush();
                info!("supervisor", "all instances stopped");
                return;
            }
        }
    }

    fn answer(&mut self, to: Option<ReplyTo>, r: Reply) {
        post(&mut self.outbox, to, r);
    }

    /// Publishes and persists what changed, then sends the queued replies.
    fn flush(&mut self) {
        if self.persist {
            self.persist = false;
            let registry = self.registry();
            if let Err(e) = registry.save(&self.registry_path()) {
                error!("supervisor", "save registry: {e}");
            }
        }
        if self.dirty {
            self.dirty = false;
            let snapshot = self.snapshot();
            if !self.subscribers.is_empty() {
                let now = SystemTime::now();
                let objs: Vec<(InstanceKey, serde_json::Value)> = snapshot
                    .instances
                    .iter()
                    .map(|v| {
                        let key = InstanceKey {
                            service: v.service.clone(),
                            id: v.id.clone(),
                        };
                        (key, instance_json(v, now))
                    })
                    .collect();
                self.subscribers.changes(&objs);
            }
            self.published.publish(snapshot);
        }
        for (to, r) in self.outbox.drain(..) {
            to.send(r);
        }
    }

    fn next_deadline(&self) -> Option<Instant> {
        let mut next: Option<Instant> = None;
        let mut at = |t: Option<Instant>| {
            if let Some(t) = t {
                next = Some(next.map_or(t, |n| n.min(t)));
            }
        };
        let now = Instant::now();
        let now_ms = unix_ms(SystemTime::now());
        for inst in self.instances.values() {
            if self.shutdown.is_none() {
                at(self.idle_deadline(inst, now, now_ms));
            }
            at(inst.probe.as_ref().map(|(_, p)| p.deadline));
            if inst.probe.is_none() && inst.run.is_some() {
                at(inst.next_probe);
            }
            at(inst.start_deadline);
            at(inst.backoff_until);
            if let Some(stop) = &inst.stop {
                at((!stop.killed).then_some(stop.kill_at));
                at(stop.give_up_at);
                at(stop.next_check);
            }
            for w in &inst.waiters {
                at(Some(w.deadline));
            }
        }
        next
    }

    fn drain_commands(&mut self) {
        loop {
            match self.rx.try_recv() {
                Ok(env) => self.on_command(env.cmd, env.reply),
                Err(TryRecvError::Empty) => return,
                Err(TryRecvError::Disconnected) => {
                    // Every handle is gone: nobody can ask for anything any
                    // more, so shut down as if told to.
                    if self.shutdown.is_none() {
                        self.on_command(Command::Shutdown, None);
                    }
                    return;
                }
            }
        }
    }

    // ---- fd events ------------------------------------------------------

    fn on_fd(&mut self, token: Token) {
        let Some((key, src)) = self.tokens.get(&token).cloned() else {
            return;
        };
        match src {
            Source::Stdout | Source::Stderr => self.read_output(&key, src, false),
            Source::Pidfd => self.on_exit(&key),
            Source::Probe => self.step_probe(&key),
        }
    }

    /// Reads what a pipe has. At EOF (or `closing`, when the process is gone
    /// and whatever is left belongs to orphans) the pipe is dropped.
    fn read_output(&mut self, key: &InstanceKey, src: Source, closing: bool) {
        let Some(inst) = self.instances.get_mut(key) else {
            return;
        };
        let Some(run) = inst.run.as_mut() else { return };
        let (slot, stream) = match src {
            Source::Stdout => (&mut run.stdout, "stdout"),
            _ => (&mut run.stderr, "stderr"),
        };
        let Some(pipe) = slot.as_mut() else { return };
        let mut buf = [0u8; 16 * 1024];
        let mut lines = Vec::new();
        let eof = loop {
            match rustix::io::read(&pipe.fd, &mut buf) {
                Ok(0) => break true,
                Ok(n) => pipe.splitter.feed(&buf[..n], |l| lines.push(l)),
                Err(rustix::io::Errno::INTR) => {}
                Err(rustix::io::Errno::AGAIN) => break closing,
                Err(_) => break true,
            }
        };
        if eof {
            lines.extend(pipe.splitter.finish());
            let pipe = slot.take().expect("checked above");
            let _ = self
                .poll
                .registry()
                .deregister(&mut SourceFd(&pipe.fd.as_raw_fd()));
            self.tokens.remove(&pipe.token);
        }
        for l in lines {
            inst.log.write(stream, &l);
            inst.ring.push(stream, &l);
            self.subscribers.output(key, stream, &l);
        }
    }

    fn on_exit(&mut self, key: &InstanceKey) {
        let now = Instant::now();
        let Some(inst) = self.instances.get_mut(key) else {
            return;
        };
        let Some(run) = inst.run.as_mut() else { return };
        let status = match run.child.try_wait() {
            Ok(Some(status)) => status,
            // The pidfd is readable only once the process has exited; a
            // spurious wake-up changes nothing.
            Ok(None) => return,
            Err(e) => {
                error!("supervisor", "{key} waitpid({}): {e}", run.pid);
                return;
            }
        };
        let pgid = run.pgid;
        self.read_output(key, Source::Stdout, true);
        self.read_output(key, Source::Stderr, true);
        self.drop_run(key);
        self.cancel_probe(key);
        let what = describe_exit(&status);
        let policy = self.policy(&key.service);
        let inst = self.instances.get_mut(key).expect("present above");
        inst.start_deadline = None;
        inst.next_probe = None;
        if let Some(stop) = inst.stop.as_mut() {
            stop.leader_exited = true;
            stop.next_check = Some(now);
            self.note(key, &what);
            return;
        }
        // The leader died on its own: whatever it left in its group goes
        // too, so a restart finds the port and the data dir free.
        let _ = proc::signal_group(pgid, Signal::KILL);
        let success = status.code() == Some(0);
        let effects = lifecycle::on(&mut inst.life, Event::Exited { success }, &policy, now);
        let next = match (inst.life.state, effects.first()) {
            (State::Backoff, Some(Effect::SpawnAfter(d))) => format!("restarting in {}", human(*d)),
            (State::Sleeping, _) => "sleeping".to_string(),
            (State::Failed, _) if policy.restart == RestartPolicy::Never => {
                "failed (restart = never)".to_string()
            }
            (State::Failed, _) => format!("failed after {} restarts", policy.max_restarts),
            _ => String::new(),
        };
        self.note(key, &format!("{what}, {next}"));
        self.apply(key, effects, now);
    }

    /// Forgets the current process: its pidfd and pipes leave the poll.
    fn drop_run(&mut self, key: &InstanceKey) {
        let Some(inst) = self.instances.get_mut(key) else {
            return;
        };
        let Some(run) = inst.run.take() else { return };
        let registry = self.poll.registry();
        let _ = registry.deregister(&mut SourceFd(&run.raw_pidfd()));
        self.tokens.remove(&run.pidfd_token);
        for pipe in [run.stdout, run.stderr].into_iter().flatten() {
            let _ = registry.deregister(&mut SourceFd(&pipe.fd.as_raw_fd()));
            self.tokens.remove(&pipe.token);
        }
        self.dirty = true;
    }

    /// Drops the probe in flight. Returns whether it was a recheck after a
    /// refusal: the flag describes the probe, so it goes with it.
    fn cancel_probe(&mut self, key: &InstanceKey) -> bool {
        let Some(inst) = self.instances.get_mut(key) else {
            return false;
        };
        let recheck = std::mem::take(&mut inst.recheck);
        if let Some((token, mut probe)) = inst.probe.take() {
            let _ = self.poll.registry().deregister(&mut probe.stream);
            self.tokens.remove(&token);
        }
        recheck
    }

    // ---- probes ---------------------------------------------------------

    fn start_probe(&mut self, key: &InstanceKey, now: Instant) {
        let Some(inst) = self.instances.get(key) else {
            return;
        };
        let health = match inst.recheck {
            // Does it accept at all? The question a refused request asks.
            true => None,
            false => self
                .config
                .services
                .get(&key.service)
                .and_then(|s| s.health.clone()),
        };
        let timeout = match inst.life.state {
            State::Starting => inst
                .start_deadline
                .unwrap_or(now + CHECK_TIMEOUT)
                .max(now + READY_POLL),
            _ => {
                now + CHECK_TIMEOUT.min(self.config.settings.health_check_interval.max(READY_POLL))
            }
        };
        let port = inst.port;
        // Over the app's Unix socket when it made one, else TCP to the port.
        let socket = isolate::env::socket_path(&self.data_dir, &key.service, &key.id);
        match Probe::start(port, &socket, health.as_deref(), timeout) {
            Ok(mut probe) => {
                let token = self.token(key, Source::Probe);
                if let Err(e) = self.poll.registry().register(
                    &mut probe.stream,
                    token,
                    Interest::READABLE | Interest::WRITABLE,
                ) {
                    self.tokens.remove(&token);
                    let recheck = self.cancel_probe(key);
                    let outcome = Outcome::Fail(format!("register probe: {e}"));
                    self.probe_done(key, outcome, recheck, now);
                    return;
                }
                let inst = self.instances.get_mut(key).expect("present above");
                inst.probe = Some((token, probe));
                inst.next_probe = None;
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                // A Unix socket's accept queue is full for a moment: the app
                // is busy, not down. Try again shortly; it counts for nothing.
                let inst = self.instances.get_mut(key).expect("present above");
                inst.next_probe = Some(now + READY_POLL);
            }
            Err(e) => {
                let recheck = self.cancel_probe(key);
                let outcome = Outcome::Fail(super::health::describe(&e));
                self.probe_done(key, outcome, recheck, now)
            }
        }
    }

    fn step_probe(&mut self, key: &InstanceKey) {
        let Some(inst) = self.instances.get_mut(key) else {
            return;
        };
        let Some((_, probe)) = inst.probe.as_mut() else {
            return;
        };
        let outcome = probe.step();
        if let (Outcome::Pass(_), Some(run)) = (&outcome, inst.run.as_mut()) {
            // The front connects the way the last passing probe did.
            if run.via_socket != probe.via_socket() {
                run.via_socket = probe.via_socket();
                self.dirty = true;
            }
        }
        if outcome != Outcome::Pending {
            let recheck = self.cancel_probe(key);
            self.probe_done(key, outcome, recheck, Instant::now());
        }
    }

    /// A probe ended; `recheck`: it was the check after a refusal.
    fn probe_done(&mut self, key: &InstanceKey, outcome: Outcome, recheck: bool, now: Instant) {
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
            Outcome::Pending => return,
        };
        let recheck = recheck && inst.life.state == State::Running;
        let dying = recheck
            && inst.run.as_ref().is_some_and(|r| match r.start_ticks {
                Some(ticks) => !proc::is_same_process(r.pid, ticks),
                None => !proc::alive(r.pid),
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
            if inst.run.is_none() || inst.life.state != State::Running {
                return;
            }
        }
        let Some(inst) = self.instances.get_mut(key) else {
            return;
        };
        match inst.life.state {
            State::Starting if !ok => inst.next_probe = Some(now + READY_POLL),
            State::Starting => {
                let took = inst
                    .run
                    .as_ref()
                    .map(|r| now.saturating_duration_since(r.started))
                    .unwrap_or_default();
                inst.last_check = Some(Check {
                    ok,
                    detail,
                    at_unix: unix_secs(SystemTime::now()),
                });
                let fx = lifecycle::on(&mut inst.life, Event::Ready, &policy, now);
                inst.start_deadline = None;
                inst.next_probe = Some(now + interval);
                inst.ready_at = Some(SystemTime::now());
                self.dirty = true;
                inst.stats.ready();
                self.note(key, &format!("ready after {}ms", took.as_millis()));
                self.apply(key, fx, now);
                self.resolve_waiters(key);
            }
            State::Running => {
                inst.last_check = Some(Check {
                    ok,
                    detail: detail.clone(),
                    at_unix: unix_secs(SystemTime::now()),
                });
                inst.next_probe = Some(now + interval);
                if !ok && inst.waiters.iter().any(|w| w.what == WaitFor::Accepting) {
                    inst.next_probe = Some(now + interval.min(RECHECK_POLL));
                }
                let before = inst.life.health;
                let ev = if ok {
                    Event::CheckPassed
                } else {
                    Event::CheckFailed
                };
                let fx = lifecycle::on(&mut inst.life, ev, &policy, now);
                let after = inst.life.health;
                self.dirty = true;
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

    // ---- timers ---------------------------------------------------------

    fn on_timers(&mut self, now: Instant) {
        let keys: Vec<InstanceKey> = self.instances.keys().cloned().collect();
        for key in keys {
            self.instance_timers(&key, now);
        }
    }

    fn instance_timers(&mut self, key: &InstanceKey, now: Instant) {
        let policy = self.policy(&key.service);
        let Some(inst) = self.instances.get_mut(key) else {
            return;
        };

        if inst.probe.as_ref().is_some_and(|(_, p)| p.deadline <= now) {
            let recheck = self.cancel_probe(key);
            self.probe_done(key, Outcome::Fail("timeout".into()), recheck, now);
        }
        let Some(inst) = self.instances.get_mut(key) else {
            return;
        };
        if inst.probe.is_none()
            && inst.run.is_some()
            && inst.stop.is_none()
            && inst.next_probe.is_some_and(|t| t <= now)
        {
            // Cleared first: start_probe or its failure sets the next one.
            inst.next_probe = None;
            self.start_probe(key, now);
        }
        let Some(inst) = self.instances.get_mut(key) else {
            return;
        };
        if inst.start_deadline.is_some_and(|t| t <= now) {
            inst.start_deadline = None;
            let fx = lifecycle::on(&mut inst.life, Event::NotReadyInTime, &policy, now);
            let secs = self.startup_timeout(&key.service).as_secs();
            self.note(key, &format!("not ready after {secs}s, killing it"));
            self.apply(key, fx, now);
        }
        let Some(inst) = self.instances.get_mut(key) else {
            return;
        };
        if inst.backoff_until.is_some_and(|t| t <= now) {
            inst.backoff_until = None;
            let fx = lifecycle::on(&mut inst.life, Event::BackoffElapsed, &policy, now);
            self.apply(key, fx, now);
        }
        let Some(inst) = self.instances.get(key) else {
            return;
        };
        let idle = self.shutdown.is_none()
            && inst.stats.open.load(Ordering::Relaxed) == 0
            && self
                .idle_deadline(inst, now, unix_ms(SystemTime::now()))
                .is_some_and(|t| t <= now);
        if idle {
            self.begin_stop(key, AfterStop::Sleep, None, now);
        }
        self.stop_timers(key, now);
        self.expire_waiters(key, now);
    }

    /// When a running instance with an `idle_timeout` is due to sleep: its
    /// last request (or, with none since, the moment it became ready) plus
    /// the timeout. With connections open (a WebSocket, a long download) it
    /// is not idle: look again after `IDLE_RECHECK`.
    fn idle_deadline(&self, inst: &Instance, now: Instant, now_ms: u64) -> Option<Instant> {
        if inst.life.state != State::Running || inst.stop.is_some() || inst.run.is_none() {
            return None;
        }
        let timeout = self.config.services.get(&inst.key.service)?.idle_timeout?;
        if inst.stats.open.load(Ordering::Relaxed) > 0 {
            return Some(now + IDLE_RECHECK);
        }
        let last = inst
            .stats
            .last_active_ms
            .load(Ordering::Relaxed)
            .max(inst.ready_at.map_or(0, unix_ms));
        let due_ms = last.saturating_add(timeout.as_millis() as u64);
        Some(now + Duration::from_millis(due_ms.saturating_sub(now_ms)))
    }

    fn stop_timers(&mut self, key: &InstanceKey, now: Instant) {
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
            self.note(
                key,
                &format!("still running after stop_timeout, sent SIGKILL to group {pgid}"),
            );
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
        if !proc::group_alive(stop.pgid) {
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

    fn expire_waiters(&mut self, key: &InstanceKey, now: Instant) {
        let Some(inst) = self.instances.get_mut(key) else {
            return;
        };
        if inst.waiters.iter().all(|w| w.deadline > now) {
            return;
        }
        let (expired, kept): (Vec<Waiter>, Vec<Waiter>) =
            inst.waiters.drain(..).partition(|w| w.deadline <= now);
        inst.waiters = kept;
        let tail = inst.ring.tail(TAIL_LINES);
        for w in expired {
            let what = match w.what {
                WaitFor::Deploy { .. } => "healthy",
                _ => "ready",
            };
            let mut msg = format!("{key} not {what} within {}s", w.timeout_secs);
            if !tail.is_empty() {
                msg.push_str("; last output:\n");
                msg.push_str(&tail);
            }
            self.answer(w.reply, err(504, msg));
        }
    }

    // ---- effects --------------------------------------------------------

    fn apply(&mut self, key: &InstanceKey, effects: Vec<Effect>, now: Instant) {
        for fx in effects {
            match fx {
                Effect::Persist => {
                    self.persist = true;
                    self.dirty = true;
                }
                Effect::Kill => {
                    if let Some(run) = self.instances.get(key).and_then(|i| i.run.as_ref()) {
                        let _ = proc::signal_group(run.pgid, Signal::KILL);
                    }
                }
                Effect::SpawnAfter(d) => {
                    if let Some(inst) = self.instances.get_mut(key) {
                        inst.backoff_until = Some(now + d);
                        self.dirty = true;
                    }
                }
                Effect::Spawn => {
                    if let Err(e) = self.launch(key, now) {
                        self.note(key, &format!("spawn failed: {e}"));
                        let policy = self.policy(&key.service);
                        let Some(inst) = self.instances.get_mut(key) else {
                            return;
                        };
                        // A start that cannot even exec counts as a crash, so
                        // the restart limit ends the retries.
                        inst.life.state = State::Starting;
                        let fx = lifecycle::on(
                            &mut inst.life,
                            Event::Exited { success: false },
                            &policy,
                            now,
                        );
                        self.apply(key, fx, now);
                    }
                }
            }
        }
        self.fail_waiters_if_down(key);
    }

    /// A failed or sleeping instance will not become ready by itself: held
    /// requests are answered now.
    fn fail_waiters_if_down(&mut self, key: &InstanceKey) {
        let Some(inst) = self.instances.get_mut(key) else {
            return;
        };
        let message = match inst.life.state {
            State::Failed => "instance failed",
            State::Sleeping => "instance exited",
            _ => return,
        };
        let tail = inst.ring.tail(TAIL_LINES);
        for w in inst.waiters.drain(..) {
            let msg = if tail.is_empty() {
                message.to_string()
            } else {
                format!("{message}; last output:\n{tail}")
            };
            post(&mut self.outbox, w.reply, err(503, msg));
        }
    }

    /// Answers the waiters an instance now satisfies.
    fn resolve_waiters(&mut self, key: &InstanceKey) {
        let Some(inst) = self.instances.get_mut(key) else {
            return;
        };
        if inst.life.state != State::Running || inst.waiters.is_empty() {
            return;
        }
        let healthy = inst.life.health == super::snapshot::Health::Healthy;
        let (done, kept): (Vec<Waiter>, Vec<Waiter>) = inst
            .waiters
            .drain(..)
            .partition(|w| healthy || w.what == WaitFor::Ready);
        inst.waiters = kept;
        for w in &done {
            if let WaitFor::Deploy { weight } = w.what {
                inst.weight = weight;
                self.persist = true;
                self.dirty = true;
            }
        }
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, inst.port));
        for w in done {
            let r = match w.what {
                WaitFor::Ready | WaitFor::Accepting => Reply::Ready(addr),
                _ => Reply::Done(self.json(key)),
            };
            self.answer(w.reply, r);
        }
    }

    // ---- spawning -------------------------------------------------------

    /// Starts the instance's process. Err: why it could not (exec error,
    /// unknown service, isolation unavailable), in words for the API.
    fn launch(&mut self, key: &InstanceKey, now: Instant) -> Result<(), String> {
        let Some(svc) = self.config.services.get(&key.service).cloned() else {
            return Err(format!("service {:?} is not configured", key.service));
        };
        let policy = self.policy(&key.service);
        let port = self
            .instances
            .get(key)
            .map(|i| i.port)
            .ok_or("unknown instance")?;
        let env = isolate::env::build(std::env::vars_os(), &svc, &key.id, port, &self.data_dir);
        prepare_dirs(
            &self.data_dir,
            &svc,
            &key.id,
            env.get("DATA_DIR").map(Path::new),
        )?;
        if svc.socket_activation {
            self.bind_listener(key, port)?;
        } else if let Some(inst) = self.instances.get_mut(key) {
            // A reload turned socket activation off: free the port for the
            // app to bind itself.
            inst.listener = None;
        }
        let inst = self.instances.get(key).ok_or("unknown instance")?;
        let listen = inst.listener.as_ref().map(|l| isolate::Listen {
            fd: l.as_fd(),
            name: &key.service,
        });
        let spawned = isolate::spawn(svc.isolation, &svc.argv, &svc.workdir, env.vars(), listen)
            .map_err(|e| format!("spawn {key}: {e}"))?;
        let isolate::Spawned {
            mut child,
            pid,
            pgid,
            start_ticks,
        } = spawned;

        let pidfd = match rustix::process::Pid::from_raw(pid as i32)
            .ok_or(rustix::io::Errno::SRCH)
            .and_then(|p| rustix::process::pidfd_open(p, rustix::process::PidfdFlags::empty()))
        {
            Ok(fd) => fd,
            Err(e) => {
                let _ = proc::signal_group(pgid, Signal::KILL);
                let _ = child.wait();
                return Err(format!("pidfd_open({pid}): {e}"));
            }
        };
        let pidfd_token = self.token(key, Source::Pidfd);
        let registry_ok = self.poll.registry().register(
            &mut SourceFd(&pidfd.as_raw_fd()),
            pidfd_token,
            Interest::READABLE,
        );
        if let Err(e) = registry_ok {
            self.tokens.remove(&pidfd_token);
            let _ = proc::signal_group(pgid, Signal::KILL);
            let _ = child.wait();
            return Err(format!("register pidfd: {e}"));
        }
        let stdout = child.stdout.take().map(OwnedFd::from);
        let stderr = child.stderr.take().map(OwnedFd::from);
        let stdout = stdout.and_then(|fd| self.watch_pipe(key, Source::Stdout, fd));
        let stderr = stderr.and_then(|fd| self.watch_pipe(key, Source::Stderr, fd));

        let inst = self.instances.get_mut(key).expect("port read above");
        inst.run = Some(Run {
            child,
            pid,
            pgid,
            start_ticks,
            pidfd,
            pidfd_token,
            stdout,
            stderr,
            started: now,
            started_at: SystemTime::now(),
            via_socket: false,
        });
        inst.backoff_until = None;
        inst.start_deadline = Some(now + svc.startup_timeout);
        inst.next_probe = Some(now + READY_POLL);
        inst.ready_at = None;
        let fx = lifecycle::on(&mut inst.life, Event::Spawned, &policy, now);
        self.note(key, &format!("spawned pid {pid} port {port}"));
        self.apply(key, fx, now);
        self.dirty = true;
        if svc.socket_activation {
            // The socket already listens: the kernel queues connections
            // until the app accepts them, so a started process is ready.
            let interval = self.config.settings.health_check_interval.max(READY_POLL);
            let inst = self.instances.get_mut(key).expect("present above");
            if inst.life.state == State::Starting {
                let fx = lifecycle::on(&mut inst.life, Event::Ready, &policy, now);
                inst.start_deadline = None;
                inst.next_probe = Some(now + interval);
                inst.ready_at = Some(SystemTime::now());
                inst.stats.ready();
                self.note(
                    key,
                    "ready (socket activation: connections queue until it accepts)",
                );
                self.apply(key, fx, now);
                self.resolve_waiters(key);
            }
        }
        Ok(())
    }

    /// With socket activation: binds 127.0.0.1:port once and keeps it for
    /// the instance's lifetime (std sets SO_REUSEADDR and CLOEXEC; the
    /// child step clears CLOEXEC on its fd 3 only).
    fn bind_listener(&mut self, key: &InstanceKey, port: u16) -> Result<(), String> {
        let inst = self.instances.get_mut(key).ok_or("unknown instance")?;
        if inst.listener.is_none() {
            let l = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, port))
                .map_err(|e| format!("bind 127.0.0.1:{port} for socket activation: {e}"))?;
            inst.listener = Some(l);
        }
        Ok(())
    }

    fn watch_pipe(&mut self, key: &InstanceKey, src: Source, fd: OwnedFd) -> Option<Pipe> {
        if let Err(e) = rustix::io::ioctl_fionbio(fd.as_fd(), true) {
            warn!("supervisor", "{key} ioctl(FIONBIO): {e}");
            return None;
        }
        let token = self.token(key, src);
        if let Err(e) =
            self.poll
                .registry()
                .register(&mut SourceFd(&fd.as_raw_fd()), token, Interest::READABLE)
        {
            warn!("supervisor", "{key} register output pipe: {e}");
            self.tokens.remove(&token);
            return None;
        }
        Some(Pipe {
            fd,
            token,
            splitter: Splitter::default(),
        })
    }

    // ---- stopping -------------------------------------------------------

    /// Sends SIGTERM to the group and arms the SIGKILL timer; with no process,
    /// finishes at once.
    fn begin_stop(
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
        self.note(key, &format!("stopping: sent SIGTERM to group {pgid}"));
    }

    fn finish_stop(&mut self, key: &InstanceKey, now: Instant) {
        let Some(inst) = self.instances.get_mut(key) else {
            return;
        };
        let Some(stop) = inst.stop.take() else { return };
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
                inst.life.health = super::snapshot::Health::Unknown;
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

    // ---- commands -------------------------------------------------------

    fn on_command(&mut self, cmd: Command, to: Option<ReplyTo>) {
        let now = Instant::now();
        if self.shutdown.is_some() && !matches!(cmd, Command::Shutdown) {
            self.answer(to, err(503, "shutting down"));
            return;
        }
        match cmd {
            Command::Spawn { key, weight, wait } => {
                self.cmd_spawn(key, weight.unwrap_or(DEFAULT_WEIGHT), wait, to, now)
            }
            Command::Stop { key } => {
                if !self.instances.contains_key(&key) {
                    return self.answer(to, err(404, format!("unknown instance {key}")));
                }
                self.begin_stop(&key, AfterStop::Forget, to, now);
            }
            Command::Restart { key } => self.cmd_restart(key, to, now),
            Command::Weight { key, weight } => {
                let Some(inst) = self.instances.get_mut(&key) else {
                    return self.answer(to, err(404, format!("unknown instance {key}")));
                };
                inst.weight = weight.min(100);
                self.dirty = true;
                self.persist = true;
                self.note(&key, &format!("weight {}", weight.min(100)));
                self.answer(to, Reply::Done(self.json(&key)));
            }
            Command::Route {
                service,
                from,
                to: target,
            } => {
                let a = InstanceKey {
                    service: service.clone(),
                    id: from,
                };
                let b = InstanceKey {
                    service: service.clone(),
                    id: target,
                };
                for k in [&a, &b] {
                    if !self.instances.contains_key(k) {
                        return self.answer(to, err(404, format!("unknown instance {k}")));
                    }
                }
                self.instances.get_mut(&a).expect("checked").weight = 0;
                self.instances.get_mut(&b).expect("checked").weight = 100;
                self.dirty = true;
                self.persist = true;
                info!(
                    "supervisor",
                    "route {service}: {a} weight 0, {b} weight 100"
                );
                let body = serde_json::json!({ "service": service, "from": self.json(&a), "to": self.json(&b) });
                self.answer(to, Reply::Done(body));
            }
            Command::Deploy {
                key,
                weight,
                timeout,
            } => self.cmd_deploy(key, weight.min(100), timeout, to, now),
            Command::AwaitReady { key } => self.cmd_await(key, to, now),
            Command::Refused { key } => self.cmd_refused(key, to, now),
            Command::Subscribe { id, what } => match to {
                Some(to) => {
                    self.subscribers.add(id, what, to);
                    // Republish so the new subscriber gets every instance's
                    // current state as `instance` events.
                    self.dirty = true;
                }
                None => debug!("supervisor", "subscription {id} without a reply address"),
            },
            Command::Unsubscribe { id } => self.subscribers.remove(id),
            Command::Reload => match Config::load(&self.config.path) {
                Ok(mut config) => {
                    config.apply_overrides(self.config.overrides.clone());
                    let s = &config.settings;
                    if s.listen != self.config.settings.listen
                        || s.workers != self.config.settings.workers
                    {
                        warn!(
                            "supervisor",
                            "`listen` and `workers` take effect at the next start of ten serve"
                        );
                    }
                    self.config = config;
                    self.config_json = Arc::new(self.config.to_json());
                    self.dirty = true;
                    info!(
                        "supervisor",
                        "config reloaded from {}",
                        self.config.path.display()
                    );
                    self.answer(to, Reply::Done(serde_json::json!({ "reloaded": true })));
                }
                Err(e) => {
                    warn!("supervisor", "reload refused: {e}");
                    self.answer(to, err(400, e.to_string()));
                }
            },
            Command::Shutdown => {
                if self.shutdown.is_some() {
                    return self.answer(to, Reply::Done(serde_json::json!({})));
                }
                info!(
                    "supervisor",
                    "shutting down: stopping {} instances",
                    self.instances.len()
                );
                self.shutdown = Some(to);
                // Saved before anything stops: a kill -9 during the stop
                // still finds what should come back.
                self.persist = true;
                let keys: Vec<InstanceKey> = self.instances.keys().cloned().collect();
                for key in keys {
                    let inst = self.instances.get_mut(&key).expect("key from the map");
                    inst.resume = match inst.life.state {
                        State::Starting | State::Running | State::Backoff => true,
                        State::Stopping => inst
                            .stop
                            .as_ref()
                            .is_some_and(|s| s.then == AfterStop::Restart),
                        // Going to sleep: it stays asleep.
                        State::Sleeping | State::Failed => false,
                    };
                    for w in inst.waiters.drain(..) {
                        post(&mut self.outbox, w.reply, err(503, "shutting down"));
                    }
                    if inst.run.is_some() || inst.stop.is_some() {
                        self.begin_stop(&key, AfterStop::Shutdown, None, now);
                    }
                }
            }
        }
    }

    fn cmd_spawn(
        &mut self,
        key: InstanceKey,
        weight: u8,
        wait: bool,
        to: Option<ReplyTo>,
        now: Instant,
    ) {
        if self
            .instances
            .get(&key)
            .is_some_and(|i| i.life.state == State::Failed)
        {
            // `ten spawn` of a failed instance brings it back (REFERENCE,
            // Lifecycle); anything else that exists is a conflict.
            return self.cmd_restart(key, to, now);
        }
        if let Err(r) = self.create(&key, weight, now) {
            return self.answer(to, r);
        }
        if wait {
            let timeout = self.startup_timeout(&key.service);
            self.hold(&key, to, WaitFor::Spawned, timeout, now);
            // A socket-activated instance is ready as soon as it runs.
            self.resolve_waiters(&key);
        } else {
            self.answer(to, Reply::Done(self.json(&key)));
        }
    }

    /// Adds a new instance and starts its process. Err: the reply to give.
    fn create(&mut self, key: &InstanceKey, weight: u8, now: Instant) -> Result<(), Reply> {
        let Some(svc) = self.config.services.get(&key.service) else {
            return Err(err(400, format!("unknown service {:?}", key.service)));
        };
        let max = svc.max_instances;
        if self.instances.contains_key(key) {
            return Err(err(409, format!("instance {key} already exists")));
        }
        if max > 0
            && self
                .instances
                .keys()
                .filter(|k| k.service == key.service)
                .count()
                >= max
        {
            return Err(err(
                409,
                format!("max_instances reached ({max}) for service {}", key.service),
            ));
        }
        let Some(port) = self.alloc_port() else {
            let (lo, hi) = self.config.settings.port_range;
            return Err(err(503, format!("no free port in {lo}-{hi}")));
        };
        self.insert(key.clone(), port, weight.min(100), State::Starting);
        if let Err(e) = self.launch(key, now) {
            self.note(key, &format!("spawn failed: {e}"));
            self.instances.remove(key);
            self.dirty = true;
            return Err(err(400, e));
        }
        self.persist = true;
        Ok(())
    }

    fn cmd_restart(&mut self, key: InstanceKey, to: Option<ReplyTo>, now: Instant) {
        let Some(inst) = self.instances.get_mut(&key) else {
            return self.answer(to, err(404, format!("unknown instance {key}")));
        };
        if inst.run.is_some() || inst.stop.is_some() {
            return self.begin_stop(&key, AfterStop::Restart, to, now);
        }
        inst.life.restarts.clear();
        inst.life.state = State::Starting;
        match self.launch(&key, now) {
            Ok(()) => self.answer(to, Reply::Done(self.json(&key))),
            Err(e) => {
                self.note(&key, &format!("spawn failed: {e}"));
                if let Some(inst) = self.instances.get_mut(&key) {
                    inst.life.state = State::Failed;
                }
                self.persist = true;
                self.fail_waiters_if_down(&key);
                self.answer(to, err(400, e));
            }
        }
    }

    fn cmd_deploy(
        &mut self,
        key: InstanceKey,
        weight: u8,
        timeout: Duration,
        to: Option<ReplyTo>,
        now: Instant,
    ) {
        if !self.instances.contains_key(&key) {
            // Weight 0 until healthy, so no traffic arrives before then.
            if let Err(r) = self.create(&key, 0, now) {
                return self.answer(to, r);
            }
        } else if self
            .instances
            .get(&key)
            .is_some_and(|i| i.life.state == State::Failed)
        {
            let policy = self.policy(&key.service);
            let inst = self.instances.get_mut(&key).expect("checked");
            let fx = lifecycle::on(&mut inst.life, Event::Revive, &policy, now);
            self.apply(&key, fx, now);
        }
        let inst = self
            .instances
            .get_mut(&key)
            .expect("present or just spawned");
        if inst.life.state == State::Running && inst.life.health == super::snapshot::Health::Healthy
        {
            inst.weight = weight;
            self.dirty = true;
            self.persist = true;
            return self.answer(to, Reply::Done(self.json(&key)));
        }
        self.wake_if_down(&key, now, "woken by deploy");
        self.hold(&key, to, WaitFor::Deploy { weight }, timeout, now);
        self.resolve_waiters(&key);
        self.fail_waiters_if_down(&key);
    }

    fn cmd_await(&mut self, key: InstanceKey, to: Option<ReplyTo>, now: Instant) {
        let Some(inst) = self.instances.get(&key) else {
            return self.autospawn(key, to, now);
        };
        match inst.life.state {
            State::Running => {
                let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, inst.port));
                self.answer(to, Reply::Ready(addr))
            }
            State::Failed => self.answer(to, err(503, "instance failed")),
            State::Stopping
                if inst
                    .stop
                    .as_ref()
                    .is_some_and(|s| !matches!(s.then, AfterStop::Restart | AfterStop::Sleep)) =>
            {
                self.answer(to, err(503, "instance is stopping"))
            }
            _ => self.hold_and_wake(&key, to, WaitFor::Ready, now),
        }
    }

    /// Holds `to` until the instance is ready, waking it if it sleeps; many
    /// requests during one wake all wait for the same start.
    fn hold_and_wake(
        &mut self,
        key: &InstanceKey,
        to: Option<ReplyTo>,
        what: WaitFor,
        now: Instant,
    ) {
        let timeout = self.startup_timeout(&key.service);
        self.hold(key, to, what, timeout, now);
        self.wake_if_down(key, now, "woken by request");
        // A socket-activated start is ready at once.
        self.resolve_waiters(key);
        self.fail_waiters_if_down(key);
    }

    /// `AwaitReady` for an instance that does not exist: with `autospawn`
    /// on its service, create it (default weight) and hold the request while
    /// it starts. Past `max_instances`, or without autospawn, 404 like any
    /// unknown id: a scanner learns nothing about the cap.
    fn autospawn(&mut self, key: InstanceKey, to: Option<ReplyTo>, now: Instant) {
        let unknown = err(404, format!("unknown instance {key}"));
        let Some(svc) = self.config.services.get(&key.service) else {
            return self.answer(to, unknown);
        };
        let max = svc.max_instances;
        if !svc.autospawn {
            return self.answer(to, unknown);
        }
        let count = self
            .instances
            .keys()
            .filter(|k| k.service == key.service)
            .count();
        if max > 0 && count >= max {
            debug!(
                "supervisor",
                "{key} not autospawned: max_instances ({max}) reached"
            );
            return self.answer(to, unknown);
        }
        match self.create(&key, DEFAULT_WEIGHT, now) {
            Ok(()) => {
                self.note(&key, "created by request (autospawn)");
                self.hold_and_wake(&key, to, WaitFor::Ready, now);
            }
            Err(Reply::Error { status: 409, .. }) => self.answer(to, unknown),
            // The command could not start: the upstream side failed.
            Err(Reply::Error {
                status: 400,
                message,
            }) => self.answer(to, err(502, message)),
            Err(r) => self.answer(to, r),
        }
    }

    /// The front's connection to a running instance was refused. Look at
    /// it now instead of at the next health check: reap it if it died
    /// (requests then wait for the restart), else probe it with a bare
    /// connect; the request is answered `Ready` once the instance accepts.
    fn cmd_refused(&mut self, key: InstanceKey, to: Option<ReplyTo>, now: Instant) {
        let running = self
            .instances
            .get(&key)
            .is_some_and(|i| i.life.state == State::Running && i.run.is_some() && i.stop.is_none());
        if running {
            // The pidfd event may still be queued behind this command.
            self.on_exit(&key);
        }
        let Some(inst) = self.instances.get_mut(&key) else {
            return self.answer(to, err(404, format!("unknown instance {key}")));
        };
        if inst.life.state != State::Running || inst.run.is_none() || inst.stop.is_some() {
            return self.cmd_await(key, to, now);
        }
        let timeout = self.startup_timeout(&key.service);
        self.hold(&key, to, WaitFor::Accepting, timeout, now);
        let inst = self.instances.get_mut(&key).expect("present above");
        if !inst.recheck {
            debug!("supervisor", "{key} refused a connection: checking it now");
            self.cancel_probe(&key);
            let inst = self.instances.get_mut(&key).expect("present above");
            inst.recheck = true;
            self.start_probe(&key, now);
        }
    }

    /// Starts a sleeping instance; `why` goes to its log.
    fn wake_if_down(&mut self, key: &InstanceKey, now: Instant, why: &str) {
        let policy = self.policy(&key.service);
        let Some(inst) = self.instances.get_mut(key) else {
            return;
        };
        if inst.life.state == State::Sleeping {
            let fx = lifecycle::on(&mut inst.life, Event::Wake, &policy, now);
            inst.stats.wake_started();
            self.note(key, why);
            self.apply(key, fx, now);
        }
    }

    fn hold(
        &mut self,
        key: &InstanceKey,
        to: Option<ReplyTo>,
        what: WaitFor,
        timeout: Duration,
        now: Instant,
    ) {
        if let Some(inst) = self.instances.get_mut(key) {
            inst.waiters.push(Waiter {
                reply: to,
                what,
                deadline: now + timeout,
                timeout_secs: timeout.as_secs(),
            });
        }
    }

    // ---- views ----------------------------------------------------------

    fn view(&self, inst: &Instance) -> InstanceView {
        let svc: Option<&Service> = self.config.services.get(&inst.key.service);
        let pid = inst.run.as_ref().map(|r| r.pid);
        InstanceView {
            service: inst.key.service.clone(),
            id: inst.key.id.clone(),
            state: inst.life.state,
            health: inst.life.health,
            pid,
            port: inst.port,
            addr: SocketAddr::from((Ipv4Addr::LOCALHOST, inst.port)),
            socket: inst
                .run
                .as_ref()
                .filter(|r| r.via_socket && inst.life.state == State::Running)
                .map(|_| {
                    isolate::env::socket_path(&self.data_dir, &inst.key.service, &inst.key.id)
                }),
            weight: inst.weight,
            restarts: inst.life.total_restarts,
            started_at: inst.run.as_ref().map(|r| r.started_at),
            memory_bytes: pid.and_then(proc::rss),
            last_check: inst.last_check.clone(),
            request_timeout: svc.map_or(Duration::from_secs(60), |s| s.request_timeout),
            startup_timeout: svc.map_or(Duration::from_secs(10), |s| s.startup_timeout),
            stats: inst.stats.clone(),
        }
    }

    fn json(&self, key: &InstanceKey) -> serde_json::Value {
        match self.instances.get(key) {
            Some(inst) => instance_json(&self.view(inst), SystemTime::now()),
            None => serde_json::Value::Null,
        }
    }

    fn snapshot(&self) -> Snapshot {
        let mut snap = Snapshot {
            domain: self.config.settings.domain.to_lowercase(),
            routing: self.config.routing.clone(),
            config_json: self.config_json.clone(),
            metrics_public: self.config.settings.metrics_public,
            ..Snapshot::default()
        };
        for (name, service) in &self.config.services {
            snap.services.insert(name.clone(), Vec::new());
            if service.autospawn {
                snap.autospawn.insert(name.clone());
            }
        }
        for (i, inst) in self.instances.values().enumerate() {
            snap.instances.push(self.view(inst));
            snap.by_key
                .insert((inst.key.service.clone(), inst.key.id.clone()), i);
            snap.services
                .entry(inst.key.service.clone())
                .or_default()
                .push(i);
        }
        snap
    }

    fn registry(&self) -> Registry {
        let instances = self
            .instances
            .values()
            .map(|inst| {
                let going_to_sleep = inst
                    .stop
                    .as_ref()
                    .is_some_and(|s| s.then == AfterStop::Sleep);
                let desired = match inst.life.state {
                    _ if inst.resume => "running",
                    State::Sleeping => "sleeping",
                    State::Stopping if going_to_sleep => "sleeping",
                    State::Failed => "failed",
                    _ => "running",
                };
                let run = inst.run.as_ref();
                RegistryEntry {
                    service: inst.key.service.clone(),
                    id: inst.key.id.clone(),
                    port: inst.port,
                    weight: inst.weight,
                    desired: desired.to_string(),
                    pid: run.map(|r| r.pid),
                    pgid: run.map(|r| r.pgid),
                    start_ticks: run.and_then(|r| r.start_ticks),
                    restarts: inst.life.total_restarts,
                }
            })
            .collect();
        Registry {
            version: 1,
            instances,
        }
    }
}

/// Creates the instance's data dir (and `DATA_DIR` when the env table moved
/// it) and the folder for instance sockets, and removes a stale socket.
fn prepare_dirs(
    data_dir: &Path,
    svc: &Service,
    id: &str,
    custom: Option<&Path>,
) -> Result<(), String> {
    let mut dirs = vec![
        isolate::env::instance_dir(data_dir, &svc.name, id),
        crate::state::internal_dir(data_dir).join("run"),
    ];
    dirs.extend(custom.map(Path::to_path_buf));
    for dir in dirs {
        std::fs::create_dir_all(&dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
    }
    // A socket left by the previous process would make the app's bind fail
    // with EADDRINUSE; the run folder is ours, so clear it.
    let socket = isolate::env::socket_path(data_dir, &svc.name, id);
    match std::fs::remove_file(&socket) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => {
            return Err(format!("remove {}: {e}", socket.display()))
        }
        _ => {}
    }
    Ok(())
}

/// Kills what a previous run of tenement left of one instance, and waits
/// briefly for it to go so its port is free again.
///
/// The registry has the leader's pid, its group (== pid: it called setsid)
/// and its start time. Two cases:
/// - The leader is still that process (same pid and start time): kill(-pgid)
///   takes the whole group, leader included.
/// - The leader is gone but members of its group may live on (the server
///   and the leader both died; the leader's children kept running). Then the
///   group id cannot be trusted blindly: once a group is empty its number
///   may be reused by an unrelated process that calls setsid. So /proc is
///   scanned for processes whose group is `pgid` and that started no earlier
///   than the leader (members are forked after it), and only when no live
///   process has the pid `pgid` itself (the kernel never hands out a pid
///   still in use as a group id, so while our members live, nobody else can
///   lead a group with that number); those are killed one by one.
fn kill_leftover(entry: &RegistryEntry) {
    let (Some(pid), Some(ticks)) = (entry.pid, entry.start_ticks) else {
        return;
    };
    let pgid = entry.pgid.unwrap_or(pid);
    let mut members: Vec<u32> = Vec::new();
    if proc::is_same_process(pid, ticks) {
        info!(
            "supervisor",
            "{}:{} killing leftover process group {pgid} (pid {pid})", entry.service, entry.id
        );
        let _ = proc::signal_group(pgid, Signal::KILL);
        if let Some(p) = rustix::process::Pid::from_raw(pid as i32) {
            let _ = rustix::process::kill_process(p, Signal::KILL);
        }
        members = proc::group_members(pgid, ticks);
        members.push(pid);
    } else if proc::stat(pgid).is_none_or(|s| s.state == 'Z' || s.state == 'X') {
        members = proc::group_members(pgid, ticks);
        if !members.is_empty() {
            info!(
                "supervisor",
                "{}:{} killing {} leftover processes of group {pgid} (leader gone)",
                entry.service,
                entry.id,
                members.len()
            );
        }
        for &m in &members {
            if let Some(p) = rustix::process::Pid::from_raw(m as i32) {
                let _ = rustix::process::kill_process(p, Signal::KILL);
            }
        }
    }
    let deadline = Instant::now() + KILL_GRACE;
    while members.iter().any(|&m| proc::alive(m)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
}
