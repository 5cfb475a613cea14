//! The proxy exchange as a state machine over a connection's buffers: given
//! the bytes in `cin` and `uin` and what is known of both sockets, it moves
//! the request body and the response along (into `uout` and `cout`),
//! changes the phase, and says as a `Step` what only the loop can do
//! (connect again, answer an error, give back the upstream).
//!
//! No sockets, no poll: the connection is generic over its sockets, and
//! the tests below drive it with none. The clock is passed in. Called by
//! `worker/exchange.rs` for `Phase::Proxy` and `Phase::Tunnel`.

use std::time::Instant;

use super::conn::{Conn, Phase, MAX_BUF};
use super::fault::Side;
use super::worker::IDLE_TIMEOUT;
use crate::http::{self, BodyKind, Framer};

/// What a step did, and what it needs from the loop.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    /// Nothing moved.
    Idle,
    /// Bytes moved or the phase changed.
    Moved,
    /// The exchange is over (`finish` ran); the loop closes the attached
    /// upstream unless `keep_upstream`.
    Finished { keep_upstream: bool },
    /// Answer this error (or just close, if the response started).
    Fail(Side, String),
    /// A kept or pooled connection was closed by the app before it saw the
    /// request: connect again, on a new connection to the same address.
    Reconnect,
    /// The upstream went away before answering a request that is safe to
    /// send again: handle it like a refused connection (`Phase::Retry`).
    Refused,
    /// Tunnel: the client finished sending and all of it went out; shut
    /// down writing to the upstream so the app sees the end too. `moved`:
    /// bytes moved as well.
    HalfClose { moved: bool },
}

/// `Phase::Proxy`: request body out, response head and body back, at
/// `now` (the loop's clock).
pub fn proxy_step<C, S>(c: &mut Conn<C, S>, scratch: &mut Vec<u8>, now: Instant) -> Step {
    let mut progress = false;
    let x = c.exchange.as_mut().expect("proxy phase has an exchange");

    // Request body: client -> upstream, as framed. Only once connected:
    // until then the body stays with the client side, so a refused
    // connection can be retried elsewhere without losing it.
    let connected = c.upstream.as_ref().is_some_and(|u| u.connected);
    if connected && !x.req_done && !c.cin.is_empty() && c.uout.len() < MAX_BUF {
        let result = if x.head.body == BodyKind::Chunked {
            // Copied through `forward`, which drops trailer fields that
            // must not be trailers (issue 10).
            scratch.clear();
            let r = x.req_framer.forward(c.cin.bytes(), scratch);
            if let Ok(scan) = &r {
                c.uout.extend(scratch);
                c.cin.consume(scan.used);
            }
            r
        } else {
            x.req_framer
                .scan(c.cin.bytes())
                .inspect(|scan| c.uout.take_from(&mut c.cin, scan.used))
        };
        match result {
            Ok(scan) => {
                if scan.used > 0 {
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
                    c.deadline = Some(now + x.request_timeout);
                }
            }
            Err(e) => return Step::Fail(Side::Client, e.to_string()),
        }
    }
    if !x.req_done && c.ready.eof && c.cin.is_empty() {
        // The client went away mid-body.
        c.phase = Phase::Closing;
        c.cout = Default::default();
        return Step::Moved;
    }

    // Response head.
    if x.resp_framer.is_none() && !c.uin.is_empty() {
        let head_req = x.head.method() == "HEAD";
        match http::head::parse_response_into(c.uin.bytes(), head_req, &mut x.resp) {
            Ok(Some(len)) => {
                let resp = &x.resp;
                progress = true;
                if resp.status >= 100 && resp.status < 200 && resp.status != 101 {
                    // Interim response: relay to 1.1 clients, then wait for the real one.
                    if x.head.minor >= 1 {
                        c.cout.extend(&c.uin.bytes()[..len]);
                    }
                    c.uin.consume(len);
                    return Step::Moved;
                }
                if resp.status == 101 && !x.head.upgrade {
                    // A switch the client never asked for: relaying it would
                    // leave both sides guessing what the connection now
                    // carries (issue 10). The upstream is not reused.
                    debug!(
                        "front",
                        "the instance answered 101 to a request without Upgrade"
                    );
                    x.resp_keep_alive = false;
                    return Step::Fail(
                        Side::Upstream,
                        "the instance sent a malformed response".into(),
                    );
                }
                c.uin.consume(len);
                x.resp_started = true;
                if let Some(v) = x.visit.as_mut() {
                    v.status = resp.status;
                }
                c.deadline = None;
                if resp.status == 101 && x.head.upgrade {
                    scratch.clear();
                    http::write_response_head(resp, x.head.minor, true, false, scratch);
                    c.cout.extend(scratch);
                    c.phase = Phase::Tunnel;
                    return Step::Moved;
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
                x.resp_chunked = resp.body == BodyKind::Chunked;
                if !client_keep {
                    c.close_after = true;
                }
                scratch.clear();
                http::write_response_head(resp, x.head.minor, client_keep, dechunk, scratch);
                c.cout.extend(scratch);
                x.resp_framer = Some(Framer::new(resp.body));
            }
            Ok(None) => {}
            Err(e) => {
                debug!("front", "bad response from upstream: {e}");
                return Step::Fail(
                    Side::Upstream,
                    "the instance sent a malformed response".into(),
                );
            }
        }
    }

    // Response body: upstream -> client, as framed.
    if let Some(framer) = x.resp_framer.as_mut() {
        if !framer.is_done() && !c.uin.is_empty() && c.cout.len() < MAX_BUF {
            let result = if x.dechunk {
                scratch.clear();
                let r = framer.decode(c.uin.bytes(), scratch);
                c.cout.extend(scratch);
                r.inspect(|scan| c.uin.consume(scan.used))
            } else if x.resp_chunked {
                // Trailers the client must not believe are dropped.
                scratch.clear();
                let r = framer.forward(c.uin.bytes(), scratch);
                c.cout.extend(scratch);
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
                    return Step::Moved;
                }
            }
        }
        if framer.is_done() {
            if !x.req_done {
                // The app answered before reading the whole body: the rest
                // of the body cannot be told from a next request, so close
                // after.
                c.close_after = true;
                x.resp_keep_alive = false;
            }
            return finish(c, now);
        }
    }

    // Upstream closed.
    let up_eof = c.upstream.as_ref().is_some_and(|u| u.ready.eof);
    if up_eof && c.uin.is_empty() {
        match x.resp_framer.as_ref() {
            None => {
                let reused = c.upstream.as_ref().is_some_and(|u| u.reused);
                if reused && !x.body_sent {
                    // A pooled connection the app had closed: retry on a fresh one.
                    return Step::Reconnect;
                }
                if !x.body_sent && matches!(x.head.method(), "GET" | "HEAD" | "OPTIONS") {
                    // Reset before any answer: the app died with the
                    // request (a killed multi-threaded app keeps its
                    // socket until its last thread exits). A safe request
                    // is retried like a refused connection: the next
                    // instance, or held until this one is back.
                    return Step::Refused;
                }
                return Step::Fail(
                    Side::Upstream,
                    "the instance closed the connection without answering".into(),
                );
            }
            Some(framer) => {
                if !framer.is_done() {
                    // Close-delimited bodies end here; a length or chunked
                    // body cut short cannot be repaired: close the client too.
                    c.close_after = true;
                    x.resp_keep_alive = false;
                    return finish(c, now);
                }
            }
        }
    }
    if progress {
        Step::Moved
    } else {
        Step::Idle
    }
}

/// The response is complete: the exchange ends, and the connection waits
/// for the next request or closes. The attached upstream stays for this
/// client's next request when it may be reused (`keep_upstream`).
pub fn finish<C, S>(c: &mut Conn<C, S>, now: Instant) -> Step {
    let mut x = c
        .exchange
        .take()
        .expect("finishing an exchange that exists");
    let reusable = x.resp_keep_alive && x.req_done && c.uin.is_empty();
    let keep_upstream = match c.upstream.as_mut() {
        // Kept attached for this client's next request (see `connect`).
        Some(up) if reusable && !up.ready.eof => {
            up.in_use = false;
            true
        }
        Some(_) => false,
        None => true,
    };
    c.uin.clear();
    c.uout.clear();
    c.served += 1;
    c.idle_since = now;
    c.phase = if c.close_after {
        Phase::Closing
    } else {
        Phase::Head
    };
    c.deadline = Some(now + IDLE_TIMEOUT);
    // The request's visit ends now; the loop reuses the rest.
    x.end_visit(now);
    c.ended = Some(x);
    Step::Finished { keep_upstream }
}

/// `Phase::Tunnel`, after `101`: bytes both ways until both sides are done.
pub fn tunnel_step<C, S>(c: &mut Conn<C, S>) -> Step {
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
        return Step::Moved;
    }
    if c.ready.eof && c.cin.is_empty() && c.uout.is_empty() && c.upstream.is_some() {
        return Step::HalfClose { moved: progress };
    }
    if progress {
        Step::Moved
    } else {
        Step::Idle
    }
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr};

    use super::*;
    use crate::front::conn::{Buf, Dest, Exchange, Ready, Upstream};

    /// A connection in `Phase::Proxy` for `request`, with an upstream that
    /// is connected (no sockets: both are `()`). Bytes after the head stay
    /// in `cin`, as the loop leaves them.
    fn proxying(request: &str) -> Conn<(), ()> {
        let (head, len) = http::head::parse_request(request.as_bytes())
            .expect("a valid request")
            .expect("a complete head");
        let mut c = Conn::new((), IpAddr::V4(Ipv4Addr::LOCALHOST), false, 1);
        c.cin.extend(&request.as_bytes()[len..]);
        c.exchange = Some(Box::new(Exchange::new(head)));
        c.upstream = Some(Upstream {
            stream: (),
            addr: Dest::Tcp("127.0.0.1:9".parse().expect("an address")),
            connected: true,
            reused: false,
            ready: Ready::default(),
            in_use: true,
        });
        c.phase = Phase::Proxy;
        c
    }

    fn step(c: &mut Conn<(), ()>) -> Step {
        proxy_step(c, &mut Vec::new(), Instant::now())
    }

    /// Feeds `bytes` from the app and steps until nothing moves.
    fn from_app(c: &mut Conn<(), ()>, bytes: &str) -> Step {
        c.uin.extend(bytes.as_bytes());
        loop {
            match step(c) {
                Step::Moved => continue,
                other => return other,
            }
        }
    }

    /// Takes what the machine queued for the client.
    fn to_client(c: &mut Conn<(), ()>) -> String {
        take(&mut c.cout)
    }

    fn take(buf: &mut Buf) -> String {
        let text = String::from_utf8_lossy(buf.bytes()).into_owned();
        buf.clear();
        text
    }

    fn upstream_eof(c: &mut Conn<(), ()>) {
        c.upstream.as_mut().expect("attached").ready.eof = true;
    }

    #[test]
    fn response_split_anywhere_is_relayed_once_and_ends_the_exchange() {
        let response = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello";
        for split in 1..response.len() {
            let mut c = proxying("GET / HTTP/1.1\r\nHost: a\r\n\r\n");
            assert_eq!(from_app(&mut c, &response[..split]), Step::Idle, "{split}");
            let last = from_app(&mut c, &response[split..]);
            assert_eq!(
                last,
                Step::Finished {
                    keep_upstream: true
                },
                "{split}"
            );
            assert_eq!(to_client(&mut c), response, "{split}");
            assert_eq!(c.phase, Phase::Head, "{split}");
            assert!(c.exchange.is_none());
            assert!(!c.close_after);
            assert_eq!(c.served, 1);
            let up = c.upstream.as_ref().expect("kept for the next request");
            assert!(!up.in_use);
        }
    }

    #[test]
    fn request_body_waits_for_the_connect_then_goes_out_as_framed() {
        let mut c = proxying(
            "POST /u HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\n\r\nbodyGET /next HTTP/1.1\r\n",
        );
        c.upstream.as_mut().expect("attached").connected = false;
        assert_eq!(step(&mut c), Step::Idle);
        assert!(c.uout.is_empty(), "nothing goes out before the connect");
        c.upstream.as_mut().expect("attached").connected = true;
        assert_eq!(step(&mut c), Step::Moved);
        assert_eq!(take(&mut c.uout), "body");
        // The next request stays for the client side.
        assert_eq!(take(&mut c.cin), "GET /next HTTP/1.1\r\n");
        let x = c.exchange.as_ref().expect("still serving");
        assert!(x.req_done && x.body_sent);
        assert!(c.deadline.is_some(), "the wait for the answer starts now");
    }

    #[test]
    fn a_malformed_request_body_is_the_clients_fault() {
        let mut c =
            proxying("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n");
        match step(&mut c) {
            Step::Fail(Side::Client, _) => {}
            other => panic!("expected a client error, got {other:?}"),
        }
    }

    #[test]
    fn interim_responses_reach_only_http11_clients() {
        let interim = "HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\n";
        let mut c = proxying("GET / HTTP/1.1\r\nHost: a\r\n\r\n");
        assert_eq!(from_app(&mut c, interim), Step::Idle);
        assert_eq!(to_client(&mut c), interim);
        assert!(!c.exchange.as_ref().expect("serving").resp_started);

        let mut c = proxying("GET / HTTP/1.0\r\nHost: a\r\n\r\n");
        assert_eq!(from_app(&mut c, interim), Step::Idle);
        assert_eq!(to_client(&mut c), "");
    }

    #[test]
    fn switching_protocols_turns_into_a_tunnel_both_ways() {
        let mut c = proxying(
            "GET /ws HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n",
        );
        from_app(
            &mut c,
            "HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\nhi",
        );
        assert_eq!(c.phase, Phase::Tunnel);
        let head = to_client(&mut c);
        assert!(
            head.starts_with("HTTP/1.1 101 Switching Protocols\r\n"),
            "{head}"
        );
        assert!(c.deadline.is_none(), "a tunnel has no answer deadline");

        assert_eq!(tunnel_step(&mut c), Step::Moved);
        assert_eq!(to_client(&mut c), "hi");
        c.cin.extend(b"ping");
        assert_eq!(tunnel_step(&mut c), Step::Moved);
        assert_eq!(take(&mut c.uout), "ping");
        assert_eq!(tunnel_step(&mut c), Step::Idle);

        // The client is done sending: the app is told, the tunnel stays.
        c.ready.eof = true;
        assert_eq!(tunnel_step(&mut c), Step::HalfClose { moved: false });
        // The app is done: write what is left, then close.
        upstream_eof(&mut c);
        c.uin.extend(b"bye");
        assert_eq!(tunnel_step(&mut c), Step::Moved);
        assert_eq!(to_client(&mut c), "bye");
        assert_eq!(tunnel_step(&mut c), Step::Moved);
        assert_eq!(c.phase, Phase::Closing);
        assert!(c.close_after);
    }

    #[test]
    fn a_chunked_answer_to_an_http10_client_is_unchunked_and_closes() {
        let mut c = proxying("GET / HTTP/1.0\r\nHost: a\r\nConnection: keep-alive\r\n\r\n");
        let last = from_app(
            &mut c,
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
        );
        assert_eq!(
            last,
            Step::Finished {
                keep_upstream: true
            }
        );
        let out = to_client(&mut c);
        assert!(out.starts_with("HTTP/1.0 200 OK\r\n"), "{out}");
        assert!(!out.contains("Transfer-Encoding"), "{out}");
        assert!(out.ends_with("\r\n\r\nabcde"), "{out}");
        assert_eq!(c.phase, Phase::Closing);
    }

    #[test]
    fn an_answer_before_the_whole_body_closes_both_connections_after() {
        let mut c = proxying("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nabc");
        assert_eq!(step(&mut c), Step::Moved);
        let last = from_app(
            &mut c,
            "HTTP/1.1 413 Content Too Large\r\nContent-Length: 0\r\n\r\n",
        );
        assert_eq!(
            last,
            Step::Finished {
                keep_upstream: false
            }
        );
        assert!(to_client(&mut c).contains("Connection: close\r\n"));
        assert_eq!(c.phase, Phase::Closing);
    }

    #[test]
    fn a_close_delimited_body_ends_with_the_upstream() {
        let mut c = proxying("GET / HTTP/1.1\r\nHost: a\r\n\r\n");
        assert_eq!(from_app(&mut c, "HTTP/1.1 200 OK\r\n\r\npart"), Step::Idle);
        upstream_eof(&mut c);
        assert_eq!(
            from_app(&mut c, " two"),
            Step::Finished {
                keep_upstream: false
            }
        );
        let out = to_client(&mut c);
        assert!(out.contains("Connection: close\r\n"), "{out}");
        assert!(out.ends_with("part two"), "{out}");
        assert_eq!(c.phase, Phase::Closing);
    }

    #[test]
    fn an_upstream_gone_before_answering_is_retried_only_when_safe() {
        // A kept or pooled connection the app had closed: a new one.
        let mut c = proxying("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\n\r\n");
        c.upstream.as_mut().expect("attached").reused = true;
        upstream_eof(&mut c);
        assert_eq!(step(&mut c), Step::Reconnect);

        // A fresh connection reset under a safe request: like a refusal.
        let mut c = proxying("GET / HTTP/1.1\r\nHost: a\r\n\r\n");
        upstream_eof(&mut c);
        assert_eq!(step(&mut c), Step::Refused);

        // Body bytes went out: sending again could repeat a side effect.
        let mut c = proxying("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\n\r\nx");
        assert_eq!(step(&mut c), Step::Moved);
        upstream_eof(&mut c);
        match step(&mut c) {
            Step::Fail(Side::Upstream, message) => {
                assert!(message.contains("without answering"), "{message}")
            }
            other => panic!("expected an upstream error, got {other:?}"),
        }
    }

    #[test]
    fn a_malformed_response_is_the_upstreams_fault() {
        let mut c = proxying("GET / HTTP/1.1\r\nHost: a\r\n\r\n");
        match from_app(&mut c, "garbage\r\n\r\n") {
            Step::Fail(Side::Upstream, _) => {}
            other => panic!("expected an upstream error, got {other:?}"),
        }
        assert_eq!(to_client(&mut c), "", "nothing reached the client");
    }

    #[test]
    fn a_client_gone_mid_body_closes_without_an_answer() {
        let mut c = proxying("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nabc");
        assert_eq!(step(&mut c), Step::Moved);
        c.ready.eof = true;
        assert_eq!(step(&mut c), Step::Moved);
        assert_eq!(c.phase, Phase::Closing);
        assert_eq!(to_client(&mut c), "");
    }
}
