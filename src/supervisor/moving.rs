//! `ten move` at the source: the phases of a move, what the supervisor keeps
//! of one, and the messages between the mover thread (`mover.rs`) and the
//! supervisor. Types only; the supervisor's side is `worker/moving.rs`.
//!
//! The phases, in order, each persisted in the registry before it begins:
//! `copy` (first pass of the data dir while the instance runs), `stop`
//! (new requests are held, the process stops gracefully), `sync` (second
//! pass: what changed), `start` (the target spawns it and we wait until it
//! is ready), `moved` (held and later requests are forwarded to the
//! target). Up to `sync` the target has never been asked to start it, so
//! an interrupted move runs it here again; from `start` on it may run
//! there, so it never starts here again until a re-run of `ten move` has
//! asked the target.

use std::net::SocketAddr;
use std::sync::mpsc::Sender;
use std::time::Instant;

use crate::names::InstanceKey;

/// Where a move is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Phase {
    Copy,
    Stop,
    Sync,
    Start,
    Moved,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Copy => "copy",
            Phase::Stop => "stop",
            Phase::Sync => "sync",
            Phase::Start => "start",
            Phase::Moved => "moved",
        }
    }

    pub fn parse(s: &str) -> Option<Phase> {
        Some(match s {
            "copy" => Phase::Copy,
            "stop" => Phase::Stop,
            "sync" => Phase::Sync,
            "start" => Phase::Start,
            "moved" => Phase::Moved,
            _ => return None,
        })
    }

    /// Whether the target may have been asked to start the instance: from
    /// here on, it must never start on this node again by itself.
    pub fn target_may_run(self) -> bool {
        self >= Phase::Start
    }
}

/// A move of one instance, kept on the instance at the source.
#[derive(Debug)]
pub struct Move {
    /// The target's API URL.
    pub to: String,
    /// The target's listener, where requests are forwarded once moved.
    pub addr: Option<SocketAddr>,
    pub phase: Phase,
    /// Why the last attempt stopped, until the next one.
    pub error: Option<String>,
    /// A mover thread is working on it.
    pub active: bool,
    /// The edge sends this host to the target now (`ten move --flipped` or
    /// `--haproxy-socket`): forget the entry once no request came for
    /// `LINGER`.
    pub flipped_at: Option<Instant>,
    /// The mover waits for the stop to finish.
    pub stopped: Option<Sender<Result<(), String>>>,
    /// Requests are held; the stop begins once those in flight are done,
    /// or at this moment.
    pub drain_until: Option<Instant>,
    /// Responses the instance had answered when it was moved: what it
    /// answers after that was forwarded.
    pub served_before: u64,
}

/// What a mover thread tells the supervisor.
#[derive(Debug)]
pub enum MoveMsg {
    /// Enter `phase` (persisted before the answer); `Phase::Stop` is
    /// answered once the process is gone. `detail` is logged.
    Phase {
        key: InstanceKey,
        phase: Phase,
        addr: Option<SocketAddr>,
        detail: String,
        done: Sender<Result<(), String>>,
    },
    /// The mover ended: `Ok` after `moved`, else why it gave up.
    Ended {
        key: InstanceKey,
        result: Result<(), String>,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phases_parse_back_and_only_late_ones_may_run_on_the_target() {
        for p in [
            Phase::Copy,
            Phase::Stop,
            Phase::Sync,
            Phase::Start,
            Phase::Moved,
        ] {
            assert_eq!(Phase::parse(p.as_str()), Some(p));
            assert_eq!(p.target_may_run(), matches!(p, Phase::Start | Phase::Moved));
        }
        assert_eq!(Phase::parse("copying"), None);
    }
}
