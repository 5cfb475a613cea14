//! The instance table: what the supervisor knows about each instance and its
//! current process. Owned by the supervisor thread; nothing here is shared.

use std::os::fd::{AsRawFd, OwnedFd};
use std::time::{Instant, SystemTime};

use mio::Token;

use super::health::Probe;
use super::lifecycle::{AfterStop, Life, StopPhase};
use super::logs::{LogFile, Ring, Splitter};
use super::msg::ReplyTo;
use crate::names::InstanceKey;

/// Which of an instance's fds an event is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Pidfd,
    Stdout,
    Stderr,
    Probe,
}

/// One output pipe of a running process.
#[derive(Debug)]
pub struct Pipe {
    pub fd: OwnedFd,
    pub token: Token,
    pub splitter: Splitter,
}

/// The current process of an instance.
#[derive(Debug)]
pub struct Run {
    pub child: crate::isolate::Child,
    pub pid: u32,
    pub pgid: u32,
    pub start_ticks: Option<u64>,
    pub pidfd: OwnedFd,
    pub pidfd_token: Token,
    pub stdout: Option<Pipe>,
    pub stderr: Option<Pipe>,
    pub started: Instant,
    pub started_at: SystemTime,
    /// The level `isolate::spawn` started it at.
    pub isolation: crate::config::Isolation,
    /// The (uid, gid) it runs as; None when that could not be read (an
    /// adopted process whose `/proc` entry did not answer).
    pub ids: Option<(u32, u32)>,
    /// The last passing probe went over the instance's Unix socket
    /// (`SOCKET_PATH`): the app listens there, and the front connects there.
    pub via_socket: bool,
    /// Whose listener the probes reach, as far as it was checked.
    pub owner: OwnerChecked,
    /// While starting with a `health` path: a connect got through to its
    /// own listener, so held requests go to it before its first health
    /// check passes. A refused request clears it until the next one.
    pub accepting: bool,
    /// Requests held through the start went to it when it accepted: its
    /// first health check waits until the front has answered them.
    pub held_out: Option<HeldOut>,
    /// The health check's connection kept open between checks, and what
    /// the checks learned about keeping one.
    pub kept: KeptProbe,
}

/// A health check's connection to a running process, kept for the next
/// check when the app keeps connections (see `health`).
#[derive(Debug, Default)]
pub struct KeptProbe {
    /// Open and still registered with the poll under its token (an event
    /// on it while no check runs means the app closed it).
    pub conn: Option<(Token, crate::net::MioStream)>,
    /// The app closed a kept connection before the next check: this
    /// process's checks connect each time.
    pub off: bool,
    /// Bytes of the last answer on `conn` that were not read yet.
    pub skip: usize,
    /// `SOCKET_PATH`, made at the first check.
    pub socket: Option<std::sync::Arc<std::path::Path>>,
}

/// Held requests let go to a starting instance, for its first health check
/// to wait on (so the check does not compete with them in the app).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeldOut {
    /// The instance's count of answered requests once they all are.
    pub answered: u64,
    /// The check goes then all the same (a held request may be a stream
    /// that never ends).
    pub until: Instant,
}

/// What `isolate::owner` confirmed as the instance's own listener since
/// this process started; anything else is checked before a probe sends.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OwnerChecked {
    /// The TCP listener on its port.
    pub tcp: bool,
    /// The socket file at `SOCKET_PATH`, as (device, inode).
    pub unix: Option<(u64, u64)>,
}

impl Run {
    pub fn raw_pidfd(&self) -> i32 {
        self.pidfd.as_raw_fd()
    }
}

/// A stop in progress: SIGTERM sent to the group, then per `phase`.
#[derive(Debug)]
pub struct Stop {
    pub then: AfterStop,
    pub pgid: u32,
    pub phase: StopPhase,
    pub replies: Vec<ReplyTo>,
}

/// What a held request or command waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitFor {
    /// `AwaitReady`: answer `Reply::Ready(addr)`.
    Ready,
    /// `Refused`: answer `Reply::Ready(addr)` once a check shows the instance
    /// accepts again (a passing probe or a restart that became ready).
    Accepting,
    /// `Spawn` with wait: answer the instance JSON.
    Spawned,
    /// `Deploy`: set this weight, then answer the instance JSON.
    Deploy { weight: u8 },
}

impl WaitFor {
    /// Whether the waiter is an admin's command (`ten spawn --wait`,
    /// deploy), whose error may carry the app's last output lines. A held
    /// proxied request never does: its client may be anyone (issue 10).
    pub fn for_admin(self) -> bool {
        matches!(self, WaitFor::Spawned | WaitFor::Deploy { .. })
    }
}

/// A reply held until the instance is ready or `deadline` passes.
#[derive(Debug)]
pub struct Waiter {
    pub reply: Option<ReplyTo>,
    pub what: WaitFor,
    pub deadline: Instant,
    /// For the 504 message: how long it was given.
    pub timeout_secs: u64,
}

/// One instance.
#[derive(Debug)]
pub struct Instance {
    pub key: InstanceKey,
    pub port: u16,
    pub weight: u8,
    pub life: Life,
    pub run: Option<Box<Run>>,
    pub probe: Option<(Token, Probe)>,
    /// When to start the next readiness or health probe.
    pub next_probe: Option<Instant>,
    /// While starting: when it counts as not ready in time.
    pub start_deadline: Option<Instant>,
    /// While in backoff: when to spawn again.
    pub backoff_until: Option<Instant>,
    pub stop: Option<Box<Stop>>,
    pub ring: Ring,
    pub log: LogFile,
    pub waiters: Vec<Waiter>,
    /// Set at shutdown for instances that should come back with tenement.
    pub resume: bool,
    /// Traffic counters the front updates; kept for the instance's lifetime.
    pub stats: std::sync::Arc<super::snapshot::InstanceStats>,
    /// When the current process became ready: idle time counts from here
    /// when no request came since.
    pub ready_at: Option<Instant>,
    /// With socket_activation: the listening socket tenement bound on
    /// 127.0.0.1:port, passed to every process as fd 3 and kept open across
    /// restarts and sleeps, so connections queue in its backlog meanwhile.
    pub listener: Option<std::net::TcpListener>,
    /// The probe in flight checks whether a refused instance still accepts
    /// (connect only); its failure looks for an exit at once.
    pub recheck: bool,
    /// Its cgroup (as root, where a hierarchy is usable): created at each
    /// start, removed once a stop is complete.
    pub cgroup: Option<Box<crate::isolate::cgroup::Instance>>,
    /// Processes the kernel killed for exceeding `memory_limit_mb`, over
    /// the instance's lifetime in this server.
    pub oom_kills: u64,
    /// Its data dir's size at the last measurement, when its service has a
    /// storage quota.
    pub storage_bytes: Option<u64>,
    /// The quota thresholds its data dir is at: 0 below 80 %, 1 from 80 %,
    /// 2 over 100 %. Each rise is logged once.
    pub storage_level: u8,
    /// Its own uid (and gid) from `uid_range`, given the first time it
    /// runs at a namespaced level without `user`, then kept in the
    /// registry for its lifetime: no other instance gets it.
    pub uid: Option<u32>,
    /// `ten move` of this instance to another node, once begun.
    pub moving: Option<Box<super::moving::Move>>,
    /// Its view as last published; dropped whenever the instance is
    /// touched, so a publish rebuilds only the views of what changed.
    pub view: Option<std::sync::Arc<super::snapshot::InstanceView>>,
}

impl Instance {
    /// A record with nothing running, nothing in flight and nothing
    /// counted yet.
    pub fn new(key: InstanceKey, port: u16, weight: u8, life: Life, log: LogFile) -> Instance {
        Instance {
            key,
            port,
            weight,
            life,
            run: None,
            probe: None,
            next_probe: None,
            start_deadline: None,
            backoff_until: None,
            stop: None,
            ring: Ring::default(),
            log,
            waiters: Vec::new(),
            resume: false,
            stats: Default::default(),
            ready_at: None,
            listener: None,
            recheck: false,
            cgroup: None,
            oom_kills: 0,
            storage_bytes: None,
            storage_level: 0,
            uid: None,
            moving: None,
            view: None,
        }
    }
}

#[cfg(test)]
mod tests {
    /// Every instance, asleep or not, has its record in the table: what
    /// only a running, stopping or moving one needs is boxed, so ten
    /// thousand sleeping instances stay within the README's memory bound.
    #[test]
    fn an_instance_record_stays_small() {
        let size = std::mem::size_of::<super::Instance>();
        assert!(size <= 512, "an Instance is {size} bytes");
    }
}
