//! The instance's root, built by `ten __init` inside its new mount
//! namespace the way bubblewrap does it: a tmpfs staging root with the
//! host's root moved under `/oldroot`, a fresh tmpfs at `/newroot` filled
//! with the plan's mounts (host paths read from `/oldroot`, so even a
//! source under the host's `/tmp` is reachable), then `/newroot` becomes
//! `/` and the host's tree is detached.

use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rustix::mount::{
    mount, mount_bind, mount_bind_recursive, mount_change, unmount, MountFlags,
    MountPropagationFlags, UnmountFlags,
};

use super::plan::Mount;
use crate::sys::mount::{
    mount_setattr_recursive, MOUNT_ATTR_NODEV, MOUNT_ATTR_NOSUID, MOUNT_ATTR_RDONLY,
};

/// A mount step that failed: what was being done, to which path.
#[derive(Debug)]
pub struct MountError {
    pub what: &'static str,
    pub path: PathBuf,
    pub source: io::Error,
}

impl std::fmt::Display for MountError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.what, self.path.display(), self.source)
    }
}

fn err(what: &'static str, path: &Path) -> impl FnOnce(rustix::io::Errno) -> MountError {
    let path = path.to_path_buf();
    move |e| MountError {
        what,
        path,
        source: e.into(),
    }
}

fn ioerr(what: &'static str, path: &Path) -> impl FnOnce(io::Error) -> MountError {
    let path = path.to_path_buf();
    move |source| MountError { what, path, source }
}

/// Where the host's root is while the new one is built.
const OLD: &str = "/oldroot";
/// Where the new root is built.
const NEW: &str = "/newroot";

/// `path` (absolute) under `base`.
fn under(base: &str, path: &Path) -> PathBuf {
    let rel = path.strip_prefix("/").unwrap_or(path);
    Path::new(base).join(rel)
}

fn cstr(p: &Path) -> CString {
    CString::new(p.as_os_str().as_bytes()).unwrap_or_default()
}

/// Makes every mount private, recursively: nothing mounted from here on
/// propagates back to the host's namespace.
pub fn make_private() -> Result<(), MountError> {
    mount_change(
        "/",
        MountPropagationFlags::PRIVATE | MountPropagationFlags::REC,
    )
    .map_err(err("make private", Path::new("/")))
}

/// Mounts a staging tmpfs on the host's /tmp (invisible to the host: the
/// namespace is private) and pivots into it; the host's root is then at
/// `/oldroot`, the new root is built at `/newroot`.
pub fn stage() -> Result<(), MountError> {
    let tmp = Path::new("/tmp");
    mount(
        "tmpfs",
        tmp,
        "tmpfs",
        MountFlags::NOSUID | MountFlags::NODEV,
        Some(c"mode=0700"),
    )
    .map_err(err("mount staging tmpfs on", tmp))?;
    std::env::set_current_dir(tmp).map_err(ioerr("chdir", tmp))?;
    for d in ["oldroot", "newroot"] {
        std::fs::create_dir(d).map_err(ioerr("mkdir", Path::new(d)))?;
    }
    rustix::process::pivot_root(".", "oldroot").map_err(err("pivot_root into", tmp))?;
    std::env::set_current_dir("/").map_err(ioerr("chdir", Path::new("/")))?;
    mount(
        "tmpfs",
        NEW,
        "tmpfs",
        MountFlags::NOSUID | MountFlags::NODEV,
        Some(c"mode=0755"),
    )
    .map_err(err("mount root tmpfs on", Path::new(NEW)))
}

/// Creates `path` and its missing parents (0755, root's): the mount
/// point of a folder.
fn mkdirs(path: &Path) -> Result<(), MountError> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(path)
        .map_err(ioerr("mkdir", path))
}

/// Creates an empty file at `path` (and its parents): the mount point of a
/// file.
fn touch(path: &Path) -> Result<(), MountError> {
    if let Some(parent) = path.parent() {
        mkdirs(parent)?;
    }
    match std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
    {
        Ok(_) => Ok(()),
        Err(e) => Err(ioerr("create", path)(e)),
    }
}

fn bind(src: &Path, dst: &Path, attrs: u64) -> Result<(), MountError> {
    let is_dir = std::fs::metadata(src).map_err(ioerr("stat", src))?.is_dir();
    if is_dir {
        if !dst.is_dir() {
            mkdirs(dst)?;
        }
    } else if !dst.exists() {
        touch(dst)?;
    }
    mount_bind_recursive(src, dst).map_err(err("bind", src))?;
    mount_setattr_recursive(&cstr(dst), attrs).map_err(ioerr("set attributes of", dst))
}

/// Makes each of `mounts` under `/newroot`, in order.
pub fn populate(mounts: &[Mount]) -> Result<(), MountError> {
    let nosuid = MountFlags::NOSUID | MountFlags::NODEV;
    for m in mounts {
        let dst = under(NEW, m.path());
        match m {
            Mount::ReadOnly(p) => bind(
                &under(OLD, p),
                &dst,
                MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV,
            )?,
            Mount::ReadWrite(p) => {
                bind(&under(OLD, p), &dst, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV)?
            }
            Mount::ReadWriteAt { source, .. } => bind(
                &under(OLD, source),
                &dst,
                MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV,
            )?,
            Mount::Symlink { target, .. } => {
                if let Some(parent) = dst.parent() {
                    mkdirs(parent)?;
                }
                std::os::unix::fs::symlink(target, &dst).map_err(ioerr("symlink", &dst))?;
            }
            Mount::HideDir(_) => {
                mkdirs(&dst)?;
                mount(
                    "tmpfs",
                    &dst,
                    "tmpfs",
                    nosuid | MountFlags::NOEXEC,
                    Some(c"mode=0755,size=64k"),
                )
                .map_err(err("hide", m.path()))?;
            }
            Mount::HideFile(_) => {
                if !dst.exists() {
                    continue;
                }
                mount_bind(Path::new("/oldroot/dev/null"), &dst).map_err(err("hide", m.path()))?;
            }
            Mount::Tmp(_) => {
                mkdirs(&dst)?;
                mount("tmpfs", &dst, "tmpfs", nosuid, Some(c"mode=1777"))
                    .map_err(err("mount tmpfs on", m.path()))?;
            }
            Mount::Proc => {
                mkdirs(&dst)?;
                mount("proc", &dst, "proc", nosuid | MountFlags::NOEXEC, None)
                    .map_err(err("mount proc on", m.path()))?;
            }
            Mount::Dev => dev(&dst)?,
        }
    }
    Ok(())
}

/// A minimal /dev: the harmless character devices bound from the host's,
/// the usual symlinks, and a private tmpfs /dev/shm.
fn dev(dst: &Path) -> Result<(), MountError> {
    mkdirs(dst)?;
    mount(
        "tmpfs",
        dst,
        "tmpfs",
        MountFlags::NOSUID | MountFlags::NOEXEC,
        Some(c"mode=0755,size=64k"),
    )
    .map_err(err("mount tmpfs on", dst))?;
    for node in ["null", "zero", "full", "random", "urandom", "tty"] {
        let src = Path::new(OLD).join("dev").join(node);
        if !src.exists() {
            continue;
        }
        let to = dst.join(node);
        touch(&to)?;
        mount_bind(&src, &to).map_err(err("bind", &src))?;
    }
    for (name, target) in [
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ] {
        let at = dst.join(name);
        std::os::unix::fs::symlink(target, &at).map_err(ioerr("symlink", &at))?;
    }
    let shm = dst.join("shm");
    mkdirs(&shm)?;
    mount(
        "tmpfs",
        &shm,
        "tmpfs",
        MountFlags::NOSUID | MountFlags::NODEV,
        Some(c"mode=1777"),
    )
    .map_err(err("mount tmpfs on", &shm))
}

/// Makes `/newroot` the root and detaches everything else, the host's
/// tree included (pivot_root(".", ".") then a lazy unmount of the old
/// root stacked on top, as pivot_root(2) describes).
pub fn enter() -> Result<(), MountError> {
    let new = Path::new(NEW);
    std::env::set_current_dir(new).map_err(ioerr("chdir", new))?;
    rustix::process::pivot_root(".", ".").map_err(err("pivot_root into", new))?;
    unmount(".", UnmountFlags::DETACH).map_err(err("detach the old root at", Path::new("/")))?;
    std::env::set_current_dir("/").map_err(ioerr("chdir", Path::new("/")))
}
