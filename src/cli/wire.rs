//! The bytes of one API exchange: the request written, the response read
//! back (head via `crate::http::parse_response`, the body as the head frames
//! it), a 2xx body as JSON or an error's `error` field, and a
//! Server-Sent Events stream cut into items. Over any `Read`/`Write`: the
//! sockets and TLS are `transport.rs`'s. No timeouts, no tokens of its own.

use std::io::{self, Read};

use serde_json::Value;

use super::client::ClientError;
use crate::http::{parse_response, BodyKind, Framer};

/// Responses larger than this are refused (a runaway body, not an API answer).
const MAX_BODY: usize = 256 * 1024 * 1024;

/// A response: status and body bytes (chunking removed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub body: Vec<u8>,
}

/// One item of a Server-Sent Events stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sse {
    /// A `:` line (the server's `subscribed` greeting, heartbeats).
    Comment(String),
    /// A message: its `event` (empty: none) and its `data` lines joined by `\n`.
    Message { event: String, data: String },
}

/// Cuts an event stream into items, following the HTML standard's event
/// stream interpretation for the fields we use (`event`, `data`): lines end
/// in LF or CRLF, a blank line ends a message, `:` starts a comment. Pure.
#[derive(Debug, Default)]
pub struct SseParser {
    line: Vec<u8>,
    event: String,
    data: Option<String>,
}

impl SseParser {
    pub fn feed(&mut self, bytes: &[u8], out: &mut Vec<Sse>) {
        for &b in bytes {
            if b != b'\n' {
                self.line.push(b);
                continue;
            }
            if self.line.last() == Some(&b'\r') {
                self.line.pop();
            }
            let line = String::from_utf8_lossy(&self.line).into_owned();
            self.line.clear();
            if line.is_empty() {
                let event = std::mem::take(&mut self.event);
                if let Some(data) = self.data.take() {
                    out.push(Sse::Message { event, data });
                }
                continue;
            }
            if let Some(comment) = line.strip_prefix(':') {
                out.push(Sse::Comment(comment.trim_start().to_string()));
                continue;
            }
            let (field, value) = line.split_once(':').unwrap_or((&line, ""));
            let value = value.strip_prefix(' ').unwrap_or(value);
            match field {
                "event" => self.event = value.to_string(),
                "data" => match &mut self.data {
                    Some(d) => {
                        d.push('\n');
                        d.push_str(value);
                    }
                    None => self.data = Some(value.to_string()),
                },
                // id, retry and unknown fields: nothing we use.
                _ => {}
            }
        }
    }
}

/// The request bytes. `Connection: close`: one request per connection keeps
/// the client simple and the response end unambiguous.
pub fn request_bytes(
    method: &str,
    target: &str,
    host: &str,
    token: Option<&str>,
    body: Option<&[u8]>,
) -> Vec<u8> {
    let mut head = format!(
        "{method} {target} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: ten/{}\r\nAccept: application/json\r\nConnection: close\r\n",
        env!("CARGO_PKG_VERSION")
    );
    if let Some(t) = token {
        head.push_str(&format!("Authorization: Bearer {t}\r\n"));
    }
    if let Some(b) = body {
        head.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            b.len()
        ));
    } else if matches!(method, "POST" | "PUT" | "PATCH") {
        head.push_str("Content-Length: 0\r\n");
    }
    head.push_str("\r\n");
    let mut out = head.into_bytes();
    if let Some(b) = body {
        out.extend_from_slice(b);
    }
    out
}

#[derive(Debug)]
pub enum ReadError {
    Io(io::Error),
    Bad(String),
}

/// Reads one response: head via `http::parse_response`, then the body as the
/// head frames it (RFC 9112 section 6.3). Interim 1xx heads are skipped.
pub fn read_response<R: Read>(r: &mut R, head_request: bool) -> Result<Response, ReadError> {
    let (head, rest) = read_head(r, head_request)?;
    let body = read_body(r, head.body, rest)?;
    Ok(Response {
        status: head.status,
        body,
    })
}

/// Reads up to the end of the final (non-1xx) response head. Returns the
/// head and the bytes read past it.
pub fn read_head<R: Read>(
    r: &mut R,
    head_request: bool,
) -> Result<(crate::http::head::ResponseHead, Vec<u8>), ReadError> {
    let mut buf = Vec::with_capacity(16 * 1024);
    let (head, used) = loop {
        match parse_response(&buf, head_request) {
            Ok(Some((head, used))) if (100..200).contains(&head.status) && head.status != 101 => {
                buf.drain(..used);
                continue;
            }
            Ok(Some(found)) => break found,
            Ok(None) => {}
            Err(e) => return Err(ReadError::Bad(e.to_string())),
        }
        if fill(r, &mut buf)? == 0 {
            return Err(ReadError::Bad(if buf.is_empty() {
                "the connection closed without an answer".to_string()
            } else {
                "the connection closed in the middle of the response head".to_string()
            }));
        }
    };
    let rest = buf.split_off(used);
    Ok((head, rest))
}

/// Reads a whole body framed as `kind`, starting with the bytes in `rest`.
pub fn read_body<R: Read>(
    r: &mut R,
    kind: BodyKind,
    mut rest: Vec<u8>,
) -> Result<Vec<u8>, ReadError> {
    let body = match kind {
        BodyKind::None => Vec::new(),
        BodyKind::Length(n) => {
            let n = usize::try_from(n)
                .ok()
                .filter(|&n| n <= MAX_BODY)
                .ok_or_else(too_large)?;
            while rest.len() < n {
                if fill(r, &mut rest)? == 0 {
                    return Err(ReadError::Bad(
                        "the connection closed before the body ended".to_string(),
                    ));
                }
            }
            rest.truncate(n);
            rest
        }
        BodyKind::Chunked => {
            let mut framer = Framer::new(BodyKind::Chunked);
            let mut out = Vec::new();
            loop {
                let scan = framer
                    .decode(&rest, &mut out)
                    .map_err(|e| ReadError::Bad(e.to_string()))?;
                if scan.done {
                    break;
                }
                // Keep what the framer did not take (a partial size line) for the next round.
                rest.drain(..scan.used);
                if out.len() > MAX_BODY {
                    return Err(too_large());
                }
                if fill(r, &mut rest)? == 0 {
                    return Err(ReadError::Bad(
                        "the connection closed before the last chunk".to_string(),
                    ));
                }
            }
            out
        }
        BodyKind::Close => {
            while fill(r, &mut rest)? > 0 {
                if rest.len() > MAX_BODY {
                    return Err(too_large());
                }
            }
            rest
        }
    };
    Ok(body)
}

fn too_large() -> ReadError {
    ReadError::Bad(format!("body larger than {} MiB", MAX_BODY >> 20))
}

/// Appends one read's worth of bytes; returns how many (0 = EOF).
pub fn fill<R: Read>(r: &mut R, buf: &mut Vec<u8>) -> Result<usize, ReadError> {
    let mut chunk = [0u8; 16 * 1024];
    loop {
        match r.read(&mut chunk) {
            Ok(n) => {
                buf.extend_from_slice(&chunk[..n]);
                return Ok(n);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(ReadError::Io(e)),
        }
    }
}

/// A 2xx body as JSON (an empty body is null); anything else as `Api`.
pub fn decode_json(server: &str, resp: Response) -> Result<Value, ClientError> {
    let parsed: Option<Value> = serde_json::from_slice(&resp.body).ok();
    if (200..300).contains(&resp.status) {
        if resp.body.iter().all(u8::is_ascii_whitespace) {
            return Ok(Value::Null);
        }
        return parsed.ok_or_else(|| ClientError::BadResponse {
            server: server.to_string(),
            reason: format!("HTTP {} with a body that is not JSON", resp.status),
        });
    }
    let message = match parsed
        .as_ref()
        .and_then(|v| v.get("error"))
        .and_then(Value::as_str)
    {
        Some(m) => m.to_string(),
        None => {
            let text = String::from_utf8_lossy(&resp.body);
            let text = text.trim();
            if text.is_empty() || text.len() > 200 {
                format!("the server answered HTTP {}", resp.status)
            } else {
                format!("the server answered HTTP {}: {text}", resp.status)
            }
        }
    };
    Err(ClientError::Api {
        status: resp.status,
        message,
    })
}

/// Percent-encodes a query value (RFC 3986 unreserved characters pass).
pub fn query_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_has_host_length_and_token_only_when_given() {
        let r = request_bytes("POST", "/api/x", "h:1", Some("ten_abc"), Some(b"{}"));
        let r = String::from_utf8(r).unwrap();
        assert!(
            r.starts_with("POST /api/x HTTP/1.1\r\nHost: h:1\r\n"),
            "{r}"
        );
        assert!(r.contains("Authorization: Bearer ten_abc\r\n"));
        assert!(r.contains("Content-Length: 2\r\n"));
        assert!(r.contains("Connection: close\r\n"));
        assert!(r.ends_with("\r\n\r\n{}"));
        let r = String::from_utf8(request_bytes(
            "GET",
            "/api/instances",
            "localhost",
            None,
            None,
        ))
        .unwrap();
        assert!(
            !r.contains("Authorization") && !r.contains("Content-Length"),
            "{r}"
        );
        let r = String::from_utf8(request_bytes(
            "POST",
            "/api/reload",
            "localhost",
            None,
            None,
        ))
        .unwrap();
        assert!(r.contains("Content-Length: 0\r\n"), "{r}");
    }

    #[test]
    fn errors_use_the_api_error_field() {
        let e = decode_json(
            "s",
            Response {
                status: 404,
                body: br#"{"error":"no instance api:x"}"#.to_vec(),
            },
        )
        .unwrap_err();
        assert_eq!(e.to_string(), "no instance api:x");
        let e = decode_json(
            "s",
            Response {
                status: 502,
                body: b"Bad Gateway".to_vec(),
            },
        )
        .unwrap_err();
        assert_eq!(e.to_string(), "the server answered HTTP 502: Bad Gateway");
        let v = decode_json(
            "s",
            Response {
                status: 200,
                body: br#"[1]"#.to_vec(),
            },
        )
        .unwrap();
        assert_eq!(v, serde_json::json!([1]));
        assert!(decode_json(
            "s",
            Response {
                status: 200,
                body: b"nope".to_vec()
            }
        )
        .is_err());
    }

    #[test]
    fn query_values_are_escaped() {
        assert_eq!(query_escape("a b&c=d/é"), "a%20b%26c%3Dd%2F%C3%A9");
        assert_eq!(query_escape("ok-1_2.3~"), "ok-1_2.3~");
    }

    #[test]
    fn responses_are_read_with_every_framing() {
        let cases: [(&[u8], &[u8]); 4] = [
            (b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", b"hello"),
            (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nhel\r\n2\r\nlo\r\n0\r\n\r\n", b"hello"),
            (b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nhello", b"hello"),
            (b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\n{}", b"{}"),
        ];
        for (wire, body) in cases {
            // One byte per read: every split point of head and body.
            struct Trickle<'a>(&'a [u8]);
            impl Read for Trickle<'_> {
                fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                    let n = self.0.len().min(1).min(buf.len());
                    buf[..n].copy_from_slice(&self.0[..n]);
                    self.0 = &self.0[n..];
                    Ok(n)
                }
            }
            let resp = read_response(&mut Trickle(wire), false).unwrap();
            assert_eq!(resp.body, body, "{}", String::from_utf8_lossy(wire));
            let resp = read_response(&mut &wire[..], false).unwrap();
            assert_eq!(resp.body, body);
        }
    }

    #[test]
    fn event_streams_are_cut_into_comments_and_messages_at_any_split() {
        let text = b": subscribed\n\nevent: log\ndata: {\"a\":1}\n\n: ping\r\n\r\ndata: x\ndata: y\n\nevent: lone\n\n";
        let want = vec![
            Sse::Comment("subscribed".into()),
            Sse::Message {
                event: "log".into(),
                data: "{\"a\":1}".into(),
            },
            Sse::Comment("ping".into()),
            Sse::Message {
                event: String::new(),
                data: "x\ny".into(),
            },
        ];
        for i in 0..=text.len() {
            let mut p = SseParser::default();
            let mut got = Vec::new();
            p.feed(&text[..i], &mut got);
            p.feed(&text[i..], &mut got);
            assert_eq!(got, want, "split at {i}");
        }
    }
}
