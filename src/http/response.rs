//! Responses the front writes itself: status lines with their reason
//! phrases, complete small responses (API answers, errors), the fixed heads
//! it sends (`100 Continue`, the event-stream head) and body chunks.
//!
//! Pure byte writers: callers own the buffers and the sockets. Relayed
//! responses from apps are written by `write::write_response_head`, not here.

/// The interim response the front sends when it asks for a body itself
/// (RFC 9110 section 10.1.1).
pub const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

/// The head of a Server-Sent Events stream; chunks follow (`write_chunk`).
pub const EVENT_STREAM_HEAD: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\
      Cache-Control: no-cache\r\nTransfer-Encoding: chunked\r\n\r\n";

/// A complete response made by the front: status, type, extra headers, body.
#[derive(Debug, Clone, Copy)]
pub struct Canned<'a> {
    pub status: u16,
    pub content_type: &'a str,
    /// Extra headers (e.g. WWW-Authenticate, Retry-After).
    pub headers: &'a [(&'static str, String)],
    pub body: &'a [u8],
}

/// Appends `resp` to `out` for an HTTP/1.`minor` client. `keep_alive`
/// false adds `Connection: close`; `head_only` (a HEAD request) leaves out
/// the body but keeps its length; a 204 has neither. A 401 without its own challenge gets
/// `WWW-Authenticate: Bearer` (RFC 9110 section 15.5.2 requires one).
pub fn write_canned(
    out: &mut Vec<u8>,
    resp: &Canned<'_>,
    minor: u8,
    keep_alive: bool,
    head_only: bool,
) {
    let version = if minor == 0 { "HTTP/1.0" } else { "HTTP/1.1" };
    out.extend_from_slice(
        format!("{version} {} {}\r\n", resp.status, reason(resp.status)).as_bytes(),
    );
    // A 204 has no body and must not say Content-Length (RFC 9110 8.6).
    if resp.status != 204 {
        out.extend_from_slice(format!("Content-Type: {}\r\n", resp.content_type).as_bytes());
        out.extend_from_slice(format!("Content-Length: {}\r\n", resp.body.len()).as_bytes());
    }
    for (name, value) in resp.headers {
        out.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
    }
    if resp.status == 401
        && !resp
            .headers
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case("www-authenticate"))
    {
        out.extend_from_slice(b"WWW-Authenticate: Bearer\r\n");
    }
    if !keep_alive {
        out.extend_from_slice(b"Connection: close\r\n");
    } else if minor == 0 {
        out.extend_from_slice(b"Connection: keep-alive\r\n");
    }
    out.extend_from_slice(b"\r\n");
    if !head_only && resp.status != 204 {
        out.extend_from_slice(resp.body);
    }
}

/// Appends one chunk of a chunked body; an empty `data` writes nothing (an
/// empty chunk would end the body).
pub fn write_chunk(out: &mut Vec<u8>, data: &[u8]) {
    if data.is_empty() {
        return;
    }
    out.extend_from_slice(format!("{:x}\r\n", data.len()).as_bytes());
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
}

/// The reason phrase for statuses the front produces.
pub fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        409 => "Conflict",
        411 => "Length Required",
        413 => "Content Too Large",
        414 => "URI Too Long",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        507 => "Insufficient Storage",
        _ => "Unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canned(status: u16, headers: &[(&'static str, String)], body: &[u8]) -> Vec<u8> {
        let resp = Canned {
            status,
            content_type: "application/json",
            headers,
            body,
        };
        let mut out = Vec::new();
        write_canned(&mut out, &resp, 1, true, false);
        out
    }

    #[test]
    fn canned_response_has_length_headers_and_body() {
        let out = canned(503, &[("Retry-After", "5".into())], b"{}");
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n\
             Content-Length: 2\r\nRetry-After: 5\r\n\r\n{}"
        );
    }

    #[test]
    fn no_content_has_no_length_type_or_body() {
        let out = canned(204, &[], b"ignored");
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "HTTP/1.1 204 No Content\r\n\r\n"
        );
    }

    #[test]
    fn closing_head_only_and_http10_framing() {
        let resp = Canned {
            status: 404,
            content_type: "text/plain",
            headers: &[],
            body: b"nope",
        };
        let mut out = Vec::new();
        write_canned(&mut out, &resp, 1, false, true);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\nContent-Length: 4\r\n\
             Connection: close\r\n\r\n"
        );
        let mut out = Vec::new();
        write_canned(&mut out, &resp, 0, true, false);
        assert!(out.starts_with(b"HTTP/1.0 404 Not Found\r\n"));
        assert!(out.ends_with(b"Connection: keep-alive\r\n\r\nnope"));
    }

    #[test]
    fn unauthorized_gets_one_challenge() {
        let out = canned(401, &[], b"");
        assert!(out
            .windows(26)
            .any(|w| w == b"WWW-Authenticate: Bearer\r\n"));
        let own = canned(401, &[("WWW-Authenticate", "Basic".into())], b"");
        let text = String::from_utf8(own).unwrap();
        assert_eq!(text.matches("WWW-Authenticate").count(), 1);
    }

    #[test]
    fn chunks_carry_hex_length_and_empty_data_writes_nothing() {
        let mut out = Vec::new();
        write_chunk(&mut out, b"");
        assert!(out.is_empty());
        write_chunk(&mut out, &[b'x'; 26]);
        assert!(out.starts_with(b"1a\r\nxxx"));
        assert!(out.ends_with(b"x\r\n"));
    }
}
