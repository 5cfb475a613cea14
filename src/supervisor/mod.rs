//! The supervisor: owns every instance, its process and its lifecycle.
//!
//! Runs on its own thread with its own `mio::Poll`: commands from the front,
//! pidfds for exits, output pipes, readiness and health probes, timers. Every
//! state change republishes the `Snapshot`, persists the registry when it
//! matters and is logged. Never blocks on the front.
//!
//! Layout: `worker` is the thread and carries out effects, with its
//! commands, launching, stopping, probes and views in `worker/*`; `lifecycle`
//! (state x event), `backoff`, `ports` and the parsers in `health` and `logs`
//! are pure and unit-tested; `table` holds the per-instance records and
//! `instances` keeps them, found by key and walked in key order.

pub mod backoff;
pub mod health;
pub mod idle;
mod instances;
pub mod lifecycle;
pub mod logs;
mod mover;
pub mod moving;
pub mod msg;
pub mod ports;
pub mod reply;
pub mod snapshot;
mod spawn_rate;
mod spread;
mod subscribers;
pub mod table;
mod timers;
mod worker;

use std::path::PathBuf;
use std::sync::mpsc;
use std::sync::Arc;
use std::thread::JoinHandle;

use crate::config::Config;
use crate::state::layout;

pub use msg::{Command, Reply, ReplyTo, SupervisorHandle};
pub use reply::{CommandError, Done};
pub use snapshot::{InstanceView, Published, Snapshot, State};
pub use subscribers::sse;
pub use worker::handover::Handover;

/// Why the supervisor could not start.
#[derive(Debug)]
pub enum SuperviseError {
    /// The registry could not be read or its folder created.
    State(crate::state::StateError),
    Io {
        what: String,
        source: std::io::Error,
    },
}

impl std::fmt::Display for SuperviseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SuperviseError::State(e) => write!(f, "{e}"),
            SuperviseError::Io { what, .. } => write!(f, "{what}"),
        }
    }
}

impl std::error::Error for SuperviseError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            SuperviseError::State(_) => None,
            SuperviseError::Io { source, .. } => Some(source),
        }
    }
}

/// Starts the supervisor thread: loads `{data_dir}/.tenement/state`, kills
/// leftover processes of a previous run, restarts the instances that were
/// running, spawns `[instances]`, publishes the first snapshot into
/// `published` before returning, and then serves commands. `tls`: the
/// certificate store a reload swaps, with `[settings.tls]`. `handed`: after
/// an upgrade in place, the processes the previous image ran, adopted
/// instead of killed and restarted. `control`: where a reload that moves
/// the listeners asks the server thread for a new front.
///
/// Blocks while leftovers die (at most a couple of seconds) and for the
/// fork/exec of each restored instance; processes may still be starting
/// when it returns. Call it from the thread that will own the server; the
/// returned `JoinHandle` ends after `Command::Shutdown` (or once every
/// `SupervisorHandle` is dropped, which implies one) with None, or after
/// `Command::HandOver` with the hand-over.
pub fn start(
    config: Config,
    data_dir: PathBuf,
    published: Arc<Published>,
    tls: Option<Arc<crate::certs::Store>>,
    handed: Option<Handover>,
    control: Option<Arc<crate::upgrade::Control>>,
) -> Result<(SupervisorHandle, JoinHandle<Option<Handover>>), SuperviseError> {
    for dir in [layout::logs_dir(&data_dir), layout::run_dir(&data_dir)] {
        std::fs::create_dir_all(&dir).map_err(|source| SuperviseError::Io {
            what: format!("create {}", dir.display()),
            source,
        })?;
    }
    let io = |what: &str| {
        let what = what.to_string();
        move |source| SuperviseError::Io { what, source }
    };
    let poll = mio::Poll::new().map_err(io("epoll_create"))?;
    let waker =
        Arc::new(mio::Waker::new(poll.registry(), worker::WAKER).map_err(io("create waker"))?);
    let (tx, rx) = mpsc::channel();
    // Read and checked before anything is touched: a registry that does
    // not validate stops the start here.
    let state = layout::registry_path(&data_dir);
    let (journal, registry, replay) =
        crate::state::registry_journal::Journal::open(&state).map_err(SuperviseError::State)?;
    if let Some(note) = replay.note(&crate::state::registry_journal::path_for(&state)) {
        warn!("supervisor", "{note}");
    }
    let mut supervisor = worker::Supervisor::new(config, data_dir, published, poll, rx, tls);
    supervisor.control = control;
    supervisor.journal = Some(journal);
    let handed = handed.unwrap_or_default();
    supervisor.prepare_host(handed.cgroups, &handed.instances);
    supervisor.restore(registry, handed.instances)?;
    // The registry as read and the first save were the largest buffers the
    // server makes; with thousands of entries their pages would stay ours.
    crate::sys::memory::trim();
    supervisor.beat = crate::notify::heartbeat("supervisor", waker.clone());
    supervisor.moves.waker = Some(waker.clone());
    let thread = std::thread::Builder::new()
        .name("supervisor".into())
        .spawn(move || supervisor.run())
        .map_err(io("spawn the supervisor thread"))?;
    Ok((SupervisorHandle { tx, waker }, thread))
}

#[cfg(test)]
mod live_tests;
