//! A parsed head's bytes and its header fields as ranges over them. The
//! head is copied once out of the read buffer; each field is a pair of
//! offsets into that copy, with what its name means to a proxy decided
//! once (`Name`), so nothing compares names again. What the parser
//! rewrites (a canonical Content-Length, an absolute target's origin-form,
//! a lowercased host) is appended after the head's own bytes and pointed to
//! the same way. A field whose line is already `name: value\r\n` says where
//! that line ends, so runs of such lines go on as one slice (`write.rs`).
//! Pure: no I/O.

use super::append::append;

/// A range of a head's bytes (`Fields::get`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Span {
    pub(super) start: u32,
    pub(super) end: u32,
}

/// What a field's name means to a proxy: the fields it reads or drops by
/// name, and `Other`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Name {
    Other,
    Host,
    ContentLength,
    TransferEncoding,
    Connection,
    KeepAlive,
    ProxyConnection,
    Te,
    Trailer,
    Upgrade,
    Expect,
    XForwardedFor,
    XForwardedProto,
    XForwardedHost,
}

impl Name {
    /// The meaning of field name `name` (any case).
    pub fn of(name: &[u8]) -> Name {
        let is = |known: &str| name.eq_ignore_ascii_case(known.as_bytes());
        match name.len() {
            2 if is("te") => Name::Te,
            4 if is("host") => Name::Host,
            6 if is("expect") => Name::Expect,
            7 if is("upgrade") => Name::Upgrade,
            7 if is("trailer") => Name::Trailer,
            10 if is("connection") => Name::Connection,
            10 if is("keep-alive") => Name::KeepAlive,
            14 if is("content-length") => Name::ContentLength,
            15 if is("x-forwarded-for") => Name::XForwardedFor,
            16 if is("proxy-connection") => Name::ProxyConnection,
            16 if is("x-forwarded-host") => Name::XForwardedHost,
            17 if is("transfer-encoding") => Name::TransferEncoding,
            17 if is("x-forwarded-proto") => Name::XForwardedProto,
            _ => Name::Other,
        }
    }
}

/// One header field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Field {
    pub name: Span,
    pub value: Span,
    pub kind: Name,
    /// Where the field's line ends when it is exactly `name: value\r\n`
    /// in the head's bytes (it can be sent on as it is); 0 when it is not.
    pub(super) line_end: u32,
}

/// A head's bytes and its fields, in order. Parsing into it again reuses
/// its storage.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Fields {
    bytes: Vec<u8>,
    list: Vec<Field>,
    /// A Connection field names fields with a token other than
    /// `keep-alive` and `upgrade`: those fields are dropped too (`hop.rs`).
    pub(super) names_fields: bool,
}

impl Fields {
    /// Starts over with `head`, the bytes a parse took, as the head's own.
    pub(super) fn reset(&mut self, head: &[u8]) {
        self.bytes.clear();
        append(&mut self.bytes, head);
        self.list.clear();
        self.names_fields = false;
    }

    /// The bytes `span` covers.
    pub fn get(&self, span: Span) -> &[u8] {
        &self.bytes[span.start as usize..span.end as usize]
    }

    /// `get` as text. Spans of names, methods, targets, hosts and reasons
    /// cover text the parser checked (ASCII), so this is never empty for
    /// want of UTF-8.
    pub fn text(&self, span: Span) -> &str {
        std::str::from_utf8(self.get(span)).unwrap_or_default()
    }

    /// The span of `part`, a slice of `base` (the buffer the head was
    /// parsed from, whose first bytes are this head's own); when it lies
    /// elsewhere (an empty slice a parser made up), its bytes are added.
    pub(super) fn span_in(&mut self, base: &[u8], part: &[u8]) -> Span {
        let start = (part.as_ptr() as usize).wrapping_sub(base.as_ptr() as usize);
        match start.checked_add(part.len()) {
            Some(end) if end <= base.len() && end <= self.bytes.len() => Span {
                start: start as u32,
                end: end as u32,
            },
            _ => self.add(part),
        }
    }

    /// Appends `bytes` after the head and gives their span.
    pub(super) fn add(&mut self, bytes: &[u8]) -> Span {
        let start = self.bytes.len() as u32;
        append(&mut self.bytes, bytes);
        Span {
            start,
            end: self.bytes.len() as u32,
        }
    }

    /// Appends a lowercased copy of what `span` covers and gives its span.
    pub(super) fn add_lowercase(&mut self, span: Span) -> Span {
        let start = self.bytes.len();
        self.bytes
            .extend_from_within(span.start as usize..span.end as usize);
        self.bytes[start..].make_ascii_lowercase();
        Span {
            start: start as u32,
            end: self.bytes.len() as u32,
        }
    }

    /// Adds the field httparse found as `name` and `value` in `base`.
    pub(super) fn push_parsed(&mut self, base: &[u8], name: &[u8], value: &[u8]) {
        let name = self.span_in(base, name);
        let value = self.span_in(base, value);
        let at = |s: u32, n: usize| self.bytes.get(s as usize..s as usize + n);
        let whole_line = value.start == name.end + 2
            && at(name.end, 2) == Some(b": ")
            && at(value.end, 2) == Some(b"\r\n");
        let field = Field {
            kind: Name::of(self.get(name)),
            name,
            value,
            line_end: if whole_line { value.end + 2 } else { 0 },
        };
        self.list.push(field);
    }

    /// Adds a field made by the parser, after the head's own.
    pub(super) fn push_made(&mut self, name: &str, value: Span) {
        let name_span = self.add(name.as_bytes());
        self.list.push(Field {
            name: name_span,
            value,
            kind: Name::of(name.as_bytes()),
            line_end: 0,
        });
    }

    pub fn list(&self) -> &[Field] {
        &self.list
    }

    pub(super) fn list_mut(&mut self) -> &mut Vec<Field> {
        &mut self.list
    }

    /// The head's bytes with the parser's additions.
    pub fn size(&self) -> usize {
        self.bytes.len()
    }

    /// A field's name and value.
    pub fn pair(&self, f: &Field) -> (&str, &[u8]) {
        (self.text(f.name), self.get(f.value))
    }

    /// Every field's name and value, in order.
    pub fn pairs(&self) -> impl Iterator<Item = (&str, &[u8])> {
        self.list.iter().map(|f| self.pair(f))
    }

    /// The value of the first field named `name` (any case).
    pub fn find(&self, name: &str) -> Option<&[u8]> {
        self.pairs()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }

    /// Drops every field named `name` (any case).
    pub fn remove(&mut self, name: &str) {
        let bytes = &self.bytes;
        self.list.retain(|f| {
            !bytes[f.name.start as usize..f.name.end as usize].eq_ignore_ascii_case(name.as_bytes())
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_known_in_any_case_and_only_whole() {
        assert_eq!(Name::of(b"Content-Length"), Name::ContentLength);
        assert_eq!(Name::of(b"X-FORWARDED-HOST"), Name::XForwardedHost);
        assert_eq!(Name::of(b"te"), Name::Te);
        assert_eq!(Name::of(b"tE"), Name::Te);
        assert_eq!(Name::of(b"Hosts"), Name::Other);
        assert_eq!(Name::of(b"Content-Lengt"), Name::Other);
        assert_eq!(Name::of(b"keep_alive"), Name::Other);
    }

    #[test]
    fn a_field_in_its_plain_form_knows_where_its_line_ends() {
        let head = b"Host: a\r\nX:  b \r\nY:c\r\n";
        let mut f = Fields::default();
        f.reset(head);
        f.push_parsed(head, &head[0..4], &head[6..7]);
        f.push_parsed(head, &head[9..10], &head[13..14]);
        f.push_parsed(head, &head[17..18], &head[19..20]);
        let ends: Vec<u32> = f.list().iter().map(|f| f.line_end).collect();
        assert_eq!(ends, [9, 0, 0]);
        assert_eq!(f.pair(&f.list()[1]), ("X", &b"b"[..]));
        // A slice from elsewhere is copied in after the head.
        let made = f.span_in(head, b"");
        assert_eq!(made.start as usize, head.len());
        f.push_made("Host", made);
        assert_eq!(f.list()[3].kind, Name::Host);
        assert_eq!(f.find("host"), Some(&b"a"[..]));
        f.remove("HOST");
        assert_eq!(f.list().len(), 2);
    }
}
