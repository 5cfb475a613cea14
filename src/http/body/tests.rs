//! Tests of `body.rs`: chunked bodies at every split point and byte by
//! byte, trailers filtered by `forward`, framing errors that stick, the
//! size-line and trailer bounds, length, none and close bodies.

use super::*;

/// A chunked body with extensions (one quoted, one after BWS) and trailers.
const CHUNKED: &[u8] =
    b"4;name=value\r\nWiki\r\n5 ; a=\"q;r\"\r\npedia\r\nE\r\n in\r\n\r\nchunks.\r\n\
00;last\r\nExpires: never\r\nX-T:1\r\n\r\n";
const PAYLOAD: &[u8] = b"Wikipedia in\r\n\r\nchunks.";
const NEXT: &[u8] = b"GET /next HTTP/1.1\r\nHost: a\r\n\r\n";

/// What `scan` returns when it used `used` bytes.
fn scanned(used: usize, done: bool) -> Result<Scan, FrameError> {
    Ok(Scan { used, done })
}

fn with_next(body: &[u8]) -> Vec<u8> {
    [body, NEXT].concat()
}

/// Feeds `parts` in turn the way a connection does: each call gets the
/// bytes the previous ones did not use. Returns total used, done, payload.
fn feed(kind: BodyKind, parts: &[&[u8]]) -> Result<(usize, bool, Vec<u8>), FrameError> {
    let mut scan = Framer::new(kind);
    let mut decode = Framer::new(kind);
    let mut used = 0;
    let mut done = false;
    let mut out = Vec::new();
    for part in parts {
        let s = scan.scan(part)?;
        let d = decode.decode(part, &mut out)?;
        assert_eq!(s, d, "scan and decode agree");
        used += s.used;
        done = s.done;
        assert_eq!(scan.is_done(), s.done);
        if s.done {
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

#[test]
fn chunked_body_in_one_piece() {
    let wire = with_next(CHUNKED);
    assert_eq!(
        feed(BodyKind::Chunked, &[&wire]),
        Ok((CHUNKED.len(), true, PAYLOAD.to_vec()))
    );
}

#[test]
fn chunked_body_survives_every_split_point() {
    let wire = with_next(CHUNKED);
    for at in 0..=wire.len() {
        let (a, b) = wire.split_at(at);
        let got = feed(BodyKind::Chunked, &[a, b]);
        assert_eq!(
            got,
            Ok((CHUNKED.len(), true, PAYLOAD.to_vec())),
            "split at {at}"
        );
    }
    for a in 0..CHUNKED.len() {
        for b in a..CHUNKED.len() {
            let parts = [&wire[..a], &wire[a..b], &wire[b..]];
            let got = feed(BodyKind::Chunked, &parts);
            assert_eq!(
                got,
                Ok((CHUNKED.len(), true, PAYLOAD.to_vec())),
                "split at {a} and {b}"
            );
        }
    }
}

#[test]
fn chunked_body_byte_by_byte() {
    let wire = with_next(CHUNKED);
    let parts: Vec<&[u8]> = wire.chunks(1).collect();
    assert_eq!(
        feed(BodyKind::Chunked, &parts),
        Ok((CHUNKED.len(), true, PAYLOAD.to_vec()))
    );
}

/// `forward` over `parts`, each call given what the previous left.
fn forward_all(kind: BodyKind, parts: &[&[u8]]) -> (Vec<u8>, usize, bool) {
    let mut f = Framer::new(kind);
    let (mut out, mut used, mut done) = (Vec::new(), 0, false);
    let mut carry: Vec<u8> = Vec::new();
    for part in parts {
        carry.extend_from_slice(part);
        let s = f.forward(&carry, &mut out).expect("valid body");
        carry.drain(..s.used);
        used += s.used;
        done = s.done;
        if done {
            break;
        }
    }
    (out, used, done)
}

#[test]
fn forward_drops_framing_and_routing_trailers_at_every_split_point() {
    let body: &[u8] =
        b"3\r\nabc\r\n0\r\nContent-Length: 5\r\nX-Kept: 1\r\nTransfer-Encoding: chunked\r\n\
host: evil\r\nX-Forwarded-For: 1.2.3.4\r\nAuthorization: Bearer x\r\nConnection: close\r\n\
X-Also:2\r\nTE: trailers\r\nCONTENT-TYPE: text/x\r\n\r\n";
    let kept: &[u8] = b"3\r\nabc\r\n0\r\nX-Kept: 1\r\nX-Also:2\r\n\r\n";
    let wire = with_next(body);
    for at in 0..=wire.len() {
        let (a, b) = wire.split_at(at);
        let (out, used, done) = forward_all(BodyKind::Chunked, &[a, b]);
        assert_eq!(
            String::from_utf8_lossy(&out),
            String::from_utf8_lossy(kept),
            "split at {at}"
        );
        assert_eq!((used, done), (body.len(), true), "split at {at}");
    }
    let parts: Vec<&[u8]> = wire.chunks(1).collect();
    assert_eq!(
        forward_all(BodyKind::Chunked, &parts),
        (kept.to_vec(), body.len(), true)
    );
    // Without trailers, and for the other framings, bytes pass unchanged.
    for (kind, body) in [
        (BodyKind::Chunked, CHUNKED),
        (BodyKind::Chunked, &b"0\r\n\r\n"[..]),
        (BodyKind::Length(5), &b"hello"[..]),
    ] {
        let wire = with_next(body);
        let (out, used, done) = forward_all(kind, &[&wire]);
        assert_eq!((out.as_slice(), used, done), (body, body.len(), true));
    }
    // CHUNKED's own trailers (Expires, X-T) are ordinary and pass.
    let (out, _, _) = forward_all(BodyKind::Chunked, &[CHUNKED]);
    assert_eq!(out, CHUNKED);
}

#[test]
fn chunked_body_leaves_the_pipelined_message() {
    let wire = with_next(b"3\r\nabc\r\n0\r\n\r\n");
    let mut framer = Framer::new(BodyKind::Chunked);
    let scan = framer.scan(&wire).unwrap();
    assert_eq!(
        scan,
        Scan {
            used: 13,
            done: true
        }
    );
    assert_eq!(&wire[scan.used..], NEXT);
    // Once done, nothing more is taken.
    assert_eq!(framer.scan(NEXT), scanned(0, true));
    let mut out = Vec::new();
    assert_eq!(framer.decode(NEXT, &mut out), scanned(0, true));
    assert!(out.is_empty());
}

#[test]
fn empty_chunked_body() {
    assert_eq!(
        feed(BodyKind::Chunked, &[b"0\r\n\r\n"]),
        Ok((5, true, Vec::new()))
    );
    let mut framer = Framer::new(BodyKind::Chunked);
    assert_eq!(framer.scan(b""), scanned(0, false));
    assert!(!framer.is_done());
}

#[test]
fn chunk_sizes_are_hex_either_case() {
    let body = [
        b"a\r\n".as_slice(),
        &[b'x'; 10],
        b"\r\nA\r\n",
        &[b'y'; 10],
        b"\r\n1f\r\n",
        &[b'z'; 31],
        b"\r\n0\r\n\r\n",
    ]
    .concat();
    let (used, done, out) = feed(BodyKind::Chunked, &[&body]).unwrap();
    assert_eq!((used, done, out.len()), (body.len(), true, 51));
}

#[test]
fn largest_chunk_size_is_accepted() {
    let mut framer = Framer::new(BodyKind::Chunked);
    assert_eq!(framer.scan(b"7fffffffffffffff\r\nab"), scanned(20, false));
    let mut framer = Framer::new(BodyKind::Chunked);
    assert_eq!(
        framer.scan(b"00000000000000000000000001\r\n"),
        scanned(28, false)
    );
}

#[test]
fn chunked_framing_errors() {
    let cases: &[(&[u8], &str)] = &[
        (b"g\r\n", "invalid chunk size"),
        (b"0x5\r\n", "invalid chunk size"),
        (b"-1\r\n", "invalid chunk size"),
        (b"\r\n", "invalid chunk size"),
        (b";ext\r\n", "invalid chunk size"),
        (b" 3\r\n", "invalid chunk size"),
        (b"3 \r\nabc\r\n", "invalid chunk size"),
        (b"8000000000000000\r\n", "chunk size overflows"),
        (b"10000000000000000\r\n", "chunk size overflows"),
        (b"3\nabc\r\n0\r\n\r\n", "bare LF in chunked body"),
        (b"3;x\nabc\r\n", "bare LF in chunked body"),
        (b"3\r\nabc\n0\r\n\r\n", "missing CRLF after chunk data"),
        (b"3\r\nabcd\r\n", "missing CRLF after chunk data"),
        (b"3\r\nabc\rX", "missing CRLF after chunk data"),
        (b"3\rabc", "missing LF after chunk size"),
        (b"3;a\x00b\r\n", "invalid chunk extension"),
        (b"3;a\x7f\r\n", "invalid chunk extension"),
        (b"0\r\n\n", "bare LF in chunked body"),
        (b"0\r\nX: 1\n\r\n", "bare LF in chunked body"),
        (b"0\r\n\rX", "missing LF after trailer section"),
        (b"0\r\nX: 1\rX", "missing LF after trailer field"),
        (b"0\r\n X: 1\r\n\r\n", "invalid trailer field"),
        (b"0\r\nX : 1\r\n\r\n", "invalid trailer field"),
        (b"0\r\nX: \x01\r\n\r\n", "invalid trailer field"),
    ];
    for (wire, why) in cases {
        let what = String::from_utf8_lossy(wire);
        assert_eq!(
            feed(BodyKind::Chunked, &[wire]),
            Err(FrameError(why)),
            "for {what:?}"
        );
        // The same error wherever the bytes are split.
        for at in 0..=wire.len() {
            let (a, b) = wire.split_at(at);
            assert_eq!(
                feed(BodyKind::Chunked, &[a, b]),
                Err(FrameError(why)),
                "for {what:?} split at {at}"
            );
        }
    }
}

#[test]
fn an_error_sticks() {
    let mut framer = Framer::new(BodyKind::Chunked);
    assert_eq!(framer.scan(b"z"), Err(FrameError("invalid chunk size")));
    assert_eq!(
        framer.scan(b"0\r\n\r\n"),
        Err(FrameError("invalid chunk size"))
    );
    assert!(!framer.is_done());
}

#[test]
fn size_line_and_trailers_are_bounded() {
    let mut long_ext = b"1;".to_vec();
    long_ext.resize(MAX_SIZE_LINE + 10, b'a');
    assert_eq!(
        feed(BodyKind::Chunked, &[&long_ext]),
        Err(FrameError("chunk size line too long"))
    );
    let mut ok_ext = b"1;".to_vec();
    ok_ext.resize(MAX_SIZE_LINE - 2, b'a');
    ok_ext.extend_from_slice(b"\r\nx\r\n0\r\n\r\n");
    assert_eq!(
        feed(BodyKind::Chunked, &[&ok_ext]).map(|(u, d, _)| (u, d)),
        Ok((ok_ext.len(), true))
    );

    let mut trailers = b"0\r\n".to_vec();
    while trailers.len() < MAX_TRAILERS + 10 {
        trailers.extend_from_slice(b"X-Trailer: some value\r\n");
    }
    assert_eq!(
        feed(BodyKind::Chunked, &[&trailers]),
        Err(FrameError("trailer section too large"))
    );
}

#[test]
fn length_body_counts_down() {
    let wire = with_next(b"hello");
    assert_eq!(
        feed(BodyKind::Length(5), &[&wire]),
        Ok((5, true, b"hello".to_vec()))
    );
    for at in 0..=wire.len() {
        let (a, b) = wire.split_at(at);
        assert_eq!(
            feed(BodyKind::Length(5), &[a, b]),
            Ok((5, true, b"hello".to_vec())),
            "split at {at}"
        );
    }
    let mut framer = Framer::new(BodyKind::Length(5));
    assert_eq!(framer.scan(b"hel"), scanned(3, false));
    assert_eq!(framer.scan(b""), scanned(0, false));
    assert_eq!(framer.scan(b"loGET"), scanned(2, true));
    assert!(framer.is_done());
    assert_eq!(framer.scan(b"more"), scanned(0, true));
    let mut framer = Framer::new(BodyKind::Length(u64::MAX));
    assert_eq!(framer.scan(b"abc"), scanned(3, false));
}

#[test]
fn none_and_zero_length_are_done_at_once() {
    for kind in [BodyKind::None, BodyKind::Length(0)] {
        let mut framer = Framer::new(kind);
        assert!(framer.is_done());
        assert_eq!(framer.scan(NEXT), scanned(0, true));
        assert_eq!(framer.kind(), kind);
    }
}

#[test]
fn close_body_never_ends() {
    let mut framer = Framer::new(BodyKind::Close);
    assert_eq!(framer.scan(b"data: 1\n\n"), scanned(9, false));
    assert_eq!(framer.scan(b""), scanned(0, false));
    assert!(!framer.is_done());
    let mut out = b"kept".to_vec();
    assert_eq!(framer.decode(b"abc", &mut out), scanned(3, false));
    assert_eq!(out, b"keptabc");
}

#[test]
fn error_display() {
    assert_eq!(
        FrameError("invalid chunk size").to_string(),
        "bad body framing: invalid chunk size"
    );
}
