//! Where the API is and how to get a byte stream to it: `--server` URLs
//! (`http://` and `https://`), the local socket, blocking TCP connects with
//! a timeout, and TLS over them with rustls, verified against the system's
//! CA bundle or `--cacert FILE`. The error wording for all of it.
//!
//! Owns no HTTP: request and response bytes are `wire.rs`'s, what to send
//! and the token are `client.rs`'s. Blocking std sockets only.

use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream, ToSocketAddrs};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};

use super::client::ClientError;
use crate::net::{StdStream, Stream};

/// How long a TCP connect (and the TLS handshake after it) may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// The system's CA bundle (Debian, Ubuntu, Alpine, Arch), and the folder
/// of single certificates tried when it is absent.
const SYSTEM_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";
const SYSTEM_DIR: &str = "/etc/ssl/certs";

/// Where the API is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    Tcp(HttpUrl),
    Unix(PathBuf),
}

/// An `http[s]://host:port/prefix` URL, taken apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpUrl {
    /// `https://`: TLS, verified.
    pub tls: bool,
    /// Host name or IP, without brackets for IPv6.
    pub host: String,
    pub port: u16,
    /// The `Host` header value: the authority as written.
    pub authority: String,
    /// A path prefix without a trailing slash ("" for none).
    pub prefix: String,
}

impl HttpUrl {
    /// The URL as errors show it.
    pub fn display(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}{}", self.authority, self.prefix)
    }
}

/// Parses `--server`: `http://` or `https://`; a missing scheme means http.
pub fn parse_url(url: &str) -> Result<HttpUrl, ClientError> {
    let bad = |reason| ClientError::BadUrl {
        url: url.to_string(),
        reason,
    };
    let trimmed = url.trim();
    let lower = trimmed.to_ascii_lowercase();
    let (tls, rest) = if lower.starts_with("https://") {
        (true, &trimmed["https://".len()..])
    } else if lower.starts_with("http://") {
        (false, &trimmed["http://".len()..])
    } else if trimmed.contains("://") {
        return Err(bad("only http:// and https:// are supported"));
    } else {
        (false, trimmed)
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
        None if tls => 443,
        None => 80,
        Some(p) => p
            .parse::<u16>()
            .ok()
            .filter(|&p| p != 0)
            .ok_or_else(|| bad("bad port"))?,
    };
    Ok(HttpUrl {
        tls,
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

/// A connected stream to the API: plain TCP or Unix, or TLS over TCP.
pub enum Conn {
    Plain(StdStream),
    Tls(Box<StreamOwned<ClientConnection, TcpStream>>),
}

impl Conn {
    /// Sets the read and write timeouts of the socket underneath.
    pub fn set_timeouts(&self, read: Duration, write: Duration) -> io::Result<()> {
        match self {
            Conn::Plain(s) => s.set_timeouts(read, write),
            Conn::Tls(s) => set_tcp_timeouts(&s.sock, read, write),
        }
    }
}

fn set_tcp_timeouts(s: &TcpStream, read: Duration, write: Duration) -> io::Result<()> {
    s.set_read_timeout(Some(read))?;
    s.set_write_timeout(Some(write))
}

impl Read for Conn {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Conn::Plain(s) => s.read(buf),
            // A server that closes without close_notify ends the stream as
            // a plain one would; bodies are framed, so a cut one is still
            // caught by the reader.
            Conn::Tls(s) => match s.read(buf) {
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(0),
                other => other,
            },
        }
    }
}

impl Write for Conn {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Conn::Plain(s) => s.write(buf),
            Conn::Tls(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Conn::Plain(s) => s.flush(),
            Conn::Tls(s) => s.flush(),
        }
    }
}

/// Connects to `url` (TLS when `https://`, verified against `cacert` or the
/// system's CAs, the handshake done before returning), or to the socket.
pub fn connect(endpoint: &Endpoint, cacert: Option<&Path>) -> Result<Conn, ClientError> {
    match endpoint {
        Endpoint::Unix(sock) => UnixStream::connect(sock)
            .map(|s| Conn::Plain(Stream::Unix(s)))
            .map_err(|e| unreachable_error(&format!("unix:{}", sock.display()), &e)),
        Endpoint::Tcp(url) if !url.tls => connect_tcp(url).map(|s| Conn::Plain(Stream::Tcp(s))),
        Endpoint::Tcp(url) => {
            let server = url.display();
            let config = tls_config(cacert).map_err(|reason| ClientError::Unreachable {
                server: server.clone(),
                reason,
            })?;
            let name = ServerName::try_from(url.host.clone()).map_err(|_| ClientError::BadUrl {
                url: server.clone(),
                reason: "the host is not a name TLS can verify",
            })?;
            let mut tcp = connect_tcp(url)?;
            set_tcp_timeouts(&tcp, CONNECT_TIMEOUT, CONNECT_TIMEOUT)
                .map_err(|e| unreachable_error(&server, &e))?;
            let mut tls =
                ClientConnection::new(config, name).map_err(|e| ClientError::Unreachable {
                    server: server.clone(),
                    reason: format!("TLS: {e}"),
                })?;
            while tls.is_handshaking() {
                if let Err(e) = tls.complete_io(&mut tcp) {
                    return Err(ClientError::Unreachable {
                        server,
                        reason: handshake_reason(&e, cacert),
                    });
                }
            }
            Ok(Conn::Tls(Box::new(StreamOwned::new(tls, tcp))))
        }
    }
}

/// A failed handshake in the operator's words, with what to do about an
/// untrusted certificate.
fn handshake_reason(e: &io::Error, cacert: Option<&Path>) -> String {
    let Some(tls) = e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) else {
        return format!("TLS handshake: {}", io_reason(e));
    };
    let trusted_by = match cacert {
        Some(path) => format!("the CA in {}", path.display()),
        None => format!("the system's CAs ({SYSTEM_BUNDLE})"),
    };
    match tls {
        rustls::Error::InvalidCertificate(why) => format!(
            "TLS: the server's certificate is not trusted ({why:?}); checked against {trusted_by}; \
             pass --cacert FILE with the CA that signed it"
        ),
        other => format!("TLS handshake: {other}"),
    }
}

/// The client TLS setup: ring, TLS 1.2 and 1.3, ALPN http/1.1, roots from
/// `cacert` (PEM, one or more certificates) or from the system.
fn tls_config(cacert: Option<&Path>) -> Result<Arc<ClientConfig>, String> {
    let mut roots = RootCertStore::empty();
    match cacert {
        Some(path) => {
            let pem = std::fs::read(path).map_err(|e| {
                format!("cannot read --cacert {}: {}", path.display(), io_reason(&e))
            })?;
            add_pem(&mut roots, &pem);
            if roots.is_empty() {
                return Err(format!(
                    "--cacert {}: no PEM certificate in it",
                    path.display()
                ));
            }
        }
        None => {
            match std::fs::read(SYSTEM_BUNDLE) {
                Ok(pem) => add_pem(&mut roots, &pem),
                Err(_) => {
                    for entry in std::fs::read_dir(SYSTEM_DIR)
                        .into_iter()
                        .flatten()
                        .flatten()
                    {
                        if let Ok(pem) = std::fs::read(entry.path()) {
                            add_pem(&mut roots, &pem);
                        }
                    }
                }
            }
            if roots.is_empty() {
                return Err(format!(
                    "no CA certificates found in {SYSTEM_BUNDLE} or {SYSTEM_DIR}/ to verify the server with; pass --cacert FILE"
                ));
            }
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Adds every certificate of a PEM text a root store takes; others (and
/// anything else in the text) are skipped.
fn add_pem(roots: &mut RootCertStore, pem: &[u8]) {
    for cert in CertificateDer::pem_slice_iter(pem).flatten() {
        let _ = roots.add(cert);
    }
}

fn connect_tcp(url: &HttpUrl) -> Result<TcpStream, ClientError> {
    let server = url.display();
    let addrs = (url.host.as_str(), url.port)
        .to_socket_addrs()
        .map_err(|e| ClientError::Unreachable {
            server: server.clone(),
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
        Some(e) => unreachable_error(&server, &e),
        None => ClientError::Unreachable {
            server,
            reason: format!("{} resolves to no address", url.host),
        },
    })
}

pub fn unreachable_error(server: &str, e: &io::Error) -> ClientError {
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

pub fn io_error(server: &str, e: &io::Error, after: Duration) -> ClientError {
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
    fn https_urls_are_tls_on_443_by_default() {
        let u = url("https://Example.com/ten/");
        assert!(u.tls);
        assert_eq!(
            (u.host.as_str(), u.port, u.prefix.as_str()),
            ("Example.com", 443, "/ten")
        );
        assert_eq!(u.display(), "https://Example.com/ten");
        let u = url("HTTPS://127.0.0.1:8443");
        assert!(u.tls && u.port == 8443);
        assert!(!url("http://h").tls && !url("h:1").tls);
    }

    #[test]
    fn bad_urls_are_refused_with_a_reason() {
        let e = parse_url("ftp://example.com").unwrap_err().to_string();
        assert!(e.contains("only http:// and https://"), "{e}");
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
    fn refused_connection_says_how_to_fix_it() {
        use crate::cli::client::Client;
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
    fn a_missing_or_empty_cacert_is_named() {
        let e = tls_config(Some(Path::new("/nonexistent/ca.pem"))).unwrap_err();
        assert!(
            e.contains("cannot read --cacert /nonexistent/ca.pem"),
            "{e}"
        );
        let e = tls_config(Some(Path::new("/dev/null"))).unwrap_err();
        assert!(e.contains("no PEM certificate"), "{e}");
    }

    #[test]
    fn io_reasons_drop_the_os_error_suffix() {
        let e = io::Error::from_raw_os_error(libc::EACCES);
        assert_eq!(io_reason(&e), "permission denied");
    }
}
