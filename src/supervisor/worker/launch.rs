//! Starting processes: restoring the registry at start-up (killing what a
//! previous run left), preparing an instance's folders, spawning its process
//! and watching its pidfd and output pipes.

use crate::config::bounds::later;
use std::collections::HashSet;
use std::io;
use std::net::Ipv4Addr;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use mio::unix::SourceFd;
use mio::Interest;
use rustix::process::Signal;

use super::{Supervisor, DEFAULT_WEIGHT, FAST_POLL, READY_POLL, SAVE_GAP};
use crate::config::{Isolation, Service};
use crate::isolate::{self, cgroup, procfs};
use crate::names::InstanceKey;
use crate::state::layout;
use crate::state::{Desired, Registry, RegistryEntry};
use crate::supervisor::lifecycle::{self, Effect, Event, KILL_GRACE};
use crate::supervisor::logs::Splitter;
use crate::supervisor::snapshot::State;
use crate::supervisor::table::{Pipe, Run, Source};

use super::handover::{self, Adopted};
use crate::supervisor::SuperviseError;

/// A cgroup move slower than this waited for an RCU grace period (a move
/// that does not wait takes about 0.1 ms).
const SLOW_MOVE: Duration = Duration::from_millis(2);

impl Supervisor {
    /// Sets up what every launch relies on, before anything is spawned. As
    /// root: the tenement cgroup, emptied of what a previous run left
    /// (after an upgrade in place: the tree handed over, the cgroups of
    /// `handed` processes kept). When `ten serve` made the process a child
    /// subreaper: reaping orphans.
    pub fn prepare_host(&mut self, tree: Option<cgroup::Tree>, handed: &[Adopted]) {
        self.reap_orphans = cgroup::orphans::is_subreaper();
        if !rustix::process::geteuid().is_root() {
            self.no_cgroups = "ten serve is not running as root".to_string();
            return;
        }
        if let Some(tree) = tree {
            let keep: Vec<String> = handed
                .iter()
                .filter_map(|a| a.process.as_ref()?.cgroup.as_ref().map(|c| c.0.clone()))
                .collect();
            for left in tree.sweep_except(&keep) {
                info!("supervisor", "killed what was left in cgroup {left}");
            }
            self.cgroups = Some(tree);
            return;
        }
        let name = cgroup::tree_name(&self.data_dir);
        let made = cgroup::Layout::detect().and_then(|l| Ok((cgroup::Tree::create(&l, &name)?, l)));
        match made {
            Ok((tree, layout)) => {
                info!("supervisor", "cgroups: {}", tree.describe());
                // Every start moves its process into the v1 hierarchies;
                // one move timed now says whether each start will wait.
                let took = tree
                    .moves_on_start()
                    .then(|| layout.time_a_move())
                    .flatten();
                if let Some(took) = took.filter(|t| *t >= SLOW_MOVE) {
                    info!(
                        "supervisor",
                        "cgroups: a move into a v1 cgroup took {:.1} ms here, and every start makes one: the kernel waits for an RCU grace period unless favordynmods is in effect (`mount -o remount,favordynmods` of the cgroup2 mount, or booting with cgroup_favordynmods=true, removes the wait)",
                        took.as_secs_f64() * 1000.0
                    );
                }
                for left in tree.sweep() {
                    info!(
                        "supervisor",
                        "killed what a previous run left in cgroup {left}"
                    );
                }
                self.cgroups = Some(tree);
            }
            Err(e) => {
                self.no_cgroups = format!("cgroups are unavailable: {}", cgroup::error_chain(&e));
                warn!(
                    "supervisor",
                    "{}; instances run without cgroup limits or accounting", self.no_cgroups
                );
            }
        }
    }

    /// Restores `registry` (as loaded and checked), adopting the processes
    /// an upgrade in place handed over, and spawns `[instances]`; see
    /// `super::start`.
    pub fn restore(
        &mut self,
        registry: Registry,
        handed: Vec<Adopted>,
    ) -> Result<(), SuperviseError> {
        let mut handed = handover::by_key(handed);
        let spared = handover::live_pids(&handed);
        for entry in &registry.instances {
            if !entry.pid.is_some_and(|p| spared.contains(&p)) {
                kill_leftover(entry);
            }
        }
        let now = Instant::now();
        // The uids given back so far: one look-up per entry, not a scan of
        // every instance restored before it.
        let mut uids = HashSet::new();
        for entry in registry.instances {
            // `Registry::load` checked the names; one that fails here is
            // named and left alone rather than guessed at.
            let key = match InstanceKey::new(&entry.service, &entry.id) {
                Ok(key) => key,
                Err(e) => {
                    warn!("supervisor", "registry entry skipped: {e}");
                    continue;
                }
            };
            let adopted = handed.remove(&key);
            if !self.config.services.contains_key(key.service.as_str()) {
                warn!(
                    "supervisor",
                    "{key} dropped from the registry: service {:?} is no longer configured",
                    key.service
                );
                if let Some(a) = adopted {
                    self.discard(&key, a);
                }
                continue;
            }
            if let Some(m) = self.restore_move(&key, &entry) {
                self.restore_uid(&key, entry.uid, &mut uids);
                info!("supervisor", "{key} {m}");
                continue;
            }
            let state = match entry.desired {
                Desired::Sleeping => State::Sleeping,
                Desired::Failed => State::Failed,
                Desired::Running => State::Starting,
                Desired::Stopping => {
                    // `ten stop` was asked and the last run ended before the
                    // stop did: its process was killed above; finish it.
                    self.forget_stopped(&key);
                    continue;
                }
            };
            self.insert(key.clone(), entry.port, entry.weight, state);
            self.restore_uid(&key, entry.uid, &mut uids);
            if let Some(a) = adopted {
                if let Some(inst) = self.instances.get_mut(&key) {
                    // Not a restart of tenement: the count goes on.
                    inst.life = crate::supervisor::lifecycle::Life::adopted(state, entry.restarts);
                }
                let live = a.process.is_some();
                match self.adopt(&key, a, now) {
                    Ok(()) if live => continue,
                    Ok(()) => {}
                    Err(why) => self.note(&key, &format!("not adopted: {why}; starting it again")),
                }
            }
            if state == State::Starting {
                if let Err(e) = self.launch(&key, now) {
                    self.spawn_failed(&key, &e, false, now);
                }
            }
        }
        for (key, a) in handed {
            self.discard(&key, a);
        }
        for key in self.config.instances.clone() {
            if self.instances.contains_key(&key)
                || !self.config.services.contains_key(key.service.as_str())
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
                self.spawn_failed(&key, &e, false, now);
            }
        }
        self.persist_all();
        self.flush();
        Ok(())
    }

    /// Gives a restored instance its uid back, unless an instance restored
    /// before it has it (a hand-edited registry): then it gets a new one at
    /// its next start, so two instances never share one.
    fn restore_uid(&mut self, key: &InstanceKey, uid: Option<u32>, taken: &mut HashSet<u32>) {
        let Some(uid) = uid else { return };
        if !taken.insert(uid) {
            if let Some(other) = self.instances.values().find(|i| i.uid == Some(uid)) {
                warn!(
                    "supervisor",
                    "{key}: uid {uid} in the registry is also {}'s; {key} gets a new one",
                    other.key
                );
                return;
            }
        }
        if let Some(inst) = self.instances.get_mut(key) {
            inst.uid = Some(uid);
        }
    }

    /// The uid and gid a namespaced instance runs as without `user`: its
    /// own, kept in the registry; the first time (or when `uid_range` no
    /// longer holds it) a new one from `uid_range` that no other instance
    /// has, preferring the owner of a data dir it left in an earlier life.
    fn instance_uid(&mut self, key: &InstanceKey, data_dir: &Path) -> Result<(u32, u32), String> {
        let range = self.config.settings.uid_range;
        let in_range = |u: &u32| (range.0..=range.1).contains(u);
        let inst = self.instances.get(key).ok_or("unknown instance")?;
        if let Some(uid) = inst.uid.filter(in_range) {
            return Ok((uid, uid));
        }
        let used: HashSet<u32> = self
            .instances
            .values()
            .filter(|i| i.key != *key)
            .filter_map(|i| i.uid)
            .collect();
        let owner = std::fs::metadata(data_dir).ok().map(|m| m.uid());
        // Nor a uid a service names in `user`, or a user of the system.
        let mut taken = isolate::plan::passwd_uids();
        taken.extend(self.config.services.values().filter_map(|s| match s.user {
            Some(crate::config::User::Uid(u)) => Some(u),
            _ => None,
        }));
        let uid = isolate::plan::allocate_uid(range, &used, owner, |u| taken.contains(&u))
            .ok_or_else(|| {
                format!(
                    "spawn {key}: no free uid left in uid_range [{}, {}]",
                    range.0, range.1
                )
            })?;
        let inst = self.instances.get_mut(key).ok_or("unknown instance")?;
        inst.uid = Some(uid);
        // Persisted with the rest; the spawn line in its log names it.
        self.dirty = true;
        Ok((uid, uid))
    }

    /// A process could not be started; `crash`: see `Event::SpawnFailed`.
    pub(super) fn spawn_failed(&mut self, key: &InstanceKey, e: &str, crash: bool, now: Instant) {
        self.note(key, &format!("spawn failed: {e}"));
        let policy = self.policy(&key.service);
        let Some(inst) = self.instances.get_mut(key) else {
            return;
        };
        let fx = lifecycle::on(&mut inst.life, Event::SpawnFailed { crash }, &policy, now);
        self.apply(key, fx, now);
    }

    /// Carries out the effects of a start a command asked for (`Restart`, a
    /// stop for a restart): its `Spawn` launches now, and when the process
    /// cannot start the instance fails and Err says why, for the answer.
    pub(super) fn start_effects(
        &mut self,
        key: &InstanceKey,
        fx: Vec<Effect>,
        now: Instant,
    ) -> Result<(), String> {
        let (spawn, rest): (Vec<Effect>, Vec<Effect>) =
            fx.into_iter().partition(|e| *e == Effect::Spawn);
        if !rest.is_empty() {
            self.apply(key, rest, now);
        }
        if spawn.is_empty() {
            return Ok(());
        }
        self.launch(key, now)
            .inspect_err(|e| self.spawn_failed(key, e, false, now))
    }

    /// Starts the instance's process. Err: why it could not (exec error,
    /// unknown service, isolation unavailable), in words for the API.
    pub(super) fn launch(&mut self, key: &InstanceKey, now: Instant) -> Result<(), String> {
        let Some(svc) = self.config.services.get(key.service.as_str()).cloned() else {
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
        let instance_dir = layout::instance_dir(&self.data_dir, &key.service, &key.id);
        let data_dir = env.get("DATA_DIR").map_or(instance_dir, PathBuf::from);
        let user = match &svc.user {
            Some(u) => {
                Some(isolate::plan::resolve_user(u).map_err(|e| format!("spawn {key}: {e}"))?)
            }
            None if svc.isolation == Isolation::Process => None,
            None => Some(self.instance_uid(key, &data_dir)?),
        };
        let join = self.enter_cgroup(key, &svc)?;
        let inst = self.instances.get(key).ok_or("unknown instance")?;
        let listen = inst.listener.as_ref().map(|l| isolate::Listen {
            fd: l.as_fd(),
            name: &key.service,
        });
        // The config and the TLS private keys it names: /dev/null inside a
        // namespaced instance that would otherwise see them (a key next to
        // the config, in the default workdir).
        let mut hide = vec![self.config.path.clone()];
        if let Some(tls) = &self.config.settings.tls {
            hide.extend(tls.certs.iter().map(|c| c.key.path.clone()));
        }
        let argv = isolate::env::argv(&svc, &key.id, port, &self.data_dir);
        let request = isolate::Request {
            isolation: svc.isolation,
            argv: &argv,
            workdir: &svc.workdir,
            env: env.vars(),
            listen,
            service: &key.service,
            id: &key.id,
            data_dir: &data_dir,
            tenement_dir: &self.data_dir,
            hide: &hide,
            read_paths: &svc.read_paths,
            write_paths: &svc.write_paths,
            network_none: svc.network_none,
            user,
            cgroup: join.as_ref(),
        };
        let spawned = isolate::spawn(&request).map_err(|e| format!("spawn {key}: {e}"))?;
        let isolate::Spawned {
            mut child,
            pid,
            pgid,
            start_ticks,
            stdout,
            stderr,
            isolation,
            ids,
            enforced,
        } = spawned;

        let pidfd = match rustix::process::Pid::from_raw(pid as i32)
            .ok_or(rustix::io::Errno::SRCH)
            .and_then(|p| rustix::process::pidfd_open(p, rustix::process::PidfdFlags::empty()))
        {
            Ok(fd) => fd,
            Err(e) => {
                let _ = procfs::signal_group(pgid, Signal::KILL);
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
            let _ = procfs::signal_group(pgid, Signal::KILL);
            let _ = child.wait();
            return Err(format!("register pidfd: {e}"));
        }
        let stdout = stdout.and_then(|fd| self.watch_pipe(key, Source::Stdout, fd));
        let stderr = stderr.and_then(|fd| self.watch_pipe(key, Source::Stderr, fd));

        let inst = self.instances.get_mut(key).expect("port read above");
        inst.run = Some(Box::new(Run {
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
            isolation,
            ids: Some(ids),
            via_socket: false,
            owner: Default::default(),
            accepting: false,
            held_out: None,
            kept: Default::default(),
        }));
        inst.backoff_until = None;
        inst.start_deadline = Some(later(now, svc.startup_timeout));
        inst.next_probe = Some(now + FAST_POLL);
        inst.ready_at = None;
        let fx = lifecycle::on(&mut inst.life, Event::Spawned, &policy, now);
        self.note(
            key,
            &format!(
                "spawned pid {pid} port {port}, isolation {} ({enforced})",
                isolation.as_str()
            ),
        );
        self.apply(key, fx, now);
        self.dirty = true;
        if self
            .instances
            .get(key)
            .is_some_and(|i| !i.waiters.is_empty())
        {
            self.hold_save(now);
        }
        if svc.socket_activation {
            // The socket already listens: the kernel queues connections
            // until the app accepts them, so a started process is ready.
            let interval = self.config.settings.health_check_interval.max(READY_POLL);
            let inst = self.instances.get_mut(key).expect("present above");
            if inst.life.state() == State::Starting {
                let fx = lifecycle::on(&mut inst.life, Event::Ready, &policy, now);
                inst.start_deadline = None;
                inst.next_probe = Some(now + interval);
                inst.ready_at = Some(now);
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

    /// Requests wait for a start (a wake, a restart): the registry's save of
    /// it (an fsync, tens of milliseconds on a busy disk) must not come
    /// between the exec and noticing that the app listens, which for a fast
    /// app is a millisecond later. It is held for `SAVE_GAP`, unless a held
    /// save is due sooner: a burst of starts is still saved every `SAVE_GAP`.
    fn hold_save(&mut self, now: Instant) {
        if self.last_save.is_none_or(|t| t + SAVE_GAP <= now) {
            self.last_save = Some(now);
        }
    }

    /// Creates the instance's cgroup with the service's limits (emptying
    /// it if a previous process left something), or takes the one its last
    /// process left ready (`Instance::prepare_next_start`), and returns
    /// what the child needs to enter it. None without cgroups; an error when the service
    /// sets a limit that only a cgroup can enforce.
    fn enter_cgroup(
        &mut self,
        key: &InstanceKey,
        svc: &Service,
    ) -> Result<Option<cgroup::Join>, String> {
        let limits = cgroup::Limits::new(svc.memory_limit_mb, svc.cpu_shares, svc.pids_max);
        let Some(tree) = &self.cgroups else {
            let set: Vec<&str> = [
                ("memory_limit_mb", limits.memory_bytes.is_some()),
                ("cpu_shares", limits.cpu_shares.is_some()),
                ("pids_max", limits.pids_max.is_some()),
            ]
            .iter()
            .filter(|(_, on)| *on)
            .map(|(k, _)| *k)
            .collect();
            if set.is_empty() {
                return Ok(None);
            }
            return Err(format!(
                "{} needs cgroups: {}",
                set.join(", "),
                self.no_cgroups
            ));
        };
        let ready = self
            .instances
            .get_mut(key)
            .and_then(|i| i.cgroup.take())
            .and_then(|mut cg| cg.take_ready(&limits).then_some(cg));
        let cg = match ready {
            Some(cg) => *cg,
            None => tree
                .instance(&cgroup::instance_name(&key.service, &key.id), &limits)
                .map_err(|e| format!("cgroup for {key}: {}", cgroup::error_chain(&e)))?,
        };
        let join = cg
            .join()
            .map_err(|e| format!("cgroup for {key}: {}", cgroup::error_chain(&e)))?;
        if let Some(inst) = self.instances.get_mut(key) {
            inst.cgroup = Some(Box::new(cg));
        }
        Ok(Some(join))
    }

    /// With socket activation: binds 127.0.0.1:port once and keeps it for
    /// the instance's lifetime (std sets SO_REUSEADDR and CLOEXEC; the
    /// child step clears CLOEXEC on its fd 3 only).
    pub(super) fn bind_listener(&mut self, key: &InstanceKey, port: u16) -> Result<(), String> {
        let inst = self.instances.get_mut(key).ok_or("unknown instance")?;
        if inst.listener.is_none() {
            let l = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, port))
                .map_err(|e| format!("bind 127.0.0.1:{port} for socket activation: {e}"))?;
            inst.listener = Some(l);
        }
        Ok(())
    }

    pub(super) fn watch_pipe(
        &mut self,
        key: &InstanceKey,
        src: Source,
        fd: OwnedFd,
    ) -> Option<Pipe> {
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
        layout::instance_dir(data_dir, &svc.name, id),
        layout::run_dir(data_dir),
    ];
    dirs.extend(custom.map(Path::to_path_buf));
    for dir in dirs {
        std::fs::create_dir_all(&dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
    }
    // A socket left by the previous process would make the app's bind fail
    // with EADDRINUSE; the run folder is ours, so clear it.
    let socket = layout::instance_socket_path(data_dir, &svc.name, id);
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
    if procfs::is_same_process(pid, ticks) {
        info!(
            "supervisor",
            "{}:{} killing leftover process group {pgid} (pid {pid})", entry.service, entry.id
        );
        let _ = procfs::signal_group(pgid, Signal::KILL);
        if let Some(p) = rustix::process::Pid::from_raw(pid as i32) {
            let _ = rustix::process::kill_process(p, Signal::KILL);
        }
        members = procfs::group_members(pgid, ticks);
        members.push(pid);
    } else if procfs::stat(pgid).is_none_or(|s| s.state == 'Z' || s.state == 'X') {
        members = procfs::group_members(pgid, ticks);
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
    while members.iter().any(|&m| procfs::alive(m)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
}
