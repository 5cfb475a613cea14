//! Shared by the conformance, hardening, streaming, WebSocket and TLS tests:
//! a `ten serve` in front of `fixtures/rawhttp.py` (a backend that records
//! every byte it receives and can answer with scripted bytes), reached over
//! plain TCP or over TLS (`Over`, `both_ways!`), raw exchanges, a strict
//! response parser, and checks on what the backend saw.
#![allow(dead_code)]

pub mod pki;

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::ops::Deref;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::util::*;
use pki::{client_config, tls_connect, Key, Pki};

/// Defines a test twice, as `NAME::plain` and `NAME::tls`: the body runs
/// with `over` = `Over::Plain`, then `Over::Tls` (the same front, reached
/// through its HTTPS listener). One body, two transports.
#[macro_export]
macro_rules! both_ways {
    ($(#[$attr:meta])* fn $name:ident($over:ident) $body:block) => {
        $(#[$attr])*
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            fn run($over: Over) $body

            #[test]
            fn plain() {
                run(Over::Plain)
            }

            #[test]
            fn tls() {
                run(Over::Tls)
            }
        }
    };
}

/// How a test reaches the front.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Over {
    Plain,
    /// The HTTPS listener, SNI `HOST`, the certificate verified.
    Tls,
}

/// A started server and how its tests reach it. Derefs to the `Server`.
/// Fields drop in order: the server stops before its certificates go.
pub struct Front {
    pub server: Server,
    tls: Option<(Arc<rustls::ClientConfig>, Pki)>,
}

impl Deref for Front {
    type Target = Server;
    fn deref(&self) -> &Server {
        &self.server
    }
}

impl Front {
    /// Whether this front is reached over TLS.
    pub fn over(&self) -> Over {
        if self.tls.is_some() {
            Over::Tls
        } else {
            Over::Plain
        }
    }

    /// The address tests connect to: the HTTPS listener over TLS.
    pub fn target(&self) -> SocketAddr {
        match self.over() {
            Over::Plain => self.server.addr,
            Over::Tls => self.server.https.expect("an https listener"),
        }
    }

    /// The CA file a TLS client verifies the front with (None: plain).
    pub fn ca(&self) -> Option<PathBuf> {
        self.tls.as_ref().map(|(_, pki)| pki.path("ca.pem"))
    }

    /// A new connection the way this front is reached, with a read timeout
    /// so a wedged server fails the test.
    pub fn dial(&self) -> Stream {
        match &self.tls {
            None => Stream::Plain(connect(self.server.addr)),
            Some((config, _)) => {
                let https = self.server.https.expect("an https listener");
                let tls = tls_connect(https, HOST, config.clone());
                tls.sock.set_nodelay(true).expect("nodelay");
                Stream::Tls(Box::new(tls))
            }
        }
    }
}

/// A client connection, plain or TLS.
pub enum Stream {
    Plain(TcpStream),
    Tls(Box<pki::Tls>),
}

/// What `read_all` and `read_response` read from: a socket or a TLS stream
/// over one, whose read timeout they set.
pub trait Wire: Read + Write {
    fn set_read_timeout(&self, timeout: Option<Duration>) -> std::io::Result<()>;
}

impl Wire for TcpStream {
    fn set_read_timeout(&self, timeout: Option<Duration>) -> std::io::Result<()> {
        TcpStream::set_read_timeout(self, timeout)
    }
}

impl Wire for Stream {
    fn set_read_timeout(&self, timeout: Option<Duration>) -> std::io::Result<()> {
        match self {
            Stream::Plain(s) => s.set_read_timeout(timeout),
            Stream::Tls(s) => s.sock.set_read_timeout(timeout),
        }
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Stream::Plain(s) => s.read(buf),
            // The end of the TCP stream without close_notify is still the
            // server closing, as a FIN is for plain HTTP.
            Stream::Tls(s) => match s.read(buf) {
                Err(e) if e.kind() == ErrorKind::UnexpectedEof => Ok(0),
                other => other,
            },
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Stream::Plain(s) => s.write(buf),
            Stream::Tls(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Stream::Plain(s) => s.flush(),
            Stream::Tls(s) => s.flush(),
        }
    }
}

/// The Host of the one instance every test routes to.
pub const HOST: &str = "prod.raw.localhost";

/// How long a read waits for the server before the test calls it wedged.
pub const READ_TIMEOUT: Duration = Duration::from_secs(30);

/// A config with service `raw` (rawhttp.py) and its instance `prod`.
pub fn config(settings_extra: &str, service_extra: &str) -> String {
    format!(
        "{}{}[instances]\nraw = [\"prod\"]\n",
        settings(settings_extra),
        py_service("raw", "rawhttp.py", service_extra)
    )
}

/// Starts the server with `raw:prod` and waits until it is running.
pub fn start(name: &str) -> Option<Front> {
    start_with(name, "", "")
}

/// Like `start`, with extra `[settings]` and `[service.raw]` lines.
pub fn start_with(name: &str, settings_extra: &str, service_extra: &str) -> Option<Front> {
    start_over(Over::Plain, name, settings_extra, service_extra)
}

/// Like `start_with`, reached `over` plain TCP or TLS. For TLS the server
/// gets an HTTPS listener with an ECDSA certificate for `*.raw.localhost`
/// and `localhost` from a CA made for the test (`redirect_http = false`, so
/// plain requests from helpers still work).
pub fn start_over(
    over: Over,
    name: &str,
    settings_extra: &str,
    service_extra: &str,
) -> Option<Front> {
    let front = launch_over(over, name, settings_extra, service_extra)?;
    front.wait_running("raw:prod");
    Some(front)
}

/// `start_over` without waiting for `raw:prod` to be running.
pub fn launch_over(
    over: Over,
    name: &str,
    settings_extra: &str,
    service_extra: &str,
) -> Option<Front> {
    if !tools_present(&["python3"]) {
        return None;
    }
    let (tls, settings_extra) = match over {
        Over::Plain => (None, settings_extra.to_string()),
        Over::Tls => {
            let pki = Pki::new(&format!("{name}-pki"))?;
            let ca = pki.ca("ca");
            let (cert, key) = pki.leaf(
                "ca",
                "front",
                &["*.raw.localhost", "localhost"],
                Key::P256Sec1,
            );
            let extra = format!(
                "{settings_extra}\n[settings.tls]\nhttps_listen = \"127.0.0.1:0\"\nredirect_http = false\ncert = {}\nkey = {}\n",
                toml_str(&cert),
                toml_str(&key)
            );
            (Some((client_config(&ca), pki)), extra)
        }
    };
    let server = Server::start(name, &config(&settings_extra, service_extra));
    Some(Front { server, tls })
}

/// The backend's data dir (where it keeps `received.jsonl` and reads scripts).
pub fn backend_dir(server: &Server) -> PathBuf {
    server.instance_dir("raw", "prod")
}

/// Everything the backend recorded so far, in order.
pub fn records(server: &Server) -> Vec<Value> {
    let text =
        std::fs::read_to_string(backend_dir(server).join("received.jsonl")).unwrap_or_default();
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad record {l:?}: {e}")))
        .collect()
}

/// The `request` records only (complete requests).
pub fn requests(server: &Server) -> Vec<Value> {
    records(server)
        .into_iter()
        .filter(|r| r["event"] == "request")
        .collect()
}

/// Waits until the backend has recorded something matching `pred` and returns it.
pub fn wait_record(server: &Server, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
    let mut found = None;
    let ok = wait_until(DEADLINE, || {
        found = records(server).into_iter().find(|r| pred(r));
        found.is_some()
    });
    assert!(
        ok,
        "the backend never recorded {what}; it has:\n{:#?}\n--- server log ---\n{}",
        records(server),
        server.log()
    );
    found.expect("checked above")
}

/// Writes a response script the backend sends for `GET /script/NAME`.
pub fn script(server: &Server, name: &str, bytes: &[u8]) {
    let path = backend_dir(server).join(name);
    std::fs::write(&path, bytes).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}

/// A client socket with a read timeout, so a wedged server fails the test.
pub fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    s.set_read_timeout(Some(READ_TIMEOUT)).expect("set timeout");
    s.set_nodelay(true).expect("nodelay");
    s
}

/// How a read-to-the-end finished.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// The server closed (FIN).
    Closed,
    /// The server reset the connection.
    Reset,
    /// Nothing more within the time allowed; the connection is still open.
    Open,
}

/// Reads until the server closes the connection or `within` passes.
pub fn read_all(stream: &mut impl Wire, within: Duration) -> (Vec<u8>, End) {
    let end = Instant::now() + within;
    let mut out = Vec::new();
    let mut buf = [0u8; 65536];
    loop {
        let left = end.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return (out, End::Open);
        }
        stream
            .set_read_timeout(Some(left.min(READ_TIMEOUT)))
            .expect("set timeout");
        match stream.read(&mut buf) {
            Ok(0) => return (out, End::Closed),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) if e.kind() == ErrorKind::ConnectionReset => return (out, End::Reset),
            Err(e) => panic!("read: {e}"),
        }
    }
}

/// One response as it came over the wire.
#[derive(Debug, Clone)]
pub struct RawResp {
    /// `HTTP/1.1 200 OK`, without CRLF.
    pub status_line: String,
    pub status: u16,
    /// In order, names as sent, values as sent (OWS trimmed).
    pub headers: Vec<(String, String)>,
    /// The head exactly as received, final CRLF included.
    pub head: String,
    /// The body with its framing removed.
    pub body: Vec<u8>,
    /// The body bytes exactly as received (framing included).
    pub raw_body: Vec<u8>,
}

impl RawResp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {:?}", self.text()))
    }

    /// Whether the head says the connection closes after this response.
    pub fn says_close(&self) -> bool {
        self.all("connection")
            .iter()
            .any(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case("close")))
    }
}

/// Parses one response from the start of `buf`. `head_request`: the request
/// was HEAD. `eof`: no more bytes will come (a close-delimited body ends at
/// the end of `buf`). None: incomplete. Panics on a malformed response.
pub fn parse_one(buf: &[u8], head_request: bool, eof: bool) -> Option<(RawResp, usize)> {
    let head_end = buf.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let head = std::str::from_utf8(&buf[..head_end])
        .unwrap_or_else(|_| panic!("response head is not UTF-8: {:?}", &buf[..head_end]));
    let mut lines = head[..head_end - 4].split("\r\n");
    let status_line = lines.next().unwrap_or_default().to_string();
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next().unwrap_or_default();
    assert!(
        version == "HTTP/1.1" || version == "HTTP/1.0",
        "bad status line {status_line:?} in {:?}",
        String::from_utf8_lossy(buf)
    );
    let status: u16 = parts
        .next()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
    let headers: Vec<(String, String)> = lines
        .map(|l| {
            let (k, v) = l
                .split_once(':')
                .unwrap_or_else(|| panic!("bad header line {l:?} in {head:?}"));
            assert!(!k.ends_with(' '), "space before colon in {l:?}");
            (k.to_string(), v.trim().to_string())
        })
        .collect();
    let mut resp = RawResp {
        status_line,
        status,
        headers,
        head: head.to_string(),
        body: Vec::new(),
        raw_body: Vec::new(),
    };
    let rest = &buf[head_end..];
    if head_request || (100..200).contains(&status) || status == 204 || status == 304 {
        return Some((resp, head_end));
    }
    let chunked = resp
        .header("transfer-encoding")
        .is_some_and(|v| v.to_ascii_lowercase().trim_end().ends_with("chunked"));
    if chunked {
        let mut i = 0;
        loop {
            let line_end = rest[i..].windows(2).position(|w| w == b"\r\n")? + i;
            let line = std::str::from_utf8(&rest[i..line_end]).expect("chunk size line");
            let size = usize::from_str_radix(line.split(';').next().unwrap_or("").trim(), 16)
                .unwrap_or_else(|_| panic!("bad chunk size line {line:?}"));
            i = line_end + 2;
            if size == 0 {
                // Trailers up to the empty line.
                loop {
                    let end = rest[i..].windows(2).position(|w| w == b"\r\n")? + i;
                    let empty = end == i;
                    i = end + 2;
                    if empty {
                        break;
                    }
                }
                resp.raw_body = rest[..i].to_vec();
                return Some((resp, head_end + i));
            }
            if rest.len() < i + size + 2 {
                return None;
            }
            resp.body.extend_from_slice(&rest[i..i + size]);
            assert_eq!(
                &rest[i + size..i + size + 2],
                b"\r\n",
                "chunk data not followed by CRLF"
            );
            i += size + 2;
        }
    }
    if let Some(len) = resp.header("content-length") {
        let len: usize = len
            .parse()
            .unwrap_or_else(|_| panic!("bad Content-Length {len:?}"));
        if rest.len() < len {
            return None;
        }
        resp.body = rest[..len].to_vec();
        resp.raw_body = resp.body.clone();
        return Some((resp, head_end + len));
    }
    if !eof {
        return None;
    }
    resp.body = rest.to_vec();
    resp.raw_body = resp.body.clone();
    Some((resp, buf.len()))
}

/// Reads one response (interim 1xx ones included) from `stream`, keeping
/// whatever follows it in `buf`.
pub fn read_response(stream: &mut impl Wire, buf: &mut Vec<u8>, head_request: bool) -> RawResp {
    let mut eof = false;
    let mut chunk = [0u8; 65536];
    loop {
        if let Some((resp, used)) = parse_one(buf, head_request, eof) {
            buf.drain(..used);
            return resp;
        }
        assert!(
            !eof,
            "connection closed in the middle of a response: {:?}",
            String::from_utf8_lossy(buf)
        );
        match stream.read(&mut chunk) {
            Ok(0) => eof = true,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => panic!(
                "reading a response: {e}; so far {:?}",
                String::from_utf8_lossy(buf)
            ),
        }
    }
}

/// Every response in `bytes` (all of which arrived before the server closed).
pub fn parse_all(mut bytes: &[u8], head_requests: &[bool]) -> Vec<RawResp> {
    let mut out = Vec::new();
    let mut i = 0;
    while !bytes.is_empty() {
        let head_request = head_requests.get(i).copied().unwrap_or(false);
        let (resp, used) = parse_one(bytes, head_request, true).unwrap_or_else(|| {
            panic!(
                "an incomplete response: {:?}",
                String::from_utf8_lossy(bytes)
            )
        });
        if !(100..200).contains(&resp.status) {
            i += 1;
        }
        out.push(resp);
        bytes = &bytes[used..];
    }
    out
}

/// Sends a keep-alive GET to `path` on a fresh connection (TLS for a TLS
/// front) and returns the response.
pub fn get(server: &Front, path: &str) -> RawResp {
    let mut s = server.dial();
    let req = format!("GET {path} HTTP/1.1\r\nHost: {HOST}\r\n\r\n");
    s.write_all(req.as_bytes()).expect("write");
    read_response(&mut s, &mut Vec::new(), false)
}

/// Sends `request` on a fresh connection and checks the front refused it:
/// exactly one response, `HTTP/1.1 {status} {reason}` with a JSON error
/// (naming `why` when given), `Connection: close`, then the connection
/// closed; and the backend never received a byte of it.
pub fn assert_refused(
    server: &Front,
    request: &[u8],
    status: u16,
    reason: &str,
    why: Option<&str>,
) {
    let before = records(server).len();
    let mut s = server.dial();
    // The server may close before taking all of a long request: a failed
    // write is fine, the answer is what counts.
    let _ = s.write_all(request);
    let (bytes, end) = read_all(&mut s, Duration::from_secs(20));
    let shown = String::from_utf8_lossy(request);
    let shown: String = shown.chars().take(300).collect();
    assert_ne!(
        end,
        End::Open,
        "for {shown:?}: the connection stayed open after {:?}",
        String::from_utf8_lossy(&bytes)
    );
    assert!(
        !bytes.is_empty(),
        "for {shown:?}: closed ({end:?}) without an answer\n--- server log ---\n{}",
        server.log()
    );
    let resps = parse_all(&bytes, &[]);
    assert_eq!(
        resps.len(),
        1,
        "for {shown:?}: one response, got {resps:#?}"
    );
    let resp = &resps[0];
    assert_eq!(
        resp.status_line,
        format!("HTTP/1.1 {status} {reason}"),
        "for {shown:?}: {resp:#?}"
    );
    assert!(
        resp.says_close(),
        "for {shown:?}: no Connection: close in {resp:#?}"
    );
    assert_eq!(
        resp.header("content-type"),
        Some("application/json"),
        "for {shown:?}"
    );
    let error = resp.json();
    let message = error["error"]
        .as_str()
        .unwrap_or_else(|| panic!("for {shown:?}: no error message in {error}"));
    if let Some(why) = why {
        assert!(
            message.contains(why),
            "for {shown:?}: error {message:?} does not say {why:?}"
        );
    }
    assert_nothing_forwarded(server, before, &shown);
}

/// Checks that nothing reached the backend since `before` records: sends a
/// sentinel request through the front and expects it to be the only request
/// (and no partial one) recorded since.
pub fn assert_nothing_forwarded(server: &Front, before: usize, what: &str) {
    let n = SENTINEL.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let path = format!("/sentinel-{n}");
    let resp = get(server, &path);
    assert_eq!(resp.status, 200, "sentinel {path}: {resp:#?}");
    let all = records(server);
    let known: Vec<&Value> = all[..before.min(all.len())]
        .iter()
        .map(|r| &r["conn"])
        .collect();
    let mut saw_sentinel = false;
    for r in &all[before.min(all.len())..] {
        match r["event"].as_str() {
            Some("request") if r["target"] == path.as_str() => saw_sentinel = true,
            Some("head") if r["target"] == path.as_str() => {}
            Some("closed") => {}
            _ => panic!(
                "for {what:?}: the backend received something: {r:#}\n(known connections {known:?})"
            ),
        }
    }
    assert!(saw_sentinel, "sentinel {path} not recorded");
}

static SENTINEL: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// The pid of this test's `ten serve`.
pub fn server_pid(server: &Server) -> u32 {
    let config = server.config.to_str().expect("UTF-8 path");
    processes_mentioning(config)
        .into_iter()
        .find(|(_, cmd)| cmd.starts_with(BIN) && cmd.contains(" serve "))
        .map(|(pid, _)| pid)
        .unwrap_or_else(|| panic!("no `ten serve` process for {config}"))
}

/// VmRSS of `pid` in KiB.
pub fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_else(|e| panic!("read /proc/{pid}/status: {e}"));
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no VmRSS in /proc/{pid}/status"))
}

/// Samples the RSS of `pid` every 20 ms on a thread until dropped; `peak()`
/// is the largest value seen.
pub struct RssSampler {
    peak: std::sync::Arc<std::sync::atomic::AtomicU64>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl RssSampler {
    pub fn start(pid: u32) -> RssSampler {
        use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
        use std::sync::Arc;
        let peak = Arc::new(AtomicU64::new(rss_kib(pid)));
        let stop = Arc::new(AtomicBool::new(false));
        let (p, s) = (peak.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                if let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) {
                    let rss = status
                        .lines()
                        .find_map(|l| l.strip_prefix("VmRSS:"))
                        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
                        .unwrap_or(0);
                    p.fetch_max(rss, Ordering::Relaxed);
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        RssSampler {
            peak,
            stop,
            thread: Some(thread),
        }
    }

    pub fn peak(&self) -> u64 {
        self.peak.load(std::sync::atomic::Ordering::Relaxed)
    }
}

impl Drop for RssSampler {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The download/upload pattern: byte k is k % 251. Returns a buffer of at
/// least `len + 251` bytes so any window `[k % 251 ..][..n]` with n <= len fits.
pub fn pattern(len: usize) -> Vec<u8> {
    (0..len + 251).map(|k| (k % 251) as u8).collect()
}
