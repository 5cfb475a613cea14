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
/// creation to drop, and records its status and duration when dropped.
#[derive(Debug)]
pub struct Visit {
    pub stats: Arc<InstanceStats>,
    pub started: Instant,
    /// The response status once known; 0: none (nothing is recorded).
    pub status: u16,
}

impl Visit {
    pub fn new(stats: Arc<InstanceStats>) -> Visit {
        stats.open.fetch_add(1, Ordering::Relaxed);
        stats.touch();
        Visit {
            stats,
            started: Instant::now(),
            status: 0,
        }
    }

    pub fn bytes_in(&self, n: usize) {
        self.stats.bytes_in.fetch_add(n as u64, Ordering::Relaxed);
    }

    pub fn bytes_out(&self, n: usize) {
        self.stats.bytes_out.fetch_add(n as u64, Ordering::Relaxed);
    }
}

impl Drop for Visit {
    fn drop(&mut self) {
        self.stats.open.fetch_sub(1, Ordering::Relaxed);
        self.stats.touch();
        if self.status != 0 {
            let took: Duration = self.started.elapsed();
            self.stats.record(self.status, took);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_visit_counts_open_and_records_on_drop() {
        let stats = Arc::new(InstanceStats::default());
        let mut v = Visit::new(stats.clone());
        assert_eq!(stats.open.load(Ordering::Relaxed), 1);
        v.status = 404;
        drop(v);
        assert_eq!(stats.open.load(Ordering::Relaxed), 0);
        assert_eq!(stats.responses[3].load(Ordering::Relaxed), 1);
        assert_eq!(
            stats
                .duration_buckets
                .iter()
                .map(|b| b.load(Ordering::Relaxed))
                .sum::<u64>(),
            1
        );
        let v = Visit::new(stats.clone());
        drop(v);
        assert_eq!(
            stats
                .responses
                .iter()
                .map(|b| b.load(Ordering::Relaxed))
                .sum::<u64>(),
            1
        );
    }
}
