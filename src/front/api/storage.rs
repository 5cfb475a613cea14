//! `GET /api/instances/{svc:id}/storage`: how many bytes an instance's data
//! dir holds, from `state::sizes` (its cache and its walks), answered at
//! once from a fresh measurement or else from a walk on the storage lane.

use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime};

use super::offload::{Job, Lane};
use crate::names::InstanceKey;
use crate::state::sizes::{cached, measure, Measured};
use crate::supervisor::Reply;

/// `{data_dir}/{service}/{id}`.
pub fn instance_dir(data_dir: &Path, key: &InstanceKey) -> PathBuf {
    crate::state::layout::instance_dir(data_dir, &key.service, &key.id)
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
        let sizes =
            crate::state::sizes::sizes_for_metrics(&t.0, &[("notes:alice".into(), dir.clone())]);
        assert_eq!(sizes.get("notes:alice"), Some(&10));
        // Forgotten instances' entries go.
        crate::state::sizes::sizes_for_metrics(&t.0, &[]);
        assert_eq!(cached(&dir), None);
    }
}
