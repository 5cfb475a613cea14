//! Test helpers shared by the head parser's and the head writer's tests:
//! parse a whole head or fail the test, compare wire bytes readably.

use super::head::{parse_request, parse_response, RequestHead, ResponseHead};

/// Compares bytes and prints both as text blocks on a mismatch.
#[track_caller]
pub fn assert_wire(expected: &[u8], got: &[u8]) {
    if expected != got {
        panic!(
            "\n--- expected ---\n{}\n--- got ---\n{}\n---",
            String::from_utf8_lossy(expected).replace("\r\n", "\\r\\n\n"),
            String::from_utf8_lossy(got).replace("\r\n", "\\r\\n\n"),
        );
    }
}

#[track_caller]
pub fn request(wire: &[u8]) -> RequestHead {
    match parse_request(wire) {
        Ok(Some((head, len))) => {
            assert_eq!(len, wire.len(), "the whole input was the head");
            head
        }
        other => panic!("expected a head, got {other:?}"),
    }
}

#[track_caller]
pub fn response(wire: &[u8], head_request: bool) -> ResponseHead {
    match parse_response(wire, head_request) {
        Ok(Some((head, len))) => {
            assert_eq!(len, wire.len(), "the whole input was the head");
            head
        }
        other => panic!("expected a head, got {other:?}"),
    }
}
