//! When an instance with `idle_timeout` is due to sleep, on the monotonic
//! clock only: the wall clock never enters a deadline, so a clock step
//! (NTP, a manual `date -s`) neither puts every idle instance to sleep nor
//! keeps one awake. Also the monotonic clock as milliseconds, for the
//! atomics the front writes (an `Instant` does not fit in one).
//!
//! Pure: no I/O; nothing here reads the wall clock.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::config::bounds::later;

/// The instant `mono_ms` counts from: the first time it is asked.
fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

/// `t` as milliseconds of the monotonic clock since `epoch`, plus one, so
/// that 0 is free to mean "never" in an atomic.
pub fn mono_ms(t: Instant) -> u64 {
    let ms = t.saturating_duration_since(epoch()).as_millis();
    u64::try_from(ms).unwrap_or(u64::MAX - 1) + 1
}

/// The instant `mono_ms` gave `ms` for (to the millisecond); None for 0.
pub fn from_mono_ms(ms: u64) -> Option<Instant> {
    let ms = ms.checked_sub(1)?;
    Some(later(epoch(), Duration::from_millis(ms)))
}

/// When an idle instance is due to sleep: `timeout` after the later of its
/// last request and the moment its process became ready; with neither
/// known, `timeout` from `now`.
pub fn due(
    last_active: Option<Instant>,
    ready_at: Option<Instant>,
    timeout: Duration,
    now: Instant,
) -> Instant {
    later(last_active.max(ready_at).unwrap_or(now), timeout)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::supervisor::snapshot::InstanceStats;

    #[test]
    fn due_counts_from_the_later_of_the_last_request_and_readiness() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let timeout = s(60);
        assert_eq!(due(Some(t0), Some(t0 + s(5)), timeout, t0), t0 + s(65));
        assert_eq!(due(Some(t0 + s(9)), Some(t0), timeout, t0), t0 + s(69));
        assert_eq!(due(None, Some(t0), timeout, t0 + s(1)), t0 + s(60));
        assert_eq!(due(None, None, timeout, t0 + s(3)), t0 + s(63));
        // A timeout at the bound saturates instead of overflowing.
        assert!(due(Some(t0), None, Duration::MAX, t0) > t0 + s(3600 * 24 * 365));
    }

    #[test]
    fn the_milliseconds_in_the_atomics_are_monotonic_instants() {
        assert_eq!(from_mono_ms(0), None);
        let t = Instant::now();
        let back = from_mono_ms(mono_ms(t)).expect("set");
        let off = if back > t { back - t } else { t - back };
        assert!(off < Duration::from_millis(1), "{off:?}");
        // What the front writes on each request reads back as an Instant
        // between the moments around it: nothing of the wall clock.
        let stats = InstanceStats::default();
        assert_eq!(stats.last_active(), None);
        let before = Instant::now();
        stats.touch(Instant::now());
        let after = Instant::now();
        let at = stats.last_active().expect("touched");
        assert!(at + Duration::from_millis(1) >= before && at <= after);
    }
}
