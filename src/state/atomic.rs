//! Atomic file replacement: write a temp file beside the target, fsync it,
//! rename it over the target, fsync the folder.
//!
//! Used for `state`, `tokens` and `api_token`. A crash at any point leaves the
//! old file or the new one, never a torn one; a failed write leaves no temp
//! file behind. `stage` and `Staged::commit` do the same in two steps, so
//! a change to two files (the tokens file and `api_token`) writes both
//! before replacing either. Blocks on disk I/O: never call it from a front
//! loop.

use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use super::StateError;

/// Makes temp names unique between threads of one process; the pid makes
/// them unique between processes (`ten token-gen` next to `ten serve`).
static COUNTER: AtomicU64 = AtomicU64::new(0);

/// Replaces `path` with `bytes` atomically, creating the file with `mode`.
///
/// Creates the parent folder if missing (0700 when it is `.tenement`, since
/// it holds token hashes and the local socket). On error the temp file is
/// removed and the target is untouched.
pub fn write(path: &Path, bytes: &[u8], mode: u32) -> Result<(), StateError> {
    stage(path, bytes, mode)?.commit()
}

/// A new version of a file, written and fsynced beside it but not yet in
/// its place: `commit` renames it over the target; dropping it uncommitted
/// removes it. Staging every file of a change before committing any makes
/// a full disk fail the change before anything is replaced (a rename needs
/// no new space).
#[must_use = "a staged file is removed unless committed"]
pub struct Staged {
    tmp: PathBuf,
    path: PathBuf,
    dir: PathBuf,
    committed: bool,
}

/// Writes `bytes` to a temp file beside `path` (mode `mode`) and fsyncs it.
/// Err: nothing is left behind.
pub fn stage(path: &Path, bytes: &[u8], mode: u32) -> Result<Staged, StateError> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    create_dir(&dir)?;

    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(
        ".{name}.tmp.{}.{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let staged = Staged {
        tmp,
        path: path.to_path_buf(),
        dir,
        committed: false,
    };
    // On error `staged` drops and removes what was written.
    write_tmp(&staged.tmp, bytes, mode)?;
    Ok(staged)
}

impl Staged {
    /// Renames the temp file over the target and fsyncs the folder.
    pub fn commit(mut self) -> Result<(), StateError> {
        fs::rename(&self.tmp, &self.path)
            .map_err(|e| io_err(&self.path, "rename temp file over", e))?;
        self.committed = true;
        // The rename is only durable once the folder entry is on disk.
        File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| io_err(&self.dir, "fsync folder", e))
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        if !self.committed {
            let _ = fs::remove_file(&self.tmp);
        }
    }
}

/// Writes and fsyncs the temp file. `create_new` so two writers never share one.
fn write_tmp(tmp: &Path, bytes: &[u8], mode: u32) -> Result<(), StateError> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(tmp)
        .map_err(|e| io_err(tmp, "create", e))?;
    file.write_all(bytes).map_err(|e| io_err(tmp, "write", e))?;
    // The umask may have stripped bits from `mode` at open; set it exactly.
    file.set_permissions(fs::Permissions::from_mode(mode))
        .map_err(|e| io_err(tmp, "chmod", e))?;
    file.sync_all().map_err(|e| io_err(tmp, "fsync", e))
}

/// Creates `dir` and its ancestors if missing. Ancestors get the default
/// mode; `dir` itself gets 0700 when it is `.tenement`.
pub fn create_dir(dir: &Path) -> Result<(), StateError> {
    if dir.is_dir() {
        return Ok(());
    }
    if let Some(up) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        DirBuilder::new()
            .recursive(true)
            .create(up)
            .map_err(|e| io_err(up, "create folder", e))?;
    }
    let mode = if dir.file_name().is_some_and(|n| n == ".tenement") {
        0o700
    } else {
        0o755
    };
    match DirBuilder::new().mode(mode).create(dir) {
        Ok(()) => Ok(()),
        // Another writer made it between our check and our mkdir.
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists && dir.is_dir() => Ok(()),
        Err(e) => Err(io_err(dir, "create folder", e)),
    }
}

fn io_err(path: &Path, op: &'static str, source: io::Error) -> StateError {
    StateError::Io {
        path: path.to_path_buf(),
        op,
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::testdir::TempDir;

    fn entries(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .expect("read dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn write_creates_file_with_exact_mode_and_no_temp_left() {
        let t = TempDir::new("atomic-mode");
        let path = t.0.join("f");
        write(&path, b"one", 0o600).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"one");
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(entries(&t.0), ["f"]);
    }

    #[test]
    fn write_replaces_old_content_whole() {
        let t = TempDir::new("atomic-replace");
        let path = t.0.join("f");
        write(&path, b"old old old", 0o600).unwrap();
        write(&path, b"new", 0o644).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"new");
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o644
        );
        assert_eq!(entries(&t.0), ["f"]);
    }

    #[test]
    fn readers_see_old_or_new_never_torn() {
        let t = TempDir::new("atomic-readers");
        let path = t.0.join("f");
        let old = vec![b'o'; 64 * 1024];
        let new = vec![b'n'; 64 * 1024];
        write(&path, &old, 0o600).unwrap();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let reader = {
            let (path, stop, old, new) = (path.clone(), stop.clone(), old.clone(), new.clone());
            std::thread::spawn(move || {
                let mut reads = 0;
                while !stop.load(Ordering::Relaxed) || reads == 0 {
                    let got = fs::read(&path).expect("target always exists");
                    assert!(got == old || got == new, "torn read of {} bytes", got.len());
                    reads += 1;
                }
            })
        };
        for i in 0..50 {
            write(&path, if i % 2 == 0 { &new } else { &old }, 0o600).unwrap();
        }
        stop.store(true, Ordering::Relaxed);
        reader.join().unwrap();
        assert_eq!(entries(&t.0), ["f"]);
    }

    #[test]
    fn failed_write_leaves_target_and_no_temp() {
        let t = TempDir::new("atomic-fail");
        // The target is a non-empty folder: rename(2) over it fails.
        let path = t.0.join("f");
        fs::create_dir(&path).unwrap();
        fs::write(path.join("inside"), b"x").unwrap();
        let err = write(&path, b"data", 0o600).unwrap_err();
        assert!(err.to_string().contains("rename"), "{err}");
        assert_eq!(entries(&t.0), ["f"]);
        assert_eq!(entries(&path), ["inside"]);
    }

    #[test]
    fn a_staged_file_replaces_the_target_only_when_committed() {
        let t = TempDir::new("atomic-stage");
        let path = t.0.join("f");
        write(&path, b"old", 0o600).unwrap();
        let dropped = stage(&path, b"never", 0o600).unwrap();
        assert_eq!(entries(&t.0).len(), 2, "the temp file sits beside it");
        drop(dropped);
        assert_eq!(entries(&t.0), ["f"]);
        assert_eq!(fs::read(&path).unwrap(), b"old");
        let staged = stage(&path, b"new", 0o600).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"old");
        staged.commit().unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"new");
        assert_eq!(entries(&t.0), ["f"]);
    }

    #[test]
    fn missing_tenement_folder_is_created_0700() {
        let t = TempDir::new("atomic-mkdir");
        let path = t.0.join("data").join(".tenement").join("state");
        write(&path, b"{}", 0o600).unwrap();
        let mode = fs::metadata(t.0.join("data/.tenement"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o700);
        assert_eq!(fs::read(&path).unwrap(), b"{}");
    }
}
