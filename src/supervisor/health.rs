//! Readiness and health probes: a non-blocking connect and, when the
//! service has a `health` path, one `GET {path}` whose status line decides
//! (2xx passes). The connect goes to the instance's Unix socket
//! (`SOCKET_PATH`) when the app made one there, else to 127.0.0.1:port.
//!
//! A `Probe` is driven by the supervisor's poll: `step` is called on every
//! event of its socket and never blocks. Status-line parsing is pure.

use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr};
use std::os::unix::fs::FileTypeExt;
use std::path::Path;
use std::time::Instant;

use mio::net::{TcpStream, UnixStream};

use crate::net::{MioStream, Stream};

/// Longest response head prefix we read while looking for the status line.
const MAX_STATUS_LINE: usize = 1024;

/// How a probe ended, or that it needs more events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Pending,
    /// Connected and held there (`hold`): nothing sent yet.
    Connected,
    Pass(String),
    Fail(String),
}

#[derive(Debug)]
enum Phase {
    Connecting,
    Sending { written: usize },
    Reading { buf: Vec<u8> },
}

/// Whether a socket file exists at `path`: the app listens there (tenement
/// removes a stale one before each spawn). Followed if a symlink: a
/// namespaced instance's socket is reached through the one tenement puts
/// at `SOCKET_PATH` (see `isolate::plan::socket_dirs`).
pub fn socket_exists(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.file_type().is_socket())
}

/// One probe in flight.
#[derive(Debug)]
pub struct Probe {
    pub stream: MioStream,
    request: Option<Vec<u8>>,
    phase: Phase,
    /// When it counts as failed ("timeout").
    pub deadline: Instant,
    /// Stop once connected, before sending anything, until `release`: the
    /// supervisor checks whose listener it reached first.
    hold: bool,
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
        io::ErrorKind::WouldBlock => "accept queue full".into(),
        _ => e.to_string(),
    }
}

impl Probe {
    /// Starts connecting to the Unix socket at `socket` when one exists
    /// there, else to 127.0.0.1:port. Err: the connect failed at once (on
    /// loopback a refusal often does).
    pub fn start(
        port: u16,
        socket: &Path,
        health: Option<&str>,
        deadline: Instant,
    ) -> io::Result<Probe> {
        match socket_exists(socket) {
            true => Probe::unix(socket, health, deadline),
            false => Probe::tcp(port, health, deadline),
        }
    }

    /// Starts connecting to 127.0.0.1:port.
    pub fn tcp(port: u16, health: Option<&str>, deadline: Instant) -> io::Result<Probe> {
        let stream = TcpStream::connect(SocketAddr::from((Ipv4Addr::LOCALHOST, port)))?;
        Ok(Probe::new(Stream::Tcp(stream), health, deadline))
    }

    /// Starts connecting to the Unix socket at `path`.
    pub fn unix(path: &Path, health: Option<&str>, deadline: Instant) -> io::Result<Probe> {
        // WouldBlock: the listener's accept queue is full (a Unix connect
        // completes at once or not at all); the caller tries again shortly.
        let stream = UnixStream::connect(path)?;
        Ok(Probe::new(Stream::Unix(stream), health, deadline))
    }

    fn new(stream: MioStream, health: Option<&str>, deadline: Instant) -> Probe {
        Probe {
            stream,
            request: health.map(request),
            phase: Phase::Connecting,
            deadline,
            hold: false,
        }
    }

    /// Makes `step` answer `Outcome::Connected` once connected, and send
    /// nothing until `release`.
    pub fn hold(&mut self) {
        self.hold = true;
    }

    /// Lets a held probe go on; the caller steps it again.
    pub fn release(&mut self) {
        self.hold = false;
    }

    /// (pid, uid) of whoever listens at the other end of a Unix probe
    /// (SO_PEERCRED: the process that called listen(2)). None over TCP.
    pub fn peer(&self) -> Option<(u32, u32)> {
        let Stream::Unix(s) = &self.stream else {
            return None;
        };
        let cred = rustix::net::sockopt::socket_peercred(s).ok()?;
        Some((cred.pid.as_raw_pid() as u32, cred.uid.as_raw()))
    }

    /// Whether it sends a `GET` of the health path (else it only connects).
    pub fn checks_health(&self) -> bool {
        self.request.is_some()
    }

    /// Whether it goes over the instance's Unix socket.
    pub fn via_socket(&self) -> bool {
        matches!(self.stream, Stream::Unix(_))
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
                    match self.stream.connected() {
                        Ok(()) => {}
                        Err(e) if e.kind() == io::ErrorKind::NotConnected => {
                            return Outcome::Pending
                        }
                        Err(e) => return Outcome::Fail(describe(&e)),
                    }
                    if self.hold {
                        return Outcome::Connected;
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
    use crate::state::testdir::TempDir;

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

    #[test]
    fn transport_is_the_socket_only_when_one_exists() {
        let dir = TempDir::new("health-choice");
        let path = dir.join("svc.a.sock");
        let deadline = Instant::now() + std::time::Duration::from_secs(5);
        // Nothing there: TCP (to a port nobody should hold; only the kind
        // matters here, not whether the connect succeeds).
        assert!(!socket_exists(&path));
        if let Ok(p) = Probe::start(1, &path, None, deadline) {
            assert!(!p.via_socket());
        }
        // A regular file is not a socket.
        std::fs::write(&path, b"").unwrap();
        assert!(!socket_exists(&path));
        std::fs::remove_file(&path).unwrap();
        // A listening socket: the probe goes there.
        let _listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
        assert!(socket_exists(&path));
        let p = Probe::start(1, &path, None, deadline).unwrap();
        assert!(p.via_socket());
    }

    #[test]
    fn health_check_over_unix_socket() {
        let dir = TempDir::new("health-unix");
        let path = dir.join("svc.a.sock");
        let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
        let server = std::thread::spawn(move || {
            let (mut conn, _) = listener.accept().unwrap();
            let mut got = Vec::new();
            let mut buf = [0u8; 256];
            while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                let n = conn.read(&mut buf).unwrap();
                assert!(n > 0, "closed before the request head");
                got.extend_from_slice(&buf[..n]);
            }
            conn.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
                .unwrap();
            String::from_utf8(got).unwrap()
        });
        let deadline = Instant::now() + std::time::Duration::from_secs(10);
        let mut probe = Probe::start(1, &path, Some("/health"), deadline).unwrap();
        assert!(probe.via_socket());
        let mut poll = mio::Poll::new().unwrap();
        let mut events = mio::Events::with_capacity(8);
        poll.registry()
            .register(
                &mut probe.stream,
                mio::Token(0),
                mio::Interest::READABLE | mio::Interest::WRITABLE,
            )
            .unwrap();
        let outcome = loop {
            match probe.step() {
                Outcome::Pending => {}
                done => break done,
            }
            assert!(Instant::now() < deadline, "probe did not finish");
            poll.poll(&mut events, Some(std::time::Duration::from_millis(100)))
                .unwrap();
        };
        assert_eq!(outcome, Outcome::Pass("200".into()));
        assert!(server
            .join()
            .unwrap()
            .starts_with("GET /health HTTP/1.1\r\n"));
    }
}
