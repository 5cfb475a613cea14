//! How many bytes an instance's data dir holds, for
//! `GET /api/instances/{svc:id}/storage` and the `ten_instance_data_dir_bytes`
//! metric: walked without following symlinks, on the `offload` storage lane
//! (never on an event loop), at most once every `MEASURE_EVERY` per data dir.
//! The measurements are cached here, shared by every loop.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use super::offload::{Job, Lane};
use crate::names::InstanceKey;
use crate::supervisor::{Done, Reply};

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
    fn fresh(&self, now: Instant) -> bool {
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

/// `{data_dir}/{service}/{id}`.
pub fn instance_dir(data_dir: &Path, key: &InstanceKey) -> PathBuf {
    crate::state::layout::instance_dir(data_dir, &key.service, &key.id)
}

/// The last measurement of `dir`, however old.
pub fn cached(dir: &Path) -> Option<Measured> {
    with_sizes(|m| m.get(dir).and_then(|e| e.last))
}

/// Walks `dir` unless a measurement younger than `MEASURE_EVERY` exists, and
/// stores the result. Blocks for the walk: storage lane only.
fn measure(dir: &Path) -> Measured {
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
            if !e.last.is_some_and(|m| m.fresh(now)) && !e.queued {
                e.queued = true;
                queue.push(dir.clone());
            }
        }
    });
    for dir in queue {
        Job::new(Lane::Storage, move || {
            // Done for the cache it fills; nobody reads the reply.
            measure(&dir);
            Reply::Done(Done::Nothing)
        })
        .submit(None);
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
        let stale = !e.last.is_some_and(|m| m.fresh(now)) && !e.queued;
        if stale {
            e.queued = true;
        }
        (e.last.map(|m| m.bytes), stale)
    });
    if queue {
        let dir = dir.to_path_buf();
        Job::new(Lane::Storage, move || {
            // Done for the cache it fills; the supervisor reads it there.
            measure(&dir);
            Reply::Done(Done::Nothing)
        })
        .submit(None);
    }
    last
}

/// The storage answer for `key`: at once from a fresh measurement, else a
/// job on the storage lane that measures and answers.
pub fn storage_answer(
    data_dir: &Path,
    key: &InstanceKey,
    quota_bytes: Option<u64>,
) -> Result<serde_json::Value, Job> {
    let dir = instance_dir(data_dir, key);
    if let Some(m) = cached(&dir).filter(|m| m.fresh(Instant::now())) {
        return Ok(storage_json(key, &dir, m, quota_bytes));
    }
    let key = key.clone();
    Err(Job::new(Lane::Storage, move || {
        let m = measure(&dir);
        let json = storage_json(&key, &dir, m, quota_bytes);
        Reply::Body {
            content_type: "application/json",
            body: super::Response::json(200, &json).body,
        }
    }))
}

/// `{"instance", "path", "bytes", "quota_bytes", "percent", "measured_at"}`;
/// `percent` (of the quota, one decimal) is null without a quota.
fn storage_json(
    key: &InstanceKey,
    dir: &Path,
    m: Measured,
    quota_bytes: Option<u64>,
) -> serde_json::Value {
    let percent = quota_bytes
        .filter(|q| *q > 0)
        .map(|q| (m.bytes as f64 * 1000.0 / q as f64).round() / 10.0);
    let at =
        m.at.duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default();
    serde_json::json!({
        "instance": key.to_string(),
        "path": dir.display().to_string(),
        "bytes": m.bytes,
        "quota_bytes": quota_bytes,
        "percent": percent,
        "measured_at": crate::log::format_utc(at.as_secs(), at.subsec_millis()),
    })
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

    fn key() -> InstanceKey {
        InstanceKey {
            service: "notes".into(),
            id: "alice".into(),
        }
    }

    #[test]
    fn a_measurement_is_reused_until_it_is_due_again() {
        let t = TempDir::new("storage-cache");
        let dir = instance_dir(&t.0, &key());
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("a"), [0u8; 10]).unwrap();
        // Nothing measured yet: the answer is a job, run here.
        let job = storage_answer(&t.0, &key(), Some(1000)).expect_err("no measurement yet");
        let Reply::Body { body, .. } = job.run() else {
            panic!("a storage job answers a body")
        };
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["bytes"], 10);
        assert_eq!(v["quota_bytes"], 1000);
        assert_eq!(v["percent"], 1.0);
        assert!(v["measured_at"].as_str().unwrap().ends_with('Z'), "{v}");
        // Within MEASURE_EVERY the cached answer comes at once, unchanged
        // even though the dir grew.
        std::fs::write(dir.join("b"), [0u8; 5]).unwrap();
        let v = storage_answer(&t.0, &key(), None).expect("fresh measurement");
        assert_eq!(
            (v["bytes"].as_u64(), v["percent"].is_null()),
            (Some(10), true)
        );
        // Metrics see the same number without walking.
        let sizes = sizes_for_metrics(&t.0, &[("notes:alice".into(), dir.clone())]);
        assert_eq!(sizes.get("notes:alice"), Some(&10));
        // Forgotten instances' entries go.
        sizes_for_metrics(&t.0, &[]);
        assert_eq!(cached(&dir), None);
    }
}
