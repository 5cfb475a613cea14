//! Request and response heads: parse with httparse, validate framing, rewrite
//! for forwarding (hop-by-hop headers removed, `X-Forwarded-*` added).
//!
//! Pure: no I/O. Every refusal is a `HeadError` whose `status()` is what the
//! front answers (400, 414, 431).

/// How a message body is delimited (RFC 9112 section 6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyKind {
    /// No body (requests without CL/TE; HEAD/1xx/204/304 responses).
    None,
    /// `Content-Length: n`.
    Length(u64),
    /// `Transfer-Encoding: ... chunked`.
    Chunked,
    /// Response only: the body runs until the upstream closes.
    Close,
}

/// One header as received. `name` keeps its original case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub name: String,
    pub value: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestHead {
    pub method: String,
    /// The request target as sent (origin-form, or absolute-form reduced to origin-form).
    pub target: String,
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub minor: u8,
    pub headers: Vec<Header>,
    /// Host header (or absolute-form authority): lowercased, port stripped. None if absent.
    pub host: Option<String>,
    /// The Host header value exactly as sent (with port), for X-Forwarded-Host.
    pub host_raw: Option<String>,
    pub body: BodyKind,
    /// Whether the client wants the connection kept after this exchange
    /// (1.1 default yes unless `Connection: close`; 1.0 only with `keep-alive`).
    pub keep_alive: bool,
    /// `Connection: upgrade` with an `Upgrade` header.
    pub upgrade: bool,
    /// `Expect: 100-continue`.
    pub expect_continue: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseHead {
    pub status: u16,
    pub reason: String,
    pub minor: u8,
    pub headers: Vec<Header>,
    /// Decided with the request method in mind (HEAD: None).
    pub body: BodyKind,
    /// Whether the upstream connection may be reused after this response.
    pub keep_alive: bool,
    /// 101 Switching Protocols.
    pub upgrade: bool,
}

/// Why a head was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeadError {
    /// Malformed or ambiguous: 400. The string says what.
    Bad(&'static str),
    /// Header block over the limit: 431.
    TooLarge,
    /// Request target over the limit: 414.
    UriTooLong,
}

impl HeadError {
    pub fn status(&self) -> u16 {
        match self {
            HeadError::Bad(_) => 400,
            HeadError::TooLarge => 431,
            HeadError::UriTooLong => 414,
        }
    }
}

impl std::fmt::Display for HeadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HeadError::Bad(why) => write!(f, "bad request: {why}"),
            HeadError::TooLarge => write!(f, "header block too large"),
            HeadError::UriTooLong => write!(f, "request target too long"),
        }
    }
}

impl std::error::Error for HeadError {}

/// Largest header block accepted (REFERENCE: over 64 KiB is 431).
pub const MAX_HEAD: usize = 64 * 1024;

/// Parses a request head from the start of `buf`.
/// Ok(None): incomplete (and still under MAX_HEAD). Ok(Some((head, len))):
/// `len` bytes of `buf` were the head. Refuses what REFERENCE.md lists.
pub fn parse_request(buf: &[u8]) -> Result<Option<(RequestHead, usize)>, HeadError> {
    let _ = buf;
    todo!("parse_request")
}

/// Parses a response head. `head_request`: the request was HEAD (no body follows).
/// 1xx responses other than 101 come back as complete heads with BodyKind::None;
/// the caller relays them and parses again.
pub fn parse_response(
    buf: &[u8],
    head_request: bool,
) -> Result<Option<(ResponseHead, usize)>, HeadError> {
    let _ = (buf, head_request);
    todo!("parse_response")
}

/// What the proxy adds when forwarding a request.
pub struct Forwarded<'a> {
    /// The client's address, appended to X-Forwarded-For.
    pub client_ip: std::net::IpAddr,
    /// "http" or "https".
    pub proto: &'a str,
}

/// Writes the head to send upstream: request line (always HTTP/1.1), headers
/// minus hop-by-hop ones (Connection, Keep-Alive, Proxy-Connection, TE,
/// Trailer, Upgrade unless `head.upgrade`, and those named in Connection),
/// keeping Transfer-Encoding/Content-Length as framing requires, plus
/// X-Forwarded-For (appended), X-Forwarded-Proto, X-Forwarded-Host, and
/// `Connection: upgrade` + `Upgrade` when upgrading.
pub fn write_request_head(head: &RequestHead, fwd: &Forwarded<'_>, out: &mut Vec<u8>) {
    let _ = (head, fwd, out);
    todo!("write_request_head")
}

/// Writes the head to send to the client: status line in HTTP/1.1 (or 1.0 when
/// `client_minor` is 0), headers minus hop-by-hop ones, and
/// `Connection: close` when `keep_alive` is false (`keep-alive` for a 1.0
/// client that keeps it). When `dechunk` is true (a 1.0 client and a chunked
/// body) Transfer-Encoding is dropped and the body is close-delimited.
pub fn write_response_head(
    head: &ResponseHead,
    client_minor: u8,
    keep_alive: bool,
    dechunk: bool,
    out: &mut Vec<u8>,
) {
    let _ = (head, client_minor, keep_alive, dechunk, out);
    todo!("write_response_head")
}
