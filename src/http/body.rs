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
mod tests;
