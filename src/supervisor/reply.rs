//! What a command's answer says, as data: what was done (`Done`) or why it
//! could not be (`CommandError`). The supervisor speaks neither HTTP nor
//! JSON; the front's API turns these into statuses and bodies in one place
//! (`front::api::reply`).

use crate::names::{InstanceKey, ServiceName};
use crate::state::tokens::TokenRecord;

use super::snapshot::InstanceView;

/// A command that succeeded, with what the caller gets to see.
#[derive(Debug, Clone)]
pub enum Done {
    /// The instance as it is now (spawn, restart, weight, deploy).
    Instance(Box<InstanceView>),
    /// `Stop`: the instance is gone.
    Stopped(InstanceKey),
    /// `Route`: both instances after the move.
    Routed {
        from: Box<InstanceView>,
        to: Box<InstanceView>,
    },
    /// `Reload`: the new config is in use.
    Reloaded,
    /// `RevokeToken`: the record removed, and whether `api_token` held it.
    Revoked {
        record: TokenRecord,
        removed_api_token: bool,
    },
    /// Nothing to show (`Shutdown`).
    Nothing,
}

/// Why a command failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommandError {
    /// No such instance (also what autospawn answers past `max_instances`,
    /// so a scanner learns nothing about the cap).
    UnknownInstance(InstanceKey),
    /// No such service in the config.
    UnknownService(ServiceName),
    /// `Spawn` of an instance that exists.
    Exists(InstanceKey),
    /// The service has `max` instances already.
    MaxInstances { service: ServiceName, max: usize },
    /// Every port of `port_range` is taken.
    NoFreePort { lo: u16, hi: u16 },
    /// The process could not be started: the cause, in words.
    SpawnFailed(String),
    /// The server is stopping.
    ShuttingDown,
    /// The instance failed (a held request, or one for a failed instance);
    /// `tail`: its last output lines, if any.
    Failed { tail: String },
    /// The instance exited and sleeps while a request waited for it.
    Exited { tail: String },
    /// The instance is being stopped for good.
    Stopping,
    /// The instance was stopped while a request waited for it.
    Stopped,
    /// Not ready (or, for a deploy, not healthy) within `secs`.
    TimedOut {
        key: InstanceKey,
        healthy: bool,
        secs: u64,
        tail: String,
    },
    /// The config file could not be reloaded: why.
    BadConfig(String),
    /// No API token has this id.
    UnknownToken(String),
    /// Something on our side went wrong.
    Internal(String),
    /// A change could not be saved (the registry or the tokens file), so it
    /// was not made: what was refused and the OS error. `full`: the disk or
    /// quota is full (ENOSPC, EDQUOT).
    Storage { message: String, full: bool },
    /// The server cannot do it now (a helper thread would not start).
    Unavailable(String),
    /// The request itself is wrong (a transfer body that does not check
    /// out): why.
    Refused(String),
    /// The instance is in a state that forbids it (data sent for an
    /// instance that runs here, a move of one that is being moved): why.
    Conflict(String),
}

impl CommandError {
    /// `what` was refused because a file could not be written:
    /// "weight api:a refused: ...: No space left on device (os error 28)".
    pub fn storage(what: &str, e: &crate::state::StateError) -> CommandError {
        match e {
            crate::state::StateError::Io { .. } => CommandError::Storage {
                message: format!("{what} refused: {}", e.describe()),
                full: e.disk_full(),
            },
            _ => CommandError::Internal(format!("{what} refused: {}", e.describe())),
        }
    }
}

/// `message` followed by the last output lines, if there are any.
fn with_tail(f: &mut std::fmt::Formatter<'_>, message: &str, tail: &str) -> std::fmt::Result {
    if tail.is_empty() {
        write!(f, "{message}")
    } else {
        write!(f, "{message}; last output:\n{tail}")
    }
}

impl std::fmt::Display for CommandError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CommandError::UnknownInstance(key) => write!(f, "unknown instance {key}"),
            CommandError::UnknownService(s) => write!(f, "unknown service {s:?}"),
            CommandError::Exists(key) => write!(f, "instance {key} already exists"),
            CommandError::MaxInstances { service, max } => {
                write!(f, "max_instances reached ({max}) for service {service}")
            }
            CommandError::NoFreePort { lo, hi } => write!(f, "no free port in {lo}-{hi}"),
            CommandError::SpawnFailed(why) => write!(f, "{why}"),
            CommandError::ShuttingDown => write!(f, "shutting down"),
            CommandError::Failed { tail } => with_tail(f, "instance failed", tail),
            CommandError::Exited { tail } => with_tail(f, "instance exited", tail),
            CommandError::Stopping => write!(f, "instance is stopping"),
            CommandError::Stopped => write!(f, "instance stopped"),
            CommandError::TimedOut {
                key,
                healthy,
                secs,
                tail,
            } => {
                let what = if *healthy { "healthy" } else { "ready" };
                with_tail(f, &format!("{key} not {what} within {secs}s"), tail)
            }
            CommandError::BadConfig(why) => write!(f, "{why}"),
            CommandError::UnknownToken(id) => write!(f, "no token with id {id}"),
            CommandError::Internal(why)
            | CommandError::Unavailable(why)
            | CommandError::Refused(why)
            | CommandError::Conflict(why) => write!(f, "{why}"),
            CommandError::Storage { message, .. } => write!(f, "{message}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_quote_the_last_output_only_when_there_is_some() {
        let key = InstanceKey {
            service: "api".into(),
            id: "a".into(),
        };
        let late = CommandError::TimedOut {
            key,
            healthy: false,
            secs: 10,
            tail: "boom".into(),
        };
        assert_eq!(
            late.to_string(),
            "api:a not ready within 10s; last output:\nboom"
        );
        let failed = CommandError::Failed {
            tail: String::new(),
        };
        assert_eq!(failed.to_string(), "instance failed");
    }
}
