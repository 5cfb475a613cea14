//! The proxy exchange on one connection: routing a request head to an
//! instance or holding it for the supervisor, the proxy step (request body
//! out, response head and body back), the tunnel after `101`, finishing an
//! exchange, and the answers the front makes itself (`respond`, `fail`).
//!
//! A 5xx the front makes for a client of an app's host says only a short
//! reason and a request id (issue 10): the details (the supervisor's message,
//! an address, an exec error) may be private and go to the log line that
//! carries the same id.
//!
//! Further `impl Worker` methods, called from `pump.rs`. Nothing here blocks.

use crate::config::bounds::later;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use super::{Worker, HEAD_TIMEOUT, IDLE_TIMEOUT};
use crate::front::api::reply::{error_status, Via};
use crate::front::api::Response;
use crate::front::conn::{Conn, Dest, Exchange, Phase};
use crate::front::fault::Side;
use crate::front::machine::{self, Step};
use crate::front::router::{self, Target};
use crate::http::response::{write_canned, Canned, CONTINUE};
use crate::http::RequestHead;
use crate::log::Level;
use crate::names::InstanceKey;
use crate::supervisor::{Command, Reply, State};

/// Slack past `startup_timeout` for a held request, in case the supervisor's
/// own 504 is late.
const HOLD_SLACK: Duration = Duration::from_secs(5);

impl Worker {
    /// A complete request head arrived (in `x`, begun): route it.
    pub(super) fn start_request(&mut self, slot: usize, c: &mut Conn, mut x: Box<Exchange>) {
        if self.published.generation() != self.snap.generation {
            self.snap = self.published.load();
        }
        let head = &x.head;
        let path = head.target().split('?').next().unwrap_or("/");
        // ACME's HTTP-01 challenge, answered by the front itself.
        let answer = path
            .strip_prefix("/.well-known/acme-challenge/")
            .filter(|_| !c.local)
            .and_then(|token| {
                let acme = self.tls.as_ref()?.certs.acme()?;
                acme.http01_answer(token)
            });
        if let Some(key_authorization) = answer {
            c.exchange = Some(x);
            let resp = Response {
                status: 200,
                content_type: "application/octet-stream",
                body: key_authorization.into_bytes(),
                headers: Vec::new(),
            };
            self.respond(c, resp);
            return;
        }
        if let Some(tls) = &self.tls {
            // `redirect_http`: plain HTTP goes to https, except ACME's
            // HTTP-01 challenges, which must be answered over plain HTTP.
            if !c.local
                && !c.client.is_tls()
                && tls.certs.redirect_http()
                && !path.starts_with("/.well-known/acme-challenge/")
            {
                let location = https_location(head, &self.snap.domain, tls.port);
                c.exchange = Some(x);
                let resp = Response {
                    status: 308,
                    content_type: "text/plain",
                    body: format!("moved to {location}\n").into_bytes(),
                    headers: vec![("Location", location)],
                };
                self.respond(c, resp);
                return;
            }
        }
        let target = if c.local {
            Target::Management
        } else {
            router::route(&self.snap, head.host(), path)
        };
        c.deadline = None;
        if !matches!(target, Target::Management | Target::NotFound) && !c.cin.is_empty() {
            // Body bytes that came with the head are checked before anything
            // is forwarded, so a malformed body in the first read reaches no
            // app. Later bytes are checked as they stream.
            let mut probe = x.req_framer.clone();
            if let Err(e) = probe.scan(c.cin.bytes()) {
                c.exchange = Some(x);
                let msg = e.to_string();
                self.fail(c, Side::Client, &msg);
                return;
            }
        }
        match target {
            Target::Management => {
                let expect = x.head.expect_continue;
                let has_body = x.head.body.has_body();
                c.exchange = Some(x);
                if has_body {
                    if expect && exchange_minor(c) >= 1 {
                        c.cout.extend(CONTINUE);
                    }
                    c.phase = Phase::ApiBody;
                    c.deadline = Some(self.now + HEAD_TIMEOUT);
                    self.read_api_body(slot, c);
                } else {
                    self.handle_api(slot, c);
                }
            }
            Target::NotFound => {
                let host = x.head.host().unwrap_or_default().to_owned();
                c.exchange = Some(x);
                self.respond_error(c, 404, &format!("no instance or service for host `{host}`"));
            }
            Target::Instance(index) => {
                c.exchange = Some(x);
                self.go_to_instance(slot, c, index);
            }
            Target::Spawn { service, id } => {
                let key = InstanceKey {
                    service: service.clone(),
                    id,
                };
                x.instance = Some(key.clone());
                c.exchange = Some(x);
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
                x.set_service(service);
                let picked = self.balancer.pick(&self.snap, service, &[]);
                c.exchange = Some(x);
                match picked {
                    Some(index) => self.go_to_instance(slot, c, index),
                    None => {
                        let service = c.exchange.as_ref().and_then(|x| x.service.as_deref());
                        let msg = format!(
                            "no instance of `{}` is available",
                            service.unwrap_or_default()
                        );
                        self.respond_unavailable(c, &msg)
                    }
                }
            }
        }
    }

    /// Sends the request to instance `index` of the current snapshot: at once
    /// if it is running, else held until the supervisor says it is ready.
    pub(super) fn go_to_instance(&mut self, slot: usize, c: &mut Conn, index: usize) {
        let view = &self.snap.instances[index];
        let (addr, state, startup) = (dest(view), view.state, view.startup_timeout);
        if let Some(x) = c.exchange.as_mut() {
            x.request_timeout = view.request_timeout;
            x.tried.push(index);
            x.set_instance(&view.service, &view.id);
            // Replacing a visit (weighted retry) ends the old one unrecorded.
            x.start_visit(&view.stats, self.index, self.now);
        }
        if state == State::Running {
            self.connect(slot, c, addr);
            return;
        }
        let key = InstanceKey {
            service: view.service.clone(),
            id: view.id.clone(),
        };
        match state {
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
            c.deadline = Some(later(self.now, timeout.saturating_add(HOLD_SLACK)));
            if let Some(x) = c.exchange.as_mut() {
                if x.head.expect_continue && !x.req_done && x.head.minor >= 1 && !x.body_sent {
                    // No upstream to ask yet: say 100 ourselves so the client
                    // sends the body while the instance starts, and take
                    // `Expect` off the forwarded request so the app does not
                    // answer a second 100.
                    c.cout.extend(CONTINUE);
                    x.head.expect_continue = false;
                    x.head.remove_header("expect");
                    x.upstream_head.clear();
                }
            }
        } else {
            self.supervisor_gone(c);
        }
    }

    /// `Phase::Proxy`: runs the machine's step and does what it asks of
    /// the loop. Returns whether anything moved.
    pub(super) fn proxy_step(&mut self, slot: usize, c: &mut Conn) -> bool {
        match machine::proxy_step(c, &mut self.scratch, self.now) {
            Step::Idle => false,
            Step::Moved => true,
            Step::Finished { keep_upstream } => {
                if !keep_upstream {
                    self.drop_upstream(c);
                }
                true
            }
            Step::Fail(side, message) => {
                self.fail(c, side, &message);
                true
            }
            Step::Reconnect => {
                let addr = upstream_addr(c);
                self.drop_upstream(c);
                self.connect_fresh(slot, c, addr);
                true
            }
            Step::Refused => {
                let addr = upstream_addr(c);
                self.upstream_refused(c, addr);
                true
            }
            Step::HalfClose { .. } => unreachable!("only the tunnel half-closes"),
        }
    }

    /// `Phase::Tunnel`: runs the machine's step; shuts down writing to the
    /// app once the client has finished sending.
    pub(super) fn tunnel_step(&mut self, c: &mut Conn) -> bool {
        match machine::tunnel_step(c) {
            Step::Idle => false,
            Step::HalfClose { moved } => {
                if let Some(up) = c.upstream.as_ref() {
                    up.stream.shutdown_write();
                }
                moved
            }
            _ => true,
        }
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
                            x.start_visit(&view.stats, self.index, self.now);
                        }
                    }
                }
                self.connect(slot, c, to);
            }
            Reply::Error(e) => {
                let status = error_status(&e, Via::Proxy);
                let message = e.to_string();
                if status == 503 {
                    self.respond_unavailable(c, &message);
                } else {
                    // The instance could not be had (not created, failed to start,
                    // not ready in time): the supervisor chose the status.
                    self.fail_status(c, Side::Upstream, status, &message);
                }
            }
            Reply::Done(_) | Reply::Stream(_) | Reply::Instance(_) | Reply::Body { .. } => {
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
                x.head.method() == "HEAD",
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
        if let Some(x) = c.exchange.take() {
            self.exchanges.give_back(x, self.now);
        }
        c.served += 1;
        c.idle_since = self.now;
        self.drop_used_upstream(c);
        if c.close_after {
            c.phase = Phase::Closing;
            c.deadline = Some(self.now + IDLE_TIMEOUT);
        } else {
            c.phase = Phase::Head;
            c.deadline = Some(self.now + IDLE_TIMEOUT);
        }
    }

    /// A JSON error; keeps the connection when the request was fully read.
    fn respond_error(&mut self, c: &mut Conn, status: u16, message: &str) {
        let resp = Response::error(status, message);
        self.respond(c, resp);
    }

    /// 503 with Retry-After.
    fn respond_unavailable(&mut self, c: &mut Conn, message: &str) {
        let resp = error_answer(c, Level::Debug, "upstream", 503, message);
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
        let resp = error_answer(c, side.level(), &side.to_string(), status, message);
        if !side.keeps_idle_upstream() {
            self.drop_upstream(c);
            c.uin.clear();
            c.uout.clear();
        }
        let started = c.exchange.as_ref().is_some_and(|x| x.resp_started);
        c.close_after = true;
        if started {
            if let Some(x) = c.exchange.take() {
                self.exchanges.give_back(x, self.now);
            }
            self.drop_used_upstream(c);
            c.phase = Phase::Closing;
            return;
        }
        self.respond(c, resp);
    }

    /// The supervisor's channel is closed (it is shutting down): 503.
    pub(super) fn supervisor_gone(&mut self, c: &mut Conn) {
        self.fail_status(c, Side::Internal, 503, "the supervisor is not running");
    }
}

/// Where `redirect_http` sends a plain request: the same host (`domain`
/// when the request named none) and target over https. The parser already
/// took the port off the host and made the target origin-form.
fn https_location(head: &RequestHead, domain: &str, port: u16) -> String {
    let host = head.host().unwrap_or(domain);
    if port == 443 {
        format!("https://{host}{}", head.target())
    } else {
        format!("https://{host}:{port}{}", head.target())
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

/// The attached upstream's address; the machine asks to reconnect or
/// retry only while one is attached.
fn upstream_addr(c: &Conn) -> Dest {
    c.upstream
        .as_ref()
        .map(|u| u.addr.clone())
        .expect("the step saw an attached upstream")
}

/// The error answer for `c`'s request, logged at `level` (at least warn
/// when it gets a request id). For a request routed to an app (a service
/// or an instance) a 5xx is `{"error": short reason, "request_id": id}` with
/// `X-Request-Id`, and `message` goes only to the log line with that id.
/// Everything else (the API, unknown hosts, a client's own mistakes) is
/// `{"error": message}`. A 503 gets `Retry-After`.
fn error_answer(c: &Conn, level: Level, side: &str, status: u16, message: &str) -> Response {
    let routed = c
        .exchange
        .as_ref()
        .and_then(|x| {
            x.instance
                .as_ref()
                .map(InstanceKey::to_string)
                .or_else(|| x.service.clone())
        })
        .filter(|_| status >= 500);
    let mut resp = match &routed {
        None => {
            if crate::log::enabled(level) {
                crate::log::write(
                    level,
                    "front",
                    format_args!("{side} error, answering {status}: {message}"),
                );
            }
            Response::error(status, message)
        }
        Some(target) => {
            let id = request_id();
            // Error stays error; debug and info rise to warn, so the line
            // an operator looks for by its id is there by default.
            let level = level.min(Level::Warn);
            if crate::log::enabled(level) {
                crate::log::write(
                    level,
                    "front",
                    format_args!(
                        "{side} error, answering {status} for {target} request_id={id}: {message}"
                    ),
                );
            }
            let body = serde_json::json!({ "error": public_reason(status), "request_id": id });
            Response::json(status, &body).with_header("X-Request-Id", id)
        }
    };
    if status == 503 {
        resp.headers.push(("Retry-After", "5".to_string()));
    }
    resp
}

/// The short reason an app host's client gets for a status.
fn public_reason(status: u16) -> &'static str {
    match status {
        502 => "the app could not answer",
        503 => "the app is unavailable",
        504 => "the app did not answer in time",
        _ => "the request could not be served",
    }
}

/// A new request id: 16 hex digits, unique within this process and not
/// guessable from the previous one (a counter through a hasher seeded
/// randomly per process).
fn request_id() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    static SEED: std::sync::OnceLock<std::collections::hash_map::RandomState> =
        std::sync::OnceLock::new();
    let mut h = SEED.get_or_init(Default::default).build_hasher();
    h.write_u64(NEXT.fetch_add(1, Ordering::Relaxed));
    format!("{:016x}", h.finish())
}
