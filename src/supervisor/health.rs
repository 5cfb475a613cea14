//! Readiness and health probes: a non-blocking connect and, when the
//! service has a `health` path, one `GET {path}` whose status line decides
//! (2xx passes). The connect goes to the instance's Unix socket
//! (`SOCKET_PATH`) when the app made one there, else to 127.0.0.1:port.
//!
//! A health check asks for keep-alive: when the answer came whole in what
//! was read (HTTP/1.1, `Content-Length`, no `Connection: close`), the
//! connection can carry the next check (`Probe::reuse`), so a check of an
//! app that keeps connections costs a send and a receive, not a connect,
//! a handshake and a close. A kept connection the app closed meanwhile
//! ends its check as `Outcome::Stale`, and the caller checks again on a new
//! one.
//!
//! A `Probe` is driven by the supervisor's poll: `step` is called on every
//! event of its socket and never blocks; once the request is sent it waits
//! for the next event rather than reading at once. It reads into the caller's
//! buffer, and copies only a response split over several reads. Status-line
//! parsing is pure.

use std::borrow::Cow;
use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr};
use std::os::unix::fs::FileTypeExt;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use mio::net::{TcpStream, UnixStream};

use crate::http::BodyKind;
use crate::net::{MioStream, Stream};

/// Longest response head prefix we read while looking for the status line.
const MAX_STATUS_LINE: usize = 1024;
/// The read buffer `step` wants: a health answer that fits in it whole can
/// leave its connection open for the next check.
pub const READ_BUF: usize = 2048;

/// How a probe ended, or that it needs more events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Pending,
    /// Connected and held there (`hold`): nothing sent yet.
    Connected,
    Pass(Cow<'static, str>),
    Fail(Cow<'static, str>),
    /// A kept connection was closed by the app before it answered: not a
    /// verdict on the app; check again on a new connection.
    Stale,
}

#[derive(Debug)]
enum Phase {
    Connecting,
    /// The rest of the last answer on a kept connection, to drop.
    Skipping {
        left: usize,
    },
    Sending {
        written: usize,
    },
    Reading {
        partial: Vec<u8>,
    },
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
    request: Option<Arc<[u8]>>,
    phase: Phase,
    /// When it counts as failed ("timeout").
    pub deadline: Instant,
    /// Stop once connected, before sending anything, until `release`: the
    /// supervisor checks whose listener it reached first.
    hold: bool,
    /// Sent over a connection kept from an earlier check.
    reused: bool,
    /// The app keeps the connection open after an answer whose length is
    /// known: it can carry the next check, once this many bytes of the
    /// answer not read yet are read and dropped.
    reusable: Option<usize>,
}

/// The request a health check sends (keep-alive: HTTP/1.1's default).
pub fn request(path: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nUser-Agent: tenement\r\n\r\n").into_bytes()
}

/// Each service's health request, made once and shared by its checks.
#[derive(Debug, Default)]
pub struct Requests(HashMap<String, (String, Arc<[u8]>)>);

impl Requests {
    /// The request for `path` of `service`; made again only when the path
    /// changed (a reload).
    pub fn get(&mut self, service: &str, path: &str) -> Arc<[u8]> {
        match self.0.get(service) {
            Some((p, bytes)) if p == path => bytes.clone(),
            _ => {
                let bytes: Arc<[u8]> = request(path).into();
                self.0
                    .insert(service.to_string(), (path.to_string(), bytes.clone()));
                bytes
            }
        }
    }
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
    let line = &buf[..end];
    let bad = || {
        format!(
            "bad status line {:?}",
            String::from_utf8_lossy(line).trim_end()
        )
    };
    let mut parts = line.split(|&b| b == b' ');
    let version = parts.next().unwrap_or_default();
    let code = parts.next().unwrap_or_default();
    if !version.starts_with(b"HTTP/1.") || code.len() != 3 {
        return Some(Err(bad()));
    }
    match std::str::from_utf8(code)
        .ok()
        .and_then(|c| c.parse::<u16>().ok())
    {
        Some(code) => Some(Ok(code)),
        None => Some(Err(bad())),
    }
}

/// What becomes of a check's connection after the answer `buf` starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum After {
    /// It stays open and can carry the next check: HTTP/1.1, not 1xx,
    /// no `Connection: close`, the whole head here and a body framed by
    /// `Content-Length` (or none) that fits a read, nothing after it. The
    /// bytes of its body still to come (0: all here).
    Open(usize),
    /// The app closes it: `Connection: close`, HTTP/1.0 without
    /// keep-alive, or a body that runs until the close.
    Closes,
    /// Neither can be told, or it is not worth keeping (a head not all
    /// here, a chunked or long body, bytes after it).
    Unknown,
}

pub fn after_answer(buf: &[u8]) -> After {
    let Ok(Some((head, len))) = crate::http::parse_response(buf, false) else {
        return After::Unknown;
    };
    if head.status < 200 {
        return After::Unknown;
    }
    if !head.keep_alive {
        return After::Closes;
    }
    let body = match head.body {
        BodyKind::None => 0,
        BodyKind::Length(n) => usize::try_from(n).unwrap_or(usize::MAX),
        // Chunked (running until the app closes is not kept alive).
        BodyKind::Chunked | BodyKind::Close => return After::Unknown,
    };
    // A body longer than a check's read buffer is not worth keeping for.
    match len.checked_add(body).filter(|&e| e <= READ_BUF) {
        Some(end) if head.minor == 1 => end
            .checked_sub(buf.len())
            .map_or(After::Unknown, After::Open),
        _ => After::Unknown,
    }
}

/// Whether a kept connection can carry the next check: nothing to read
/// on it (the app neither closed it nor sent anything unasked).
pub fn still_open(stream: &MioStream) -> bool {
    let mut byte = [0u8; 1];
    // Only TCP connections are kept.
    let Stream::Tcp(s) = stream else {
        return false;
    };
    let peeked = s.peek(&mut byte);
    matches!(peeked, Err(e) if e.kind() == io::ErrorKind::WouldBlock)
}

/// Words for a connect or I/O error: "connection refused", not the OS text
/// with its errno.
pub fn describe(e: &io::Error) -> Cow<'static, str> {
    match e.kind() {
        io::ErrorKind::ConnectionRefused => "connection refused".into(),
        io::ErrorKind::ConnectionReset => "connection reset".into(),
        io::ErrorKind::TimedOut => "timeout".into(),
        io::ErrorKind::WouldBlock => "accept queue full".into(),
        _ => e.to_string().into(),
    }
}

impl Probe {
    /// Starts connecting to the Unix socket `socket` when given (the
    /// caller found one there with `socket_exists`), else to
    /// 127.0.0.1:port. Err: the connect failed at once (on loopback a
    /// refusal often does).
    pub fn start(
        port: u16,
        socket: Option<&Path>,
        request: Option<Arc<[u8]>>,
        deadline: Instant,
    ) -> io::Result<Probe> {
        match socket {
            Some(path) => Probe::unix(path, request, deadline),
            None => Probe::tcp(port, request, deadline),
        }
    }

    /// Starts connecting to 127.0.0.1:port.
    pub fn tcp(port: u16, request: Option<Arc<[u8]>>, deadline: Instant) -> io::Result<Probe> {
        let stream = TcpStream::connect(SocketAddr::from((Ipv4Addr::LOCALHOST, port)))?;
        Ok(Probe::new(Stream::Tcp(stream), request, deadline))
    }

    /// Starts connecting to the Unix socket at `path`.
    pub fn unix(path: &Path, request: Option<Arc<[u8]>>, deadline: Instant) -> io::Result<Probe> {
        // WouldBlock: the listener's accept queue is full (a Unix connect
        // completes at once or not at all); the caller tries again shortly.
        // Never through a link the instance planted (see socket_path).
        let socket = crate::isolate::socket_path::resolve(path)?;
        let stream = UnixStream::connect(socket.path())?;
        Ok(Probe::new(Stream::Unix(stream), request, deadline))
    }

    /// A health check over `stream`, which an earlier check left open
    /// (`reusable`) with `skip` bytes of its answer unread: it drops those
    /// and sends.
    pub fn reuse(stream: MioStream, request: Arc<[u8]>, deadline: Instant, skip: usize) -> Probe {
        Probe {
            stream,
            request: Some(request),
            phase: match skip {
                0 => Phase::Sending { written: 0 },
                left => Phase::Skipping { left },
            },
            deadline,
            hold: false,
            reused: true,
            reusable: None,
        }
    }

    fn new(stream: MioStream, request: Option<Arc<[u8]>>, deadline: Instant) -> Probe {
        Probe {
            stream,
            request,
            phase: Phase::Connecting,
            deadline,
            hold: false,
            reused: false,
            reusable: None,
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

    /// Once it ended: whether its connection can carry the next check,
    /// and how many bytes of this answer that one must drop first.
    pub fn reusable(&self) -> Option<usize> {
        self.reusable
    }

    /// Advances as far as the socket allows, reading into `buf` (at least
    /// `READ_BUF` bytes, shared by every probe: nothing it holds outlives
    /// the call).
    pub fn step(&mut self, buf: &mut [u8]) -> Outcome {
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
                Phase::Skipping { left } => {
                    let room = buf.len().min(*left);
                    match self.stream.read(&mut buf[..room]) {
                        Ok(0) => return Outcome::Stale,
                        Ok(n) if n == *left => self.phase = Phase::Sending { written: 0 },
                        Ok(n) => *left -= n,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        // Not here yet (it had a whole interval): it counts
                        // against the check's own deadline.
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Outcome::Pending,
                        Err(_) => return Outcome::Stale,
                    }
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
                                self.phase = Phase::Reading {
                                    partial: Vec::new(),
                                };
                                // The app has yet to read it: its answer
                                // comes with an event of the socket (which
                                // is registered before the first step), so
                                // a read now would only find nothing.
                                return Outcome::Pending;
                            }
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Outcome::Pending,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(_) if self.reused && *written == 0 => return Outcome::Stale,
                        Err(e) => return Outcome::Fail(describe(&e)),
                    }
                }
                Phase::Reading { partial } => {
                    let room = buf.len().min(READ_BUF);
                    match self.stream.read(&mut buf[..room]) {
                        Ok(0) if self.reused && partial.is_empty() => return Outcome::Stale,
                        Ok(0) => {
                            return match parse_status(partial) {
                                Some(r) => judge(r),
                                None => Outcome::Fail("closed before the status line".into()),
                            }
                        }
                        Ok(n) if partial.is_empty() => {
                            // The usual answer comes in one read and is
                            // judged where it was read.
                            let got = &buf[..n];
                            match parse_status(got) {
                                Some(r) => return self.judged(r, got),
                                None => partial.extend_from_slice(got),
                            }
                        }
                        Ok(n) => {
                            // A split one is gathered first.
                            partial.extend_from_slice(&buf[..n]);
                            if let Some(r) = parse_status(partial) {
                                let all = std::mem::take(partial);
                                return self.judged(r, &all);
                            }
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Outcome::Pending,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(_) if self.reused && partial.is_empty() => return Outcome::Stale,
                        Err(e) => return Outcome::Fail(describe(&e)),
                    }
                }
            }
        }
    }
}

impl Probe {
    /// The verdict on an answer whose status line is `status` and which
    /// starts `text`; notes whether the connection can carry the next
    /// check. When the app closes it, the close resets it rather than end
    /// it with a FIN the app's socket must answer and then wait out in
    /// TIME_WAIT: kernel work the server would pay for at every check of
    /// an app that closes each connection, and a socket held a minute.
    fn judged(&mut self, status: Result<u16, String>, text: &[u8]) -> Outcome {
        let after = match status {
            Ok(_) => after_answer(text),
            Err(_) => After::Unknown,
        };
        self.reusable = match after {
            After::Open(left) => Some(left),
            _ => None,
        };
        if let (After::Closes, Stream::Tcp(s)) = (after, &self.stream) {
            let _ = rustix::net::sockopt::set_socket_linger(s, Some(std::time::Duration::ZERO));
        }
        judge(status)
    }
}

fn judge(status: Result<u16, String>) -> Outcome {
    match status {
        Ok(200) => Outcome::Pass("200".into()),
        Ok(204) => Outcome::Pass("204".into()),
        Ok(code) if (200..300).contains(&code) => Outcome::Pass(code.to_string().into()),
        Ok(code) => Outcome::Fail(format!("HTTP {code}").into()),
        Err(e) => Outcome::Fail(e.into()),
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
    fn request_keeps_the_connection() {
        let r = String::from_utf8(request("/health")).unwrap();
        assert_eq!(
            r,
            "GET /health HTTP/1.1\r\nHost: localhost\r\nUser-Agent: tenement\r\n\r\n"
        );
        let mut cache = Requests::default();
        let a = cache.get("api", "/health");
        assert!(Arc::ptr_eq(&a, &cache.get("api", "/health")), "made once");
        let b = cache.get("api", "/ready");
        assert!(b.starts_with(b"GET /ready "), "made again for a new path");
    }

    #[test]
    fn only_a_framed_keep_alive_answer_keeps_its_connection_and_a_close_is_seen() {
        let ok = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok\n";
        assert_eq!(after_answer(ok), After::Open(0));
        assert_eq!(
            after_answer(b"HTTP/1.1 204 No Content\r\n\r\n"),
            After::Open(0)
        );
        let busy = b"HTTP/1.1 503 Busy\r\nConnection: keep-alive\r\ncontent-length: 0\r\n\r\n";
        assert_eq!(after_answer(busy), After::Open(0));
        // The body after the head, in a write of its own: still to come.
        assert_eq!(after_answer(&ok[..ok.len() - 3]), After::Open(3));
        assert_eq!(after_answer(&ok[..ok.len() - 1]), After::Open(1));
        let unknown: [(&str, &[u8]); 7] = [
            ("head not all read", b"HTTP/1.1 200 OK\r\nContent-Len"),
            (
                "a body longer than a read",
                b"HTTP/1.1 200 OK\r\nContent-Length: 9999\r\n\r\n",
            ),
            (
                "bytes after it",
                b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP",
            ),
            (
                "chunked",
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            ),
            (
                "two lengths",
                b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nContent-Length: 1\r\n\r\nx",
            ),
            (
                "bad length",
                b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
            ),
            ("interim", b"HTTP/1.1 100 Continue\r\n\r\n"),
        ];
        for (why, resp) in unknown {
            assert_eq!(after_answer(resp), After::Unknown, "{why}");
        }
        let closes: [(&str, &[u8]); 3] = [
            (
                "asks to close",
                b"HTTP/1.1 200 OK\r\nConnection: Keep-Alive, close\r\nContent-Length: 0\r\n\r\n",
            ),
            ("HTTP/1.0", b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n"),
            ("no length", b"HTTP/1.1 200 OK\r\n\r\nok"),
        ];
        for (why, resp) in closes {
            assert_eq!(after_answer(resp), After::Closes, "{why}");
        }
    }

    #[test]
    fn transport_is_the_socket_only_when_one_exists() {
        let dir = TempDir::new("health-choice");
        let path = dir.join("svc.a.sock");
        let deadline = Instant::now() + std::time::Duration::from_secs(5);
        // Nothing there: TCP (to a port nobody should hold; only the kind
        // matters here, not whether the connect succeeds).
        assert!(!socket_exists(&path));
        if let Ok(p) = Probe::start(1, socket_exists(&path).then_some(&*path), None, deadline) {
            assert!(!p.via_socket());
        }
        // A regular file is not a socket.
        std::fs::write(&path, b"").unwrap();
        assert!(!socket_exists(&path));
        std::fs::remove_file(&path).unwrap();
        // A listening socket: the probe goes there.
        let _listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
        assert!(socket_exists(&path));
        let p = Probe::start(1, socket_exists(&path).then_some(&*path), None, deadline).unwrap();
        assert!(p.via_socket());
    }

    /// Steps `probe` on its own poll until it ends.
    fn drive(probe: &mut Probe, poll: &mut mio::Poll) -> Outcome {
        let mut events = mio::Events::with_capacity(8);
        let mut buf = [0u8; READ_BUF];
        loop {
            match probe.step(&mut buf) {
                Outcome::Pending => {}
                done => return done,
            }
            assert!(Instant::now() < probe.deadline, "probe did not finish");
            poll.poll(&mut events, Some(std::time::Duration::from_millis(100)))
                .unwrap();
        }
    }

    /// Reads one request head from `conn`; None when it closed first.
    fn read_head(conn: &mut impl Read) -> Option<String> {
        let mut got = Vec::new();
        let mut buf = [0u8; 256];
        while !got.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = conn.read(&mut buf).unwrap();
            if n == 0 {
                return None;
            }
            got.extend_from_slice(&buf[..n]);
        }
        Some(String::from_utf8(got).unwrap())
    }

    /// Accepts a connection on `listener`, reads a request and writes
    /// `answer`; the connection stays open.
    fn answer_one(listener: &std::net::TcpListener, answer: &[u8]) -> std::net::TcpStream {
        let (mut conn, _) = listener.accept().unwrap();
        read_head(&mut conn).expect("a request");
        conn.write_all(answer).unwrap();
        conn
    }

    fn register(poll: &mio::Poll, probe: &mut Probe) {
        poll.registry()
            .register(
                &mut probe.stream,
                mio::Token(0),
                mio::Interest::READABLE | mio::Interest::WRITABLE,
            )
            .unwrap();
    }

    #[test]
    fn health_check_over_unix_socket() {
        let dir = TempDir::new("health-unix");
        let path = dir.join("svc.a.sock");
        let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
        let server = std::thread::spawn(move || {
            let (mut conn, _) = listener.accept().unwrap();
            let got = read_head(&mut conn).expect("closed before the request head");
            conn.write_all(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n")
                .unwrap();
            got
        });
        let deadline = Instant::now() + std::time::Duration::from_secs(10);
        let request = Some(Arc::from(request("/health")));
        let mut probe =
            Probe::start(1, socket_exists(&path).then_some(&*path), request, deadline).unwrap();
        assert!(probe.via_socket());
        let mut poll = mio::Poll::new().unwrap();
        register(&poll, &mut probe);
        assert_eq!(drive(&mut probe, &mut poll), Outcome::Pass("200".into()));
        assert_eq!(probe.reusable(), None, "the app asked to close");
        assert!(server
            .join()
            .unwrap()
            .starts_with("GET /health HTTP/1.1\r\n"));
    }

    /// Whether the connection from local port `from` to `port` waits out
    /// TIME_WAIT at `port`'s end (/proc/net/tcp).
    fn in_time_wait(port: u16, from: u16) -> bool {
        let table = std::fs::read_to_string("/proc/net/tcp").unwrap();
        let (local, remote) = (format!(":{port:04X}"), format!(":{from:04X}"));
        table.lines().skip(1).any(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            f.len() > 3 && f[1].ends_with(&local) && f[2].ends_with(&remote) && f[3] == "06"
        })
    }

    /// An app that said it closes the connection gets a reset when the
    /// check ends, so its socket is gone at once, not kept in TIME_WAIT;
    /// one that keeps it (a chunked answer is not worth keeping for the
    /// next check) gets an ordinary end of stream.
    #[test]
    fn a_check_ends_a_connection_the_app_closed_with_a_reset() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let (answered, told) = std::sync::mpsc::channel::<()>();
        let (checked, wait) = std::sync::mpsc::channel::<()>();
        let server = std::thread::spawn(move || {
            // The first says it closes, and does, right after its answer.
            let closes = b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n";
            drop(answer_one(&listener, closes));
            answered.send(()).unwrap();
            // The second keeps the connection, and waits for the check to
            // end.
            let chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n";
            let mut conn = answer_one(&listener, chunked);
            answered.send(()).unwrap();
            wait.recv().unwrap();
            let mut rest = [0u8; 16];
            conn.read(&mut rest)
        });
        let request: Arc<[u8]> = Arc::from(request("/health"));
        let mut poll = mio::Poll::new().unwrap();
        let deadline = Instant::now() + std::time::Duration::from_secs(10);
        for round in 0..2 {
            let mut probe = Probe::start(port, None, Some(request.clone()), deadline).unwrap();
            register(&poll, &mut probe);
            // Sent, not answered yet: the answer (and, the first time, the
            // app's close) is there before the check reads it.
            let mut buf = [0u8; READ_BUF];
            while !matches!(probe.phase, Phase::Reading { .. }) {
                assert_eq!(probe.step(&mut buf), Outcome::Pending);
                poll.poll(
                    &mut mio::Events::with_capacity(8),
                    Some(std::time::Duration::from_millis(10)),
                )
                .unwrap();
            }
            told.recv().unwrap();
            assert_eq!(drive(&mut probe, &mut poll), Outcome::Pass("200".into()));
            assert_eq!(probe.reusable(), None);
            let Stream::Tcp(s) = &probe.stream else {
                unreachable!("a probe to a port")
            };
            let from = s.local_addr().unwrap().port();
            drop(probe);
            if round == 0 {
                assert!(
                    !in_time_wait(port, from),
                    "the app's socket waits out TIME_WAIT"
                );
            }
        }
        checked.send(()).unwrap();
        let got = server.join().unwrap();
        assert!(
            matches!(got, Ok(0)),
            "the app saw {got:?}, not the end of the stream"
        );
    }

    #[test]
    fn a_kept_connection_carries_the_next_check_until_the_app_closes_it() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        // Answers three checks on one connection (the second one's body in
        // a write of its own, once the check has judged its head), then
        // closes it; the check after that comes on a new connection.
        let (go, wait) = std::sync::mpsc::channel::<()>();
        let (closed, told) = std::sync::mpsc::channel::<()>();
        let server = std::thread::spawn(move || {
            let mut conn = answer_one(&listener, b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
            read_head(&mut conn).expect("a request on the kept connection");
            conn.write_all(b"HTTP/1.1 503 Busy\r\nContent-Length: 2\r\n\r\n")
                .unwrap();
            wait.recv().unwrap();
            conn.write_all(b"no").unwrap();
            read_head(&mut conn).expect("a request after the split answer");
            conn.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
                .unwrap();
            drop(conn);
            closed.send(()).unwrap();
            let (mut conn, _) = listener.accept().unwrap();
            read_head(&mut conn).expect("a request on the new connection");
            conn.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
                .unwrap();
        });
        let deadline = || Instant::now() + std::time::Duration::from_secs(10);
        let request: Arc<[u8]> = Arc::from(request("/health"));
        let mut poll = mio::Poll::new().unwrap();
        let mut probe = Probe::start(port, None, Some(request.clone()), deadline()).unwrap();
        register(&poll, &mut probe);
        assert_eq!(drive(&mut probe, &mut poll), Outcome::Pass("200".into()));
        assert!(probe.reusable() == Some(0) && still_open(&probe.stream));
        // The next check goes over the same connection, still registered;
        // its verdict comes with the head, the body later.
        let mut probe = Probe::reuse(probe.stream, request.clone(), deadline(), 0);
        assert_eq!(
            drive(&mut probe, &mut poll),
            Outcome::Fail("HTTP 503".into())
        );
        assert_eq!(probe.reusable(), Some(2), "two bytes of body to come");
        go.send(()).unwrap();
        // The one after drops those two bytes first.
        let mut probe = Probe::reuse(probe.stream, request.clone(), deadline(), 2);
        assert_eq!(drive(&mut probe, &mut poll), Outcome::Pass("200".into()));
        // The app closed it: seen between checks, and a check over it is
        // stale, not failed.
        told.recv().unwrap();
        let closed = Instant::now() + std::time::Duration::from_secs(10);
        while still_open(&probe.stream) {
            assert!(Instant::now() < closed, "the close is never seen");
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        let mut probe = Probe::reuse(probe.stream, request.clone(), deadline(), 0);
        assert_eq!(drive(&mut probe, &mut poll), Outcome::Stale);
        drop(probe);
        let mut probe = Probe::start(port, None, Some(request), deadline()).unwrap();
        register(&poll, &mut probe);
        assert_eq!(drive(&mut probe, &mut poll), Outcome::Pass("200".into()));
        server.join().unwrap();
    }
}
