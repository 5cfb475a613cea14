//! Hop-by-hop headers (RFC 9110 7.6.1): which fields of a head stay on this
//! connection and which cross the proxy. Pure: no I/O.

use super::head::{list, Header};

/// Hop-by-hop fields (RFC 9110 7.6.1, plus the legacy ones) that a proxy
/// never forwards. `Upgrade` is handled apart: it crosses when upgrading.
fn is_hop_by_hop(name: &str) -> bool {
    [
        "connection",
        "keep-alive",
        "proxy-connection",
        "te",
        "trailer",
    ]
    .iter()
    .any(|h| name.eq_ignore_ascii_case(h))
}

/// Whether `name` is listed in a Connection header, which makes it
/// hop-by-hop (RFC 9110 7.6.1). Framing and Host are never dropped this way:
/// a client naming Content-Length in Connection must not change how the
/// upstream frames the body.
fn named_in_connection(headers: &[Header], name: &str) -> bool {
    if ["host", "content-length", "transfer-encoding"]
        .iter()
        .any(|p| name.eq_ignore_ascii_case(p))
    {
        return false;
    }
    headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("connection"))
        .any(|h| list(&h.value).any(|t| t.eq_ignore_ascii_case(name.as_bytes())))
}

/// Whether a header crosses the proxy: not hop-by-hop, not named in
/// Connection, and `Upgrade` only when upgrading.
pub(super) fn crosses(h: &Header, headers: &[Header], has_connection: bool, upgrade: bool) -> bool {
    if is_hop_by_hop(&h.name) {
        return false;
    }
    if h.name.eq_ignore_ascii_case("upgrade") {
        return upgrade;
    }
    !(has_connection && named_in_connection(headers, &h.name))
}

pub(super) fn has_connection(headers: &[Header]) -> bool {
    headers
        .iter()
        .any(|h| h.name.eq_ignore_ascii_case("connection"))
}
