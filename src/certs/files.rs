//! Certificates from files: reading the PEM chain and key each
//! `[settings.tls]` entry names, checking that the key belongs to the
//! certificate, and choosing one for a handshake by its server name.
//!
//! `load` reads files and blocks: the server calls it at start and the
//! supervisor at a reload, never a front loop. Everything it finds wrong
//! is a `ConfigError` at the key that names the file. `CertSet::pick` is
//! pure and runs in the handshake.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;

use super::x509;
use crate::config::{CertFiles, ConfigError, FileRef, Tls};

/// One loaded certificate.
#[derive(Debug)]
pub struct Loaded {
    pub key: Arc<CertifiedKey>,
    /// What it is chosen for: the config's `names`, or the certificate's own.
    pub names: Vec<String>,
    /// Read from the end-entity certificate.
    pub info: x509::Info,
    pub cert_path: std::path::PathBuf,
    pub key_path: std::path::PathBuf,
}

/// Every certificate, indexed by the names they are chosen for.
#[derive(Debug)]
pub struct CertSet {
    pub certs: Vec<Loaded>,
    index: NameIndex,
}

impl CertSet {
    /// Indexes `certs` (empty when ACME provides every certificate).
    pub fn new(certs: Vec<Loaded>, domain: &str) -> CertSet {
        let index = NameIndex::new(certs.iter().map(|c| c.names.as_slice()), domain);
        CertSet { certs, index }
    }

    /// The certificate for a handshake that named `server_name` (SNI), or
    /// the fallback; None without any certificate file.
    pub fn pick(&self, server_name: Option<&str>) -> Option<&Loaded> {
        self.certs.get(self.index.pick(server_name))
    }

    /// Whether a certificate file covers `name` (exactly or by wildcard).
    pub fn covers(&self, name: &str) -> bool {
        self.index.find(&name.to_ascii_lowercase()).is_some()
    }
}

/// Host names to certificate positions.
#[derive(Debug)]
struct NameIndex {
    exact: HashMap<String, usize>,
    /// `*.example.org` is kept under `example.org`.
    wildcard: HashMap<String, usize>,
    /// For a handshake without a known server name: the certificate that
    /// covers the domain, else the first.
    fallback: usize,
}

impl NameIndex {
    /// A name listed twice goes to the first certificate that lists it.
    fn new<'a>(names: impl Iterator<Item = &'a [String]>, domain: &str) -> NameIndex {
        let mut index = NameIndex {
            exact: HashMap::new(),
            wildcard: HashMap::new(),
            fallback: 0,
        };
        for (i, list) in names.enumerate() {
            for name in list {
                let name = name.to_ascii_lowercase();
                match name.strip_prefix("*.") {
                    Some(parent) => index.wildcard.entry(parent.to_string()).or_insert(i),
                    None => index.exact.entry(name).or_insert(i),
                };
            }
        }
        index.fallback = index.find(domain).unwrap_or(0);
        index
    }

    /// Exact, then `*.` one label up.
    fn find(&self, name: &str) -> Option<usize> {
        if let Some(&i) = self.exact.get(name) {
            return Some(i);
        }
        let (_, parent) = name.split_once('.')?;
        self.wildcard.get(parent).copied()
    }

    fn pick(&self, server_name: Option<&str>) -> usize {
        server_name
            .and_then(|n| self.find(&n.to_ascii_lowercase()))
            .unwrap_or(self.fallback)
    }
}

/// Reads and checks every certificate of `tls`. Blocks on the files.
pub fn load(tls: &Tls, domain: &str) -> Result<CertSet, ConfigError> {
    let provider = rustls::crypto::ring::default_provider();
    let mut certs = Vec::with_capacity(tls.certs.len());
    for files in &tls.certs {
        certs.push(load_one(files, &provider)?);
    }
    Ok(CertSet::new(certs, domain))
}

fn load_one(
    files: &CertFiles,
    provider: &rustls::crypto::CryptoProvider,
) -> Result<Loaded, ConfigError> {
    let cert_pem = read(&files.cert)?;
    let chain = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| files.cert.error(pem_message(&files.cert.path, &e)))?;
    if chain.is_empty() {
        return Err(files.cert.error(format!(
            "{}: no CERTIFICATE block (expected a PEM certificate chain)",
            files.cert.path.display()
        )));
    }
    let info = x509::read(&chain[0]).map_err(|e| {
        files
            .cert
            .error(format!("{}: {e}", files.cert.path.display()))
    })?;
    let key_pem = read(&files.key)?;
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| match e {
        pem::Error::NoItemsFound => files.key.error(format!(
            "{}: no private key (expected PRIVATE KEY, EC PRIVATE KEY or RSA PRIVATE KEY)",
            files.key.path.display()
        )),
        e => files.key.error(pem_message(&files.key.path, &e)),
    })?;
    let key = CertifiedKey::from_der(chain, key, provider).map_err(|e| match e {
        rustls::Error::InconsistentKeys(_) => files.key.error(format!(
            "the key in {} does not match the certificate in {}",
            files.key.path.display(),
            files.cert.path.display()
        )),
        e => files
            .key
            .error(format!("{}: unusable key: {e}", files.key.path.display())),
    })?;
    let names = if files.names.is_empty() {
        info.names.clone()
    } else {
        files.names.clone()
    };
    if names.is_empty() {
        return Err(files.cert.error(format!(
            "{} names no host (no DNS name, no CN): list them in `names`",
            files.cert.path.display()
        )));
    }
    Ok(Loaded {
        key: Arc::new(key),
        names,
        info,
        cert_path: files.cert.path.clone(),
        key_path: files.key.path.clone(),
    })
}

/// The file's bytes; a missing or unreadable file is an error naming it.
fn read(file: &FileRef) -> Result<Vec<u8>, ConfigError> {
    std::fs::read(&file.path).map_err(|e| {
        let why = e.to_string();
        let why = why
            .split(" (os error")
            .next()
            .unwrap_or(&why)
            .to_lowercase();
        file.error(format!("cannot read {}: {why}", file.path.display()))
    })
}

fn pem_message(path: &Path, e: &pem::Error) -> String {
    format!("{}: not valid PEM: {e:?}", path.display())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn index(lists: &[&[&str]], domain: &str) -> NameIndex {
        let owned: Vec<Vec<String>> = lists
            .iter()
            .map(|l| l.iter().map(|n| n.to_string()).collect())
            .collect();
        NameIndex::new(owned.iter().map(Vec::as_slice), domain)
    }

    fn set() -> NameIndex {
        index(
            &[
                &["main.test"],
                &["example.org", "*.example.org"],
                &["api.example.org"],
            ],
            "example.org",
        )
    }

    #[test]
    fn exact_names_win_over_wildcards() {
        let s = set();
        assert_eq!(s.pick(Some("api.example.org")), 2);
        assert_eq!(s.pick(Some("www.example.org")), 1);
        assert_eq!(s.pick(Some("WWW.Example.org")), 1);
        assert_eq!(s.pick(Some("example.org")), 1);
        assert_eq!(s.pick(Some("main.test")), 0);
    }

    #[test]
    fn a_wildcard_covers_one_label_only() {
        let s = index(&[&["main.test"], &["*.example.org"]], "main.test");
        assert_eq!(s.pick(Some("a.example.org")), 1);
        // Neither a.b.example.org nor example.org is under *.example.org.
        assert_eq!(s.pick(Some("a.b.example.org")), 0);
        assert_eq!(s.pick(Some("example.org")), 0);
    }

    #[test]
    fn without_a_known_name_the_domains_certificate_then_the_first() {
        let s = set();
        assert_eq!(s.pick(None), 1);
        assert_eq!(s.pick(Some("unknown.test")), 1);
        let other = index(&[&["main.test"], &["b.test"]], "c.test");
        assert_eq!(other.pick(None), 0);
        // A wildcard covering the domain counts too.
        let wild = index(&[&["main.test"], &["*.example.org"]], "www.example.org");
        assert_eq!(wild.pick(None), 1);
    }
}
