//! Request heads: `parse_request` never panics, never claims more bytes
//! than it was given or than MAX_HEAD, agrees with itself on prefixes, and
//! what `write_request_head` sends upstream parses back to the same request
//! (method, target, framing, host, upgrade): the front and the app can never
//! disagree about where a request ends.
#![no_main]

#[allow(dead_code, unused_imports)]
#[path = "../../src/http/mod.rs"]
mod http;

use http::head::{parse_request, write_request_head, Forwarded, MAX_HEAD, MAX_HEADERS};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(Some((head, len))) = parse_request(data) else {
        return;
    };
    assert!(len <= data.len() && len <= MAX_HEAD);
    // Whatever follows the head is not part of it: the same answer without it.
    assert_eq!(parse_request(&data[..len]), Ok(Some((head.clone(), len))));
    // A head cut short is incomplete, never refused nor accepted.
    for cut in [len - 1, len / 2, len.saturating_sub(2)] {
        assert_eq!(
            parse_request(&data[..cut]),
            Ok(None),
            "prefix of {cut} bytes"
        );
    }

    let fwd = Forwarded {
        client_ip: std::net::IpAddr::from([203, 0, 113, 7]),
        proto: "http",
    };
    let mut out = Vec::new();
    write_request_head(&head, &fwd, &mut out);
    if head.host().is_none() || out.len() > MAX_HEAD || head.fields().list().len() + 4 > MAX_HEADERS {
        // No Host (HTTP/1.0) is not routed to an app; an upstream head grown
        // past the limits by X-Forwarded-* is not comparable.
        return;
    }
    let (again, used) = match parse_request(&out) {
        Ok(Some(parsed)) => parsed,
        other => panic!(
            "the forwarded head does not parse: {other:?}\n{}",
            String::from_utf8_lossy(&out)
        ),
    };
    assert_eq!(used, out.len());
    assert_eq!(again.method(), head.method());
    assert_eq!(again.target(), head.target());
    assert_eq!(again.body, head.body);
    assert_eq!(again.host(), head.host());
    assert_eq!(again.upgrade, head.upgrade);
    assert_eq!(again.minor, 1);
});
