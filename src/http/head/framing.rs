//! What a head's fields say about its framing and its connection
//! (Content-Length, Transfer-Encoding, Connection, Upgrade, Expect, Host),
//! gathered in one pass, and the Content-Length fields rewritten to one in
//! canonical form; the comma lists and OWS of RFC 9110 5.6.

use super::super::fields::{Fields, Name};
use super::HeadError;

/// What the header fields say about framing and the connection, gathered in
/// one pass.
#[derive(Default)]
pub(super) struct Framing {
    pub(super) content_length: Option<u64>,
    /// Transfer-Encoding seen at all.
    pub(super) te: bool,
    /// Its last coding is `chunked`.
    pub(super) te_chunked_last: bool,
    /// How often `chunked` appears among the codings.
    pub(super) te_chunked_count: u32,
    /// Transfer-Encoding fields whose whole value is `chunked`, and all
    /// Transfer-Encoding fields.
    pub(super) te_plain_chunked: u32,
    pub(super) te_fields: u32,
    /// How many Content-Length fields there are.
    pub(super) content_lengths: u32,
    pub(super) close: bool,
    pub(super) keep_alive: bool,
    pub(super) connection_upgrade: bool,
    /// A Connection token other than `keep-alive` and `upgrade`: it may
    /// name a field that must not cross (`Fields::names_fields`).
    pub(super) names_fields: bool,
    pub(super) upgrade_header: bool,
    pub(super) expect_continue: bool,
    pub(super) hosts: u32,
    pub(super) host_index: Option<usize>,
}

/// Reads every field once; a bad or conflicting Content-Length is refused.
pub(super) fn scan_fields(fields: &Fields) -> Result<Framing, HeadError> {
    let mut f = Framing::default();
    for (i, field) in fields.list().iter().enumerate() {
        let value = fields.get(field.value);
        match field.kind {
            Name::ContentLength => {
                let n = content_length(value).map_err(HeadError::Bad)?;
                if f.content_length.is_some_and(|prev| prev != n) {
                    return Err(HeadError::Bad("conflicting Content-Length"));
                }
                f.content_length = Some(n);
                f.content_lengths += 1;
            }
            Name::TransferEncoding => {
                f.te = true;
                for coding in list(value) {
                    // `chunked` takes no parameters: `chunked;x=y` is some other coding.
                    let chunked = coding.eq_ignore_ascii_case(b"chunked");
                    f.te_chunked_count += u32::from(chunked);
                    f.te_chunked_last = chunked;
                }
                f.te_fields += 1;
                f.te_plain_chunked += u32::from(trim_ows(value).eq_ignore_ascii_case(b"chunked"));
            }
            Name::Connection => {
                for token in list(value) {
                    if token.eq_ignore_ascii_case(b"keep-alive") {
                        f.keep_alive = true;
                    } else if token.eq_ignore_ascii_case(b"upgrade") {
                        f.connection_upgrade = true;
                    } else {
                        f.close |= token.eq_ignore_ascii_case(b"close");
                        f.names_fields = true;
                    }
                }
            }
            Name::Upgrade => f.upgrade_header = true,
            Name::Expect => f.expect_continue |= value.eq_ignore_ascii_case(b"100-continue"),
            Name::Host => {
                f.hosts += 1;
                f.host_index = Some(i);
            }
            _ => {}
        }
    }
    Ok(f)
}

/// Rewrites the Content-Length fields of a length-delimited message to one
/// field with the value in canonical form (`0004` and `4, 4` become `4`), at
/// the place of the first. A recipient that reads leading zeros or lists
/// differently from us then cannot see another length (RFC 9110 8.6).
pub(super) fn canonical_length(fields: &mut Fields, f: &Framing, n: u64) {
    let Some(first) = fields
        .list()
        .iter()
        .position(|x| x.kind == Name::ContentLength)
    else {
        return;
    };
    let mut digits = [0u8; 20];
    let canonical = decimal(n, &mut digits);
    if fields.get(fields.list()[first].value) != canonical {
        let value = fields.add(canonical);
        let field = &mut fields.list_mut()[first];
        field.value = value;
        field.line_end = 0;
    }
    if f.content_lengths > 1 {
        let mut seen = 0;
        fields.list_mut().retain(|x| {
            if x.kind != Name::ContentLength {
                return true;
            }
            seen += 1;
            seen == 1
        });
    }
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
pub(in crate::http) fn list(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value
        .split(|&b| b == b',')
        .map(trim_ows)
        .filter(|e| !e.is_empty())
}

/// `s` without leading and trailing spaces and tabs (RFC 9110 5.6.3 OWS).
pub(in crate::http) fn trim_ows(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}
