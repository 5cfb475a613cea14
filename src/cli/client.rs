//! The blocking API client: one HTTP/1.1 request per connection, over TCP
//! (`--server http://...`) or the local socket `{data_dir}/.tenement/ten.sock`.
//! `Client::stream` reads a Server-Sent Events answer as it arrives.
//!
//! Called from the CLI's main thread (and deploy's request thread). Response
//! heads and chunked bodies are parsed by `crate::http`; this file owns only
//! the sockets, timeouts and error wording. The token is sent over TCP only:
//! the socket needs none, file permissions guard it.

use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream, ToSocketAddrs};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;

use crate::http::{parse_response, BodyKind, Framer};
use crate::net::{StdStream, Stream};

/// How long a TCP connect may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long to wait for an ordinary response.
pub const READ_TIMEOUT: Duration = Duration::from_secs(60);
/// Responses larger than this are refused (a runaway body, not an API answer).
const MAX_BODY: usize = 256 * 1024 * 1024;

/// Where the API is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    Tcp(HttpUrl),
    Unix(PathBuf),
}

/// An `http://host:port/prefix` URL, taken apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpUrl {
    /// Host name or IP, without brackets for IPv6.
    pub host: String,
    pub port: u16,
    /// The `Host` header value: the authority as written.
    pub authority: String,
    /// A path prefix without a trailing slash ("" for none).
    pub prefix: String,
}

/// A failed API call. Printed after `ten: error: `.
#[derive(Debug)]
pub enum ClientError {
    BadUrl {
        url: String,
        reason: &'static str,
    },
    /// Could not connect; `reason` is already worded for the operator.
    Unreachable {
        server: String,
        reason: String,
    },
    Timeout {
        server: String,
        after: Duration,
    },
    /// The connection broke mid-exchange.
    Io {
        server: String,
        reason: String,
    },
    /// The server's answer was not HTTP or not the JSON we expect.
    BadResponse {
        server: String,
        reason: String,
    },
    /// A non-2xx answer; `message` is its `error` field.
    Api {
        status: u16,
        message: String,
    },
}

impl std::fmt::Display for ClientError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClientError::BadUrl { url, reason } => write!(f, "bad server URL {url:?}: {reason}"),
            ClientError::Unreachable { server, reason } => {
                write!(f, "cannot reach the server at {server}: {reason}")
            }
            ClientError::Timeout { server, after } => {
                write!(
                    f,
                    "the server at {server} did not answer within {}s",
                    after.as_secs()
                )
            }
            ClientError::Io { server, reason } => {
                write!(f, "lost the connection to {server}: {reason}")
            }
            ClientError::BadResponse { server, reason } => {
                write!(f, "bad response from {server}: {reason}")
            }
            ClientError::Api { message, .. } => write!(f, "{message}"),
        }
    }
}

impl std::error::Error for ClientError {}

/// Parses `--server`. Only `http://` is supported; a missing scheme means http.
pub fn parse_url(url: &str) -> Result<HttpUrl, ClientError> {
    let bad = |reason| ClientError::BadUrl {
        url: url.to_string(),
        reason,
    };
    let trimmed = url.trim();
    let lower = trimmed.to_ascii_lowercase();
    let rest = if lower.starts_with("https://") {
        return Err(bad("https servers are not supported yet"));
    } else if lower.starts_with("http://") {
        &trimmed["http://".len()..]
    } else if trimmed.contains("://") {
        return Err(bad("only http:// is supported"));
    } else {
        trimmed
    };
    let (authority, path) = match rest.find(['/', '?', '#']) {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    if path.contains(['?', '#']) {
        return Err(bad("a query or fragment makes no sense here"));
    }
    if authority.contains('@') {
        return Err(bad("credentials in the URL are not supported; use --token"));
    }
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (host, after) = v6
            .split_once(']')
            .ok_or_else(|| bad("unclosed '[' in the host"))?;
        match after {
            "" => (host, None),
            p => (
                host,
                Some(
                    p.strip_prefix(':')
                        .ok_or_else(|| bad("junk after the IPv6 address"))?,
                ),
            ),
        }
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    if host.is_empty() {
        return Err(bad("no host"));
    }
    let port = match port {
        None => 80,
        Some(p) => p
            .parse::<u16>()
            .ok()
            .filter(|&p| p != 0)
            .ok_or_else(|| bad("bad port"))?,
    };
    Ok(HttpUrl {
        host: host.to_string(),
        port,
        authority: authority.to_string(),
        prefix: path.trim_end_matches('/').to_string(),
    })
}

/// The address to connect to for a listen address: a wildcard one
/// (`0.0.0.0`, `::`) means this machine's loopback.
pub fn loopback(listen: SocketAddr) -> SocketAddr {
    let ip = match listen.ip() {
        IpAddr::V4(v4) if v4.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(v6) if v6.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    SocketAddr::new(ip, listen.port())
}

/// A response: status and body bytes (chunking removed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub body: Vec<u8>,
}

/// An API client. Cheap to clone; every request opens its own connection.
#[derive(Debug, Clone)]
pub struct Client {
    endpoint: Endpoint,
    token: Option<String>,
}

impl Client {
    pub fn new(endpoint: Endpoint, token: Option<String>) -> Client {
        Client { endpoint, token }
    }

    /// How errors name the server: the URL, or `unix:PATH`.
    pub fn server_name(&self) -> String {
        match &self.endpoint {
            Endpoint::Tcp(u) => format!("http://{}{}", u.authority, u.prefix),
            Endpoint::Unix(p) => format!("unix:{}", p.display()),
        }
    }

    pub fn get(&self, path: &str) -> Result<Value, ClientError> {
        self.call("GET", path, None, READ_TIMEOUT)
    }

    /// Sends a request and returns the JSON body of a 2xx answer. A non-2xx
    /// answer becomes `ClientError::Api` with the body's `error` field. Blocks
    /// up to CONNECT_TIMEOUT plus `read_timeout` per read.
    pub fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
        read_timeout: Duration,
    ) -> Result<Value, ClientError> {
        let body =
            body.map(|b| serde_json::to_vec(b).expect("a serde_json::Value always serializes"));
        let resp = self.send(method, path, body.as_deref(), read_timeout)?;
        decode_json(&self.server_name(), resp)
    }

    /// Sends one request and reads the whole response.
    pub fn send(
        &self,
        method: &str,
        path: &str,
        body: Option<&[u8]>,
        read_timeout: Duration,
    ) -> Result<Response, ClientError> {
        let server = self.server_name();
        let (mut conn, target, host, token) = self.connect(path)?;
        conn.set_timeouts(read_timeout, READ_TIMEOUT)
            .map_err(|e| io_error(&server, &e, read_timeout))?;
        let request = request_bytes(method, &target, host, token, body);
        conn.write_all(&request)
            .map_err(|e| io_error(&server, &e, read_timeout))?;
        read_response(&mut conn, method == "HEAD").map_err(|e| match e {
            ReadError::Io(e) => io_error(&server, &e, read_timeout),
            ReadError::Bad(reason) => ClientError::BadResponse {
                server: server.clone(),
                reason,
            },
        })
    }
}

impl Client {
    /// Opens a Server-Sent Events stream with GET `path` and calls `on` for
    /// every comment and message until the server closes the stream (Ok) or
    /// `on` fails. Blocks; a read that waits longer than `idle` is an error
    /// (the server sends a heartbeat comment every 15 s). A non-2xx answer
    /// is `ClientError::Api` with the body's `error` field.
    pub fn stream<E: From<ClientError>>(
        &self,
        path: &str,
        idle: Duration,
        mut on: impl FnMut(Sse) -> Result<(), E>,
    ) -> Result<(), E> {
        let server = self.server_name();
        let (mut conn, target, host, token) = self.connect(path)?;
        conn.set_timeouts(idle, READ_TIMEOUT)
            .map_err(|e| io_error(&server, &e, idle))?;
        let request = request_bytes("GET", &target, host, token, None);
        conn.write_all(&request)
            .map_err(|e| io_error(&server, &e, idle))?;
        let read_error = |e: ReadError| match e {
            ReadError::Io(e) => io_error(&server, &e, idle),
            ReadError::Bad(reason) => ClientError::BadResponse {
                server: server.clone(),
                reason,
            },
        };
        let (head, mut rest) = read_head(&mut conn, false).map_err(read_error)?;
        if !(200..300).contains(&head.status) {
            let body = read_body(&mut conn, head.body, rest).map_err(read_error)?;
            decode_json(
                &server,
                Response {
                    status: head.status,
                    body,
                },
            )?;
            return Err(ClientError::BadResponse {
                server: server.clone(),
                reason: format!("HTTP {} without an event stream", head.status),
            }
            .into());
        }
        let mut parser = SseParser::default();
        let mut items = Vec::new();
        let mut framer = Framer::new(head.body);
        let chunked = head.body == BodyKind::Chunked;
        loop {
            let mut data = Vec::new();
            let done = if chunked {
                let scan = framer
                    .decode(&rest, &mut data)
                    .map_err(|e| read_error(ReadError::Bad(e.to_string())))?;
                rest.drain(..scan.used);
                scan.done
            } else {
                data = std::mem::take(&mut rest);
                false
            };
            parser.feed(&data, &mut items);
            for item in items.drain(..) {
                on(item)?;
            }
            if done {
                return Ok(());
            }
            if fill(&mut conn, &mut rest).map_err(read_error)? == 0 {
                return Ok(());
            }
        }
    }

    /// Connects; returns the stream, the request target, the Host value and
    /// the token to send.
    fn connect(&self, path: &str) -> Result<(StdStream, String, &str, Option<&str>), ClientError> {
        let server = self.server_name();
        Ok(match &self.endpoint {
            Endpoint::Tcp(url) => (
                Stream::Tcp(connect_tcp(url, &server)?),
                format!("{}{path}", url.prefix),
                url.authority.as_str(),
                self.token.as_deref(),
            ),
            Endpoint::Unix(sock) => {
                let stream =
                    UnixStream::connect(sock).map_err(|e| unreachable_error(&server, &e))?;
                // The API is served on the socket whatever the Host; localhost
                // is what the front accepts on TCP too.
                (Stream::Unix(stream), path.to_string(), "localhost", None)
            }
        })
    }
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

fn connect_tcp(url: &HttpUrl, server: &str) -> Result<TcpStream, ClientError> {
    let addrs = (url.host.as_str(), url.port)
        .to_socket_addrs()
        .map_err(|e| ClientError::Unreachable {
            server: server.to_string(),
            reason: format!("cannot resolve {}: {}", url.host, io_reason(&e)),
        })?;
    let mut last = None;
    for addr in addrs {
        match TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT) {
            Ok(s) => {
                // Requests are written in one go; no need to wait for more.
                let _ = s.set_nodelay(true);
                return Ok(s);
            }
            Err(e) => last = Some(e),
        }
    }
    Err(match last {
        Some(e) => unreachable_error(server, &e),
        None => ClientError::Unreachable {
            server: server.to_string(),
            reason: format!("{} resolves to no address", url.host),
        },
    })
}

fn unreachable_error(server: &str, e: &io::Error) -> ClientError {
    let reason = match e.kind() {
        io::ErrorKind::ConnectionRefused => {
            "connection refused (is `ten serve` running?)".to_string()
        }
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => {
            format!("no answer within {}s", CONNECT_TIMEOUT.as_secs())
        }
        _ => io_reason(e),
    };
    ClientError::Unreachable {
        server: server.to_string(),
        reason,
    }
}

fn io_error(server: &str, e: &io::Error, after: Duration) -> ClientError {
    match e.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => ClientError::Timeout {
            server: server.to_string(),
            after,
        },
        _ => ClientError::Io {
            server: server.to_string(),
            reason: io_reason(e),
        },
    }
}

/// An io::Error in our wording: lowercase, without "(os error N)".
pub fn io_reason(e: &io::Error) -> String {
    let text = e.to_string();
    let text = match text.find(" (os error") {
        Some(i) => &text[..i],
        None => &text,
    };
    let mut chars = text.chars();
    match chars.next() {
        Some(c) => c.to_lowercase().chain(chars).collect(),
        None => text.to_string(),
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
enum ReadError {
    Io(io::Error),
    Bad(String),
}

/// Reads one response: head via `http::parse_response`, then the body as the
/// head frames it (RFC 9112 section 6.3). Interim 1xx heads are skipped.
fn read_response<R: Read>(r: &mut R, head_request: bool) -> Result<Response, ReadError> {
    let (head, rest) = read_head(r, head_request)?;
    let body = read_body(r, head.body, rest)?;
    Ok(Response {
        status: head.status,
        body,
    })
}

/// Reads up to the end of the final (non-1xx) response head. Returns the
/// head and the bytes read past it.
fn read_head<R: Read>(
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
fn read_body<R: Read>(r: &mut R, kind: BodyKind, mut rest: Vec<u8>) -> Result<Vec<u8>, ReadError> {
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
fn fill<R: Read>(r: &mut R, buf: &mut Vec<u8>) -> Result<usize, ReadError> {
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
fn decode_json(server: &str, resp: Response) -> Result<Value, ClientError> {
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

    fn url(s: &str) -> HttpUrl {
        parse_url(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn urls_parse_host_port_and_prefix() {
        let u = url("http://localhost:8080");
        assert_eq!(
            (
                u.host.as_str(),
                u.port,
                u.authority.as_str(),
                u.prefix.as_str()
            ),
            ("localhost", 8080, "localhost:8080", "")
        );
        let u = url("http://example.com/");
        assert_eq!(
            (u.host.as_str(), u.port, u.prefix.as_str()),
            ("example.com", 80, "")
        );
        let u = url("HTTP://10.0.0.1:9000/ten/");
        assert_eq!(
            (u.host.as_str(), u.port, u.prefix.as_str()),
            ("10.0.0.1", 9000, "/ten")
        );
        let u = url("http://[::1]:8080");
        assert_eq!(
            (u.host.as_str(), u.port, u.authority.as_str()),
            ("::1", 8080, "[::1]:8080")
        );
        let u = url("[::1]");
        assert_eq!((u.host.as_str(), u.port), ("::1", 80));
        let u = url("127.0.0.1:1234");
        assert_eq!((u.host.as_str(), u.port), ("127.0.0.1", 1234));
    }

    #[test]
    fn bad_urls_are_refused_with_a_reason() {
        let e = parse_url("https://example.com").unwrap_err().to_string();
        assert!(e.contains("https servers are not supported yet"), "{e}");
        for bad in [
            "ftp://x",
            "http://",
            "http://host:0",
            "http://host:99999",
            "http://[::1",
            "http://u:p@h",
            "http://h/?q",
        ] {
            assert!(parse_url(bad).is_err(), "{bad} should be refused");
        }
    }

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
    fn refused_connection_says_how_to_fix_it() {
        let e = io::Error::from(io::ErrorKind::ConnectionRefused);
        let msg = unreachable_error("http://localhost:8080", &e).to_string();
        assert_eq!(
            msg,
            "cannot reach the server at http://localhost:8080: connection refused (is `ten serve` running?)"
        );
        // A real refused connect: bind a port, drop the listener, connect to it.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let client = Client::new(
            Endpoint::Tcp(url(&format!("http://127.0.0.1:{port}"))),
            None,
        );
        let e = client.get("/api/instances").unwrap_err();
        assert!(e.to_string().contains("connection refused"), "{e}");
    }

    #[test]
    fn io_reasons_drop_the_os_error_suffix() {
        let e = io::Error::from_raw_os_error(libc::EACCES);
        assert_eq!(io_reason(&e), "permission denied");
    }

    #[test]
    fn query_values_are_escaped() {
        assert_eq!(query_escape("a b&c=d/é"), "a%20b%26c%3Dd%2F%C3%A9");
        assert_eq!(query_escape("ok-1_2.3~"), "ok-1_2.3~");
    }

    /// Needs `http::parse_response` and `Framer` (stubs until the http module lands).
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
