//! Hop-by-hop headers (RFC 9110 7.6.1): which fields of a head stay on this
//! connection and which cross the proxy. Pure: no I/O.

use super::fields::{Field, Fields, Name};
use super::head::list;

/// Whether `name` is listed in a Connection header, which makes it
/// hop-by-hop (RFC 9110 7.6.1).
fn named_in_connection(fields: &Fields, name: &[u8]) -> bool {
    fields
        .list()
        .iter()
        .filter(|f| f.kind == Name::Connection)
        .any(|f| list(fields.get(f.value)).any(|t| t.eq_ignore_ascii_case(name)))
}

/// Whether a field of `fields` crosses the proxy: not hop-by-hop (RFC 9110
/// 7.6.1, plus the legacy Keep-Alive and Proxy-Connection), not named in
/// Connection, and `Upgrade` only when upgrading. Framing and Host are
/// never dropped by naming them in Connection: a client naming
/// Content-Length there must not change how the upstream frames the body.
pub(super) fn crosses(f: &Field, fields: &Fields, upgrade: bool) -> bool {
    match f.kind {
        Name::Connection | Name::KeepAlive | Name::ProxyConnection | Name::Te | Name::Trailer => {
            false
        }
        Name::Upgrade => upgrade,
        Name::Host | Name::ContentLength | Name::TransferEncoding => true,
        _ => !(fields.names_fields && named_in_connection(fields, fields.get(f.name))),
    }
}
