//! When each instance next needs the supervisor's attention, indexed by
//! time: the loop sleeps until the first entry and, when it wakes, looks
//! only at the instances that are due, not at all of them. With thousands
//! of instances (most asleep, with no deadline at all) and a health check
//! every few milliseconds somewhere, a scan of the whole table per wake-up
//! would cost more than everything else the supervisor does.
//!
//! The index holds one deadline per instance (the earliest of its own),
//! kept in a min-heap with lazy deletion: moving a deadline pushes a new
//! entry and the old one is skipped when it comes up. Which instances to
//! recompute after a round is the caller's business (`touch`, `touch_all`).
//! Pure: no clock, no I/O.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::time::Instant;

use crate::names::InstanceKey;

#[derive(Debug, Default)]
pub struct Timers {
    heap: BinaryHeap<Reverse<(Instant, InstanceKey)>>,
    /// Each scheduled instance's current deadline; a heap entry that does
    /// not match it is stale.
    due: HashMap<InstanceKey, Instant>,
    /// Instances whose deadline must be recomputed after this round.
    touched: HashSet<InstanceKey>,
    /// Recompute every instance's (a command that may concern any of them).
    all: bool,
}

impl Timers {
    /// `key`'s deadlines may have moved.
    pub fn touch(&mut self, key: &InstanceKey) {
        if !self.all && !self.touched.contains(key) {
            self.touched.insert(key.clone());
        }
    }

    /// Any instance's deadlines may have moved.
    pub fn touch_all(&mut self) {
        self.all = true;
        self.touched.clear();
    }

    /// What to recompute: None means every instance, else these keys.
    /// Clears the marks.
    pub fn take_touched(&mut self) -> Option<Vec<InstanceKey>> {
        if std::mem::take(&mut self.all) {
            return None;
        }
        Some(self.touched.drain().collect())
    }

    /// Sets `key`'s deadline (None: it has none).
    pub fn set(&mut self, key: &InstanceKey, at: Option<Instant>) {
        match at {
            Some(t) => {
                if self.due.get(key) != Some(&t) {
                    self.due.insert(key.clone(), t);
                    self.heap.push(Reverse((t, key.clone())));
                }
            }
            None => {
                self.due.remove(key);
            }
        }
        // Stale entries are dropped as they come up; when they pile up (many
        // deadlines moved later) the heap is rebuilt from `due`.
        if self.heap.len() > 64 + 4 * self.due.len() {
            self.heap = self
                .due
                .iter()
                .map(|(k, t)| Reverse((*t, k.clone())))
                .collect();
        }
    }

    /// Forgets every deadline (before recomputing all of them).
    pub fn clear(&mut self) {
        self.heap.clear();
        self.due.clear();
    }

    /// The earliest deadline, if any.
    pub fn next(&mut self) -> Option<Instant> {
        self.drop_stale();
        self.heap.peek().map(|Reverse((t, _))| *t)
    }

    /// The instances due at `now`, earliest first, unscheduled: the caller
    /// runs their timers and touches them, which schedules them again.
    pub fn pop_due(&mut self, now: Instant) -> Vec<InstanceKey> {
        let mut out = Vec::new();
        loop {
            self.drop_stale();
            match self.heap.peek() {
                Some(Reverse((t, _))) if *t <= now => {
                    let Some(Reverse((_, key))) = self.heap.pop() else {
                        break;
                    };
                    self.due.remove(&key);
                    out.push(key);
                }
                _ => break,
            }
        }
        out
    }

    fn drop_stale(&mut self) {
        while let Some(Reverse((t, key))) = self.heap.peek() {
            if self.due.get(key) == Some(t) {
                return;
            }
            self.heap.pop();
        }
    }

    /// Instances with a deadline.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.due.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn key(id: &str) -> InstanceKey {
        InstanceKey::new("svc", id).unwrap()
    }

    #[test]
    fn pops_only_what_is_due_earliest_first() {
        let t0 = Instant::now();
        let mut t = Timers::default();
        t.set(&key("c"), Some(t0 + Duration::from_secs(3)));
        t.set(&key("a"), Some(t0 + Duration::from_secs(1)));
        t.set(&key("b"), Some(t0 + Duration::from_secs(2)));
        t.set(&key("z"), None);
        assert_eq!(t.next(), Some(t0 + Duration::from_secs(1)));
        assert_eq!(
            t.pop_due(t0 + Duration::from_secs(2)),
            vec![key("a"), key("b")]
        );
        assert_eq!(t.next(), Some(t0 + Duration::from_secs(3)));
        assert_eq!(t.len(), 1);
        assert!(t.pop_due(t0 + Duration::from_millis(2999)).is_empty());
    }

    #[test]
    fn a_moved_deadline_replaces_the_old_one() {
        let t0 = Instant::now();
        let mut t = Timers::default();
        t.set(&key("a"), Some(t0 + Duration::from_secs(1)));
        t.set(&key("a"), Some(t0 + Duration::from_secs(5)));
        assert_eq!(t.next(), Some(t0 + Duration::from_secs(5)));
        assert!(t.pop_due(t0 + Duration::from_secs(2)).is_empty());
        t.set(&key("a"), Some(t0 + Duration::from_secs(1)));
        assert_eq!(t.pop_due(t0 + Duration::from_secs(2)), vec![key("a")]);
        t.set(&key("a"), Some(t0 + Duration::from_secs(1)));
        t.set(&key("a"), None);
        assert_eq!(t.next(), None);
        assert!(t.pop_due(t0 + Duration::from_secs(9)).is_empty());
    }

    #[test]
    fn stale_entries_do_not_pile_up() {
        let t0 = Instant::now();
        let mut t = Timers::default();
        for i in 0..10_000u64 {
            t.set(&key("a"), Some(t0 + Duration::from_millis(i)));
        }
        assert!(t.heap.len() <= 64 + 4, "{} entries kept", t.heap.len());
        assert_eq!(t.next(), Some(t0 + Duration::from_millis(9_999)));
    }

    #[test]
    fn touched_keys_are_handed_out_once() {
        let mut t = Timers::default();
        t.touch(&key("a"));
        t.touch(&key("a"));
        t.touch(&key("b"));
        let mut got = t.take_touched().unwrap();
        got.sort();
        assert_eq!(got, vec![key("a"), key("b")]);
        assert_eq!(t.take_touched(), Some(vec![]));
        t.touch(&key("a"));
        t.touch_all();
        t.touch(&key("b"));
        assert_eq!(t.take_touched(), None);
        assert_eq!(t.take_touched(), Some(vec![]));
    }
}
