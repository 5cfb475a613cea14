//! What the supervisor publishes for the front: every instance's state,
//! address and weight, plus the routing rules. Immutable once published; the
//! front picks up the newest one per request through `Published`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant, SystemTime};

use super::idle;

use serde::Serialize;

use crate::config::Routing;
use crate::names::{InstanceId, ServiceName};

/// Lifecycle state, in the words `ten ps` shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    Starting,
    Running,
    Sleeping,
    Stopping,
    Backoff,
    Failed,
    /// Being moved to another node: no process here, requests held.
    Moving,
    /// Moved to another node: requests are forwarded there.
    Moved,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Starting => "starting",
            State::Running => "running",
            State::Sleeping => "sleeping",
            State::Stopping => "stopping",
            State::Backoff => "backoff",
            State::Failed => "failed",
            State::Moving => "moving",
            State::Moved => "moved",
        }
    }
}

/// Health, separate from state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Health {
    Unknown,
    Healthy,
    Degraded,
    Unhealthy,
}

impl Health {
    pub fn as_str(self) -> &'static str {
        match self {
            Health::Unknown => "unknown",
            Health::Healthy => "healthy",
            Health::Degraded => "degraded",
            Health::Unhealthy => "unhealthy",
        }
    }
}

/// The result of the last health or readiness check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CheckResult {
    pub ok: bool,
    /// "200", "connection refused", "timeout", ...
    pub detail: String,
    /// Seconds since the epoch.
    pub at_unix: u64,
}

/// One instance as the front and the API see it.
#[derive(Debug, Clone)]
pub struct InstanceView {
    pub service: ServiceName,
    pub id: InstanceId,
    pub state: State,
    pub health: Health,
    pub pid: Option<u32>,
    pub port: u16,
    /// Where the front connects: 127.0.0.1:port.
    pub addr: SocketAddr,
    /// Set when the app listens on its Unix socket (`SOCKET_PATH`) instead
    /// of on `PORT`: the front then connects there.
    pub socket: Option<std::path::PathBuf>,
    pub weight: u8,
    pub restarts: u32,
    /// When the current process started; None when not running.
    pub started_at: Option<SystemTime>,
    /// Reads its cgroup's memory and CPU live; None without a cgroup
    /// (then `stats.memory()` has its process's RSS, sampled on a timer).
    pub meter: Option<crate::isolate::cgroup::Meter>,
    /// Processes OOM-killed at its `memory_limit_mb`.
    pub oom_kills: u64,
    /// Its data dir's size at the last measurement (at most 30 s old while
    /// the supervisor runs), when it has a storage quota.
    pub storage_bytes: Option<u64>,
    /// `storage_quota_mb` in bytes.
    pub storage_quota_bytes: Option<u64>,
    /// From the service: how long to wait for a response head.
    pub request_timeout: Duration,
    /// From the service: how long a request may be held while it starts.
    pub startup_timeout: Duration,
    /// The isolation level it runs at (its service's, never less).
    pub isolation: crate::config::Isolation,
    /// The (uid, gid) its process runs as, while it has one.
    pub ids: Option<(u32, u32)>,
    /// Live counters, shared by every snapshot for the instance's lifetime:
    /// the front writes them, the idle reaper and `/metrics` read them.
    pub stats: Arc<InstanceStats>,
    /// `ten move` of it to another node, once begun.
    pub moving: Option<MoveView>,
}

/// What `ten ps` and the API show of a move.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MoveView {
    /// The target's API URL.
    pub to: String,
    /// `copy`, `stop`, `sync`, `start` or `moved`.
    pub phase: &'static str,
    /// Why the last attempt stopped.
    pub error: Option<String>,
    /// The edge sends its host to the target now.
    pub flipped: bool,
}

/// Upper bounds (seconds) of the request duration histogram buckets; the
/// last bucket is +Inf.
pub const DURATION_BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Front loops count an instance's traffic in shards, loop `i` in shard
/// `i % SHARDS`, so two loops never write the same cache line on every
/// request; readers add the shards up.
pub const SHARDS: usize = 4;

/// One shard of an instance's traffic counters, on cache lines of its own.
#[derive(Debug, Default)]
#[repr(align(128))]
pub struct Traffic {
    /// Client connections this shard's loops route to the instance now.
    pub open: AtomicU64,
    /// Responses by status class: index 0 = 1xx ... 4 = 5xx.
    pub responses: [AtomicU64; 5],
    /// Request bytes sent to the instance (head and body).
    pub bytes_in: AtomicU64,
    /// Response bytes received from the instance (head and body).
    pub bytes_out: AtomicU64,
    /// Request duration histogram: counts per `DURATION_BUCKETS` entry plus +Inf.
    pub duration_buckets: [AtomicU64; 12],
    pub duration_sum_us: AtomicU64,
}

/// Per-instance counters. Relaxed atomics: each is a counter or a gauge
/// read on its own, never used to order other memory.
#[derive(Debug, Default)]
pub struct InstanceStats {
    /// The traffic shards, made at the instance's first request (an
    /// instance never asked for costs a pointer).
    traffic: std::sync::OnceLock<Box<[Traffic; SHARDS]>>,
    /// When the last request started or ended, as `idle::mono_ms` (the
    /// monotonic clock, never the wall clock); 0: none yet.
    pub last_active_mono_ms: AtomicU64,
    /// Times the instance was woken from `sleeping` (by a request or a spawn).
    pub wakes: AtomicU64,
    /// When the current wake began, as `idle::mono_ms`; 0: none.
    pub wake_started_mono_ms: AtomicU64,
    /// Wake duration histogram (wake to ready): counts per `WAKE_BUCKETS`
    /// entry plus +Inf.
    pub wake_buckets: [AtomicU64; 9],
    pub wake_sum_us: AtomicU64,
    /// The process's RSS at the last sample plus one (0: none), for an
    /// instance without a cgroup. The supervisor samples it on a timer;
    /// a new sample needs no new snapshot.
    memory_sample: AtomicU64,
    /// The last health or readiness check: written by the supervisor after
    /// every check, read by the API, with no new snapshot per check.
    last_check: std::sync::Mutex<Option<CheckResult>>,
}

/// Upper bounds (seconds) of the wake duration histogram buckets; the last
/// bucket is +Inf.
pub const WAKE_BUCKETS: [f64; 8] = [0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

impl InstanceStats {
    /// The last memory sample (without a cgroup), if any.
    pub fn memory(&self) -> Option<u64> {
        self.memory_sample.load(Ordering::Relaxed).checked_sub(1)
    }

    /// Records a memory sample (None: it could not be read).
    pub fn set_memory(&self, bytes: Option<u64>) {
        let v = bytes.map_or(0, |b| b.saturating_add(1));
        self.memory_sample.store(v, Ordering::Relaxed);
    }

    /// The result of the last check, if any.
    pub fn last_check(&self) -> Option<CheckResult> {
        match self.last_check.lock() {
            Ok(g) => g.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Records a check's result, reusing the text's buffer: a check
    /// like the last one allocates nothing.
    pub fn record_check(&self, ok: bool, detail: &str, at_unix: u64) {
        let mut g = match self.last_check.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        match g.as_mut() {
            Some(last) => {
                last.ok = ok;
                last.at_unix = at_unix;
                if last.detail != detail {
                    last.detail.clear();
                    last.detail.push_str(detail);
                }
            }
            None => {
                *g = Some(CheckResult {
                    ok,
                    detail: detail.to_string(),
                    at_unix,
                })
            }
        }
    }

    /// Marks activity at `now` (a front loop's clock, read once per poll).
    /// Written at most once a millisecond, so loops busy with the same
    /// instance do not keep taking its cache line.
    pub fn touch(&self, now: Instant) {
        let now = idle::mono_ms(now);
        if self.last_active_mono_ms.load(Ordering::Relaxed) != now {
            self.last_active_mono_ms.store(now, Ordering::Relaxed);
        }
    }

    /// The shard front loop `index` writes.
    pub fn shard(&self, index: usize) -> &Traffic {
        let shards = self
            .traffic
            .get_or_init(|| Box::new(std::array::from_fn(|_| Traffic::default())));
        &shards[index % SHARDS]
    }

    /// `f` of each shard, added up (0 before the first request).
    fn sum(&self, f: impl Fn(&Traffic) -> &AtomicU64) -> u64 {
        self.traffic.get().map_or(0, |shards| {
            shards
                .iter()
                .map(|t| f(t).load(Ordering::Relaxed))
                .fold(0, u64::wrapping_add)
        })
    }

    /// Client connections currently routed to the instance (held, proxying
    /// or tunnelled). An instance with open connections is not idle.
    pub fn open(&self) -> u64 {
        self.sum(|t| &t.open)
    }

    /// Responses of status class `class` (0 = 1xx ... 4 = 5xx).
    pub fn responses(&self, class: usize) -> u64 {
        self.sum(|t| &t.responses[class])
    }

    /// Responses sent on to clients, of every status class.
    pub fn answered(&self) -> u64 {
        (0..5).map(|class| self.responses(class)).sum()
    }

    /// Request bytes sent to the instance (head and body).
    pub fn bytes_in(&self) -> u64 {
        self.sum(|t| &t.bytes_in)
    }

    /// Response bytes received from the instance (head and body).
    pub fn bytes_out(&self) -> u64 {
        self.sum(|t| &t.bytes_out)
    }

    /// The request duration histogram (per `DURATION_BUCKETS` entry plus
    /// +Inf) and the sum of durations in microseconds.
    pub fn durations(&self) -> ([u64; 12], u64) {
        let buckets = std::array::from_fn(|i| self.sum(|t| &t.duration_buckets[i]));
        (buckets, self.sum(|t| &t.duration_sum_us))
    }

    /// When the last request started or ended; None: none yet.
    pub fn last_active(&self) -> Option<Instant> {
        idle::from_mono_ms(self.last_active_mono_ms.load(Ordering::Relaxed))
    }

    /// Counts a wake from `sleeping` and starts its clock. Supervisor thread.
    pub fn wake_started(&self) {
        self.wakes.fetch_add(1, Ordering::Relaxed);
        self.wake_started_mono_ms
            .store(idle::mono_ms(Instant::now()), Ordering::Relaxed);
    }

    /// The instance became ready: if a wake was under way, records how long
    /// it took. Supervisor thread.
    pub fn ready(&self) {
        let began = self.wake_started_mono_ms.swap(0, Ordering::Relaxed);
        let Some(began) = idle::from_mono_ms(began) else {
            return;
        };
        let took = Instant::now().saturating_duration_since(began);
        let bucket = WAKE_BUCKETS
            .iter()
            .position(|&b| took.as_secs_f64() <= b)
            .unwrap_or(WAKE_BUCKETS.len());
        self.wake_buckets[bucket].fetch_add(1, Ordering::Relaxed);
        self.wake_sum_us
            .fetch_add(took.as_micros() as u64, Ordering::Relaxed);
    }
}

impl Traffic {
    /// Counts one finished response with its status and duration.
    pub fn record(&self, status: u16, took: Duration) {
        let class = (usize::from(status / 100)).clamp(1, 5) - 1;
        self.responses[class].fetch_add(1, Ordering::Relaxed);
        let secs = took.as_secs_f64();
        let bucket = DURATION_BUCKETS
            .iter()
            .position(|&b| secs <= b)
            .unwrap_or(DURATION_BUCKETS.len());
        self.duration_buckets[bucket].fetch_add(1, Ordering::Relaxed);
        self.duration_sum_us
            .fetch_add(took.as_micros() as u64, Ordering::Relaxed);
    }
}

impl InstanceView {
    /// `service:id`.
    pub fn key(&self) -> String {
        format!("{}:{}", self.service, self.id)
    }
}

/// Everything the front needs to route and to answer read-only API calls.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// The listener's root domain, lowercased.
    pub domain: String,
    /// All known instances, sorted by (service, id). Each view is shared
    /// with the snapshots before it for as long as the instance does not
    /// change, so a publish costs what changed plus a pointer per instance.
    pub instances: Vec<Arc<InstanceView>>,
    /// (service, id) -> index into `instances`.
    pub by_key: HashMap<(String, String), usize>,
    /// Configured service names -> indexes of their instances in `instances`.
    /// Every configured service is present, with or without instances.
    pub services: BTreeMap<String, Vec<usize>>,
    pub routing: Routing,
    /// Services with `autospawn = true`: a request for a valid unknown id
    /// creates the instance (the supervisor enforces `max_instances`).
    pub autospawn: BTreeSet<ServiceName>,
    /// Each configured service's `max_instances`.
    pub max_instances: BTreeMap<String, usize>,
    /// `settings.trusted_proxies`, current after reloads.
    pub trusted_proxies: Vec<crate::config::Cidr>,
    /// The resolved config for `GET /api/config`, current after reloads.
    pub config_json: Arc<serde_json::Value>,
    /// `settings.metrics_public`, current after reloads.
    pub metrics_public: bool,
    /// Bumped on every publish.
    pub generation: u64,
}

impl Snapshot {
    pub fn get(&self, service: &str, id: &str) -> Option<&InstanceView> {
        self.index_of(service, id).map(|i| &*self.instances[i])
    }

    /// The index of `service:id` in `instances`. Found by borrowed keys
    /// (a binary search, `instances` being sorted), so the request path
    /// builds no key; `by_key` answers for a snapshot not built sorted.
    pub fn index_of(&self, service: &str, id: &str) -> Option<usize> {
        let found = self
            .instances
            .binary_search_by(|v| (v.service.as_str(), v.id.as_str()).cmp(&(service, id)));
        match found {
            Ok(i) => Some(i),
            Err(_) if self.by_key.is_empty() => None,
            Err(_) => self
                .by_key
                .get(&(service.to_string(), id.to_string()))
                .copied(),
        }
    }
}

/// The newest snapshot, shared by the supervisor (writer) and the front loops
/// (readers). Readers compare `generation()` with what they hold and only take
/// the lock when it moved, so the request path normally takes no lock.
#[derive(Debug, Default)]
pub struct Published {
    generation: AtomicU64,
    current: RwLock<Arc<Snapshot>>,
}

impl Published {
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    pub fn load(&self) -> Arc<Snapshot> {
        // A poisoned lock only means a writer panicked mid-swap of an Arc,
        // which cannot leave the Arc torn; keep serving the value.
        match self.current.read() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Replaces the snapshot; called by the supervisor thread only.
    pub fn publish(&self, mut snapshot: Snapshot) {
        let generation = self.generation() + 1;
        snapshot.generation = generation;
        let arc = Arc::new(snapshot);
        match self.current.write() {
            Ok(mut guard) => *guard = arc,
            Err(poisoned) => *poisoned.into_inner() = arc,
        }
        self.generation.store(generation, Ordering::Release);
    }
}

#[cfg(test)]
impl InstanceView {
    /// A view for tests: `service:id` in `state` on 127.0.0.1:`port`,
    /// weight 100, nothing measured, no process known.
    pub fn for_test(service: &str, id: &str, state: State, port: u16) -> InstanceView {
        InstanceView {
            service: service.into(),
            id: id.into(),
            state,
            health: Health::Unknown,
            pid: None,
            port,
            addr: ([127, 0, 0, 1], port).into(),
            socket: None,
            weight: 100,
            restarts: 0,
            started_at: None,
            meter: None,
            oom_kills: 0,
            storage_bytes: None,
            storage_quota_bytes: None,
            request_timeout: Duration::from_secs(60),
            startup_timeout: Duration::from_secs(10),
            isolation: crate::config::Isolation::Process,
            ids: None,
            stats: Default::default(),
            moving: None,
        }
    }
}

impl InstanceView {
    /// Its data dir holds more than its `storage_quota_mb`.
    pub fn over_quota(&self) -> bool {
        matches!((self.storage_bytes, self.storage_quota_bytes), (Some(b), Some(q)) if b > q)
    }
}
