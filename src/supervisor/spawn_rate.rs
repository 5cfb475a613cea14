//! The per-service limit on instances created by a request (`autospawn`):
//! a token bucket of `BURST` creations refilled one every `EVERY`, i.e. 12
//! per minute per service. Past it the request gets 503 with `Retry-After`
//! and the supervisor logs it: anonymous clients cannot turn a stream of
//! made-up ids into processes faster than that, even under `max_instances`.
//! Pure bookkeeping on monotonic time; the supervisor thread owns it.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Creations allowed back to back.
pub const BURST: u32 = 12;
/// One more creation is allowed this often.
pub const EVERY: Duration = Duration::from_secs(5);

/// Per service: the time at which its bucket is full again (GCRA's
/// theoretical arrival time). Absent: full.
#[derive(Debug, Default)]
pub struct SpawnRate {
    full_at: HashMap<String, Instant>,
}

impl SpawnRate {
    /// Takes one creation for `service` at `now`; false when its bucket is
    /// empty.
    pub fn allow(&mut self, service: &str, now: Instant) -> bool {
        let full_at = self.full_at.get(service).copied().unwrap_or(now).max(now);
        // Room for BURST creations: the bucket may run BURST - 1 intervals ahead.
        if full_at.saturating_duration_since(now) > EVERY * (BURST - 1) {
            return false;
        }
        self.full_at.insert(service.to_string(), full_at + EVERY);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_then_one_per_interval_per_service() {
        let mut r = SpawnRate::default();
        let t0 = Instant::now();
        for i in 0..BURST {
            assert!(r.allow("api", t0), "creation {i} of the burst");
        }
        assert!(!r.allow("api", t0), "one past the burst");
        // Another service has its own bucket.
        assert!(r.allow("web", t0));
        // Just short of an interval: still empty; after it: exactly one.
        assert!(!r.allow("api", t0 + EVERY - Duration::from_millis(1)));
        assert!(r.allow("api", t0 + EVERY));
        assert!(!r.allow("api", t0 + EVERY));
        // A full minute of steady attempts lets BURST through, never more.
        let mut allowed = 0;
        let start = t0 + EVERY * 100;
        for ms in (0..60_000).step_by(100) {
            if r.allow("api", start + Duration::from_millis(ms)) {
                allowed += 1;
            }
        }
        assert!(allowed <= BURST + 12, "{allowed} in a minute");
        // Idle long enough, the bucket is full again, not fuller.
        let later = start + Duration::from_secs(3600);
        let got = (0..100).filter(|_| r.allow("api", later)).count();
        assert_eq!(got, BURST as usize);
    }
}
