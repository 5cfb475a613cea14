//! Request and response heads: parse with httparse, validate framing, and
//! gather what the front needs (host, keep-alive, upgrade, body kind).
//! Rewriting heads for forwarding is in `write.rs`, hop-by-hop rules in `hop.rs`.
//!
//! Pure: no I/O. Every refusal is a `HeadError` whose `status()` is what the
//! front answers (400, 414, 431, 501).
//!
//! The `_into` forms parse into a head that served an earlier message,
//! reusing its strings and header storage: the front parses every head of a
//! keep-alive connection that way, so a head like the last one costs no
//! allocation.

use super::append::{append, append_str};

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

/// One header as received. `name` keeps its original case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub name: String,
    pub value: Vec<u8>,
}

/// Header storage a head no longer uses, filled again by the next head
/// parsed into it. Not part of what a head says: never compared or shown.
#[derive(Clone, Default)]
pub struct Recycled(Vec<Header>);

impl PartialEq for Recycled {
    fn eq(&self, _: &Recycled) -> bool {
        true
    }
}

impl Eq for Recycled {}

impl std::fmt::Debug for Recycled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("..")
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
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
    recycled: Recycled,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
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
    recycled: Recycled,
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
        let mut req = httparse::Request::new(slots);
        match req.parse(window) {
            Ok(httparse::Status::Complete(len)) => {
                Attempt::Done(request_head(&req, head).map(|()| Some(len)))
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
        let mut res = httparse::Response::new(slots);
        match res.parse(window) {
            Ok(httparse::Status::Complete(len)) => {
                Attempt::Done(response_head(&res, head_request, head).map(|()| Some(len)))
            }
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
fn with_header_slots<'b>(
    mut attempt: impl FnMut(&mut [httparse::Header<'b>]) -> Attempt,
) -> Result<Option<usize>, HeadError> {
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
    let mut digits = [0u8; 20];
    let canonical = decimal(n, &mut digits);
    if f.content_lengths == 1 {
        if let Some(h) = headers.iter_mut().find(|h| is_cl(h)) {
            if h.value != canonical {
                h.value.clear();
                h.value.extend_from_slice(canonical);
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
            h.value.clear();
            h.value.extend_from_slice(canonical);
            return true;
        }
        false
    });
}

/// `n` in decimal, written at the end of `buf`.
fn decimal(mut n: u64, buf: &mut [u8; 20]) -> &[u8] {
    let mut at = buf.len();
    loop {
        at -= 1;
        buf[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            return &buf[at..];
        }
    }
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

/// httparse's borrowed fields, copied out of the read buffer in order into
/// `headers`, whose earlier fields' storage is reused in place: each field
/// gets the storage of the field that had its place last time (usually the
/// same name and a similar value). Fields past this head's count wait in
/// `recycled` for a longer head.
fn fill_headers(headers: &mut Vec<Header>, recycled: &mut Recycled, from: &[httparse::Header<'_>]) {
    // Last first, so popping gives them back in their order.
    while headers.len() > from.len() {
        recycled.0.extend(headers.pop());
    }
    for (i, h) in from.iter().enumerate() {
        if i == headers.len() {
            headers.push(recycled.0.pop().unwrap_or(Header {
                name: String::new(),
                value: Vec::new(),
            }));
        }
        let field = &mut headers[i];
        field.name.clear();
        append_str(&mut field.name, h.name);
        field.value.clear();
        append(&mut field.value, h.value);
    }
}

/// `s` set to `from`, keeping its storage.
fn set(s: &mut String, from: &str) {
    s.clear();
    append_str(s, from);
}

fn request_head(req: &httparse::Request<'_, '_>, head: &mut RequestHead) -> Result<(), HeadError> {
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

    let headers = &mut head.headers;
    fill_headers(headers, &mut head.recycled, req.headers);

    // origin-form, or asterisk-form for OPTIONS (RFC 9112 3.2.4).
    let authority = if raw_target.starts_with('/') || (raw_target == "*" && method == "OPTIONS") {
        set(&mut head.target, raw_target);
        None
    } else if let Some((authority, path)) = absolute_form(raw_target) {
        head.target = path;
        Some(authority)
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
    // Only now that the Host field is settled by its index: this may drop
    // fields before it.
    if let BodyKind::Length(n) = body {
        canonical_length(headers, &f, n);
    }
    match raw_host {
        Some(raw) => {
            let host = head.host.get_or_insert_with(String::new);
            if !host_name(raw, host) {
                return Err(HeadError::Bad("invalid Host"));
            }
            // host_name accepts ASCII only, so this cannot fail.
            let raw = std::str::from_utf8(raw).map_err(|_| HeadError::Bad("invalid Host"))?;
            set(head.host_raw.get_or_insert_with(String::new), raw);
        }
        None => {
            head.host = None;
            head.host_raw = None;
        }
    }

    set(&mut head.method, method);
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
/// authority. Written into `out`; false when `raw` is not a valid authority.
fn host_name(raw: &[u8], out: &mut String) -> bool {
    match host_part(raw) {
        Some(host) => {
            out.clear();
            append_str(out, host);
            out.make_ascii_lowercase();
            true
        }
        None => false,
    }
}

/// The host part of a Host value as sent, see `host_name`.
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
    std::str::from_utf8(host).ok()
}

fn response_head(
    res: &httparse::Response<'_, '_>,
    head_request: bool,
    head: &mut ResponseHead,
) -> Result<(), HeadError> {
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

    fill_headers(&mut head.headers, &mut head.recycled, res.headers);
    if !f.te {
        if let Some(n) = f.content_length {
            // Also for HEAD and 304, where it describes the body not sent.
            canonical_length(&mut head.headers, &f, n);
        }
    }
    head.status = status;
    set(&mut head.reason, reason);
    head.minor = minor;
    head.body = body;
    head.keep_alive = keep_alive;
    head.upgrade = upgrade;
    Ok(())
}

#[cfg(test)]
mod tests;
