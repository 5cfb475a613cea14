//! HTTPS in the front: the rustls server config, the certificates its
//! handshakes get (`Certs`: the files' `crate::certs::Store`, then ACME's),
//! and a client connection that is plain or TLS, driven by the loop like
//! any non-blocking socket.
//!
//! rustls never touches the socket by itself here: `TlsStream` feeds it
//! what a non-blocking read returns and writes out what it produced, so a
//! handshake or a record never blocks a loop. A plain connection pays one
//! enum match per read or write, as for TCP versus Unix, and nothing else.
//! Certificate files are read in `crate::certs`, off the loops.
//!
//! With `acme_on_demand` a connection first reads
//! the ClientHello with rustls' `Acceptor`; a handshake for an instance
//! host without a certificate is parked (the loop goes on) until its
//! order settles, then resumed or refused with an alert: ACME wakes the
//! loop's waker when an order settles (`Shared::wake_on_settle`).

use std::io::{self, ErrorKind, Read, Write};
use std::os::fd::AsFd;
use std::sync::Arc;
use std::time::Instant;

use mio::event::Source;
use mio::net::TcpStream;
use mio::{Interest, Registry, Token};
use rustls::server::{
    Accepted, Acceptor, ClientHello, ResolvesServerCert, ServerConfig, ServerConnection,
};
use rustls::sign::CertifiedKey;

use crate::acme::shared::{Hello, Shared, ACME_TLS_ALPN};
use crate::certs::{Failure, Store};
use crate::net::MioStream;

/// Longest a handshake is held for its on-demand certificate.
pub const ON_DEMAND_WAIT: std::time::Duration = std::time::Duration::from_secs(90);

/// The cipher suites, in the order the server picks them whatever the
/// client prefers: AES-128-GCM first. Its SHA-256 key schedule runs on the
/// CPU's SHA instructions where SHA-384's cannot, which is most of what a
/// resumed handshake costs beside the key exchange; AES-256 and ChaCha20
/// remain for clients that offer nothing else.
const CIPHER_SUITES: [rustls::SupportedCipherSuite; 9] = {
    use rustls::crypto::ring::cipher_suite::*;
    [
        TLS13_AES_128_GCM_SHA256,
        TLS13_AES_256_GCM_SHA384,
        TLS13_CHACHA20_POLY1305_SHA256,
        TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
        TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
        TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
        TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
        TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
        TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
    ]
};

/// The certificates handshakes are answered with: the files' (a reload
/// swaps them in `files`), then, with `acme_*` set, ACME's issued ones and
/// its TLS-ALPN-01 challenge certificates.
#[derive(Debug)]
pub struct Certs {
    pub files: Arc<Store>,
    pub acme: Option<Arc<Shared>>,
}

impl Certs {
    /// ACME's shared state, with `acme_*` set.
    pub fn acme(&self) -> Option<&Arc<Shared>> {
        self.acme.as_ref()
    }

    /// Whether plain HTTP is answered with a redirect to https (kept with
    /// the files: a reload changes both).
    pub fn redirect_http(&self) -> bool {
        self.files.redirect_http()
    }

    /// `GET /api/tls`: the files' certificates, then ACME's. `now` is Unix
    /// seconds.
    pub fn to_json(&self, now: i64) -> serde_json::Value {
        let mut list = self.files.to_json(now);
        if let Some(acme) = &self.acme {
            list.extend(acme.to_json(now));
        }
        serde_json::Value::Array(list)
    }
}

impl ResolvesServerCert for Certs {
    /// A file certificate covering the name, else ACME's for it, else the
    /// fallback; none (an alert) for a TLS-ALPN-01 probe without a pending
    /// challenge and, on demand, for an instance host without a certificate.
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let name = hello.server_name();
        let certs = self.files.certs();
        let Some(acme) = &self.acme else {
            return certs.pick(name).map(|c| c.key.clone());
        };
        if offers_acme_alpn(&hello) {
            return name.and_then(|n| acme.alpn_cert(n));
        }
        if let Some(n) = name.filter(|n| !certs.covers(n)) {
            if let Some(key) = acme.cert(n) {
                return Some(key);
            }
            if acme.refuses_uncovered(n) {
                return None;
            }
        }
        match certs.pick(name) {
            Some(c) => Some(c.key.clone()),
            // Without certificate files: the domain's from ACME.
            None => acme.cert(&acme.domain),
        }
    }
}

/// Whether a ClientHello offers `acme-tls/1` (a TLS-ALPN-01 validation).
fn offers_acme_alpn(hello: &ClientHello<'_>) -> bool {
    hello
        .alpn()
        .is_some_and(|mut protocols| protocols.any(|p| p == ACME_TLS_ALPN))
}

/// The random bytes rustls asks of its provider (a handshake's server
/// random, each session ticket's nonce and age: five asks per resumed TLS
/// 1.3 handshake), handed out from a buffer of the kernel's random bytes
/// per thread, refilled `POOL` bytes at a time: one getrandom for about ten
/// handshakes rather than five for each. Each byte is handed out once and
/// wiped from the buffer. The key exchange and the ticket encryption take
/// theirs from ring directly.
///
/// Only the front's loop threads fill a pool, and they never fork: the
/// processes the server starts (its zygote, instances) exec without
/// running rustls, so no two processes hand out the same bytes. What a
/// pool holds is not secret either: a server random goes out in the
/// clear, a ticket's nonce and age inside the connection's encryption.
#[derive(Debug)]
struct Pooled;

/// Bytes `Pooled` takes from the kernel at once.
const POOL: usize = 1024;

impl rustls::crypto::SecureRandom for Pooled {
    fn fill(&self, buf: &mut [u8]) -> Result<(), rustls::crypto::GetRandomFailed> {
        use std::cell::RefCell;
        thread_local! {
            /// The bytes, and how many of them are used.
            static BYTES: RefCell<([u8; POOL], usize)> = const { RefCell::new(([0; POOL], POOL)) };
        }
        if buf.len() > POOL {
            return kernel_random(buf);
        }
        BYTES.with_borrow_mut(|(bytes, used)| {
            if POOL - *used < buf.len() {
                kernel_random(bytes)?;
                *used = 0;
            }
            let taken = &mut bytes[*used..*used + buf.len()];
            buf.copy_from_slice(taken);
            taken.fill(0);
            *used += buf.len();
            Ok(())
        })
    }
}

/// Fills `buf` from the kernel (getrandom), through ring.
fn kernel_random(buf: &mut [u8]) -> Result<(), rustls::crypto::GetRandomFailed> {
    use ring::rand::SecureRandom;
    ring::rand::SystemRandom::new()
        .fill(buf)
        .map_err(|_| rustls::crypto::GetRandomFailed)
}

/// The rustls config of the HTTPS listeners: TLS 1.3 and 1.2 with ring,
/// `CIPHER_SUITES` in the server's order, no client certificates, ALPN
/// `http/1.1` (and `acme-tls/1` with ACME, chosen only by a client
/// offering nothing else), certificates from `certs`. Sessions resume from
/// stateless tickets (encrypted with a key of this config's, rotated every
/// 6 hours), so any number of clients resume, not only the last few
/// hundred a session cache holds: a resumed handshake signs nothing.
/// rustls' own random bytes come from `Pooled`.
pub fn server_config(certs: Arc<Certs>) -> Result<Arc<ServerConfig>, rustls::Error> {
    let provider = Arc::new(rustls::crypto::CryptoProvider {
        cipher_suites: CIPHER_SUITES.to_vec(),
        secure_random: &Pooled,
        ..rustls::crypto::ring::default_provider()
    });
    let acme = certs.acme().is_some();
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_cert_resolver(certs);
    config.ignore_client_order = true;
    config.ticketer = rustls::crypto::ring::Ticketer::new()?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    if acme {
        config.alpn_protocols.push(ACME_TLS_ALPN.to_vec());
    }
    Ok(Arc::new(config))
}

/// A client connection: plain (TCP or Unix) or TLS over TCP.
#[derive(Debug)]
pub enum Client {
    Plain(MioStream),
    /// Boxed: the rustls state is large, and plain connections do not pay for it.
    Tls(Box<TlsStream>),
}

impl Client {
    /// Whether the client came in over TLS.
    pub fn is_tls(&self) -> bool {
        matches!(self, Client::Tls(_))
    }

    /// Whether encrypted bytes wait to be written to the socket (a write
    /// with nothing new, `write(&[])`, flushes them). Always false for a
    /// plain connection, and for session tickets held for the response.
    pub fn has_pending(&self) -> bool {
        match self {
            Client::Plain(_) => false,
            Client::Tls(t) => !t.hold && t.tls.as_ref().is_some_and(|c| c.wants_write()),
        }
    }

    /// Since when the handshake has been held for an on-demand certificate.
    pub fn parked_since(&self) -> Option<Instant> {
        match self {
            Client::Tls(t) => match t.hello.as_deref() {
                Some(HelloPhase::Parked { since, .. }) => Some(*since),
                _ => None,
            },
            Client::Plain(_) => None,
        }
    }

    /// What is written from now on ends the connection: a TLS connection
    /// queues its close_notify behind the last bytes, so both leave in one
    /// write.
    pub fn last_bytes(&mut self) {
        if let Client::Tls(t) = self {
            t.closing = true;
        }
    }

    /// Before closing: a TLS connection says close_notify (best effort,
    /// never blocking) unless it went out with the last bytes.
    pub fn close_notify(&mut self) {
        if let Client::Tls(t) = self {
            if let Some(c) = t.tls.as_mut() {
                if !t.notified {
                    c.send_close_notify();
                }
                if c.wants_write() {
                    let _ = t.flush_tls();
                }
            }
        }
    }
}

impl Read for Client {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Client::Plain(s) => crate::net::recv(s.as_fd(), buf),
            Client::Tls(t) => t.read(buf),
        }
    }
}

impl Write for Client {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Client::Plain(s) => crate::net::send(s.as_fd(), buf),
            Client::Tls(t) => t.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Client::Plain(s) => s.flush(),
            Client::Tls(t) => t.flush_tls(),
        }
    }
}

impl Source for Client {
    fn register(
        &mut self,
        registry: &Registry,
        token: Token,
        interests: Interest,
    ) -> io::Result<()> {
        match self {
            Client::Plain(s) => s.register(registry, token, interests),
            Client::Tls(t) => t.tcp.register(registry, token, interests),
        }
    }

    fn reregister(
        &mut self,
        registry: &Registry,
        token: Token,
        interests: Interest,
    ) -> io::Result<()> {
        match self {
            Client::Plain(s) => s.reregister(registry, token, interests),
            Client::Tls(t) => t.tcp.reregister(registry, token, interests),
        }
    }

    fn deregister(&mut self, registry: &Registry) -> io::Result<()> {
        match self {
            Client::Plain(s) => s.deregister(registry),
            Client::Tls(t) => t.tcp.deregister(registry),
        }
    }
}

/// rustls over a non-blocking TCP socket. `read` and `write` move
/// plaintext and do as much socket I/O as the socket takes without
/// blocking; WouldBlock means what it means for the socket itself, so the
/// loop's edge-triggered readiness stays right.
#[derive(Debug)]
pub struct TlsStream {
    tcp: TcpStream,
    /// None until the ClientHello is read and its certificate known (on
    /// demand only; otherwise made at once).
    tls: Option<ServerConnection>,
    /// On demand: the ClientHello being read, or a parked handshake.
    hello: Option<Box<HelloPhase>>,
    config: Arc<ServerConfig>,
    certs: Arc<Certs>,
    /// The socket said end of stream.
    eof: bool,
    /// The session tickets that end a handshake wait for the response to
    /// the request that came with the client's last flight, and go out in
    /// the same write.
    hold: bool,
    /// The bytes written from now on are the connection's last
    /// (`Client::last_bytes`).
    closing: bool,
    /// close_notify is queued (behind the last bytes).
    notified: bool,
}

/// Before the rustls connection exists (on demand only). Boxed in the
/// stream as a whole, so the variants' sizes cost nothing per connection.
#[allow(clippy::large_enum_variant)]
enum HelloPhase {
    Reading(Acceptor),
    /// Held until the on-demand order for `name` settles.
    Parked {
        accepted: Accepted,
        name: String,
        since: Instant,
    },
}

impl std::fmt::Debug for HelloPhase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HelloPhase::Reading(_) => f.write_str("Reading"),
            HelloPhase::Parked { name, .. } => write!(f, "Parked({name})"),
        }
    }
}

/// The socket as rustls reads it, noting whether a read came back short:
/// the socket is drained for now.
struct Noting<'a> {
    tcp: &'a mut TcpStream,
    short: bool,
}

impl Read for Noting<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = crate::net::recv(self.tcp.as_fd(), buf)?;
        self.short = n < buf.len();
        Ok(n)
    }
}

/// Where reading the ClientHello got to.
enum Accepting {
    /// The rustls connection exists: go on with records.
    Ready,
    /// Nothing more for now (the socket, or a parked handshake).
    Blocked,
    Eof,
}

impl TlsStream {
    pub fn new(
        tcp: TcpStream,
        config: Arc<ServerConfig>,
        certs: Arc<Certs>,
    ) -> io::Result<TlsStream> {
        let on_demand = certs.acme().is_some_and(|a| a.on_demand());
        let (tls, hello) = if on_demand {
            (
                None,
                Some(Box::new(HelloPhase::Reading(Acceptor::default()))),
            )
        } else {
            let tls = ServerConnection::new(config.clone()).map_err(io::Error::other)?;
            (Some(tls), None)
        };
        Ok(TlsStream {
            tcp,
            tls,
            hello,
            config,
            certs,
            eof: false,
            hold: false,
            closing: false,
            notified: false,
        })
    }

    /// Reads the ClientHello (on demand), parks the handshake while its
    /// name's certificate is ordered, and makes the rustls connection.
    fn accept(&mut self) -> io::Result<Accepting> {
        loop {
            let accepted = match self.hello.as_deref_mut() {
                None => return Ok(Accepting::Ready),
                Some(HelloPhase::Parked { name, .. }) => {
                    let acme = self.certs.acme();
                    if acme.is_some_and(|a| a.settled(name) == Hello::Wait) {
                        return Ok(Accepting::Blocked);
                    }
                    match self.hello.take().map(|h| *h) {
                        Some(HelloPhase::Parked { accepted, .. }) => accepted,
                        _ => return Ok(Accepting::Ready),
                    }
                }
                Some(HelloPhase::Reading(acceptor)) => {
                    match acceptor.read_tls(&mut crate::net::Raw(self.tcp.as_fd())) {
                        Ok(0) => {
                            self.eof = true;
                            self.certs.files.count_failure(Failure::Closed);
                            return Ok(Accepting::Eof);
                        }
                        Ok(_) => {}
                        Err(e) if e.kind() == ErrorKind::WouldBlock => {
                            return Ok(Accepting::Blocked)
                        }
                        Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                        Err(e) => return Err(e),
                    }
                    match acceptor.accept() {
                        Ok(None) => continue,
                        Ok(Some(accepted)) => {
                            let hello = accepted.client_hello();
                            let wait = match (hello.server_name(), self.certs.acme()) {
                                (Some(name), Some(acme))
                                    if !offers_acme_alpn(&hello)
                                        && !self.certs.files.certs().covers(name)
                                        && acme.hello(name) == Hello::Wait =>
                                {
                                    Some(name.to_ascii_lowercase())
                                }
                                _ => None,
                            };
                            if let Some(name) = wait {
                                self.hello = Some(Box::new(HelloPhase::Parked {
                                    accepted,
                                    name,
                                    since: Instant::now(),
                                }));
                                return Ok(Accepting::Blocked);
                            }
                            self.hello = None;
                            accepted
                        }
                        Err((e, mut alert)) => {
                            self.count(&e, true);
                            let _ = alert.write_all(&mut self.tcp);
                            return Err(io::Error::new(ErrorKind::InvalidData, e));
                        }
                    }
                }
            };
            self.hello = None;
            match accepted.into_connection(self.config.clone()) {
                Ok(tls) => {
                    self.tls = Some(tls);
                    match self.flush_tls() {
                        Ok(()) => {}
                        Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                        Err(e) => return Err(e),
                    }
                    return Ok(Accepting::Ready);
                }
                Err((e, mut alert)) => {
                    self.count(&e, true);
                    let _ = alert.write_all(&mut self.tcp);
                    return Err(io::Error::new(ErrorKind::InvalidData, e));
                }
            }
        }
    }

    /// Writes out what rustls has queued. Err(WouldBlock) when the socket
    /// is full with bytes still queued.
    fn flush_tls(&mut self) -> io::Result<()> {
        let Some(tls) = self.tls.as_mut() else {
            return Ok(());
        };
        while tls.wants_write() {
            match tls.write_tls(&mut crate::net::Raw(self.tcp.as_fd())) {
                Ok(0) => return Err(ErrorKind::WriteZero.into()),
                Ok(_) => {}
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Queues close_notify once the connection is `closing` (its last
    /// plaintext is queued already).
    fn notify_if_closing(&mut self) {
        if self.closing && !self.notified {
            if let Some(tls) = self.tls.as_mut() {
                if !tls.is_handshaking() {
                    tls.send_close_notify();
                    self.notified = true;
                }
            }
        }
    }

    /// Counts a handshake failure.
    fn failed(&self, e: &rustls::Error) {
        let handshaking = self.tls.as_ref().is_none_or(|t| t.is_handshaking());
        self.count(e, handshaking);
    }

    fn count(&self, e: &rustls::Error, handshaking: bool) {
        use rustls::Error as E;
        let reason = match e {
            E::AlertReceived(_) => Failure::AlertReceived,
            E::PeerIncompatible(_) | E::NoApplicationProtocol => Failure::Incompatible,
            E::InvalidMessage(_)
            | E::InappropriateMessage { .. }
            | E::InappropriateHandshakeMessage { .. }
            | E::PeerMisbehaved(_)
            | E::DecryptError => Failure::BadMessage,
            _ => Failure::Other,
        };
        if handshaking {
            self.certs.files.count_failure(reason);
        }
    }

    /// Reads ciphertext until `buf` is full of plaintext or the socket has
    /// no more for now. Ok(0) is the end of stream (close_notify, or the
    /// peer closing the socket: the HTTP framing tells a cut response).
    /// Plaintext after a short socket read is returned without another
    /// read that would only say WouldBlock: the socket is drained, and as
    /// for a plain socket a new edge comes with more bytes.
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.accept()? {
            Accepting::Ready => {}
            Accepting::Blocked => return Err(ErrorKind::WouldBlock.into()),
            Accepting::Eof => return Ok(0),
        }
        let mut n = 0;
        let mut drained = false;
        loop {
            let Some(tls) = self.tls.as_mut() else {
                return Ok(n);
            };
            match tls.reader().read(&mut buf[n..]) {
                Ok(0) => return Ok(n),
                Ok(k) => {
                    n += k;
                    if n == buf.len() {
                        return Ok(n);
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                Err(e) if e.kind() == ErrorKind::UnexpectedEof => return Ok(n),
                Err(e) => return if n > 0 { Ok(n) } else { Err(e) },
            }
            if self.eof || (drained && n > 0) {
                return Ok(n);
            }
            let mut sock = Noting {
                tcp: &mut self.tcp,
                short: false,
            };
            let read = tls.read_tls(&mut sock);
            drained = sock.short;
            match read {
                Ok(0) => {
                    self.eof = true;
                    if tls.is_handshaking() {
                        self.certs.files.count_failure(Failure::Closed);
                    }
                }
                Ok(_) => {
                    let handshaking = tls.is_handshaking();
                    let state = match tls.process_new_packets() {
                        Ok(state) => state,
                        Err(e) => {
                            self.failed(&e);
                            // The alert rustls queued, if the socket takes it.
                            let _ = self.flush_tls();
                            return Err(io::Error::new(ErrorKind::InvalidData, e));
                        }
                    };
                    // Handshake answers and key updates go out now; the
                    // tickets after a handshake that ended with a request
                    // wait for its response (see `hold`).
                    self.hold =
                        handshaking && !tls.is_handshaking() && state.plaintext_bytes_to_read() > 0;
                    if !self.hold {
                        match self.flush_tls() {
                            Ok(()) => {}
                            Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                            Err(e) => return Err(e),
                        }
                    }
                    // A TLS-ALPN-01 validation ends with the handshake
                    // (RFC 8737 section 3): no HTTP on it.
                    if self.tls.as_ref().is_some_and(|t| {
                        !t.is_handshaking() && t.alpn_protocol() == Some(ACME_TLS_ALPN)
                    }) {
                        return Ok(0);
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    return if n > 0 { Ok(n) } else { Err(e) };
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return if n > 0 { Ok(n) } else { Err(e) },
            }
        }
    }

    /// Takes plaintext (as much as rustls buffers, 64 KiB) once what was
    /// queued before has gone out, and writes records while the socket
    /// takes them. `write(&[])` only flushes. Once `closing`, close_notify
    /// is queued behind the last byte taken, to leave in the same write.
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if buf.is_empty() {
            self.notify_if_closing();
        }
        // Held tickets go out with what is written now, in one write.
        if !std::mem::take(&mut self.hold) || buf.is_empty() {
            self.flush_tls()?;
        }
        if self.tls.is_none() {
            return if buf.is_empty() {
                Ok(0)
            } else {
                Err(ErrorKind::WouldBlock.into())
            };
        }
        let mut n = 0;
        while n < buf.len() {
            let Some(tls) = self.tls.as_mut() else { break };
            let k = tls.writer().write(&buf[n..])?;
            n += k;
            if n == buf.len() {
                self.notify_if_closing();
            }
            match self.flush_tls() {
                Ok(()) => {}
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) => return if n > 0 { Ok(n) } else { Err(e) },
            }
            if k == 0 {
                break;
            }
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::crypto::SecureRandom;

    #[test]
    fn pooled_random_bytes_are_handed_out_once_across_refills() {
        // 32-byte asks over several refills of the pool, and asks of odd
        // sizes that leave a remainder behind: no chunk comes twice, none
        // is left zero.
        let mut seen = std::collections::HashSet::new();
        for i in 0..200 {
            let mut chunk = [0u8; 32];
            Pooled.fill(&mut chunk).expect("random bytes");
            assert_ne!(chunk, [0; 32], "ask {i} got zeros");
            assert!(seen.insert(chunk), "ask {i} got bytes handed out before");
            let mut odd = [0u8; 7];
            Pooled.fill(&mut odd).expect("random bytes");
        }
        // More than the pool holds at once comes from the kernel directly.
        let mut big = vec![0u8; POOL + 1];
        Pooled.fill(&mut big).expect("random bytes");
        assert!(big.chunks(32).all(|c| c.iter().any(|&b| b != 0)));
    }
}
