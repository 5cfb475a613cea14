//! Instances across an upgrade in place: what the supervisor hands to the
//! next image of the server (every live process with its output pipes, its
//! socket-activation listener and its cgroup), and how the next supervisor
//! adopts them instead of killing and restarting them.
//!
//! The pid of `ten serve` does not change across `execve`, so instance
//! processes stay its children: the new image verifies each one (a child of
//! ours, started at the recorded time) and watches it again through a fresh
//! pidfd. Descriptors travel as numbers; `sys::fd::adopt` takes them back.
//! Nothing here spawns or stops a process, except killing one that cannot
//! be adopted.

use std::collections::HashMap;
use std::os::fd::{AsRawFd, IntoRawFd, RawFd};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use mio::unix::SourceFd;
use mio::Interest;
use rustix::process::{Pid, Signal, WaitId, WaitIdOptions};
use serde::{Deserialize, Serialize};

use super::{Supervisor, READY_POLL};
use crate::config::Isolation;
use crate::isolate::{self, cgroup, procfs};
use crate::names::{InstanceId, InstanceKey, ServiceName};
use crate::supervisor::idle;
use crate::supervisor::lifecycle::Life;
use crate::supervisor::snapshot::State;
use crate::supervisor::table::{Run, Source};

/// The supervisor's part of an upgrade's hand-over.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Handover {
    /// The tenement cgroup, as the old image found or made it.
    pub cgroups: Option<cgroup::Tree>,
    pub instances: Vec<Adopted>,
}

/// One instance with something that must outlive the exec.
#[derive(Debug, Serialize, Deserialize)]
pub struct Adopted {
    pub service: ServiceName,
    pub id: InstanceId,
    /// With socket activation: the listening socket on 127.0.0.1:port,
    /// kept across sleeps too.
    pub listener: Option<RawFd>,
    /// Its process, when one runs.
    pub process: Option<Process>,
}

/// A running instance process.
#[derive(Debug, Serialize, Deserialize)]
pub struct Process {
    pub pid: u32,
    pub pgid: u32,
    pub start_ticks: Option<u64>,
    /// Milliseconds since the epoch when it was started.
    pub started_at_ms: u64,
    /// Not ready yet: readiness is probed again.
    pub starting: bool,
    pub isolation: String,
    pub via_socket: bool,
    pub stdout: Option<RawFd>,
    pub stderr: Option<RawFd>,
    pub cgroup: Option<(String, cgroup::Limits)>,
    /// Milliseconds since its last request, if it had one (the monotonic
    /// clock's origin is per image, so the age travels, not the time).
    pub idle_ms: Option<u64>,
}

impl Handover {
    /// Every descriptor it names, to be kept open across the exec.
    pub fn fds(&self) -> Vec<RawFd> {
        let mut all = Vec::new();
        for a in &self.instances {
            all.extend(a.listener);
            if let Some(p) = &a.process {
                all.extend(p.stdout);
                all.extend(p.stderr);
            }
        }
        all
    }
}

fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn isolation_named(word: &str) -> Isolation {
    match word {
        "namespace" => Isolation::Namespace,
        "sandbox" => Isolation::Sandbox,
        _ => Isolation::Process,
    }
}

/// Takes back a handed-over descriptor number; a bad one is logged.
fn take(raw: Option<RawFd>, what: &str, key: &InstanceKey) -> Option<std::os::fd::OwnedFd> {
    let raw = raw?;
    crate::sys::fd::adopt(raw)
        .inspect_err(|e| warn!("supervisor", "{key} {what} (fd {raw}) not handed over: {e}"))
        .ok()
}

impl Supervisor {
    /// Ends supervision for an upgrade in place: saves the registry and
    /// releases every live process's descriptors and cgroup into the
    /// hand-over, without stopping anything. Called from the loop once no
    /// stop is in progress; the loop then ends.
    pub(super) fn hand_over(&mut self) -> Handover {
        self.save_now();
        self.flush();
        let mut out = Handover {
            cgroups: self.cgroups.take(),
            instances: Vec::new(),
        };
        for inst in self.instances.values_mut() {
            let key = &inst.key;
            let listener = inst.listener.take().map(IntoRawFd::into_raw_fd);
            let process = inst.run.take().map(|run| {
                let starting = inst.life.state() != State::Running;
                Process {
                    pid: run.pid,
                    pgid: run.pgid,
                    start_ticks: run.start_ticks,
                    started_at_ms: unix_ms(run.started_at),
                    starting,
                    isolation: run.isolation.as_str().to_string(),
                    via_socket: run.via_socket,
                    stdout: run.stdout.map(|p| p.fd.into_raw_fd()),
                    stderr: run.stderr.map(|p| p.fd.into_raw_fd()),
                    cgroup: inst
                        .cgroup
                        .as_ref()
                        .map(|cg| (cg.name().to_string(), *cg.limits())),
                    idle_ms: inst
                        .stats
                        .last_active()
                        .map(|t| Instant::now().saturating_duration_since(t).as_millis() as u64),
                }
            });
            if listener.is_none() && process.is_none() {
                continue;
            }
            if let Some(p) = &process {
                info!(
                    "supervisor",
                    "{key} pid {} handed over to the new image", p.pid
                );
            }
            out.instances.push(Adopted {
                service: key.service.clone(),
                id: key.id.clone(),
                listener,
                process,
            });
        }
        out
    }

    /// Adopts what the previous image handed over for `key` (inserted
    /// already, from the registry): its listener, and its process when it
    /// is still our child. Err: the process could not be adopted (it was
    /// killed); the caller starts the instance again.
    pub(super) fn adopt(
        &mut self,
        key: &InstanceKey,
        a: Adopted,
        now: Instant,
    ) -> Result<(), String> {
        if let Some(fd) = take(a.listener, "listener", key) {
            if let Some(inst) = self.instances.get_mut(key) {
                inst.listener = Some(std::net::TcpListener::from(fd));
            }
        }
        let Some(p) = a.process else {
            return Ok(());
        };
        let stdout = take(p.stdout, "stdout", key);
        let stderr = take(p.stderr, "stderr", key);
        if let Err(why) = verify(&p) {
            let _ = procfs::signal_group(p.pgid, Signal::KILL);
            return Err(why);
        }
        let pid = Pid::from_raw(p.pid as i32).ok_or("pid 0")?;
        let pidfd = rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::empty())
            .map_err(|e| format!("pidfd_open({}): {e}", p.pid))?;
        let pidfd_token = self.token(key, Source::Pidfd);
        if let Err(e) = self.poll.registry().register(
            &mut SourceFd(&pidfd.as_raw_fd()),
            pidfd_token,
            Interest::READABLE,
        ) {
            self.tokens.remove(&pidfd_token);
            let _ = procfs::signal_group(p.pgid, Signal::KILL);
            return Err(format!("register pidfd: {e}"));
        }
        let stdout = stdout.and_then(|fd| self.watch_pipe(key, Source::Stdout, fd));
        let stderr = stderr.and_then(|fd| self.watch_pipe(key, Source::Stderr, fd));
        let cg = match (&self.cgroups, &p.cgroup) {
            (Some(tree), Some((name, limits))) => Some(tree.adopt(name, limits)),
            _ => None,
        };
        let started_at = UNIX_EPOCH + Duration::from_millis(p.started_at_ms);
        let age = SystemTime::now()
            .duration_since(started_at)
            .unwrap_or_default();
        let startup = self.startup_timeout(&key.service);
        let interval = self.config.settings.health_check_interval.max(READY_POLL);
        let inst = self.instances.get_mut(key).ok_or("unknown instance")?;
        let state = match p.starting {
            true => State::Starting,
            false => State::Running,
        };
        inst.life = Life::adopted(state, inst.life.total_restarts());
        inst.cgroup = cg.map(Box::new);
        let isolation = isolation_named(&p.isolation);
        inst.run = Some(Box::new(Run {
            child: isolate::Child::adopt(p.pid, isolation != Isolation::Process),
            pid: p.pid,
            pgid: p.pgid,
            start_ticks: p.start_ticks,
            pidfd,
            pidfd_token,
            stdout,
            stderr,
            started: now.checked_sub(age).unwrap_or(now),
            started_at,
            isolation,
            ids: crate::isolate::procfs::ids(p.pid),
            via_socket: p.via_socket,
            // Checked again before the next probe sends anything.
            owner: Default::default(),
            accepting: false,
            held_out: None,
            kept: Default::default(),
        }));
        if let Some(ms) = p.idle_ms {
            let at = now.checked_sub(Duration::from_millis(ms)).unwrap_or(now);
            inst.stats
                .last_active_mono_ms
                .store(idle::mono_ms(at), Ordering::Relaxed);
        }
        if p.starting {
            inst.start_deadline = Some(crate::config::bounds::later(now, startup));
            inst.next_probe = Some(now + READY_POLL);
        } else {
            inst.ready_at = Some(now);
            inst.next_probe = Some(now + interval);
        }
        self.dirty = true;
        self.note(
            key,
            &format!("pid {} adopted after an upgrade in place", p.pid),
        );
        Ok(())
    }

    /// Kills what was handed over for an instance the new config no longer
    /// has, and closes its descriptors.
    pub(super) fn discard(&mut self, key: &InstanceKey, a: Adopted) {
        drop(take(a.listener, "listener", key));
        if let Some(p) = a.process {
            drop(take(p.stdout, "stdout", key));
            drop(take(p.stderr, "stderr", key));
            if verify(&p).is_ok() {
                info!(
                    "supervisor",
                    "{key} killing pid {}: its service is no longer configured", p.pid
                );
                let _ = procfs::signal_group(p.pgid, Signal::KILL);
                if let (Some(tree), Some((name, limits))) = (&self.cgroups, &p.cgroup) {
                    tree.adopt(name, limits).kill();
                }
            }
        }
    }
}

/// The handed-over instances by key.
pub(super) fn by_key(h: Vec<Adopted>) -> HashMap<InstanceKey, Adopted> {
    h.into_iter()
        .map(|a| {
            let key = InstanceKey {
                service: a.service.clone(),
                id: a.id.clone(),
            };
            (key, a)
        })
        .collect()
}

/// The pids of handed-over processes, which a restart's leftover killing
/// must spare.
pub(super) fn live_pids(h: &HashMap<InstanceKey, Adopted>) -> Vec<u32> {
    h.values()
        .filter_map(|a| a.process.as_ref().map(|p| p.pid))
        .collect()
}

/// The process is our child (it may have exited meanwhile: then the pidfd
/// reports it at once and it is reaped as any exit) and started when the
/// hand-over says.
fn verify(p: &Process) -> Result<(), String> {
    let pid = Pid::from_raw(p.pid as i32).ok_or("pid 0")?;
    let options = WaitIdOptions::EXITED | WaitIdOptions::NOHANG | WaitIdOptions::NOWAIT;
    if let Err(e) = rustix::process::waitid(WaitId::Pid(pid), options) {
        return Err(format!("pid {} is not a child of this server: {e}", p.pid));
    }
    if let (Some(ticks), Some(stat)) = (p.start_ticks, procfs::stat(p.pid)) {
        if stat.start_ticks != ticks {
            return Err(format!("pid {} is another process now", p.pid));
        }
    }
    Ok(())
}
