//! Where the supervisor keeps its `Instance` records: each in a slot of
//! its own, found by key through a hash index of slot numbers, and walked
//! in key order through a sorted list of slots (the published snapshot is
//! sorted by key, and searched by bisection).
//!
//! A health check looks its instance up a few dozen times. In a sorted
//! tree of ten thousand keys each lookup compared keys a dozen times and
//! more, each compare reading two strings elsewhere in memory; here it is
//! one hash of the key and, as a rule, one compare. The hash is keyed
//! afresh for each table (`RandomState`), so ids chosen by whoever can
//! create instances (autospawn takes them from host names) cannot be made
//! to collide. Owned by the supervisor thread. Pure: no I/O.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;

use super::table::Instance;
use crate::names::InstanceKey;

/// An index bucket holding no slot.
const EMPTY: u32 = u32::MAX;

#[derive(Debug, Default)]
pub struct Instances<S = RandomState> {
    /// The records; a free slot is None, its number kept in `free`.
    slots: Vec<Option<Instance>>,
    free: Vec<u32>,
    /// The occupied slots, in key order.
    order: Vec<u32>,
    /// Open addressing with linear probing: slot numbers, `EMPTY` where
    /// none; a power of two long (or empty), at most half full.
    index: Vec<u32>,
    /// How many instances hold each port (a port is set once, when the
    /// record is made): a new instance's port is picked without a set of
    /// every port made first. Empty until the first insert.
    ports: Vec<u16>,
    hasher: S,
}

/// `table[key]`: the record, which the caller knows is there.
impl<S: BuildHasher> std::ops::Index<&InstanceKey> for Instances<S> {
    type Output = Instance;

    fn index(&self, key: &InstanceKey) -> &Instance {
        self.get(key)
            .expect("an instance the caller found in the table")
    }
}

impl<S: BuildHasher> Instances<S> {
    pub fn len(&self) -> usize {
        self.order.len()
    }

    pub fn get(&self, key: &InstanceKey) -> Option<&Instance> {
        let (_, slot) = self.find(key)?;
        self.slots[slot as usize].as_ref()
    }

    pub fn get_mut(&mut self, key: &InstanceKey) -> Option<&mut Instance> {
        let (_, slot) = self.find(key)?;
        self.slots[slot as usize].as_mut()
    }

    pub fn contains_key(&self, key: &InstanceKey) -> bool {
        self.find(key).is_some()
    }

    /// Adds `inst` under its key; an instance already there under that key
    /// is replaced and returned.
    pub fn insert(&mut self, inst: Instance) -> Option<Instance> {
        if self.ports.is_empty() {
            self.ports = vec![0; usize::from(u16::MAX) + 1];
        }
        let port = usize::from(inst.port);
        self.ports[port] = self.ports[port].saturating_add(1);
        if let Some((_, slot)) = self.find(&inst.key) {
            let old = self.slots[slot as usize].replace(inst);
            if let Some(old) = &old {
                self.release_port(old.port);
            }
            return old;
        }
        if (self.order.len() + 1) * 2 > self.index.len() {
            self.grow();
        }
        let pos = self.position(&inst.key).unwrap_err();
        let home = self.bucket(&inst.key);
        let slot = match self.free.pop() {
            Some(s) => {
                self.slots[s as usize] = Some(inst);
                s
            }
            None => {
                self.slots.push(Some(inst));
                u32::try_from(self.slots.len() - 1).expect("fewer than 2^32 instances")
            }
        };
        self.place(home, slot);
        self.order.insert(pos, slot);
        None
    }

    /// Takes the instance under `key` out of the table.
    pub fn remove(&mut self, key: &InstanceKey) -> Option<Instance> {
        let (bucket, slot) = self.find(key)?;
        self.unplace(bucket);
        let pos = self.position(key).expect("an indexed key is in the order");
        self.order.remove(pos);
        self.free.push(slot);
        let inst = self.slots[slot as usize].take();
        if let Some(inst) = &inst {
            self.release_port(inst.port);
        }
        inst
    }

    /// Whether any instance holds `port`.
    pub fn port_in_use(&self, port: u16) -> bool {
        self.ports.get(usize::from(port)).is_some_and(|n| *n > 0)
    }

    fn release_port(&mut self, port: u16) {
        if let Some(n) = self.ports.get_mut(usize::from(port)) {
            *n = n.saturating_sub(1);
        }
    }

    /// The records in key order.
    pub fn values(&self) -> impl Iterator<Item = &Instance> {
        self.order.iter().map(|&s| self.record(s))
    }

    /// The keys, in order.
    pub fn keys(&self) -> impl Iterator<Item = &InstanceKey> {
        self.values().map(|i| &i.key)
    }

    /// The records, in no particular order.
    pub fn values_mut(&mut self) -> impl Iterator<Item = &mut Instance> {
        self.slots.iter_mut().flatten()
    }

    /// The record at `pos` in key order (0 is the first).
    pub fn nth(&self, pos: usize) -> Option<&Instance> {
        self.order.get(pos).map(|&s| self.record(s))
    }

    fn record(&self, slot: u32) -> &Instance {
        self.slots[slot as usize]
            .as_ref()
            .expect("`order` and `index` name occupied slots only")
    }

    /// Where `key` is in `order`: Ok(position), or Err(where it would go).
    fn position(&self, key: &InstanceKey) -> Result<usize, usize> {
        self.order
            .binary_search_by(|&s| self.record(s).key.cmp(key))
    }

    /// The bucket `key` hashes to.
    fn bucket(&self, key: &InstanceKey) -> usize {
        // Fibonacci hashing: the top bits of the product pick the bucket.
        let bits = self.index.len().trailing_zeros();
        let h = self
            .hasher
            .hash_one(key)
            .wrapping_mul(0x9e37_79b9_7f4a_7c15);
        match bits {
            0 => 0,
            b => (h >> (64 - b)) as usize,
        }
    }

    /// (bucket, slot) of `key`.
    fn find(&self, key: &InstanceKey) -> Option<(usize, u32)> {
        if self.index.is_empty() {
            return None;
        }
        let mask = self.index.len() - 1;
        let mut b = self.bucket(key);
        loop {
            match self.index[b] {
                EMPTY => return None,
                s if self.record(s).key == *key => return Some((b, s)),
                _ => b = (b + 1) & mask,
            }
        }
    }

    /// Puts `slot` in the first empty bucket from `home` on.
    fn place(&mut self, home: usize, slot: u32) {
        let mask = self.index.len() - 1;
        let mut b = home;
        while self.index[b] != EMPTY {
            b = (b + 1) & mask;
        }
        self.index[b] = slot;
    }

    /// Empties `bucket`, moving back the entries after it that would no
    /// longer be found past the gap (deletion without tombstones).
    fn unplace(&mut self, bucket: usize) {
        let mask = self.index.len() - 1;
        let mut hole = bucket;
        let mut j = bucket;
        loop {
            j = (j + 1) & mask;
            let s = self.index[j];
            if s == EMPTY {
                break;
            }
            let home = self.bucket(&self.record(s).key);
            // The entry at j may fill the hole when its home is not in
            // (hole, j]: it probed past the hole to get where it is.
            if (j.wrapping_sub(home) & mask) >= (j.wrapping_sub(hole) & mask) {
                self.index[hole] = s;
                hole = j;
            }
        }
        self.index[hole] = EMPTY;
    }

    /// Doubles the index (at least 16 buckets) and places every slot again.
    fn grow(&mut self) {
        let size = (self.index.len() * 2).max(16);
        self.index = vec![EMPTY; size];
        for i in 0..self.order.len() {
            let slot = self.order[i];
            let home = self.bucket(&self.record(slot).key);
            self.place(home, slot);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::supervisor::lifecycle::Life;
    use crate::supervisor::logs::LogFile;
    use crate::supervisor::snapshot::State;

    fn inst(id: &str, port: u16) -> Instance {
        let log = LogFile::open(std::path::PathBuf::from("/nonexistent/log"), 1024, 1);
        Instance::new(key(id), port, 100, Life::new(State::Sleeping), log)
    }

    fn key(id: &str) -> InstanceKey {
        InstanceKey::new("svc", id).unwrap()
    }

    /// Inserts and removes thousands of keys in a scrambled order, and
    /// after every step compares the table with a BTreeMap doing the same:
    /// same lookups, same order, same length.
    #[test]
    fn behaves_as_a_sorted_map_through_inserts_and_removes() {
        use std::collections::BTreeMap;
        let mut t: Instances = Instances::default();
        let mut model: BTreeMap<InstanceKey, u16> = BTreeMap::new();
        // A fixed walk through 0..3000 in a scrambled order (7919 is prime).
        let ids: Vec<u32> = (0..6000u32).map(|i| (i * 7919) % 3000).collect();
        for (step, n) in ids.iter().enumerate() {
            let id = format!("i{n}");
            let k = key(&id);
            match model.remove(&k) {
                Some(port) => {
                    let got = t.remove(&k).expect("present in the model");
                    assert_eq!((got.key, got.port), (k.clone(), port));
                    assert!(t.get(&k).is_none() && !t.contains_key(&k));
                    assert!(!t.port_in_use(port), "port {port} freed");
                }
                None => {
                    // A port of its own (steps are distinct).
                    let port = step as u16;
                    assert!(t.insert(inst(&id, port)).is_none());
                    model.insert(k.clone(), port);
                    assert_eq!(t.get(&k).map(|i| i.port), Some(port));
                    assert!(t.port_in_use(port));
                }
            }
            assert_eq!(t.len(), model.len());
            if step % 500 == 0 {
                let keys: Vec<&InstanceKey> = t.keys().collect();
                assert_eq!(keys, model.keys().collect::<Vec<_>>(), "step {step}");
                for (k, port) in &model {
                    assert_eq!(t.get(k).map(|i| i.port), Some(*port), "{k} at step {step}");
                }
                assert_eq!(t.nth(0).map(|i| &i.key), model.keys().next());
            }
        }
        // Every id went in and out again, except the ones inserted last.
        assert_eq!(t.len(), model.len());
        assert_eq!(t.values_mut().count(), model.len());
    }

    #[test]
    fn an_insert_under_a_present_key_replaces_the_record() {
        let mut t: Instances = Instances::default();
        assert!(t.insert(inst("a", 1)).is_none());
        let old = t.insert(inst("a", 2)).expect("the first record");
        assert_eq!(old.port, 1);
        assert_eq!(t.len(), 1);
        assert_eq!(t.get(&key("a")).map(|i| i.port), Some(2));
        assert!(
            t.port_in_use(2) && !t.port_in_use(1),
            "the old record's port is free"
        );
        let mut empty: Instances = Instances::default();
        assert!(empty.get(&key("a")).is_none() && empty.remove(&key("a")).is_none());
        assert!(empty.nth(0).is_none());
    }

    /// Hashes every key alike: all of them share one probe run.
    #[derive(Default)]
    struct Same;
    impl std::hash::Hasher for Same {
        fn finish(&self) -> u64 {
            7
        }
        fn write(&mut self, _: &[u8]) {}
    }

    /// With every key in one probe run, each remove (from the front, the
    /// middle, the end) leaves the others found, and a key put back is
    /// found again.
    #[test]
    fn removing_from_a_probe_run_keeps_the_rest_found() {
        let mut t: Instances<std::hash::BuildHasherDefault<Same>> = Instances::default();
        let ids: Vec<String> = (0..12).map(|i| format!("k{i}")).collect();
        for (i, id) in ids.iter().enumerate() {
            t.insert(inst(id, i as u16));
        }
        for gone in [0usize, 6, 11, 3, 9] {
            assert_eq!(
                t.remove(&key(&ids[gone])).map(|i| i.port),
                Some(gone as u16)
            );
            assert!(t.get(&key(&ids[gone])).is_none());
        }
        let left = [1usize, 2, 4, 5, 7, 8, 10];
        for i in left {
            assert_eq!(
                t.get(&key(&ids[i])).map(|x| x.port),
                Some(i as u16),
                "{}",
                ids[i]
            );
        }
        t.insert(inst(&ids[6], 66));
        assert_eq!(t.get(&key(&ids[6])).map(|x| x.port), Some(66));
        assert_eq!(t.len(), left.len() + 1);
        let keys: Vec<String> = t.keys().map(|k| k.id.to_string()).collect();
        let mut sorted = keys.clone();
        sorted.sort();
        assert_eq!(keys, sorted);
    }
}
