//! HTTP/1.1 conformance of the front, byte for byte (REFERENCE: "HTTP
//! behaviour of the front"; RFC 9110 and 9112). Every test sends raw bytes to
//! the real `ten serve` in front of `fixtures/rawhttp.py`, which records what
//! it receives and answers with scripted bytes. Refusals also check that the
//! backend received nothing. Each test runs twice (`both_ways!`): over plain
//! TCP and over TLS to the HTTPS listener.

mod raw;
mod util;

use std::io::Write;
use std::time::Duration;

use raw::*;
use util::*;

fn send(s: &mut impl Write, bytes: &[u8]) {
    s.write_all(bytes).expect("write request");
}

// ---------------------------------------------------------------- must work

both_ways! {
    fn http11_keep_alive_serves_sequential_requests_on_one_connection(over) {
        let Some(server) = start_over(over, "keepalive11", "", "") else {
            return;
        };
        let mut s = server.dial();
        let mut buf = Vec::new();
        for n in 1..=3 {
            send(
                &mut s,
                format!("GET /echo?n={n} HTTP/1.1\r\nHost: {HOST}\r\n\r\n").as_bytes(),
            );
            let resp = read_response(&mut s, &mut buf, false);
            assert_eq!(resp.status_line, "HTTP/1.1 200 OK", "{resp:#?}");
            assert!(!resp.says_close(), "{resp:#?}");
            assert_eq!(resp.json()["target"], format!("/echo?n={n}"));
        }
        assert!(buf.is_empty(), "stray bytes after the responses: {buf:?}");
        // The upstream connection was pooled and reused for all three.
        let reqs = requests(&server);
        assert_eq!(reqs.len(), 3, "{reqs:#?}");
        assert!(
            reqs.iter().all(|r| r["conn"] == reqs[0]["conn"]),
            "one upstream connection for sequential requests: {reqs:#?}"
        );
        // And they came over the transport this run is about.
        let proto = if over == Over::Tls { "https" } else { "http" };
        let headers = reqs[0]["headers"].as_array().expect("headers");
        assert!(
            headers.contains(&serde_json::json!(["X-Forwarded-Proto", proto])),
            "{headers:?}"
        );
    }
}

both_ways! {
    fn http10_without_keep_alive_gets_connection_close(over) {
        let Some(server) = start_over(over, "http10close", "", "") else {
            return;
        };
        let mut s = server.dial();
        send(
            &mut s,
            format!("GET /echo HTTP/1.0\r\nHost: {HOST}\r\n\r\n").as_bytes(),
        );
        let (bytes, end) = read_all(&mut s, Duration::from_secs(20));
        assert_eq!(end, End::Closed, "{:?}", String::from_utf8_lossy(&bytes));
        let resps = parse_all(&bytes, &[]);
        assert_eq!(resps.len(), 1, "{resps:#?}");
        let resp = &resps[0];
        assert_eq!(resp.status_line, "HTTP/1.0 200 OK");
        assert!(resp.says_close(), "{resp:#?}");
        assert!(resp.header("transfer-encoding").is_none());
        assert_eq!(
            resp.header("content-length"),
            Some(resp.body.len().to_string().as_str())
        );
        let report = resp.json();
        assert_eq!(report["target"], "/echo");
        // Sent upstream as 1.1, without the client's hop-by-hop fields.
        assert_eq!(report["version"], "HTTP/1.1");
    }
}

both_ways! {
    fn http10_with_keep_alive_is_kept_open(over) {
        let Some(server) = start_over(over, "http10keep", "", "") else {
            return;
        };
        let mut s = server.dial();
        let mut buf = Vec::new();
        for n in 1..=2 {
            send(
                &mut s,
                format!("GET /echo?n={n} HTTP/1.0\r\nHost: {HOST}\r\nConnection: keep-alive\r\n\r\n")
                    .as_bytes(),
            );
            let resp = read_response(&mut s, &mut buf, false);
            assert_eq!(resp.status_line, "HTTP/1.0 200 OK", "{resp:#?}");
            assert_eq!(resp.header("connection"), Some("keep-alive"), "{resp:#?}");
            assert_eq!(resp.json()["target"], format!("/echo?n={n}"));
        }
        // Without keep-alive, the third one ends the connection.
        send(
            &mut s,
            format!("GET /echo?n=3 HTTP/1.0\r\nHost: {HOST}\r\n\r\n").as_bytes(),
        );
        let (bytes, end) = read_all(&mut s, Duration::from_secs(20));
        assert_eq!(end, End::Closed);
        let resps = parse_all(&[buf, bytes].concat(), &[]);
        assert_eq!(resps.len(), 1, "{resps:#?}");
        assert_eq!(resps[0].status_line, "HTTP/1.0 200 OK");
        assert!(resps[0].says_close());
        assert_eq!(resps[0].json()["target"], "/echo?n=3");
    }
}

both_ways! {
    fn pipelined_requests_are_answered_in_order(over) {
        let Some(server) = start_over(over, "pipelined", "", "") else {
            return;
        };
        let mut s = server.dial();
        // Three requests in one write: a GET, a POST with a body, a chunked PUT
        // that also asks to close after.
        let wire = format!(
            "GET /echo?n=1 HTTP/1.1\r\nHost: {HOST}\r\n\r\n\
             POST /echo?n=2 HTTP/1.1\r\nHost: {HOST}\r\nContent-Length: 3\r\n\r\ntwo\
             PUT /echo?n=3 HTTP/1.1\r\nHost: {HOST}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n\
             5\r\nthree\r\n0\r\n\r\n"
        );
        send(&mut s, wire.as_bytes());
        let (bytes, end) = read_all(&mut s, Duration::from_secs(20));
        assert_eq!(end, End::Closed, "{:?}", String::from_utf8_lossy(&bytes));
        let resps = parse_all(&bytes, &[]);
        let targets: Vec<Value> = resps.iter().map(|r| r.json()["target"].clone()).collect();
        assert_eq!(
            targets,
            ["/echo?n=1", "/echo?n=2", "/echo?n=3"],
            "{resps:#?}"
        );
        assert_eq!(resps[1].json()["payload"], "two");
        assert_eq!(resps[2].json()["payload"], "three");
        assert!(!resps[0].says_close() && !resps[1].says_close());
        assert!(resps[2].says_close());
    }
}

both_ways! {
    fn expect_100_continue_is_relayed_before_the_body_is_sent(over) {
        let Some(server) = start_over(over, "expect100", "", "") else {
            return;
        };
        let mut s = server.dial();
        let mut buf = Vec::new();
        send(
            &mut s,
            format!(
                "POST /continue HTTP/1.1\r\nHost: {HOST}\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n"
            )
            .as_bytes(),
        );
        // The body is not sent until the interim response has arrived.
        let interim = read_response(&mut s, &mut buf, false);
        assert_eq!(
            interim.head, "HTTP/1.1 100 Continue\r\n\r\n",
            "{interim:#?}"
        );
        send(&mut s, b"hello");
        let resp = read_response(&mut s, &mut buf, false);
        assert_eq!(resp.status_line, "HTTP/1.1 200 OK", "{resp:#?}");
        let report = resp.json();
        assert_eq!(report["payload"], "hello");
        assert_eq!(report["sent_100_before_body"], true);
        let expect: Vec<&Value> = report["headers"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|h| h[0].as_str().unwrap().eq_ignore_ascii_case("expect"))
            .collect();
        assert_eq!(expect.len(), 1, "Expect forwarded: {report:#}");
    }
}

both_ways! {
    fn expect_100_continue_is_answered_while_the_instance_starts(over) {
        // The instance binds only after 4 s; its /noexpect path never sends a
        // 100 itself, so a 100 can only come from the front.
        let service = "startup_timeout = 30\n[service.raw.env]\nRAW_DELAY = \"4\"\n";
        let Some(server) = launch_over(over, "expect100wake", "", service) else {
            return;
        };
        let mut s = server.dial();
        s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
        let mut buf = Vec::new();
        send(
            &mut s,
            format!(
                "POST /noexpect HTTP/1.1\r\nHost: {HOST}\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n"
            )
            .as_bytes(),
        );
        let interim = read_response(&mut s, &mut buf, false);
        assert_eq!(
            interim.head, "HTTP/1.1 100 Continue\r\n\r\n",
            "{interim:#?}"
        );
        send(&mut s, b"hello");
        s.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
        let resp = read_response(&mut s, &mut buf, false);
        assert_eq!(resp.status_line, "HTTP/1.1 200 OK", "{resp:#?}");
        assert_eq!(resp.json()["payload"], "hello");
    }
}

both_ways! {
    fn chunked_request_body_with_extensions_and_trailers_reaches_the_backend(over) {
        let Some(server) = start_over(over, "chunkedreq", "", "") else {
            return;
        };
        let body = "4;name=value\r\nWiki\r\n5 ; a=\"q;r\"\r\npedia\r\nE\r\n in\r\n\r\nchunks.\r\n\
                    0;last\r\nExpires: never\r\nX-T: 1\r\n\r\n";
        let mut s = server.dial();
        let mut buf = Vec::new();
        send(
            &mut s,
            format!("POST /echo HTTP/1.1\r\nHost: {HOST}\r\nTransfer-Encoding: chunked\r\n\r\n{body}")
                .as_bytes(),
        );
        let resp = read_response(&mut s, &mut buf, false);
        assert_eq!(resp.status_line, "HTTP/1.1 200 OK", "{resp:#?}");
        let report = resp.json();
        // Forwarded as framed, byte for byte.
        assert_eq!(report["body"], body);
        assert_eq!(report["payload"], "Wikipedia in\r\n\r\nchunks.");
        assert_eq!(
            report["chunk_exts"],
            serde_json::json!(["name=value", " a=\"q;r\"", "last"])
        );
        assert_eq!(
            report["trailers"],
            serde_json::json!([["Expires", "never"], ["X-T", "1"]])
        );
        // The body's end was found: the next request on the connection works.
        send(
            &mut s,
            format!("GET /echo?after HTTP/1.1\r\nHost: {HOST}\r\n\r\n").as_bytes(),
        );
        let next = read_response(&mut s, &mut buf, false);
        assert_eq!(next.json()["target"], "/echo?after");
    }
}

both_ways! {
    fn close_delimited_response_is_relayed_and_the_connection_closed(over) {
        let Some(server) = start_over(over, "closedelim", "", "") else {
            return;
        };
        script(
            &server,
            "cd",
            b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nhello, close-delimited\n",
        );
        script(
            &server,
            "cd10",
            b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nfrom a 1.0 app\n",
        );
        for (name, body) in [
            ("cd", "hello, close-delimited\n"),
            ("cd10", "from a 1.0 app\n"),
        ] {
            let mut s = server.dial();
            send(
                &mut s,
                format!("GET /script/{name}?close=1 HTTP/1.1\r\nHost: {HOST}\r\n\r\n").as_bytes(),
            );
            let (bytes, end) = read_all(&mut s, Duration::from_secs(20));
            assert_eq!(end, End::Closed);
            assert_eq!(
                String::from_utf8_lossy(&bytes),
                format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\n{body}"
                )
            );
        }
        // A transfer coding other than chunked makes the body close-delimited
        // too; an HTTP/1.0 client never sees Transfer-Encoding (RFC 9112 6.1).
        script(
            &server,
            "cdte",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: identity\r\nContent-Type: text/plain\r\n\r\nas is\n",
        );
        let mut s = server.dial();
        send(
            &mut s,
            format!("GET /script/cdte?close=1 HTTP/1.0\r\nHost: {HOST}\r\n\r\n").as_bytes(),
        );
        let (bytes, end) = read_all(&mut s, Duration::from_secs(20));
        assert_eq!(end, End::Closed);
        assert_eq!(
            String::from_utf8_lossy(&bytes),
            "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\nas is\n"
        );
    }
}

both_ways! {
    fn head_204_and_304_have_no_body_and_the_connection_goes_on(over) {
        let Some(server) = start_over(over, "nobody", "", "") else {
            return;
        };
        let head = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 1234\r\n\r\n";
        let no_content = "HTTP/1.1 204 No Content\r\nX-A: 1\r\n\r\n";
        let not_modified = "HTTP/1.1 304 Not Modified\r\nETag: \"v1\"\r\nContent-Length: 99\r\n\r\n";
        script(&server, "head", head.as_bytes());
        script(&server, "s204", no_content.as_bytes());
        script(&server, "s304", not_modified.as_bytes());
        let mut s = server.dial();
        let mut buf = Vec::new();
        for (method, name, expected) in [
            ("HEAD", "head", head),
            ("GET", "s204", no_content),
            ("GET", "s304", not_modified),
            ("HEAD", "head", head),
        ] {
            send(
                &mut s,
                format!("{method} /script/{name} HTTP/1.1\r\nHost: {HOST}\r\n\r\n").as_bytes(),
            );
            let resp = read_response(&mut s, &mut buf, method == "HEAD");
            assert_eq!(resp.head, expected, "{method} /script/{name}");
            assert!(
                buf.is_empty(),
                "{method} {name}: bytes after the head: {buf:?}"
            );
        }
        send(
            &mut s,
            format!("GET /echo?last HTTP/1.1\r\nHost: {HOST}\r\n\r\n").as_bytes(),
        );
        let resp = read_response(&mut s, &mut buf, false);
        assert_eq!(resp.json()["target"], "/echo?last");
        assert!(buf.is_empty());
    }
}

both_ways! {
    fn head_on_the_servers_own_pages_is_get_without_the_body(over) {
        let Some(server) = start_over(over, "ownhead", "metrics_public = true", "") else {
            return;
        };
        // Issue 10: HEAD on /health, /metrics and the dashboard was a 405.
        let host = server.addr.to_string();
        for path in ["/health", "/metrics", "/"] {
            let mut s = server.dial();
            let mut buf = Vec::new();
            send(
                &mut s,
                format!(
                    "GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n\
                     HEAD {path} HTTP/1.1\r\nHost: {host}\r\n\r\n\
                     GET /health HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
                )
                .as_bytes(),
            );
            let get = read_response(&mut s, &mut buf, false);
            let head = read_response(&mut s, &mut buf, true);
            let after = read_response(&mut s, &mut buf, false);
            assert_eq!(get.status_line, "HTTP/1.1 200 OK", "{path}: {get:#?}");
            assert_eq!(head.status_line, "HTTP/1.1 200 OK", "{path}: {head:#?}");
            assert!(head.body.is_empty(), "{path}: {head:#?}");
            assert_eq!(
                head.header("content-type"),
                get.header("content-type"),
                "{path}"
            );
            // The metrics text changes between two scrapes; the others do not.
            if path != "/metrics" {
                assert_eq!(
                    head.header("content-length"),
                    get.header("content-length"),
                    "{path}"
                );
            }
            assert!(head.header("content-length").is_some(), "{path}: {head:#?}");
            // Nothing followed the HEAD answer: the next response parses whole.
            assert_eq!(after.text(), "ok", "{path}: {after:#?}");
        }
    }
}

both_ways! {
    fn set_cookie_headers_are_kept_apart(over) {
        let Some(server) = start_over(over, "setcookie", "", "") else {
            return;
        };
        let cookies = [
            "a=1; Path=/; HttpOnly",
            "b=2; Expires=Wed, 21 Oct 2015 07:28:00 GMT",
            "c=3, d=4",
        ];
        let mut wire = String::from("HTTP/1.1 200 OK\r\n");
        for c in cookies {
            wire.push_str(&format!("Set-Cookie: {c}\r\n"));
        }
        wire.push_str("Content-Length: 2\r\n\r\nok");
        script(&server, "cookies", wire.as_bytes());
        let resp = get(&server, "/script/cookies");
        assert_eq!(resp.status, 200);
        assert_eq!(resp.all("set-cookie"), cookies, "{resp:#?}");
        assert_eq!(resp.body, b"ok");
    }
}

// ------------------------------------------------------------------ refused

both_ways! {
    fn refuses_content_length_with_transfer_encoding(over) {
        let Some(server) = start_over(over, "clte", "", "") else {
            return;
        };
        for wire in [
            format!("POST /echo HTTP/1.1\r\nHost: {HOST}\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
            format!("POST /echo HTTP/1.1\r\nHost: {HOST}\r\nTransfer-Encoding: chunked\r\nContent-Length: 0\r\n\r\n0\r\n\r\n"),
        ] {
            assert_refused(
                &server,
                wire.as_bytes(),
                400,
                "Bad Request",
                Some("both Content-Length and Transfer-Encoding"),
            );
        }
    }
}

both_ways! {
    fn refuses_differing_content_lengths(over) {
        let Some(server) = start_over(over, "difcl", "", "") else {
            return;
        };
        for wire in [
            format!("POST /echo HTTP/1.1\r\nHost: {HOST}\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!"),
            format!("POST /echo HTTP/1.1\r\nHost: {HOST}\r\nContent-Length: 5, 6\r\n\r\nhello!"),
        ] {
            assert_refused(
                &server,
                wire.as_bytes(),
                400,
                "Bad Request",
                Some("conflicting Content-Length"),
            );
        }
        // Identical repeats are one length (RFC 9110 8.6) and go through.
        let mut s = server.dial();
        send(
            &mut s,
            format!("POST /echo HTTP/1.1\r\nHost: {HOST}\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello")
                .as_bytes(),
        );
        let resp = read_response(&mut s, &mut Vec::new(), false);
        assert_eq!(resp.json()["payload"], "hello");
    }
}

both_ways! {
    fn refuses_invalid_content_length(over) {
        let Some(server) = start_over(over, "badcl", "", "") else {
            return;
        };
        for cl in [
            "+5",
            "0x5",
            "5.0",
            "-5",
            "5 5",
            "",
            "99999999999999999999999",
        ] {
            let wire =
                format!("POST /echo HTTP/1.1\r\nHost: {HOST}\r\nContent-Length: {cl}\r\n\r\nhello");
            assert_refused(
                &server,
                wire.as_bytes(),
                400,
                "Bad Request",
                Some("Content-Length"),
            );
        }
    }
}

both_ways! {
    fn refuses_missing_repeated_or_invalid_host(over) {
        let Some(server) = start_over(over, "badhost", "", "") else {
            return;
        };
        for wire in [
            "GET /echo HTTP/1.1\r\n\r\n".to_string(),
            format!("GET /echo HTTP/1.1\r\nHost: {HOST}\r\nHost: {HOST}\r\n\r\n"),
            format!("GET /echo HTTP/1.1\r\nHost: {HOST}\r\nhost: other.localhost\r\n\r\n"),
            "GET /echo HTTP/1.1\r\nHost: a b\r\n\r\n".to_string(),
            format!("GET /echo HTTP/1.1\r\nHost: user@{HOST}\r\n\r\n"),
            format!("GET /echo HTTP/1.1\r\nHost: {HOST}:80x\r\n\r\n"),
        ] {
            assert_refused(&server, wire.as_bytes(), 400, "Bad Request", Some("Host"));
        }
    }
}

both_ways! {
    fn refuses_transfer_encoding_other_than_a_single_chunked_with_501(over) {
        let Some(server) = start_over(over, "tenotchunked", "", "") else {
            return;
        };
        // Issue 10: a coding besides chunked, chunked twice, or the codings
        // spread over several fields: an app reading them differently would see
        // another body. Refused like nginx does, nothing forwarded.
        for te in [
            "Transfer-Encoding: gzip, chunked\r\n",
            "Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n",
            "Transfer-Encoding: foo, chunked\r\n",
            "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n",
            "Transfer-Encoding: chunked, chunked\r\n",
            "Transfer-Encoding: gzip\r\n",
            "Transfer-Encoding: chunked, gzip\r\n",
            "Transfer-Encoding: chunked;x=1\r\n",
            "Transfer-Encoding: identity\r\n",
            "Transfer-Encoding: chunked,\r\n",
            "Transfer-Encoding:\r\n",
        ] {
            let wire = format!("POST /echo HTTP/1.1\r\nHost: {HOST}\r\n{te}\r\n0\r\n\r\n");
            assert_refused(
                &server,
                wire.as_bytes(),
                501,
                "Not Implemented",
                Some("Transfer-Encoding other than a single chunked"),
            );
        }
        // In HTTP/1.0 there is no Transfer-Encoding at all: a framing error.
        let wire = format!(
            "POST /echo HTTP/1.0\r\nHost: {HOST}\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
        );
        assert_refused(&server, wire.as_bytes(), 400, "Bad Request", None);
        // The one accepted form, any case.
        let mut s = server.dial();
        send(
            &mut s,
            format!("POST /echo HTTP/1.1\r\nHost: {HOST}\r\nTransfer-Encoding: Chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n")
                .as_bytes(),
        );
        let resp = read_response(&mut s, &mut Vec::new(), false);
        assert_eq!(resp.json()["payload"], "ok", "{resp:#?}");
    }
}

both_ways! {
    fn content_length_reaches_the_backend_as_one_canonical_field(over) {
        let Some(server) = start_over(over, "canonicalcl", "", "") else {
            return;
        };
        // Issue 10: `0004` or `4, 4` read as 4 here could be read otherwise by
        // the app; it gets exactly one `Content-Length: 4`.
        for fields in [
            "Content-Length: 0004\r\n",
            "Content-Length: 4, 4\r\n",
            "Content-Length: 4\r\nContent-Length: 04\r\n",
            "content-length: 4,4\r\nX-A: 1\r\nContent-Length: 4\r\n",
        ] {
            let mut s = server.dial();
            send(
                &mut s,
                format!("POST /echo HTTP/1.1\r\nHost: {HOST}\r\n{fields}Connection: close\r\n\r\nabcd")
                    .as_bytes(),
            );
            let resp = read_response(&mut s, &mut Vec::new(), false);
            let report = resp.json();
            assert_eq!(report["payload"], "abcd", "{fields:?}: {resp:#?}");
            let lengths: Vec<&Value> = report["headers"]
                .as_array()
                .expect("headers")
                .iter()
                .filter(|h| {
                    h[0].as_str()
                        .unwrap()
                        .eq_ignore_ascii_case("content-length")
                })
                .map(|h| &h[1])
                .collect();
            assert_eq!(lengths, [&Value::from("4")], "{fields:?}: {report:#?}");
        }
    }
}

both_ways! {
    fn framing_and_routing_fields_sent_as_trailers_are_dropped(over) {
        let Some(server) = start_over(over, "badtrailers", "", "") else {
            return;
        };
        // Issue 10: an app that merges trailers into the head must not learn a
        // length, coding, host, address or credential the front never checked.
        let body = "3\r\nabc\r\n0\r\nContent-Length: 100\r\nX-T: 1\r\nTransfer-Encoding: chunked\r\n\
                    Host: admin.localhost\r\nX-Forwarded-For: 10.0.0.1\r\nAuthorization: Bearer forged\r\n\
                    Connection: close\r\nTrailer: X-T\r\nX-U: 2\r\n\r\n";
        let mut s = server.dial();
        let mut buf = Vec::new();
        send(
            &mut s,
            format!("POST /echo HTTP/1.1\r\nHost: {HOST}\r\nTransfer-Encoding: chunked\r\n\r\n{body}")
                .as_bytes(),
        );
        let resp = read_response(&mut s, &mut buf, false);
        assert_eq!(resp.status_line, "HTTP/1.1 200 OK", "{resp:#?}");
        let report = resp.json();
        assert_eq!(report["body"], "3\r\nabc\r\n0\r\nX-T: 1\r\nX-U: 2\r\n\r\n");
        assert_eq!(
            report["trailers"],
            serde_json::json!([["X-T", "1"], ["X-U", "2"]])
        );
        // The body's end was still found: the connection goes on.
        send(
            &mut s,
            format!("GET /echo?after HTTP/1.1\r\nHost: {HOST}\r\n\r\n").as_bytes(),
        );
        assert_eq!(
            read_response(&mut s, &mut buf, false).json()["target"],
            "/echo?after"
        );
    }
}

/// Refusals found in the body, which arrives with the head in one write.
fn refuse_bodies(over: Over, name: &str, bodies: &[&str], why: &str) {
    let Some(server) = start_over(over, name, "", "") else {
        return;
    };
    for body in bodies {
        let wire = format!(
            "POST /echo HTTP/1.1\r\nHost: {HOST}\r\nTransfer-Encoding: chunked\r\n\r\n{body}"
        );
        assert_refused(&server, wire.as_bytes(), 400, "Bad Request", Some(why));
    }
}

both_ways! {
    fn refuses_bad_chunk_size(over) {
        refuse_bodies(
            over,
            "badchunksize",
            &[
                "zz\r\nhello\r\n0\r\n\r\n",
                "-5\r\nhello\r\n0\r\n\r\n",
                "0x5\r\nhello\r\n0\r\n\r\n",
                " 5\r\nhello\r\n0\r\n\r\n",
                "10000000000000000\r\nhello\r\n0\r\n\r\n",
            ],
            "chunk size",
        );
    }
}

both_ways! {
    fn refuses_bad_chunk_framing(over) {
        refuse_bodies(
            over,
            "badchunkframe",
            &[
                "5\r\nhelloX0\r\n\r\n",
                "5\nhello\r\n0\r\n\r\n",
                "5\r\nhello\n0\r\n\r\n",
                "5\r\nhello\r\n0\r\nX : y\r\n\r\n",
            ],
            "bad body framing",
        );
    }
}

both_ways! {
    fn bad_chunk_framing_after_the_head_never_completes_a_request_upstream(over) {
        // The body arrives after the head has gone upstream (it cannot be held
        // back for ever): the front still answers 400 and closes, and the
        // backend never gets a complete request, nor the offending bytes.
        let Some(server) = start_over(over, "badchunklate", "", "") else {
            return;
        };
        let mut s = server.dial();
        send(
            &mut s,
            format!("POST /echo HTTP/1.1\r\nHost: {HOST}\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n")
                .as_bytes(),
        );
        // Once the head is upstream, the bad chunk.
        wait_record(&server, "the forwarded head", |r| r["event"] == "head");
        send(&mut s, b"zz\r\nsmuggled\r\n0\r\n\r\n");
        let (bytes, end) = read_all(&mut s, Duration::from_secs(20));
        assert_ne!(end, End::Open, "{:?}", String::from_utf8_lossy(&bytes));
        let resps = parse_all(&bytes, &[]);
        assert_eq!(resps.len(), 1, "{resps:#?}");
        assert_eq!(resps[0].status_line, "HTTP/1.1 400 Bad Request");
        assert!(resps[0].says_close());
        // The backend saw the connection end without a whole request.
        let rec = wait_record(&server, "the upstream connection closing", |r| {
            r["event"] == "partial" || r["event"] == "request"
        });
        assert_eq!(rec["event"], "partial", "{rec:#}");
        let raw = rec["raw"].as_str().unwrap();
        assert!(!raw.contains("zz") && !raw.contains("smuggled"), "{raw:?}");
    }
}

both_ways! {
    fn refuses_invalid_bytes_in_header_names_and_values(over) {
        let Some(server) = start_over(over, "badbytes", "", "") else {
            return;
        };
        for field in [
            "X-A\u{1}: b",
            "X(A): b",
            "X\"A: b",
            "X/A: b",
            "X@A: b",
            "X-A: b\u{0}c",
            "X-A: b\u{7f}c",
            "X-A: b\u{1b}c",
            ": empty-name",
        ] {
            let wire = format!("GET /echo HTTP/1.1\r\nHost: {HOST}\r\n{field}\r\n\r\n");
            assert_refused(&server, wire.as_bytes(), 400, "Bad Request", None);
        }
        // A bare CR inside a value.
        let wire = format!("GET /echo HTTP/1.1\r\nHost: {HOST}\r\nX-A: b\rc\r\n\r\n");
        assert_refused(&server, wire.as_bytes(), 400, "Bad Request", None);
    }
}

both_ways! {
    fn refuses_obs_fold(over) {
        let Some(server) = start_over(over, "obsfold", "", "") else {
            return;
        };
        for fold in ["X-A: a\r\n b", "X-A: a\r\n\tb", "Host-Extra: a\r\n  b"] {
            let wire = format!("GET /echo HTTP/1.1\r\nHost: {HOST}\r\n{fold}\r\n\r\n");
            assert_refused(
                &server,
                wire.as_bytes(),
                400,
                "Bad Request",
                Some("obs-fold"),
            );
        }
    }
}

both_ways! {
    fn refuses_whitespace_before_colon(over) {
        let Some(server) = start_over(over, "spacecolon", "", "") else {
            return;
        };
        for wire in [
            format!("GET /echo HTTP/1.1\r\nHost : {HOST}\r\n\r\n"),
            format!("GET /echo HTTP/1.1\r\nHost: {HOST}\r\nContent-Length : 5\r\n\r\nhello"),
            format!(
                "GET /echo HTTP/1.1\r\nHost: {HOST}\r\nTransfer-Encoding\t: chunked\r\n\r\n0\r\n\r\n"
            ),
        ] {
            assert_refused(
                &server,
                wire.as_bytes(),
                400,
                "Bad Request",
                Some("whitespace before colon"),
            );
        }
    }
}

both_ways! {
    fn refuses_request_lines_that_are_not_http1(over) {
        let Some(server) = start_over(over, "notHTTP1", "", "") else {
            return;
        };
        for line in [
            "GET /echo HTTP/2.0",
            "GET /echo HTTP/0.9",
            "GET /echo HTTP/3",
            "GET /echo http/1.1",
            "GET /echo FTP/1.1",
            "GET /echo HTTP/1.1 extra",
            "GET  /echo HTTP/1.1",
            "GET /e cho HTTP/1.1",
            "G\u{1}T /echo HTTP/1.1",
            "PRI * HTTP/2.0",
        ] {
            let wire = format!("{line}\r\nHost: {HOST}\r\n\r\n");
            assert_refused(&server, wire.as_bytes(), 400, "Bad Request", None);
        }
        // HTTP/0.9's bare `GET /path` line.
        assert_refused(&server, b"GET /echo\r\n\r\n", 400, "Bad Request", None);
    }
}

both_ways! {
    /// REFERENCE routes by Host, and an absolute-form target is the Host (RFC
    /// 9112 3.2.2: a server MUST ignore the Host header then). A foreign
    /// authority is therefore an unknown host: 404 by routing, and nothing is
    /// forwarded. What must never happen is the request reaching an instance
    /// chosen by one host while the app sees another.
    fn absolute_form_is_routed_by_its_authority(over) {
        let Some(server) = start_over(over, "absform", "", "") else {
            return;
        };
        let before = records(&server).len();
        let mut s = server.dial();
        let mut buf = Vec::new();
        send(
            &mut s,
            format!("GET http://evil.example/echo HTTP/1.1\r\nHost: {HOST}\r\n\r\n").as_bytes(),
        );
        let resp = read_response(&mut s, &mut buf, false);
        assert_eq!(resp.status_line, "HTTP/1.1 404 Not Found", "{resp:#?}");
        assert!(
            resp.json()["error"]
                .as_str()
                .unwrap()
                .contains("evil.example"),
            "{resp:#?}"
        );
        assert_nothing_forwarded(&server, before, "absolute-form to evil.example");

        // Our own authority, with a Host header that disagrees: the authority
        // wins for routing and is the Host the app sees.
        send(
            &mut s,
            format!("GET http://{HOST}/echo?abs HTTP/1.1\r\nHost: evil.example\r\n\r\n").as_bytes(),
        );
        let resp = read_response(&mut s, &mut buf, false);
        assert_eq!(resp.status_line, "HTTP/1.1 200 OK", "{resp:#?}");
        let report = resp.json();
        assert_eq!(report["target"], "/echo?abs");
        let hosts: Vec<&Value> = report["headers"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|h| h[0].as_str().unwrap().eq_ignore_ascii_case("host"))
            .map(|h| &h[1])
            .collect();
        assert_eq!(hosts, [HOST], "{report:#}");
    }
}

both_ways! {
    fn refuses_a_header_block_over_64_kib_with_431(over) {
        let Some(server) = start_over(over, "431", "", "") else {
            return;
        };
        let filler = "x".repeat(400);
        let mut many = format!("GET /echo HTTP/1.1\r\nHost: {HOST}\r\n");
        for i in 0..200 {
            many.push_str(&format!("X-Filler-{i}: {filler}\r\n"));
        }
        many.push_str("\r\n");
        let big_one = format!(
            "GET /echo HTTP/1.1\r\nHost: {HOST}\r\nCookie: {}\r\n\r\n",
            "c".repeat(70 * 1024)
        );
        for wire in [many, big_one] {
            assert_refused(
                &server,
                wire.as_bytes(),
                431,
                "Request Header Fields Too Large",
                None,
            );
        }
        // Just under the limit goes through whole.
        let value = "v".repeat(60 * 1024);
        let mut s = server.dial();
        send(
            &mut s,
            format!("GET /echo HTTP/1.1\r\nHost: {HOST}\r\nX-Big: {value}\r\n\r\n").as_bytes(),
        );
        let resp = read_response(&mut s, &mut Vec::new(), false);
        assert_eq!(resp.status, 200);
        let report = resp.json();
        let big = report["headers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|h| h[0] == "X-Big")
            .expect("X-Big forwarded");
        assert_eq!(big[1].as_str().unwrap().len(), value.len());
    }
}

both_ways! {
    fn refuses_an_over_long_target_with_414(over) {
        let Some(server) = start_over(over, "414", "", "") else {
            return;
        };
        let wire = format!(
            "GET /echo?{} HTTP/1.1\r\nHost: {HOST}\r\n\r\n",
            "q".repeat(9000)
        );
        assert_refused(&server, wire.as_bytes(), 414, "URI Too Long", None);
    }
}

// ------------------------------------------------------ malformed upstreams

both_ways! {
    fn a_malformed_upstream_response_is_a_502_and_the_connection_ends(over) {
        let Some(server) = start_over(over, "bad502", "", "") else {
            return;
        };
        let cases: &[(&str, &[u8])] = &[
            (
                "clte",
                b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\nhello",
            ),
            (
                "twocl",
                b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
            ),
            (
                "badcl",
                b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\nhello",
            ),
            ("status", b"HTTP/1.1 2x0 OK\r\nContent-Length: 0\r\n\r\n"),
            ("garbage", b"garbage\r\n\r\n"),
            (
                "fold",
                b"HTTP/1.1 200 OK\r\nX-A: a\r\n b\r\nContent-Length: 0\r\n\r\n",
            ),
            (
                "nul",
                b"HTTP/1.1 200 OK\r\nX-A: a\x00b\r\nContent-Length: 0\r\n\r\n",
            ),
            ("space", b"HTTP/1.1 200 OK\r\nContent-Length : 2\r\n\r\nok"),
            ("http2", b"HTTP/2 200\r\ncontent-length: 0\r\n\r\n"),
            (
                "te10",
                b"HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            ),
        ];
        for (name, bytes) in cases {
            script(&server, name, bytes);
            let mut s = server.dial();
            // A keep-alive request followed at once by another: the second must
            // never be answered with leftovers of the first.
            send(
                &mut s,
                format!(
                    "GET /script/{name}?close=1 HTTP/1.1\r\nHost: {HOST}\r\n\r\n\
                     GET /echo?second HTTP/1.1\r\nHost: {HOST}\r\n\r\n"
                )
                .as_bytes(),
            );
            let (got, end) = read_all(&mut s, Duration::from_secs(20));
            assert_ne!(
                end,
                End::Open,
                "{name}: {:?}",
                String::from_utf8_lossy(&got)
            );
            let resps = parse_all(&got, &[]);
            assert_eq!(resps.len(), 1, "{name}: {resps:#?}");
            assert_eq!(resps[0].status_line, "HTTP/1.1 502 Bad Gateway", "{name}");
            assert!(resps[0].says_close(), "{name}: {resps:#?}");
        }
    }
}

both_ways! {
    fn an_upstream_101_to_a_request_without_upgrade_is_a_502(over) {
        let Some(server) = start_over(over, "stray101", "", "") else {
            return;
        };
        // Issue 10: the client asked for no protocol switch; relaying a 101
        // would leave both sides guessing what the connection carries.
        script(
            &server,
            "switch",
            b"HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\nraw tunnel bytes",
        );
        for extra in ["", "Upgrade: websocket\r\n", "Connection: upgrade\r\n"] {
            let mut s = server.dial();
            send(
                &mut s,
                format!(
                    "GET /script/switch?close=1 HTTP/1.1\r\nHost: {HOST}\r\n{extra}\r\n\
                     GET /echo?second HTTP/1.1\r\nHost: {HOST}\r\n\r\n"
                )
                .as_bytes(),
            );
            let (got, end) = read_all(&mut s, Duration::from_secs(20));
            assert_ne!(
                end,
                End::Open,
                "{extra:?}: {:?}",
                String::from_utf8_lossy(&got)
            );
            let resps = parse_all(&got, &[]);
            assert_eq!(resps.len(), 1, "{extra:?}: {resps:#?}");
            assert_eq!(
                resps[0].status_line, "HTTP/1.1 502 Bad Gateway",
                "{extra:?}"
            );
            assert!(resps[0].says_close(), "{extra:?}: {resps:#?}");
            assert!(
                !String::from_utf8_lossy(&got).contains("raw tunnel bytes"),
                "{extra:?}: {:?}",
                String::from_utf8_lossy(&got)
            );
        }
    }
}

both_ways! {
    fn extra_bytes_after_an_upstream_response_never_answer_the_next_request(over) {
        let Some(server) = start_over(over, "splitting", "", "") else {
            return;
        };
        // A response with a second one glued to it: if the front reused this
        // upstream connection, the next request would get "evil".
        script(
            &server,
            "split",
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nevil",
        );
        let mut s = server.dial();
        let mut buf = Vec::new();
        send(
            &mut s,
            format!("GET /script/split HTTP/1.1\r\nHost: {HOST}\r\n\r\n").as_bytes(),
        );
        let first = read_response(&mut s, &mut buf, false);
        assert_eq!(first.body, b"ok");
        for n in 0..3 {
            send(
                &mut s,
                format!("GET /echo?n={n} HTTP/1.1\r\nHost: {HOST}\r\n\r\n").as_bytes(),
            );
            let resp = read_response(&mut s, &mut buf, false);
            assert_eq!(resp.status, 200, "{resp:#?}");
            assert_eq!(resp.json()["target"], format!("/echo?n={n}"), "{resp:#?}");
        }
    }
}

both_ways! {
    fn a_bad_chunked_upstream_body_ends_the_client_connection(over) {
        let Some(server) = start_over(over, "badupbody", "", "") else {
            return;
        };
        script(
            &server,
            "badbody",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nzz\r\nHTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nevil",
        );
        let mut s = server.dial();
        send(
            &mut s,
            format!(
                "GET /script/badbody?close=1 HTTP/1.1\r\nHost: {HOST}\r\n\r\n\
                 GET /echo?second HTTP/1.1\r\nHost: {HOST}\r\n\r\n"
            )
            .as_bytes(),
        );
        let (got, end) = read_all(&mut s, Duration::from_secs(20));
        assert_ne!(end, End::Open);
        let text = String::from_utf8_lossy(&got);
        // The head went out before the body was found bad: the client gets it
        // and a cut-off body, never the glued response nor the second answer.
        assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text:?}");
        assert!(
            !text.contains("evil") && !text.contains("second"),
            "{text:?}"
        );
        assert!(
            !text.ends_with("0\r\n\r\n"),
            "the body must not look complete: {text:?}"
        );
    }
}

// ------------------------------------------------------------- edge cases

both_ways! {
    fn interim_responses_are_relayed_before_the_final_one(over) {
        let Some(server) = start_over(over, "earlyhints", "", "") else {
            return;
        };
        script(
            &server,
            "hints",
            b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n\
              HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
        );
        let mut s = server.dial();
        let mut buf = Vec::new();
        send(
            &mut s,
            format!("GET /script/hints HTTP/1.1\r\nHost: {HOST}\r\n\r\n").as_bytes(),
        );
        let hints = read_response(&mut s, &mut buf, false);
        assert_eq!(
            hints.head,
            "HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n"
        );
        let resp = read_response(&mut s, &mut buf, false);
        assert_eq!(resp.head, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n");
        assert_eq!(resp.body, b"ok");
        // An HTTP/1.0 client gets no 1xx at all (RFC 9110 15.2).
        let mut s = server.dial();
        send(
            &mut s,
            format!("GET /script/hints HTTP/1.0\r\nHost: {HOST}\r\n\r\n").as_bytes(),
        );
        let (bytes, end) = read_all(&mut s, Duration::from_secs(20));
        assert_eq!(end, End::Closed);
        assert_eq!(
            String::from_utf8_lossy(&bytes),
            "HTTP/1.0 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
        );
    }
}

both_ways! {
    fn a_pipelined_request_after_a_close_delimited_response_is_not_answered_from_it(over) {
        let Some(server) = start_over(over, "pipeclose", "", "") else {
            return;
        };
        script(
            &server,
            "cd",
            b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil close",
        );
        let mut s = server.dial();
        send(
            &mut s,
            format!(
                "GET /script/cd?close=1 HTTP/1.1\r\nHost: {HOST}\r\n\r\n\
                 GET /echo?second HTTP/1.1\r\nHost: {HOST}\r\n\r\n"
            )
            .as_bytes(),
        );
        let (bytes, end) = read_all(&mut s, Duration::from_secs(20));
        assert_eq!(end, End::Closed);
        // The body runs to the close, so the second request cannot be answered
        // on this connection: the client sends it again elsewhere.
        assert_eq!(
            String::from_utf8_lossy(&bytes),
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\nuntil close"
        );
    }
}

both_ways! {
    fn an_early_final_answer_to_expect_100_continue_ends_the_exchange(over) {
        let Some(server) = start_over(over, "expectearly", "", "") else {
            return;
        };
        // The app refuses the upload without asking for the body.
        script(
            &server,
            "toolarge",
            b"HTTP/1.1 413 Content Too Large\r\nContent-Length: 8\r\n\r\ntoo big\n",
        );
        let mut s = server.dial();
        send(
            &mut s,
            format!(
                "POST /script/toolarge?early=1 HTTP/1.1\r\nHost: {HOST}\r\nExpect: 100-continue\r\n\
                 Content-Length: 10\r\n\r\n"
            )
            .as_bytes(),
        );
        // The body was never sent, so what the client sends next could not be
        // told from it: the front answers and closes.
        let (bytes, end) = read_all(&mut s, Duration::from_secs(20));
        assert_eq!(end, End::Closed, "{:?}", String::from_utf8_lossy(&bytes));
        assert_eq!(
            String::from_utf8_lossy(&bytes),
            "HTTP/1.1 413 Content Too Large\r\nContent-Length: 8\r\nConnection: close\r\n\r\ntoo big\n"
        );
    }
}
