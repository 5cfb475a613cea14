//! Response heads: `parse_response` never panics nor over-claims, and the
//! head `write_response_head` gives the client frames the body the way the
//! front then relays it (same status, same framing; close-delimited when a
//! chunked body is decoded for an HTTP/1.0 client).
#![no_main]

#[allow(dead_code, unused_imports)]
#[path = "../../src/http/mod.rs"]
mod http;

use http::head::{parse_response, write_response_head, BodyKind, MAX_HEAD, MAX_HEADERS};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&flags, wire)) = data.split_first() else {
        return;
    };
    let head_request = flags & 1 != 0;
    let client_minor = (flags >> 1) & 1;
    let keep = flags & 4 != 0;
    let Ok(Some((head, len))) = parse_response(wire, head_request) else {
        return;
    };
    assert!(len <= wire.len() && len <= MAX_HEAD);
    assert_eq!(
        parse_response(&wire[..len], head_request),
        Ok(Some((head.clone(), len)))
    );
    assert_eq!(parse_response(&wire[..len - 1], head_request), Ok(None));

    // As the front does: a chunked body to a 1.0 client is decoded and
    // close-delimited.
    let dechunk = client_minor == 0 && head.body == BodyKind::Chunked;
    let mut out = Vec::new();
    write_response_head(&head, client_minor, keep, dechunk, &mut out);
    if out.len() > MAX_HEAD || head.fields().list().len() >= MAX_HEADERS {
        // Past the limits only because of the Connection field we add.
        return;
    }
    let (again, used) = match parse_response(&out, head_request) {
        Ok(Some(parsed)) => parsed,
        other => panic!(
            "the head sent to the client does not parse: {other:?}\n{}",
            String::from_utf8_lossy(&out)
        ),
    };
    assert_eq!(used, out.len());
    assert_eq!(again.status, head.status);
    let expected = if dechunk { BodyKind::Close } else { head.body };
    assert_eq!(again.body, expected, "{}", String::from_utf8_lossy(&out));
    if again.body == BodyKind::Close && !head.upgrade {
        assert!(!again.keep_alive);
    }
});
