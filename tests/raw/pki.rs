//! Certificates made with `openssl` at test time (a CA, and leaves with
//! ECDSA P-256, P-384 or RSA keys in the PEM forms the front reads), and a
//! rustls client trusting such a CA. Shared by tests/tls.rs and the tests
//! that run over TLS as well as plain HTTP (`raw::Over::Tls`).
#![allow(dead_code)]

use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};

use crate::util::*;

/// A private key kind and the PEM form it is written in.
#[derive(Clone, Copy)]
pub enum Key {
    P256Sec1,
    P384Pkcs8,
    RsaPkcs1,
}

/// A folder of certificates made with openssl.
pub struct Pki {
    pub dir: Scratch,
}

impl Pki {
    pub fn new(name: &str) -> Option<Pki> {
        if !tools_present(&["openssl", "curl", "python3"]) {
            return None;
        }
        Some(Pki {
            dir: Scratch::new(name),
        })
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path(name)
    }

    pub fn openssl(&self, args: &[&str]) {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(&self.dir.root)
            .output()
            .expect("run openssl");
        assert!(
            out.status.success(),
            "openssl {}\n{}",
            args.join(" "),
            describe(&out)
        );
    }

    /// A CA: `{name}.pem` and `{name}.key`.
    pub fn ca(&self, name: &str) -> PathBuf {
        let (pem, key) = (format!("{name}.pem"), format!("{name}.key"));
        self.openssl(&[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            &key,
            "-out",
            &pem,
            "-days",
            "2",
            "-subj",
            &format!("/CN={name}"),
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign",
        ]);
        self.path(&pem)
    }

    /// A server certificate for `names` (IP addresses become IP entries)
    /// signed by CA `ca`: `{name}.pem` (the
    /// chain: leaf then CA) and `{name}.key` in the form `kind` says.
    pub fn leaf(&self, ca: &str, name: &str, names: &[&str], kind: Key) -> (PathBuf, PathBuf) {
        let pkcs8 = format!("{name}.pkcs8");
        match kind {
            Key::P256Sec1 => self.openssl(&[
                "genpkey",
                "-algorithm",
                "EC",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-out",
                &pkcs8,
            ]),
            Key::P384Pkcs8 => self.openssl(&[
                "genpkey",
                "-algorithm",
                "EC",
                "-pkeyopt",
                "ec_paramgen_curve:P-384",
                "-out",
                &pkcs8,
            ]),
            Key::RsaPkcs1 => self.openssl(&[
                "genpkey",
                "-algorithm",
                "RSA",
                "-pkeyopt",
                "rsa_keygen_bits:2048",
                "-out",
                &pkcs8,
            ]),
        }
        let key = format!("{name}.key");
        match kind {
            Key::P256Sec1 => self.openssl(&["ec", "-in", &pkcs8, "-out", &key]),
            Key::P384Pkcs8 => self.openssl(&["pkey", "-in", &pkcs8, "-out", &key]),
            Key::RsaPkcs1 => self.openssl(&["rsa", "-in", &pkcs8, "-traditional", "-out", &key]),
        }
        let header = match kind {
            Key::P256Sec1 => "BEGIN EC PRIVATE KEY",
            Key::P384Pkcs8 => "BEGIN PRIVATE KEY",
            Key::RsaPkcs1 => "BEGIN RSA PRIVATE KEY",
        };
        let text = std::fs::read_to_string(self.path(&key)).expect("read key");
        assert!(text.contains(header), "{key} is not {header}: {text}");
        let san: Vec<String> = names
            .iter()
            .map(|n| match n.parse::<std::net::IpAddr>() {
                Ok(_) => format!("IP:{n}"),
                Err(_) => format!("DNS:{n}"),
            })
            .collect();
        let csr = format!("{name}.csr");
        let leaf = format!("{name}.leaf");
        self.openssl(&[
            "req",
            "-new",
            "-key",
            &key,
            "-out",
            &csr,
            "-subj",
            &format!("/CN={}", names[0]),
            "-addext",
            &format!("subjectAltName={}", san.join(",")),
        ]);
        self.openssl(&[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            &format!("{ca}.pem"),
            "-CAkey",
            &format!("{ca}.key"),
            "-CAcreateserial",
            "-days",
            "2",
            "-copy_extensions",
            "copy",
            "-out",
            &leaf,
        ]);
        let chain = [
            std::fs::read_to_string(self.path(&leaf)).expect("leaf"),
            std::fs::read_to_string(self.path(&format!("{ca}.pem"))).expect("ca"),
        ]
        .concat();
        let pem = self.dir.write(&format!("{name}.pem"), &chain);
        (pem, self.path(&key))
    }
}

/// A rustls client trusting `ca`, offering ALPN http/1.1.
pub fn client_config(ca: &std::path::Path) -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca).expect("open CA") {
        roots.add(cert.expect("CA PEM")).expect("add CA");
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(config)
}

pub type Tls = StreamOwned<ClientConnection, TcpStream>;

/// A TLS connection to `addr` for server name `name`, handshake done.
pub fn tls_connect(addr: SocketAddr, name: &str, config: Arc<ClientConfig>) -> Tls {
    let tcp = TcpStream::connect(addr).expect("connect");
    tcp.set_read_timeout(Some(super::READ_TIMEOUT))
        .expect("timeout");
    let name = ServerName::try_from(name.to_string()).expect("server name");
    let conn = ClientConnection::new(config, name).expect("client connection");
    let mut tls = StreamOwned::new(conn, tcp);
    while tls.conn.is_handshaking() {
        tls.conn.complete_io(&mut tls.sock).expect("TLS handshake");
    }
    tls
}
