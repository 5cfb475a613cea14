//! Body framing: `Framer::scan` and `Framer::decode` never panic, agree with
//! each other, never use more than they are given, and give the same result
//! however the bytes are split across calls (a peer choosing packet
//! boundaries cannot move the end of a body).
#![no_main]

#[allow(dead_code, unused_imports)]
#[path = "../../src/http/mod.rs"]
mod http;

use http::body::FrameError;
use http::{BodyKind, Framer};
use libfuzzer_sys::fuzz_target;

/// Feeds `parts` in turn; returns (bytes used, done, decoded payload) or the error.
fn feed(kind: BodyKind, parts: &[&[u8]]) -> Result<(usize, bool, Vec<u8>), FrameError> {
    let mut scan = Framer::new(kind);
    let mut decode = Framer::new(kind);
    let mut used = 0;
    let mut done = scan.is_done();
    let mut out = Vec::new();
    for part in parts {
        let s = scan.scan(part)?;
        let before = out.len();
        let d = decode.decode(part, &mut out)?;
        assert_eq!(s, d, "scan and decode agree");
        assert!(s.used <= part.len());
        assert!(out.len() - before <= s.used, "decoding never adds bytes");
        assert_eq!(scan.is_done(), s.done);
        used += s.used;
        done = s.done;
        if s.done {
            // Once done, nothing more is taken.
            let again = scan.scan(part).expect("a finished body stays finished");
            assert_eq!((again.used, again.done), (0, true));
            break;
        }
        assert_eq!(
            s.used,
            part.len(),
            "an unfinished body uses all it is given"
        );
    }
    Ok((used, done, out))
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 3 {
        return;
    }
    let kind = match data[0] % 4 {
        0 => BodyKind::Chunked,
        1 => BodyKind::Length(u64::from(data[1]) * 3),
        2 => BodyKind::Close,
        _ => BodyKind::Length(u64::MAX - u64::from(data[1])),
    };
    let split = usize::from(data[2]);
    let body = &data[3..];
    let whole = feed(kind, &[body]);
    let at = split.min(body.len());
    let (a, b) = body.split_at(at);
    assert_eq!(feed(kind, &[a, b]), whole, "split at {at}");
    let bytes: Vec<&[u8]> = body.chunks(1).collect();
    assert_eq!(feed(kind, &bytes), whole, "byte by byte");
    if let (BodyKind::Length(n), Ok((used, done, out))) = (kind, &whole) {
        assert_eq!(*done, *used as u64 == n);
        assert_eq!(&out[..], &body[..*used]);
    }
});
