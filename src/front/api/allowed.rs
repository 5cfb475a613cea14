//! `GET /api/tls/allowed?domain=NAME`, the `ask` endpoint of Caddy's
//! on-demand TLS (`ten caddy`): 200 when tenement would serve NAME, 404
//! otherwise, no token. `would_serve` is the rule (pure, over the snapshot);
//! `AskLimit` keeps callers from hammering it (a token bucket per client
//! address, shared by every loop). Touches nothing else: no I/O, no
//! supervisor commands.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::url::query_pairs;
use super::Response;
use crate::front::router::{self, selectable, Target};
use crate::supervisor::Snapshot;

/// Asks one address may make in a burst.
pub const BURST: f64 = 60.0;
/// Asks per second one address regains.
pub const PER_SECOND: f64 = 10.0;
/// Most addresses remembered at once.
const CAPACITY: usize = 4096;

/// Whether tenement would serve `host` (lowercase, no port, no trailing
/// dot): the root domain, a service host or `[routing.subdomain]` name, an
/// instance host whose instance is running or can be woken (starting,
/// sleeping, waiting to restart; not failed or stopping), or, for a service
/// with `autospawn`, a valid unknown id while the service has fewer than
/// `max_instances`. `localhost` and IP literals reach the management surface
/// but are no names a certificate can be issued for: false.
pub fn would_serve(snap: &Snapshot, host: &str) -> bool {
    if host != snap.domain && crate::config::check_domain(host).is_err() {
        return false;
    }
    match router::route(snap, Some(host), "/") {
        Target::Instance(i) => selectable(snap.instances[i].state),
        Target::Service(_) => true,
        Target::Management => host == snap.domain,
        Target::Spawn { service, .. } => {
            let have = snap.services.get(service.as_str()).map_or(0, Vec::len);
            let max = snap
                .max_instances
                .get(service.as_str())
                .copied()
                .unwrap_or(0);
            have < max
        }
        Target::NotFound => false,
    }
}

/// The answer to one ask, once the caller is within its rate.
pub fn answer(snap: &Snapshot, query: &str) -> Response {
    let Ok(pairs) = query_pairs(query) else {
        return Response::error(400, "the query string does not decode");
    };
    let Some((_, name)) = pairs.iter().find(|(k, _)| k == "domain") else {
        return Response::error(400, "missing ?domain=NAME");
    };
    let host = name.trim_end_matches('.').to_ascii_lowercase();
    if would_serve(snap, &host) {
        Response::text(200, "text/plain; charset=utf-8", "ok\n")
    } else {
        Response::error(404, &format!("tenement does not serve {name:?}"))
    }
}

/// 429 with `Retry-After` for a caller over its rate.
pub fn too_many(wait: Duration) -> Response {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    Response::error(
        429,
        &format!("too many asks from this address (over {PER_SECOND} per second)"),
    )
    .with_header("Retry-After", secs.max(1).to_string())
}

/// A token bucket per client address.
#[derive(Debug, Default)]
pub struct AskLimit {
    buckets: Mutex<HashMap<IpAddr, (f64, Instant)>>,
}

impl AskLimit {
    /// Takes one ask for `addr` at `now`. Err: how long until the next one
    /// would be allowed.
    pub fn take(&self, addr: IpAddr, now: Instant) -> Result<(), Duration> {
        let addr = addr.to_canonical();
        // A poisoned lock only means a panic between two plain stores.
        let mut buckets = match self.buckets.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        let refill = |(tokens, at): (f64, Instant)| {
            let secs = now.saturating_duration_since(at).as_secs_f64();
            (tokens + secs * PER_SECOND).min(BURST)
        };
        if buckets.len() >= CAPACITY && !buckets.contains_key(&addr) {
            // Full buckets hold nothing worth keeping; then anything goes.
            buckets.retain(|_, b| refill(*b) < BURST);
            if buckets.len() >= CAPACITY {
                buckets.clear();
            }
        }
        let tokens = buckets.get(&addr).copied().map_or(BURST, refill);
        if tokens < 1.0 {
            buckets.insert(addr, (tokens, now));
            return Err(Duration::from_secs_f64((1.0 - tokens) / PER_SECOND));
        }
        buckets.insert(addr, (tokens - 1.0, now));
        Ok(())
    }
}
