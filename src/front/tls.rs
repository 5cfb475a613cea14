//! HTTPS in the front: the certificate store the handshakes pick from (and
//! a reload swaps), the rustls server config, and a client connection that
//! is plain or TLS, driven by the loop like any non-blocking socket.
//!
//! rustls never touches the socket by itself here: `TlsStream` feeds it
//! what a non-blocking read returns and writes out what it produced, so a
//! handshake or a record never blocks a loop. A plain connection pays one
//! enum match per read or write, as for TCP versus Unix, and nothing else.
//! Certificate files are read in `certs.rs`, off the loops.

pub mod certs;
pub mod x509;

use std::io::{self, ErrorKind, Read, Write};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use mio::event::Source;
use mio::net::TcpStream;
use mio::{Interest, Registry, Token};
use rustls::server::{ClientHello, ResolvesServerCert, ServerConfig, ServerConnection};
use rustls::sign::CertifiedKey;

use crate::net::MioStream;
use certs::CertSet;

/// Why handshakes failed, as counted for `/metrics`.
pub const FAILURE_REASONS: [&str; 5] = [
    "alert_received",
    "incompatible",
    "bad_message",
    "closed",
    "other",
];

/// The certificates every loop's handshakes use, and what a reload
/// changes without a restart. Shared by the loops (readers, once per
/// handshake) and the supervisor (writer, at a reload).
#[derive(Debug)]
pub struct Store {
    current: RwLock<Arc<CertSet>>,
    redirect_http: AtomicBool,
    /// Handshake failures by `FAILURE_REASONS` position.
    failures: [AtomicU64; FAILURE_REASONS.len()],
    /// Why the last reload could not use the certificate files, if it could not.
    last_error: Mutex<Option<String>>,
}

impl Store {
    pub fn new(set: CertSet, redirect_http: bool) -> Store {
        Store {
            current: RwLock::new(Arc::new(set)),
            redirect_http: AtomicBool::new(redirect_http),
            failures: Default::default(),
            last_error: Mutex::new(None),
        }
    }

    /// The certificates now in use.
    pub fn certs(&self) -> Arc<CertSet> {
        // A poisoned lock only means a writer panicked while swapping an
        // Arc, which cannot leave it torn.
        match self.current.read() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Puts new certificates in place: handshakes from now on use them,
    /// open connections keep what they negotiated.
    pub fn swap(&self, set: CertSet, redirect_http: bool) {
        let set = Arc::new(set);
        match self.current.write() {
            Ok(mut guard) => *guard = set,
            Err(poisoned) => *poisoned.into_inner() = set,
        }
        self.redirect_http.store(redirect_http, Ordering::Relaxed);
    }

    /// Whether plain HTTP is answered with a redirect to https.
    pub fn redirect_http(&self) -> bool {
        self.redirect_http.load(Ordering::Relaxed)
    }

    /// Handshake failures so far, by reason.
    pub fn failures(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        FAILURE_REASONS
            .iter()
            .zip(&self.failures)
            .map(|(reason, n)| (*reason, n.load(Ordering::Relaxed)))
    }

    /// Records why a reload could not use the files (None: it could).
    pub fn set_last_error(&self, error: Option<String>) {
        match self.last_error.lock() {
            Ok(mut guard) => *guard = error,
            Err(poisoned) => *poisoned.into_inner() = error,
        }
    }

    /// `GET /api/tls`: each certificate in use, with the last reload error
    /// on the certificates whose files it names. `now` is Unix seconds.
    pub fn to_json(&self, now: i64) -> serde_json::Value {
        let error = match self.last_error.lock() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        };
        let certs = self.certs();
        let list: Vec<serde_json::Value> = certs
            .certs
            .iter()
            .map(|c| {
                let (cert, key) = (
                    c.cert_path.display().to_string(),
                    c.key_path.display().to_string(),
                );
                let own_error = error
                    .as_ref()
                    .filter(|e| e.contains(&cert) || e.contains(&key));
                serde_json::json!({
                    "names": c.names,
                    "issuer": c.info.issuer,
                    "not_after": c.info.not_after,
                    "expires_in_seconds": c.info.not_after - now,
                    "source": "file",
                    "cert": cert,
                    "key": key,
                    "last_error": own_error,
                })
            })
            .collect();
        serde_json::Value::Array(list)
    }

    fn count_failure(&self, reason: usize) {
        self.failures[reason].fetch_add(1, Ordering::Relaxed);
    }
}

impl ResolvesServerCert for Store {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.certs().pick(hello.server_name()).key.clone())
    }
}

/// The rustls config of the HTTPS listeners: TLS 1.3 and 1.2 with ring,
/// no client certificates, ALPN `http/1.1`, certificates from `store`.
pub fn server_config(store: Arc<Store>) -> Result<Arc<ServerConfig>, rustls::Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_cert_resolver(store);
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
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
    /// plain connection.
    pub fn has_pending(&self) -> bool {
        match self {
            Client::Plain(_) => false,
            Client::Tls(t) => t.tls.wants_write(),
        }
    }

    /// Before closing: a TLS connection says close_notify (best effort,
    /// never blocking).
    pub fn close_notify(&mut self) {
        if let Client::Tls(t) = self {
            t.tls.send_close_notify();
            let _ = t.flush_tls();
        }
    }
}

impl Read for Client {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Client::Plain(s) => s.read(buf),
            Client::Tls(t) => t.read(buf),
        }
    }
}

impl Write for Client {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Client::Plain(s) => s.write(buf),
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
    tls: ServerConnection,
    store: Arc<Store>,
    /// The socket said end of stream.
    eof: bool,
}

impl TlsStream {
    pub fn new(
        tcp: TcpStream,
        config: Arc<ServerConfig>,
        store: Arc<Store>,
    ) -> io::Result<TlsStream> {
        let tls = ServerConnection::new(config).map_err(io::Error::other)?;
        Ok(TlsStream {
            tcp,
            tls,
            store,
            eof: false,
        })
    }

    /// Writes out what rustls has queued. Err(WouldBlock) when the socket
    /// is full with bytes still queued.
    fn flush_tls(&mut self) -> io::Result<()> {
        while self.tls.wants_write() {
            match self.tls.write_tls(&mut self.tcp) {
                Ok(0) => return Err(ErrorKind::WriteZero.into()),
                Ok(_) => {}
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Counts a handshake failure.
    fn failed(&self, e: &rustls::Error) {
        use rustls::Error as E;
        let reason = match e {
            E::AlertReceived(_) => 0,
            E::PeerIncompatible(_) | E::NoApplicationProtocol => 1,
            E::InvalidMessage(_)
            | E::InappropriateMessage { .. }
            | E::InappropriateHandshakeMessage { .. }
            | E::PeerMisbehaved(_)
            | E::DecryptError => 2,
            _ => 4,
        };
        if self.tls.is_handshaking() {
            self.store.count_failure(reason);
        }
    }

    /// Reads ciphertext until `buf` is full of plaintext or the socket has
    /// no more for now. Ok(0) is the end of stream (close_notify, or the
    /// peer closing the socket: the HTTP framing tells a cut response).
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut n = 0;
        loop {
            match self.tls.reader().read(&mut buf[n..]) {
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
            if self.eof {
                return Ok(n);
            }
            match self.tls.read_tls(&mut self.tcp) {
                Ok(0) => {
                    self.eof = true;
                    if self.tls.is_handshaking() {
                        self.store.count_failure(3);
                    }
                }
                Ok(_) => {
                    if let Err(e) = self.tls.process_new_packets() {
                        self.failed(&e);
                        // The alert rustls queued, if the socket takes it.
                        let _ = self.flush_tls();
                        return Err(io::Error::new(ErrorKind::InvalidData, e));
                    }
                    // Handshake answers and key updates go out now.
                    match self.flush_tls() {
                        Ok(()) => {}
                        Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                        Err(e) => return Err(e),
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
    /// takes them. `write(&[])` only flushes.
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.flush_tls()?;
        let mut n = 0;
        while n < buf.len() {
            let k = self.tls.writer().write(&buf[n..])?;
            n += k;
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
