//! A small blocking HTTPS client for talking to the ACME server: rustls
//! over a std `TcpStream` with timeouts, one request per connection
//! (`Connection: close`), trust roots from the system bundle plus
//! `acme_ca_root`.
//!
//! Runs only on the ACME thread; it blocks on the network by design.
//! Response heads are parsed by `crate::http`, chunked bodies decoded by
//! its `Framer`.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};

use crate::http::body::Framer;
use crate::http::head::{parse_response, BodyKind};

/// Connect, read and write timeout of one request.
const TIMEOUT: Duration = Duration::from_secs(30);
/// Largest response accepted (a certificate chain is a few KiB).
const MAX_RESPONSE: usize = 1 << 20;

/// Where systems keep their CA bundle (Debian, Fedora, Alpine, ...).
const SYSTEM_BUNDLES: [&str; 4] = [
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/cert.pem",
    "/etc/ssl/ca-bundle.pem",
];

/// A response.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    /// Header names lowercased.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    /// The first header named `name` (lowercase).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// The client: a rustls config with its trust roots.
#[derive(Debug, Clone)]
pub struct Client {
    config: Arc<ClientConfig>,
}

impl Client {
    /// Trusts the system bundle (the first found) and `extra_root`. An
    /// unreadable `extra_root` is an error; a missing system bundle is not
    /// (a private CA may be all there is).
    pub fn new(extra_root: Option<&Path>) -> Result<Client, String> {
        let mut roots = RootCertStore::empty();
        if let Some(bundle) = SYSTEM_BUNDLES.iter().map(Path::new).find(|p| p.exists()) {
            if let Ok(certs) = CertificateDer::pem_file_iter(bundle) {
                roots.add_parsable_certificates(certs.flatten());
            }
        }
        if let Some(path) = extra_root {
            let certs = CertificateDer::pem_file_iter(path)
                .map_err(|e| format!("cannot read {}: {e:?}", path.display()))?
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| format!("{}: not valid PEM: {e:?}", path.display()))?;
            if certs.is_empty() {
                return Err(format!("{}: no CERTIFICATE block", path.display()));
            }
            let (added, _) = roots.add_parsable_certificates(certs);
            if added == 0 {
                return Err(format!("{}: no usable CA certificate", path.display()));
            }
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(Client {
            config: Arc::new(config),
        })
    }

    /// One request. `body` is sent as `application/jose+json`. An error
    /// says what failed (connect, TLS, a cut response) in words.
    pub fn request(
        &self,
        method: &str,
        url: &str,
        body: Option<&[u8]>,
    ) -> Result<Response, String> {
        let (host, port, target) = split_url(url)?;
        let addrs: Vec<_> = (host.as_str(), port)
            .to_socket_addrs()
            .map_err(|e| format!("resolve {host}: {e}"))?
            .collect();
        let mut last = format!("resolve {host}: no address");
        let mut tcp = None;
        for addr in addrs {
            match TcpStream::connect_timeout(&addr, TIMEOUT) {
                Ok(s) => {
                    tcp = Some(s);
                    break;
                }
                Err(e) => last = format!("connect to {addr}: {e}"),
            }
        }
        let tcp = tcp.ok_or(last)?;
        tcp.set_read_timeout(Some(TIMEOUT))
            .and_then(|()| tcp.set_write_timeout(Some(TIMEOUT)))
            .map_err(|e| e.to_string())?;
        let name = ServerName::try_from(host.clone()).map_err(|e| format!("{host}: {e}"))?;
        let conn = ClientConnection::new(self.config.clone(), name).map_err(|e| e.to_string())?;
        let mut tls = StreamOwned::new(conn, tcp);
        let authority = match (port, host.contains(':')) {
            (443, false) => host.clone(),
            (443, true) => format!("[{host}]"),
            (p, false) => format!("{host}:{p}"),
            (p, true) => format!("[{host}]:{p}"),
        };
        let mut head = format!(
            "{method} {target} HTTP/1.1\r\nHost: {authority}\r\nUser-Agent: ten/{}\r\nAccept: */*\r\nConnection: close\r\n",
            env!("CARGO_PKG_VERSION")
        );
        if let Some(b) = body {
            head.push_str(&format!(
                "Content-Type: application/jose+json\r\nContent-Length: {}\r\n",
                b.len()
            ));
        }
        head.push_str("\r\n");
        let mut out = head.into_bytes();
        out.extend_from_slice(body.unwrap_or_default());
        tls.write_all(&out)
            .and_then(|()| tls.flush())
            .map_err(|e| format!("{method} {url}: {e}"))?;
        let mut raw = Vec::new();
        let mut buf = [0u8; 16 * 1024];
        loop {
            match tls.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    raw.extend_from_slice(&buf[..n]);
                    if raw.len() > MAX_RESPONSE {
                        return Err(format!("{method} {url}: response over 1 MiB"));
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                // Servers that close without close_notify: the framing
                // below tells a complete response from a cut one.
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
                Err(e) => return Err(format!("{method} {url}: {e}")),
            }
        }
        parse(&raw, method == "HEAD").map_err(|e| format!("{method} {url}: {e}"))
    }
}

/// `https://host[:port]/path` to (host, port, path).
fn split_url(url: &str) -> Result<(String, u16, String), String> {
    let rest = url
        .strip_prefix("https://")
        .ok_or_else(|| format!("{url}: not an https:// URL"))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || h.starts_with('[') => (
            h,
            p.parse::<u16>()
                .map_err(|_| format!("{url}: bad port {p:?}"))?,
        ),
        _ => (authority, 443),
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        return Err(format!("{url}: no host"));
    }
    Ok((host.to_string(), port, path.to_string()))
}

/// A whole response read to the end of the connection.
fn parse(raw: &[u8], head_request: bool) -> Result<Response, String> {
    let mut rest = raw;
    let (head, used) = loop {
        match parse_response(rest, head_request) {
            Ok(Some((head, used))) if (100..200).contains(&head.status) => rest = &rest[used..],
            Ok(Some(found)) => break found,
            Ok(None) => return Err("the connection closed before a whole response head".into()),
            Err(e) => return Err(e.to_string()),
        }
    };
    let rest = &rest[used..];
    let body = match head.body {
        BodyKind::None => Vec::new(),
        BodyKind::Length(n) => {
            let n = usize::try_from(n).unwrap_or(usize::MAX);
            if rest.len() < n {
                return Err("the connection closed before the body ended".into());
            }
            rest[..n].to_vec()
        }
        BodyKind::Chunked => {
            let mut framer = Framer::new(BodyKind::Chunked);
            let mut out = Vec::new();
            let scan = framer.decode(rest, &mut out).map_err(|e| e.to_string())?;
            if !scan.done {
                return Err("the connection closed before the last chunk".into());
            }
            out
        }
        BodyKind::Close => rest.to_vec(),
    };
    let headers = head
        .fields()
        .pairs()
        .map(|(name, value)| {
            (
                name.to_ascii_lowercase(),
                String::from_utf8_lossy(value).into_owned(),
            )
        })
        .collect();
    Ok(Response {
        status: head.status,
        headers,
        body,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_split_into_host_port_and_path() {
        assert_eq!(
            split_url("https://acme.test/dir").expect("url"),
            ("acme.test".into(), 443, "/dir".into())
        );
        assert_eq!(
            split_url("https://127.0.0.1:14000/dir?x=1").expect("url"),
            ("127.0.0.1".into(), 14000, "/dir?x=1".into())
        );
        assert_eq!(
            split_url("https://[::1]:8443").expect("url"),
            ("::1".into(), 8443, "/".into())
        );
        assert!(split_url("http://plain.test/").is_err());
        assert!(split_url("https://h:x/").is_err());
        assert!(split_url("https:///").is_err());
    }

    #[test]
    fn responses_by_every_framing_with_headers() {
        let r = parse(
            b"HTTP/1.1 201 Created\r\nReplay-Nonce: abc\r\nLocation: https://x/o/1\r\nContent-Length: 2\r\n\r\n{}",
            false,
        )
        .expect("parse");
        assert_eq!(r.status, 201);
        assert_eq!(r.header("replay-nonce"), Some("abc"));
        assert_eq!(r.header("location"), Some("https://x/o/1"));
        assert_eq!(r.body, b"{}");
        let r = parse(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
            false,
        )
        .expect("parse");
        assert_eq!(r.body, b"abc");
        let r = parse(b"HTTP/1.1 200 OK\r\n\r\nto the end", false).expect("parse");
        assert_eq!(r.body, b"to the end");
        assert!(parse(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nshort", false).is_err());
        assert!(parse(b"HTTP/1.1 200", false).is_err());
    }
}
