//! The supervisor thread: one `mio::Poll` over the command channel's waker,
//! every child's pidfd, every child's stdout and stderr, and the probes in
//! flight; timers are the poll timeout (the nearest deadline), so an idle
//! supervisor sleeps.
//!
//! This file owns the `Supervisor` record, the loop (poll, fd events, exits,
//! timers), carrying out the effects of `lifecycle::on` (the only writer of
//! an instance's state) and answering held requests; after each round of
//! events the snapshot is republished if anything changed and the registry
//! saved if something that must survive a restart did. Never blocks on the front: replies go down its channels.
//!
//! The rest of the `impl Supervisor` lives in the submodules: `commands`
//! (the front's requests), `launch` (start-up restore, spawning a process),
//! `stop` (stopping and its timers), `probes` (readiness and health checks),
//! `host` (orphans, storage quotas, OOM kills, the cgroup at shutdown),
//! `save` (writing the registry), `views` (snapshot, instance views, the
//! registry to save), `moving` (`ten move` on this side) and `handover`
//! (instances across an upgrade in place).

mod commands;
pub mod handover;
mod host;
mod launch;
mod moving;
mod probes;
mod save;
mod schedule;
mod stop;
mod views;
mod wakeup;

use crate::config::bounds::later;
use std::collections::{HashMap, HashSet};
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::os::fd::AsRawFd;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::ExitStatus;
use std::sync::mpsc::{Receiver, TryRecvError};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use mio::unix::SourceFd;
use mio::{Events, Poll, Token};
use rustix::process::Signal;

use super::health::Outcome;
use super::lifecycle::{self, AfterStop, Effect, Event, Life, Policy};
use super::logs::LogFile;
use super::msg::{Command, Envelope, Reply, ReplyTo};
use super::ports;
use super::reply::{CommandError, Done};
use super::snapshot::{Published, State};
use super::subscribers::Subscribers;
use super::table::{Instance, Source, WaitFor, Waiter};
use super::timers::Timers;
use crate::config::{Config, RestartPolicy};
use crate::isolate::{cgroup, procfs};
use crate::names::InstanceKey;
use crate::state::layout;

/// The waker's token; instance fds get tokens from 1 up.
pub const WAKER: Token = Token(0);
/// The shortest wait between two health checks, and before a probe that
/// met a full accept queue tries again.
const READY_POLL: Duration = Duration::from_millis(5);
/// How often readiness is polled while an instance starts, for as long as
/// it starts: a held request waits at most this long after the app
/// listens. A look-up of the listener costs about 9 us (4,000 a second:
/// 3.5 % of a core while one instance starts); the loop keeps this to the
/// microsecond (`wakeup`).
const FAST_POLL: Duration = Duration::from_micros(250);
/// Readiness probes per second over all starting instances: with more
/// starting at once than this allows at `FAST_POLL`, each is polled less
/// often (200 at once: every 40 ms).
const READY_PROBES_PER_SEC: u32 = 5000;
/// While a refused request is held and the instance still runs but does not
/// accept: how soon to check again.
const RECHECK_POLL: Duration = Duration::from_millis(200);
/// How often an idle-timed instance with open connections is looked at
/// again (when they close, the front marks activity, which moves the
/// deadline past this anyway).
const IDLE_RECHECK: Duration = Duration::from_secs(1);
/// How long one health check may take.
const CHECK_TIMEOUT: Duration = Duration::from_secs(5);
/// Output lines quoted in a 504.
const TAIL_LINES: usize = 20;
const DEFAULT_WEIGHT: u8 = 100;
/// Shortest time between two saves of the registry after rounds of the
/// loop: a change waits at most this long to be written, and a burst of
/// changes (a wake storm) is written a few times a second, not once per
/// change. A command's own change is written before it is made
/// (`save_first`), whatever this says.
const SAVE_GAP: Duration = Duration::from_millis(200);
/// Shortest time between two collections of orphans after stops (a pass
/// may read every process's `/proc` entry: a thousand stops at once make a
/// few passes, not a thousand).
const REAP_GAP: Duration = Duration::from_millis(100);
/// How often orphans are reaped while the loop runs.
const SWEEP_EVERY: Duration = Duration::from_secs(1);
/// Instances take turns at each sweep, a `SAMPLE_TURNS`th of the table in
/// key order, for the running ones to have their memory sampled (without
/// a cgroup; a cgroup's is read live) and their cgroup's OOM counter read:
/// each every `SAMPLE_TURNS` sweeps, and a sweep reads a fraction of them,
/// not all at once.
const SAMPLE_TURNS: usize = 10;

/// Queues a reply; replies go out after the snapshot that reflects them is
/// published, so a front that gets an answer never reads an older snapshot.
fn post(outbox: &mut Vec<(ReplyTo, Reply)>, to: Option<ReplyTo>, r: Reply) {
    if let Some(to) = to {
        outbox.push((to, r));
    }
}

fn unix_secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// How a process ended, in words for the log.
fn describe_exit(status: &ExitStatus) -> String {
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
    /// The certificates the front's handshakes use; a reload swaps them.
    tls: Option<Arc<crate::certs::Store>>,
    data_dir: PathBuf,
    published: Arc<Published>,
    poll: Poll,
    rx: Receiver<Envelope>,
    instances: super::instances::Instances,
    tokens: HashMap<Token, (InstanceKey, Source)>,
    next_token: usize,
    /// Each instance's next deadline, by time.
    timers: Timers,
    /// Republish before sleeping.
    dirty: bool,
    /// Save the registry before sleeping (or once `SAVE_GAP` has passed).
    persist: bool,
    /// When the registry was last saved after a round (or a start with
    /// requests waiting held the save, `launch::hold_save`); None: save at
    /// once.
    last_save: Option<Instant>,
    /// The last save failed (why): `sweep_host` tries again.
    save_error: Option<String>,
    /// The registry on disk, open for changes.
    pub journal: Option<crate::state::registry_journal::Journal>,
    /// Instances whose entries may have changed since the last save.
    unsaved: HashSet<InstanceKey>,
    /// Any entry may have: the next save compares them all.
    unsaved_all: bool,
    /// Set by `Shutdown`: who to tell once every instance is down.
    shutdown: Option<Option<ReplyTo>>,
    /// Set by `HandOver`: end the loop, handing every process over, once
    /// no stop is in progress.
    handing_over: bool,
    /// Replies waiting for the next publish.
    outbox: Vec<(ReplyTo, Reply)>,
    /// `/api/events` and `/api/logs/stream` subscribers.
    subscribers: Subscribers,
    /// The resolved config as `GET /api/config` shows it.
    config_json: Arc<serde_json::Value>,
    /// The tenement cgroup every instance's cgroup goes under; None when
    /// not root or no hierarchy is usable (`no_cgroups` says why).
    cgroups: Option<cgroup::Tree>,
    no_cgroups: String,
    /// `ten serve` is a child subreaper: orphans are ours to reap.
    reap_orphans: bool,
    /// When orphans were last reaped by `sweep_host`.
    last_sweep: Instant,
    /// A stop finished: reap orphans once `REAP_GAP` has passed since
    /// `last_reap`.
    reap_due: bool,
    last_reap: Instant,
    /// Some instance has a data dir size shown: `check_storage` has work
    /// even with no quota configured (to clear it).
    storage_shown: bool,
    /// Where in the table (by key order) the next sweep's samples begin.
    sample_at: usize,
    /// Bumped after every poll, for the service manager's watchdog.
    pub beat: crate::notify::Beat,
    /// Autospawn creations per service, rate-limited.
    spawn_rate: super::spawn_rate::SpawnRate,
    /// The server thread's mailbox: a reload that moves the listeners asks
    /// it for a new front.
    pub control: Option<Arc<crate::upgrade::Control>>,
    /// `ten move`: the mover threads' channel.
    pub moves: moving::Moves,
    /// Each service's health request, made once.
    requests: super::health::Requests,
    /// What every probe reads into.
    probe_buf: Box<[u8]>,
}

impl Supervisor {
    pub fn new(
        config: Config,
        data_dir: PathBuf,
        published: Arc<Published>,
        poll: Poll,
        rx: Receiver<Envelope>,
        tls: Option<Arc<crate::certs::Store>>,
    ) -> Supervisor {
        Supervisor {
            tls,
            config_json: Arc::new(config.to_json()),
            config,
            data_dir,
            published,
            poll,
            rx,
            instances: Default::default(),
            tokens: HashMap::new(),
            next_token: 1,
            timers: Timers::default(),
            dirty: true,
            persist: false,
            last_save: None,
            save_error: None,
            journal: None,
            unsaved: HashSet::new(),
            unsaved_all: false,
            shutdown: None,
            handing_over: false,
            outbox: Vec::new(),
            subscribers: Subscribers::default(),
            cgroups: None,
            no_cgroups: "cgroups are not set up".to_string(),
            reap_orphans: false,
            spawn_rate: Default::default(),
            control: None,
            moves: Default::default(),
            requests: Default::default(),
            probe_buf: vec![0; super::health::READ_BUF].into_boxed_slice(),
            last_sweep: Instant::now(),
            reap_due: false,
            last_reap: Instant::now(),
            storage_shown: true,
            sample_at: 0,
            beat: crate::notify::Beat::default(),
        }
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
        let time = match self.instances.get_mut(key) {
            Some(inst) => {
                inst.ring.push("ten", text);
                inst.log.write("ten", text)
            }
            None => crate::log::timestamp(),
        };
        self.subscribers.lifecycle(key, &time, text);
    }

    fn insert(&mut self, key: InstanceKey, port: u16, weight: u8, state: State) {
        let s = &self.config.settings;
        let log = LogFile::open(
            layout::log_path(&self.data_dir, &key.service, &key.id),
            s.log_max_bytes,
            s.log_files,
        );
        let inst = Instance::new(key.clone(), port, weight, Life::new(state), log);
        self.timers.touch(&key);
        self.instances.insert(inst);
        self.dirty = true;
    }

    fn alloc_port(&self) -> Option<u16> {
        let used = |p| self.instances.port_in_use(p);
        ports::pick(self.config.settings.port_range, used, ports::bindable)
    }

    // ---- the loop -------------------------------------------------------

    /// Runs until `Shutdown` (or until every handle is dropped): None; or
    /// until `HandOver`: what the next image of the server adopts.
    pub fn run(mut self) -> Option<handover::Handover> {
        let mut events = Events::with_capacity(256);
        let mut wakeup = wakeup::Wakeup::new(self.poll.registry());
        self.timers.touch_all();
        loop {
            let deadline = self.next_deadline();
            let timeout = wakeup.timeout(deadline, Instant::now());
            if let Err(e) = self.poll.poll(&mut events, timeout) {
                if e.kind() != io::ErrorKind::Interrupted {
                    error!("supervisor", "epoll_wait: {e}");
                    std::thread::sleep(Duration::from_millis(100));
                }
                continue;
            }
            self.beat.beat();
            for ev in events.iter() {
                if ev.token() != WAKER && ev.token() != wakeup::TIMER {
                    self.on_fd(ev.token());
                }
            }
            self.drain_commands();
            self.drain_moves();
            self.on_timers(Instant::now());
            self.reap_if_due(Instant::now());
            self.sweep_host(Instant::now());
            self.reschedule();
            self.flush();
            if self.handing_over && self.instances.values().all(|i| i.stop.is_none()) {
                return Some(self.hand_over());
            }
            if self.shutdown.is_some() && self.instances.values().all(|i| i.stop.is_none()) {
                self.save_now();
                if let Some(to) = self.shutdown.take() {
                    self.answer(to, Reply::Done(Done::Nothing));
                }
                self.flush();
                self.compact_registry();
                self.release_cgroups();
                info!("supervisor", "all instances stopped");
                return None;
            }
        }
    }

    fn answer(&mut self, to: Option<ReplyTo>, r: Reply) {
        post(&mut self.outbox, to, r);
    }

    /// Persists and publishes what changed, then sends the queued replies.
    /// A held request's `Ready` needs nothing on disk: it goes out as soon
    /// as the snapshot is published, before the save (an fsync can take
    /// milliseconds).
    fn flush(&mut self) {
        if self
            .outbox
            .iter()
            .any(|(_, r)| matches!(r, Reply::Ready(_)))
        {
            self.publish();
            let (ready, rest) = std::mem::take(&mut self.outbox)
                .into_iter()
                .partition(|(_, r)| matches!(r, Reply::Ready(_)));
            self.outbox = rest;
            for (to, r) in ready {
                to.send(r);
            }
        }
        let now = Instant::now();
        if self.save_due(now).is_some_and(|t| t <= now) {
            self.persist = false;
            self.last_save = Some(now);
            self.save_registry();
        }
        self.publish();
        for (to, r) in self.outbox.drain(..) {
            to.send(r);
        }
    }

    /// Publishes the snapshot if anything changed since the last one.
    fn publish(&mut self) {
        if self.dirty {
            self.dirty = false;
            let snapshot = self.snapshot();
            if !self.subscribers.is_empty() {
                self.subscribers.changes(&snapshot.instances);
            }
            crate::notify::status(&snapshot);
            self.published.publish(snapshot);
        }
    }

    fn drain_commands(&mut self) {
        loop {
            match self.rx.try_recv() {
                Ok(env) => {
                    self.touch_for(&env.cmd);
                    self.on_command(env.cmd, env.reply)
                }
                Err(TryRecvError::Empty) => return,
                Err(TryRecvError::Disconnected) => {
                    // Every handle is gone: nobody can ask for anything any
                    // more, so shut down as if told to (unless handing over:
                    // then the processes live on with the next image).
                    if self.shutdown.is_none() && !self.handing_over {
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
        self.timers.touch(&key);
        match src {
            Source::Stdout | Source::Stderr => self.read_output(&key, src, false),
            Source::Pidfd => self.on_exit(&key),
            Source::Probe => self.on_probe_event(&key, token),
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
            let time = inst.log.write(stream, &l);
            inst.ring.push(stream, &l);
            self.subscribers.output(key, &time, stream, &l);
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
        let what = match self.take_oom(key) {
            Some(oom) if status.signal() == Some(libc::SIGKILL) => oom,
            Some(oom) => format!("{}; {oom}", describe_exit(&status)),
            None => describe_exit(&status),
        };
        let policy = self.policy(&key.service);
        let inst = self.instances.get_mut(key).expect("present above");
        inst.start_deadline = None;
        inst.next_probe = None;
        if let Some(stop) = inst.stop.as_mut() {
            stop.phase.leader_exited(now);
            self.note(key, &what);
            return;
        }
        // The leader died on its own: whatever it left in its group (and
        // its cgroup) goes too, so a restart finds the port and the data
        // dir free.
        let _ = procfs::signal_group(pgid, Signal::KILL);
        if let Some(cg) = inst.cgroup.as_mut() {
            cg.kill();
            cg.prepare_next_start();
        }
        let success = status.code() == Some(0);
        // The backoff delay counts from here, after the output was read and
        // the group and cgroup killed (a cgroup write can take milliseconds),
        // so the next start comes no sooner than the delay the log line says.
        let now = Instant::now();
        let effects = lifecycle::on(&mut inst.life, Event::Exited { success }, &policy, now);
        let next = match (inst.life.state(), effects.first()) {
            (State::Backoff, Some(Effect::SpawnAfter(d))) => format!("restarting in {}", human(*d)),
            (State::Sleeping, _) => "sleeping".to_string(),
            (State::Failed, _) if policy.restart == RestartPolicy::Never => {
                "failed (restart = never)".to_string()
            }
            (State::Failed, _) => format!("failed after {} restarts", policy.max_restarts),
            _ => String::new(),
        };
        self.note(key, &format!("{what}, {next}"));
        self.settle_cgroup_after_exit(key);
        self.apply(key, effects, now);
    }

    /// Forgets the current process: its pidfd and pipes leave the poll.
    fn drop_run(&mut self, key: &InstanceKey) {
        let Some(inst) = self.instances.get_mut(key) else {
            return;
        };
        let Some(run) = inst.run.take() else { return };
        inst.stats.set_memory(None);
        let registry = self.poll.registry();
        let _ = registry.deregister(&mut SourceFd(&run.raw_pidfd()));
        self.tokens.remove(&run.pidfd_token);
        for pipe in [run.stdout, run.stderr].into_iter().flatten() {
            let _ = registry.deregister(&mut SourceFd(&pipe.fd.as_raw_fd()));
            self.tokens.remove(&pipe.token);
        }
        if let Some((token, _)) = run.kept.conn {
            self.tokens.remove(&token);
        }
        self.dirty = true;
    }

    // ---- timers ---------------------------------------------------------

    pub(super) fn instance_timers(&mut self, key: &InstanceKey, now: Instant) {
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
            && !self.handing_over
            && inst.stats.open() == 0
            && self.idle_deadline(inst, now).is_some_and(|t| t <= now);
        if idle {
            self.begin_stop(key, AfterStop::Sleep, None, now);
        }
        self.stop_timers(key, now);
        self.expire_waiters(key, now);
        self.moved_timers(key, now);
        self.drain_timers(key, now);
    }

    /// When a running instance with an `idle_timeout` is due to sleep: its
    /// last request (or, with none since, the moment it became ready) plus
    /// the timeout. With connections open (a WebSocket, a long download) it
    /// is not idle: look again after `IDLE_RECHECK`.
    fn idle_deadline(&self, inst: &Instance, now: Instant) -> Option<Instant> {
        if inst.life.state() != State::Running || inst.stop.is_some() || inst.run.is_none() {
            return None;
        }
        let timeout = self
            .config
            .services
            .get(inst.key.service.as_str())?
            .idle_timeout?;
        if inst.stats.open() > 0 {
            return Some(now + IDLE_RECHECK);
        }
        Some(super::idle::due(
            inst.stats.last_active(),
            inst.ready_at,
            timeout,
            now,
        ))
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
            let e = CommandError::TimedOut {
                key: key.clone(),
                healthy: matches!(w.what, WaitFor::Deploy { .. }),
                secs: w.timeout_secs,
                // The last output is for the admin's spawn --wait and deploy,
                // not for an app's visitors.
                tail: match w.what.for_admin() {
                    true => tail.clone(),
                    false => String::new(),
                },
            };
            self.answer(w.reply, Reply::Error(e));
        }
    }

    // ---- effects --------------------------------------------------------

    fn apply(&mut self, key: &InstanceKey, effects: Vec<Effect>, now: Instant) {
        for fx in effects {
            match fx {
                Effect::Persist => {
                    self.persist(key);
                    self.dirty = true;
                }
                Effect::Kill => {
                    if let Some(run) = self.instances.get(key).and_then(|i| i.run.as_ref()) {
                        let _ = procfs::signal_group(run.pgid, Signal::KILL);
                    }
                }
                Effect::SpawnAfter(d) => {
                    if let Some(inst) = self.instances.get_mut(key) {
                        inst.backoff_until = Some(later(now, d));
                        self.dirty = true;
                    }
                }
                Effect::Spawn => {
                    if let Err(e) = self.launch(key, now) {
                        // An automatic start that cannot even exec counts as
                        // a crash, so the restart limit ends the retries.
                        self.spawn_failed(key, &e, true, now);
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
        let failed = match inst.life.state() {
            State::Failed => true,
            State::Sleeping => false,
            _ => return,
        };
        let tail = inst.ring.tail(TAIL_LINES);
        for w in inst.waiters.drain(..) {
            let tail = match w.what.for_admin() {
                true => tail.clone(),
                false => String::new(),
            };
            let e = match failed {
                true => CommandError::Failed { tail },
                false => CommandError::Exited { tail },
            };
            post(&mut self.outbox, w.reply, Reply::Error(e));
        }
    }

    /// Answers the waiters an instance now satisfies.
    fn resolve_waiters(&mut self, key: &InstanceKey) {
        let Some(inst) = self.instances.get_mut(key) else {
            return;
        };
        if inst.waiters.is_empty() {
            return;
        }
        let healthy = inst.life.health() == super::snapshot::Health::Healthy;
        let accepting = inst.run.as_ref().is_some_and(|r| r.accepting);
        let state = inst.life.state();
        let go = |w: &Waiter| match state {
            State::Running => healthy || w.what == WaitFor::Ready,
            // Accepts, its first health check still to pass: held
            // requests go, an admin's wait goes on.
            State::Starting => accepting && matches!(w.what, WaitFor::Ready | WaitFor::Accepting),
            _ => false,
        };
        if !inst.waiters.iter().any(go) {
            return;
        }
        let (done, kept): (Vec<Waiter>, Vec<Waiter>) = inst.waiters.drain(..).partition(go);
        inst.waiters = kept;
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, inst.port));
        for w in done {
            let r = match w.what {
                WaitFor::Ready | WaitFor::Accepting => Reply::Ready(addr),
                WaitFor::Deploy { weight } => {
                    match self
                        .save_entry_first(&format!("deploy {key}"), key, |e| e.weight = weight)
                    {
                        Ok(()) => {
                            if let Some(inst) = self.instances.get_mut(key) {
                                inst.weight = weight;
                            }
                            self.persist(key);
                            self.dirty = true;
                            self.instance_reply(key)
                        }
                        Err(e) => Reply::Error(e),
                    }
                }
                _ => self.instance_reply(key),
            };
            self.answer(w.reply, r);
        }
    }
}
