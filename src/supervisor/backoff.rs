//! Restart delays and the restart window. Pure: the caller passes `now`.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// The delay before restart number `n` (1-based, counted within the window):
/// `base * 2^(n-1)`, capped at `max`. `n == 0` is treated as 1.
pub fn delay(n: u32, base: Duration, max: Duration) -> Duration {
    let exp = n.saturating_sub(1).min(31);
    base.checked_mul(1u32 << exp).unwrap_or(max).min(max)
}

/// Forgets restarts older than `window` before `now`; returns how many remain.
pub fn prune(restarts: &mut VecDeque<Instant>, window: Duration, now: Instant) -> u32 {
    while let Some(&t) = restarts.front() {
        if now.saturating_duration_since(t) > window {
            restarts.pop_front();
        } else {
            break;
        }
    }
    restarts.len() as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn delay_doubles_from_base_and_caps() {
        let max = Duration::from_secs(60);
        let got: Vec<u64> = (1..=9).map(|n| delay(n, S, max).as_secs()).collect();
        assert_eq!(got, [1, 2, 4, 8, 16, 32, 60, 60, 60]);
        assert_eq!(delay(0, S, max), S);
        assert_eq!(delay(u32::MAX, S, max), max);
        assert_eq!(
            delay(40, Duration::from_millis(1500), Duration::MAX),
            Duration::from_millis(1500) * (1 << 31)
        );
    }

    #[test]
    fn window_drops_old_restarts_only() {
        let t0 = Instant::now();
        let mut r: VecDeque<Instant> = [t0, t0 + 10 * S, t0 + 20 * S].into();
        assert_eq!(prune(&mut r, 300 * S, t0 + 300 * S), 3);
        assert_eq!(prune(&mut r, 300 * S, t0 + 301 * S), 2);
        assert_eq!(prune(&mut r, 300 * S, t0 + 400 * S), 0);
    }
}
