//! Request and response heads: parse with httparse, validate framing, and
//! gather what the front needs (host, keep-alive, upgrade, body kind).
//! Rewriting heads for forwarding is in `write.rs`, hop-by-hop rules in `hop.rs`.
//!
//! Pure: no I/O. Every refusal is a `HeadError` whose `status()` is what the
//! front answers (400, 414, 431, 501).
//!
//! A head is its bytes, copied once out of the read buffer, and ranges
//! over them (`fields.rs`). The `_into` forms parse into a head that served
//! an earlier message, reusing its storage: the front parses every head of
//! a keep-alive connection that way, so a head like the last one costs no
//! allocation.

use std::mem::MaybeUninit;

use super::fields::{Fields, Span};
use framing::{canonical_length, scan_fields};
pub(super) use framing::{list, trim_ows};

/// How a message body is delimited (RFC 9112 section 6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BodyKind {
    /// No body (requests without CL/TE; HEAD/1xx/204/304 responses).
    #[default]
    None,
    /// `Content-Length: n`.
    Length(u64),
    /// `Transfer-Encoding: ... chunked`.
    Chunked,
    /// Response only: the body runs until the upstream closes.
    Close,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RequestHead {
    fields: Fields,
    method: Span,
    /// The request target as sent (origin-form, or absolute-form reduced
    /// to origin-form).
    target: Span,
    /// Where the request line ends when it is exactly
    /// `method SP target SP HTTP/1.1\r\n` (it can be sent on as it is);
    /// 0 when it is not.
    line_end: u32,
    /// The host (Host header or absolute-form authority): lowercased, port
    /// stripped. None if absent.
    host: Option<Span>,
    /// The Host value exactly as sent (with port), for X-Forwarded-Host.
    host_raw: Option<Span>,
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub minor: u8,
    pub body: BodyKind,
    /// Whether the client wants the connection kept after this exchange
    /// (1.1 default yes unless `Connection: close`; 1.0 only with `keep-alive`).
    pub keep_alive: bool,
    /// `Connection: upgrade` with an `Upgrade` header.
    pub upgrade: bool,
    /// `Expect: 100-continue`.
    pub expect_continue: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ResponseHead {
    fields: Fields,
    reason: Span,
    /// Where the status line ends when it is exactly
    /// `HTTP/1.x SP status SP reason\r\n`; 0 when it is not.
    line_end: u32,
    pub status: u16,
    pub minor: u8,
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
    /// Well-formed but asks for what the front does not do (a transfer
    /// coding other than `chunked`): 501, as nginx answers.
    NotImplemented(&'static str),
}

impl HeadError {
    pub fn status(&self) -> u16 {
        match self {
            HeadError::Bad(_) => 400,
            HeadError::TooLarge => 431,
            HeadError::UriTooLong => 414,
            HeadError::NotImplemented(_) => 501,
        }
    }
}

impl std::fmt::Display for HeadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HeadError::Bad(why) => write!(f, "bad request: {why}"),
            HeadError::TooLarge => write!(f, "header block too large"),
            HeadError::UriTooLong => write!(f, "request target too long"),
            HeadError::NotImplemented(why) => write!(f, "not implemented: {why}"),
        }
    }
}

impl std::error::Error for HeadError {}

/// Largest header block accepted (REFERENCE: over 64 KiB is 431).
pub const MAX_HEAD: usize = 64 * 1024;

/// Longest request target accepted (over it: 414).
pub const MAX_TARGET: usize = 8 * 1024;

/// Most header fields in one head. Apache's default limit is 100; past this
/// many the head is refused as too large (431).
pub const MAX_HEADERS: usize = 256;

/// Header slots tried on the stack before falling back to `MAX_HEADERS` on the heap.
const STACK_HEADERS: usize = 64;

impl BodyKind {
    /// Whether body bytes follow the head (`Length(0)` and `None` have none).
    pub fn has_body(self) -> bool {
        !matches!(self, BodyKind::None | BodyKind::Length(0))
    }
}

impl RequestHead {
    pub fn method(&self) -> &str {
        self.fields.text(self.method)
    }

    /// The request target (origin-form, or `*` for OPTIONS).
    pub fn target(&self) -> &str {
        self.fields.text(self.target)
    }

    /// The host the request names: lowercased, port stripped.
    pub fn host(&self) -> Option<&str> {
        self.host.map(|s| self.fields.text(s))
    }

    /// The Host value exactly as sent (with port).
    pub fn host_raw(&self) -> Option<&str> {
        self.host_raw.map(|s| self.fields.text(s))
    }

    /// The value of the first header named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.fields.find(name)
    }

    pub fn fields(&self) -> &Fields {
        &self.fields
    }

    /// Drops every header named `name` (case-insensitive).
    pub fn remove_header(&mut self, name: &str) {
        self.fields.remove(name);
    }

    /// The request line's end when it can be sent on as it is, else 0.
    pub(super) fn line_end(&self) -> u32 {
        self.line_end
    }

    pub(super) fn method_span(&self) -> Span {
        self.method
    }

    pub(super) fn target_span(&self) -> Span {
        self.target
    }
}

impl ResponseHead {
    pub fn reason(&self) -> &str {
        self.fields.text(self.reason)
    }

    /// The value of the first header named `name` (case-insensitive).
    #[cfg(test)]
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.fields.find(name)
    }

    pub fn fields(&self) -> &Fields {
        &self.fields
    }

    /// The status line's end when it can be sent on as it is, else 0.
    pub(super) fn line_end(&self) -> u32 {
        self.line_end
    }
}

/// Parses a request head from the start of `buf`.
/// Ok(None): incomplete (and still under MAX_HEAD). Ok(Some((head, len))):
/// `len` bytes of `buf` were the head. Refuses what REFERENCE.md lists.
/// (The front uses `parse_request_into`; this form is for tests and the
/// fuzz targets.)
#[allow(dead_code)]
pub fn parse_request(buf: &[u8]) -> Result<Option<(RequestHead, usize)>, HeadError> {
    let mut head = RequestHead::default();
    Ok(parse_request_into(buf, &mut head)?.map(|len| (head, len)))
}

/// `parse_request` into `head`, reusing its storage. Ok(Some(len)): `head`
/// now says the new request. On Ok(None) and errors its contents are
/// unspecified (only its storage is worth keeping).
pub fn parse_request_into(buf: &[u8], head: &mut RequestHead) -> Result<Option<usize>, HeadError> {
    let window = &buf[..buf.len().min(MAX_HEAD)];
    with_header_slots(|slots| {
        let mut req = httparse::Request::new(&mut []);
        match req.parse_with_uninit_headers(window, slots) {
            Ok(httparse::Status::Complete(len)) => {
                Attempt::Done(request_head(&req, &window[..len], head).map(|()| Some(len)))
            }
            Ok(httparse::Status::Partial) => {
                Attempt::Done(incomplete(buf, target_too_long(window)))
            }
            Err(httparse::Error::TooManyHeaders) => Attempt::TooManyHeaders,
            Err(e) => {
                // A refusal on the request line of an over-long target is still a 414.
                if target_too_long(window) {
                    Attempt::Done(Err(HeadError::UriTooLong))
                } else {
                    Attempt::Done(Err(HeadError::Bad(diagnose(e, window))))
                }
            }
        }
    })
}

/// Parses a response head. `head_request`: the request was HEAD (no body follows).
/// 1xx responses other than 101 come back as complete heads with BodyKind::None;
/// the caller relays them and parses again.
pub fn parse_response(
    buf: &[u8],
    head_request: bool,
) -> Result<Option<(ResponseHead, usize)>, HeadError> {
    let mut head = ResponseHead::default();
    Ok(parse_response_into(buf, head_request, &mut head)?.map(|len| (head, len)))
}

/// `parse_response` into `head`, reusing its storage (as `parse_request_into`).
pub fn parse_response_into(
    buf: &[u8],
    head_request: bool,
    head: &mut ResponseHead,
) -> Result<Option<usize>, HeadError> {
    let window = &buf[..buf.len().min(MAX_HEAD)];
    with_header_slots(|slots| {
        let mut res = httparse::Response::new(&mut []);
        match httparse::ParserConfig::default()
            .parse_response_with_uninit_headers(&mut res, window, slots)
        {
            Ok(httparse::Status::Complete(len)) => Attempt::Done(
                response_head(&res, &window[..len], head_request, head).map(|()| Some(len)),
            ),
            Ok(httparse::Status::Partial) => Attempt::Done(incomplete(buf, false)),
            Err(httparse::Error::TooManyHeaders) => Attempt::TooManyHeaders,
            Err(e) => Attempt::Done(Err(HeadError::Bad(diagnose(e, window)))),
        }
    })
}

/// One httparse run with a given number of header slots.
enum Attempt {
    Done(Result<Option<usize>, HeadError>),
    TooManyHeaders,
}

/// Runs `attempt` with slots on the stack (the common case allocates nothing
/// for them), then once more with `MAX_HEADERS` slots on the heap.
/// The slots are left uninitialised (httparse fills those it uses), so a
/// parse does not first write out kilobytes of empty slots.
fn with_header_slots<'b>(
    mut attempt: impl FnMut(&mut [MaybeUninit<httparse::Header<'b>>]) -> Attempt,
) -> Result<Option<usize>, HeadError> {
    let mut stack = [MaybeUninit::<httparse::Header<'b>>::uninit(); STACK_HEADERS];
    if let Attempt::Done(result) = attempt(&mut stack) {
        return result;
    }
    let mut heap = vec![MaybeUninit::<httparse::Header<'b>>::uninit(); MAX_HEADERS];
    match attempt(&mut heap) {
        Attempt::Done(result) => result,
        Attempt::TooManyHeaders => Err(HeadError::TooLarge),
    }
}

/// The answer for a head that has not ended yet.
fn incomplete<T>(buf: &[u8], target_too_long: bool) -> Result<Option<T>, HeadError> {
    if target_too_long {
        Err(HeadError::UriTooLong)
    } else if buf.len() >= MAX_HEAD {
        // MAX_HEAD bytes and no end yet: the head can only end beyond the limit.
        Err(HeadError::TooLarge)
    } else {
        Ok(None)
    }
}

/// Whether the request line's target (complete or still arriving) is over
/// MAX_TARGET. Lets a long target be refused with 414 before the head ends.
fn target_too_long(window: &[u8]) -> bool {
    // httparse skips empty lines before the request line (RFC 9112 2.2).
    let start = window
        .iter()
        .position(|&b| b != b'\r' && b != b'\n')
        .unwrap_or(window.len());
    let line = &window[start..];
    let Some(space) = line.iter().position(|&b| b == b' ' || b == b'\n') else {
        return false;
    };
    if line[space] != b' ' {
        return false;
    }
    let target = &line[space + 1..];
    let end = target
        .iter()
        .position(|&b| b == b' ' || b == b'\r' || b == b'\n');
    end.unwrap_or(target.len()) > MAX_TARGET
}

/// Turns an httparse error into the reason given with the 400. httparse says
/// "invalid header name" for obs-fold and for whitespace before the colon
/// too; the first offending line tells which it was.
fn diagnose(e: httparse::Error, window: &[u8]) -> &'static str {
    match e {
        httparse::Error::HeaderName => header_name_problem(window),
        httparse::Error::HeaderValue => "invalid header value",
        httparse::Error::NewLine => "invalid line ending",
        httparse::Error::Status => "invalid status line",
        httparse::Error::Token => "invalid request line",
        httparse::Error::Version => "unsupported HTTP version",
        // Handled by the caller; listed so a new httparse variant is noticed here.
        httparse::Error::TooManyHeaders => "too many header fields",
    }
}

fn header_name_problem(window: &[u8]) -> &'static str {
    let start = window
        .iter()
        .position(|&b| b != b'\r' && b != b'\n')
        .unwrap_or(window.len());
    let lines = window[start..].split(|&b| b == b'\n').skip(1);
    for line in lines {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            break;
        }
        if line[0] == b' ' || line[0] == b'\t' {
            // RFC 9112 5.2: obs-fold is refused in requests, and httparse's
            // strict defaults refuse it in responses too.
            return "obs-fold in header";
        }
        let name_end = line
            .iter()
            .position(|&b| !is_tchar(b))
            .unwrap_or(line.len());
        match line.get(name_end) {
            Some(b':') if name_end > 0 => continue,
            Some(b' ' | b'\t') if name_end > 0 => {
                let rest = &line[name_end..];
                let after_ws = rest.iter().position(|&b| b != b' ' && b != b'\t');
                if after_ws.is_some_and(|i| rest[i] == b':') {
                    // RFC 9112 5.1: a source of request smuggling, always 400.
                    return "whitespace before colon in header";
                }
                return "invalid header name";
            }
            _ => return "invalid header name",
        }
    }
    "invalid header name"
}

/// RFC 9110 5.6.2 tchar.
pub(super) fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Copies the head (`base`, the bytes httparse took) into `fields` and
/// adds httparse's fields as spans over it.
fn fill(fields: &mut Fields, base: &[u8], from: &[httparse::Header<'_>]) {
    fields.reset(base);
    for h in from {
        fields.push_parsed(base, h.name.as_bytes(), h.value);
    }
}

fn request_head(
    req: &httparse::Request<'_, '_>,
    base: &[u8],
    head: &mut RequestHead,
) -> Result<(), HeadError> {
    let method = req.method.expect("a complete parse sets the method");
    let raw_target = req.path.expect("a complete parse sets the path");
    let minor = req.version.expect("a complete parse sets the version");
    if raw_target.len() > MAX_TARGET {
        return Err(HeadError::UriTooLong);
    }
    let fields = &mut head.fields;
    fill(fields, base, req.headers);
    let f = scan_fields(fields)?;

    let body = if f.te {
        if minor == 0 {
            // RFC 9112 6.1: Transfer-Encoding in an HTTP/1.0 message means
            // the framing is faulty.
            return Err(HeadError::Bad("Transfer-Encoding in HTTP/1.0 request"));
        }
        if f.content_length.is_some() {
            // RFC 9112 6.3 item 3: the classic request smuggling shape.
            return Err(HeadError::Bad("both Content-Length and Transfer-Encoding"));
        }
        if f.te_fields != 1 || f.te_plain_chunked != 1 {
            // RFC 9112 6.1: a server that does not understand a transfer
            // coding answers 501. We decode none but chunked, and forwarding
            // `gzip, chunked`, a chunked applied twice, or the codings spread
            // over several fields would let an app that reads them
            // differently see another body. Like nginx, exactly one field
            // whose value is `chunked` is accepted.
            return Err(HeadError::NotImplemented(
                "Transfer-Encoding other than a single chunked",
            ));
        }
        BodyKind::Chunked
    } else {
        match f.content_length {
            Some(n) => BodyKind::Length(n),
            None => BodyKind::None,
        }
    };

    if f.hosts > 1 {
        return Err(HeadError::Bad("multiple Host headers"));
    }
    if f.hosts == 0 && minor == 1 {
        // RFC 9112 3.2: MUST respond 400 to an HTTP/1.1 request without Host.
        return Err(HeadError::Bad("missing Host"));
    }

    let method_span = fields.span_in(base, method.as_bytes());
    let target_span = fields.span_in(base, raw_target.as_bytes());
    // origin-form, or asterisk-form for OPTIONS (RFC 9112 3.2.4).
    let (target, authority) =
        if raw_target.starts_with('/') || (raw_target == "*" && method == "OPTIONS") {
            (target_span, None)
        } else if let Some((authority, path)) = absolute_form(raw_target) {
            let path = if path.starts_with('/') {
                fields.span_in(base, path.as_bytes())
            } else {
                let slash = fields.add(b"/");
                let rest = fields.add(path.as_bytes());
                Span {
                    start: slash.start,
                    end: rest.end,
                }
            };
            (path, Some(fields.span_in(base, authority.as_bytes())))
        } else {
            return Err(HeadError::Bad("invalid request target"));
        };

    let raw_host = match authority {
        // RFC 9112 3.2.2: the target's authority wins over Host, and a proxy
        // forwards a Host made from it.
        Some(authority) => {
            match f.host_index {
                Some(i) => {
                    let host = &mut fields.list_mut()[i];
                    host.value = authority;
                    host.line_end = 0;
                }
                None => fields.push_made("Host", authority),
            }
            Some(authority)
        }
        None => f.host_index.map(|i| fields.list()[i].value),
    };
    // After the Host field is settled: this may drop fields (and move
    // the Host field's index).
    if let BodyKind::Length(n) = body {
        canonical_length(fields, &f, n);
    }
    fields.names_fields = f.names_fields;
    head.host = match raw_host {
        Some(raw) => {
            let text = fields.get(raw);
            let host = host_part(text).ok_or(HeadError::Bad("invalid Host"))?;
            let start = raw.start + (host.as_ptr() as usize - text.as_ptr() as usize) as u32;
            let span = Span {
                start,
                end: start + host.len() as u32,
            };
            if host.bytes().any(|b| b.is_ascii_uppercase()) {
                Some(fields.add_lowercase(span))
            } else {
                Some(span)
            }
        }
        None => None,
    };
    head.host_raw = raw_host;

    // The request line as it came, when it is the one we would write.
    let in_place = authority.is_none()
        && minor == 1
        && method_span.start == 0
        && target.start == method_span.end + 1
        && base.get(target.end as usize..target.end as usize + 11) == Some(b" HTTP/1.1\r\n");
    head.line_end = if in_place { target.end + 11 } else { 0 };
    head.method = method_span;
    head.target = target;
    head.minor = minor;
    head.body = body;
    // RFC 9112 9.3: 1.1 persists unless `close`; 1.0 only with `keep-alive`.
    head.keep_alive = !f.close && (minor == 1 || f.keep_alive);
    // RFC 9110 7.8 and 10.1.1: Upgrade and 100-continue are ignored in 1.0 requests.
    head.upgrade = minor == 1 && f.connection_upgrade && f.upgrade_header;
    head.expect_continue = minor == 1 && f.expect_continue;
    Ok(())
}

/// Splits an absolute-form target (RFC 9112 3.2.2) into its authority and
/// the rest (the path, query and fragment, which may not start with `/`).
/// None for anything else.
fn absolute_form(target: &str) -> Option<(&str, &str)> {
    let scheme_end = target.find("://")?;
    let scheme = &target[..scheme_end];
    if !scheme.eq_ignore_ascii_case("http") && !scheme.eq_ignore_ascii_case("https") {
        return None;
    }
    let rest = &target[scheme_end + 3..];
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(end);
    if authority.is_empty() || authority.contains('@') {
        // No userinfo: RFC 9110 4.2.4 deprecates it and it has no place in Host.
        return None;
    }
    Some((authority, path))
}

/// The host part of a Host value (`uri-host [":" port]`, RFC 9110 7.2),
/// port and a trailing dot removed, as a slice of `raw`. An IPv6 literal
/// keeps its brackets (`[::1]:8080` -> `[::1]`). None when the value is
/// not a valid authority.
fn host_part(raw: &[u8]) -> Option<&str> {
    let (host, port) = if raw.first() == Some(&b'[') {
        let close = raw.iter().position(|&b| b == b']')?;
        let inside = &raw[1..close];
        if inside.is_empty()
            || !inside
                .iter()
                .all(|&b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
        {
            return None;
        }
        let port = match &raw[close + 1..] {
            [] => &[][..],
            [b':', port @ ..] => port,
            _ => return None,
        };
        (&raw[..=close], port)
    } else {
        let colon = raw.iter().position(|&b| b == b':');
        let (host, port) = match colon {
            Some(c) => (&raw[..c], &raw[c + 1..]),
            None => (raw, &[][..]),
        };
        // RFC 3986 reg-name: unreserved, pct-encoded, sub-delims.
        let reg_name = |b: &u8| {
            matches!(b, b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9'
                | b'-' | b'.' | b'_' | b'~' | b'%'
                | b'!' | b'$' | b'&' | b'\'' | b'(' | b')' | b'*' | b'+' | b',' | b';' | b'=')
        };
        if !host.iter().all(reg_name) {
            return None;
        }
        // `example.com.` names the same host as `example.com` (nginx agrees).
        (host.strip_suffix(b".").unwrap_or(host), port)
    };
    if host.is_empty() || !port.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(host).ok()
}

fn response_head(
    res: &httparse::Response<'_, '_>,
    base: &[u8],
    head_request: bool,
    head: &mut ResponseHead,
) -> Result<(), HeadError> {
    let status = res.code.expect("a complete parse sets the status");
    let minor = res.version.expect("a complete parse sets the version");
    let reason = res.reason.unwrap_or("");
    if status < 100 {
        return Err(HeadError::Bad("invalid status code"));
    }
    let fields = &mut head.fields;
    fill(fields, base, res.headers);
    let f = scan_fields(fields)?;
    if f.te_chunked_count > 1 {
        // RFC 9112 6.1: a sender MUST NOT apply chunked more than once.
        return Err(HeadError::Bad("chunked applied more than once"));
    }
    if f.te && minor == 0 {
        // RFC 9112 6.1: faulty framing in an HTTP/1.0 message.
        return Err(HeadError::Bad("Transfer-Encoding in HTTP/1.0 response"));
    }
    if f.te && f.content_length.is_some() {
        // RFC 9112 6.3 item 3: "ought to be handled as an error".
        return Err(HeadError::Bad("both Content-Length and Transfer-Encoding"));
    }

    // RFC 9112 6.3, in its order.
    let body = if head_request || status < 200 || status == 204 || status == 304 {
        BodyKind::None
    } else if f.te {
        if f.te_chunked_last {
            BodyKind::Chunked
        } else {
            BodyKind::Close
        }
    } else if let Some(n) = f.content_length {
        BodyKind::Length(n)
    } else {
        BodyKind::Close
    };

    let upgrade = status == 101;
    // After a 101 the connection is a tunnel, never reused for HTTP.
    let keep_alive =
        !upgrade && body != BodyKind::Close && !f.close && (minor == 1 || f.keep_alive);

    if !f.te {
        if let Some(n) = f.content_length {
            // Also for HEAD and 304, where it describes the body not sent.
            canonical_length(fields, &f, n);
        }
    }
    fields.names_fields = f.names_fields;
    let reason = fields.span_in(base, reason.as_bytes());
    // The status line as it came, when it is the one we would write to a
    // client of the same version.
    let version: &[u8] = if minor == 0 {
        b"HTTP/1.0 "
    } else {
        b"HTTP/1.1 "
    };
    let in_place = base.starts_with(version)
        && base.get(12) == Some(&b' ')
        && reason.start == 13
        && base.get(reason.end as usize..reason.end as usize + 2) == Some(b"\r\n");
    head.line_end = if in_place { reason.end + 2 } else { 0 };
    head.reason = reason;
    head.status = status;
    head.minor = minor;
    head.body = body;
    head.keep_alive = keep_alive;
    head.upgrade = upgrade;
    Ok(())
}

mod framing;
#[cfg(test)]
mod tests;
