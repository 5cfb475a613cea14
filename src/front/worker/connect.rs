//! Connecting a request to its instance: the connection kept from the
//! client's last request, a pooled one, or a new one; queueing the request
//! head; giving upstream connections back (to the pool or closed); and what
//! happens when an instance refuses (the next instance of a service, or the
//! request held until the supervisor restarts it).
//!
//! Further `impl Worker` methods, called from the exchange and the pump.
//! Connects are non-blocking; completion is seen in `pump.rs`.

use crate::config::bounds::later;
use std::io::ErrorKind;
use std::time::Duration;

use mio::Interest;

use super::{token, Worker, KIND_POOL, KIND_UPSTREAM};
use crate::front::conn::{Conn, Dest, Phase, Ready, Upstream};
use crate::front::fault::Side;
use crate::http::{self, Forwarded};
use crate::supervisor::Command;

/// Refused connections one request may meet (an instance crashing again and
/// again) before it is answered 502.
const MAX_REFUSALS: u32 = 20;

impl Worker {
    /// Opens (or reuses) a connection to `addr` and queues the request head.
    pub(super) fn connect(&mut self, slot: usize, c: &mut Conn, addr: Dest) {
        self.connect_with(slot, c, addr, true);
    }

    /// `connect`; with `reuse` false, always on a new connection.
    fn connect_with(&mut self, slot: usize, c: &mut Conn, addr: Dest, reuse: bool) {
        // The connection kept from this client's last request, if it goes to
        // the same instance and is still sound: no syscall at all to reuse.
        let kept = reuse
            && c.upstream.as_ref().is_some_and(|up| {
                up.addr == addr && !up.in_use && up.connected && !up.ready.eof && c.uin.is_empty()
            });
        if kept {
            let up = c.upstream.as_mut().expect("checked just above");
            up.reused = true;
            up.in_use = true;
            self.queue_head(c);
            return;
        }
        self.detach_upstream(c);
        let registry = self.poll.registry();
        let pooled = if reuse { self.pool.take(&addr) } else { None };
        let (stream, reused) = match pooled {
            Some(stream) => (stream, true),
            None => match addr.connect() {
                Ok(stream) => (stream, false),
                // A Unix socket refuses at once (or is gone while the app
                // restarts, or its accept queue is full for the moment): the
                // same as a refused TCP connect.
                Err(e)
                    if matches!(
                        e.kind(),
                        ErrorKind::ConnectionRefused | ErrorKind::NotFound | ErrorKind::WouldBlock
                    ) =>
                {
                    self.upstream_refused(c, addr);
                    return;
                }
                Err(e) => {
                    self.fail(c, Side::Upstream, &format!("cannot connect to {addr}: {e}"));
                    return;
                }
            },
        };
        let mut up = Upstream {
            stream,
            addr: addr.clone(),
            connected: reused,
            reused,
            ready: Ready {
                readable: reused,
                writable: reused,
                eof: false,
                hup: false,
            },
            in_use: true,
        };
        // A pooled connection is still registered under its pool token.
        let interests = Interest::READABLE | Interest::WRITABLE;
        let watched = if reused {
            registry.reregister(&mut up.stream, token(slot, KIND_UPSTREAM), interests)
        } else {
            registry.register(&mut up.stream, token(slot, KIND_UPSTREAM), interests)
        };
        if let Err(e) = watched {
            self.fail(
                c,
                Side::Internal,
                &format!("cannot watch connection to {addr}: {e}"),
            );
            return;
        }
        c.upstream = Some(up);
        self.queue_head(c);
    }

    /// Queues the request head for the upstream and enters the proxy phase.
    fn queue_head(&mut self, c: &mut Conn) {
        let x = c
            .exchange
            .as_mut()
            .expect("connect is only called while serving a request");
        if x.upstream_head.is_empty() {
            let fwd = Forwarded {
                client_ip: c.peer_ip,
                proto: if c.client.is_tls() { "https" } else { "http" },
                trusted: crate::config::any_contains(&self.snap.trusted_proxies, c.peer_ip),
            };
            http::write_request_head(&x.head, &fwd, &mut x.upstream_head);
        }
        c.uin.clear();
        c.uout.clear();
        c.uout.extend(&x.upstream_head);
        c.phase = Phase::Proxy;
        c.deadline = Some(later(self.now, x.request_timeout));
    }

    /// Drops the attached upstream connection: an idle sound one goes to the
    /// pool for other clients, anything else is closed.
    pub(super) fn detach_upstream(&mut self, c: &mut Conn) {
        let Some(up) = c.upstream.take() else { return };
        let registry = self.poll.registry();
        if !up.in_use && up.connected && !up.ready.eof && c.uin.is_empty() {
            let addr = up.addr;
            self.pool
                .put(registry, up.stream, addr, self.now, |s| token(s, KIND_POOL));
        } else {
            let mut stream = up.stream;
            let _ = registry.deregister(&mut stream);
        }
        c.uin.clear();
    }

    /// Closes the attached upstream connection, whatever its state.
    pub(super) fn drop_upstream(&mut self, c: &mut Conn) {
        if let Some(mut up) = c.upstream.take() {
            let _ = self.poll.registry().deregister(&mut up.stream);
        }
    }

    /// Drops the upstream if the current exchange was using it (it is in an
    /// unknown state after an error); an idle attached one is kept.
    pub(super) fn drop_used_upstream(&mut self, c: &mut Conn) {
        if c.upstream.as_ref().is_some_and(|u| u.in_use) {
            self.drop_upstream(c);
            c.uin.clear();
            c.uout.clear();
        }
    }

    /// The upstream at `addr` refused the connection (or a reused one was
    /// dead before answering): let it go and enter `Phase::Retry`, which the
    /// pump hands to `retry` on its next turn.
    pub(super) fn upstream_refused(&mut self, c: &mut Conn, addr: Dest) {
        self.drop_upstream(c);
        c.uin.clear();
        c.uout.clear();
        let x = c
            .exchange
            .as_mut()
            .expect("an upstream exists only while serving a request");
        x.refused_by = Some(addr);
        c.phase = Phase::Retry;
    }

    /// `Phase::Retry`: the next instance of a weighted service, or the
    /// request held until the supervisor has the instance back, or 502 once
    /// body bytes went out or refusals ran out. Every way out leaves
    /// `Phase::Retry`; a refusal on the next try comes back here through the
    /// pump, never by recursion.
    pub(super) fn retry(&mut self, slot: usize, c: &mut Conn) {
        let x = c.exchange.as_mut().expect("retry phase has an exchange");
        if x.body_sent {
            self.fail(c, Side::Upstream, "upstream closed the connection");
            return;
        }
        if let Some(service) = x.service.clone() {
            // Weighted routing: skip an instance that refuses and try the next.
            if let Some(index) = self.balancer.pick(&self.snap, &service, &x.tried) {
                self.go_to_instance(slot, c, index);
                return;
            }
        }
        // The instance probably just crashed: hold the request while the
        // supervisor notices and restarts it, rather than answer 502.
        x.refusals += 1;
        if x.refusals <= MAX_REFUSALS {
            if let Some(key) = x.instance.clone() {
                let startup = self
                    .snap
                    .get(&key.service, &key.id)
                    .map_or(Duration::from_secs(10), |v| v.startup_timeout);
                self.hold(slot, c, Command::Refused { key }, startup);
                return;
            }
        }
        let addr = x
            .refused_by
            .as_ref()
            .map(Dest::to_string)
            .unwrap_or_default();
        let msg = format!("instance at {addr} refused the connection");
        self.fail(c, Side::Upstream, &msg);
    }

    /// Retries on a new connection (a kept or pooled one turned out closed).
    pub(super) fn connect_fresh(&mut self, slot: usize, c: &mut Conn, addr: Dest) {
        self.connect_with(slot, c, addr, false);
    }
}
