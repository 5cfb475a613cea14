//! What the ACME thread and the front loops share: challenge answers
//! (HTTP-01 key authorizations by token, TLS-ALPN-01 certificates by
//! name), the certificates issued so far, each name's status for
//! `GET /api/tls`, and the on-demand gate (which names may get a
//! certificate at their first handshake, at most so many per hour).
//!
//! The front calls the lookups from handshakes and requests: each takes a
//! short lock or clones an `Arc`, never waits on the network or the disk.
//! The ACME thread (`manager`) is the only writer of certificates. When an
//! on-demand order settles (issued or failed) it bumps `settled()` and
//! wakes every front loop that asked (`wake_on_settle`), so a parked
//! handshake goes on at once.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, RwLock, Weak};
use std::time::{Duration, Instant};

use rustls::sign::CertifiedKey;
use serde_json::{json, Value};

use super::files::Stored;
use crate::supervisor::{Published, Snapshot};

/// Whether the front serves a host name under the published snapshot
/// (`front::api::allowed::would_serve`, the rule of Caddy's ask endpoint
/// too). Handed in at start, so ACME reads the front's rule without
/// importing the front.
pub type Serves = fn(&Snapshot, &str) -> bool;

/// The ALPN protocol of TLS-ALPN-01 (RFC 8737 section 6.2).
pub const ACME_TLS_ALPN: &[u8] = b"acme-tls/1";
/// After an on-demand order failed, handshakes for that name are refused
/// this long before another order may be tried.
const ON_DEMAND_FAILURE_HOLD: Duration = Duration::from_secs(60);
/// The window `acme_on_demand_per_hour` counts in.
const HOUR: Duration = Duration::from_secs(3600);

/// Which challenge orders use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Challenge {
    Http01,
    TlsAlpn01,
}

impl Challenge {
    pub fn as_str(self) -> &'static str {
        match self {
            Challenge::Http01 => "http-01",
            Challenge::TlsAlpn01 => "tls-alpn-01",
        }
    }
}

/// Where a certificate came from, as `GET /api/tls` says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// `{domain}` or `{service}.{domain}`, ordered at start.
    Acme,
    /// `{id}.{service}.{domain}`, ordered at its first handshake.
    OnDemand,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Acme => "acme",
            Source::OnDemand => "on-demand",
        }
    }
}

/// One name ACME looks after, for `GET /api/tls`.
#[derive(Debug, Clone)]
pub struct Status {
    pub source: Source,
    /// Why the last order failed; None after a success.
    pub last_error: Option<String>,
}

/// What a handshake for a name gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hello {
    /// Go on now (a certificate exists, or the name is not ACME's).
    Go,
    /// An on-demand certificate is being ordered: hold the handshake.
    Wait,
    /// Not a name we serve a certificate for: a handshake alert.
    Refuse,
}

/// The on-demand gate.
#[derive(Debug)]
struct OnDemand {
    per_hour: u32,
    /// When each on-demand order of the last hour was admitted.
    admitted: VecDeque<Instant>,
    /// Names ordered and not yet settled, or failed at that time.
    pending: HashMap<String, Option<Instant>>,
}

/// The shared state. One per server, behind an `Arc`.
#[derive(Debug)]
pub struct Shared {
    pub data_dir: PathBuf,
    /// The root domain, lowercased.
    pub domain: String,
    pub challenge: Challenge,
    http01: Mutex<HashMap<String, String>>,
    alpn: RwLock<HashMap<String, Arc<CertifiedKey>>>,
    issued: RwLock<Arc<HashMap<String, Arc<Stored>>>>,
    status: Mutex<BTreeMap<String, Status>>,
    on_demand: Option<Mutex<OnDemand>>,
    /// Routes, and the front's rule over them, for telling instance hosts
    /// from unknown names.
    published: OnceLock<(Arc<Published>, Serves)>,
    /// Wakes the ACME thread with a name to order now.
    orders: Mutex<Option<Sender<String>>>,
    /// Bumped each time an on-demand order settles.
    settled: AtomicU64,
    /// The wakers of the front loops that hold parked handshakes; a loop
    /// that ended (a reload, an upgrade) is dropped at the next wake.
    wakers: Mutex<Vec<Weak<mio::Waker>>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A poisoned lock only means a holder panicked between whole updates.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Shared {
    /// `on_demand_per_hour`: Some with `acme_on_demand = true`.
    pub fn new(
        data_dir: PathBuf,
        domain: &str,
        challenge: Challenge,
        on_demand_per_hour: Option<u32>,
    ) -> Shared {
        Shared {
            data_dir,
            domain: domain.to_ascii_lowercase(),
            challenge,
            http01: Mutex::default(),
            alpn: RwLock::default(),
            issued: RwLock::default(),
            status: Mutex::default(),
            on_demand: on_demand_per_hour.map(|per_hour| {
                Mutex::new(OnDemand {
                    per_hour,
                    admitted: VecDeque::new(),
                    pending: HashMap::new(),
                })
            }),
            published: OnceLock::new(),
            orders: Mutex::new(None),
            settled: AtomicU64::new(0),
            wakers: Mutex::default(),
        }
    }

    /// Wakes `waker`'s loop each time an on-demand order settles.
    pub fn wake_on_settle(&self, waker: &Arc<mio::Waker>) {
        let mut wakers = lock(&self.wakers);
        wakers.retain(|w| w.strong_count() > 0);
        wakers.push(Arc::downgrade(waker));
    }

    /// How many on-demand orders settled so far: a loop that saw another
    /// number looks at its parked handshakes again.
    pub fn settled_count(&self) -> u64 {
        self.settled.load(Ordering::Acquire)
    }

    /// An on-demand order settled: every loop looks at its parked
    /// handshakes.
    fn wake_parked(&self) {
        self.settled.fetch_add(1, Ordering::AcqRel);
        lock(&self.wakers).retain(|w| match w.upgrade() {
            Some(waker) => {
                if let Err(e) = waker.wake() {
                    warn!(
                        "acme",
                        "cannot wake a front loop for a parked handshake: {e}"
                    );
                }
                true
            }
            None => false,
        });
    }

    /// Gives the routes and the rule of which names the front serves
    /// (once, at start).
    pub fn set_published(&self, published: Arc<Published>, serves: Serves) {
        let _ = self.published.set((published, serves));
    }

    /// Where on-demand names are sent to be ordered (the ACME thread).
    pub fn set_orders(&self, tx: Sender<String>) {
        *lock(&self.orders) = Some(tx);
    }

    // ---- challenges ----

    /// The key authorization the plain listener answers at
    /// `/.well-known/acme-challenge/{token}`.
    pub fn http01_answer(&self, token: &str) -> Option<String> {
        lock(&self.http01).get(token).cloned()
    }

    pub fn put_http01(&self, token: &str, key_authorization: &str) {
        lock(&self.http01).insert(token.to_string(), key_authorization.to_string());
    }

    pub fn take_http01(&self, token: &str) {
        lock(&self.http01).remove(token);
    }

    /// The TLS-ALPN-01 certificate for a handshake offering `acme-tls/1`.
    pub fn alpn_cert(&self, name: &str) -> Option<Arc<CertifiedKey>> {
        let map = self.alpn.read().unwrap_or_else(|p| p.into_inner());
        map.get(&name.to_ascii_lowercase()).cloned()
    }

    pub fn put_alpn(&self, name: &str, key: Arc<CertifiedKey>) {
        let mut map = self.alpn.write().unwrap_or_else(|p| p.into_inner());
        map.insert(name.to_string(), key);
    }

    pub fn take_alpn(&self, name: &str) {
        let mut map = self.alpn.write().unwrap_or_else(|p| p.into_inner());
        map.remove(name);
    }

    // ---- certificates ----

    /// Every issued certificate, by name.
    pub fn issued(&self) -> Arc<HashMap<String, Arc<Stored>>> {
        self.issued
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The issued certificate for `name`.
    pub fn cert(&self, name: &str) -> Option<Arc<CertifiedKey>> {
        self.issued()
            .get(&name.to_ascii_lowercase())
            .map(|s| s.key.clone())
    }

    /// Puts a new certificate in place for new handshakes.
    pub fn install(&self, stored: Stored) {
        let name = stored.name.clone();
        let mut guard = self.issued.write().unwrap_or_else(|p| p.into_inner());
        let mut map = HashMap::clone(&guard);
        map.insert(name.clone(), Arc::new(stored));
        *guard = Arc::new(map);
        drop(guard);
        if let Some(od) = &self.on_demand {
            let was_pending = lock(od).pending.remove(&name).is_some();
            if was_pending {
                self.wake_parked();
            }
        }
    }

    /// Takes a certificate out (its instance is gone).
    pub fn uninstall(&self, name: &str) {
        let mut guard = self.issued.write().unwrap_or_else(|p| p.into_inner());
        let mut map = HashMap::clone(&guard);
        map.remove(name);
        *guard = Arc::new(map);
        drop(guard);
        lock(&self.status).remove(name);
    }

    /// Records the outcome of an order for `name`.
    pub fn set_status(&self, name: &str, source: Source, error: Option<String>) {
        if error.is_some() {
            if let Some(od) = &self.on_demand {
                let mut od = lock(od);
                let failed = match od.pending.get_mut(name) {
                    Some(p) => p.replace(Instant::now()).is_none(),
                    None => false,
                };
                drop(od);
                if failed {
                    self.wake_parked();
                }
            }
        }
        lock(&self.status).insert(
            name.to_string(),
            Status {
                source,
                last_error: error,
            },
        );
    }

    /// Each name's status.
    pub fn statuses(&self) -> BTreeMap<String, Status> {
        lock(&self.status).clone()
    }

    /// `GET /api/tls` entries for ACME's names: issued ones with their
    /// certificate, the others with null dates and their last error.
    pub fn to_json(&self, now: i64) -> Vec<Value> {
        let issued = self.issued();
        let statuses = self.statuses();
        let mut names: Vec<&String> = statuses.keys().chain(issued.keys()).collect();
        names.sort();
        names.dedup();
        names
            .into_iter()
            .map(|name| {
                let status = statuses.get(name);
                let source = status.map_or_else(|| self.source_of(name), |s| s.source);
                let error = status.and_then(|s| s.last_error.clone());
                match issued.get(name) {
                    Some(s) => json!({
                        "names": [name],
                        "issuer": s.info.issuer,
                        "not_after": s.info.not_after,
                        "expires_in_seconds": s.info.not_after - now,
                        "source": source.as_str(),
                        "last_error": error,
                    }),
                    None => json!({
                        "names": [name],
                        "issuer": null,
                        "not_after": null,
                        "expires_in_seconds": null,
                        "source": source.as_str(),
                        "last_error": error,
                    }),
                }
            })
            .collect()
    }

    /// `{domain}` and `{service}.{domain}` are ordered at start; anything
    /// deeper is an instance host, ordered on demand.
    pub fn source_of(&self, name: &str) -> Source {
        match name.strip_suffix(&self.domain) {
            Some(rest) if rest.trim_end_matches('.').contains('.') => Source::OnDemand,
            _ => Source::Acme,
        }
    }

    // ---- on demand ----

    /// Whether on-demand issuance is on.
    pub fn on_demand(&self) -> bool {
        self.on_demand.is_some()
    }

    /// For a handshake naming `name` that no certificate covers: go on
    /// (the fallback), wait for an on-demand order, or refuse.
    pub fn hello(&self, name: &str) -> Hello {
        let Some(od) = &self.on_demand else {
            return Hello::Go;
        };
        let name = name.to_ascii_lowercase();
        if self.issued().contains_key(&name) {
            return Hello::Go;
        }
        if self.instance_host(&name).is_none() {
            return Hello::Go;
        }
        if !self.known_instance(&name) {
            return Hello::Refuse;
        }
        let mut od = lock(od);
        let now = Instant::now();
        match od.pending.get(&name) {
            Some(None) => return Hello::Wait,
            Some(Some(failed)) if now.duration_since(*failed) < ON_DEMAND_FAILURE_HOLD => {
                return Hello::Refuse;
            }
            _ => {}
        }
        while od
            .admitted
            .front()
            .is_some_and(|t| now.duration_since(*t) >= HOUR)
        {
            od.admitted.pop_front();
        }
        if od.admitted.len() >= od.per_hour as usize {
            warn!(
                "acme",
                "on-demand certificate for {name} refused: {} new names in the last hour (acme_on_demand_per_hour)",
                od.per_hour
            );
            return Hello::Refuse;
        }
        let sent = lock(&self.orders)
            .as_ref()
            .is_some_and(|tx| tx.send(name.clone()).is_ok());
        if !sent {
            return Hello::Refuse;
        }
        od.admitted.push_back(now);
        od.pending.insert(name, None);
        Hello::Wait
    }

    /// For a held handshake: still waiting, ready (go on), or failed.
    pub fn settled(&self, name: &str) -> Hello {
        let name = name.to_ascii_lowercase();
        if self.issued().contains_key(&name) {
            return Hello::Go;
        }
        match self
            .on_demand
            .as_ref()
            .map(|od| lock(od).pending.get(&name).copied())
        {
            Some(Some(None)) => Hello::Wait,
            _ => Hello::Refuse,
        }
    }

    /// Whether a handshake for `name` without a certificate gets an alert
    /// rather than the fallback certificate: an instance host, with on
    /// demand on.
    pub fn refuses_uncovered(&self, name: &str) -> bool {
        self.on_demand.is_some() && self.instance_host(&name.to_ascii_lowercase()).is_some()
    }

    /// `{id}.{service}.{domain}` split into (id, service).
    fn instance_host<'a>(&self, name: &'a str) -> Option<(&'a str, &'a str)> {
        let sub = name.strip_suffix(&self.domain)?.strip_suffix('.')?;
        let (id, service) = sub.split_once('.')?;
        (!id.is_empty() && !service.is_empty() && !service.contains('.')).then_some((id, service))
    }

    /// An instance host tenement serves: in the registry (running or able
    /// to wake), or creatable by autospawn within `max_instances` (the rule
    /// of Caddy's ask endpoint too).
    fn known_instance(&self, name: &str) -> bool {
        let Some((published, serves)) = self.published.get() else {
            return false;
        };
        serves(&published.load(), name)
    }

    /// Names of on-demand certificates whose instance is gone.
    pub fn forgotten(&self, names: impl Iterator<Item = String>) -> Vec<String> {
        let Some((published, _)) = self.published.get() else {
            return Vec::new();
        };
        let snap = published.load();
        names
            .filter(|name| match self.instance_host(name) {
                Some((id, service)) => snap.get(service, id).is_none(),
                None => false,
            })
            .collect()
    }

    /// The names ordered at start: the domain and each service's host.
    pub fn start_names(&self) -> Vec<String> {
        let mut names = vec![self.domain.clone()];
        if let Some((published, _)) = self.published.get() {
            let snap = published.load();
            names.extend(snap.services.keys().map(|s| format!("{s}.{}", self.domain)));
        }
        names
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    /// The front's rule as far as the gate needs one: a valid host name
    /// `{id}.{service}.{domain}` for a published service and a valid id
    /// (as for an autospawn service).
    fn serves(snap: &Snapshot, host: &str) -> bool {
        let Some(sub) = host.strip_suffix(&format!(".{}", snap.domain)) else {
            return false;
        };
        if crate::config::check_domain(host).is_err() {
            return false;
        }
        sub.split_once('.').is_some_and(|(id, service)| {
            snap.services.contains_key(service)
                && crate::names::InstanceKey::new(service, id).is_ok()
        })
    }

    /// `web` under example.com, any valid id served.
    fn shared(per_hour: Option<u32>) -> (Shared, mpsc::Receiver<String>) {
        let mut snap = Snapshot {
            domain: "example.com".into(),
            ..Snapshot::default()
        };
        snap.services.insert("web".into(), Vec::new());
        let published = Arc::new(Published::default());
        published.publish(snap);
        let s = Shared::new(
            PathBuf::from("/nonexistent"),
            "Example.com",
            Challenge::Http01,
            per_hour,
        );
        s.set_published(published, serves);
        let (tx, rx) = mpsc::channel();
        s.set_orders(tx);
        (s, rx)
    }

    /// A certificate for `name` as the ACME thread would install it.
    fn stored(name: &str) -> Stored {
        let key = super::super::jws::Key::generate().expect("key");
        let der =
            super::super::der::alpn_certificate(name, "k.a", &key, 1_800_000_000).expect("cert");
        let info = crate::certs::x509::read(&der).expect("readable");
        let provider = rustls::crypto::ring::default_provider();
        let signing = provider
            .key_provider
            .load_private_key(
                rustls::pki_types::PrivatePkcs8KeyDer::from(key.pkcs8().to_vec()).into(),
            )
            .expect("signing key");
        Stored {
            name: name.into(),
            key: Arc::new(CertifiedKey::new(vec![der.into()], signing)),
            info,
        }
    }

    #[test]
    fn a_settled_order_wakes_the_loops_that_asked_and_forgets_ended_ones() {
        let (s, _rx) = shared(Some(5));
        let mut poll = mio::Poll::new().expect("poll");
        let waker = Arc::new(mio::Waker::new(poll.registry(), mio::Token(7)).expect("waker"));
        s.wake_on_settle(&waker);
        let other = mio::Poll::new().expect("poll");
        let ended = Arc::new(mio::Waker::new(other.registry(), mio::Token(8)).expect("waker"));
        s.wake_on_settle(&ended);
        drop(ended);
        let woken = |poll: &mut mio::Poll| {
            let mut events = mio::Events::with_capacity(4);
            poll.poll(&mut events, Some(Duration::ZERO)).expect("poll");
            events.iter().any(|e| e.token() == mio::Token(7))
        };
        assert_eq!(s.hello("one.web.example.com"), Hello::Wait);
        assert_eq!(s.settled_count(), 0);
        assert!(!woken(&mut poll));
        // Issued: counted, and the loop woken.
        s.install(stored("one.web.example.com"));
        assert_eq!(s.settled_count(), 1);
        assert!(woken(&mut poll));
        assert_eq!(
            lock(&s.wakers).len(),
            1,
            "the ended loop's waker is forgotten"
        );
        // A failed order settles too, once; a start-up name is no order.
        assert_eq!(s.hello("two.web.example.com"), Hello::Wait);
        s.set_status("two.web.example.com", Source::OnDemand, Some("boom".into()));
        s.set_status(
            "two.web.example.com",
            Source::OnDemand,
            Some("again".into()),
        );
        assert_eq!(s.settled_count(), 2);
        assert!(woken(&mut poll));
        s.install(stored("web.example.com"));
        assert_eq!(s.settled_count(), 2);
        assert!(!woken(&mut poll));
    }

    #[test]
    fn on_demand_orders_known_instance_hosts_once_within_the_hourly_budget() {
        let (s, rx) = shared(Some(2));
        // Not instance hosts: the handshake goes on with what there is.
        for name in [
            "example.com",
            "web.example.com",
            "a.b.c.example.com",
            "other.test",
        ] {
            assert_eq!(s.hello(name), Hello::Go, "{name}");
            assert!(!s.refuses_uncovered(name), "{name}");
        }
        // An unknown service, an invalid id: refused, nothing ordered.
        assert_eq!(s.hello("x.nope.example.com"), Hello::Refuse);
        assert_eq!(s.hello("bad_id.web.example.com"), Hello::Refuse);
        assert!(rx.try_recv().is_err());

        // A valid id: ordered once, however many handshakes ask.
        assert_eq!(s.hello("One.web.example.com"), Hello::Wait);
        assert_eq!(s.hello("one.web.example.com"), Hello::Wait);
        assert_eq!(rx.try_recv().as_deref(), Ok("one.web.example.com"));
        assert!(rx.try_recv().is_err());
        assert_eq!(s.settled("one.web.example.com"), Hello::Wait);

        // Issued: held handshakes go on, new ones find the certificate.
        s.install(stored("one.web.example.com"));
        assert_eq!(s.settled("one.web.example.com"), Hello::Go);
        assert_eq!(s.hello("one.web.example.com"), Hello::Go);
        assert!(s.cert("ONE.web.example.com").is_some());

        // A failed order: held handshakes are refused, and so are new ones
        // for a while (no second order).
        assert_eq!(s.hello("two.web.example.com"), Hello::Wait);
        assert_eq!(rx.try_recv().as_deref(), Ok("two.web.example.com"));
        s.set_status("two.web.example.com", Source::OnDemand, Some("boom".into()));
        assert_eq!(s.settled("two.web.example.com"), Hello::Refuse);
        assert_eq!(s.hello("two.web.example.com"), Hello::Refuse);

        // Two new names this hour: the third is refused.
        assert_eq!(s.hello("three.web.example.com"), Hello::Refuse);
        assert!(rx.try_recv().is_err());
        assert!(s.refuses_uncovered("three.web.example.com"));
    }

    #[test]
    fn without_on_demand_every_name_goes_on() {
        let (s, rx) = shared(None);
        assert_eq!(s.hello("one.web.example.com"), Hello::Go);
        assert!(!s.refuses_uncovered("one.web.example.com"));
        assert!(rx.try_recv().is_err());
    }

    #[test]
    fn sources_names_and_status_for_the_api() {
        let (s, _rx) = shared(Some(20));
        assert_eq!(s.source_of("example.com"), Source::Acme);
        assert_eq!(s.source_of("web.example.com"), Source::Acme);
        assert_eq!(s.source_of("one.web.example.com"), Source::OnDemand);
        assert_eq!(s.start_names(), ["example.com", "web.example.com"]);
        s.set_status("web.example.com", Source::Acme, Some("rate limited".into()));
        s.install(stored("one.web.example.com"));
        let list = s.to_json(1_800_000_000);
        assert_eq!(list.len(), 2, "{list:?}");
        assert_eq!(list[0]["names"], json!(["one.web.example.com"]));
        assert_eq!(list[0]["source"], "on-demand");
        assert_eq!(list[0]["expires_in_seconds"], 7 * 86_400);
        assert_eq!(list[1]["names"], json!(["web.example.com"]));
        assert_eq!(list[1]["not_after"], Value::Null);
        assert_eq!(list[1]["last_error"], "rate limited");
        // Its instance is not in the registry: it is forgotten; removed, it
        // is gone from the list.
        let gone = s.forgotten(
            [
                "one.web.example.com".to_string(),
                "web.example.com".to_string(),
            ]
            .into_iter(),
        );
        assert_eq!(gone, ["one.web.example.com"]);
        s.uninstall("one.web.example.com");
        assert!(s.cert("one.web.example.com").is_none());
        assert_eq!(s.to_json(0).len(), 1);
    }

    #[test]
    fn challenge_answers_come_and_go() {
        let (s, _rx) = shared(None);
        assert_eq!(s.http01_answer("tok"), None);
        s.put_http01("tok", "tok.thumb");
        assert_eq!(s.http01_answer("tok").as_deref(), Some("tok.thumb"));
        s.take_http01("tok");
        assert_eq!(s.http01_answer("tok"), None);
        let cert = stored("x.example.com");
        s.put_alpn("x.example.com", cert.key.clone());
        assert!(s.alpn_cert("X.example.com").is_some());
        s.take_alpn("x.example.com");
        assert!(s.alpn_cert("x.example.com").is_none());
    }
}
