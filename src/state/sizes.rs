//! How many bytes each instance's data dir holds: walked without following
//! symlinks, on the storage lane (never on an event loop or the
//! supervisor's thread), at most once every `MEASURE_EVERY` per data dir.
//! The measurements are cached here, shared by the supervisor (quota
//! checks), the API (`GET /api/instances/{svc:id}/storage`) and `/metrics`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use crate::lanes::{self, Lane};

/// A data dir is walked again at most this often; answers in between come
/// from the last measurement, with its time.
pub const MEASURE_EVERY: Duration = Duration::from_secs(30);

/// One walk's result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Measured {
    pub bytes: u64,
    /// Wall clock, for display.
    pub at: SystemTime,
    /// Monotonic, for the age.
    taken: Instant,
}

impl Measured {
    pub fn fresh(&self, now: Instant) -> bool {
        now.saturating_duration_since(self.taken) < MEASURE_EVERY
    }
}

#[derive(Debug, Default)]
struct Entry {
    last: Option<Measured>,
    /// A refresh without a waiting client is queued (metrics): queue one only.
    queued: bool,
}

/// Data dir -> its last measurement. Locked only to read or store an entry,
/// never during a walk.
static SIZES: Mutex<Option<HashMap<PathBuf, Entry>>> = Mutex::new(None);

fn with_sizes<T>(f: impl FnOnce(&mut HashMap<PathBuf, Entry>) -> T) -> T {
    let mut guard = SIZES.lock().unwrap_or_else(|e| e.into_inner());
    f(guard.get_or_insert_with(HashMap::new))
}

/// Whether `e` is due for a walk that is not queued yet; if so it is
/// marked queued, so only one walk per dir waits at a time.
fn claim_walk(e: &mut Entry, now: Instant) -> bool {
    let due = !e.last.is_some_and(|m| m.fresh(now)) && !e.queued;
    if due {
        e.queued = true;
    }
    due
}

/// Queues a walk of `dir` on the storage lane; its result lands in the
/// cache. If the lane cannot start, the entry stays marked queued: no
/// walk is retried for it, and the callers go on with the last size.
fn walk_later(dir: PathBuf) {
    lanes::run(
        Lane::Storage,
        Box::new(move || {
            measure(&dir);
        }),
    );
}

/// The last measurement of `dir`, however old.
pub fn cached(dir: &Path) -> Option<Measured> {
    with_sizes(|m| m.get(dir).and_then(|e| e.last))
}

/// Walks `dir` unless a measurement younger than `MEASURE_EVERY` exists, and
/// stores the result. Blocks for the walk: storage lane only.
pub fn measure(dir: &Path) -> Measured {
    if let Some(m) = cached(dir).filter(|m| m.fresh(Instant::now())) {
        return m;
    }
    let bytes = dir_bytes(dir);
    let m = Measured {
        bytes,
        at: SystemTime::now(),
        taken: Instant::now(),
    };
    with_sizes(|sizes| {
        let e = sizes.entry(dir.to_path_buf()).or_default();
        e.last = Some(m);
        e.queued = false;
    });
    m
}

/// For `/metrics`: the last measurement of each dir (however old), queueing
/// a walk for those missing or older than `MEASURE_EVERY`. Never blocks on
/// a walk. Entries of data dirs under `data_dir` that are not in `dirs`
/// (forgotten instances) are dropped.
pub fn sizes_for_metrics(data_dir: &Path, dirs: &[(String, PathBuf)]) -> HashMap<String, u64> {
    let now = Instant::now();
    let mut out = HashMap::new();
    let mut queue = Vec::new();
    with_sizes(|sizes| {
        sizes.retain(|path, _| !path.starts_with(data_dir) || dirs.iter().any(|(_, d)| d == path));
        for (key, dir) in dirs {
            let e = sizes.entry(dir.clone()).or_default();
            if let Some(m) = e.last {
                out.insert(key.clone(), m.bytes);
            }
            if claim_walk(e, now) {
                queue.push(dir.clone());
            }
        }
    });
    for dir in queue {
        walk_later(dir);
    }
    out
}

/// For the supervisor's quota check: the last measurement of `dir` (however
/// old), queueing a walk on the storage lane when it is missing or older
/// than `MEASURE_EVERY`. Never blocks on a walk.
pub fn refresh(dir: &Path) -> Option<u64> {
    let now = Instant::now();
    let (last, queue) = with_sizes(|sizes| {
        let e = sizes.entry(dir.to_path_buf()).or_default();
        (e.last.map(|m| m.bytes), claim_walk(e, now))
    });
    if queue {
        walk_later(dir.to_path_buf());
    }
    last
}

/// Bytes in regular files under `root`. Symlinks are neither followed nor
/// counted (an instance could point one at `/`); unreadable folders count 0.
/// Blocks for as long as the tree takes: storage lane only.
pub fn dir_bytes(root: &Path) -> u64 {
    let mut total = 0;
    match std::fs::symlink_metadata(root) {
        Ok(m) if m.is_dir() => {}
        Ok(m) if m.is_file() => return m.len(),
        _ => return 0,
    }
    let mut folders = vec![root.to_path_buf()];
    while let Some(dir) = folders.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            // DirEntry::file_type and ::metadata do not follow symlinks.
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            if kind.is_dir() {
                folders.push(entry.path());
            } else if kind.is_file() {
                total += entry.metadata().map(|m| m.len()).unwrap_or(0);
            }
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::testdir::TempDir;

    #[test]
    fn one_walk_is_claimed_at_a_time_and_only_when_due() {
        let now = Instant::now();
        let mut e = Entry::default();
        assert!(claim_walk(&mut e, now), "never measured: due");
        assert!(!claim_walk(&mut e, now), "already queued");
        e.queued = false;
        e.last = Some(Measured {
            bytes: 1,
            at: SystemTime::now(),
            taken: now,
        });
        assert!(!claim_walk(&mut e, now), "fresh");
        assert!(claim_walk(&mut e, now + MEASURE_EVERY), "stale");
    }

    #[test]
    fn refresh_answers_a_stored_size_without_a_walk() {
        let t = TempDir::new("sizes-refresh");
        let dir = t.0.join("notes").join("alice");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("a"), [0u8; 7]).unwrap();
        measure(&dir);
        assert_eq!(refresh(&dir), Some(7));
        assert!(!with_sizes(|s| s[&dir].queued));
    }

    #[test]
    fn dir_bytes_counts_files_not_symlinks() {
        let t = TempDir::new("sizes-walk");
        std::fs::create_dir_all(t.0.join("a/b")).unwrap();
        std::fs::write(t.0.join("a/one"), [0u8; 3]).unwrap();
        std::fs::write(t.0.join("a/b/two"), [0u8; 4]).unwrap();
        std::os::unix::fs::symlink("/", t.0.join("a/root")).unwrap();
        std::os::unix::fs::symlink(t.0.join("a/one"), t.0.join("a/b/again")).unwrap();
        assert_eq!(dir_bytes(&t.0), 7);
        assert_eq!(dir_bytes(&t.0.join("a/one")), 3);
        assert_eq!(dir_bytes(&t.0.join("missing")), 0);
    }
}
