//! The ACME thread: decides which names need a certificate (the domain and
//! each service's host at start, instance hosts on demand), orders them
//! one at a time, renews each when a third of its lifetime is left,
//! retries failures with exponential backoff (never sooner than the
//! server's `Retry-After`, an hour at least after a rate limit), and
//! removes on-demand certificates `acme_on_demand_keep` after their
//! instance left the registry (a sleeping instance keeps its certificate).
//!
//! A failure is logged with the server's problem document and kept for
//! `GET /api/tls`; it never touches a listener. The thread blocks on the
//! network and the disk, which is why it is a thread of its own; the
//! front only sees the results through `Shared`.

use std::collections::HashMap;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rustls::pki_types::{CertificateDer, PrivatePkcs8KeyDer};
use rustls::sign::CertifiedKey;

use super::client::{Account, AcmeError, Challenger};
use super::der;
use super::files;
use super::https::Client;
use super::jws::Key;
use super::shared::{Challenge, Shared, Source};
use crate::certs::Store;

/// First retry after a failure; doubles per failure in a row.
const BACKOFF_BASE: Duration = Duration::from_secs(30);
const BACKOFF_MAX: Duration = Duration::from_secs(24 * 3600);
/// Least wait after a rate-limit answer without `Retry-After`.
const RATE_LIMIT_WAIT: Duration = Duration::from_secs(3600);
/// Longest sleep: new services after a reload and forgotten instances are
/// noticed within this.
const WAKE: Duration = Duration::from_secs(15);

/// What the thread needs from the config.
#[derive(Debug, Clone)]
pub struct Options {
    pub directory: String,
    pub email: Option<String>,
    /// How long an on-demand certificate is kept after its instance left
    /// the registry (`acme_on_demand_keep`).
    pub keep: Duration,
}

/// One name the thread looks after.
#[derive(Debug)]
struct Entry {
    source: Source,
    /// When to order next (an order or a renewal).
    due: Instant,
    /// Failures in a row.
    failures: u32,
    /// When its instance was first seen gone (on-demand only).
    gone_since: Option<Instant>,
}

/// Loads the stored certificates into `shared`, then starts the thread.
/// `store` tells which names a certificate file already covers.
pub fn start(
    shared: Arc<Shared>,
    store: Arc<Store>,
    opts: Options,
    http: Client,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    for stored in files::load_all(&shared.data_dir) {
        shared.install(stored);
    }
    let (tx, rx) = mpsc::channel();
    shared.set_orders(tx);
    std::thread::Builder::new()
        .name("acme".into())
        .spawn(move || {
            Manager {
                shared,
                store,
                opts,
                http,
                account: None,
                entries: HashMap::new(),
            }
            .run(rx)
        })
}

struct Manager {
    shared: Arc<Shared>,
    store: Arc<Store>,
    opts: Options,
    http: Client,
    account: Option<Account>,
    entries: HashMap<String, Entry>,
}

impl Manager {
    fn run(mut self, rx: Receiver<String>) {
        loop {
            self.refresh();
            let now = Instant::now();
            // On-demand names first: a handshake is waiting for them.
            let mut due: Vec<(bool, String)> = self
                .entries
                .iter()
                .filter(|(_, e)| e.due <= now)
                .map(|(n, e)| (e.source == Source::Acme, n.clone()))
                .collect();
            due.sort();
            if let Some((_, name)) = due.first() {
                let name = name.clone();
                self.order(&name);
                // Names asked for meanwhile join before the next order.
                while let Ok(name) = rx.try_recv() {
                    self.admit(name);
                }
                continue;
            }
            // Certificates of stopped instances go when their time is up.
            let next = self
                .entries
                .values()
                .map(|e| match e.gone_since {
                    Some(t) => e.due.min(t + self.opts.keep),
                    None => e.due,
                })
                .min();
            let wait = next
                .map_or(WAKE, |d| d.saturating_duration_since(now))
                .min(WAKE);
            match rx.recv_timeout(wait) {
                Ok(name) => self.admit(name),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return,
            }
        }
    }

    /// An on-demand name the front asked for.
    fn admit(&mut self, name: String) {
        self.entries.entry(name).or_insert(Entry {
            source: Source::OnDemand,
            due: Instant::now(),
            failures: 0,
            gone_since: None,
        });
    }

    /// Adds the start names no file covers, schedules renewals of issued
    /// certificates, and removes on-demand ones whose instance is gone.
    fn refresh(&mut self) {
        let now = Instant::now();
        let files = self.store.certs();
        for name in self.shared.start_names() {
            if files.covers(&name) {
                continue;
            }
            self.entries.entry(name).or_insert(Entry {
                source: Source::Acme,
                due: now,
                failures: 0,
                gone_since: None,
            });
        }
        let issued = self.shared.issued();
        for (name, stored) in issued.iter() {
            let entry = self.entries.entry(name.clone()).or_insert_with(|| Entry {
                source: self.shared.source_of(name),
                due: now,
                failures: 0,
                gone_since: None,
            });
            if entry.failures == 0 {
                entry.due = renewal_due(stored.info.not_before, stored.info.not_after, now);
            }
        }
        let on_demand = self
            .entries
            .iter()
            .filter(|(_, e)| e.source == Source::OnDemand)
            .map(|(n, _)| n.clone());
        let gone = self
            .shared
            .forgotten(on_demand.collect::<Vec<_>>().into_iter());
        for (name, entry) in self.entries.iter_mut() {
            if entry.source != Source::OnDemand {
                continue;
            }
            if gone.contains(name) {
                entry.gone_since.get_or_insert(now);
            } else {
                entry.gone_since = None;
            }
        }
        let expired: Vec<String> = self
            .entries
            .iter()
            .filter(|(_, e)| {
                e.gone_since
                    .is_some_and(|t| now.duration_since(t) >= self.opts.keep)
            })
            .map(|(n, _)| n.clone())
            .collect();
        for name in expired {
            info!(
                "acme",
                "{name}: its instance has been gone {}s (acme_on_demand_keep): certificate removed",
                self.opts.keep.as_secs()
            );
            self.entries.remove(&name);
            self.shared.uninstall(&name);
            files::remove(&self.shared.data_dir, &name);
        }
    }

    /// Orders `name` once and schedules what comes next.
    fn order(&mut self, name: &str) {
        let Some(source) = self.entries.get(name).map(|e| e.source) else {
            return;
        };
        if !safe_name(name) {
            warn!(
                "acme",
                "{name:?} is not a host name ACME can order: skipped"
            );
            self.entries.remove(name);
            return;
        }
        info!(
            "acme",
            "ordering a certificate for {name} ({})",
            self.shared.challenge.as_str()
        );
        match self.issue(name) {
            Ok(stored) => {
                let not_after = stored.info.not_after;
                let due = renewal_due(stored.info.not_before, not_after, Instant::now());
                info!(
                    "acme",
                    "certificate for {name} issued by {}, valid until {}",
                    stored.info.issuer,
                    crate::log::format_utc(not_after.max(0) as u64, 0)
                );
                self.shared.install(stored);
                self.shared.set_status(name, source, None);
                if let Some(e) = self.entries.get_mut(name) {
                    e.failures = 0;
                    e.due = due;
                }
            }
            Err(e) => {
                let Some(entry) = self.entries.get_mut(name) else {
                    return;
                };
                entry.failures += 1;
                let wait = retry_wait(entry.failures, &e);
                // A handshake waits for a first on-demand order: after a
                // failure the next handshake asks again (within the hourly
                // budget) instead of a timer.
                let first_on_demand =
                    source == Source::OnDemand && self.shared.cert(name).is_none();
                if first_on_demand {
                    warn!("acme", "certificate for {name} failed: {e}");
                    self.entries.remove(name);
                } else {
                    entry.due = Instant::now() + wait;
                    warn!(
                        "acme",
                        "certificate for {name} failed: {e}; next try in {}s",
                        wait.as_secs()
                    );
                }
                if e.message.contains("newAccount") || e.message.contains("directory") {
                    self.account = None;
                }
                self.shared.set_status(name, source, Some(e.message));
            }
        }
    }

    fn issue(&mut self, name: &str) -> Result<files::Stored, AcmeError> {
        if self.account.is_none() {
            let key = files::account_key(&self.shared.data_dir).map_err(plain)?;
            let account = Account::open(
                self.http.clone(),
                &self.opts.directory,
                key,
                self.opts.email.as_deref(),
            )?;
            self.account = Some(account);
        }
        let account = self.account.as_mut().expect("opened just above");
        let answer = Answer {
            shared: &self.shared,
        };
        let cert = account.issue(name, &answer)?;
        files::save(&self.shared.data_dir, name, &cert.chain_pem, &cert.key).map_err(plain)
    }
}

fn plain(message: String) -> AcmeError {
    AcmeError {
        message,
        problem: None,
        retry_after: None,
        rate_limited: false,
    }
}

/// Puts challenge answers where the front serves them.
struct Answer<'a> {
    shared: &'a Shared,
}

impl Challenger for Answer<'_> {
    fn kind(&self) -> &'static str {
        self.shared.challenge.as_str()
    }

    fn publish(&self, name: &str, token: &str, key_authorization: &str) -> Result<(), String> {
        match self.shared.challenge {
            Challenge::Http01 => self.shared.put_http01(token, key_authorization),
            Challenge::TlsAlpn01 => {
                let key = Key::generate().map_err(|e| e.0)?;
                let cert = der::alpn_certificate(name, key_authorization, &key, unix_now())
                    .map_err(|e| e.0)?;
                let provider = rustls::crypto::ring::default_provider();
                let signing = provider
                    .key_provider
                    .load_private_key(PrivatePkcs8KeyDer::from(key.pkcs8().to_vec()).into())
                    .map_err(|e| e.to_string())?;
                let certified = CertifiedKey::new(vec![CertificateDer::from(cert)], signing);
                self.shared.put_alpn(name, Arc::new(certified));
            }
        }
        Ok(())
    }

    fn withdraw(&self, name: &str, token: &str) {
        match self.shared.challenge {
            Challenge::Http01 => self.shared.take_http01(token),
            Challenge::TlsAlpn01 => self.shared.take_alpn(name),
        }
    }
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// When a certificate valid from `not_before` to `not_after` (Unix
/// seconds) is renewed: with a third of its lifetime left.
fn renewal_due(not_before: i64, not_after: i64, now: Instant) -> Instant {
    let lifetime = (not_after - not_before).max(0);
    let at = not_after - lifetime / 3;
    let from_now = at - unix_now();
    if from_now <= 0 {
        now
    } else {
        now + Duration::from_secs(from_now as u64)
    }
}

/// The wait before retrying after the `failures`-th failure in a row.
fn retry_wait(failures: u32, e: &AcmeError) -> Duration {
    let shift = failures.saturating_sub(1).min(16);
    let mut wait = (BACKOFF_BASE * (1u32 << shift)).min(BACKOFF_MAX);
    if e.rate_limited {
        wait = wait.max(RATE_LIMIT_WAIT);
    }
    if let Some(secs) = e.retry_after {
        wait = wait.max(Duration::from_secs(secs.min(BACKOFF_MAX.as_secs())));
    }
    wait
}

/// A lowercase DNS name that is safe as a file name.
fn safe_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && !name.starts_with('.')
        && !name.contains("..")
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(rate_limited: bool, retry_after: Option<u64>) -> AcmeError {
        AcmeError {
            message: String::new(),
            problem: None,
            retry_after,
            rate_limited,
        }
    }

    #[test]
    fn backoff_doubles_to_a_cap_and_respects_the_server() {
        assert_eq!(retry_wait(1, &err(false, None)), Duration::from_secs(30));
        assert_eq!(retry_wait(2, &err(false, None)), Duration::from_secs(60));
        assert_eq!(retry_wait(4, &err(false, None)), Duration::from_secs(240));
        assert_eq!(retry_wait(40, &err(false, None)), BACKOFF_MAX);
        assert_eq!(
            retry_wait(1, &err(false, Some(600))),
            Duration::from_secs(600)
        );
        assert_eq!(retry_wait(1, &err(true, None)), RATE_LIMIT_WAIT);
        assert_eq!(
            retry_wait(1, &err(true, Some(7200))),
            Duration::from_secs(7200)
        );
        assert_eq!(retry_wait(1, &err(false, Some(u64::MAX))), BACKOFF_MAX);
    }

    #[test]
    fn renewal_at_a_third_of_the_lifetime_left() {
        let now = Instant::now();
        let t = unix_now();
        // 90 days issued now: renewed in 60 days.
        let due = renewal_due(t, t + 90 * 86_400, now);
        let secs = due.duration_since(now).as_secs();
        assert!((60 * 86_400 - 2..=60 * 86_400).contains(&secs), "{secs}");
        // Past the point: now.
        assert_eq!(renewal_due(t - 100, t + 10, now), now);
        assert_eq!(renewal_due(t - 200, t - 100, now), now);
    }

    #[test]
    fn only_plain_host_names_become_file_names() {
        assert!(safe_name("a.notes.example.com"));
        assert!(safe_name("example.com"));
        for bad in ["", "../x", ".x", "a/b", "A.com", "a..b", "a b"] {
            assert!(!safe_name(bad), "{bad}");
        }
    }
}
