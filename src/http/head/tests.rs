//! Tests for the head parser: every refusal with its status, framing,
//! keep-alive, upgrade and host rules, incomplete heads and the size limits.

use super::*;
use crate::http::testutil::{request, response};

#[track_caller]
fn refused(wire: &[u8]) -> HeadError {
    match parse_request(wire) {
        Err(e) => e,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[test]
fn simple_get_parses() {
    let head = request(b"GET /a?b=c HTTP/1.1\r\nHost: Example.COM:8080\r\nAccept: */*\r\n\r\n");
    assert_eq!(head.method(), "GET");
    assert_eq!(head.target(), "/a?b=c");
    assert_eq!(head.minor, 1);
    assert_eq!(head.host(), Some("example.com"));
    assert_eq!(head.host_raw(), Some("Example.COM:8080"));
    assert_eq!(head.body, BodyKind::None);
    assert!(head.keep_alive);
    assert!(!head.upgrade);
    assert!(!head.expect_continue);
    let fields: Vec<(&str, &[u8])> = head.fields().pairs().collect();
    assert_eq!(
        fields,
        [("Host", &b"Example.COM:8080"[..]), ("Accept", &b"*/*"[..])]
    );
    assert_eq!(head.header("accept"), Some(&b"*/*"[..]));
}

#[test]
fn every_prefix_of_a_head_is_incomplete() {
    let wire = b"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\n";
    for end in 0..wire.len() {
        assert_eq!(
            parse_request(&wire[..end]),
            Ok(None),
            "prefix of {end} bytes"
        );
    }
    assert!(parse_request(wire).unwrap().is_some());
}

#[test]
fn head_length_stops_before_body_and_pipelined_requests() {
    let head = b"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\n";
    let mut wire = head.to_vec();
    wire.extend_from_slice(b"abcGET / HTTP/1.1\r\nHost: a\r\n\r\n");
    let (parsed, len) = parse_request(&wire).unwrap().unwrap();
    assert_eq!(len, head.len());
    assert_eq!(parsed.body, BodyKind::Length(3));
}

#[test]
fn refusals_name_their_reason() {
    let cases: &[(&[u8], &str)] = &[
        (b"GET / HTTP/2.0\r\nHost: a\r\n\r\n", "unsupported HTTP version"),
        (b"GET / HTTP/1.2\r\nHost: a\r\n\r\n", "unsupported HTTP version"),
        (b"GET / HTTPS/1.1\r\nHost: a\r\n\r\n", "unsupported HTTP version"),
        (b"GET /\r\nHost: a\r\n\r\n", "invalid request line"),
        (b"GET  / HTTP/1.1\r\nHost: a\r\n\r\n", "invalid request line"),
        (
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
            "both Content-Length and Transfer-Encoding",
        ),
        (
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n",
            "both Content-Length and Transfer-Encoding",
        ),
        (
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n",
            "conflicting Content-Length",
        ),
        (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3, 4\r\n\r\n", "conflicting Content-Length"),
        (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: abc\r\n\r\n", "invalid Content-Length"),
        (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n", "invalid Content-Length"),
        (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +3\r\n\r\n", "invalid Content-Length"),
        (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0x10\r\n\r\n", "invalid Content-Length"),
        (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length:\r\n\r\n", "invalid Content-Length"),
        (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3,\r\n\r\n", "invalid Content-Length"),
        (
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 18446744073709551616\r\n\r\n",
            "invalid Content-Length",
        ),
        (
            b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
            "Transfer-Encoding in HTTP/1.0 request",
        ),
        (b"GET / HTTP/1.1\r\nHost: a\r\nX(y): 1\r\n\r\n", "invalid header name"),
        (b"GET / HTTP/1.1\r\nHost: a\r\nX\x01y: 1\r\n\r\n", "invalid header name"),
        (b"GET / HTTP/1.1\r\nHost: a\r\nX\xffy: 1\r\n\r\n", "invalid header name"),
        (b"GET / HTTP/1.1\r\nHost: a\r\nNoColon\r\n\r\n", "invalid header name"),
        (b"GET / HTTP/1.1\r\nHost: a\r\n: empty\r\n\r\n", "invalid header name"),
        (b"GET / HTTP/1.1\r\nHost: a\r\nX: a\x00b\r\n\r\n", "invalid header value"),
        (b"GET / HTTP/1.1\r\nHost: a\r\nX: a\x7fb\r\n\r\n", "invalid header value"),
        (b"GET / HTTP/1.1\r\nHost: a\r\nX: a\rb\r\n\r\n", "invalid header value"),
        (b"GET / HTTP/1.1\r\nHost: a\r\nX: a\x0bb\r\n\r\n", "invalid header value"),
        (b"GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n b\r\n\r\n", "obs-fold in header"),
        (b"GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n\tb\r\n\r\n", "obs-fold in header"),
        (b"GET / HTTP/1.1\r\n Host: a\r\n\r\n", "obs-fold in header"),
        (b"GET / HTTP/1.1\r\nHost : a\r\n\r\n", "whitespace before colon in header"),
        (b"GET / HTTP/1.1\r\nHost: a\r\nX-A\t: b\r\n\r\n", "whitespace before colon in header"),
        (b"GET / HTTP/1.1\r\nAccept: */*\r\n\r\n", "missing Host"),
        (b"GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n", "multiple Host headers"),
        (b"GET / HTTP/1.1\r\nHost: a\r\nhost: b\r\n\r\n", "multiple Host headers"),
        (b"GET / HTTP/1.1\r\nHost:\r\n\r\n", "invalid Host"),
        (b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n", "invalid Host"),
        (b"GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", "invalid Host"),
        (b"GET / HTTP/1.1\r\nHost: a:b\r\n\r\n", "invalid Host"),
        (b"GET / HTTP/1.1\r\nHost: a@b\r\n\r\n", "invalid Host"),
        (b"GET / HTTP/1.1\r\nHost: [::1\r\n\r\n", "invalid Host"),
        (b"GET / HTTP/1.1\r\nHost: [::1]x\r\n\r\n", "invalid Host"),
        (b"GET / HTTP/1.1\r\nHost: :80\r\n\r\n", "invalid Host"),
        (b"GET foo HTTP/1.1\r\nHost: a\r\n\r\n", "invalid request target"),
        (b"GET * HTTP/1.1\r\nHost: a\r\n\r\n", "invalid request target"),
        (b"CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n", "invalid request target"),
        (b"GET ftp://a/ HTTP/1.1\r\nHost: a\r\n\r\n", "invalid request target"),
        (b"GET http:///x HTTP/1.1\r\nHost: a\r\n\r\n", "invalid request target"),
        (b"GET http://u@a/x HTTP/1.1\r\nHost: a\r\n\r\n", "invalid request target"),
        (b"GET http://a/x HTTP/1.1\r\n\r\n", "missing Host"),
    ];
    for (wire, why) in cases {
        let got = parse_request(wire);
        assert_eq!(
            got,
            Err(HeadError::Bad(why)),
            "for {:?}",
            String::from_utf8_lossy(wire)
        );
        assert_eq!(HeadError::Bad(why).status(), 400);
    }
}

#[test]
fn transfer_encoding_other_than_one_chunked_is_501() {
    // Every way of naming a coding besides chunked, or chunked more than
    // once, in one field or spread over several.
    for te in [
        &b"Transfer-Encoding: gzip, chunked\r\n"[..],
        b"Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n",
        b"Transfer-Encoding: foo, chunked\r\n",
        b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n",
        b"Transfer-Encoding: chunked, chunked\r\n",
        b"Transfer-Encoding: gzip\r\n",
        b"Transfer-Encoding: identity\r\n",
        b"Transfer-Encoding: chunked, gzip\r\n",
        b"Transfer-Encoding: chunked;x=1\r\n",
        b"Transfer-Encoding: \"chunked\"\r\n",
        b"Transfer-Encoding:\r\n",
        b"Transfer-Encoding: ,\r\n",
        b"Transfer-Encoding: chunked\r\nTransfer-Encoding:\r\n",
        b"Transfer-Encoding: chunked,\r\n",
        b"Transfer-Encoding: , chunked\r\n",
    ] {
        let wire = [&b"POST / HTTP/1.1\r\nHost: a\r\n"[..], te, b"\r\n"].concat();
        let got = parse_request(&wire);
        assert_eq!(
            got,
            Err(HeadError::NotImplemented(
                "Transfer-Encoding other than a single chunked"
            )),
            "for {:?}",
            String::from_utf8_lossy(te)
        );
        assert_eq!(got.unwrap_err().status(), 501);
    }
    // Framing errors stay 400 whatever the codings.
    for wire in [
        &b"POST / HTTP/1.0\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"[..],
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nTransfer-Encoding: gzip\r\n\r\n",
    ] {
        assert_eq!(refused(wire).status(), 400);
    }
}

#[test]
fn content_length_is_forwarded_in_one_canonical_field() {
    let cases: &[(&[u8], u64)] = &[
        (b"Content-Length: 0004\r\n", 4),
        (b"Content-Length: 4, 4\r\n", 4),
        (b"Content-Length: 4\r\nContent-Length: 04\r\n", 4),
        (b"content-length: 4,4\r\nX-A: 1\r\nCONTENT-LENGTH: 4\r\n", 4),
        (b"Content-Length: 000\r\n", 0),
        (b"Content-Length: 4\r\n", 4),
    ];
    for (fields, n) in cases {
        let shown = String::from_utf8_lossy(fields);
        let wire = [&b"POST / HTTP/1.1\r\nHost: a\r\n"[..], fields, b"\r\n"].concat();
        let head = request(&wire);
        assert_eq!(head.body, BodyKind::Length(*n), "{shown}");
        let lengths: Vec<(&str, &[u8])> = head
            .fields()
            .pairs()
            .filter(|(name, _)| name.eq_ignore_ascii_case("content-length"))
            .collect();
        assert_eq!(lengths.len(), 1, "{shown}: {lengths:?}");
        assert_eq!(lengths[0].1, n.to_string().as_bytes(), "{shown}");
        // The first field's place and spelling are kept.
        let second = head.fields().pairs().nth(1).expect("a second field");
        assert!(second.0.eq_ignore_ascii_case("content-length"));
        // The same for a response, HEAD or not.
        for head_request in [false, true] {
            let wire = [&b"HTTP/1.1 200 OK\r\n"[..], fields, b"\r\n"].concat();
            let (res, _) = parse_response(&wire, head_request).unwrap().unwrap();
            let values: Vec<&[u8]> = res
                .fields()
                .pairs()
                .filter(|(name, _)| name.eq_ignore_ascii_case("content-length"))
                .map(|(_, value)| value)
                .collect();
            assert_eq!(values, [n.to_string().as_bytes()], "{shown}");
        }
    }
}

#[test]
fn an_absolute_target_with_repeated_content_length_before_host_is_one_request() {
    // The Content-Length fields made one before the Host field was given
    // the target's authority by its index, which then pointed past the end.
    let head = request(
        b"POST http://a.example/x HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 01\r\nHost: b\r\n\r\n",
    );
    assert_eq!(head.body, BodyKind::Length(1));
    assert_eq!(head.header("host"), Some(&b"a.example"[..]));
    assert_eq!(head.header("content-length"), Some(&b"1"[..]));
    assert_eq!(head.fields().list().len(), 2);
}

#[test]
fn repeated_identical_content_length_is_one() {
    for wire in [
        &b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n"[..],
        &b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 5\r\n\r\n"[..],
        &b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5,5 ,\t5\r\nContent-Length: 05\r\n\r\n"[..],
    ] {
        assert_eq!(request(wire).body, BodyKind::Length(5));
    }
}

#[test]
fn chunked_request_is_chunked() {
    for te in ["chunked", "Chunked", " CHUNKED\t"] {
        let wire = format!("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: {te}\r\n\r\n");
        let head = request(wire.as_bytes());
        assert_eq!(head.body, BodyKind::Chunked, "{te:?}");
        assert!(head.body.has_body());
    }
    let head = request(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n");
    assert_eq!(head.body, BodyKind::Length(0));
    assert!(!head.body.has_body());
}

#[test]
fn long_target_is_414() {
    let mut ok = b"GET /".to_vec();
    ok.resize(MAX_TARGET + 4, b'a');
    ok.extend_from_slice(b" HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_eq!(request(&ok).target().len(), MAX_TARGET);

    let mut long = b"GET /".to_vec();
    long.resize(MAX_TARGET + 5, b'a');
    let partial = long.clone();
    long.extend_from_slice(b" HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_eq!(refused(&long), HeadError::UriTooLong);
    assert_eq!(refused(&long).status(), 414);
    // Refused while the target is still arriving, without waiting for 64 KiB.
    assert_eq!(refused(&partial), HeadError::UriTooLong);
    let mut head_pending = long.clone();
    head_pending.truncate(long.len() - 2);
    assert_eq!(refused(&head_pending), HeadError::UriTooLong);
}

#[test]
fn head_over_64k_is_431() {
    let mut wire = b"GET / HTTP/1.1\r\nHost: a\r\nX-Big: ".to_vec();
    wire.resize(MAX_HEAD - 1, b'x');
    assert_eq!(parse_request(&wire), Ok(None));
    wire.push(b'x');
    assert_eq!(refused(&wire), HeadError::TooLarge);
    assert_eq!(refused(&wire).status(), 431);
    // Complete, but the end is past the limit.
    wire.extend_from_slice(b"\r\n\r\n");
    assert_eq!(refused(&wire), HeadError::TooLarge);
    let mut res = b"HTTP/1.1 200 OK\r\nX-Big: ".to_vec();
    res.resize(MAX_HEAD, b'x');
    assert_eq!(parse_response(&res, false), Err(HeadError::TooLarge));
    res.truncate(MAX_HEAD - 1);
    assert_eq!(parse_response(&res, false), Ok(None));
}

#[test]
fn many_headers_fit_until_the_cap() {
    let build = |n: usize| {
        let mut wire = b"GET / HTTP/1.1\r\nHost: a\r\n".to_vec();
        for i in 1..n {
            wire.extend_from_slice(format!("X-{i}: {i}\r\n").as_bytes());
        }
        wire.extend_from_slice(b"\r\n");
        wire
    };
    assert_eq!(
        request(&build(STACK_HEADERS)).fields().list().len(),
        STACK_HEADERS
    );
    assert_eq!(
        request(&build(MAX_HEADERS)).fields().list().len(),
        MAX_HEADERS
    );
    assert_eq!(refused(&build(MAX_HEADERS + 1)), HeadError::TooLarge);
}

#[test]
fn host_is_lowercased_without_port() {
    let cases: &[(&[u8], &str)] = &[
        (b"Example.COM", "example.com"),
        (b"Example.COM:8080", "example.com"),
        (b"alice.notes.example.com.", "alice.notes.example.com"),
        (b"alice.notes.example.com.:80", "alice.notes.example.com"),
        (b"127.0.0.1:8080", "127.0.0.1"),
        (b"[::1]:8080", "[::1]"),
        (b"[::1]", "[::1]"),
        (b"[FE80::1]:", "[fe80::1]"),
        (b"localhost:", "localhost"),
    ];
    for (raw, host) in cases {
        let mut wire = b"GET / HTTP/1.1\r\nHost: ".to_vec();
        wire.extend_from_slice(raw);
        wire.extend_from_slice(b"\r\n\r\n");
        let head = request(&wire);
        assert_eq!(head.host(), Some(*host));
        assert_eq!(head.host_raw().map(str::as_bytes), Some(*raw));
    }
}

#[test]
fn http10_without_host_is_fine() {
    let head = request(b"GET / HTTP/1.0\r\n\r\n");
    assert_eq!(head.minor, 0);
    assert_eq!(head.host(), None);
    assert_eq!(head.host_raw(), None);
    assert!(!head.keep_alive);
}

#[test]
fn absolute_form_becomes_origin_form_with_its_authority_as_host() {
    let head = request(b"GET http://Alice.Notes.example.com:8080/x?y=1 HTTP/1.1\r\nHost: other.example\r\nA: b\r\n\r\n");
    assert_eq!(head.target(), "/x?y=1");
    assert_eq!(head.host(), Some("alice.notes.example.com"));
    assert_eq!(head.host_raw(), Some("Alice.Notes.example.com:8080"));
    assert_eq!(
        head.header("host"),
        Some(&b"Alice.Notes.example.com:8080"[..])
    );
    assert_eq!(head.fields().pairs().nth(1).expect("a second field").0, "A");

    let head = request(b"GET HTTPS://a.example HTTP/1.1\r\nHost: a.example\r\n\r\n");
    assert_eq!(head.target(), "/");
    let head = request(b"GET http://a.example?q HTTP/1.1\r\nHost: a.example\r\n\r\n");
    assert_eq!(head.target(), "/?q");
    // 1.0 may omit Host; one is made from the target for the upstream.
    let head = request(b"GET http://a.example/p HTTP/1.0\r\n\r\n");
    assert_eq!(head.host(), Some("a.example"));
    assert_eq!(head.header("Host"), Some(&b"a.example"[..]));
    let head = request(b"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_eq!(head.target(), "*");
}

#[test]
fn keep_alive_matrix() {
    let cases: &[(&[u8], bool)] = &[
        (b"GET / HTTP/1.1\r\nHost: a\r\n\r\n", true),
        (
            b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
            false,
        ),
        (
            b"GET / HTTP/1.1\r\nHost: a\r\nConnection: Close\r\n\r\n",
            false,
        ),
        (
            b"GET / HTTP/1.1\r\nHost: a\r\nConnection: foo, CLOSE\r\n\r\n",
            false,
        ),
        (
            b"GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive\r\n\r\n",
            true,
        ),
        (
            b"GET / HTTP/1.1\r\nHost: a\r\nConnection: closed\r\n\r\n",
            true,
        ),
        (
            b"GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive\r\nConnection: close\r\n\r\n",
            false,
        ),
        (b"GET / HTTP/1.0\r\n\r\n", false),
        (b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", true),
        (b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", true),
        (b"GET / HTTP/1.0\r\nConnection: x ,keep-alive\r\n\r\n", true),
        (
            b"GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n",
            false,
        ),
    ];
    for (wire, keep) in cases {
        assert_eq!(
            request(wire).keep_alive,
            *keep,
            "for {:?}",
            String::from_utf8_lossy(wire)
        );
    }
}

#[test]
fn upgrade_needs_the_connection_token_and_the_header() {
    let cases: &[(&[u8], bool)] = &[
        (b"GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, Upgrade\r\nUpgrade: websocket\r\n\r\n", true),
        (b"GET / HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\n\r\n", false),
        (b"GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n\r\n", false),
        (b"GET / HTTP/1.0\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n", false),
    ];
    for (wire, upgrade) in cases {
        assert_eq!(
            request(wire).upgrade,
            *upgrade,
            "for {:?}",
            String::from_utf8_lossy(wire)
        );
    }
}

#[test]
fn expect_continue_is_case_insensitive() {
    let cases: &[(&[u8], bool)] = &[
        (
            b"PUT / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n",
            true,
        ),
        (
            b"PUT / HTTP/1.1\r\nHost: a\r\nexpect: 100-Continue\r\nContent-Length: 1\r\n\r\n",
            true,
        ),
        (
            b"PUT / HTTP/1.1\r\nHost: a\r\nExpect: something\r\nContent-Length: 1\r\n\r\n",
            false,
        ),
        (
            b"PUT / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n",
            false,
        ),
    ];
    for (wire, expect) in cases {
        assert_eq!(
            request(wire).expect_continue,
            *expect,
            "for {:?}",
            String::from_utf8_lossy(wire)
        );
    }
}

#[test]
fn response_body_kind_matrix() {
    // (wire, head request, body, keep_alive)
    let cases: &[(&[u8], bool, BodyKind, bool)] = &[
        (b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", false, BodyKind::Length(5), true),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 5, 5\r\n\r\n", false, BodyKind::Length(5), true),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", false, BodyKind::Chunked, true),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", false, BodyKind::Chunked, true),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", false, BodyKind::Close, false),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", false, BodyKind::Close, false),
        (b"HTTP/1.1 200 OK\r\n\r\n", false, BodyKind::Close, false),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", true, BodyKind::None, true),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", true, BodyKind::None, true),
        (b"HTTP/1.1 200 OK\r\n\r\n", true, BodyKind::None, true),
        (b"HTTP/1.1 204 No Content\r\n\r\n", false, BodyKind::None, true),
        (b"HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n", false, BodyKind::None, true),
        (b"HTTP/1.1 100 Continue\r\n\r\n", false, BodyKind::None, true),
        (b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n", false, BodyKind::None, true),
        (b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n", false, BodyKind::None, false),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\n", false, BodyKind::Length(5), false),
        (b"HTTP/1.0 200 OK\r\nContent-Length: 5\r\n\r\n", false, BodyKind::Length(5), false),
        (b"HTTP/1.0 200 OK\r\nContent-Length: 5\r\nConnection: keep-alive\r\n\r\n", false, BodyKind::Length(5), true),
        (b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\n\r\n", false, BodyKind::Close, false),
        (b"HTTP/1.1 404 \r\nContent-Length: 0\r\n\r\n", false, BodyKind::Length(0), true),
        (b"HTTP/1.1 500\r\nContent-Length: 2\r\n\r\n", false, BodyKind::Length(2), true),
    ];
    for (wire, head_request, body, keep) in cases {
        let head = response(wire, *head_request);
        let what = String::from_utf8_lossy(wire);
        assert_eq!(head.body, *body, "body for {what:?} (HEAD: {head_request})");
        assert_eq!(
            head.keep_alive, *keep,
            "keep-alive for {what:?} (HEAD: {head_request})"
        );
        assert_eq!(head.upgrade, head.status == 101);
    }
}

#[test]
fn response_fields_are_kept() {
    let head = response(b"HTTP/1.1 201 Created Here\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\nContent-Length: 0\r\n\r\n", false);
    assert_eq!(head.status, 201);
    assert_eq!(head.reason(), "Created Here");
    assert_eq!(head.minor, 1);
    assert_eq!(head.fields().list().len(), 3);
    assert_eq!(head.header("set-cookie"), Some(&b"a=1"[..]));
}

#[test]
fn response_refusals() {
    let cases: &[(&[u8], &str)] = &[
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n",
            "invalid Content-Length",
        ),
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
            "conflicting Content-Length",
        ),
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
            "both Content-Length and Transfer-Encoding",
        ),
        (
            b"HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
            "Transfer-Encoding in HTTP/1.0 response",
        ),
        (b"HTTP/1.1 099 Odd\r\n\r\n", "invalid status code"),
        (b"HTTP/1.1 2000 OK\r\n\r\n", "invalid status line"),
        (b"HTTP/2 200 OK\r\n\r\n", "unsupported HTTP version"),
        (
            b"HTTP/1.1 200 OK\r\nX: a\r\n b\r\n\r\n",
            "obs-fold in header",
        ),
        (
            b"HTTP/1.1 200 OK\r\nX : a\r\n\r\n",
            "whitespace before colon in header",
        ),
        (
            b"HTTP/1.1 200 OK\r\nX: a\x00\r\n\r\n",
            "invalid header value",
        ),
    ];
    for (wire, why) in cases {
        assert_eq!(
            parse_response(wire, false),
            Err(HeadError::Bad(why)),
            "for {:?}",
            String::from_utf8_lossy(wire)
        );
    }
    let wire = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n";
    for end in 0..wire.len() {
        assert_eq!(
            parse_response(&wire[..end], false),
            Ok(None),
            "prefix of {end} bytes"
        );
    }
}

#[test]
fn errors_display_lowercase() {
    assert_eq!(
        HeadError::Bad("missing Host").to_string(),
        "bad request: missing Host"
    );
    assert_eq!(HeadError::TooLarge.to_string(), "header block too large");
}

#[test]
fn a_reused_head_holds_exactly_the_fields_of_the_last_request() {
    let wires: [&[u8]; 4] = [
        b"GET / HTTP/1.1\r\nHost: a.example\r\nAccept: */*\r\nX-One: 1\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: b.example\r\n\r\n",
        b"POST /p HTTP/1.1\r\nHost: c.example\r\nContent-Length: 2\r\nX-Two: 22\r\nX-Three: 333\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: d.example\r\nUser-Agent: t\r\n\r\n",
    ];
    let mut head = RequestHead::default();
    for wire in wires {
        let len = parse_request_into(wire, &mut head)
            .expect("a valid request")
            .expect("a complete head");
        assert_eq!(len, wire.len());
        assert_eq!(head, request(wire), "{}", String::from_utf8_lossy(wire));
    }
}
