//! Request and response heads: parse with httparse, validate framing, and
//! gather what the front needs (host, keep-alive, upgrade, body kind).
//! Rewriting heads for forwarding is in `write.rs`, hop-by-hop rules in `hop.rs`.
//!
//! Pure: no I/O. Every refusal is a `HeadError` whose `status()` is what the
//! front answers (400, 414, 431, 501).

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
    /// The value of the first header named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        find_header(&self.headers, name)
    }
}

impl ResponseHead {
    /// The value of the first header named `name` (case-insensitive).
    #[cfg(test)]
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        find_header(&self.headers, name)
    }
}

fn find_header<'h>(headers: &'h [Header], name: &str) -> Option<&'h [u8]> {
    headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case(name))
        .map(|h| h.value.as_slice())
}

/// Parses a request head from the start of `buf`.
/// Ok(None): incomplete (and still under MAX_HEAD). Ok(Some((head, len))):
/// `len` bytes of `buf` were the head. Refuses what REFERENCE.md lists.
pub fn parse_request(buf: &[u8]) -> Result<Option<(RequestHead, usize)>, HeadError> {
    let window = &buf[..buf.len().min(MAX_HEAD)];
    with_header_slots(|slots| {
        let mut req = httparse::Request::new(slots);
        match req.parse(window) {
            Ok(httparse::Status::Complete(len)) => {
                Attempt::Done(request_head(&req).map(|head| Some((head, len))))
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
    let window = &buf[..buf.len().min(MAX_HEAD)];
    with_header_slots(|slots| {
        let mut res = httparse::Response::new(slots);
        match res.parse(window) {
            Ok(httparse::Status::Complete(len)) => {
                Attempt::Done(response_head(&res, head_request).map(|head| Some((head, len))))
            }
            Ok(httparse::Status::Partial) => Attempt::Done(incomplete(buf, false)),
            Err(httparse::Error::TooManyHeaders) => Attempt::TooManyHeaders,
            Err(e) => Attempt::Done(Err(HeadError::Bad(diagnose(e, window)))),
        }
    })
}

/// One httparse run with a given number of header slots.
enum Attempt<T> {
    Done(Result<Option<(T, usize)>, HeadError>),
    TooManyHeaders,
}

/// Runs `attempt` with slots on the stack (the common case allocates nothing
/// for them), then once more with `MAX_HEADERS` slots on the heap.
fn with_header_slots<'b, T>(
    mut attempt: impl FnMut(&mut [httparse::Header<'b>]) -> Attempt<T>,
) -> Result<Option<(T, usize)>, HeadError> {
    let mut stack: [httparse::Header<'b>; STACK_HEADERS] = [httparse::EMPTY_HEADER; STACK_HEADERS];
    if let Attempt::Done(result) = attempt(&mut stack) {
        return result;
    }
    let mut heap: Vec<httparse::Header<'b>> = vec![httparse::EMPTY_HEADER; MAX_HEADERS];
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

/// What the header fields say about framing and the connection, gathered in
/// one pass.
#[derive(Default)]
struct Fields {
    content_length: Option<u64>,
    /// Transfer-Encoding seen at all.
    te: bool,
    /// Its last coding is `chunked`.
    te_chunked_last: bool,
    /// How often `chunked` appears among the codings.
    te_chunked_count: u32,
    /// Transfer-Encoding fields whose whole value is `chunked`, and all
    /// Transfer-Encoding fields.
    te_plain_chunked: u32,
    te_fields: u32,
    /// How many Content-Length fields there are.
    content_lengths: u32,
    close: bool,
    keep_alive: bool,
    connection_upgrade: bool,
    upgrade_header: bool,
    expect_continue: bool,
    hosts: u32,
    host_index: Option<usize>,
}

fn scan_fields(headers: &[httparse::Header<'_>]) -> Result<Fields, HeadError> {
    let mut f = Fields::default();
    for (i, h) in headers.iter().enumerate() {
        let name = h.name;
        if name.eq_ignore_ascii_case("content-length") {
            let n = content_length(h.value).map_err(HeadError::Bad)?;
            if f.content_length.is_some_and(|prev| prev != n) {
                return Err(HeadError::Bad("conflicting Content-Length"));
            }
            f.content_length = Some(n);
            f.content_lengths += 1;
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            f.te = true;
            for coding in list(h.value) {
                // `chunked` takes no parameters: `chunked;x=y` is some other coding.
                let chunked = coding.eq_ignore_ascii_case(b"chunked");
                f.te_chunked_count += u32::from(chunked);
                f.te_chunked_last = chunked;
            }
            f.te_fields += 1;
            f.te_plain_chunked += u32::from(trim_ows(h.value).eq_ignore_ascii_case(b"chunked"));
        } else if name.eq_ignore_ascii_case("connection") {
            for token in list(h.value) {
                if token.eq_ignore_ascii_case(b"close") {
                    f.close = true;
                } else if token.eq_ignore_ascii_case(b"keep-alive") {
                    f.keep_alive = true;
                } else if token.eq_ignore_ascii_case(b"upgrade") {
                    f.connection_upgrade = true;
                }
            }
        } else if name.eq_ignore_ascii_case("upgrade") {
            f.upgrade_header = true;
        } else if name.eq_ignore_ascii_case("expect") {
            f.expect_continue |= h.value.eq_ignore_ascii_case(b"100-continue");
        } else if name.eq_ignore_ascii_case("host") {
            f.hosts += 1;
            f.host_index = Some(i);
        }
    }
    Ok(f)
}

/// Rewrites the Content-Length fields of a length-delimited message to one
/// field with the value in canonical form (`0004` and `4, 4` become `4`), at
/// the place of the first. A recipient that reads leading zeros or lists
/// differently from us then cannot see another length (RFC 9110 8.6).
fn canonical_length(headers: &mut Vec<Header>, f: &Fields, n: u64) {
    let is_cl = |h: &Header| h.name.eq_ignore_ascii_case("content-length");
    let canonical = n.to_string();
    if f.content_lengths == 1 {
        if let Some(h) = headers.iter_mut().find(|h| is_cl(h)) {
            if h.value != canonical.as_bytes() {
                h.value = canonical.into_bytes();
            }
        }
        return;
    }
    let mut first = true;
    headers.retain_mut(|h| {
        if !is_cl(h) {
            return true;
        }
        if std::mem::take(&mut first) {
            h.value = canonical.clone().into_bytes();
            return true;
        }
        false
    });
}

/// A Content-Length value: digits, or a comma list of identical digits
/// (RFC 9110 8.6 lets a recipient take `42, 42` as 42).
fn content_length(value: &[u8]) -> Result<u64, &'static str> {
    let mut found = None;
    for element in value.split(|&b| b == b',') {
        let element = trim_ows(element);
        if element.is_empty() || !element.iter().all(u8::is_ascii_digit) {
            return Err("invalid Content-Length");
        }
        let n = element
            .iter()
            .try_fold(0u64, |n, &d| {
                n.checked_mul(10)?.checked_add(u64::from(d - b'0'))
            })
            .ok_or("invalid Content-Length")?;
        if found.is_some_and(|prev| prev != n) {
            return Err("conflicting Content-Length");
        }
        found = Some(n);
    }
    found.ok_or("invalid Content-Length")
}

/// The non-empty elements of a comma list, OWS trimmed (RFC 9110 5.6.1).
pub(super) fn list(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value
        .split(|&b| b == b',')
        .map(trim_ows)
        .filter(|e| !e.is_empty())
}

/// `s` without leading and trailing spaces and tabs (RFC 9110 5.6.3 OWS).
pub(super) fn trim_ows(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

/// httparse's borrowed fields, copied out of the read buffer in order.
fn owned(headers: &[httparse::Header<'_>]) -> Vec<Header> {
    headers
        .iter()
        .map(|h| Header {
            name: h.name.to_owned(),
            value: h.value.to_vec(),
        })
        .collect()
}

fn request_head(req: &httparse::Request<'_, '_>) -> Result<RequestHead, HeadError> {
    let method = req.method.expect("a complete parse sets the method");
    let raw_target = req.path.expect("a complete parse sets the path");
    let minor = req.version.expect("a complete parse sets the version");
    if raw_target.len() > MAX_TARGET {
        return Err(HeadError::UriTooLong);
    }
    let f = scan_fields(req.headers)?;

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

    let mut headers = owned(req.headers);
    if let BodyKind::Length(n) = body {
        canonical_length(&mut headers, &f, n);
    }

    // origin-form, or asterisk-form for OPTIONS (RFC 9112 3.2.4).
    let (target, authority) =
        if raw_target.starts_with('/') || (raw_target == "*" && method == "OPTIONS") {
            (raw_target.to_owned(), None)
        } else if let Some((authority, path)) = absolute_form(raw_target) {
            (path, Some(authority))
        } else {
            return Err(HeadError::Bad("invalid request target"));
        };

    let raw_host: Option<&[u8]> = match authority {
        // RFC 9112 3.2.2: the target's authority wins over Host, and a proxy
        // forwards a Host made from it.
        Some(authority) => {
            let value = authority.as_bytes().to_vec();
            match f.host_index {
                Some(i) => headers[i].value = value,
                None => headers.push(Header {
                    name: "Host".to_owned(),
                    value,
                }),
            }
            Some(authority.as_bytes())
        }
        None => f.host_index.map(|i| req.headers[i].value),
    };
    let (host, host_raw) = match raw_host {
        Some(raw) => {
            let host = host_name(raw).ok_or(HeadError::Bad("invalid Host"))?;
            // host_name accepts ASCII only, so this cannot fail.
            let raw = std::str::from_utf8(raw).map_err(|_| HeadError::Bad("invalid Host"))?;
            (Some(host), Some(raw.to_owned()))
        }
        None => (None, None),
    };

    // RFC 9112 9.3: 1.1 persists unless `close`; 1.0 only with `keep-alive`.
    let keep_alive = !f.close && (minor == 1 || f.keep_alive);
    // RFC 9110 7.8 and 10.1.1: Upgrade and 100-continue are ignored in 1.0 requests.
    let upgrade = minor == 1 && f.connection_upgrade && f.upgrade_header;
    let expect_continue = minor == 1 && f.expect_continue;

    Ok(RequestHead {
        method: method.to_owned(),
        target,
        minor,
        headers,
        host,
        host_raw,
        body,
        keep_alive,
        upgrade,
        expect_continue,
    })
}

/// Splits an absolute-form target (RFC 9112 3.2.2) into its authority and
/// the origin-form the upstream gets. None for anything else.
fn absolute_form(target: &str) -> Option<(&str, String)> {
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
    let path = if path.starts_with('/') {
        path.to_owned()
    } else {
        format!("/{path}")
    };
    Some((authority, path))
}

/// The host part of a Host value (`uri-host [":" port]`, RFC 9110 7.2),
/// lowercased, port and a trailing dot removed. An IPv6 literal keeps its
/// brackets (`[::1]:8080` -> `[::1]`). None when the value is not a valid
/// authority.
fn host_name(raw: &[u8]) -> Option<String> {
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
        let reg_name = |b: &u8| b.is_ascii_alphanumeric() || b"-._~%!$&'()*+,;=".contains(b);
        if !host.iter().all(reg_name) {
            return None;
        }
        // `example.com.` names the same host as `example.com` (nginx agrees).
        (host.strip_suffix(b".").unwrap_or(host), port)
    };
    if host.is_empty() || !port.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let host = std::str::from_utf8(host).ok()?;
    Some(host.to_ascii_lowercase())
}

fn response_head(
    res: &httparse::Response<'_, '_>,
    head_request: bool,
) -> Result<ResponseHead, HeadError> {
    let status = res.code.expect("a complete parse sets the status");
    let minor = res.version.expect("a complete parse sets the version");
    let reason = res.reason.unwrap_or("");
    if status < 100 {
        return Err(HeadError::Bad("invalid status code"));
    }
    let f = scan_fields(res.headers)?;
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

    let mut headers = owned(res.headers);
    if !f.te {
        if let Some(n) = f.content_length {
            // Also for HEAD and 304, where it describes the body not sent.
            canonical_length(&mut headers, &f, n);
        }
    }
    Ok(ResponseHead {
        status,
        reason: reason.to_owned(),
        minor,
        headers,
        body,
        keep_alive,
        upgrade,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::testutil::{request, response};

    #[track_caller]
    fn refused(wire: &[u8]) -> HeadError {
        match parse_request(wire) {
            Err(e) => e,
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn simple_get_parses() {
        let head = request(b"GET /a?b=c HTTP/1.1\r\nHost: Example.COM:8080\r\nAccept: */*\r\n\r\n");
        assert_eq!(head.method, "GET");
        assert_eq!(head.target, "/a?b=c");
        assert_eq!(head.minor, 1);
        assert_eq!(head.host.as_deref(), Some("example.com"));
        assert_eq!(head.host_raw.as_deref(), Some("Example.COM:8080"));
        assert_eq!(head.body, BodyKind::None);
        assert!(head.keep_alive);
        assert!(!head.upgrade);
        assert!(!head.expect_continue);
        assert_eq!(
            head.headers,
            vec![
                Header {
                    name: "Host".into(),
                    value: b"Example.COM:8080".to_vec()
                },
                Header {
                    name: "Accept".into(),
                    value: b"*/*".to_vec()
                },
            ]
        );
        assert_eq!(head.header("accept"), Some(&b"*/*"[..]));
    }

    #[test]
    fn every_prefix_of_a_head_is_incomplete() {
        let wire = b"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\n";
        for end in 0..wire.len() {
            assert_eq!(
                parse_request(&wire[..end]),
                Ok(None),
                "prefix of {end} bytes"
            );
        }
        assert!(parse_request(wire).unwrap().is_some());
    }

    #[test]
    fn head_length_stops_before_body_and_pipelined_requests() {
        let head = b"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\n";
        let mut wire = head.to_vec();
        wire.extend_from_slice(b"abcGET / HTTP/1.1\r\nHost: a\r\n\r\n");
        let (parsed, len) = parse_request(&wire).unwrap().unwrap();
        assert_eq!(len, head.len());
        assert_eq!(parsed.body, BodyKind::Length(3));
    }

    #[test]
    fn refusals_name_their_reason() {
        let cases: &[(&[u8], &str)] = &[
            (b"GET / HTTP/2.0\r\nHost: a\r\n\r\n", "unsupported HTTP version"),
            (b"GET / HTTP/1.2\r\nHost: a\r\n\r\n", "unsupported HTTP version"),
            (b"GET / HTTPS/1.1\r\nHost: a\r\n\r\n", "unsupported HTTP version"),
            (b"GET /\r\nHost: a\r\n\r\n", "invalid request line"),
            (b"GET  / HTTP/1.1\r\nHost: a\r\n\r\n", "invalid request line"),
            (
                b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
                "both Content-Length and Transfer-Encoding",
            ),
            (
                b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n",
                "both Content-Length and Transfer-Encoding",
            ),
            (
                b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n",
                "conflicting Content-Length",
            ),
            (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3, 4\r\n\r\n", "conflicting Content-Length"),
            (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: abc\r\n\r\n", "invalid Content-Length"),
            (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n", "invalid Content-Length"),
            (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +3\r\n\r\n", "invalid Content-Length"),
            (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0x10\r\n\r\n", "invalid Content-Length"),
            (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length:\r\n\r\n", "invalid Content-Length"),
            (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3,\r\n\r\n", "invalid Content-Length"),
            (
                b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 18446744073709551616\r\n\r\n",
                "invalid Content-Length",
            ),
            (
                b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
                "Transfer-Encoding in HTTP/1.0 request",
            ),
            (b"GET / HTTP/1.1\r\nHost: a\r\nX(y): 1\r\n\r\n", "invalid header name"),
            (b"GET / HTTP/1.1\r\nHost: a\r\nX\x01y: 1\r\n\r\n", "invalid header name"),
            (b"GET / HTTP/1.1\r\nHost: a\r\nX\xffy: 1\r\n\r\n", "invalid header name"),
            (b"GET / HTTP/1.1\r\nHost: a\r\nNoColon\r\n\r\n", "invalid header name"),
            (b"GET / HTTP/1.1\r\nHost: a\r\n: empty\r\n\r\n", "invalid header name"),
            (b"GET / HTTP/1.1\r\nHost: a\r\nX: a\x00b\r\n\r\n", "invalid header value"),
            (b"GET / HTTP/1.1\r\nHost: a\r\nX: a\x7fb\r\n\r\n", "invalid header value"),
            (b"GET / HTTP/1.1\r\nHost: a\r\nX: a\rb\r\n\r\n", "invalid header value"),
            (b"GET / HTTP/1.1\r\nHost: a\r\nX: a\x0bb\r\n\r\n", "invalid header value"),
            (b"GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n b\r\n\r\n", "obs-fold in header"),
            (b"GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n\tb\r\n\r\n", "obs-fold in header"),
            (b"GET / HTTP/1.1\r\n Host: a\r\n\r\n", "obs-fold in header"),
            (b"GET / HTTP/1.1\r\nHost : a\r\n\r\n", "whitespace before colon in header"),
            (b"GET / HTTP/1.1\r\nHost: a\r\nX-A\t: b\r\n\r\n", "whitespace before colon in header"),
            (b"GET / HTTP/1.1\r\nAccept: */*\r\n\r\n", "missing Host"),
            (b"GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n", "multiple Host headers"),
            (b"GET / HTTP/1.1\r\nHost: a\r\nhost: b\r\n\r\n", "multiple Host headers"),
            (b"GET / HTTP/1.1\r\nHost:\r\n\r\n", "invalid Host"),
            (b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n", "invalid Host"),
            (b"GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", "invalid Host"),
            (b"GET / HTTP/1.1\r\nHost: a:b\r\n\r\n", "invalid Host"),
            (b"GET / HTTP/1.1\r\nHost: a@b\r\n\r\n", "invalid Host"),
            (b"GET / HTTP/1.1\r\nHost: [::1\r\n\r\n", "invalid Host"),
            (b"GET / HTTP/1.1\r\nHost: [::1]x\r\n\r\n", "invalid Host"),
            (b"GET / HTTP/1.1\r\nHost: :80\r\n\r\n", "invalid Host"),
            (b"GET foo HTTP/1.1\r\nHost: a\r\n\r\n", "invalid request target"),
            (b"GET * HTTP/1.1\r\nHost: a\r\n\r\n", "invalid request target"),
            (b"CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n", "invalid request target"),
            (b"GET ftp://a/ HTTP/1.1\r\nHost: a\r\n\r\n", "invalid request target"),
            (b"GET http:///x HTTP/1.1\r\nHost: a\r\n\r\n", "invalid request target"),
            (b"GET http://u@a/x HTTP/1.1\r\nHost: a\r\n\r\n", "invalid request target"),
            (b"GET http://a/x HTTP/1.1\r\n\r\n", "missing Host"),
        ];
        for (wire, why) in cases {
            let got = parse_request(wire);
            assert_eq!(
                got,
                Err(HeadError::Bad(why)),
                "for {:?}",
                String::from_utf8_lossy(wire)
            );
            assert_eq!(HeadError::Bad(why).status(), 400);
        }
    }

    #[test]
    fn transfer_encoding_other_than_one_chunked_is_501() {
        // Every way of naming a coding besides chunked, or chunked more than
        // once, in one field or spread over several.
        for te in [
            &b"Transfer-Encoding: gzip, chunked\r\n"[..],
            b"Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n",
            b"Transfer-Encoding: foo, chunked\r\n",
            b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n",
            b"Transfer-Encoding: chunked, chunked\r\n",
            b"Transfer-Encoding: gzip\r\n",
            b"Transfer-Encoding: identity\r\n",
            b"Transfer-Encoding: chunked, gzip\r\n",
            b"Transfer-Encoding: chunked;x=1\r\n",
            b"Transfer-Encoding: \"chunked\"\r\n",
            b"Transfer-Encoding:\r\n",
            b"Transfer-Encoding: ,\r\n",
            b"Transfer-Encoding: chunked\r\nTransfer-Encoding:\r\n",
            b"Transfer-Encoding: chunked,\r\n",
            b"Transfer-Encoding: , chunked\r\n",
        ] {
            let wire = [&b"POST / HTTP/1.1\r\nHost: a\r\n"[..], te, b"\r\n"].concat();
            let got = parse_request(&wire);
            assert_eq!(
                got,
                Err(HeadError::NotImplemented(
                    "Transfer-Encoding other than a single chunked"
                )),
                "for {:?}",
                String::from_utf8_lossy(te)
            );
            assert_eq!(got.unwrap_err().status(), 501);
        }
        // Framing errors stay 400 whatever the codings.
        for wire in [
            &b"POST / HTTP/1.0\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"[..],
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nTransfer-Encoding: gzip\r\n\r\n",
        ] {
            assert_eq!(refused(wire).status(), 400);
        }
    }

    #[test]
    fn content_length_is_forwarded_in_one_canonical_field() {
        let cases: &[(&[u8], u64)] = &[
            (b"Content-Length: 0004\r\n", 4),
            (b"Content-Length: 4, 4\r\n", 4),
            (b"Content-Length: 4\r\nContent-Length: 04\r\n", 4),
            (b"content-length: 4,4\r\nX-A: 1\r\nCONTENT-LENGTH: 4\r\n", 4),
            (b"Content-Length: 000\r\n", 0),
            (b"Content-Length: 4\r\n", 4),
        ];
        for (fields, n) in cases {
            let shown = String::from_utf8_lossy(fields);
            let wire = [&b"POST / HTTP/1.1\r\nHost: a\r\n"[..], fields, b"\r\n"].concat();
            let head = request(&wire);
            assert_eq!(head.body, BodyKind::Length(*n), "{shown}");
            let lengths: Vec<(&str, &[u8])> = head
                .headers
                .iter()
                .filter(|h| h.name.eq_ignore_ascii_case("content-length"))
                .map(|h| (h.name.as_str(), h.value.as_slice()))
                .collect();
            assert_eq!(lengths.len(), 1, "{shown}: {lengths:?}");
            assert_eq!(lengths[0].1, n.to_string().as_bytes(), "{shown}");
            // The first field's place and spelling are kept.
            assert!(head.headers[1].name.eq_ignore_ascii_case("content-length"));
            // The same for a response, HEAD or not.
            for head_request in [false, true] {
                let wire = [&b"HTTP/1.1 200 OK\r\n"[..], fields, b"\r\n"].concat();
                let (res, _) = parse_response(&wire, head_request).unwrap().unwrap();
                let values: Vec<&[u8]> = res
                    .headers
                    .iter()
                    .filter(|h| h.name.eq_ignore_ascii_case("content-length"))
                    .map(|h| h.value.as_slice())
                    .collect();
                assert_eq!(values, [n.to_string().as_bytes()], "{shown}");
            }
        }
    }

    #[test]
    fn repeated_identical_content_length_is_one() {
        for wire in [
            &b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n"[..],
            &b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 5\r\n\r\n"[..],
            &b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5,5 ,\t5\r\nContent-Length: 05\r\n\r\n"[..],
        ] {
            assert_eq!(request(wire).body, BodyKind::Length(5));
        }
    }

    #[test]
    fn chunked_request_is_chunked() {
        for te in ["chunked", "Chunked", " CHUNKED\t"] {
            let wire = format!("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: {te}\r\n\r\n");
            let head = request(wire.as_bytes());
            assert_eq!(head.body, BodyKind::Chunked, "{te:?}");
            assert!(head.body.has_body());
        }
        let head = request(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n");
        assert_eq!(head.body, BodyKind::Length(0));
        assert!(!head.body.has_body());
    }

    #[test]
    fn long_target_is_414() {
        let mut ok = b"GET /".to_vec();
        ok.resize(MAX_TARGET + 4, b'a');
        ok.extend_from_slice(b" HTTP/1.1\r\nHost: a\r\n\r\n");
        assert_eq!(request(&ok).target.len(), MAX_TARGET);

        let mut long = b"GET /".to_vec();
        long.resize(MAX_TARGET + 5, b'a');
        let partial = long.clone();
        long.extend_from_slice(b" HTTP/1.1\r\nHost: a\r\n\r\n");
        assert_eq!(refused(&long), HeadError::UriTooLong);
        assert_eq!(refused(&long).status(), 414);
        // Refused while the target is still arriving, without waiting for 64 KiB.
        assert_eq!(refused(&partial), HeadError::UriTooLong);
        let mut head_pending = long.clone();
        head_pending.truncate(long.len() - 2);
        assert_eq!(refused(&head_pending), HeadError::UriTooLong);
    }

    #[test]
    fn head_over_64k_is_431() {
        let mut wire = b"GET / HTTP/1.1\r\nHost: a\r\nX-Big: ".to_vec();
        wire.resize(MAX_HEAD - 1, b'x');
        assert_eq!(parse_request(&wire), Ok(None));
        wire.push(b'x');
        assert_eq!(refused(&wire), HeadError::TooLarge);
        assert_eq!(refused(&wire).status(), 431);
        // Complete, but the end is past the limit.
        wire.extend_from_slice(b"\r\n\r\n");
        assert_eq!(refused(&wire), HeadError::TooLarge);
        let mut res = b"HTTP/1.1 200 OK\r\nX-Big: ".to_vec();
        res.resize(MAX_HEAD, b'x');
        assert_eq!(parse_response(&res, false), Err(HeadError::TooLarge));
        res.truncate(MAX_HEAD - 1);
        assert_eq!(parse_response(&res, false), Ok(None));
    }

    #[test]
    fn many_headers_fit_until_the_cap() {
        let build = |n: usize| {
            let mut wire = b"GET / HTTP/1.1\r\nHost: a\r\n".to_vec();
            for i in 1..n {
                wire.extend_from_slice(format!("X-{i}: {i}\r\n").as_bytes());
            }
            wire.extend_from_slice(b"\r\n");
            wire
        };
        assert_eq!(request(&build(STACK_HEADERS)).headers.len(), STACK_HEADERS);
        assert_eq!(request(&build(MAX_HEADERS)).headers.len(), MAX_HEADERS);
        assert_eq!(refused(&build(MAX_HEADERS + 1)), HeadError::TooLarge);
    }

    #[test]
    fn host_is_lowercased_without_port() {
        let cases: &[(&[u8], &str)] = &[
            (b"Example.COM", "example.com"),
            (b"Example.COM:8080", "example.com"),
            (b"alice.notes.example.com.", "alice.notes.example.com"),
            (b"alice.notes.example.com.:80", "alice.notes.example.com"),
            (b"127.0.0.1:8080", "127.0.0.1"),
            (b"[::1]:8080", "[::1]"),
            (b"[::1]", "[::1]"),
            (b"[FE80::1]:", "[fe80::1]"),
            (b"localhost:", "localhost"),
        ];
        for (raw, host) in cases {
            let mut wire = b"GET / HTTP/1.1\r\nHost: ".to_vec();
            wire.extend_from_slice(raw);
            wire.extend_from_slice(b"\r\n\r\n");
            let head = request(&wire);
            assert_eq!(head.host.as_deref(), Some(*host));
            assert_eq!(head.host_raw.as_deref().map(str::as_bytes), Some(*raw));
        }
    }

    #[test]
    fn http10_without_host_is_fine() {
        let head = request(b"GET / HTTP/1.0\r\n\r\n");
        assert_eq!(head.minor, 0);
        assert_eq!(head.host, None);
        assert_eq!(head.host_raw, None);
        assert!(!head.keep_alive);
    }

    #[test]
    fn absolute_form_becomes_origin_form_with_its_authority_as_host() {
        let head = request(b"GET http://Alice.Notes.example.com:8080/x?y=1 HTTP/1.1\r\nHost: other.example\r\nA: b\r\n\r\n");
        assert_eq!(head.target, "/x?y=1");
        assert_eq!(head.host.as_deref(), Some("alice.notes.example.com"));
        assert_eq!(
            head.host_raw.as_deref(),
            Some("Alice.Notes.example.com:8080")
        );
        assert_eq!(
            head.header("host"),
            Some(&b"Alice.Notes.example.com:8080"[..])
        );
        assert_eq!(head.headers[1].name, "A");

        let head = request(b"GET HTTPS://a.example HTTP/1.1\r\nHost: a.example\r\n\r\n");
        assert_eq!(head.target, "/");
        let head = request(b"GET http://a.example?q HTTP/1.1\r\nHost: a.example\r\n\r\n");
        assert_eq!(head.target, "/?q");
        // 1.0 may omit Host; one is made from the target for the upstream.
        let head = request(b"GET http://a.example/p HTTP/1.0\r\n\r\n");
        assert_eq!(head.host.as_deref(), Some("a.example"));
        assert_eq!(head.header("Host"), Some(&b"a.example"[..]));
        let head = request(b"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n");
        assert_eq!(head.target, "*");
    }

    #[test]
    fn keep_alive_matrix() {
        let cases: &[(&[u8], bool)] = &[
            (b"GET / HTTP/1.1\r\nHost: a\r\n\r\n", true),
            (
                b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
                false,
            ),
            (
                b"GET / HTTP/1.1\r\nHost: a\r\nConnection: Close\r\n\r\n",
                false,
            ),
            (
                b"GET / HTTP/1.1\r\nHost: a\r\nConnection: foo, CLOSE\r\n\r\n",
                false,
            ),
            (
                b"GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive\r\n\r\n",
                true,
            ),
            (
                b"GET / HTTP/1.1\r\nHost: a\r\nConnection: closed\r\n\r\n",
                true,
            ),
            (
                b"GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive\r\nConnection: close\r\n\r\n",
                false,
            ),
            (b"GET / HTTP/1.0\r\n\r\n", false),
            (b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", true),
            (b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", true),
            (b"GET / HTTP/1.0\r\nConnection: x ,keep-alive\r\n\r\n", true),
            (
                b"GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n",
                false,
            ),
        ];
        for (wire, keep) in cases {
            assert_eq!(
                request(wire).keep_alive,
                *keep,
                "for {:?}",
                String::from_utf8_lossy(wire)
            );
        }
    }

    #[test]
    fn upgrade_needs_the_connection_token_and_the_header() {
        let cases: &[(&[u8], bool)] = &[
            (b"GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, Upgrade\r\nUpgrade: websocket\r\n\r\n", true),
            (b"GET / HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\n\r\n", false),
            (b"GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n\r\n", false),
            (b"GET / HTTP/1.0\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n", false),
        ];
        for (wire, upgrade) in cases {
            assert_eq!(
                request(wire).upgrade,
                *upgrade,
                "for {:?}",
                String::from_utf8_lossy(wire)
            );
        }
    }

    #[test]
    fn expect_continue_is_case_insensitive() {
        let cases: &[(&[u8], bool)] = &[
            (
                b"PUT / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n",
                true,
            ),
            (
                b"PUT / HTTP/1.1\r\nHost: a\r\nexpect: 100-Continue\r\nContent-Length: 1\r\n\r\n",
                true,
            ),
            (
                b"PUT / HTTP/1.1\r\nHost: a\r\nExpect: something\r\nContent-Length: 1\r\n\r\n",
                false,
            ),
            (
                b"PUT / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n",
                false,
            ),
        ];
        for (wire, expect) in cases {
            assert_eq!(
                request(wire).expect_continue,
                *expect,
                "for {:?}",
                String::from_utf8_lossy(wire)
            );
        }
    }

    #[test]
    fn response_body_kind_matrix() {
        // (wire, head request, body, keep_alive)
        let cases: &[(&[u8], bool, BodyKind, bool)] = &[
            (b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", false, BodyKind::Length(5), true),
            (b"HTTP/1.1 200 OK\r\nContent-Length: 5, 5\r\n\r\n", false, BodyKind::Length(5), true),
            (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", false, BodyKind::Chunked, true),
            (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", false, BodyKind::Chunked, true),
            (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", false, BodyKind::Close, false),
            (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", false, BodyKind::Close, false),
            (b"HTTP/1.1 200 OK\r\n\r\n", false, BodyKind::Close, false),
            (b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", true, BodyKind::None, true),
            (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", true, BodyKind::None, true),
            (b"HTTP/1.1 200 OK\r\n\r\n", true, BodyKind::None, true),
            (b"HTTP/1.1 204 No Content\r\n\r\n", false, BodyKind::None, true),
            (b"HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n", false, BodyKind::None, true),
            (b"HTTP/1.1 100 Continue\r\n\r\n", false, BodyKind::None, true),
            (b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n", false, BodyKind::None, true),
            (b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n", false, BodyKind::None, false),
            (b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\n", false, BodyKind::Length(5), false),
            (b"HTTP/1.0 200 OK\r\nContent-Length: 5\r\n\r\n", false, BodyKind::Length(5), false),
            (b"HTTP/1.0 200 OK\r\nContent-Length: 5\r\nConnection: keep-alive\r\n\r\n", false, BodyKind::Length(5), true),
            (b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\n\r\n", false, BodyKind::Close, false),
            (b"HTTP/1.1 404 \r\nContent-Length: 0\r\n\r\n", false, BodyKind::Length(0), true),
            (b"HTTP/1.1 500\r\nContent-Length: 2\r\n\r\n", false, BodyKind::Length(2), true),
        ];
        for (wire, head_request, body, keep) in cases {
            let head = response(wire, *head_request);
            let what = String::from_utf8_lossy(wire);
            assert_eq!(head.body, *body, "body for {what:?} (HEAD: {head_request})");
            assert_eq!(
                head.keep_alive, *keep,
                "keep-alive for {what:?} (HEAD: {head_request})"
            );
            assert_eq!(head.upgrade, head.status == 101);
        }
    }

    #[test]
    fn response_fields_are_kept() {
        let head = response(b"HTTP/1.1 201 Created Here\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\nContent-Length: 0\r\n\r\n", false);
        assert_eq!(head.status, 201);
        assert_eq!(head.reason, "Created Here");
        assert_eq!(head.minor, 1);
        assert_eq!(head.headers.len(), 3);
        assert_eq!(head.header("set-cookie"), Some(&b"a=1"[..]));
    }

    #[test]
    fn response_refusals() {
        let cases: &[(&[u8], &str)] = &[
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n",
                "invalid Content-Length",
            ),
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
                "conflicting Content-Length",
            ),
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
                "both Content-Length and Transfer-Encoding",
            ),
            (
                b"HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
                "Transfer-Encoding in HTTP/1.0 response",
            ),
            (b"HTTP/1.1 099 Odd\r\n\r\n", "invalid status code"),
            (b"HTTP/1.1 2000 OK\r\n\r\n", "invalid status line"),
            (b"HTTP/2 200 OK\r\n\r\n", "unsupported HTTP version"),
            (
                b"HTTP/1.1 200 OK\r\nX: a\r\n b\r\n\r\n",
                "obs-fold in header",
            ),
            (
                b"HTTP/1.1 200 OK\r\nX : a\r\n\r\n",
                "whitespace before colon in header",
            ),
            (
                b"HTTP/1.1 200 OK\r\nX: a\x00\r\n\r\n",
                "invalid header value",
            ),
        ];
        for (wire, why) in cases {
            assert_eq!(
                parse_response(wire, false),
                Err(HeadError::Bad(why)),
                "for {:?}",
                String::from_utf8_lossy(wire)
            );
        }
        let wire = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n";
        for end in 0..wire.len() {
            assert_eq!(
                parse_response(&wire[..end], false),
                Ok(None),
                "prefix of {end} bytes"
            );
        }
    }

    #[test]
    fn errors_display_lowercase() {
        assert_eq!(
            HeadError::Bad("missing Host").to_string(),
            "bad request: missing Host"
        );
        assert_eq!(HeadError::TooLarge.to_string(), "header block too large");
    }
}
