//! Messages between the front loops and the supervisor thread.
//!
//! A front loop sends an `Envelope` (a `Command` and, when it wants an answer,
//! a `ReplyTo`) down the supervisor's channel and wakes it. The supervisor
//! answers by sending `(conn, Reply)` down the loop's own channel and waking
//! the loop. Neither side ever blocks on the other.

use std::sync::mpsc::Sender;
use std::sync::Arc;
use std::time::Duration;

use super::reply::{CommandError, Done};
use super::snapshot::InstanceView;
use crate::names::InstanceKey;

/// What the front asks the supervisor to do.
#[derive(Debug, Clone)]
pub enum Command {
    /// Create and start an instance. Replies once its command runs
    /// (`Done::Instance`) or with the exec error; with `wait`, only once it
    /// is ready (or `CommandError::TimedOut` with its last output lines after
    /// `startup_timeout`).
    Spawn {
        key: InstanceKey,
        weight: Option<u8>,
        wait: bool,
    },
    /// Stop and forget. Replies when the process is gone.
    Stop { key: InstanceKey },
    /// Restart (also clears `failed`). Replies once the new command runs.
    Restart { key: InstanceKey },
    /// Set a weight 0-100. Replies at once.
    Weight { key: InstanceKey, weight: u8 },
    /// Set `from` to 0 and `to` to 100 in one publish (two instances of one
    /// service).
    Route { from: InstanceKey, to: InstanceKey },
    /// Spawn if missing, wait until healthy within `timeout`, then set weight.
    Deploy {
        key: InstanceKey,
        weight: u8,
        timeout: Duration,
    },
    /// A proxied request is held until this instance is ready: replies
    /// `Reply::Ready` as soon as it is (at once if it already is), or
    /// `Reply::Error` (timed out after startup_timeout, failed, unknown).
    /// Wakes a sleeping instance.
    AwaitReady { key: InstanceKey },
    /// The front's connection to an instance it believed running was
    /// refused (it probably just crashed). Hold the request like
    /// `AwaitReady` and check the instance now: reply `Ready` once it
    /// accepts again (after a restart if it died).
    Refused { key: InstanceKey },
    /// Start streaming Server-Sent Events to this connection: each message
    /// arrives as `Reply::Stream` (one complete SSE message), until
    /// `Unsubscribe` with the same id. `Reply::Error` refuses the stream.
    Subscribe { id: u64, what: Subscription },
    /// The connection of subscription `id` closed.
    Unsubscribe { id: u64 },
    /// Re-read the config file.
    Reload,
    /// Revoke API token `id` (remove it from the tokens file). Replies with
    /// the revoked token's record, or `UnknownToken`.
    RevokeToken { id: String },
    /// Stop every instance gracefully, persist, and end the supervisor thread.
    Shutdown,
    /// An upgrade in place: once no stop is in progress, save the registry
    /// and end the supervisor thread without stopping anything; the thread
    /// returns the hand-over. No reply.
    HandOver,
    /// `ten move`: move the instance to the node whose API is at `to`
    /// (`token`: an admin token there). Replies at once; the move goes on
    /// in the background, shown in the instance's `move`.
    Move {
        key: InstanceKey,
        to: String,
        token: String,
    },
    /// The edge sends the moved instance's host to its new node now.
    MoveFlipped { key: InstanceKey },
}

/// The supervisor's answer to one command.
#[derive(Debug, Clone)]
pub enum Reply {
    /// Success, with what was done.
    Done(Done),
    /// The instance is ready; connect to this address.
    Ready(std::net::SocketAddr),
    /// Failure, and why.
    Error(CommandError),
    /// One Server-Sent Events message for a subscription, already framed
    /// (`event: ...\ndata: ...\n\n`).
    Stream(Vec<u8>),
    /// An instance changed (for a subscription to `/api/events`): the front
    /// frames it as an `instance` event with the instance's JSON.
    Instance(Arc<InstanceView>),
    /// A finished API body, serialised where it was made (the front's
    /// helper threads answer large JSON this way, off the event loop).
    Body {
        content_type: &'static str,
        body: Vec<u8>,
    },
}

/// What a `Subscribe` streams.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subscription {
    /// Lifecycle events (`GET /api/events`); a tenant sees its own id only.
    Events { tenant: Option<String> },
    /// Live log lines (`GET /api/logs/stream`), filtered like `/api/logs`.
    Logs {
        service: Option<String>,
        id: Option<String>,
        search: Option<String>,
        stream: Option<String>,
        tenant: Option<String>,
    },
}

/// Where a reply goes: a front loop's channel, its waker, and the
/// connection (slab index) that asked.
#[derive(Clone)]
pub struct ReplyTo {
    pub tx: Sender<(usize, Reply)>,
    pub waker: Arc<mio::Waker>,
    pub conn: usize,
}

impl std::fmt::Debug for ReplyTo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ReplyTo(conn {})", self.conn)
    }
}

impl ReplyTo {
    /// Sends the reply and wakes the loop. A loop that is gone is ignored:
    /// its connections are gone with it.
    pub fn send(self, reply: Reply) {
        if self.tx.send((self.conn, reply)).is_ok() {
            let _ = self.waker.wake();
        }
    }
}

/// One message to the supervisor.
#[derive(Debug)]
pub struct Envelope {
    pub cmd: Command,
    pub reply: Option<ReplyTo>,
}

/// The front's handle on the supervisor: its channel and waker.
#[derive(Clone)]
pub struct SupervisorHandle {
    pub tx: Sender<Envelope>,
    pub waker: Arc<mio::Waker>,
}

impl SupervisorHandle {
    /// Queues a command. Returns false if the supervisor is gone.
    pub fn send(&self, cmd: Command, reply: Option<ReplyTo>) -> bool {
        if self.tx.send(Envelope { cmd, reply }).is_err() {
            return false;
        }
        let _ = self.waker.wake();
        true
    }
}
