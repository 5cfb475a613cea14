//! The management glue on one connection: reading an API request body,
//! dispatching it to `api::Api`, sending commands and subscriptions to the
//! supervisor, and turning its replies into API answers, Server-Sent Events
//! or (for a held request) the go-ahead to connect.
//!
//! Further `impl Worker` methods; the loop in `worker.rs` delivers replies.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Instant, SystemTime};

use super::Worker;
use crate::front::api::reply::{error_status, Via};
use crate::front::api::{self, Action, ApiRequest};
use crate::front::conn::{Conn, Phase};
use crate::front::fault::Side;
use crate::http::response::{write_chunk, EVENT_STREAM_HEAD};
use crate::supervisor::{Command, Reply, ReplyTo};

/// Largest management API request body.
const MAX_API_BODY: usize = 1024 * 1024;

/// Most bytes an event stream may have waiting for its client. A reader
/// that falls this far behind is dropped (a final comment says so), so a
/// stalled subscriber costs at most this much, however chatty the apps.
pub(super) const MAX_STREAM_BUF: usize = 256 * 1024;

/// How long a dropped stream gets to take its last bytes before it closes.
const DROP_GRACE: std::time::Duration = std::time::Duration::from_secs(10);

/// The last words of a stream whose reader fell behind.
const DROPPED: &[u8] = b": dropped: the reader fell behind; reconnect to resume\n\n";

/// Subscription ids are unique across loops.
static NEXT_STREAM_ID: AtomicU64 = AtomicU64::new(1);

impl Worker {
    pub(super) fn read_api_body(&mut self, slot: usize, c: &mut Conn) -> bool {
        let x = c.exchange.as_mut().expect("api body phase has an exchange");
        match x.req_framer.decode(c.cin.bytes(), &mut x.api_body) {
            Ok(scan) => {
                c.cin.consume(scan.used);
                if x.api_body.len() > MAX_API_BODY {
                    self.fail_status(
                        c,
                        Side::Client,
                        413,
                        "request body too large for the API (1 MiB at most)",
                    );
                    return true;
                }
                if scan.done {
                    x.req_done = true;
                    self.handle_api(slot, c);
                    return true;
                }
                scan.used > 0
            }
            Err(e) => {
                let msg = e.to_string();
                self.fail(c, Side::Client, &msg);
                true
            }
        }
    }

    pub(super) fn handle_api(&mut self, slot: usize, c: &mut Conn) {
        if self.published.generation() != self.snap.generation {
            self.snap = self.published.load();
        }
        let x = c.exchange.as_ref().expect("api request has an exchange");
        let (path, query) = match x.head.target().split_once('?') {
            Some((p, q)) => (p, q),
            None => (x.head.target(), ""),
        };
        let authorization = x.head.header("authorization");
        let req = ApiRequest {
            method: x.head.method(),
            path,
            query,
            authorization,
            body: &x.api_body,
            local: c.local,
            client: crate::http::client_address(&x.head, c.peer_ip, &self.snap.trusted_proxies),
        };
        let action = self.api.handle(&req, &self.snap);
        match action {
            Action::Respond(resp) => self.respond(c, resp),
            Action::Stream(what, token) => {
                let id = NEXT_STREAM_ID.fetch_add(1, Ordering::Relaxed);
                let reply = self.reply_to(slot, c);
                c.stream_id = Some(id);
                c.stream_token = token;
                if self
                    .supervisor
                    .send(Command::Subscribe { id, what }, Some(reply))
                {
                    c.phase = Phase::Waiting;
                    c.deadline = None;
                } else {
                    c.stream_id = None;
                    self.supervisor_gone(c);
                }
            }
            Action::Ask {
                cmd,
                success_status,
            } => {
                let reply = ReplyTo {
                    tx: self.replies_tx.clone(),
                    waker: self.waker.clone(),
                    conn: (u64::from(c.generation) << 32) as usize | slot,
                };
                if self.supervisor.send(cmd, Some(reply)) {
                    if let Some(x) = c.exchange.as_mut() {
                        x.api_status = Some(success_status);
                    }
                    c.phase = Phase::Waiting;
                    c.deadline = None;
                } else {
                    self.supervisor_gone(c);
                }
            }
            Action::Offload {
                job,
                success_status,
            } => {
                // Parked like an Ask: the job's reply arrives as a supervisor's would.
                job.submit(Some(self.reply_to(slot, c)));
                if let Some(x) = c.exchange.as_mut() {
                    x.api_status = Some(success_status);
                }
                c.phase = Phase::Waiting;
                c.deadline = None;
            }
        }
    }

    /// A supervisor reply for this connection: an event for its stream, the
    /// answer to its API command, or the fate of its held request.
    pub(super) fn on_reply(&mut self, slot: usize, c: &mut Conn, reply: Reply) {
        if c.stream_id.is_some() {
            let message = match reply {
                Reply::Stream(message) => message,
                Reply::Instance(view) => api::instance::event(&view, SystemTime::now()),
                Reply::Error(e) if c.phase == Phase::Waiting => {
                    c.stream_id = None;
                    // A subscription the supervisor refused (e.g. an unknown
                    // instance): the client asked for it.
                    let status = error_status(&e, Via::Api);
                    self.fail_status(c, Side::Client, status, &e.to_string());
                    return;
                }
                _ => return,
            };
            if c.phase == Phase::Waiting {
                // The supervisor took the subscription: start the stream.
                c.cout.extend(EVENT_STREAM_HEAD);
                c.phase = Phase::Streaming;
                c.exchange = None;
                c.close_after = true;
                c.deadline = None;
            }
            self.send_chunk(c, &message);
            c.last_beat = Instant::now();
            return;
        }
        let api_status = c.exchange.as_ref().and_then(|x| x.api_status);
        if let Some(status) = api_status {
            let resp = api::reply_response(reply, status);
            self.respond(c, resp);
            return;
        }
        self.on_held_reply(slot, c, reply);
    }

    /// Appends one chunk of an event stream to the client's buffer. If that
    /// would put more than `MAX_STREAM_BUF` in it, the subscription ends
    /// instead: a final comment and the last chunk are queued and the
    /// connection closes once they are out, or after `DROP_GRACE`.
    pub(super) fn send_chunk(&mut self, c: &mut Conn, data: &[u8]) {
        if c.phase != Phase::Streaming {
            return;
        }
        if c.cout.len() + data.len() > MAX_STREAM_BUF {
            if let Some(id) = c.stream_id.take() {
                self.supervisor.send(Command::Unsubscribe { id }, None);
                debug!("front", "event stream {id} dropped: its reader fell behind");
            }
            self.scratch.clear();
            write_chunk(&mut self.scratch, DROPPED);
            self.scratch.extend_from_slice(b"0\r\n\r\n");
            c.cout.extend(&self.scratch);
            c.close_after = true;
            c.phase = Phase::Closing;
            c.deadline = Some(Instant::now() + DROP_GRACE);
            return;
        }
        self.scratch.clear();
        write_chunk(&mut self.scratch, data);
        c.cout.extend(&self.scratch);
    }
}
