//! The supervisor's commands: what the front asks for (spawn, stop,
//! restart, weight, route, deploy, await, refused, subscribe, reload,
//! revoke a token, shutdown), each answered now or held as a waiter until
//! the instance is ready or healthy.

use crate::config::bounds::later;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustix::process::Signal;

use super::{post, Supervisor, DEFAULT_WEIGHT};
use crate::config::Config;
use crate::isolate::{cgroup, procfs};
use crate::names::InstanceKey;
use crate::state::{Desired, RegistryEntry};
use crate::supervisor::lifecycle::AfterStop;
use crate::supervisor::lifecycle::{self, Event};
use crate::supervisor::msg::{Command, Reply, ReplyTo};
use crate::supervisor::reply::{CommandError, Done};
use crate::supervisor::snapshot::{Health, State};
use crate::supervisor::table::{WaitFor, Waiter};

impl Supervisor {
    /// The certificates a reloaded `config` names, read now, when HTTPS is
    /// serving (None otherwise). An error is also kept for `GET /api/tls`.
    fn load_certs(
        &self,
        config: &Config,
    ) -> Result<Option<(crate::certs::CertSet, bool)>, crate::config::ConfigError> {
        let (Some(store), Some(tls)) = (&self.tls, &config.settings.tls) else {
            return Ok(None);
        };
        match crate::certs::load(tls, &config.settings.domain) {
            Ok(set) => Ok(Some((set, tls.redirect_http))),
            Err(e) => {
                store.set_last_error(Some(e.to_string()));
                Err(e)
            }
        }
    }

    pub(super) fn on_command(&mut self, cmd: Command, to: Option<ReplyTo>) {
        let now = Instant::now();
        if self.shutdown.is_some() && !matches!(cmd, Command::Shutdown) {
            self.answer(to, Reply::Error(CommandError::ShuttingDown));
            return;
        }
        match cmd {
            Command::Spawn { key, weight, wait } => {
                self.cmd_spawn(key, weight.unwrap_or(DEFAULT_WEIGHT), wait, to, now)
            }
            Command::Stop { key } => {
                if !self.instances.contains_key(&key) {
                    return self
                        .answer(to, Reply::Error(CommandError::UnknownInstance(key.clone())));
                }
                // The intent is saved before any signal: a crash during the
                // stop does not bring the instance back.
                let stopping = |e: &mut RegistryEntry| e.desired = Desired::Stopping;
                if let Err(e) = self.save_entry_first(&format!("stop {key}"), &key, stopping) {
                    return self.answer(to, Reply::Error(e));
                }
                self.begin_stop(&key, AfterStop::Forget, to, now);
            }
            Command::Restart { key } => self.cmd_restart(key, to, now),
            Command::Weight { key, weight } => {
                if !self.instances.contains_key(&key) {
                    return self
                        .answer(to, Reply::Error(CommandError::UnknownInstance(key.clone())));
                }
                let weight = weight.min(100);
                let set = |e: &mut RegistryEntry| e.weight = weight;
                if let Err(e) = self.save_entry_first(&format!("weight {key}"), &key, set) {
                    return self.answer(to, Reply::Error(e));
                }
                self.instances.get_mut(&key).expect("checked").weight = weight;
                self.dirty = true;
                self.persist(&key);
                self.note(&key, &format!("weight {weight}"));
                self.answer(to, self.instance_reply(&key));
            }
            Command::Route { from: a, to: b } => {
                let service = a.service.clone();
                for k in [&a, &b] {
                    if !self.instances.contains_key(k) {
                        return self
                            .answer(to, Reply::Error(CommandError::UnknownInstance(k.clone())));
                    }
                }
                let saved = self.save_first(&format!("route {a} to {b}"), &[&a, &b], |r| {
                    for (k, weight) in [(&a, 0), (&b, 100)] {
                        if let Some(e) = r.entry_mut(&k.service, &k.id) {
                            e.weight = weight;
                        }
                    }
                });
                if let Err(e) = saved {
                    return self.answer(to, Reply::Error(e));
                }
                self.instances.get_mut(&a).expect("checked").weight = 0;
                self.instances.get_mut(&b).expect("checked").weight = 100;
                self.dirty = true;
                self.persist(&a);
                self.persist(&b);
                info!(
                    "supervisor",
                    "route {service}: {a} weight 0, {b} weight 100"
                );
                let routed = Done::Routed {
                    from: self.boxed_view(&a).expect("checked"),
                    to: self.boxed_view(&b).expect("checked"),
                };
                self.answer(to, Reply::Done(routed));
            }
            Command::Deploy {
                key,
                weight,
                timeout,
            } => self.cmd_deploy(key, weight.min(100), timeout, to, now),
            Command::AwaitReady { key } => self.cmd_await(key, to, now),
            Command::Move {
                key,
                to: url,
                token,
            } => self.cmd_move(key, url, token, to),
            Command::MoveFlipped { key } => self.cmd_move_flipped(key, to),
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
            Command::RevokeToken { id } => {
                let reply = revoke_token(&self.data_dir, &id);
                self.answer(to, reply);
            }
            Command::Reload => {
                // Both a SIGHUP and `ten reload` come here; the service
                // manager hears of the reload around it either way.
                crate::notify::reloading();
                // Certificate files are read before anything changes: one
                // that is missing or wrong refuses the whole reload.
                let loaded = Config::load(&self.config.path).and_then(|mut config| {
                    config.apply_overrides(self.config.overrides.clone());
                    let certs = self.load_certs(&config)?;
                    Ok((config, certs))
                });
                // New addresses to listen on must be free before anything
                // changes: one that cannot be bound refuses the reload.
                let loaded = loaded.and_then(|(config, certs)| {
                    let front = front_change(&self.config, &config, self.tls.is_some())?;
                    Ok((config, certs, front))
                });
                match loaded {
                    Ok((config, certs, front)) => {
                        let https = |c: &Config| c.settings.tls.is_some();
                        if https(&config) != https(&self.config) {
                            warn!(
                                "supervisor",
                                "adding or removing `[settings.tls]` takes effect at the next `ten upgrade` or start of ten serve"
                            );
                        }
                        let acme =
                            |c: &Config| c.settings.tls.as_ref().and_then(|t| t.acme.clone());
                        if acme(&config) != acme(&self.config) {
                            warn!(
                                "supervisor",
                                "changes to the `acme_*` keys take effect at the next `ten upgrade` or start of ten serve"
                            );
                        }
                        if let (Some(front), Some(control)) = (front, &self.control) {
                            control.send(crate::upgrade::Request::Front(front));
                        }
                        if let (Some(store), Some((set, redirect))) = (&self.tls, certs) {
                            store.swap(set, redirect);
                            store.set_last_error(None);
                            info!("supervisor", "TLS certificates reloaded");
                        }
                        self.config = config;
                        self.config_json = Arc::new(self.config.to_json());
                        self.dirty = true;
                        info!(
                            "supervisor",
                            "config reloaded from {}",
                            self.config.path.display()
                        );
                        self.answer(to, Reply::Done(Done::Reloaded));
                    }
                    Err(e) => {
                        warn!("supervisor", "reload refused: {e}");
                        self.answer(to, Reply::Error(CommandError::BadConfig(e.to_string())));
                    }
                }
                // A refused config leaves the old one serving: ready again.
                crate::notify::ready();
            }
            Command::HandOver => {
                info!(
                    "supervisor",
                    "handing instances over for an upgrade in place"
                );
                self.handing_over = true;
            }
            Command::Shutdown => {
                if self.shutdown.is_some() {
                    return self.answer(to, Reply::Done(Done::Nothing));
                }
                info!(
                    "supervisor",
                    "shutting down: stopping {} instances",
                    self.instances.len()
                );
                self.shutdown = Some(to);
                // Saved before anything stops: a kill -9 during the stop
                // still finds what should come back.
                self.persist_all();
                let keys: Vec<InstanceKey> = self.instances.keys().cloned().collect();
                for key in keys {
                    let inst = self.instances.get_mut(&key).expect("key from the map");
                    inst.resume = match inst.life.state() {
                        State::Starting | State::Running | State::Backoff => true,
                        State::Stopping => inst
                            .stop
                            .as_ref()
                            .is_some_and(|s| s.then == AfterStop::Restart),
                        // Going to sleep: it stays asleep.
                        State::Sleeping | State::Failed | State::Moving | State::Moved => false,
                    };
                    for w in inst.waiters.drain(..) {
                        post(
                            &mut self.outbox,
                            w.reply,
                            Reply::Error(CommandError::ShuttingDown),
                        );
                    }
                    if inst.run.is_some() || inst.stop.is_some() {
                        self.begin_stop(&key, AfterStop::Shutdown, None, now);
                    }
                }
            }
        }
    }

    pub(super) fn cmd_spawn(
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
            .is_some_and(|i| i.life.state() == State::Failed)
        {
            // `ten spawn` of a failed instance brings it back (REFERENCE,
            // Lifecycle); anything else that exists is a conflict.
            return self.cmd_restart(key, to, now);
        }
        if self
            .instances
            .get(&key)
            .is_some_and(|i| i.life.state() == State::Moved)
        {
            // Moved away from here earlier, and now moved back.
            if let Err(e) = self.spawn_moved_back(&key, weight, now) {
                return self.answer(to, Reply::Error(CommandError::SpawnFailed(e)));
            }
        } else if let Err(e) = self.create(&key, weight, now) {
            return self.answer(to, Reply::Error(e));
        }
        if wait {
            let timeout = self.startup_timeout(&key.service);
            self.hold(&key, to, WaitFor::Spawned, timeout, now);
            // A socket-activated instance is ready as soon as it runs.
            self.resolve_waiters(&key);
        } else {
            self.answer(to, self.instance_reply(&key));
        }
    }

    /// Adds a new instance and starts its process. Err: why not.
    pub(super) fn create(
        &mut self,
        key: &InstanceKey,
        weight: u8,
        now: Instant,
    ) -> Result<(), CommandError> {
        let Some(svc) = self.config.services.get(key.service.as_str()) else {
            return Err(CommandError::UnknownService(key.service.clone()));
        };
        let max = svc.max_instances;
        if self.instances.contains_key(key) {
            return Err(CommandError::Exists(key.clone()));
        }
        if max > 0
            && self
                .instances
                .keys()
                .filter(|k| k.service == key.service)
                .count()
                >= max
        {
            return Err(CommandError::MaxInstances {
                service: key.service.clone(),
                max,
            });
        }
        let Some(port) = self.alloc_port() else {
            let (lo, hi) = self.config.settings.port_range;
            return Err(CommandError::NoFreePort { lo, hi });
        };
        self.insert(key.clone(), port, weight.min(100), State::Starting);
        if let Err(e) = self.launch(key, now) {
            self.note(key, &format!("spawn failed: {e}"));
            self.instances.remove(key);
            self.dirty = true;
            return Err(CommandError::SpawnFailed(e));
        }
        // Saved once the process runs, with its pid, and before any answer:
        // the exec does not wait for the disk, and a spawn is confirmed
        // only once the registry holds it. A spawn that cannot be saved is
        // undone: its process is killed and the instance forgotten.
        if let Err(e) = self.save_first(&format!("spawn {key}"), &[key], |_| {}) {
            self.undo_spawn(key);
            return Err(e);
        }
        Ok(())
    }

    /// Takes back a spawn whose registry entry could not be written, so
    /// that nothing of it is left: its process is killed and reaped at
    /// once (it has only just started), its cgroup removed, the instance
    /// forgotten (its data dir too, unless `storage_persist`).
    fn undo_spawn(&mut self, key: &InstanceKey) {
        self.cancel_probe(key);
        if let Some(run) = self.instances.get_mut(key).and_then(|i| i.run.as_mut()) {
            let _ = procfs::signal_group(run.pgid, Signal::KILL);
            let _ = run.child.wait();
        }
        self.drop_run(key);
        let Some(inst) = self.instances.remove(key) else {
            return;
        };
        if let Some(cg) = inst.cgroup {
            if cg.populated() {
                cg.kill_and_wait(cgroup::KILL_WAIT);
            }
            if let Err(e) = cg.remove() {
                warn!("supervisor", "{key} remove its cgroup: {e}");
            }
        }
        self.drop_storage(key);
        self.dirty = true;
        info!(
            "supervisor",
            "{key} spawn undone: the registry could not be saved"
        );
    }

    pub(super) fn cmd_restart(&mut self, key: InstanceKey, to: Option<ReplyTo>, now: Instant) {
        if !self.instances.contains_key(&key) {
            return self.answer(to, Reply::Error(CommandError::UnknownInstance(key.clone())));
        }
        let running = |e: &mut RegistryEntry| e.desired = Desired::Running;
        if let Err(e) = self.save_entry_first(&format!("restart {key}"), &key, running) {
            return self.answer(to, Reply::Error(e));
        }
        let inst = self.instances.get_mut(&key).expect("present above");
        if inst.run.is_some() || inst.stop.is_some() {
            return self.begin_stop(&key, AfterStop::Restart, to, now);
        }
        let policy = self.policy(&key.service);
        let inst = self.instances.get_mut(&key).expect("present above");
        let fx = lifecycle::on(&mut inst.life, Event::Restart, &policy, now);
        match self.start_effects(&key, fx, now) {
            Ok(()) => self.answer(to, self.instance_reply(&key)),
            Err(e) => self.answer(to, Reply::Error(CommandError::SpawnFailed(e))),
        }
    }

    pub(super) fn cmd_deploy(
        &mut self,
        key: InstanceKey,
        weight: u8,
        timeout: Duration,
        to: Option<ReplyTo>,
        now: Instant,
    ) {
        if !self.instances.contains_key(&key) {
            // Weight 0 until healthy, so no traffic arrives before then.
            if let Err(e) = self.create(&key, 0, now) {
                return self.answer(to, Reply::Error(e));
            }
        } else if self
            .instances
            .get(&key)
            .is_some_and(|i| i.life.state() == State::Failed)
        {
            let running = |e: &mut RegistryEntry| e.desired = Desired::Running;
            if let Err(e) = self.save_entry_first(&format!("deploy {key}"), &key, running) {
                return self.answer(to, Reply::Error(e));
            }
            let policy = self.policy(&key.service);
            let inst = self.instances.get_mut(&key).expect("checked");
            let fx = lifecycle::on(&mut inst.life, Event::Revive, &policy, now);
            self.apply(&key, fx, now);
        }
        let inst = self
            .instances
            .get_mut(&key)
            .expect("present or just spawned");
        if inst.life.state() == State::Running && inst.life.health() == Health::Healthy {
            let set = |e: &mut RegistryEntry| e.weight = weight;
            if let Err(e) = self.save_entry_first(&format!("deploy {key}"), &key, set) {
                return self.answer(to, Reply::Error(e));
            }
            let inst = self.instances.get_mut(&key).expect("present above");
            inst.weight = weight;
            self.dirty = true;
            self.persist(&key);
            return self.answer(to, self.instance_reply(&key));
        }
        self.wake_if_down(&key, now, "woken by deploy");
        self.hold(&key, to, WaitFor::Deploy { weight }, timeout, now);
        self.resolve_waiters(&key);
        self.fail_waiters_if_down(&key);
    }

    pub(super) fn cmd_await(&mut self, key: InstanceKey, to: Option<ReplyTo>, now: Instant) {
        let Some(inst) = self.instances.get(&key) else {
            return self.autospawn(key, to, now);
        };
        match inst.life.state() {
            State::Running => {
                let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, inst.port));
                self.answer(to, Reply::Ready(addr))
            }
            State::Failed => self.answer(
                to,
                Reply::Error(CommandError::Failed {
                    tail: String::new(),
                }),
            ),
            State::Moved => match self.moved_addr(&key) {
                Some(addr) => self.answer(to, Reply::Ready(addr)),
                None => self.answer(to, Reply::Error(CommandError::Stopped)),
            },
            State::Stopping
                if inst.stop.as_ref().is_some_and(|s| {
                    !matches!(
                        s.then,
                        AfterStop::Restart | AfterStop::Sleep | AfterStop::Move
                    )
                }) =>
            {
                self.answer(to, Reply::Error(CommandError::Stopping))
            }
            _ => self.hold_and_wake(&key, to, WaitFor::Ready, now),
        }
    }

    /// Holds `to` until the instance is ready, waking it if it sleeps; many
    /// requests during one wake all wait for the same start.
    pub(super) fn hold_and_wake(
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
    pub(super) fn autospawn(&mut self, key: InstanceKey, to: Option<ReplyTo>, now: Instant) {
        let unknown = Reply::Error(CommandError::UnknownInstance(key.clone()));
        let Some(svc) = self.config.services.get(key.service.as_str()) else {
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
        if !self.spawn_rate.allow(&key.service, now) {
            warn!(
                "supervisor",
                "{key} not autospawned: service {} created {} instances by request within the last minute (the limit)",
                key.service,
                super::super::spawn_rate::BURST,
            );
            return self.answer(
                to,
                Reply::Error(CommandError::Unavailable(format!(
                    "too many new instances of {}; try again shortly",
                    key.service
                ))),
            );
        }
        match self.create(&key, DEFAULT_WEIGHT, now) {
            Ok(()) => {
                self.note(&key, "created by request (autospawn)");
                self.hold_and_wake(&key, to, WaitFor::Ready, now);
            }
            // Past the cap between the count and the create: as unknown.
            Err(CommandError::Exists(_) | CommandError::MaxInstances { .. }) => {
                self.answer(to, unknown)
            }
            // A failed exec stays `SpawnFailed`: the proxy answers it as an
            // upstream failure.
            Err(e) => self.answer(to, Reply::Error(e)),
        }
    }

    /// The front's connection to a running instance was refused. Look at
    /// it now instead of at the next health check: reap it if it died
    /// (requests then wait for the restart), else probe it with a bare
    /// connect; the request is answered `Ready` once the instance accepts.
    pub(super) fn cmd_refused(&mut self, key: InstanceKey, to: Option<ReplyTo>, now: Instant) {
        if let Some(addr) = self.moved_addr(&key) {
            // Forwarded, not ours to restart: the node it moved to is down.
            let e = format!("{key} moved to {addr}, which refused the connection");
            return self.answer(to, Reply::Error(CommandError::Unavailable(e)));
        }
        let running = self.instances.get(&key).is_some_and(|i| {
            let accepting = i.run.as_ref().is_some_and(|r| r.accepting);
            let up = i.life.state() == State::Running && i.run.is_some();
            (up || accepting) && i.stop.is_none()
        });
        if running {
            // The pidfd event may still be queued behind this command.
            self.on_exit(&key);
        }
        let Some(inst) = self.instances.get_mut(&key) else {
            return self.answer(to, Reply::Error(CommandError::UnknownInstance(key.clone())));
        };
        if let Some(run) = inst.run.as_mut() {
            // Starting, it accepted once and now refuses: held requests
            // wait for the next connect that gets through.
            run.accepting = false;
        }
        if inst.life.state() != State::Running || inst.run.is_none() || inst.stop.is_some() {
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
    pub(super) fn wake_if_down(&mut self, key: &InstanceKey, now: Instant, why: &str) {
        let policy = self.policy(&key.service);
        let Some(inst) = self.instances.get_mut(key) else {
            return;
        };
        if inst.life.state() == State::Sleeping {
            let fx = lifecycle::on(&mut inst.life, Event::Wake, &policy, now);
            inst.stats.wake_started();
            self.note(key, why);
            self.apply(key, fx, now);
        }
    }

    pub(super) fn hold(
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
                deadline: later(now, timeout),
                timeout_secs: timeout.as_secs(),
            });
        }
    }
}

/// What a reload changes in the front (`listen`, `workers`, a moved
/// `https_listen` while HTTPS serves): the settings to rebuild it with, or
/// None. Err: a new address cannot be bound (it is tried and let go).
fn front_change(
    old: &Config,
    new: &Config,
    https_serving: bool,
) -> Result<Option<crate::upgrade::FrontSettings>, crate::config::ConfigError> {
    let https = |c: &Config| match https_serving {
        true => c.settings.tls.as_ref().map(|t| t.https_listen),
        false => None,
    };
    let (o, n) = (&old.settings, &new.settings);
    let changed = o.listen != n.listen || o.workers != n.workers || https(old) != https(new);
    if !changed {
        return Ok(None);
    }
    for (key, before, after) in [
        ("listen", Some(o.listen), Some(n.listen)),
        ("https_listen", https(old), https(new)),
    ] {
        let Some(after) = after.filter(|a| Some(*a) != before) else {
            continue;
        };
        if let Err(e) = std::net::TcpListener::bind(after) {
            return Err(crate::config::ConfigError {
                file: new.path.clone(),
                line: None,
                key: Some(key.to_string()),
                message: format!("cannot listen on {after}: {e}"),
            });
        }
    }
    Ok(Some(crate::upgrade::FrontSettings {
        listen: n.listen,
        workers: n.workers,
        https: https(new).or(https(old)),
    }))
}

/// `DELETE /api/tokens/{id}`: removes the token from the tokens file; every
/// front loop refuses it from its next request.
fn revoke_token(data_dir: &std::path::Path, id: &str) -> Reply {
    match crate::state::tokens::revoke(data_dir, id) {
        Ok(Some(done)) => {
            info!("supervisor", "token {id} revoked");
            Reply::Done(Done::Revoked {
                record: done.record,
                removed_api_token: done.removed_api_token,
            })
        }
        Ok(None) => Reply::Error(CommandError::UnknownToken(id.to_string())),
        Err(e) => {
            let e = CommandError::storage(&format!("revoking token {id}"), &e);
            error!("supervisor", "{e}");
            Reply::Error(e)
        }
    }
}
