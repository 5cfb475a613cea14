//! The proxy exchange on one connection: routing a request head to an
//! instance or holding it for the supervisor, the proxy step (request body
//! out, response head and body back), the tunnel after `101`, finishing an
//! exchange, and the answers the front makes itself (`respond`, `fail`).
//!
//! Further `impl Worker` methods, called from `pump.rs`. Nothing here blocks.

use std::time::{Duration, Instant};

use super::{Worker, HEAD_TIMEOUT, IDLE_TIMEOUT};
use crate::front::api::Response;
use crate::front::conn::{Conn, Dest, Exchange, Phase, MAX_BUF};
use crate::front::fault::Side;
use crate::front::router::{self, Target};
use crate::front::stats::Visit;
use crate::http::response::{write_canned, Canned, CONTINUE};
use crate::http::{self, BodyKind, Framer, RequestHead};
use crate::names::InstanceKey;
use crate::supervisor::{Command, Reply, State};

/// Slack past `startup_timeout` for a held request, in case the supervisor's
/// own 504 is late.
const HOLD_SLACK: Duration = Duration::from_secs(5);

impl Worker {
    /// A complete request head arrived: route it.
    pub(super) fn start_request(&mut self, slot: usize, c: &mut Conn, head: RequestHead) {
        if self.published.generation() != self.snap.generation {
            self.snap = self.published.load();
        }
        let path = head.target.split('?').next().unwrap_or("/").to_string();
        let target = if c.local {
            Target::Management
        } else {
            router::route(&self.snap, head.host.as_deref(), &path)
        };
        let mut exchange = Exchange {
            req_framer: Framer::new(head.body),
            req_done: !head.body.has_body(),
            head,
            service: None,
            instance: None,
            visit: None,
            refusals: 0,
            refused_by: None,
            tried: Vec::new(),
            upstream_head: Vec::new(),
            body_sent: false,
            resp_framer: None,
            resp_keep_alive: false,
            dechunk: false,
            resp_started: false,
            api_body: Vec::new(),
            api_status: None,
            request_timeout: Duration::from_secs(60),
        };
        c.deadline = None;
        if !matches!(target, Target::Management | Target::NotFound) && !c.cin.is_empty() {
            // Body bytes that came with the head are checked before anything
            // is forwarded, so a malformed body in the first read reaches no
            // app. Later bytes are checked as they stream.
            let mut probe = exchange.req_framer.clone();
            if let Err(e) = probe.scan(c.cin.bytes()) {
                c.exchange = Some(Box::new(exchange));
                let msg = e.to_string();
                self.fail(c, Side::Client, &msg);
                return;
            }
        }
        match target {
            Target::Management => {
                let expect = exchange.head.expect_continue;
                let has_body = exchange.head.body.has_body();
                c.exchange = Some(Box::new(exchange));
                if has_body {
                    if expect && exchange_minor(c) >= 1 {
                        c.cout.extend(CONTINUE);
                    }
                    c.phase = Phase::ApiBody;
                    c.deadline = Some(Instant::now() + HEAD_TIMEOUT);
                    self.read_api_body(slot, c);
                } else {
                    self.handle_api(slot, c);
                }
            }
            Target::NotFound => {
                let host = exchange.head.host.clone().unwrap_or_default();
                c.exchange = Some(Box::new(exchange));
                self.respond_error(c, 404, &format!("no instance or service for host `{host}`"));
            }
            Target::Instance(index) => {
                c.exchange = Some(Box::new(exchange));
                self.go_to_instance(slot, c, index);
            }
            Target::Spawn { service, id } => {
                let key = InstanceKey { service, id };
                exchange.instance = Some(key.clone());
                c.exchange = Some(Box::new(exchange));
                // The supervisor creates it (or answers 404 past max_instances)
                // and replies within the service's startup_timeout.
                self.hold(
                    slot,
                    c,
                    Command::AwaitReady { key },
                    Duration::from_secs(300),
                );
            }
            Target::Service(service) => {
                exchange.service = Some(service.clone());
                c.exchange = Some(Box::new(exchange));
                match self.balancer.pick(&self.snap, &service, &[]) {
                    Some(index) => self.go_to_instance(slot, c, index),
                    None => self.respond_unavailable(
                        c,
                        &format!("no instance of `{service}` is available"),
                    ),
                }
            }
        }
    }

    /// Sends the request to instance `index` of the current snapshot: at once
    /// if it is running, else held until the supervisor says it is ready.
    pub(super) fn go_to_instance(&mut self, slot: usize, c: &mut Conn, index: usize) {
        let view = &self.snap.instances[index];
        let (addr, state, startup) = (dest(view), view.state, view.startup_timeout);
        let key = InstanceKey {
            service: view.service.clone(),
            id: view.id.clone(),
        };
        let stats = view.stats.clone();
        if let Some(x) = c.exchange.as_mut() {
            x.request_timeout = view.request_timeout;
            x.tried.push(index);
            x.instance = Some(key.clone());
            // Replacing a visit (weighted retry) ends the old one unrecorded.
            x.visit = Some(Visit::new(stats));
        }
        match state {
            State::Running => self.connect(slot, c, addr),
            State::Failed => {
                self.respond_unavailable(c, &format!("instance {key} has failed"));
            }
            _ => self.hold(slot, c, Command::AwaitReady { key }, startup),
        }
    }

    /// Holds the request until the supervisor answers `cmd` (a wait for an
    /// instance to be ready). `timeout` is the instance's startup_timeout;
    /// the supervisor answers 504 itself, the loop's deadline is a backstop.
    pub(super) fn hold(&mut self, slot: usize, c: &mut Conn, cmd: Command, timeout: Duration) {
        let reply = self.reply_to(slot, c);
        if self.supervisor.send(cmd, Some(reply)) {
            c.phase = Phase::Waiting;
            c.deadline = Some(Instant::now() + timeout + HOLD_SLACK);
            if let Some(x) = c.exchange.as_mut() {
                if x.head.expect_continue && !x.req_done && x.head.minor >= 1 && !x.body_sent {
                    // No upstream to ask yet: say 100 ourselves so the client
                    // sends the body while the instance starts, and take
                    // `Expect` off the forwarded request so the app does not
                    // answer a second 100.
                    c.cout.extend(CONTINUE);
                    x.head.expect_continue = false;
                    x.head
                        .headers
                        .retain(|h| !h.name.eq_ignore_ascii_case("expect"));
                    x.upstream_head.clear();
                }
            }
        } else {
            self.supervisor_gone(c);
        }
    }

    /// Moves request body and response bytes along. Returns whether anything moved.
    pub(super) fn proxy_step(&mut self, slot: usize, c: &mut Conn) -> bool {
        let mut progress = false;
        let x = c.exchange.as_mut().expect("proxy phase has an exchange");

        // Request body: client -> upstream, as framed. Only once connected:
        // until then the body stays with the client side, so a refused
        // connection can be retried elsewhere without losing it.
        let connected = c.upstream.as_ref().is_some_and(|u| u.connected);
        if connected && !x.req_done && !c.cin.is_empty() && c.uout.len() < MAX_BUF {
            match x.req_framer.scan(c.cin.bytes()) {
                Ok(scan) => {
                    if scan.used > 0 {
                        c.uout.take_from(&mut c.cin, scan.used);
                        x.body_sent = true;
                        progress = true;
                    }
                    if scan.done {
                        x.req_done = true;
                        progress = true;
                    }
                    if progress && !x.resp_started {
                        // The wait for the response head counts from the last
                        // body byte, so a long upload is not cut short.
                        c.deadline = Some(Instant::now() + x.request_timeout);
                    }
                }
                Err(e) => {
                    let msg = e.to_string();
                    self.fail(c, Side::Client, &msg);
                    return true;
                }
            }
        }
        if !x.req_done && c.ready.eof && c.cin.is_empty() {
            // The client went away mid-body.
            c.phase = Phase::Closing;
            c.cout = Default::default();
            return true;
        }

        // Response head.
        if x.resp_framer.is_none() && !c.uin.is_empty() {
            let head_req = x.head.method == "HEAD";
            match http::parse_response(c.uin.bytes(), head_req) {
                Ok(Some((resp, len))) => {
                    progress = true;
                    if resp.status >= 100 && resp.status < 200 && resp.status != 101 {
                        // Interim response: relay to 1.1 clients, then wait for the real one.
                        if x.head.minor >= 1 {
                            c.cout.extend(&c.uin.bytes()[..len]);
                        }
                        c.uin.consume(len);
                        return true;
                    }
                    c.uin.consume(len);
                    x.resp_started = true;
                    if let Some(v) = x.visit.as_mut() {
                        v.status = resp.status;
                    }
                    c.deadline = None;
                    if resp.status == 101 && x.head.upgrade {
                        self.scratch.clear();
                        http::write_response_head(
                            &resp,
                            x.head.minor,
                            true,
                            false,
                            &mut self.scratch,
                        );
                        c.cout.extend(&self.scratch);
                        c.phase = Phase::Tunnel;
                        return true;
                    }
                    let dechunk = x.head.minor == 0 && resp.body == BodyKind::Chunked;
                    // An answer before the whole request body arrived ends the
                    // connection: the rest of the body cannot be told apart
                    // from a next request.
                    let client_keep = x.head.keep_alive
                        && x.req_done
                        && !c.close_after
                        && resp.body != BodyKind::Close
                        && !dechunk;
                    x.resp_keep_alive = resp.keep_alive;
                    x.dechunk = dechunk;
                    if !client_keep {
                        c.close_after = true;
                    }
                    self.scratch.clear();
                    http::write_response_head(
                        &resp,
                        x.head.minor,
                        client_keep,
                        dechunk,
                        &mut self.scratch,
                    );
                    c.cout.extend(&self.scratch);
                    x.resp_framer = Some(Framer::new(resp.body));
                }
                Ok(None) => {}
                Err(e) => {
                    debug!("front", "bad response from upstream: {e}");
                    self.fail(c, Side::Upstream, "the instance sent a malformed response");
                    return true;
                }
            }
        }

        // Response body: upstream -> client, as framed.
        let x = c.exchange.as_mut().expect("proxy phase has an exchange");
        if let Some(framer) = x.resp_framer.as_mut() {
            if !framer.is_done() && !c.uin.is_empty() && c.cout.len() < MAX_BUF {
                let result = if x.dechunk {
                    let mut out = Vec::new();
                    let r = framer.decode(c.uin.bytes(), &mut out);
                    c.cout.extend(&out);
                    r.inspect(|scan| c.uin.consume(scan.used))
                } else {
                    framer
                        .scan(c.uin.bytes())
                        .inspect(|scan| c.cout.take_from(&mut c.uin, scan.used))
                };
                match result {
                    Ok(scan) => progress |= scan.used > 0 || scan.done,
                    Err(e) => {
                        warn!("front", "bad response body from upstream: {e}");
                        c.close_after = true;
                        c.phase = Phase::Closing;
                        return true;
                    }
                }
            }
            if framer.is_done() {
                if x.req_done {
                    self.finish_exchange(slot, c);
                    return true;
                }
                // The app answered before reading the whole body: the rest of
                // the body cannot be told from a next request, so close after.
                c.close_after = true;
                x.resp_keep_alive = false;
                self.finish_exchange(slot, c);
                return true;
            }
        }

        // Upstream closed.
        let up_eof = c.upstream.as_ref().is_some_and(|u| u.ready.eof);
        if up_eof && c.uin.is_empty() {
            let x = c.exchange.as_mut().expect("proxy phase has an exchange");
            match x.resp_framer.as_ref() {
                None => {
                    let reused = c.upstream.as_ref().is_some_and(|u| u.reused);
                    if reused && !x.body_sent {
                        // A pooled connection the app had closed: retry on a fresh one.
                        let addr = c
                            .upstream
                            .as_ref()
                            .map(|u| u.addr.clone())
                            .expect("checked above");
                        self.drop_upstream(c);
                        self.connect_fresh(slot, c, addr);
                        return true;
                    }
                    if !x.body_sent && matches!(x.head.method.as_str(), "GET" | "HEAD" | "OPTIONS")
                    {
                        // Reset before any answer: the app died with the
                        // request (a killed multi-threaded app keeps its
                        // socket until its last thread exits). A safe request
                        // is retried like a refused connection: the next
                        // instance, or held until this one is back.
                        let addr = c
                            .upstream
                            .as_ref()
                            .map(|u| u.addr.clone())
                            .expect("checked above");
                        self.upstream_refused(c, addr);
                        return true;
                    }
                    self.fail(
                        c,
                        Side::Upstream,
                        "the instance closed the connection without answering",
                    );
                    return true;
                }
                Some(framer) => {
                    let close_delimited = !framer.is_done();
                    if close_delimited {
                        // Close-delimited bodies end here; a length or chunked
                        // body cut short cannot be repaired: close the client too.
                        c.close_after = true;
                        x.resp_keep_alive = false;
                        self.finish_exchange(slot, c);
                        return true;
                    }
                }
            }
        }
        progress
    }

    /// The response is complete: pool the upstream if it can be reused, then
    /// wait for the next request or close.
    fn finish_exchange(&mut self, _slot: usize, c: &mut Conn) {
        let x = c
            .exchange
            .take()
            .expect("finishing an exchange that exists");
        let reusable = x.resp_keep_alive && x.req_done && c.uin.is_empty();
        match c.upstream.as_mut() {
            // Kept attached for this client's next request (see `connect`).
            Some(up) if reusable && !up.ready.eof => up.in_use = false,
            Some(_) => {
                self.drop_upstream(c);
            }
            None => {}
        }
        c.uin.clear();
        c.uout.clear();
        c.served += 1;
        let now = Instant::now();
        c.idle_since = now;
        if c.close_after {
            c.phase = Phase::Closing;
            c.deadline = Some(now + IDLE_TIMEOUT);
            return;
        }
        c.phase = Phase::Head;
        c.deadline = Some(now + IDLE_TIMEOUT);
    }

    /// After `101`: bytes both ways until both sides are done.
    pub(super) fn tunnel_step(&mut self, c: &mut Conn) -> bool {
        let mut progress = false;
        if !c.cin.is_empty() && c.uout.len() < MAX_BUF {
            let n = c.cin.len();
            c.uout.take_from(&mut c.cin, n);
            progress = true;
        }
        if !c.uin.is_empty() && c.cout.len() < MAX_BUF {
            let n = c.uin.len();
            c.cout.take_from(&mut c.uin, n);
            progress = true;
        }
        let up_eof = c.upstream.as_ref().is_none_or(|u| u.ready.eof);
        if up_eof && c.uin.is_empty() {
            // The app is done: finish writing to the client, then close.
            c.phase = Phase::Closing;
            c.close_after = true;
            return true;
        }
        if c.ready.eof && c.cin.is_empty() && c.uout.is_empty() {
            if let Some(up) = c.upstream.as_ref() {
                up.stream.shutdown_write();
            }
        }
        progress
    }

    /// The supervisor's answer for a held request: the instance is ready
    /// (connect to it) or it cannot be had (answer the error).
    pub(super) fn on_held_reply(&mut self, slot: usize, c: &mut Conn, reply: Reply) {
        match reply {
            Reply::Ready(addr) => {
                if self.published.generation() != self.snap.generation {
                    self.snap = self.published.load();
                }
                let mut to = Dest::Tcp(addr);
                if let Some(x) = c.exchange.as_mut() {
                    let view = x
                        .instance
                        .as_ref()
                        .and_then(|k| self.snap.get(&k.service, &k.id));
                    if let Some(view) = view {
                        // The snapshot says whether it listens on its socket.
                        to = dest(view);
                        if x.visit.is_none() {
                            // An autospawned instance: it exists now.
                            x.request_timeout = view.request_timeout;
                            x.visit = Some(Visit::new(view.stats.clone()));
                        }
                    }
                }
                self.connect(slot, c, to);
            }
            Reply::Error { status, message } => {
                if status == 503 {
                    self.respond_unavailable(c, &message);
                } else {
                    // The instance could not be had (not created, failed to start,
                    // not ready in time): the supervisor chose the status.
                    self.fail_status(c, Side::Upstream, status, &message);
                }
            }
            Reply::Done(_) | Reply::Stream(_) => {
                self.fail(c, Side::Internal, "unexpected reply from the supervisor")
            }
        }
    }

    /// Writes a complete front-made response and moves on to the next request.
    pub(super) fn respond(&mut self, c: &mut Conn, resp: Response) {
        let (minor, keep, head_only) = match c.exchange.as_ref() {
            Some(x) => (
                x.head.minor,
                x.head.keep_alive && x.req_done && !c.close_after,
                x.head.method == "HEAD",
            ),
            None => (1, false, false),
        };
        let canned = Canned {
            status: resp.status,
            content_type: resp.content_type,
            headers: &resp.headers,
            body: &resp.body,
        };
        let mut out = Vec::with_capacity(256 + resp.body.len());
        write_canned(&mut out, &canned, minor, keep, head_only);
        c.cout.extend(&out);
        if !keep {
            c.close_after = true;
        }
        if let Some(v) = c.exchange.as_mut().and_then(|x| x.visit.as_mut()) {
            if v.status == 0 {
                v.status = resp.status;
            }
        }
        if resp.status >= 400 {
            self.stats.refused(resp.status);
        }
        c.exchange = None;
        c.served += 1;
        c.idle_since = Instant::now();
        self.drop_used_upstream(c);
        if c.close_after {
            c.phase = Phase::Closing;
            c.deadline = Some(Instant::now() + IDLE_TIMEOUT);
        } else {
            c.phase = Phase::Head;
            c.deadline = Some(Instant::now() + IDLE_TIMEOUT);
        }
    }

    /// A JSON error; keeps the connection when the request was fully read.
    fn respond_error(&mut self, c: &mut Conn, status: u16, message: &str) {
        let resp = Response::error(status, message);
        self.respond(c, resp);
    }

    /// 503 with Retry-After.
    fn respond_unavailable(&mut self, c: &mut Conn, message: &str) {
        let mut resp = Response::error(503, message);
        resp.headers.push(("Retry-After", "5".to_string()));
        self.respond(c, resp);
    }

    /// An error after which the connection cannot continue: answer with
    /// the status `side` sets (unless part of a response already went out)
    /// and close.
    pub(super) fn fail(&mut self, c: &mut Conn, side: Side, message: &str) {
        self.fail_status(c, side, side.status(false), message);
    }

    /// `fail` for a deadline that passed (408 or 504).
    pub(super) fn fail_timeout(&mut self, c: &mut Conn, side: Side, message: &str) {
        self.fail_status(c, side, side.status(true), message);
    }

    /// `fail` with a status decided elsewhere (the request parser, the
    /// supervisor, a limit); `side` still sets the log level and reuse.
    pub(super) fn fail_status(&mut self, c: &mut Conn, side: Side, status: u16, message: &str) {
        let level = side.level();
        if crate::log::enabled(level) {
            crate::log::write(
                level,
                "front",
                format_args!("{side} error, answering {status}: {message}"),
            );
        }
        if !side.keeps_idle_upstream() {
            self.drop_upstream(c);
            c.uin.clear();
            c.uout.clear();
        }
        let started = c.exchange.as_ref().is_some_and(|x| x.resp_started);
        c.close_after = true;
        if started {
            c.exchange = None;
            self.drop_used_upstream(c);
            c.phase = Phase::Closing;
            return;
        }
        let mut resp = Response::error(status, message);
        if status == 503 {
            resp.headers.push(("Retry-After", "5".to_string()));
        }
        self.respond(c, resp);
    }

    /// The supervisor's channel is closed (it is shutting down): 503.
    pub(super) fn supervisor_gone(&mut self, c: &mut Conn) {
        self.fail_status(c, Side::Internal, 503, "the supervisor is not running");
    }
}

fn exchange_minor(c: &Conn) -> u8 {
    c.exchange.as_ref().map_or(1, |x| x.head.minor)
}

/// Where to reach an instance: its Unix socket when the app listens there.
fn dest(view: &crate::supervisor::InstanceView) -> Dest {
    match &view.socket {
        Some(path) => Dest::Unix(path.clone()),
        None => Dest::Tcp(view.addr),
    }
}
