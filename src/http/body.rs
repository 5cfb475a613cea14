//! Body framing: where a message body ends, found by scanning the bytes as
//! they arrive (RFC 9112 sections 6 and 7). The proxy forwards the bytes as
//! they are, except trailer fields that must not be trailers (`forward`);
//! this validates, counts and filters. Pure: no I/O.

use super::head::{is_tchar, BodyKind};

/// A framing violation in a body (bad chunk size, missing CRLF, ...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrameError(pub &'static str);

impl std::fmt::Display for FrameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "bad body framing: {}", self.0)
    }
}

impl std::error::Error for FrameError {}

/// The result of one `scan`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scan {
    /// How many bytes from the start of the input belong to this body
    /// (framing included). Bytes after that belong to the next message.
    pub used: usize,
    /// The body ended within `used`.
    pub done: bool,
}

/// Tracks one body from its first byte to its end.
#[derive(Debug, Clone)]
pub struct Framer {
    #[cfg_attr(not(test), allow(dead_code))]
    kind: BodyKind,
    state: State,
    /// Bytes of the current chunk-size line, or of the trailer section.
    meta: usize,
    /// `forward` only: the trailer field line read so far, held until it is
    /// complete and known to pass (at most the trailer section limit).
    field: Vec<u8>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Bytes left of a Content-Length body.
    Length(u64),
    Close,
    Chunked(Chunk),
    Done,
    /// A framing error was found; it is returned again on every later call.
    Failed(&'static str),
}

/// Where a chunked body is (RFC 9112 7.1):
/// `chunk-size [ BWS ";" ext ] CRLF data CRLF ... 0 [ext] CRLF *(trailer CRLF) CRLF`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chunk {
    /// Before the first hex digit of a chunk size.
    SizeStart,
    /// Inside the hex digits; the size so far.
    Size(u64),
    /// Whitespace after the size, which must lead to `;` (BWS).
    SizeSpace(u64),
    /// Inside the chunk extensions.
    Ext(u64),
    /// CR seen at the end of the size line.
    SizeLf(u64),
    /// Payload bytes left in this chunk.
    Data(u64),
    /// Expecting the CR after the payload.
    DataCr,
    /// Expecting the LF after the payload.
    DataLf,
    /// At the start of a trailer line, or of the final CRLF.
    TrailerStart,
    TrailerName,
    TrailerValue,
    TrailerLf,
    /// CR of the final CRLF seen.
    FinalLf,
}

/// Largest chunk size accepted: what fits an i64 (and so an off_t).
const MAX_CHUNK: u64 = i64::MAX as u64;

/// Longest chunk-size line (size and extensions). Extensions are forwarded,
/// never buffered, but no real sender needs more.
const MAX_SIZE_LINE: usize = 4096;

/// Largest trailer section, the same bound as a head.
const MAX_TRAILERS: usize = super::head::MAX_HEAD;

impl Framer {
    pub fn new(kind: BodyKind) -> Framer {
        let state = match kind {
            BodyKind::None | BodyKind::Length(0) => State::Done,
            BodyKind::Length(n) => State::Length(n),
            BodyKind::Chunked => State::Chunked(Chunk::SizeStart),
            BodyKind::Close => State::Close,
        };
        Framer {
            kind,
            state,
            meta: 0,
            field: Vec::new(),
        }
    }

    /// The framing this body was created with.
    #[cfg(test)]
    pub fn kind(&self) -> BodyKind {
        self.kind
    }

    /// Feeds the next bytes. A `Close` body never ends here (the caller ends it
    /// at EOF); `None` is done at once with `used == 0`.
    ///
    /// After the body has ended every call returns `used == 0, done == true`.
    /// After a FrameError every call returns the same error.
    pub fn scan(&mut self, input: &[u8]) -> Result<Scan, FrameError> {
        self.run(input, None, false)
    }

    /// Like `scan`, but appends to `out` the bytes to pass on: the body as
    /// framed, minus trailer fields a recipient must not take from a trailer
    /// section (RFC 9110 6.5.1: framing, routing, connection handling,
    /// authentication, content handling; see `trailer_passes`). An app that
    /// merged a `Content-Length` or `Host` trailer into the head would
    /// otherwise see what the front never checked. Each trailer field is held
    /// until its line is complete, then passed on or dropped.
    pub fn forward(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<Scan, FrameError> {
        let mut used = 0;
        if !self.in_trailers() {
            // Up to the trailer section the framing passes unchanged.
            let scan = self.run(input, None, true)?;
            out.extend_from_slice(&input[..scan.used]);
            used = scan.used;
            if scan.done || !self.in_trailers() {
                return Ok(scan);
            }
        }
        // The trailer section (at most MAX_TRAILERS bytes), byte by byte.
        while used < input.len() {
            let b = input[used];
            // The empty line that ends the section always passes: its bytes
            // go out directly, so a body without trailers holds no storage.
            let final_line = self.field.is_empty()
                && (b == b'\r' || b == b'\n')
                && matches!(
                    self.state,
                    State::Chunked(Chunk::TrailerStart | Chunk::FinalLf)
                );
            self.run(&input[used..used + 1], None, false)?;
            used += 1;
            if final_line {
                out.push(b);
                if self.state == State::Done {
                    return Ok(Scan { used, done: true });
                }
                continue;
            }
            self.field.push(b);
            match self.state {
                State::Done => {
                    // The final CRLF.
                    out.extend_from_slice(&self.field);
                    self.field = Vec::new();
                    return Ok(Scan { used, done: true });
                }
                State::Chunked(Chunk::TrailerStart) => {
                    // A whole field line, CRLF included.
                    let name_end = self.field.iter().position(|&b| b == b':').unwrap_or(0);
                    if trailer_passes(&self.field[..name_end]) {
                        out.extend_from_slice(&self.field);
                    }
                    self.field.clear();
                }
                _ => {}
            }
        }
        Ok(Scan { used, done: false })
    }

    /// In the trailer section of a chunked body (after the last chunk).
    fn in_trailers(&self) -> bool {
        matches!(
            self.state,
            State::Chunked(
                Chunk::TrailerStart
                    | Chunk::TrailerName
                    | Chunk::TrailerValue
                    | Chunk::TrailerLf
                    | Chunk::FinalLf
            )
        )
    }

    /// Whether the body has ended.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Like `scan`, but appends the decoded payload (chunk framing removed) to
    /// `out`; used when a chunked response goes to an HTTP/1.0 client.
    pub fn decode(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<Scan, FrameError> {
        self.run(input, Some(out), false)
    }

    /// `stop_at_trailers`: a chunked body returns (not done) right after the
    /// last chunk's size line, before its trailer section.
    fn run(
        &mut self,
        input: &[u8],
        out: Option<&mut Vec<u8>>,
        stop_at_trailers: bool,
    ) -> Result<Scan, FrameError> {
        match self.state {
            State::Done => Ok(Scan {
                used: 0,
                done: true,
            }),
            State::Failed(why) => Err(FrameError(why)),
            State::Close => {
                if let Some(out) = out {
                    out.extend_from_slice(input);
                }
                Ok(Scan {
                    used: input.len(),
                    done: false,
                })
            }
            State::Length(left) => {
                let used = clamp(left, input.len());
                if let Some(out) = out {
                    out.extend_from_slice(&input[..used]);
                }
                let left = left - used as u64;
                self.state = if left == 0 {
                    State::Done
                } else {
                    State::Length(left)
                };
                Ok(Scan {
                    used,
                    done: left == 0,
                })
            }
            State::Chunked(chunk) => match self.chunked(chunk, input, out, stop_at_trailers) {
                Ok(scan) => Ok(scan),
                Err(why) => {
                    self.state = State::Failed(why);
                    Err(FrameError(why))
                }
            },
        }
    }

    /// Walks the chunked framing byte by byte, and payload in whole slices.
    fn chunked(
        &mut self,
        mut chunk: Chunk,
        input: &[u8],
        mut out: Option<&mut Vec<u8>>,
        stop_at_trailers: bool,
    ) -> Result<Scan, &'static str> {
        let mut i = 0;
        while i < input.len() {
            if let Chunk::Data(left) = chunk {
                let take = clamp(left, input.len() - i);
                if let Some(out) = out.as_deref_mut() {
                    out.extend_from_slice(&input[i..i + take]);
                }
                i += take;
                let left = left - take as u64;
                chunk = if left == 0 {
                    Chunk::DataCr
                } else {
                    Chunk::Data(left)
                };
                continue;
            }
            let b = input[i];
            i += 1;
            self.meta += 1;
            match self.step(chunk, b)? {
                Some(Chunk::TrailerStart) if stop_at_trailers => {
                    self.state = State::Chunked(Chunk::TrailerStart);
                    return Ok(Scan {
                        used: i,
                        done: false,
                    });
                }
                Some(next) => chunk = next,
                None => {
                    self.state = State::Done;
                    return Ok(Scan {
                        used: i,
                        done: true,
                    });
                }
            }
        }
        self.state = State::Chunked(chunk);
        Ok(Scan {
            used: i,
            done: false,
        })
    }

    /// One framing byte. Ok(None): that byte ended the body.
    fn step(&mut self, chunk: Chunk, b: u8) -> Result<Option<Chunk>, &'static str> {
        // A bare LF is refused everywhere in the framing: peers that accept
        // it as a line end disagree with those that do not, which is how
        // chunked smuggling works. States that expect a line end here
        // report their own, more precise error.
        let at_line_end = matches!(
            chunk,
            Chunk::SizeLf(_) | Chunk::DataCr | Chunk::DataLf | Chunk::TrailerLf | Chunk::FinalLf
        );
        if b == b'\n' && !at_line_end {
            return Err("bare LF in chunked body");
        }
        let next = match chunk {
            Chunk::SizeStart => match hex(b) {
                Some(d) => Chunk::Size(d),
                None => return Err("invalid chunk size"),
            },
            Chunk::Size(n) => match b {
                b'\r' => Chunk::SizeLf(n),
                b';' => Chunk::Ext(n),
                b' ' | b'\t' => Chunk::SizeSpace(n),
                _ => {
                    let d = hex(b).ok_or("invalid chunk size")?;
                    let n = n.checked_mul(16).and_then(|n| n.checked_add(d));
                    match n {
                        Some(n) if n <= MAX_CHUNK => Chunk::Size(n),
                        _ => return Err("chunk size overflows"),
                    }
                }
            },
            Chunk::SizeSpace(n) => match b {
                b' ' | b'\t' => Chunk::SizeSpace(n),
                b';' => Chunk::Ext(n),
                _ => return Err("invalid chunk size"),
            },
            Chunk::Ext(n) => match b {
                b'\r' => Chunk::SizeLf(n),
                b'\t' | b' '..=b'~' | 0x80..=0xff => Chunk::Ext(n),
                _ => return Err("invalid chunk extension"),
            },
            Chunk::SizeLf(n) => match (b, n) {
                (b'\n', 0) => {
                    self.meta = 0;
                    Chunk::TrailerStart
                }
                (b'\n', n) => {
                    self.meta = 0;
                    Chunk::Data(n)
                }
                _ => return Err("missing LF after chunk size"),
            },
            Chunk::Data(_) => unreachable!("payload is consumed in slices by chunked()"),
            Chunk::DataCr => match b {
                b'\r' => Chunk::DataLf,
                _ => return Err("missing CRLF after chunk data"),
            },
            Chunk::DataLf => match b {
                b'\n' => {
                    self.meta = 0;
                    Chunk::SizeStart
                }
                _ => return Err("missing CRLF after chunk data"),
            },
            Chunk::TrailerStart => match b {
                b'\r' => Chunk::FinalLf,
                _ if is_tchar(b) => Chunk::TrailerName,
                _ => return Err("invalid trailer field"),
            },
            Chunk::TrailerName => match b {
                b':' => Chunk::TrailerValue,
                _ if is_tchar(b) => Chunk::TrailerName,
                _ => return Err("invalid trailer field"),
            },
            Chunk::TrailerValue => match b {
                b'\r' => Chunk::TrailerLf,
                b'\t' | b' '..=b'~' | 0x80..=0xff => Chunk::TrailerValue,
                _ => return Err("invalid trailer field"),
            },
            Chunk::TrailerLf => match b {
                b'\n' => Chunk::TrailerStart,
                _ => return Err("missing LF after trailer field"),
            },
            Chunk::FinalLf => match b {
                b'\n' => return Ok(None),
                _ => return Err("missing LF after trailer section"),
            },
        };
        let trailer = matches!(
            next,
            Chunk::TrailerStart
                | Chunk::TrailerName
                | Chunk::TrailerValue
                | Chunk::TrailerLf
                | Chunk::FinalLf
        );
        if trailer && self.meta > MAX_TRAILERS {
            return Err("trailer section too large");
        }
        if !trailer && self.meta > MAX_SIZE_LINE {
            return Err("chunk size line too long");
        }
        Ok(Some(next))
    }
}

/// Whether a trailer field may pass on. Refused: what frames, routes or
/// handles the message or its connection, authenticates, or says where the
/// request came from (RFC 9110 6.5.1 lists the kinds). Such a field is only
/// believed in the head, where the front has checked or rewritten it.
fn trailer_passes(name: &[u8]) -> bool {
    const NOT_IN_TRAILERS: &[&[u8]] = &[
        b"content-length",
        b"transfer-encoding",
        b"trailer",
        b"te",
        b"host",
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"upgrade",
        b"expect",
        b"max-forwards",
        b"range",
        b"if-match",
        b"if-none-match",
        b"if-modified-since",
        b"if-unmodified-since",
        b"if-range",
        b"cache-control",
        b"pragma",
        b"authorization",
        b"proxy-authorization",
        b"www-authenticate",
        b"proxy-authenticate",
        b"cookie",
        b"set-cookie",
        b"content-encoding",
        b"content-type",
        b"content-range",
        b"location",
        b"forwarded",
        b"x-forwarded-for",
        b"x-forwarded-host",
        b"x-forwarded-proto",
    ];
    !name.is_empty() && !NOT_IN_TRAILERS.iter().any(|n| name.eq_ignore_ascii_case(n))
}

/// `min(left, avail)` as a usize.
fn clamp(left: u64, avail: usize) -> usize {
    usize::try_from(left).map_or(avail, |left| left.min(avail))
}

fn hex(b: u8) -> Option<u64> {
    (b as char).to_digit(16).map(u64::from)
}

#[cfg(test)]
mod tests {
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
}
