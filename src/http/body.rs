//! Body framing: where a message body ends, found by scanning the bytes as
//! they arrive (RFC 9112 sections 6 and 7). The proxy forwards the bytes as
//! they are; this only validates and counts. Pure: no I/O.

use super::head::BodyKind;

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
    kind: BodyKind,
}

impl Framer {
    pub fn new(kind: BodyKind) -> Framer {
        Framer { kind }
    }

    /// Feeds the next bytes. A `Close` body never ends here (the caller ends it
    /// at EOF); `None` is done at once with `used == 0`.
    pub fn scan(&mut self, input: &[u8]) -> Result<Scan, FrameError> {
        let _ = (input, self.kind);
        todo!("Framer::scan")
    }

    /// Whether the body has ended.
    pub fn is_done(&self) -> bool {
        todo!("Framer::is_done")
    }

    /// Like `scan`, but appends the decoded payload (chunk framing removed) to
    /// `out`; used when a chunked response goes to an HTTP/1.0 client.
    pub fn decode(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<Scan, FrameError> {
        let _ = (input, out);
        todo!("Framer::decode")
    }
}
