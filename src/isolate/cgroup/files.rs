//! Reading and writing cgroup kernel files, and the small process helpers
//! the cgroup code shares: every function takes a path, so tests point it at
//! plain files in a temp dir.

use std::io;
use std::path::Path;
use std::time::Duration;

use rustix::process::{kill_process, Pid, Signal};

use super::CgroupError;

pub(super) fn read(path: &Path) -> io::Result<String> {
    std::fs::read_to_string(path)
}

/// Writes `value` to an existing kernel file; never creates one, so a
/// missing interface file shows up as an error instead of a silent no-op.
pub(super) fn write(path: &Path, value: &str) -> Result<(), CgroupError> {
    use std::io::Write;
    // O_TRUNC: ignored by cgroupfs, needed for the plain files of tests.
    std::fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(path)
        .and_then(|mut f| f.write_all(value.as_bytes()))
        .map_err(|source| CgroupError::Write {
            path: path.to_path_buf(),
            wrote: value.to_string(),
            source,
        })
}

/// The number after `key` in a "key value" per line file (`memory.events`,
/// `memory.stat`, `cpu.stat`, `memory.oom_control`).
pub(super) fn field(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let (k, v) = l.split_once(' ')?;
        (k == key).then(|| v.trim().parse().ok()).flatten()
    })
}

/// The `oom_kill` counter in a `memory.events` or `memory.oom_control`
/// file kept open: one read at offset 0, which makes the kernel write the
/// file's text anew.
pub(super) fn oom_kills(file: &std::fs::File) -> Option<u64> {
    use std::os::unix::fs::FileExt;
    let mut buf = [0u8; 1024];
    let n = file.read_at(&mut buf, 0).ok()?;
    field(std::str::from_utf8(&buf[..n]).ok()?, "oom_kill")
}

pub(super) fn read_u64(path: &Path) -> Option<u64> {
    read(path).ok()?.trim().parse().ok()
}

/// The processes (thread group ids) in the cgroup at `dir`.
pub fn procs(dir: &Path) -> io::Result<Vec<u32>> {
    Ok(read(&dir.join("cgroup.procs"))?
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect())
}

/// Makes a cgroup directory; Ok(true) when made now, Ok(false) when it
/// was there already.
pub(super) fn mkdir(path: &Path) -> Result<bool, CgroupError> {
    match std::fs::create_dir(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(CgroupError::Mkdir {
            path: path.to_path_buf(),
            source: e,
        }),
    }
}

/// Removes an empty cgroup directory (its interface files go with it; a
/// cgroup with processes or children answers EBUSY). Gone already is fine.
pub(super) fn rmdir(path: &Path) -> io::Result<()> {
    match std::fs::remove_dir(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        r => r,
    }
}

/// `rmdir` of each directory, all tried; the first error, naming its path.
pub(super) fn rmdir_all<'a>(dirs: impl Iterator<Item = &'a Path>) -> io::Result<()> {
    let mut first = Ok(());
    for d in dirs {
        if let Err(e) = rmdir(d) {
            if first.is_ok() {
                first = Err(io::Error::new(
                    e.kind(),
                    format!("rmdir {}: {e}", d.display()),
                ));
            }
        }
    }
    first
}

pub(super) fn sigkill(pid: u32) {
    // pid 0 or 1 never come out of an instance's cgroup.procs read from the
    // host's pid namespace; refuse them anyway: kill(0) would hit our group.
    if pid <= 1 {
        return;
    }
    if let Some(p) = i32::try_from(pid).ok().and_then(Pid::from_raw) {
        let _ = kill_process(p, Signal::KILL);
    }
}

pub(super) fn wait_for(mut cond: impl FnMut() -> bool) -> bool {
    for _ in 0..100 {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    cond()
}
