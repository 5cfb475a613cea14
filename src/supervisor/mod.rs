//! The supervisor: owns every instance, its process and its lifecycle.
//!
//! Runs on its own thread with its own `mio::Poll`: commands from the front,
//! pidfds for exits, output pipes, readiness and health probes, timers. Every
//! state change republishes the `Snapshot`, persists the registry when it
//! matters and is logged. Never blocks on the front.

pub mod msg;
pub mod snapshot;

use std::path::PathBuf;
use std::sync::Arc;
use std::thread::JoinHandle;

use crate::config::Config;

pub use msg::{Command, Envelope, Reply, ReplyTo, SupervisorHandle};
pub use snapshot::{Check, Health, InstanceView, Published, Snapshot, State};

/// Why the supervisor could not start.
#[derive(Debug)]
pub enum SuperviseError {
    /// The registry could not be read or its folder created.
    State(crate::state::StateError),
    Io { what: String, source: std::io::Error },
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
/// `published` before returning, and then serves commands.
pub fn start(
    config: Config,
    data_dir: PathBuf,
    published: Arc<Published>,
) -> Result<(SupervisorHandle, JoinHandle<()>), SuperviseError> {
    let _ = (config, data_dir, published);
    todo!("supervisor::start")
}
