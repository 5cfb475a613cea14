//! Slowing down token guessing: failed authentications are counted per
//! client address, and an address with `LIMIT` failures within `WINDOW` gets
//! 429 with `Retry-After` on every request that needs a token until the
//! oldest of those failures is `WINDOW` old. Requests on `ten.sock` never
//! reach this table, so the local CLI can never be locked out.
//!
//! One table is shared by every front loop (a client's connections land on
//! different loops). It holds at most `CAPACITY` addresses: when full, the
//! addresses with no failure inside the window go first, then the one whose
//! last failure is oldest. IPv6 addresses count per /64, the block a single
//! host usually gets. Pure apart from the lock: the caller passes `now`.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Failures from one address within `WINDOW` that trigger 429.
pub const LIMIT: usize = 10;
/// The span `LIMIT` failures are counted in.
pub const WINDOW: Duration = Duration::from_secs(60);
/// Most addresses remembered at once (about 200 bytes each, so the table
/// stays under 2 MiB with the map's spare room).
pub const CAPACITY: usize = 4096;

/// The failed-authentication table.
#[derive(Debug)]
pub struct Throttle {
    table: Mutex<Table>,
    capacity: usize,
}

impl Default for Throttle {
    fn default() -> Throttle {
        Throttle::with_capacity(CAPACITY)
    }
}

#[derive(Debug, Default)]
struct Table {
    by_addr: HashMap<IpAddr, Failures>,
}

/// The last `LIMIT` failures of one address, as a ring.
#[derive(Debug, Clone, Copy)]
struct Failures {
    at: [Option<Instant>; LIMIT],
    /// Where the next failure is written: the oldest slot.
    next: usize,
}

impl Failures {
    fn newest(&self) -> Option<Instant> {
        self.at[(self.next + LIMIT - 1) % LIMIT]
    }

    /// The oldest of the last `LIMIT` failures, once there are `LIMIT`.
    fn oldest(&self) -> Option<Instant> {
        self.at[self.next]
    }
}

/// The address failures are counted under: IPv4 as is (IPv4-mapped IPv6
/// too), IPv6 cut to its /64.
fn key(addr: IpAddr) -> IpAddr {
    match addr.to_canonical() {
        IpAddr::V6(v6) => {
            let s = v6.segments();
            IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
        }
        v4 => v4,
    }
}

impl Throttle {
    /// A table holding at most `capacity` addresses.
    pub fn with_capacity(capacity: usize) -> Throttle {
        Throttle {
            table: Mutex::new(Table::default()),
            capacity: capacity.max(1),
        }
    }

    /// How long `addr` must wait before its next attempt; None: it may try
    /// now.
    pub fn blocked(&self, addr: IpAddr, now: Instant) -> Option<Duration> {
        let table = self.table.lock().unwrap_or_else(|e| e.into_inner());
        let oldest = table.by_addr.get(&key(addr))?.oldest()?;
        let age = now.saturating_duration_since(oldest);
        (age < WINDOW).then(|| WINDOW - age)
    }

    /// Counts a failed authentication from `addr`. Returns true when this
    /// failure is the one that blocks it (to log that once).
    pub fn fail(&self, addr: IpAddr, now: Instant) -> bool {
        let addr = key(addr);
        let mut table = self.table.lock().unwrap_or_else(|e| e.into_inner());
        if !table.by_addr.contains_key(&addr) && table.by_addr.len() >= self.capacity {
            table.make_room(self.capacity, now);
        }
        let f = table.by_addr.entry(addr).or_insert(Failures {
            at: [None; LIMIT],
            next: 0,
        });
        f.at[f.next] = Some(now);
        f.next = (f.next + 1) % LIMIT;
        f.oldest()
            .is_some_and(|o| now.saturating_duration_since(o) < WINDOW)
    }

    /// How many addresses the table holds.
    #[cfg(test)]
    fn len(&self) -> usize {
        let table = self.table.lock().unwrap_or_else(|e| e.into_inner());
        table.by_addr.len()
    }
}

impl Table {
    /// Frees at least one slot: drops every address whose last failure is
    /// outside the window (it can no longer be blocked); if that frees
    /// nothing, the address whose last failure is oldest, preferring one
    /// that is not blocked, so a spray of guesses from many addresses does
    /// not unblock the one that earned it.
    fn make_room(&mut self, capacity: usize, now: Instant) {
        let within =
            |t: Option<Instant>| t.is_some_and(|t| now.saturating_duration_since(t) < WINDOW);
        self.by_addr.retain(|_, f| within(f.newest()));
        if self.by_addr.len() < capacity {
            return;
        }
        let stalest = self
            .by_addr
            .iter()
            .min_by_key(|(_, f)| (within(f.oldest()), f.newest()))
            .map(|(a, _)| *a);
        if let Some(a) = stalest {
            self.by_addr.remove(&a);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn ten_failures_in_a_minute_block_until_the_oldest_is_a_minute_old() {
        let t = Throttle::default();
        let start = Instant::now();
        let a = ip("203.0.113.7");
        for i in 0..LIMIT {
            assert_eq!(t.blocked(a, start), None, "before failure {}", i + 1);
            let now = start + Duration::from_secs(i as u64);
            assert_eq!(t.fail(a, now), i + 1 == LIMIT, "failure {}", i + 1);
        }
        let now = start + Duration::from_secs(9);
        assert_eq!(t.blocked(a, now), Some(Duration::from_secs(51)));
        // Another address is not affected.
        assert_eq!(t.blocked(ip("203.0.113.8"), now), None);
        // Free again once the first failure is a minute old...
        assert_eq!(t.blocked(a, start + WINDOW), None);
        // ...but one more failure then blocks again until the second one ages.
        assert!(t.fail(a, start + WINDOW));
        assert_eq!(t.blocked(a, start + WINDOW), Some(Duration::from_secs(1)));
    }

    #[test]
    fn failures_spread_over_more_than_a_minute_never_block() {
        let t = Throttle::default();
        let start = Instant::now();
        let a = ip("198.51.100.1");
        for i in 0..100u64 {
            let now = start + Duration::from_secs(i * 7);
            assert_eq!(t.blocked(a, now), None, "at {}s", i * 7);
            assert!(!t.fail(a, now));
        }
    }

    #[test]
    fn ipv6_counts_per_64_and_mapped_v4_as_v4() {
        let t = Throttle::default();
        let now = Instant::now();
        for i in 0..LIMIT {
            t.fail(ip(&format!("2001:db8:1:2::{:x}", i + 1)), now);
        }
        assert!(t.blocked(ip("2001:db8:1:2:ffff::1"), now).is_some());
        assert_eq!(t.blocked(ip("2001:db8:1:3::1"), now), None);
        for _ in 0..LIMIT {
            t.fail(ip("::ffff:192.0.2.1"), now);
        }
        assert!(t.blocked(ip("192.0.2.1"), now).is_some());
    }

    #[test]
    fn the_table_is_bounded_and_keeps_blocked_addresses() {
        let t = Throttle::with_capacity(64);
        let start = Instant::now();
        let blocked = ip("192.0.2.200");
        for _ in 0..LIMIT {
            t.fail(blocked, start);
        }
        // A spray of one failure each from many addresses, later on.
        for i in 0..10_000u32 {
            let a = IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000 + i));
            t.fail(a, start + Duration::from_millis(1 + u64::from(i) / 1000));
            assert!(t.len() <= 64, "{} addresses held", t.len());
        }
        assert!(t
            .blocked(blocked, start + Duration::from_secs(11))
            .is_some());
        // Once the window has passed, the old entries make room first.
        let later = start + WINDOW + Duration::from_secs(1);
        let fresh = ip("192.0.2.201");
        for _ in 0..LIMIT {
            t.fail(fresh, later);
        }
        assert!(t.blocked(fresh, later).is_some());
        assert!(t.len() <= 64);
    }
}
