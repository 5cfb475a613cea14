//! The certificate files handshakes are answered with: the files of
//! `[settings.tls]` (`files.rs` reads and checks them, `x509.rs` reads
//! what a certificate says), and the `Store` every front loop picks from
//! in its handshakes and a reload swaps. Shared by the server (start), the
//! supervisor (reload), ACME (which names files cover; `x509` for what it
//! issued) and the front (handshakes, `GET /api/tls`, `/metrics`), so it
//! belongs to none of them, and imports none of them: ACME's certificates
//! join the files' in the front's resolver (`front::tls::Certs`).
//!
//! Reading files blocks: only the server at start and the supervisor at a
//! reload do it, never a front loop. A handshake takes a read lock and
//! clones an `Arc`.

pub mod files;
pub mod x509;

pub use files::{load, CertSet};

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

/// Why a handshake failed, as counted for `/metrics`: each reason's
/// counter is at its place in `FAILURE_REASONS`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// The client sent an alert.
    AlertReceived,
    /// No protocol version, cipher suite or ALPN protocol in common.
    Incompatible,
    /// A record or handshake message that is malformed or out of place.
    BadMessage,
    /// The client closed the connection mid-handshake.
    Closed,
    Other,
}

/// The label of each `Failure`, in the order of its variants.
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

    /// `GET /api/tls`: each certificate file in use, with the last reload
    /// error on the certificates whose files it names. `now` is Unix seconds.
    pub fn to_json(&self, now: i64) -> Vec<serde_json::Value> {
        let error = match self.last_error.lock() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        };
        self.certs()
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
            .collect()
    }

    /// Counts a handshake failure.
    pub fn count_failure(&self, reason: Failure) {
        self.failures[reason as usize].fetch_add(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_failure_is_counted_under_its_own_label() {
        let store = Store::new(CertSet::new(Vec::new(), "example.com"), false);
        let each = [
            (Failure::AlertReceived, "alert_received"),
            (Failure::Incompatible, "incompatible"),
            (Failure::BadMessage, "bad_message"),
            (Failure::Closed, "closed"),
            (Failure::Other, "other"),
        ];
        // A different count for each reason: 1 to 5.
        for (times, (reason, _)) in each.iter().enumerate() {
            for _ in 0..=times {
                store.count_failure(*reason);
            }
        }
        let counted: Vec<(&str, u64)> = store.failures().collect();
        let want: Vec<(&str, u64)> = each
            .iter()
            .enumerate()
            .map(|(times, (_, label))| (*label, times as u64 + 1))
            .collect();
        assert_eq!(counted, want);
    }
}
