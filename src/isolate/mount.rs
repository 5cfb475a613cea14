//! The instance's root, built by its init inside its new mount namespace:
//! every host path the plan binds is opened first (O_PATH), a fresh tmpfs
//! is mounted over `/tmp` (this namespace's only) and filled with the
//! plan's mounts, each bound from its opened descriptor
//! (`/proc/self/fd/N`, so a source under the host's `/tmp` is still
//! reachable), then that tmpfs becomes `/` with one pivot_root and the
//! host's tree is detached. (pivot_root walks every task on the machine;
//! one is half the cost of the two a staging root takes.)

use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use std::os::fd::{AsRawFd, OwnedFd};

use rustix::fs::{Mode, OFlags};
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

/// Where the new root is built (a tmpfs over the host's `/tmp`, seen by
/// this mount namespace only).
const NEW: &str = "/tmp";

/// The character devices a minimal /dev gets from the host's.
const DEV_NODES: [&str; 6] = ["null", "zero", "full", "random", "urandom", "tty"];

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

/// A host path opened before anything is mounted over it, bound from
/// `/proc/self/fd/N`.
struct Source {
    fd: OwnedFd,
    dir: bool,
}

impl Source {
    fn open(path: &Path) -> Result<Source, MountError> {
        let fd = rustix::fs::open(path, OFlags::PATH | OFlags::CLOEXEC, Mode::empty())
            .map_err(err("open", path))?;
        let st = rustix::fs::fstat(&fd).map_err(err("stat", path))?;
        let dir = rustix::fs::FileType::from_raw_mode(st.st_mode).is_dir();
        Ok(Source { fd, dir })
    }

    fn path(&self) -> PathBuf {
        PathBuf::from(format!("/proc/self/fd/{}", self.fd.as_raw_fd()))
    }
}

/// One mount of the plan, ready to be made: what it binds from the host
/// opened already (the tmpfs the root is built on hides the host's /tmp).
enum Step<'m> {
    /// Bound from `from`, then given the mount attributes `attrs`.
    Bind {
        at: &'m Path,
        from: Source,
        attrs: u64,
    },
    /// /dev/null bound over a file, when the root has one there.
    HideFile(&'m Path),
    Symlink {
        at: &'m Path,
        target: &'m Path,
    },
    HideDir(&'m Path),
    Tmp(&'m Path),
    Proc,
    Dev,
}

impl<'m> Step<'m> {
    fn open(m: &'m Mount) -> Result<Step<'m>, MountError> {
        let hardened = MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV;
        let bind = |at, from: &Path, attrs| -> Result<Step<'m>, MountError> {
            Ok(Step::Bind {
                at,
                from: Source::open(from)?,
                attrs,
            })
        };
        match m {
            Mount::ReadOnly(p) => bind(p, p, hardened | MOUNT_ATTR_RDONLY),
            Mount::ReadWrite(p) => bind(p, p, hardened),
            Mount::ReadWriteAt { source, path } => bind(path, source, hardened),
            Mount::Symlink { path, target } => Ok(Step::Symlink { at: path, target }),
            Mount::HideDir(p) => Ok(Step::HideDir(p)),
            Mount::HideFile(p) => Ok(Step::HideFile(p)),
            Mount::Tmp(p) => Ok(Step::Tmp(p)),
            Mount::Proc => Ok(Step::Proc),
            Mount::Dev => Ok(Step::Dev),
        }
    }
}

/// Builds the root of `mounts` and makes it `/`, the host's tree detached.
pub fn build_root(mounts: &[Mount]) -> Result<(), MountError> {
    // Every source first: the tmpfs below hides the host's /tmp.
    let steps = mounts
        .iter()
        .map(Step::open)
        .collect::<Result<Vec<_>, _>>()?;
    let null = Source::open(Path::new("/dev/null"))?;
    let mut nodes: Vec<(&str, Source)> = Vec::new();
    if mounts.contains(&Mount::Dev) {
        for node in DEV_NODES {
            let p = Path::new("/dev").join(node);
            if p.exists() {
                nodes.push((node, Source::open(&p)?));
            }
        }
    }
    let new = Path::new(NEW);
    mount(
        "tmpfs",
        new,
        "tmpfs",
        MountFlags::NOSUID | MountFlags::NODEV,
        Some(c"mode=0755"),
    )
    .map_err(err("mount root tmpfs on", new))?;
    populate(&steps, &null, &nodes)?;
    enter()
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

fn bind(src: &Source, dst: &Path, attrs: u64) -> Result<(), MountError> {
    if src.dir {
        if !dst.is_dir() {
            mkdirs(dst)?;
        }
    } else if !dst.exists() {
        touch(dst)?;
    }
    mount_bind_recursive(src.path(), dst).map_err(err("bind", dst))?;
    mount_setattr_recursive(&cstr(dst), attrs).map_err(ioerr("set attributes of", dst))
}

/// Makes each step under the new root, in order; `null` is the host's
/// /dev/null, `nodes` the devices a /dev gets.
fn populate(steps: &[Step<'_>], null: &Source, nodes: &[(&str, Source)]) -> Result<(), MountError> {
    let nosuid = MountFlags::NOSUID | MountFlags::NODEV;
    for step in steps {
        match step {
            Step::Bind { at, from, attrs } => bind(from, &under(NEW, at), *attrs)?,
            Step::Symlink { at, target } => {
                let dst = under(NEW, at);
                if let Some(parent) = dst.parent() {
                    mkdirs(parent)?;
                }
                std::os::unix::fs::symlink(target, &dst).map_err(ioerr("symlink", &dst))?;
            }
            Step::HideDir(at) => {
                let dst = under(NEW, at);
                mkdirs(&dst)?;
                mount(
                    "tmpfs",
                    &dst,
                    "tmpfs",
                    nosuid | MountFlags::NOEXEC,
                    Some(c"mode=0755,size=64k"),
                )
                .map_err(err("hide", at))?;
            }
            Step::HideFile(at) => {
                let dst = under(NEW, at);
                if dst.exists() {
                    mount_bind(null.path(), &dst).map_err(err("hide", at))?;
                }
            }
            Step::Tmp(at) => {
                let dst = under(NEW, at);
                mkdirs(&dst)?;
                mount("tmpfs", &dst, "tmpfs", nosuid, Some(c"mode=1777"))
                    .map_err(err("mount tmpfs on", at))?;
            }
            Step::Proc => {
                let dst = under(NEW, Path::new("/proc"));
                mkdirs(&dst)?;
                mount("proc", &dst, "proc", nosuid | MountFlags::NOEXEC, None)
                    .map_err(err("mount proc on", Path::new("/proc")))?;
            }
            Step::Dev => dev(&under(NEW, Path::new("/dev")), nodes)?,
        }
    }
    Ok(())
}

/// A minimal /dev: the harmless character devices bound from the host's,
/// the usual symlinks, and a private tmpfs /dev/shm.
fn dev(dst: &Path, nodes: &[(&str, Source)]) -> Result<(), MountError> {
    mkdirs(dst)?;
    mount(
        "tmpfs",
        dst,
        "tmpfs",
        MountFlags::NOSUID | MountFlags::NOEXEC,
        Some(c"mode=0755,size=64k"),
    )
    .map_err(err("mount tmpfs on", dst))?;
    for (node, src) in nodes {
        let to = dst.join(node);
        touch(&to)?;
        mount_bind(src.path(), &to).map_err(err("bind", &to))?;
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

/// Makes the new root `/` and detaches everything else, the host's tree
/// included (pivot_root(".", ".") then a lazy unmount of the old root
/// stacked on top, as pivot_root(2) describes).
fn enter() -> Result<(), MountError> {
    let new = Path::new(NEW);
    std::env::set_current_dir(new).map_err(ioerr("chdir", new))?;
    rustix::process::pivot_root(".", ".").map_err(err("pivot_root into", new))?;
    unmount(".", UnmountFlags::DETACH).map_err(err("detach the old root at", Path::new("/")))?;
    std::env::set_current_dir("/").map_err(ioerr("chdir", Path::new("/")))
}
