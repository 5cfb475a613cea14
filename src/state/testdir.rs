//! Test-only: a unique folder under the system temp dir, removed on drop.
//! The one temp-dir helper of the tests: the unit tests use it from here, the
//! integration tests include this file by path (`tests/util`). Plain std only.

use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// A fresh, empty folder; removed with its contents when dropped.
pub struct TempDir(pub PathBuf);

impl TempDir {
    /// `{temp}/ten-test-{name}-{pid}-{n}`: unique per test and per run.
    pub fn new(name: &str) -> TempDir {
        static N: AtomicU64 = AtomicU64::new(0);
        let path = std::env::temp_dir().join(format!(
            "ten-test-{name}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("create temp dir");
        TempDir(path)
    }
}

/// The folder's path, so a `TempDir` can be used where a `&Path` is wanted.
impl Deref for TempDir {
    type Target = Path;

    fn deref(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
