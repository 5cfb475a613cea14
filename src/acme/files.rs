//! ACME's files under `{data_dir}/.tenement/acme/` (folder 0700, files
//! 0600): `account.key` (PKCS#8 PEM), and per host name `NAME.crt` (the
//! PEM chain as downloaded) with `NAME.key` (its PKCS#8 PEM key).
//!
//! Blocking file I/O: the server calls `load_all` at start, the ACME
//! thread the rest. Writes are atomic (`state::atomic`).

use std::fs::DirBuilder;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;

use super::jws::{self, Key};
use crate::certs::x509;

/// `{data_dir}/.tenement/acme`.
pub fn dir(data_dir: &Path) -> PathBuf {
    crate::state::layout::internal_dir(data_dir).join("acme")
}

/// Creates the folder 0700 (and sets it back to 0700 when found looser).
pub fn ensure_dir(data_dir: &Path) -> Result<PathBuf, String> {
    let dir = dir(data_dir);
    DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)
        .map_err(|e| format!("create {}: {e}", dir.display()))?;
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))
        .map_err(|e| format!("chmod {}: {e}", dir.display()))?;
    Ok(dir)
}

fn write(path: &Path, text: &str) -> Result<(), String> {
    crate::state::atomic::write(path, text.as_bytes(), 0o600).map_err(|e| e.to_string())
}

/// The account key, made and saved on first use.
pub fn account_key(data_dir: &Path) -> Result<Key, String> {
    let path = ensure_dir(data_dir)?.join("account.key");
    match std::fs::read(&path) {
        Ok(pem) => {
            let der = PrivateKeyDer::from_pem_slice(&pem)
                .map_err(|e| format!("{}: {e:?}", path.display()))?;
            Key::from_pkcs8(der.secret_der()).map_err(|e| format!("{}: {e}", path.display()))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key = Key::generate().map_err(|e| e.0)?;
            write(&path, &jws::pem("PRIVATE KEY", key.pkcs8()))?;
            Ok(key)
        }
        Err(e) => Err(format!("read {}: {e}", path.display())),
    }
}

/// A certificate ready for handshakes, with what `GET /api/tls` shows.
#[derive(Debug)]
pub struct Stored {
    pub name: String,
    pub key: Arc<CertifiedKey>,
    pub info: x509::Info,
}

/// Saves a downloaded chain and its key for `name`, and returns it loaded.
pub fn save(data_dir: &Path, name: &str, chain_pem: &str, key: &Key) -> Result<Stored, String> {
    let stored = parse(
        name,
        chain_pem.as_bytes(),
        &jws::pem("PRIVATE KEY", key.pkcs8()),
    )?;
    let dir = ensure_dir(data_dir)?;
    // The key first: a crash between the two leaves the old certificate
    // with a key that does not match, which `load_all` skips (and the
    // name is ordered again), never a new certificate without its key.
    write(
        &dir.join(format!("{name}.key")),
        &jws::pem("PRIVATE KEY", key.pkcs8()),
    )?;
    write(&dir.join(format!("{name}.crt")), chain_pem)?;
    Ok(stored)
}

/// Removes `name`'s certificate and key.
pub fn remove(data_dir: &Path, name: &str) {
    let dir = dir(data_dir);
    for ext in ["crt", "key"] {
        let _ = std::fs::remove_file(dir.join(format!("{name}.{ext}")));
    }
}

/// Every stored certificate whose files read and match. Ones that do not
/// are logged and left out (they are ordered again).
pub fn load_all(data_dir: &Path) -> Vec<Stored> {
    let dir = dir(data_dir);
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for entry in entries.flatten() {
        let file = entry.file_name().to_string_lossy().into_owned();
        let Some(name) = file.strip_suffix(".crt") else {
            continue;
        };
        let cert = std::fs::read(entry.path());
        let key = std::fs::read(dir.join(format!("{name}.key")));
        let loaded = match (cert, key) {
            (Ok(cert), Ok(key)) => parse(name, &cert, &String::from_utf8_lossy(&key)),
            (Err(e), _) | (_, Err(e)) => Err(e.to_string()),
        };
        match loaded {
            Ok(s) => out.push(s),
            Err(e) => warn!("acme", "{}/{name}.crt left out: {e}", dir.display()),
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// A PEM chain and PEM key, checked to belong together.
fn parse(name: &str, chain_pem: &[u8], key_pem: &str) -> Result<Stored, String> {
    let chain = CertificateDer::pem_slice_iter(chain_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("not valid PEM: {e:?}"))?;
    let first = chain.first().ok_or("no CERTIFICATE block")?;
    let info = x509::read(first).map_err(|e| e.to_string())?;
    let key =
        PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).map_err(|e| format!("key: {e:?}"))?;
    let provider = rustls::crypto::ring::default_provider();
    let key = CertifiedKey::from_der(chain, key, &provider).map_err(|e| e.to_string())?;
    Ok(Stored {
        name: name.to_string(),
        key: Arc::new(key),
        info,
    })
}
