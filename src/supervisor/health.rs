//! Readiness and health probes: a non-blocking TCP connect to
//! 127.0.0.1:port and, when the service has a `health` path, one
//! `GET {path}` whose status line decides (2xx passes).
//!
//! A `Probe` is driven by the supervisor's poll: `step` is called on every
//! event of its socket and never blocks. Status-line parsing is pure.

use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Instant;

use mio::net::TcpStream;

/// Longest response head prefix we read while looking for the status line.
const MAX_STATUS_LINE: usize = 1024;

/// How a probe ended, or that it needs more events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Pending,
    Pass(String),
    Fail(String),
}

#[derive(Debug)]
enum Phase {
    Connecting,
    Sending { written: usize },
    Reading { buf: Vec<u8> },
}

/// One probe in flight.
#[derive(Debug)]
pub struct Probe {
    pub stream: TcpStream,
    request: Option<Vec<u8>>,
    phase: Phase,
    /// When it counts as failed ("timeout").
    pub deadline: Instant,
}

/// The request a health check sends.
pub fn request(path: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nUser-Agent: tenement\r\n\r\n").into_bytes()
}

/// Reads the status code from the start of a response. None: no full status
/// line yet. Err: not an HTTP/1.x status line.
pub fn parse_status(buf: &[u8]) -> Option<Result<u16, String>> {
    let end = buf.windows(2).position(|w| w == b"\r\n").or_else(|| {
        // A bare LF ends the line too; a line longer than we read is refused.
        buf.iter().position(|&b| b == b'\n')
    });
    let Some(end) = end else {
        return (buf.len() >= MAX_STATUS_LINE).then(|| Err("status line too long".to_string()));
    };
    let line = String::from_utf8_lossy(&buf[..end]);
    let mut parts = line.split(' ');
    let version = parts.next().unwrap_or("");
    let code = parts.next().unwrap_or("");
    if !version.starts_with("HTTP/1.") || code.len() != 3 {
        return Some(Err(format!("bad status line {:?}", line.trim_end())));
    }
    Some(
        code.parse::<u16>()
            .map_err(|_| format!("bad status line {:?}", line.trim_end())),
    )
}

/// Words for a connect or I/O error: "connection refused", not the OS text
/// with its errno.
pub fn describe(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::ConnectionRefused => "connection refused".into(),
        io::ErrorKind::ConnectionReset => "connection reset".into(),
        io::ErrorKind::TimedOut => "timeout".into(),
        _ => e.to_string(),
    }
}

impl Probe {
    /// Starts connecting. Err: the connect failed at once (on loopback a
    /// refusal often does).
    pub fn start(port: u16, health: Option<&str>, deadline: Instant) -> io::Result<Probe> {
        let stream = TcpStream::connect(SocketAddr::from((Ipv4Addr::LOCALHOST, port)))?;
        Ok(Probe {
            stream,
            request: health.map(request),
            phase: Phase::Connecting,
            deadline,
        })
    }

    /// Advances as far as the socket allows.
    pub fn step(&mut self) -> Outcome {
        loop {
            match &mut self.phase {
                Phase::Connecting => {
                    match self.stream.take_error() {
                        Ok(Some(e)) | Err(e) => return Outcome::Fail(describe(&e)),
                        Ok(None) => {}
                    }
                    match self.stream.peer_addr() {
                        Ok(_) => {}
                        Err(e) if e.kind() == io::ErrorKind::NotConnected => {
                            return Outcome::Pending
                        }
                        Err(e) => return Outcome::Fail(describe(&e)),
                    }
                    if self.request.is_none() {
                        return Outcome::Pass("connected".into());
                    }
                    self.phase = Phase::Sending { written: 0 };
                }
                Phase::Sending { written } => {
                    let req = self
                        .request
                        .as_deref()
                        .expect("Sending only with a request");
                    match self.stream.write(&req[*written..]) {
                        Ok(n) => {
                            *written += n;
                            if *written == req.len() {
                                self.phase = Phase::Reading { buf: Vec::new() };
                            }
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Outcome::Pending,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(e) => return Outcome::Fail(describe(&e)),
                    }
                }
                Phase::Reading { buf } => {
                    let mut chunk = [0u8; 512];
                    match self.stream.read(&mut chunk) {
                        Ok(0) => {
                            return match parse_status(buf) {
                                Some(r) => judge(r),
                                None => Outcome::Fail("closed before the status line".into()),
                            }
                        }
                        Ok(n) => {
                            buf.extend_from_slice(&chunk[..n]);
                            if let Some(r) = parse_status(buf) {
                                return judge(r);
                            }
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Outcome::Pending,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(e) => return Outcome::Fail(describe(&e)),
                    }
                }
            }
        }
    }
}

fn judge(status: Result<u16, String>) -> Outcome {
    match status {
        Ok(code) if (200..300).contains(&code) => Outcome::Pass(code.to_string()),
        Ok(code) => Outcome::Fail(format!("HTTP {code}")),
        Err(e) => Outcome::Fail(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_line_parses_at_every_split() {
        let resp = b"HTTP/1.1 204 No Content\r\nX: y\r\n\r\n";
        for i in 0..resp.len() {
            let got = parse_status(&resp[..i]);
            let line_end = b"HTTP/1.1 204 No Content\r\n".len();
            if i < line_end {
                assert_eq!(got, None, "prefix {i}");
            } else {
                assert_eq!(got, Some(Ok(204)), "prefix {i}");
            }
        }
    }

    #[test]
    fn only_2xx_passes() {
        assert_eq!(judge(Ok(200)), Outcome::Pass("200".into()));
        assert_eq!(judge(Ok(299)), Outcome::Pass("299".into()));
        assert_eq!(judge(Ok(301)), Outcome::Fail("HTTP 301".into()));
        assert_eq!(judge(Ok(503)), Outcome::Fail("HTTP 503".into()));
        assert!(matches!(parse_status(b"SSH-2.0-OpenSSH\r\n"), Some(Err(_))));
        assert!(matches!(parse_status(&[b'x'; 2000]), Some(Err(_))));
    }

    #[test]
    fn request_asks_to_close() {
        let r = String::from_utf8(request("/health")).unwrap();
        assert!(r.starts_with("GET /health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"));
        assert!(r.ends_with("\r\n\r\n"));
    }
}
