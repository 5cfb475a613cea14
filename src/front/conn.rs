//! One client connection's data: its socket, its buffers in both directions,
//! the upstream connection it is using and where it stands in the exchange.
//! The transitions themselves are driven by `worker.rs` and `worker/`, which
//! own the poll.

use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use mio::net::{TcpStream, UnixStream};

use super::stats::Visit;
use crate::http::head::ResponseHead;
use crate::http::{Framer, RequestHead};
use crate::names::{InstanceId, InstanceKey, ServiceName};
use crate::net::{MioStream, Stream};
use crate::supervisor::snapshot::InstanceStats;
use std::sync::Arc;

/// Most bytes buffered in one direction before reading from that side stops
/// (backpressure).
pub const MAX_BUF: usize = 64 * 1024;

/// A byte buffer consumed from the front. Its storage stays initialised
/// while it is used, so reads never zero memory again; it holds no
/// allocation once released, so an idle keep-alive connection costs little.
#[derive(Debug, Default)]
pub struct Buf {
    data: Vec<u8>,
    start: usize,
    end: usize,
}

/// First storage size of a buffer; it doubles as needed up to MAX_BUF.
const INITIAL: usize = 4096;

impl Buf {
    pub fn len(&self) -> usize {
        self.end - self.start
    }

    pub fn is_empty(&self) -> bool {
        self.start == self.end
    }

    pub fn bytes(&self) -> &[u8] {
        &self.data[self.start..self.end]
    }

    pub fn consume(&mut self, n: usize) {
        self.start += n;
        debug_assert!(self.start <= self.end);
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
    }

    /// Makes room for at least `n` more bytes at the end.
    fn room_for(&mut self, n: usize) {
        if self.data.len() - self.end >= n {
            return;
        }
        if self.start > 0 {
            self.data.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if self.data.len() - self.end < n {
            let want = (self.end + n).max(self.data.len() * 2).max(INITIAL);
            self.data.resize(want, 0);
        }
    }

    pub fn extend(&mut self, bytes: &[u8]) {
        self.room_for(bytes.len());
        // Heads and small bodies: copied without `memcpy` (see `append`).
        crate::http::append::copy(&mut self.data[self.end..self.end + bytes.len()], bytes);
        self.end += bytes.len();
    }

    /// Moves the first `n` bytes of `from` to the end of `self`.
    pub fn take_from(&mut self, from: &mut Buf, n: usize) {
        if self.is_empty() && n == from.len() && self.data.len() <= from.data.len() {
            std::mem::swap(self, from);
            from.start = 0;
            from.end = 0;
            return;
        }
        self.extend(&from.bytes()[..n]);
        from.consume(n);
    }

    /// Forgets the contents, keeping the storage for the next request.
    pub fn clear(&mut self) {
        self.start = 0;
        self.end = 0;
    }

    /// Whether the buffer holds storage (to release when idle).
    pub fn has_storage(&self) -> bool {
        !self.data.is_empty()
    }

    /// Reads once from `src` into spare room (growing the storage up to
    /// MAX_BUF). Returns the bytes read (0 is EOF) and whether the read
    /// came back short, which means the socket is drained for now: with
    /// edge-triggered polling a new edge comes when more bytes arrive, so
    /// the caller may skip the read that would only say WouldBlock.
    pub fn read_from<R: Read>(&mut self, src: &mut R) -> io::Result<(usize, bool)> {
        if self.end == self.data.len() {
            let grow = if self.data.len() < MAX_BUF {
                self.data.len().max(INITIAL)
            } else {
                1
            };
            self.room_for(grow);
        }
        let room = self.data.len() - self.end;
        let n = src.read(&mut self.data[self.end..])?;
        self.end += n;
        Ok((n, n < room))
    }

    /// Writes once to `dst` from the front of the buffer. Returns the bytes
    /// written and whether the write came back short (the socket is full).
    pub fn write_to<W: Write>(&mut self, dst: &mut W) -> io::Result<(usize, bool)> {
        let want = self.len();
        let n = dst.write(self.bytes())?;
        self.consume(n);
        Ok((n, n < want))
    }
}

/// One loop's spare buffer storage. Connections take storage when bytes
/// arrive and give it back when their exchange ends, so an idle keep-alive
/// connection holds none and busy ones never zero memory again.
#[derive(Debug, Default)]
pub struct Spare {
    free: Vec<Vec<u8>>,
}

/// Spare buffers kept per loop; beyond this they are freed. Buffers go back
/// as soon as they are empty, so a loop needs only a few at once.
const SPARE_MAX: usize = 64;

impl Spare {
    /// Gives `buf` storage if it has none.
    pub fn supply(&mut self, buf: &mut Buf) {
        if buf.data.is_empty() {
            buf.data = self.free.pop().unwrap_or_else(|| vec![0; INITIAL]);
            buf.start = 0;
            buf.end = 0;
        }
    }

    /// Takes back the storage of an empty buffer. Storage grown past the
    /// first size (a large body went through) is freed, not kept.
    pub fn reclaim(&mut self, buf: &mut Buf) {
        if buf.is_empty() && !buf.data.is_empty() {
            let data = std::mem::take(&mut buf.data);
            buf.start = 0;
            buf.end = 0;
            if data.len() == INITIAL && self.free.len() < SPARE_MAX {
                self.free.push(data);
            }
        }
    }

    /// Takes back the storage of an empty buffer of the first size, and
    /// leaves a grown one (a large body is streaming through it).
    pub fn reclaim_small(&mut self, buf: &mut Buf) {
        if buf.data.len() == INITIAL {
            self.reclaim(buf);
        }
    }

    /// Frees every spare buffer (the loop has no connection left).
    pub fn release(&mut self) {
        self.free = Vec::new();
    }
}

/// Where an instance is reached: its TCP port, or its Unix socket when the
/// app listens on `SOCKET_PATH`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Dest {
    Tcp(SocketAddr),
    Unix(std::path::PathBuf),
}

impl Dest {
    /// Starts a non-blocking connect (TCP_NODELAY on TCP). A Unix socket
    /// connects at once or fails at once.
    pub fn connect(&self) -> io::Result<MioStream> {
        match self {
            Dest::Tcp(addr) => {
                let s = TcpStream::connect(*addr)?;
                let _ = s.set_nodelay(true);
                Ok(Stream::Tcp(s))
            }
            // Never through a link the instance planted (see socket_path).
            Dest::Unix(path) => {
                let socket = crate::isolate::socket_path::resolve(path)?;
                Ok(Stream::Unix(UnixStream::connect(socket.path())?))
            }
        }
    }
}

impl std::fmt::Display for Dest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Dest::Tcp(addr) => write!(f, "{addr}"),
            Dest::Unix(path) => write!(f, "{}", path.display()),
        }
    }
}

/// Readiness of one socket as last seen (mio is edge-triggered: a flag stays
/// set until a call returns WouldBlock).
#[derive(Debug, Default, Clone, Copy)]
pub struct Ready {
    pub readable: bool,
    pub writable: bool,
    pub eof: bool,
    /// The peer has shut down its side (EPOLLRDHUP). A short read then does
    /// not mean "drained": the end of stream is still to be read, and no
    /// new edge will announce it.
    pub hup: bool,
}

/// The upstream connection a request is using: its socket and what the
/// loop knows about it. Generic over the socket only so the state machine
/// (`machine.rs`) can be tested without one.
#[derive(Debug)]
pub struct Upstream<S = MioStream> {
    pub stream: S,
    pub addr: Dest,
    pub connected: bool,
    /// Came from the pool or an earlier request: may have been closed by
    /// the app meanwhile.
    pub reused: bool,
    pub ready: Ready,
    /// Carries the current exchange. When false the connection is idle,
    /// kept attached for the client's next request to the same instance.
    pub in_use: bool,
}

/// Where the connection stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Waiting for (the rest of) a request head.
    Head,
    /// Reading a management API request body.
    ApiBody,
    /// Waiting for the supervisor (a held request, or an API command).
    Waiting,
    /// Talking to the upstream: request body out, response back.
    Proxy,
    /// The upstream refused (or a reused connection was dead before
    /// answering): pick the next instance, hold the request, or give up.
    /// Entered and left within one pump, so no timer sees it.
    Retry,
    /// After `101 Switching Protocols`: bytes both ways until either closes.
    Tunnel,
    /// Relaying a Server-Sent Events subscription until the client leaves.
    Streaming,
    /// Writing what is left, then closing.
    Closing,
}

/// The request being served.
#[derive(Debug)]
pub struct Exchange {
    pub head: RequestHead,
    /// For `Target::Service`: the service, and instances already tried.
    pub service: Option<String>,
    /// The instance the request is (to be) sent to.
    pub instance: Option<crate::names::InstanceKey>,
    /// Counts this request at its instance while it is there.
    pub visit: Option<Visit>,
    /// Refused connections so far (an instance that just crashed).
    pub refusals: u32,
    /// The address that refused last, for the answer when retries run out.
    pub refused_by: Option<Dest>,
    pub tried: Vec<usize>,
    /// The head as sent upstream, kept to retry on a stale pooled connection.
    pub upstream_head: Vec<u8>,
    pub req_framer: Framer,
    pub req_done: bool,
    /// Body bytes already forwarded (a retry is only safe before any).
    pub body_sent: bool,
    /// Response state, once its head arrived.
    pub resp_framer: Option<Framer>,
    pub resp_keep_alive: bool,
    pub dechunk: bool,
    /// The response body is chunked and passed on as chunked (through
    /// `Framer::forward`, which filters its trailers).
    pub resp_chunked: bool,
    pub resp_started: bool,
    /// API request body collected so far.
    pub api_body: Vec<u8>,
    /// For API commands sent to the supervisor: the status on success.
    pub api_status: Option<u16>,
    pub request_timeout: std::time::Duration,
    /// The response head, parsed into the same storage every time.
    pub resp: ResponseHead,
    /// An earlier request's `service` and `instance`, kept for their storage.
    spare_service: Option<String>,
    spare_key: Option<InstanceKey>,
    /// The counters of the instance the last visit went to, kept so a
    /// visit to the same instance takes no new reference.
    last_stats: Option<Arc<InstanceStats>>,
}

/// API request bodies up to this size keep their storage for the next request.
const API_BODY_KEEP: usize = 16 * 1024;

impl Exchange {
    /// A request whose head just arrived, before it is routed.
    #[cfg(test)]
    pub fn new(head: RequestHead) -> Exchange {
        let mut x = Exchange::empty();
        x.head = head;
        x.begin(Instant::now());
        x
    }

    /// Storage for a request whose head is still to be parsed into `head`.
    pub fn empty() -> Exchange {
        Exchange {
            head: RequestHead::default(),
            service: None,
            instance: None,
            visit: None,
            refusals: 0,
            refused_by: None,
            tried: Vec::new(),
            upstream_head: Vec::new(),
            req_framer: Framer::new(crate::http::BodyKind::None),
            req_done: true,
            body_sent: false,
            resp_framer: None,
            resp_keep_alive: false,
            dechunk: false,
            resp_chunked: false,
            resp_started: false,
            api_body: Vec::new(),
            api_status: None,
            request_timeout: std::time::Duration::from_secs(60),
            resp: ResponseHead::default(),
            spare_service: None,
            spare_key: None,
            last_stats: None,
        }
    }

    /// Starts the request whose head was just parsed into `head`, at `now`:
    /// every other field as `new` sets it, the storage of the last request
    /// kept.
    pub fn begin(&mut self, now: Instant) {
        self.req_framer = Framer::new(self.head.body);
        self.req_done = !self.head.body.has_body();
        if let Some(s) = self.service.take() {
            self.spare_service = Some(s);
        }
        if let Some(k) = self.instance.take() {
            self.spare_key = Some(k);
        }
        self.end_visit(now);
        self.refusals = 0;
        self.refused_by = None;
        self.tried.clear();
        self.upstream_head.clear();
        self.body_sent = false;
        self.resp_framer = None;
        self.resp_keep_alive = false;
        self.dechunk = false;
        self.resp_chunked = false;
        self.resp_started = false;
        if self.api_body.capacity() > API_BODY_KEEP {
            self.api_body = Vec::new();
        }
        self.api_body.clear();
        self.api_status = None;
        self.request_timeout = std::time::Duration::from_secs(60);
    }

    /// Starts a visit to the instance counted in `stats`, by front loop
    /// `shard`, at `now`. A visit under way ends first (unrecorded, when it
    /// has no status yet: a weighted retry).
    pub fn start_visit(&mut self, stats: &Arc<InstanceStats>, shard: usize, now: Instant) {
        self.end_visit(now);
        let stats = match self.last_stats.take() {
            Some(kept) if Arc::ptr_eq(&kept, stats) => kept,
            _ => stats.clone(),
        };
        self.visit = Some(Visit::new(stats, shard, now));
    }

    /// Ends the visit under way, if any, at `now`.
    pub fn end_visit(&mut self, now: Instant) {
        if let Some(v) = self.visit.take() {
            self.last_stats = v.finish(now);
        }
    }

    /// Sets `service`, reusing earlier storage.
    pub fn set_service(&mut self, name: &str) {
        let mut s = self
            .service
            .take()
            .or_else(|| self.spare_service.take())
            .unwrap_or_default();
        s.clear();
        s.push_str(name);
        self.service = Some(s);
    }

    /// Sets `instance`, reusing earlier storage.
    pub fn set_instance(&mut self, service: &ServiceName, id: &InstanceId) {
        let k = match self.instance.take().or_else(|| self.spare_key.take()) {
            Some(mut k) => {
                // Most requests on a connection go to the instance before:
                // comparing costs less than copying again.
                if k.service != *service {
                    k.service.clone_from(service);
                }
                if k.id != *id {
                    k.id.clone_from(id);
                }
                k
            }
            None => InstanceKey {
                service: service.clone(),
                id: id.clone(),
            },
        };
        self.instance = Some(k);
    }
}

/// One loop's finished exchanges, kept so the next request's head is
/// parsed into storage that is already there.
#[derive(Debug, Default)]
pub struct Exchanges {
    // Boxed: they move in and out of connections as boxes.
    #[allow(clippy::vec_box)]
    free: Vec<Box<Exchange>>,
}

/// Finished exchanges kept per loop; beyond this they are freed.
const EXCHANGES_MAX: usize = 64;

impl Exchanges {
    pub fn take(&mut self) -> Box<Exchange> {
        self.free
            .pop()
            .unwrap_or_else(|| Box::new(Exchange::empty()))
    }

    /// Takes back an exchange that is over. Its visit ends at `now`.
    pub fn give_back(&mut self, mut x: Box<Exchange>, now: Instant) {
        x.end_visit(now);
        if self.free.len() < EXCHANGES_MAX {
            self.free.push(x);
        }
    }

    /// Frees every kept exchange (the loop has no connection left).
    pub fn release(&mut self) {
        self.free = Vec::new();
    }
}

/// One client connection. Generic over the two sockets only so the state
/// machine (`machine.rs`) can be tested without them; the loop uses the
/// defaults.
#[derive(Debug)]
pub struct Conn<C = super::tls::Client, S = MioStream> {
    pub client: C,
    pub peer_ip: IpAddr,
    /// Came in on `ten.sock`.
    pub local: bool,
    /// Bumped whenever the slot is reused, so late supervisor replies for a
    /// closed connection are recognised and dropped.
    pub generation: u32,
    pub ready: Ready,
    pub cin: Buf,
    pub cout: Buf,
    pub uin: Buf,
    pub uout: Buf,
    pub upstream: Option<Upstream<S>>,
    pub phase: Phase,
    /// Boxed: only connections in the middle of a request pay for it.
    pub exchange: Option<Box<Exchange>>,
    /// The exchange that just ended, for the loop to take back and reuse.
    pub ended: Option<Box<Exchange>>,
    /// Close once `cout` is flushed.
    pub close_after: bool,
    /// When the current phase times out.
    pub deadline: Option<Instant>,
    /// Requests served on this connection (for keep-alive accounting).
    pub served: u64,
    /// The supervisor subscription this connection relays, if streaming.
    pub stream_id: Option<u64>,
    /// The id of the token the stream was opened with: it ends when that
    /// token is revoked. None: opened on `ten.sock`.
    pub stream_token: Option<String>,
    /// When the last stream message or heartbeat was written.
    pub last_beat: Instant,
    /// When the connection last finished an exchange (for releasing idle
    /// buffers and upstreams).
    pub idle_since: Instant,
}

impl<C, S> Conn<C, S> {
    pub fn new(client: C, peer_ip: IpAddr, local: bool, generation: u32) -> Conn<C, S> {
        Conn {
            client,
            peer_ip,
            local,
            generation,
            ready: Ready::default(),
            cin: Buf::default(),
            cout: Buf::default(),
            uin: Buf::default(),
            uout: Buf::default(),
            upstream: None,
            phase: Phase::Head,
            exchange: None,
            ended: None,
            close_after: false,
            deadline: None,
            served: 0,
            stream_id: None,
            stream_token: None,
            last_beat: Instant::now(),
            idle_since: Instant::now(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buf_moves_bytes_and_releases_memory() {
        let mut a = Buf::default();
        let mut b = Buf::default();
        a.extend(b"hello world");
        a.consume(6);
        assert_eq!(a.bytes(), b"world");
        b.take_from(&mut a, 3);
        assert_eq!(b.bytes(), b"wor");
        assert_eq!(a.bytes(), b"ld");
        b.take_from(&mut a, 2);
        assert_eq!(b.bytes(), b"world");
        assert!(a.is_empty());
        b.consume(5);
        let mut spare = Spare::default();
        spare.reclaim(&mut b);
        assert_eq!(b.data.capacity(), 0);
        let mut big = Buf::default();
        for i in 0..20_000u32 {
            big.extend(&i.to_le_bytes());
            if i % 3 == 0 {
                big.consume(2);
            }
        }
        assert_eq!(big.len(), 80_000 - 2 * 6667);
    }

    #[test]
    fn spare_takes_back_small_empty_buffers_and_keeps_grown_ones_in_use() {
        let mut spare = Spare::default();
        let (mut small, mut grown, mut full) = (Buf::default(), Buf::default(), Buf::default());
        for buf in [&mut small, &mut grown, &mut full] {
            spare.supply(buf);
        }
        grown.extend(&[0; 3 * INITIAL]);
        grown.clear();
        full.extend(b"in flight");
        for buf in [&mut small, &mut grown, &mut full] {
            spare.reclaim_small(buf);
        }
        assert!(!small.has_storage(), "an empty first-size buffer goes back");
        assert!(
            grown.has_storage(),
            "a grown one stays while a body streams"
        );
        assert_eq!(full.bytes(), b"in flight");
        assert_eq!(spare.free.len(), 1);
        spare.reclaim(&mut grown);
        assert!(!grown.has_storage(), "between requests it is freed");
        assert_eq!(spare.free.len(), 1, "grown storage is not kept");
        spare.release();
        assert!(spare.free.is_empty() && spare.free.capacity() == 0);
    }

    #[test]
    fn buf_reads_until_eof() {
        let mut src: &[u8] = b"abc";
        let mut buf = Buf::default();
        assert_eq!(buf.read_from(&mut src).unwrap(), (3, true));
        assert_eq!(buf.read_from(&mut src).unwrap(), (0, true));
        assert_eq!(buf.bytes(), b"abc");
    }
}
