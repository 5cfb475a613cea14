//! Heads written for the other side of the proxy: the request head sent
//! upstream (hop-by-hop fields dropped, `X-Forwarded-For/-Proto/-Host` added
//! or, from a peer in `trusted_proxies`, kept), the client address those
//! headers vouch for, and the response head sent to the client (version,
//! framing and `Connection` fitted to that client). Lines that cross as
//! they came (`name: value\r\n` in the head's bytes, one after the other)
//! are copied as one slice. Pure: no I/O.

use super::append::append;
use super::fields::{Field, Fields, Name, Span};
use super::head::{trim_ows, BodyKind, RequestHead, ResponseHead};
use super::hop::crosses;

/// What the proxy adds when forwarding a request.
pub struct Forwarded<'a> {
    /// The TCP peer's address, appended to X-Forwarded-For.
    pub client_ip: std::net::IpAddr,
    /// "http" or "https".
    pub proto: &'a str,
    /// The peer is in `trusted_proxies`: its X-Forwarded-Proto and
    /// X-Forwarded-Host are passed on instead of ours.
    pub trusted: bool,
}

/// The address of the client behind a request: the TCP `peer`, or, when the
/// peer is in `trusted`, the rightmost X-Forwarded-For address that is not
/// itself a trusted proxy (addresses further left were written by the client
/// and prove nothing). An entry that is not an address stops the walk at the
/// proxy that wrote it. Used to count failed authentications per client.
pub fn client_address(
    head: &RequestHead,
    peer: std::net::IpAddr,
    trusted: &[crate::config::Cidr],
) -> std::net::IpAddr {
    let mut client = peer;
    if !crate::config::any_contains(trusted, client) {
        return client;
    }
    let fields = head.fields();
    let hops = fields
        .list()
        .iter()
        .rev()
        .filter(|f| f.kind == Name::XForwardedFor)
        .flat_map(|f| fields.get(f.value).rsplit(|&b| b == b','));
    for hop in hops {
        let hop = trim_ows(hop);
        if hop.is_empty() {
            continue;
        }
        let Some(ip) = std::str::from_utf8(hop)
            .ok()
            .and_then(|t| t.parse::<std::net::IpAddr>().ok())
        else {
            break;
        };
        client = ip;
        if !crate::config::any_contains(trusted, ip) {
            break;
        }
    }
    client
}

/// Appends `ip` as text. An IPv4 address (nearly every client) is written
/// digit by digit: through `fmt` it would cost a dozen tiny copies per
/// request.
fn push_ip(out: &mut Vec<u8>, ip: std::net::IpAddr) {
    match ip {
        std::net::IpAddr::V4(v4) => {
            let mut text = [0u8; 15];
            let mut n = 0;
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    text[n] = b'.';
                    n += 1;
                }
                if octet >= 100 {
                    text[n] = b'0' + octet / 100;
                    n += 1;
                }
                if octet >= 10 {
                    text[n] = b'0' + octet / 10 % 10;
                    n += 1;
                }
                text[n] = b'0' + octet % 10;
                n += 1;
            }
            append(out, &text[..n]);
        }
        std::net::IpAddr::V6(v6) => {
            use std::io::Write;
            write!(out, "{v6}").expect("writing to a Vec cannot fail");
        }
    }
}

fn push_header(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    append(out, name);
    out.extend_from_slice(b": ");
    append(out, value);
    out.extend_from_slice(b"\r\n");
}

/// Lines of a head waiting to be copied out together: the range of its
/// bytes from the first to the end of the last.
#[derive(Default)]
struct Run(Option<Span>);

impl Run {
    /// Writes field `f` of `fields`: added to the run when its line is in
    /// its plain form right after the run's end, else after the run.
    fn field(&mut self, fields: &Fields, f: &Field, out: &mut Vec<u8>) {
        if f.line_end == 0 {
            self.flush(fields, out);
            push_header(out, fields.get(f.name), fields.get(f.value));
            return;
        }
        match &mut self.0 {
            Some(run) if run.end == f.name.start => run.end = f.line_end,
            _ => {
                self.flush(fields, out);
                self.0 = Some(Span {
                    start: f.name.start,
                    end: f.line_end,
                });
            }
        }
    }

    fn flush(&mut self, fields: &Fields, out: &mut Vec<u8>) {
        if let Some(run) = self.0.take() {
            append(out, fields.get(run));
        }
    }
}

/// Writes the head to send upstream: request line (always HTTP/1.1), headers
/// minus hop-by-hop ones (Connection, Keep-Alive, Proxy-Connection, TE,
/// Trailer, Upgrade unless `head.upgrade`, and those named in Connection),
/// keeping Transfer-Encoding/Content-Length as framing requires, plus
/// X-Forwarded-For (appended), X-Forwarded-Proto, X-Forwarded-Host, and
/// `Connection: upgrade` + `Upgrade` when upgrading.
///
/// X-Forwarded-Proto and X-Forwarded-Host from the client are kept only when
/// `fwd.trusted` (the peer is in `trusted_proxies`, such as the Caddy that
/// `ten caddy` sets up); from anyone else they are replaced by ours, so a
/// client cannot forge them. Everything else passes in order, with its
/// original case.
pub fn write_request_head(head: &RequestHead, fwd: &Forwarded<'_>, out: &mut Vec<u8>) {
    let fields = head.fields();
    let list = fields.list();
    let trusted = fwd.trusted;
    let last_xff = list
        .iter()
        .rposition(|f| f.kind == Name::XForwardedFor && crosses(f, fields, head.upgrade));

    out.reserve(fields.size() + 128);
    let mut run = Run::default();
    if head.line_end() != 0 {
        run.0 = Some(Span {
            start: 0,
            end: head.line_end(),
        });
    } else {
        append(out, fields.get(head.method_span()));
        out.push(b' ');
        append(out, fields.get(head.target_span()));
        out.extend_from_slice(b" HTTP/1.1\r\n");
    }

    let mut kept_proto = false;
    let mut kept_host = false;
    for (i, f) in list.iter().enumerate() {
        if !crosses(f, fields, head.upgrade) {
            continue;
        }
        match f.kind {
            Name::XForwardedProto if !trusted => continue,
            Name::XForwardedProto => kept_proto = true,
            Name::XForwardedHost if !trusted => continue,
            Name::XForwardedHost => kept_host = true,
            _ => {}
        }
        if Some(i) != last_xff {
            run.field(fields, f, out);
            continue;
        }
        run.flush(fields, out);
        let value = fields.get(f.value);
        append(out, fields.get(f.name));
        out.extend_from_slice(b": ");
        append(out, value);
        if !trim_ows(value).is_empty() {
            out.extend_from_slice(b", ");
        }
        push_ip(out, fwd.client_ip);
        out.extend_from_slice(b"\r\n");
    }
    run.flush(fields, out);
    if last_xff.is_none() {
        out.extend_from_slice(b"X-Forwarded-For: ");
        push_ip(out, fwd.client_ip);
        out.extend_from_slice(b"\r\n");
    }
    if !kept_proto {
        push_header(out, b"X-Forwarded-Proto", fwd.proto.as_bytes());
    }
    if let (false, Some(raw)) = (kept_host, head.host_raw()) {
        push_header(out, b"X-Forwarded-Host", raw.as_bytes());
    }
    // An HTTP/1.0 client's request goes up as 1.1, whose default is to
    // persist: no Connection header is needed for the upstream to keep it.
    if head.upgrade {
        out.extend_from_slice(b"Connection: upgrade\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

/// Writes the head to send to the client: status line in HTTP/1.1 (or 1.0 when
/// `client_minor` is 0), headers minus hop-by-hop ones, and
/// `Connection: close` when `keep_alive` is false (`keep-alive` for a 1.0
/// client that keeps it). When `dechunk` is true (a 1.0 client and a chunked
/// body) the body is close-delimited; a 1.0 client never gets
/// Transfer-Encoding.
///
/// A close-delimited body (dechunk, or BodyKind::Close) always gets
/// `Connection: close`: its end is the connection's end. A 101 gets
/// `Connection: upgrade` with its Upgrade header; other 1xx get no
/// Connection header (the final response carries it).
pub fn write_response_head(
    head: &ResponseHead,
    client_minor: u8,
    keep_alive: bool,
    dechunk: bool,
    out: &mut Vec<u8>,
) {
    let fields = head.fields();
    out.reserve(fields.size() + 64);
    let mut run = Run::default();
    // The status line goes as it came when it has the version we write.
    if head.line_end() != 0 && (head.minor == 0) == (client_minor == 0) {
        run.0 = Some(Span {
            start: 0,
            end: head.line_end(),
        });
    } else {
        out.extend_from_slice(if client_minor == 0 {
            b"HTTP/1.0 "
        } else {
            b"HTTP/1.1 "
        });
        let status = head.status.min(999);
        out.extend_from_slice(&[
            b'0' + (status / 100) as u8,
            b'0' + (status / 10 % 10) as u8,
            b'0' + (status % 10) as u8,
            b' ',
        ]);
        append(out, head.reason().as_bytes());
        out.extend_from_slice(b"\r\n");
    }

    for f in fields.list() {
        if !crosses(f, fields, head.upgrade) {
            continue;
        }
        // RFC 9112 6.1: no Transfer-Encoding in a response to HTTP/1.0. A
        // chunked body is decoded for such a client (`dechunk`); any other
        // coding makes the body close-delimited already.
        if (dechunk || client_minor == 0) && f.kind == Name::TransferEncoding {
            continue;
        }
        run.field(fields, f, out);
    }
    run.flush(fields, out);

    let interim = head.status < 200 && !head.upgrade;
    if head.upgrade {
        out.extend_from_slice(b"Connection: upgrade\r\n");
    } else if interim {
        // Nothing: a 1xx says nothing about the connection.
    } else if !keep_alive || dechunk || head.body == BodyKind::Close {
        out.extend_from_slice(b"Connection: close\r\n");
    } else if client_minor == 0 {
        // RFC 9112 9.3: a 1.0 client closes unless told the connection persists.
        out.extend_from_slice(b"Connection: keep-alive\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;

    use super::*;
    use crate::http::testutil::{assert_wire, request, response};

    #[test]
    fn addresses_are_written_as_std_formats_them() {
        for text in [
            "0.0.0.0",
            "9.9.9.9",
            "10.0.0.1",
            "99.100.101.255",
            "192.168.10.200",
            "255.255.255.255",
            "::1",
            "2001:db8::8:800:200c:417a",
            "::ffff:192.0.2.1",
        ] {
            let ip: IpAddr = text.parse().expect("a test address");
            let mut out = b"for=".to_vec();
            push_ip(&mut out, ip);
            assert_eq!(String::from_utf8(out).expect("text"), format!("for={ip}"));
        }
    }

    fn forwarded(ip: &str, proto: &'static str) -> Forwarded<'static> {
        Forwarded {
            client_ip: ip.parse::<IpAddr>().unwrap(),
            proto,
            trusted: false,
        }
    }

    fn forward(wire: &[u8], fwd: &Forwarded<'_>) -> Vec<u8> {
        let head = request(wire);
        let mut out = Vec::new();
        write_request_head(&head, fwd, &mut out);
        out
    }

    #[test]
    fn request_head_drops_hop_by_hop_and_adds_forwarded() {
        let wire = b"POST /submit?x=1 HTTP/1.1\r\n\
Host: Alice.Notes.example.com:8080\r\n\
Connection: keep-alive, X-Secret\r\n\
Keep-Alive: timeout=5\r\n\
Authorization: Bearer abc\r\n\
X-Secret: 1\r\n\
TE: trailers\r\n\
Proxy-Connection: keep-alive\r\n\
Trailer: X-T\r\n\
X-Forwarded-For: 10.0.0.1\r\n\
X-Forwarded-Proto: https\r\n\
x-forwarded-host: evil.example\r\n\
Transfer-Encoding: chunked\r\n\
Upgrade: websocket\r\n\
cookie: a=1\r\n\
\r\n";
        let expected = b"POST /submit?x=1 HTTP/1.1\r\n\
Host: Alice.Notes.example.com:8080\r\n\
Authorization: Bearer abc\r\n\
X-Forwarded-For: 10.0.0.1, 203.0.113.7\r\n\
Transfer-Encoding: chunked\r\n\
cookie: a=1\r\n\
X-Forwarded-Proto: http\r\n\
X-Forwarded-Host: Alice.Notes.example.com:8080\r\n\
\r\n";
        assert_wire(expected, &forward(wire, &forwarded("203.0.113.7", "http")));
    }

    #[test]
    fn request_head_adds_forwarded_for_when_absent() {
        let wire = b"GET / HTTP/1.1\r\nHost: a.example\r\nContent-Length: 0\r\n\r\n";
        let expected = b"GET / HTTP/1.1\r\nHost: a.example\r\nContent-Length: 0\r\n\
X-Forwarded-For: 2001:db8::7\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Host: a.example\r\n\r\n";
        assert_wire(expected, &forward(wire, &forwarded("2001:db8::7", "https")));
    }

    #[test]
    fn request_head_appends_to_the_last_forwarded_for() {
        let wire = b"GET / HTTP/1.1\r\nX-Forwarded-For: 1.1.1.1\r\nHost: a\r\nX-Forwarded-For: 2.2.2.2\r\nX-Forwarded-For:\r\n\r\n";
        let expected = b"GET / HTTP/1.1\r\nX-Forwarded-For: 1.1.1.1\r\nHost: a\r\nX-Forwarded-For: 2.2.2.2\r\n\
X-Forwarded-For: 9.9.9.9\r\nX-Forwarded-Proto: http\r\nX-Forwarded-Host: a\r\n\r\n";
        assert_wire(expected, &forward(wire, &forwarded("9.9.9.9", "http")));
    }

    #[test]
    fn request_head_keeps_forwarded_proto_and_host_from_a_trusted_proxy_only() {
        let wire = b"GET / HTTP/1.1\r\nHost: a\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Host: b\r\nX-Forwarded-For: 5.6.7.8\r\n\r\n";
        let trusted = Forwarded {
            trusted: true,
            ..forwarded("127.0.0.1", "http")
        };
        let expected =
            b"GET / HTTP/1.1\r\nHost: a\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Host: b\r\n\
X-Forwarded-For: 5.6.7.8, 127.0.0.1\r\n\r\n";
        assert_wire(expected, &forward(wire, &trusted));
        // Loopback is not trusted by itself: only `trusted_proxies` is.
        for peer in ["127.0.0.1", "::ffff:127.0.0.1", "10.1.1.1"] {
            let expected = format!(
                "GET / HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 5.6.7.8, {peer}\r\n\
X-Forwarded-Proto: http\r\nX-Forwarded-Host: a\r\n\r\n"
            );
            assert_wire(
                expected.as_bytes(),
                &forward(wire, &forwarded(peer, "http")),
            );
        }
    }

    #[test]
    fn the_client_address_is_believed_from_trusted_proxies_only() {
        let trusted: Vec<crate::config::Cidr> = ["127.0.0.1", "10.0.0.0/8"]
            .iter()
            .map(|c| crate::config::Cidr::parse(c).unwrap())
            .collect();
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let client = |wire: &[u8], peer: &str| client_address(&request(wire), ip(peer), &trusted);
        let chain = b"GET / HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 6.6.6.6, 203.0.113.9\r\nX-Forwarded-For: 10.0.0.5\r\n\r\n";
        // An untrusted peer is the client, whatever it claims.
        assert_eq!(client(chain, "198.51.100.1"), ip("198.51.100.1"));
        // A trusted one: the rightmost address that is not a trusted proxy.
        assert_eq!(client(chain, "127.0.0.1"), ip("203.0.113.9"));
        assert_eq!(client(chain, "::ffff:127.0.0.1"), ip("203.0.113.9"));
        let none = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n";
        assert_eq!(client(none, "127.0.0.1"), ip("127.0.0.1"));
        let junk =
            b"GET / HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 6.6.6.6, unknown, 10.0.0.7\r\n\r\n";
        assert_eq!(client(junk, "127.0.0.1"), ip("10.0.0.7"));
        assert_eq!(
            client_address(&request(chain), ip("127.0.0.1"), &[]),
            ip("127.0.0.1")
        );
    }

    #[test]
    fn request_head_keeps_upgrade_when_upgrading() {
        let wire = b"GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: websocket\r\n\
HTTP2-Settings: x\r\nSec-WebSocket-Key: k\r\n\r\n";
        let expected = b"GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nSec-WebSocket-Key: k\r\n\
X-Forwarded-For: 192.0.2.1\r\nX-Forwarded-Proto: http\r\nX-Forwarded-Host: a\r\nConnection: upgrade\r\n\r\n";
        assert_wire(expected, &forward(wire, &forwarded("192.0.2.1", "http")));
    }

    #[test]
    fn request_head_from_http10_goes_up_as_http11() {
        let wire = b"GET /old HTTP/1.0\r\nConnection: keep-alive\r\nUser-Agent: x\r\n\r\n";
        let expected = b"GET /old HTTP/1.1\r\nUser-Agent: x\r\nX-Forwarded-For: 192.0.2.1\r\nX-Forwarded-Proto: http\r\n\r\n";
        assert_wire(expected, &forward(wire, &forwarded("192.0.2.1", "http")));
    }

    #[test]
    fn connection_cannot_strip_framing_or_host() {
        let wire = b"POST / HTTP/1.1\r\nHost: a\r\nConnection: Content-Length, host, transfer-encoding, x\r\n\
Content-Length: 3\r\nX: y\r\n\r\n";
        let expected = b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\
X-Forwarded-For: 192.0.2.1\r\nX-Forwarded-Proto: http\r\nX-Forwarded-Host: a\r\n\r\n";
        assert_wire(expected, &forward(wire, &forwarded("192.0.2.1", "http")));
    }

    #[test]
    fn lines_not_in_their_plain_form_go_up_rewritten() {
        // Extra whitespace, no space after the colon, bare LF line ends and
        // a field dropped between two kept ones: every line that goes up is
        // `name: value\r\n`, whatever the client sent.
        let wire =
            b"GET /p HTTP/1.1\nHost:a\nX-A:   1  \r\nConnection: x-b\r\nX-B: 2\r\nX-C: 3\r\n\r\n";
        let expected = b"GET /p HTTP/1.1\r\nHost: a\r\nX-A: 1\r\nX-C: 3\r\n\
X-Forwarded-For: 192.0.2.1\r\nX-Forwarded-Proto: http\r\nX-Forwarded-Host: a\r\n\r\n";
        assert_wire(expected, &forward(wire, &forwarded("192.0.2.1", "http")));
        // An absolute-form target goes up as origin-form with its Host.
        let wire = b"GET http://b.example:81?q HTTP/1.1\r\nHost: a\r\nX: y\r\n\r\n";
        let expected = b"GET /?q HTTP/1.1\r\nHost: b.example:81\r\nX: y\r\n\
X-Forwarded-For: 192.0.2.1\r\nX-Forwarded-Proto: http\r\nX-Forwarded-Host: b.example:81\r\n\r\n";
        assert_wire(expected, &forward(wire, &forwarded("192.0.2.1", "http")));
        // A Content-Length made canonical sits in its place.
        let wire = b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 002\r\nX: y\r\n\r\n";
        let expected = b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\nX: y\r\n\
X-Forwarded-For: 192.0.2.1\r\nX-Forwarded-Proto: http\r\nX-Forwarded-Host: a\r\n\r\n";
        assert_wire(expected, &forward(wire, &forwarded("192.0.2.1", "http")));
    }

    #[test]
    fn a_status_line_goes_to_the_client_in_the_clients_version() {
        let wire = b"HTTP/1.0 200 Fine\r\nContent-Length: 0\r\nX:  y\r\n\r\n";
        let expected =
            b"HTTP/1.1 200 Fine\r\nContent-Length: 0\r\nX: y\r\nConnection: close\r\n\r\n";
        assert_wire(expected, &to_client(wire, false, 1, false, false));
        let expected =
            b"HTTP/1.0 200 Fine\r\nContent-Length: 0\r\nX: y\r\nConnection: keep-alive\r\n\r\n";
        assert_wire(expected, &to_client(wire, false, 0, true, false));
        let wire = b"HTTP/1.1 204 \r\nX: y\r\n\r\n";
        assert_wire(wire, &to_client(wire, false, 1, true, false));
        let wire = b"HTTP/1.1 204\r\nX: y\r\n\r\n";
        let expected = b"HTTP/1.1 204 \r\nX: y\r\n\r\n";
        assert_wire(expected, &to_client(wire, false, 1, true, false));
    }

    fn to_client(
        wire: &[u8],
        head_request: bool,
        client_minor: u8,
        keep: bool,
        dechunk: bool,
    ) -> Vec<u8> {
        let head = response(wire, head_request);
        let mut out = Vec::new();
        write_response_head(&head, client_minor, keep, dechunk, &mut out);
        out
    }

    #[test]
    fn response_head_for_http11_client() {
        let wire = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nSet-Cookie: a=1\r\nConnection: keep-alive, X-Internal\r\n\
Keep-Alive: timeout=5\r\nX-Internal: 1\r\nSet-Cookie: b=2\r\nProxy-Connection: x\r\nTrailer: X\r\n\r\n";
        let expected =
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\n\r\n";
        assert_wire(expected, &to_client(wire, false, 1, true, false));
        let expected = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\nConnection: close\r\n\r\n";
        assert_wire(expected, &to_client(wire, false, 1, false, false));
    }

    #[test]
    fn response_head_for_http10_client() {
        let wire = b"HTTP/1.1 404 Not Found\r\nContent-Length: 2\r\n\r\n";
        let expected =
            b"HTTP/1.0 404 Not Found\r\nContent-Length: 2\r\nConnection: keep-alive\r\n\r\n";
        assert_wire(expected, &to_client(wire, false, 0, true, false));
        let expected = b"HTTP/1.0 404 Not Found\r\nContent-Length: 2\r\nConnection: close\r\n\r\n";
        assert_wire(expected, &to_client(wire, false, 0, false, false));

        let wire =
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Type: text/plain\r\n\r\n";
        let expected = b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\n";
        assert_wire(expected, &to_client(wire, false, 0, true, true));

        // A coding other than chunked last: close-delimited, and a 1.0
        // client never sees Transfer-Encoding (found by fuzzing).
        let wire = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\nX: y\r\n\r\n";
        let expected = b"HTTP/1.0 200 OK\r\nX: y\r\nConnection: close\r\n\r\n";
        assert_wire(expected, &to_client(wire, false, 0, true, false));
        let expected =
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\nX: y\r\nConnection: close\r\n\r\n";
        assert_wire(expected, &to_client(wire, false, 1, true, false));
    }

    #[test]
    fn response_head_close_delimited_says_close() {
        let wire = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\n";
        let expected =
            b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n";
        assert_wire(expected, &to_client(wire, false, 1, true, false));
        // The same head answering HEAD has no body: the connection may stay.
        let expected = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\n";
        assert_wire(expected, &to_client(wire, true, 1, true, false));
    }

    #[test]
    fn response_head_switching_and_interim() {
        let wire = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: z\r\n\r\n";
        let expected = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nSec-WebSocket-Accept: z\r\nConnection: upgrade\r\n\r\n";
        assert_wire(expected, &to_client(wire, false, 1, false, false));
        let wire = b"HTTP/1.1 100 Continue\r\n\r\n";
        assert_wire(
            b"HTTP/1.1 100 Continue\r\n\r\n",
            &to_client(wire, false, 1, false, false),
        );
        let wire = b"HTTP/1.1 200 OK\r\nUpgrade: h2c\r\nContent-Length: 0\r\n\r\n";
        let expected = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
        assert_wire(expected, &to_client(wire, false, 1, true, false));
    }
}
