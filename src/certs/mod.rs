//! The certificates handshakes are answered with: the files of
//! `[settings.tls]` (`files.rs` reads and checks them, `x509.rs` reads
//! what a certificate says), ACME's issued ones, and the `Store` every
//! front loop picks from in its handshakes (rustls' `ResolvesServerCert`)
//! and a reload swaps. Shared by the server (start), the supervisor
//! (reload), ACME (which names files cover, what it issued) and the
//! front (handshakes, `GET /api/tls`, `/metrics`), so it belongs to none
//! of them.
//!
//! Reading files blocks: only the server at start and the supervisor at a
//! reload do it, never a front loop. A handshake takes a read lock and
//! clones an `Arc`.

pub mod files;
pub mod x509;

pub use files::{load, CertSet};

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use crate::acme::shared::{Shared, ACME_TLS_ALPN};

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
    /// ACME's certificates and challenge answers, with `acme_*` set.
    acme: Option<Arc<Shared>>,
}

impl Store {
    pub fn new(set: CertSet, redirect_http: bool) -> Store {
        Store {
            current: RwLock::new(Arc::new(set)),
            redirect_http: AtomicBool::new(redirect_http),
            failures: Default::default(),
            last_error: Mutex::new(None),
            acme: None,
        }
    }

    /// The same store answering from ACME's certificates too.
    pub fn with_acme(mut self, acme: Arc<Shared>) -> Store {
        self.acme = Some(acme);
        self
    }

    /// ACME's shared state, with `acme_*` set.
    pub fn acme(&self) -> Option<&Arc<Shared>> {
        self.acme.as_ref()
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
        let mut list: Vec<serde_json::Value> = certs
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
        if let Some(acme) = &self.acme {
            list.extend(acme.to_json(now));
        }
        serde_json::Value::Array(list)
    }

    /// Counts a handshake failure by `FAILURE_REASONS` position.
    pub fn count_failure(&self, reason: usize) {
        self.failures[reason].fetch_add(1, Ordering::Relaxed);
    }
}

impl ResolvesServerCert for Store {
    /// A file certificate covering the name, else ACME's for it, else the
    /// fallback; none (an alert) for a TLS-ALPN-01 probe without a pending
    /// challenge and, on demand, for an instance host without a certificate.
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let name = hello.server_name();
        let Some(acme) = &self.acme else {
            return self.certs().pick(name).map(|c| c.key.clone());
        };
        if offers_acme_alpn(&hello) {
            return name.and_then(|n| acme.alpn_cert(n));
        }
        let certs = self.certs();
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
pub fn offers_acme_alpn(hello: &ClientHello<'_>) -> bool {
    hello
        .alpn()
        .is_some_and(|mut protocols| protocols.any(|p| p == ACME_TLS_ALPN))
}
