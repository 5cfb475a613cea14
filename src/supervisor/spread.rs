//! When an instance's next health check is due: each instance has its own
//! phase within `health_check_interval` (from a hash of its key), and its
//! checks fall on that phase every interval. A thousand instances started
//! together are then checked a few at a time across the interval, not all
//! in the same millisecond; and a check that took a while does not drift
//! into another instance's slot. Phases fall on a grid of `SLOT_MS` (for
//! intervals of a second or more), so the checks of one slot start in one
//! wake-up of the loop and their answers come back together: a thousand
//! instances checked every 10 s wake the loop about ten times a second,
//! not a hundred. Pure.

use std::time::{Duration, Instant};

use super::idle;
use crate::names::InstanceKey;

/// The grid health checks fall on.
const SLOT_MS: u64 = 100;

/// `key`'s offset within an interval of `interval_ms` (FNV-1a of
/// `service:id`: stable across runs, spread evenly), on the `SLOT_MS` grid
/// when the interval holds at least ten slots.
pub fn phase_ms(key: &InstanceKey, interval_ms: u64) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in key
        .service
        .bytes()
        .chain(std::iter::once(b':'))
        .chain(key.id.bytes())
    {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    // The high bits mix best.
    let interval_ms = interval_ms.max(1);
    match interval_ms >= 10 * SLOT_MS {
        true => (h >> 16) % (interval_ms / SLOT_MS) * SLOT_MS,
        false => (h >> 16) % interval_ms,
    }
}

/// Milliseconds from `now_ms` to the next slot `phase_ms` into an interval
/// of `interval_ms` (on a clock whose intervals start at multiples of it):
/// more than 0, at most one interval.
pub fn delay_ms(now_ms: u64, interval_ms: u64, phase_ms: u64) -> u64 {
    let interval_ms = interval_ms.max(1);
    let start = now_ms - now_ms % interval_ms;
    let mut slot = start + phase_ms % interval_ms;
    if slot <= now_ms {
        slot += interval_ms;
    }
    slot - now_ms
}

/// When `key`'s next health check is due after `now`.
pub fn next_check(key: &InstanceKey, interval: Duration, now: Instant) -> Instant {
    let interval_ms = u64::try_from(interval.as_millis())
        .unwrap_or(u64::MAX)
        .max(1);
    let delay = delay_ms(idle::mono_ms(now), interval_ms, phase_ms(key, interval_ms));
    crate::config::bounds::later(now, Duration::from_millis(delay))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(id: &str) -> InstanceKey {
        InstanceKey::new("tiny", id).unwrap()
    }

    #[test]
    fn the_next_slot_is_within_one_interval_and_on_the_phase() {
        for now in [0, 1, 999, 1_000, 1_001, 123_456] {
            for phase in [0, 1, 500, 999] {
                let d = delay_ms(now, 1_000, phase);
                assert!(d > 0 && d <= 1_000, "now {now} phase {phase}: {d}");
                assert_eq!((now + d) % 1_000, phase, "now {now} phase {phase}");
            }
        }
        // From a slot, the next one is a whole interval later: checks of
        // an instance keep their phase whatever a check took.
        assert_eq!(delay_ms(10_250, 1_000, 250), 1_000);
        assert_eq!(delay_ms(10_251, 1_000, 250), 999);
    }

    #[test]
    fn a_thousand_instances_are_spread_over_the_interval() {
        // Checks every 10 s: in 100 buckets of 100 ms, about 10 instances
        // each; none is empty and none holds more than three times that.
        let mut buckets = [0u32; 100];
        for i in 0..1_000 {
            buckets[(phase_ms(&key(&format!("r{i}")), 10_000) / 100) as usize] += 1;
        }
        let (min, max) = (buckets.iter().min(), buckets.iter().max());
        assert!(
            min > Some(&0) && max <= Some(&30),
            "{min:?}..{max:?}: {buckets:?}"
        );
        // Started in the same millisecond, they are checked a few at a
        // time, on the grid: each of the 100 slots of the interval once.
        let now = Instant::now();
        let mut at: Vec<Instant> = (0..1_000)
            .map(|i| next_check(&key(&format!("r{i}")), Duration::from_secs(10), now))
            .collect();
        at.sort();
        at.dedup();
        assert_eq!(at.len(), 100, "distinct check times");
        assert!(at
            .iter()
            .all(|t| *t > now && *t <= now + Duration::from_secs(10)));
        for w in at.windows(2) {
            assert_eq!(w[1] - w[0], Duration::from_millis(SLOT_MS));
        }
    }

    #[test]
    fn short_intervals_are_not_put_on_the_grid() {
        // 500 ms holds five slots only: phases stay anywhere in it.
        let phases: std::collections::HashSet<u64> = (0..200)
            .map(|i| phase_ms(&key(&format!("r{i}")), 500))
            .collect();
        assert!(phases.iter().all(|p| *p < 500));
        assert!(phases.iter().any(|p| p % SLOT_MS != 0), "{phases:?}");
        // 1 s holds ten: every phase is on the grid.
        assert!((0..200).all(|i| phase_ms(&key(&format!("r{i}")), 1_000) % SLOT_MS == 0));
    }
}
