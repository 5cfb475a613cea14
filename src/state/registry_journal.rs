//! The registry's journal, `{data_dir}/.tenement/state.journal`: the
//! entries changed since `state` was last written whole, appended one line
//! each and fsynced, so a change costs a line, not a rewrite of every
//! entry. `Journal::compact` writes `state` whole again (atomically, with
//! the next generation) and starts an empty journal.
//!
//! Each line is `{checksum} {record}\n`: the first 16 hex digits of the
//! record's SHA-256, a space, and one JSON record: `{"generation": N}`
//! first (the `state` this journal continues), then `{"put": entry}` or
//! `{"remove": {"service": ..., "id": ...}}`. A journal of another
//! generation than `state`'s was left by a crash during a compaction (or
//! by an older ten that rewrote `state`) and is already in `state`: it is
//! ignored. A line that is not whole (no newline, a wrong checksum, not a
//! record) can only be the last write, cut by a crash before its fsync:
//! the command it was for was never answered, so it and anything after it
//! are dropped (and said so), and the next append starts where it began.
//!
//! Read and written by the supervisor thread only. Blocks on fsync.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::registry::{Registry, RegistryEntry};
use super::StateError;
use crate::names::InstanceKey;

/// A journal smaller than this is never compacted, however small `state`.
const MIN_COMPACT_BYTES: u64 = 256 * 1024;

/// One line's record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Record {
    /// The generation of the `state` this journal continues: the first line.
    Generation(u64),
    /// The entry as it is now (new or changed).
    Put(RegistryEntry),
    /// The instance is gone.
    Remove { service: String, id: String },
}

/// `{data_dir}/.tenement/state.journal` beside `state`.
pub fn path_for(state: &Path) -> PathBuf {
    let mut name = state.as_os_str().to_os_string();
    name.push(".journal");
    PathBuf::from(name)
}

/// What reading the journal found beyond the entries.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Replay {
    /// Bytes of whole lines of this generation: where the next append goes.
    pub good_len: u64,
    /// Records applied (the generation line not counted).
    pub records: usize,
    /// A torn last write: (its offset, the bytes dropped from there).
    pub torn: Option<(u64, u64)>,
    /// The journal belonged to another generation of `state` (which holds
    /// it already): its generation.
    pub stale: Option<u64>,
}

impl Replay {
    /// What a log line says about a torn or stale journal; None when there
    /// is nothing to say.
    pub fn note(&self, journal: &Path) -> Option<String> {
        if let Some((at, dropped)) = self.torn {
            return Some(format!(
                "{}: the last write was cut short (a crash before it was synced): \
                 {dropped} bytes from offset {at} ignored; the {} whole records before it are kept",
                journal.display(),
                self.records
            ));
        }
        self.stale.map(|g| {
            format!(
                "{}: generation {g} is older than the state file's, which holds it already: ignored",
                journal.display()
            )
        })
    }
}

/// The checksum a line carries: the first 8 bytes of the record's SHA-256,
/// in hex.
fn checksum(record: &[u8]) -> String {
    super::sha256::hex(&super::sha256::digest(record)[..8])
}

/// One line for `record`, newline included.
pub fn line(record: &Record) -> Vec<u8> {
    let json = serde_json::to_vec(record).expect("a record serialises to json");
    let mut out = Vec::with_capacity(json.len() + 18);
    out.extend_from_slice(checksum(&json).as_bytes());
    out.push(b' ');
    out.extend_from_slice(&json);
    out.push(b'\n');
    out
}

/// Parses one line (without its newline); None: not whole.
fn parse_line(text: &[u8]) -> Option<Record> {
    let (sum, json) = (text.get(..16)?, text.get(17..)?);
    if text[16] != b' ' || checksum(json).as_bytes() != sum {
        return None;
    }
    serde_json::from_slice(json).ok()
}

/// Applies the journal `bytes` to `registry` (as `state` had it): the
/// registry as the journal leaves it, and what was found. Entries keep
/// their place; new ones go at the end.
pub fn replay(registry: &mut Registry, bytes: &[u8]) -> Replay {
    let mut found = Replay::default();
    let mut at = 0usize;
    let mut index: Option<HashMap<(String, String), usize>> = None;
    let mut slots: Vec<Option<RegistryEntry>> = Vec::new();
    while at < bytes.len() {
        let record = bytes[at..]
            .iter()
            .position(|&b| b == b'\n')
            .and_then(|end| Some((parse_line(&bytes[at..at + end])?, end)));
        let Some((record, end)) = record else {
            found.torn = Some((at as u64, (bytes.len() - at) as u64));
            break;
        };
        match (record, index.is_some()) {
            (Record::Generation(g), false) if g == registry.generation => {
                slots = std::mem::take(&mut registry.instances)
                    .into_iter()
                    .map(Some)
                    .collect();
                index = Some(
                    slots
                        .iter()
                        .enumerate()
                        .filter_map(|(i, e)| e.as_ref().map(|e| (key(e), i)))
                        .collect(),
                );
            }
            (Record::Generation(g), false) => {
                found.stale = Some(g);
                return found;
            }
            (Record::Put(entry), true) => {
                let index = index.as_mut().expect("matched");
                match index.get(&key(&entry)) {
                    Some(&i) => slots[i] = Some(entry),
                    None => {
                        index.insert(key(&entry), slots.len());
                        slots.push(Some(entry));
                    }
                }
                found.records += 1;
            }
            (Record::Remove { service, id }, true) => {
                let index = index.as_mut().expect("matched");
                if let Some(i) = index.remove(&(service, id)) {
                    slots[i] = None;
                }
                found.records += 1;
            }
            // A record before the generation line, or a second one: not
            // what this ten writes. Treated like a torn write.
            _ => {
                found.torn = Some((at as u64, (bytes.len() - at) as u64));
                break;
            }
        }
        at += end + 1;
        found.good_len = at as u64;
    }
    if index.is_some() {
        registry.instances = slots.into_iter().flatten().collect();
    } else {
        // Not even a generation line: nothing of it counts.
        found.good_len = 0;
    }
    found
}

fn key(e: &RegistryEntry) -> (String, String) {
    (e.service.clone(), e.id.clone())
}

/// What `saved` keeps of an entry: equal entries, equal fingerprints.
fn fingerprint(e: &RegistryEntry) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    e.hash(&mut h);
    h.finish()
}

/// The instance of an entry; None for names the API would refuse (which
/// `Registry::validate` reports before anything is opened).
fn entry_key(e: &RegistryEntry) -> Option<InstanceKey> {
    InstanceKey::new(&e.service, &e.id).ok()
}

fn io_err(path: &Path, op: &'static str, source: std::io::Error) -> StateError {
    StateError::Io {
        path: path.to_path_buf(),
        op,
        source,
    }
}

/// The registry on disk, open for changes: `state` plus the journal.
#[derive(Debug)]
pub struct Journal {
    state: PathBuf,
    path: PathBuf,
    /// Open for appending at `len`; None until the first append (or after
    /// a failed one: it is opened again, and cut back to `len`).
    file: Option<File>,
    /// Bytes of whole lines in the journal.
    len: u64,
    /// `state`'s generation, which the journal continues.
    generation: u64,
    /// The size of `state` when last written whole.
    state_bytes: u64,
    /// A fingerprint of every entry as the files hold it (not the entry:
    /// with ten thousand instances a copy of each would cost megabytes).
    saved: HashMap<InstanceKey, u64>,
    /// The journal is compacted once larger than this and `state`.
    min_compact: u64,
}

impl Journal {
    /// Reads `state` and its journal (see `Registry::load`) and opens them
    /// for changes. The `Replay` says what was found (for the log).
    pub fn open(state: &Path) -> Result<(Journal, Registry, Replay), StateError> {
        let (registry, replay) = Registry::load_replayed(state)?;
        let state_bytes = std::fs::metadata(state).map(|m| m.len()).unwrap_or(0);
        let mut journal = Journal {
            state: state.to_path_buf(),
            path: path_for(state),
            file: None,
            len: replay.good_len,
            generation: registry.generation,
            state_bytes,
            saved: registry
                .instances
                .iter()
                .filter_map(|e| Some((entry_key(e)?, fingerprint(e))))
                .collect(),
            min_compact: MIN_COMPACT_BYTES,
        };
        if registry.generation == 0 {
            // Written before journals (or by hand), or no file yet: a
            // journal needs a generation of its own to continue.
            journal.compact(registry.instances.clone())?;
        } else if replay.good_len == 0 {
            // No journal of this generation yet (or none whole): start one.
            journal.restart_journal()?;
        }
        Ok((journal, registry, replay))
    }

    /// Whether the files hold `key`'s entry as `entry` (None: they hold
    /// none).
    pub fn holds(&self, key: &InstanceKey, entry: Option<&RegistryEntry>) -> bool {
        self.saved.get(key).copied() == entry.map(fingerprint)
    }

    /// The instances the files hold.
    pub fn keys(&self) -> impl Iterator<Item = &InstanceKey> {
        self.saved.keys()
    }

    /// Appends `records` and fsyncs: once this returns Ok they survive a
    /// crash. Err: nothing of them counts (the journal is cut back to
    /// where it was).
    pub fn append(&mut self, records: &[Record]) -> Result<(), StateError> {
        if records.is_empty() {
            return Ok(());
        }
        let mut bytes = Vec::new();
        for r in records {
            bytes.extend_from_slice(&line(r));
        }
        let mut file = self.file_at_end()?;
        let written = match file.write_all(&bytes) {
            Ok(()) => file.sync_data().map_err(|e| ("fsync", e)),
            Err(e) => Err(("write", e)),
        };
        if let Err((op, e)) = written {
            // Whatever reached the file is cut off now (a crash before the
            // next append must not find a whole line of a refused change),
            // or failing that when the file is opened for the next append.
            let len = self.len;
            let cut = file
                .set_len(len)
                .and_then(|()| file.sync_data())
                .and_then(|()| std::io::Seek::seek(&mut file, std::io::SeekFrom::Start(len)));
            if cut.is_ok() {
                self.file = Some(file);
            }
            return Err(io_err(&self.path, op, e));
        }
        self.file = Some(file);
        self.len += bytes.len() as u64;
        for r in records {
            match r {
                Record::Put(e) => {
                    if let Some(k) = entry_key(e) {
                        self.saved.insert(k, fingerprint(e));
                    }
                }
                Record::Remove { service, id } => {
                    if let Ok(k) = InstanceKey::new(service, id) {
                        self.saved.remove(&k);
                    }
                }
                Record::Generation(_) => {}
            }
        }
        Ok(())
    }

    /// Whether the journal has grown past `state`'s size (and the least
    /// worth a rewrite): time to `compact`.
    pub fn compact_due(&self) -> bool {
        self.len > self.min_compact.max(self.state_bytes)
    }

    /// Writes `state` whole with the next generation, holding `instances`
    /// (every entry as the files hold it, or newer), then an empty journal
    /// of that generation. A crash between the two leaves a journal of the
    /// old generation, which the next start ignores: `state` holds all of
    /// it.
    pub fn compact(&mut self, mut instances: Vec<RegistryEntry>) -> Result<(), StateError> {
        instances.sort_by(|a, b| (&a.service, &a.id).cmp(&(&b.service, &b.id)));
        self.saved = instances
            .iter()
            .filter_map(|e| Some((entry_key(e)?, fingerprint(e))))
            .collect();
        let registry = Registry {
            version: super::FILE_VERSION,
            generation: self.generation + 1,
            instances,
        };
        self.state_bytes = registry.save(&self.state)?;
        self.generation = registry.generation;
        self.restart_journal()
    }

    /// Replaces the journal with one holding only the generation line.
    fn restart_journal(&mut self) -> Result<(), StateError> {
        self.file = None;
        let first = line(&Record::Generation(self.generation));
        super::atomic::write(&self.path, &first, 0o600)?;
        self.len = first.len() as u64;
        Ok(())
    }

    /// The journal open for appending, cut back to its whole lines; the
    /// caller puts it back once it is where it should be.
    fn file_at_end(&mut self) -> Result<File, StateError> {
        if let Some(file) = self.file.take() {
            return Ok(file);
        }
        let mut file = OpenOptions::new()
            .write(true)
            .mode(0o600)
            .open(&self.path)
            .map_err(|e| io_err(&self.path, "open", e))?;
        file.set_len(self.len)
            .map_err(|e| io_err(&self.path, "truncate", e))?;
        std::io::Seek::seek(&mut file, std::io::SeekFrom::Start(self.len))
            .map_err(|e| io_err(&self.path, "seek", e))?;
        Ok(file)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::testdir::TempDir;
    use crate::state::Desired;

    fn entry(id: &str, port: u16) -> RegistryEntry {
        RegistryEntry {
            service: "notes".into(),
            id: id.into(),
            port,
            weight: 100,
            desired: Desired::Running,
            pid: Some(4321),
            pgid: Some(4321),
            start_ticks: Some(99),
            restarts: 0,
            uid: None,
            moving: None,
        }
    }

    fn key(id: &str) -> InstanceKey {
        InstanceKey::new("notes", id).unwrap()
    }

    fn ids(r: &Registry) -> Vec<(&str, u16, u8)> {
        r.instances
            .iter()
            .map(|e| (e.id.as_str(), e.port, e.weight))
            .collect()
    }

    /// A registry in the format of ten before journals (no generation),
    /// with `n` entries a0, a1, ...
    fn old_format(dir: &Path, n: usize) -> PathBuf {
        let state = dir.join("state");
        let reg = Registry {
            version: 1,
            generation: 0,
            instances: (0..n)
                .map(|i| entry(&format!("a{i}"), 30000 + i as u16))
                .collect(),
        };
        let mut text = serde_json::to_value(&reg).unwrap();
        text.as_object_mut().unwrap().remove("generation");
        std::fs::write(&state, serde_json::to_vec_pretty(&text).unwrap()).unwrap();
        state
    }

    #[test]
    fn a_change_is_one_line_and_survives_a_reopen() {
        let t = TempDir::new("journal-roundtrip");
        let state = old_format(&t, 3);
        let (mut j, reg, replay) = Journal::open(&state).unwrap();
        assert_eq!(replay, Replay::default());
        assert_eq!(
            ids(&reg),
            [("a0", 30000, 100), ("a1", 30001, 100), ("a2", 30002, 100)]
        );
        // The old file was taken up: generation 1 and an empty journal.
        assert_eq!(Registry::load(&state).unwrap().generation, 1);
        let state_before = std::fs::read(&state).unwrap();
        let journal_before = std::fs::metadata(path_for(&state)).unwrap().len();

        let mut heavier = entry("a1", 30001);
        heavier.weight = 40;
        j.append(&[
            Record::Put(heavier.clone()),
            Record::Put(entry("b", 31000)),
            Record::Remove {
                service: "notes".into(),
                id: "a0".into(),
            },
        ])
        .unwrap();
        assert!(j.holds(&key("a1"), Some(&heavier)));
        assert!(!j.holds(&key("a1"), Some(&entry("a1", 30001))));
        assert!(j.holds(&key("a0"), None));
        // `state` is not rewritten: the journal grew by three lines.
        assert_eq!(std::fs::read(&state).unwrap(), state_before);
        let text = std::fs::read_to_string(path_for(&state)).unwrap();
        assert_eq!(text.lines().count(), 4, "{text}");
        assert!(std::fs::metadata(path_for(&state)).unwrap().len() > journal_before);

        let (_, reg, replay) = Journal::open(&state).unwrap();
        assert_eq!(
            ids(&reg),
            [("a1", 30001, 40), ("a2", 30002, 100), ("b", 31000, 100)]
        );
        assert_eq!(replay.records, 3);
        assert_eq!(replay.torn, None);
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path_for(&state))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn a_torn_last_record_is_dropped_at_any_cut_and_the_next_append_replaces_it() {
        let t = TempDir::new("journal-torn");
        let state = old_format(&t, 2);
        let (mut j, _, _) = Journal::open(&state).unwrap();
        j.append(&[Record::Put(entry("b", 31000))]).unwrap();
        let whole = std::fs::metadata(path_for(&state)).unwrap().len();
        j.append(&[Record::Put(entry("c", 32000))]).unwrap();
        let bytes = std::fs::read(path_for(&state)).unwrap();
        drop(j);
        // Cut the last record anywhere (a crash before its fsync), or
        // garble one byte of it: what came before it stays.
        let last = whole as usize..bytes.len();
        let mut spoilt: Vec<Vec<u8>> = last.clone().map(|cut| bytes[..cut].to_vec()).collect();
        for at in last.clone().step_by(7) {
            let mut b = bytes.clone();
            b[at] ^= 0x20;
            spoilt.push(b);
        }
        for bad in spoilt {
            std::fs::write(path_for(&state), &bad).unwrap();
            let (mut j, reg, replay) = Journal::open(&state).unwrap();
            assert_eq!(
                ids(&reg),
                [("a0", 30000, 100), ("a1", 30001, 100), ("b", 31000, 100)],
                "{:?}",
                String::from_utf8_lossy(&bad)
            );
            match bad.len() as u64 == whole {
                true => assert_eq!(replay.torn, None),
                false => {
                    assert_eq!(replay.torn, Some((whole, bad.len() as u64 - whole)));
                    let note = replay.note(&path_for(&state)).unwrap();
                    assert!(
                        note.contains(&format!("from offset {whole} ignored")),
                        "{note}"
                    );
                }
            }
            // The next change goes where the torn one began.
            j.append(&[Record::Put(entry("d", 33000))]).unwrap();
            let (_, reg, replay) = Journal::open(&state).unwrap();
            assert_eq!(replay.torn, None);
            assert_eq!(reg.instances.last().unwrap().id, "d");
            assert_eq!(reg.instances.len(), 4);
        }
    }

    #[test]
    fn compaction_writes_state_whole_and_a_crash_halfway_loses_nothing() {
        let t = TempDir::new("journal-compact");
        let state = old_format(&t, 2);
        let (mut j, _, _) = Journal::open(&state).unwrap();
        j.append(&[Record::Put(entry("b", 31000))]).unwrap();
        let old_journal = std::fs::read(path_for(&state)).unwrap();
        j.compact(Registry::load(&state).unwrap().instances)
            .unwrap();
        let reg = Registry::load(&state).unwrap();
        assert_eq!(reg.generation, 2);
        // `state` alone holds all three now.
        let whole: Registry = serde_json::from_slice(&std::fs::read(&state).unwrap()).unwrap();
        assert_eq!(ids(&whole), ids(&reg));
        assert_eq!(reg.instances.len(), 3);
        assert_eq!(
            std::fs::read_to_string(path_for(&state))
                .unwrap()
                .lines()
                .count(),
            1,
            "only the generation line"
        );
        // A crash after `state` was written and before the journal was
        // started again: the old journal (generation 1) is not replayed
        // over the new state, which holds it.
        let mut removed = old_journal.clone();
        removed.extend_from_slice(&line(&Record::Remove {
            service: "notes".into(),
            id: "a0".into(),
        }));
        std::fs::write(path_for(&state), &removed).unwrap();
        let (_, reg, replay) = Journal::open(&state).unwrap();
        assert_eq!(replay.stale, Some(1));
        assert!(replay
            .note(&path_for(&state))
            .unwrap()
            .contains("generation 1"));
        assert_eq!(
            reg.instances.len(),
            3,
            "a0 is kept: the stale journal is ignored"
        );
    }

    #[test]
    fn the_journal_compacts_itself_when_it_outgrows_state() {
        let t = TempDir::new("journal-grows");
        let state = old_format(&t, 1);
        let (mut j, _, _) = Journal::open(&state).unwrap();
        // Small enough for a few records (`state` is about 300 bytes).
        j.min_compact = 1024;
        let mut e = entry("a0", 30000);
        let mut compactions = 0;
        for i in 0..40u32 {
            e.restarts = i;
            let before = Registry::load(&state).unwrap().generation;
            j.append(&[Record::Put(e.clone())]).unwrap();
            if j.compact_due() {
                j.compact(Registry::load(&state).unwrap().instances)
                    .unwrap();
            }
            let now = Registry::load(&state).unwrap();
            assert_eq!(now.instances[0].restarts, i);
            compactions += usize::from(before != now.generation);
            let journal = std::fs::metadata(path_for(&state)).unwrap().len();
            assert!(journal <= 1024, "{journal} bytes of journal after {i}");
        }
        assert!(compactions >= 5, "{compactions} compactions");
    }

    #[test]
    fn a_journal_without_a_generation_line_or_with_records_first_counts_for_nothing() {
        let mut reg = Registry {
            version: 1,
            generation: 3,
            instances: vec![entry("a", 30000)],
        };
        let mut bytes = line(&Record::Put(entry("b", 31000)));
        bytes.extend_from_slice(&line(&Record::Generation(3)));
        let replay = replay(&mut reg, &bytes);
        assert_eq!(replay.good_len, 0);
        assert!(replay.torn.is_some());
        assert_eq!(ids(&reg), [("a", 30000, 100)]);
    }
}
