//! Atomic file replacement: write a temp file beside the target, fsync it,
//! rename it over the target, fsync the folder.

use std::path::Path;

use super::StateError;

/// Replaces `path` with `bytes` atomically, creating the file with `mode`.
pub fn write(path: &Path, bytes: &[u8], mode: u32) -> Result<(), StateError> {
    let _ = (path, bytes, mode);
    todo!("atomic::write")
}
