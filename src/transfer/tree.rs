//! A data dir on disk, for a transfer: its manifest (every entry with kind,
//! mode, size and mtime, walked without following symlinks), the records
//! that turn a target's manifest into the source's (`plan`), and applying
//! decoded records under a root (`apply`) without ever leaving it.
//!
//! Blocking file I/O: called on the offload lane (receiving side) and the
//! mover's thread (sending side), never on an event loop. Never follows a
//! symlink it finds under the root: every parent is checked to be a real
//! directory, files are opened with O_NOFOLLOW, and a symlink's target must
//! stay inside the root.

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::frame::{self, Kind, Record};

/// The suffix of a file being received, beside where it will be renamed to.
pub const PART_SUFFIX: &str = ".ten-part";

/// One entry of a data dir.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub path: PathBuf,
    /// `f`, `d` or `l`.
    pub kind: char,
    pub mode: u32,
    pub size: u64,
    pub mtime_ns: i128,
    /// A symlink's target.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<PathBuf>,
}

/// Every entry under `root`, parents before children, sorted by path. A
/// missing root is empty.
pub fn manifest(root: &Path) -> io::Result<Vec<Entry>> {
    let mut out = Vec::new();
    match fs::symlink_metadata(root) {
        Ok(m) if m.is_dir() => walk(root, Path::new(""), &mut out)?,
        Ok(_) => {
            return Err(io::Error::other(format!(
                "{} is not a directory",
                root.display()
            )))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    out.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(out)
}

fn walk(dir: &Path, rel: &Path, out: &mut Vec<Entry>) -> io::Result<()> {
    for item in fs::read_dir(dir)? {
        let item = item?;
        let path = item.path();
        let rel = rel.join(item.file_name());
        let m = fs::symlink_metadata(&path)?;
        let mtime_ns = i128::from(m.mtime()) * 1_000_000_000 + i128::from(m.mtime_nsec());
        let mode = m.mode() & 0o7777;
        let ft = m.file_type();
        if ft.is_dir() {
            out.push(entry(&rel, 'd', mode, 0, 0, None));
            walk(&path, &rel, out)?;
        } else if ft.is_file() {
            out.push(entry(&rel, 'f', mode, m.len(), mtime_ns, None));
        } else if ft.is_symlink() {
            let link = fs::read_link(&path)?;
            out.push(entry(&rel, 'l', mode, 0, 0, Some(link)));
        }
        // Sockets, fifos and devices are not data: left out.
    }
    Ok(())
}

fn entry(
    path: &Path,
    kind: char,
    mode: u32,
    size: u64,
    mtime_ns: i128,
    link: Option<PathBuf>,
) -> Entry {
    Entry {
        path: path.to_path_buf(),
        kind,
        mode,
        size,
        mtime_ns,
        link,
    }
}

/// What to send to make `target` equal to `source`: deletes (of what the
/// source lacks or has as another kind, children first), then directories,
/// symlinks and the files whose kind, size, mtime or mode differ.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Plan {
    pub delete: Vec<PathBuf>,
    pub dirs: Vec<Entry>,
    pub links: Vec<Entry>,
    pub files: Vec<Entry>,
}

pub fn plan(source: &[Entry], target: &[Entry]) -> Plan {
    let theirs: BTreeMap<&Path, &Entry> = target.iter().map(|e| (e.path.as_path(), e)).collect();
    let ours: BTreeMap<&Path, &Entry> = source.iter().map(|e| (e.path.as_path(), e)).collect();
    let mut p = Plan::default();
    for t in target.iter().rev() {
        match ours.get(t.path.as_path()) {
            Some(s) if s.kind == t.kind => {}
            _ => p.delete.push(t.path.clone()),
        }
    }
    for s in source {
        let same = theirs.get(s.path.as_path()).is_some_and(|t| match s.kind {
            'd' => t.kind == 'd' && t.mode == s.mode,
            'l' => t.kind == 'l' && t.link == s.link,
            _ => t.kind == 'f' && t.size == s.size && t.mtime_ns == s.mtime_ns && t.mode == s.mode,
        });
        if same {
            continue;
        }
        match s.kind {
            'd' => p.dirs.push(s.clone()),
            'l' => p.links.push(s.clone()),
            _ => p.files.push(s.clone()),
        }
    }
    p
}

/// Why records could not be applied.
#[derive(Debug)]
pub enum ApplyError {
    /// A parent of the path is a symlink or a file, not a directory.
    NotADir(PathBuf),
    /// A symlink's target leaves the data dir.
    LinkEscapes {
        path: PathBuf,
        target: PathBuf,
    },
    /// A piece that does not continue the part received so far.
    OutOfOrder {
        path: PathBuf,
        have: u64,
        offset: u64,
    },
    Io {
        path: PathBuf,
        source: io::Error,
    },
}

impl std::fmt::Display for ApplyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ApplyError::NotADir(p) => write!(f, "a parent of {} is not a directory", p.display()),
            ApplyError::LinkEscapes { path, target } => write!(
                f,
                "symlink {} points outside the data dir ({})",
                path.display(),
                target.display()
            ),
            ApplyError::OutOfOrder { path, have, offset } => write!(
                f,
                "piece of {} at offset {offset}, but {have} bytes were received",
                path.display()
            ),
            ApplyError::Io { path, source } => write!(f, "{}: {source}", path.display()),
        }
    }
}

impl std::error::Error for ApplyError {}

/// Whether a symlink at `path` (relative to the root) pointing at `target`
/// stays inside the root, resolved lexically from the link's folder.
pub fn link_inside(path: &Path, target: &Path) -> bool {
    if target.is_absolute() {
        return false;
    }
    let mut depth: i64 = path.components().count() as i64 - 1;
    for c in target.components() {
        match c {
            Component::Normal(_) => depth += 1,
            Component::CurDir => {}
            Component::ParentDir => {
                depth -= 1;
                if depth < 0 {
                    return false;
                }
            }
            Component::RootDir | Component::Prefix(_) => return false,
        }
    }
    true
}

/// What `apply` did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Applied {
    pub records: u64,
    pub bytes: u64,
}

/// Who what `apply` writes belongs to: the owner of the root when that is
/// not the server's own user (an instance's data dir, owned by its uid),
/// else None (left as written; the instance's start gives a data dir of
/// another owner to its uid, whole).
type Owner = Option<(u32, u32)>;

fn owner_of(root: &Path) -> io::Result<Owner> {
    let m = fs::symlink_metadata(root)?;
    let me = rustix::process::geteuid().as_raw();
    Ok((m.uid() != me).then_some((m.uid(), m.gid())))
}

/// Gives `path` (never what a symlink points at) to `owner`.
fn give(path: &Path, owner: Owner) -> io::Result<()> {
    match owner {
        Some((uid, gid)) => std::os::unix::fs::lchown(path, Some(uid), Some(gid)),
        None => Ok(()),
    }
}

/// Applies decoded records under `root` (created 0700 if missing). Stops at
/// the first error; what was applied before stays (a re-run plans again).
/// What it creates under a root that belongs to another user (an
/// instance's data dir) is given to that user, so the instance can read
/// and change it, whatever its mode.
pub fn apply(root: &Path, records: &[Record<'_>]) -> Result<Applied, ApplyError> {
    let io_err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| ApplyError::Io { path, source }
    };
    if fs::symlink_metadata(root).is_err() {
        fs::create_dir_all(root).map_err(io_err(root))?;
        fs::set_permissions(root, fs::Permissions::from_mode(0o700)).map_err(io_err(root))?;
    }
    let owner = owner_of(root).map_err(io_err(root))?;
    let mut done = Applied::default();
    for r in records {
        let dest = root.join(&r.path);
        ensure_parents(root, &r.path, owner)?;
        match r.kind {
            Kind::Delete => remove(&dest).map_err(io_err(&dest))?,
            Kind::Dir => {
                match fs::symlink_metadata(&dest) {
                    Ok(m) if m.is_dir() => {}
                    Ok(_) => {
                        remove(&dest).map_err(io_err(&dest))?;
                        fs::create_dir(&dest).map_err(io_err(&dest))?;
                    }
                    Err(_) => fs::create_dir(&dest).map_err(io_err(&dest))?,
                }
                fs::set_permissions(&dest, fs::Permissions::from_mode(r.mode))
                    .map_err(io_err(&dest))?;
                give(&dest, owner).map_err(io_err(&dest))?;
            }
            Kind::Symlink => {
                let target = Path::new(std::ffi::OsStr::from_bytes(r.data));
                if !link_inside(&r.path, target) {
                    return Err(ApplyError::LinkEscapes {
                        path: r.path.clone(),
                        target: target.to_path_buf(),
                    });
                }
                remove(&dest).map_err(io_err(&dest))?;
                std::os::unix::fs::symlink(target, &dest).map_err(io_err(&dest))?;
                give(&dest, owner).map_err(io_err(&dest))?;
            }
            Kind::File => {
                piece(&dest, r, owner)?;
                done.bytes += r.data.len() as u64;
            }
        }
        done.records += 1;
    }
    Ok(done)
}

/// Every parent of `rel` under `root` is a real directory (created 0700 when
/// missing); a symlink or a file there is refused.
fn ensure_parents(root: &Path, rel: &Path, owner: Owner) -> Result<(), ApplyError> {
    let mut at = root.to_path_buf();
    let parents: Vec<_> = rel.components().collect();
    for c in &parents[..parents.len().saturating_sub(1)] {
        at.push(c);
        match fs::symlink_metadata(&at) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => return Err(ApplyError::NotADir(rel.to_path_buf())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                fs::create_dir(&at).map_err(|source| ApplyError::Io {
                    path: at.clone(),
                    source,
                })?;
                fs::set_permissions(&at, fs::Permissions::from_mode(0o700))
                    .and_then(|()| give(&at, owner))
                    .map_err(|source| ApplyError::Io {
                        path: at.clone(),
                        source,
                    })?;
            }
            Err(source) => return Err(ApplyError::Io { path: at, source }),
        }
    }
    Ok(())
}

/// Removes `path` whatever it is (a symlink itself, never what it points
/// at); a missing path is fine.
fn remove(path: &Path) -> io::Result<()> {
    match fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => fs::remove_dir_all(path),
        Ok(_) => fs::remove_file(path),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// `dir/.name.ten-part`, where a file is received before its rename.
fn part_path(dest: &Path) -> PathBuf {
    let name = dest.file_name().unwrap_or_default().to_string_lossy();
    dest.with_file_name(format!(".{name}{PART_SUFFIX}"))
}

/// Writes one piece of a file to its part file; the last piece fsyncs it,
/// sets its mode and mtime and renames it over `dest`.
fn piece(dest: &Path, r: &Record<'_>, owner: Owner) -> Result<(), ApplyError> {
    let part = part_path(dest);
    let io_err = |source| ApplyError::Io {
        path: part.clone(),
        source,
    };
    let mut file = if r.offset == 0 {
        remove(&part).map_err(io_err)?;
        let file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&part)
            .map_err(io_err)?;
        if let Some((uid, gid)) = owner {
            std::os::unix::fs::fchown(&file, Some(uid), Some(gid)).map_err(io_err)?;
        }
        file
    } else {
        fs::OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&part)
            .map_err(io_err)?
    };
    let have = file.metadata().map_err(io_err)?.len();
    if have != r.offset {
        return Err(ApplyError::OutOfOrder {
            path: r.path.clone(),
            have,
            offset: r.offset,
        });
    }
    file.seek(SeekFrom::Start(r.offset)).map_err(io_err)?;
    file.write_all(r.data).map_err(io_err)?;
    if r.offset + r.data.len() as u64 == r.size {
        file.sync_all().map_err(io_err)?;
        file.set_permissions(fs::Permissions::from_mode(r.mode))
            .map_err(io_err)?;
        file.set_modified(time_of(r.mtime_ns)).map_err(io_err)?;
        drop(file);
        if fs::symlink_metadata(dest).is_ok_and(|m| m.is_dir()) {
            fs::remove_dir_all(dest).map_err(io_err)?;
        }
        fs::rename(&part, dest).map_err(io_err)?;
    }
    Ok(())
}

fn time_of(ns: i128) -> SystemTime {
    if ns >= 0 {
        UNIX_EPOCH + Duration::from_nanos(u64::try_from(ns).unwrap_or(u64::MAX))
    } else {
        UNIX_EPOCH - Duration::from_nanos(u64::try_from(-ns).unwrap_or(u64::MAX))
    }
}

/// Reads `len` bytes of `path` at `offset` into `buf` (cleared first).
/// Blocks. A file that shrank meanwhile gives fewer bytes.
pub fn read_piece(path: &Path, offset: u64, len: usize, buf: &mut Vec<u8>) -> io::Result<()> {
    buf.clear();
    let mut f = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)?;
    f.seek(SeekFrom::Start(offset))?;
    f.take(len as u64).read_to_end(buf)?;
    Ok(())
}

/// The records of `plan` that are not file data: deletes, then directories,
/// then symlinks, each as `frame::encode` writes it.
pub fn encode_tree_changes(out: &mut Vec<u8>, plan: &Plan) {
    for path in &plan.delete {
        frame::encode(out, &meta_record(Kind::Delete, path, 0, b""));
    }
    for d in &plan.dirs {
        frame::encode(out, &meta_record(Kind::Dir, &d.path, d.mode, b""));
    }
    for l in &plan.links {
        let target = l.link.as_deref().unwrap_or(Path::new(""));
        frame::encode(
            out,
            &meta_record(Kind::Symlink, &l.path, 0o777, target.as_os_str().as_bytes()),
        );
    }
}

fn meta_record<'a>(kind: Kind, path: &Path, mode: u32, data: &'a [u8]) -> Record<'a> {
    Record {
        kind,
        path: path.to_path_buf(),
        mode,
        size: data.len() as u64,
        offset: 0,
        mtime_ns: 0,
        data,
    }
}

#[cfg(test)]
mod tests;
