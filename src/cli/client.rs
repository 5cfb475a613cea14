//! The blocking API client: one HTTP/1.1 request per connection, to
//! `--server http[s]://...` or the local socket `{data_dir}/.tenement/ten.sock`.
//! `Client::stream` reads a Server-Sent Events answer as it arrives.
//!
//! Called from the CLI's main thread (and deploy's request thread). This
//! file owns what is sent where and the error type; the sockets and TLS are
//! `transport.rs`'s, the bytes on the wire `wire.rs`'s. The token is sent
//! over TCP only: the socket needs none, file permissions guard it.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;

use super::transport::{self, io_error, Conn};
use super::wire::{fill, read_body, read_head, read_response, request_bytes, ReadError};
use crate::http::{BodyKind, Framer};

pub use super::transport::{io_reason, loopback, parse_url, Endpoint};
pub use super::wire::{decode_json, query_escape, Response, Sse, SseParser};

/// How long to wait for an ordinary response.
pub const READ_TIMEOUT: Duration = Duration::from_secs(60);

/// A failed API call. Printed after `ten: error: `.
#[derive(Debug)]
pub enum ClientError {
    BadUrl {
        url: String,
        reason: &'static str,
    },
    /// Could not connect (TLS included); `reason` is already worded for the operator.
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

/// An API client. Cheap to clone; every request opens its own connection.
#[derive(Debug, Clone)]
pub struct Client {
    endpoint: Endpoint,
    token: Option<String>,
    /// `--cacert`: the CA(s) an `https://` server is verified against
    /// instead of the system's.
    cacert: Option<PathBuf>,
}

impl Client {
    pub fn new(endpoint: Endpoint, token: Option<String>) -> Client {
        Client {
            endpoint,
            token,
            cacert: None,
        }
    }

    /// Verifies an `https://` server against the CA(s) in `cacert`.
    pub fn with_cacert(mut self, cacert: Option<PathBuf>) -> Client {
        self.cacert = cacert;
        self
    }

    /// How errors name the server: the URL, or `unix:PATH`.
    pub fn server_name(&self) -> String {
        match &self.endpoint {
            Endpoint::Tcp(u) => u.display(),
            Endpoint::Unix(p) => format!("unix:{}", p.display()),
        }
    }

    pub fn get(&self, path: &str) -> Result<Value, ClientError> {
        self.call("GET", path, None, READ_TIMEOUT)
    }

    /// The body of a 2xx answer to GET `path`, as it came (after its
    /// framing); anything else as `call` reports it.
    pub fn get_bytes(&self, path: &str) -> Result<Vec<u8>, ClientError> {
        let resp = self.send("GET", path, None, READ_TIMEOUT)?;
        if (200..300).contains(&resp.status) {
            return Ok(resp.body);
        }
        decode_json(&self.server_name(), resp)?;
        unreachable!("decode_json makes any non-2xx answer an error")
    }

    /// Sends a request and returns the JSON body of a 2xx answer. A non-2xx
    /// answer becomes `ClientError::Api` with the body's `error` field. Blocks
    /// up to CONNECT_TIMEOUT (twice over TLS: connect, handshake) plus
    /// `read_timeout` per read.
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
        let mut conn = self.open(method, path, body, read_timeout)?;
        read_response(&mut conn, method == "HEAD").map_err(|e| read_error(&server, e, read_timeout))
    }

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
        let mut conn = self.open("GET", path, None, idle)?;
        let read_error = |e: ReadError| read_error(&server, e, idle);
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

    /// Connects and writes the request; reads may then wait `read_timeout`.
    fn open(
        &self,
        method: &str,
        path: &str,
        body: Option<&[u8]>,
        read_timeout: Duration,
    ) -> Result<Conn, ClientError> {
        let server = self.server_name();
        let mut conn = transport::connect(&self.endpoint, self.cacert.as_deref())?;
        let (target, host, token) = match &self.endpoint {
            Endpoint::Tcp(url) => (
                format!("{}{path}", url.prefix),
                url.authority.as_str(),
                self.token.as_deref(),
            ),
            // The API is served on the socket whatever the Host; localhost
            // is what the front accepts on TCP too. No token: none is needed.
            Endpoint::Unix(_) => (path.to_string(), "localhost", None),
        };
        conn.set_timeouts(read_timeout, READ_TIMEOUT)
            .map_err(|e| io_error(&server, &e, read_timeout))?;
        conn.write_all(&request_bytes(method, &target, host, token, body))
            .map_err(|e| io_error(&server, &e, read_timeout))?;
        Ok(conn)
    }
}

fn read_error(server: &str, e: ReadError, after: Duration) -> ClientError {
    match e {
        ReadError::Io(e) => io_error(server, &e, after),
        ReadError::Bad(reason) => ClientError::BadResponse {
            server: server.to_string(),
            reason,
        },
    }
}
