//! Front-wide counters shared by every loop and read by `/metrics`.
//! Relaxed atomics: each is a counter or gauge read on its own.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::supervisor::snapshot::InstanceStats;

/// Statuses the front refuses requests with, in `refused` order.
pub const REFUSED_STATUSES: [u16; 6] = [400, 408, 413, 414, 431, 503];

#[derive(Debug, Default)]
pub struct FrontStats {
    /// Client connections open now.
    pub open: AtomicU64,
    /// Client connections accepted since start.
    pub accepted: AtomicU64,
    /// Requests the front answered itself with an error, by `REFUSED_STATUSES`.
    pub refused: [AtomicU64; 6],
    /// Times accepting paused because the connection cap was reached.
    pub accept_paused: AtomicU64,
}

impl FrontStats {
    pub fn refused(&self, status: u16) {
        if let Some(i) = REFUSED_STATUSES.iter().position(|&s| s == status) {
            self.refused[i].fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// One request's stay at an instance: counts it as an open connection from
/// creation to its end (`finish` or drop), and records its status and
/// duration then. Times are the loop's clock, read once per poll (what a
/// request waited within one batch of events is not counted). Counts go to the shard of the loop that made it, so loops
/// do not contend (see `InstanceStats::shard`).
#[derive(Debug)]
pub struct Visit {
    /// Some until the visit ends.
    stats: Option<Arc<InstanceStats>>,
    /// The loop's shard index.
    shard: usize,
    pub started: Instant,
    /// The response status once known; 0: none (nothing is recorded).
    pub status: u16,
}

impl Visit {
    /// A visit counted by front loop `shard`, from `now`.
    pub fn new(stats: Arc<InstanceStats>, shard: usize, now: Instant) -> Visit {
        stats.shard(shard).open.fetch_add(1, Ordering::Relaxed);
        stats.touch(now);
        Visit {
            stats: Some(stats),
            shard,
            started: now,
            status: 0,
        }
    }

    pub fn bytes_in(&self, n: usize) {
        if let Some(s) = &self.stats {
            s.shard(self.shard)
                .bytes_in
                .fetch_add(n as u64, Ordering::Relaxed);
        }
    }

    pub fn bytes_out(&self, n: usize) {
        if let Some(s) = &self.stats {
            s.shard(self.shard)
                .bytes_out
                .fetch_add(n as u64, Ordering::Relaxed);
        }
    }

    /// Ends the visit at `now` and hands back the instance's counters, so
    /// the next visit there needs no new reference (no shared count to
    /// bump).
    pub fn finish(mut self, now: Instant) -> Option<Arc<InstanceStats>> {
        self.end(now)
    }

    fn end(&mut self, now: Instant) -> Option<Arc<InstanceStats>> {
        let stats = self.stats.take()?;
        let traffic = stats.shard(self.shard);
        traffic.open.fetch_sub(1, Ordering::Relaxed);
        stats.touch(now);
        if self.status != 0 {
            let took: Duration = now.saturating_duration_since(self.started);
            traffic.record(self.status, took);
        }
        Some(stats)
    }
}

impl Drop for Visit {
    fn drop(&mut self) {
        self.end(Instant::now());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_visit_counts_open_and_records_on_drop() {
        let stats = Arc::new(InstanceStats::default());
        let mut v = Visit::new(stats.clone(), 0, Instant::now());
        let mut w = Visit::new(stats.clone(), 1, Instant::now());
        assert_eq!(stats.open(), 2);
        v.status = 404;
        drop(v);
        assert_eq!(stats.open(), 1);
        assert_eq!(stats.responses(3), 1);
        assert_eq!(stats.durations().0.iter().sum::<u64>(), 1);
        // Another loop's visit, ended by `finish`, counts the same way.
        w.status = 200;
        w.bytes_in(10);
        let back = w.finish(Instant::now()).expect("the counters come back");
        assert!(Arc::ptr_eq(&back, &stats));
        assert_eq!(stats.open(), 0);
        assert_eq!(stats.responses(1), 1);
        assert_eq!(stats.bytes_in(), 10);
        let v = Visit::new(stats.clone(), 5, Instant::now());
        drop(v);
        assert_eq!((0..5).map(|c| stats.responses(c)).sum::<u64>(), 2);
    }
}
