//! The bounds of every duration, size and count tenement reads, in one table:
//! the config (`Check`), the API (`POST /api/deploy`'s `timeout_secs`,
//! `/api/logs?since=`) and the CLI (`ten deploy --timeout`, `ten logs
//! --since`) check against the same `Bound`, so a value one surface accepts
//! the others accept too. tenement.toml(5) lists the same numbers.
//!
//! Also `later`: deadline arithmetic that saturates instead of panicking, for
//! every `Instant + Duration` built from a value that came from outside.

use std::time::{Duration, Instant};

/// An inclusive range a number must fall in, with the key and unit that
/// name it in errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bound {
    /// The key as written in the file, without its table (`startup_timeout`).
    pub key: &'static str,
    pub min: u64,
    pub max: u64,
    /// "seconds", "milliseconds", "bytes", "MiB", or "" for a plain count.
    pub unit: &'static str,
}

const DAY: u64 = 86_400;

pub const HEALTH_CHECK_INTERVAL: Bound = secs("health_check_interval", 1, DAY);
pub const RESTART_WINDOW: Bound = secs("restart_window", 1, 7 * DAY);
pub const BACKOFF_BASE_MS: Bound = Bound {
    key: "backoff_base_ms",
    min: 0,
    max: 3_600_000,
    unit: "milliseconds",
};
pub const BACKOFF_MAX_MS: Bound = Bound {
    key: "backoff_max_ms",
    min: 0,
    max: DAY * 1000,
    unit: "milliseconds",
};
pub const STOP_TIMEOUT: Bound = secs("stop_timeout", 0, 3_600);
pub const WORKERS: Bound = count("workers", 0, 1_024);
pub const LOG_MAX_BYTES: Bound = Bound {
    key: "log_max_bytes",
    min: 1,
    max: 1 << 40,
    unit: "bytes",
};
pub const LOG_FILES: Bound = count("log_files", 0, 1_000);
/// The default `uid_range`: where instance uids come from.
pub const UID_RANGE: (u32, u32) = (200_000, 265_535);
/// What `uid_range` may span: never 0 (root), and below 2^31, where uids
/// stay positive for every tool that reads them as a signed int.
pub const UID_RANGE_LIMITS: (u32, u32) = (1, 2_147_483_646);
pub const IDLE_TIMEOUT: Bound = secs("idle_timeout", 0, 30 * DAY);
pub const STARTUP_TIMEOUT: Bound = secs("startup_timeout", 1, DAY);
pub const REQUEST_TIMEOUT: Bound = secs("request_timeout", 1, DAY);
pub const MEMORY_LIMIT_MB: Bound = Bound {
    key: "memory_limit_mb",
    min: 1,
    max: 1 << 24,
    unit: "MiB",
};
/// Up to 16 TiB: bytes stay far from overflowing.
pub const STORAGE_QUOTA_MB: Bound = Bound {
    key: "storage_quota_mb",
    min: 1,
    max: 1 << 24,
    unit: "MiB",
};
/// The kernel's cgroup v2 `cpu.weight` range, in v1-style shares.
pub const CPU_SHARES: Bound = count("cpu_shares", 2, 262_144);
/// The kernel's PID_MAX_LIMIT.
pub const PIDS_MAX: Bound = count("pids_max", 1, 4_194_304);
/// `POST /api/deploy {"timeout_secs"}` and `ten deploy --timeout`: as long
/// as the longest `startup_timeout`.
pub const DEPLOY_TIMEOUT: Bound = secs("timeout_secs", 1, DAY);
/// `/api/logs?since=` and `ten logs --since`: ten years back at most.
pub const LOG_SINCE: Bound = secs("since", 0, 3_650 * DAY);
/// New on-demand certificate names per hour (Let's Encrypt allows 300
/// new orders per account every 3 hours).
pub const ACME_ON_DEMAND_PER_HOUR: Bound = count("acme_on_demand_per_hour", 1, 100);
/// How long an on-demand certificate outlives its instance's stop: up to
/// 30 days (0: removed as soon as the stop is seen).
pub const ACME_ON_DEMAND_KEEP: Bound = secs("acme_on_demand_keep", 0, 30 * DAY);
/// `acme_on_demand_keep` left out: an hour.
pub const ACME_ON_DEMAND_KEEP_DEFAULT: u64 = 3_600;

/// Every bound, in the order tenement.toml(5) lists them.
#[cfg(test)]
pub const ALL: &[Bound] = &[
    HEALTH_CHECK_INTERVAL,
    RESTART_WINDOW,
    BACKOFF_BASE_MS,
    BACKOFF_MAX_MS,
    STOP_TIMEOUT,
    WORKERS,
    LOG_MAX_BYTES,
    LOG_FILES,
    IDLE_TIMEOUT,
    STARTUP_TIMEOUT,
    REQUEST_TIMEOUT,
    MEMORY_LIMIT_MB,
    CPU_SHARES,
    PIDS_MAX,
    STORAGE_QUOTA_MB,
    DEPLOY_TIMEOUT,
    LOG_SINCE,
    ACME_ON_DEMAND_PER_HOUR,
    ACME_ON_DEMAND_KEEP,
];

const fn secs(key: &'static str, min: u64, max: u64) -> Bound {
    Bound {
        key,
        min,
        max,
        unit: "seconds",
    }
}

const fn count(key: &'static str, min: u64, max: u64) -> Bound {
    Bound {
        key,
        min,
        max,
        unit: "",
    }
}

impl Bound {
    /// `n` if it is within the bound, else why not (without the key: the
    /// caller names it the way its surface does).
    pub fn check(&self, n: u64) -> Result<u64, String> {
        if (self.min..=self.max).contains(&n) {
            return Ok(n);
        }
        let unit = if self.unit.is_empty() {
            String::new()
        } else {
            format!(" {}", self.unit)
        };
        Err(if n == 0 && self.min == 1 {
            format!("must be greater than 0: between 1 and {}{unit}", self.max)
        } else {
            format!(
                "must be between {} and {}{unit}, got {n}",
                self.min, self.max
            )
        })
    }
}

/// `now + d`, or, where that does not fit in an `Instant`, as far ahead as
/// fits among a year and a day: never a panic, never a deadline in the past.
pub fn later(now: Instant, d: Duration) -> Instant {
    now.checked_add(d)
        .or_else(|| now.checked_add(Duration::from_secs(366 * DAY)))
        .or_else(|| now.checked_add(Duration::from_secs(DAY)))
        .unwrap_or(now)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_bound_accepts_its_ends_and_refuses_beyond() {
        for b in ALL {
            assert_eq!(b.check(b.min), Ok(b.min), "{}", b.key);
            assert_eq!(b.check(b.max), Ok(b.max), "{}", b.key);
            for beyond in [b.max + 1, i64::MAX as u64, u64::MAX] {
                let why = b.check(beyond).unwrap_err();
                assert!(why.contains(&b.max.to_string()), "{}: {why}", b.key);
            }
            if b.min > 0 {
                assert!(b.check(b.min - 1).is_err(), "{}", b.key);
            }
            // The largest value accepted never overflows a deadline.
            let d = Duration::from_secs(b.max).max(Duration::from_millis(b.max));
            assert!(Instant::now().checked_add(d).is_some(), "{}", b.key);
        }
    }

    /// tenement.toml(5) lists every bound with its numbers.
    #[test]
    fn the_man_page_lists_every_bound() {
        let man = include_str!("../../man/tenement.toml.5");
        let limits = &man[man.find(".SH \"LIMITS\"").expect("LIMITS section")..];
        for b in ALL {
            let row = format!("{} to {}", b.min, b.max);
            let line = limits
                .lines()
                .find(|l| l.contains(b.key) && l.contains(&row));
            assert!(line.is_some(), "{} with {row} in tenement.toml.5", b.key);
        }
    }

    #[test]
    fn later_saturates_instead_of_panicking() {
        let now = Instant::now();
        assert_eq!(
            later(now, Duration::from_secs(5)),
            now + Duration::from_secs(5)
        );
        for d in [
            Duration::MAX,
            Duration::from_secs(u64::MAX),
            Duration::from_secs(i64::MAX as u64),
        ] {
            let at = later(now, d);
            assert!(at >= now + Duration::from_secs(DAY), "{d:?}");
        }
    }
}
