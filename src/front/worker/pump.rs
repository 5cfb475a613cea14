//! Pumping one connection: reads from the client while there is room,
//! hands the bytes to the step for the connection's phase, completes the
//! upstream connect, writes and reads the upstream socket, writes to the
//! client, and repeats until nothing moves. Buffers get their storage here
//! and give it back between requests.
//!
//! Further `impl Worker` methods; the loop in `worker.rs` calls `pump` when a
//! socket is ready or a reply or timer queued bytes. Every socket is
//! non-blocking: a call that would block ends the turn.

use std::io::ErrorKind;

use super::{Worker, HEAD_TIMEOUT};
use crate::front::conn::{Conn, Phase, MAX_BUF};
use crate::front::fault::Side;
use crate::http;

impl Worker {
    /// Returns false when the connection is finished and must be closed.
    pub(super) fn pump(&mut self, slot: usize, c: &mut Conn) -> bool {
        for buf in [&mut c.cin, &mut c.cout, &mut c.uin, &mut c.uout] {
            self.spare.supply(buf);
        }
        let keep = self.pump_inner(slot, c);
        if let Some(x) = c.ended.take() {
            self.exchanges.give_back(x, self.now);
        }
        let between = !keep || (c.phase == Phase::Head && c.cin.is_empty() && c.cout.is_empty());
        for buf in [&mut c.cin, &mut c.cout, &mut c.uin, &mut c.uout] {
            if between {
                // Between requests (or closing): all storage goes back to the loop.
                self.spare.reclaim(buf);
            } else {
                // Waiting in the middle of an exchange: empty buffers go back
                // too, so a busy connection holds only the bytes in flight.
                self.spare.reclaim_small(buf);
            }
        }
        keep
    }

    fn pump_inner(&mut self, slot: usize, c: &mut Conn) -> bool {
        loop {
            let mut progress = false;

            // Read from the client while there is room (backpressure otherwise).
            if c.ready.readable
                && !c.ready.eof
                && c.phase != Phase::Closing
                && c.cin.len() < MAX_BUF
            {
                match c.cin.read_from(&mut c.client) {
                    Ok((0, _)) => {
                        c.ready.eof = true;
                        progress = true;
                    }
                    Ok((_, drained)) => {
                        c.ready.readable = !drained || c.ready.hup;
                        progress = true;
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => c.ready.readable = false,
                    Err(e) if e.kind() == ErrorKind::Interrupted => {}
                    Err(_) => return false,
                }
            }

            match c.phase {
                Phase::Head => {
                    if !c.cin.is_empty() {
                        if c.served > 0 && c.deadline.is_some_and(|d| d > self.now + HEAD_TIMEOUT) {
                            // First byte of a keep-alive request: the head timeout starts now.
                            c.deadline = Some(self.now + HEAD_TIMEOUT);
                        }
                        // Parsed into a finished exchange's storage: no allocation.
                        let mut x = self.exchanges.take();
                        match http::head::parse_request_into(c.cin.bytes(), &mut x.head) {
                            Ok(Some(len)) => {
                                c.cin.consume(len);
                                x.begin(self.now);
                                self.start_request(slot, c, x);
                                progress = true;
                            }
                            Ok(None) => self.exchanges.give_back(x, self.now),
                            Err(e) => {
                                self.exchanges.give_back(x, self.now);
                                let msg = e.to_string();
                                // The parser knows the precise status (413, 414, 431, 501...).
                                self.fail_status(c, Side::Client, e.status(), &msg);
                                progress = true;
                            }
                        }
                    }
                    if c.phase == Phase::Head && c.ready.eof {
                        return false;
                    }
                }
                Phase::ApiBody => {
                    if !c.cin.is_empty() {
                        progress |= self.read_api_body(slot, c);
                    } else if c.ready.eof {
                        return false;
                    }
                }
                Phase::Proxy => progress |= self.proxy_step(slot, c),
                Phase::Tunnel => progress |= self.tunnel_step(c),
                Phase::Retry => {
                    self.retry(slot, c);
                    progress = true;
                }
                Phase::Waiting => {
                    if c.ready.eof && c.cin.is_empty() {
                        // The client gave up while its request was held.
                        return false;
                    }
                }
                Phase::Streaming => {
                    if c.ready.eof {
                        return false;
                    }
                    // Nothing a client sends on an event stream matters.
                    let n = c.cin.len();
                    c.cin.consume(n);
                }
                Phase::Closing => {}
            }

            // Upstream: write what is queued, read what arrived.
            if let Some(up) = c.upstream.as_mut() {
                if !up.connected && (up.ready.writable || up.ready.readable) {
                    match up.stream.connect_result() {
                        Some(Ok(())) => {
                            up.connected = true;
                            progress = true;
                        }
                        Some(Err(_)) => {
                            let addr = up.addr.clone();
                            self.upstream_refused(c, addr);
                            continue;
                        }
                        None => {
                            up.ready.writable = false;
                            up.ready.readable = false;
                        }
                    }
                }
            }
            if let Some(up) = c.upstream.as_mut() {
                if up.connected && up.ready.writable && !c.uout.is_empty() {
                    match c.uout.write_to(&mut up.stream) {
                        Ok((n, short)) => {
                            if let Some(v) = c.exchange.as_ref().and_then(|x| x.visit.as_ref()) {
                                v.bytes_in(n);
                            }
                            up.ready.writable = !short;
                            progress = true;
                        }
                        Err(e) if e.kind() == ErrorKind::WouldBlock => up.ready.writable = false,
                        Err(e) if e.kind() == ErrorKind::Interrupted => {}
                        Err(_) => {
                            up.ready.eof = true;
                            c.uout.consume(c.uout.len());
                            progress = true;
                        }
                    }
                }
            }
            if let Some(up) = c.upstream.as_mut() {
                if up.connected
                    && up.ready.readable
                    && !up.ready.eof
                    && c.uin.len() < MAX_BUF
                    && c.cout.len() < MAX_BUF
                {
                    match c.uin.read_from(&mut up.stream) {
                        Ok((0, _)) => {
                            up.ready.eof = true;
                            progress = true;
                        }
                        Ok((n, drained)) => {
                            if let Some(v) = c.exchange.as_ref().and_then(|x| x.visit.as_ref()) {
                                v.bytes_out(n);
                            }
                            up.ready.readable = !drained || up.ready.hup;
                            progress = true;
                        }
                        Err(e) if e.kind() == ErrorKind::WouldBlock => up.ready.readable = false,
                        Err(e) if e.kind() == ErrorKind::Interrupted => {}
                        Err(_) => {
                            up.ready.eof = true;
                            progress = true;
                        }
                    }
                }
            }

            // An idle attached upstream that closed or spoke out of turn is
            // of no further use: let it go now rather than at the next request.
            if c.upstream
                .as_ref()
                .is_some_and(|u| !u.in_use && (u.ready.eof || !c.uin.is_empty()))
            {
                self.drop_upstream(c);
                c.uin.clear();
            }

            // Write to the client.
            // Over TLS, encrypted bytes may wait with `cout` already empty;
            // writing nothing flushes them.
            if c.ready.writable && (!c.cout.is_empty() || c.client.has_pending()) {
                if c.phase == Phase::Closing {
                    // Over TLS, close_notify leaves with the last bytes.
                    c.client.last_bytes();
                }
                match c.cout.write_to(&mut c.client) {
                    Ok((_, short)) => {
                        c.ready.writable = !short;
                        progress = true;
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => c.ready.writable = false,
                    Err(e) if e.kind() == ErrorKind::Interrupted => {}
                    Err(_) => return false,
                }
            }

            if c.phase == Phase::Closing && c.cout.is_empty() && !c.client.has_pending() {
                return false;
            }
            if !progress {
                return true;
            }
        }
    }
}
