//! Percent-decoding of path segments and query strings (RFC 3986 section
//! 2.1). Pure: no I/O.

/// Decodes `%XX` escapes. `plus_is_space`: also turn `+` into a space, as
/// HTML forms encode query values (never in a path). None: a bad escape or
/// a result that is not UTF-8.
pub fn percent_decode(s: &str, plus_is_space: bool) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hi = hex_digit(*bytes.get(i + 1)?)?;
                let lo = hex_digit(*bytes.get(i + 2)?)?;
                out.push(hi << 4 | lo);
                i += 3;
            }
            b'+' if plus_is_space => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

fn hex_digit(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// Splits a query string into decoded `(key, value)` pairs, in order. Empty
/// pieces (`a=1&&b=2`) are skipped; a key without `=` has an empty value.
/// Err: the piece that does not decode.
pub fn query_pairs(query: &str) -> Result<Vec<(String, String)>, String> {
    let mut pairs = Vec::new();
    for piece in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = piece.split_once('=').unwrap_or((piece, ""));
        match (percent_decode(k, true), percent_decode(v, true)) {
            (Some(k), Some(v)) => pairs.push((k, v)),
            _ => return Err(piece.to_string()),
        }
    }
    Ok(pairs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_escapes_in_either_case() {
        assert_eq!(
            percent_decode("notes%3Aalice", false).as_deref(),
            Some("notes:alice")
        );
        assert_eq!(
            percent_decode("notes%3aalice", false).as_deref(),
            Some("notes:alice")
        );
        assert_eq!(percent_decode("a+b", false).as_deref(), Some("a+b"));
        assert_eq!(percent_decode("a+b%20c", true).as_deref(), Some("a b c"));
        assert_eq!(percent_decode("%C3%A9", false).as_deref(), Some("é"));
    }

    #[test]
    fn refuses_bad_escapes_and_non_utf8() {
        assert_eq!(percent_decode("%", false), None);
        assert_eq!(percent_decode("%3", false), None);
        assert_eq!(percent_decode("%zz", false), None);
        assert_eq!(percent_decode("%ff", false), None);
    }

    #[test]
    fn query_pairs_in_order() {
        assert_eq!(
            query_pairs("service=notes&&search=a%20b&flag").unwrap(),
            [
                ("service".to_string(), "notes".to_string()),
                ("search".to_string(), "a b".to_string()),
                ("flag".to_string(), String::new()),
            ]
        );
        assert_eq!(query_pairs("").unwrap(), []);
        assert_eq!(query_pairs("a=%g1").unwrap_err(), "a=%g1");
    }
}
