//! `GET /api/instances/{svc:id}/storage`: how many bytes an instance's data
//! dir holds, walked without following symlinks.

use std::path::Path;

use crate::names::InstanceKey;

/// The storage answer for `key`, whose data dir is `data_dir/SERVICE/ID`.
pub(super) fn storage_json(data_dir: &Path, key: &InstanceKey) -> serde_json::Value {
    let path = data_dir.join(&key.service).join(&key.id);
    serde_json::json!({
        "instance": key.to_string(),
        "path": path.display().to_string(),
        "bytes": dir_bytes(&path),
        "quota_bytes": null,
    })
}

/// Bytes in regular files under `root`. Symlinks are neither followed nor
/// counted (an instance could point one at `/`); unreadable folders count 0.
pub(super) fn dir_bytes(root: &Path) -> u64 {
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
