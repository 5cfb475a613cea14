//! When an instance's next health check is due: each instance has its own
//! phase within `health_check_interval` (from a hash of its key), and its
//! checks fall on that phase every interval. A thousand instances started
//! together are then checked a few at a time across the interval, not all
//! in the same millisecond; and a check that took a while does not drift
//! into another instance's slot. Pure.

use std::time::{Duration, Instant};

use super::idle;
use crate::names::InstanceKey;

/// `key`'s offset within an interval of `interval_ms` (FNV-1a of
/// `service:id`: stable across runs, spread evenly).
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
    (h >> 16) % interval_ms.max(1)
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
        // Started in the same millisecond, they are not checked together.
        let now = Instant::now();
        let mut at: Vec<Instant> = (0..1_000)
            .map(|i| next_check(&key(&format!("r{i}")), Duration::from_secs(10), now))
            .collect();
        at.sort();
        at.dedup();
        assert!(at.len() > 900, "only {} distinct check times", at.len());
        assert!(at
            .iter()
            .all(|t| *t > now && *t <= now + Duration::from_secs(10)));
    }
}
