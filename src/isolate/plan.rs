//! Parent side of the `namespace` and `sandbox` levels: turns what the
//! supervisor knows about an instance (`Spec`) into a `Plan`, the complete
//! list of what `ten __init` does inside the new namespaces. Everything is
//! decided here, in the server; the init process only applies it.
//!
//! Pure apart from resolving the program on disk (PATH, symlinks), so the
//! unit tests check the plan for each level without running anything.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

use std::io;
use std::os::fd::BorrowedFd;

use crate::config::Isolation;

use super::child::{Cgroups, LaunchError, Launched};
use super::landlock::Ruleset;
use super::spawn::Request;

/// System folders bound read-only into every namespaced instance (those
/// that exist; a symlink, like `/bin -> usr/bin`, is copied as a symlink).
pub const SYSTEM_DIRS: &[&str] = &[
    "/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc",
];

/// One namespaced start: the supervisor's request (program, environment,
/// paths, level) with what `spawn` settled for it.
#[derive(Debug, Clone, Copy)]
pub struct Spec<'a> {
    pub req: Request<'a>,
    /// The uid and gid it runs as: `user =`, else its own from
    /// `uid_range` (see `allocate_uid`).
    pub uid: (u32, u32),
}

impl Spec<'_> {
    /// The name of the passed socket (`LISTEN_FDNAMES`) when there is one.
    fn listen_name(&self) -> Option<&str> {
        self.req.listen.map(|l| l.name)
    }
}

/// One mount of the instance's root, in the order they are made.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Mount {
    /// Host folder or file bound at the same path, read-only (and nosuid,
    /// nodev), with every mount beneath it.
    ReadOnly(PathBuf),
    /// Bound read-write (nosuid, nodev).
    ReadWrite(PathBuf),
    /// Host folder `source` bound read-write at `path`.
    ReadWriteAt { source: PathBuf, path: PathBuf },
    /// A host symlink copied as it is (`/bin -> usr/bin`).
    Symlink { path: PathBuf, target: PathBuf },
    /// An empty root-owned folder over a host folder (tenement's data).
    HideDir(PathBuf),
    /// /dev/null over a host file (the config).
    HideFile(PathBuf),
    /// A private tmpfs, mode 1777.
    Tmp(PathBuf),
    /// A new procfs: only the instance's own processes.
    Proc,
    /// A tmpfs /dev with null, zero, full, random, urandom, tty and a
    /// tmpfs /dev/shm.
    Dev,
}

impl Mount {
    pub fn path(&self) -> &Path {
        match self {
            Mount::ReadOnly(p)
            | Mount::ReadWrite(p)
            | Mount::HideDir(p)
            | Mount::HideFile(p)
            | Mount::Tmp(p)
            | Mount::Symlink { path: p, .. }
            | Mount::ReadWriteAt { path: p, .. } => p,
            Mount::Proc => Path::new("/proc"),
            Mount::Dev => Path::new("/dev"),
        }
    }
}

/// Everything `ten __init` needs; sent to it as JSON on a pipe.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Plan {
    pub sandbox: bool,
    pub hostname: String,
    /// The program, resolved against the instance's PATH.
    pub program: PathBuf,
    pub argv: Vec<String>,
    /// `KEY=VALUE` entries. With a passed socket, `LISTEN_PID` is left out:
    /// init adds it with the app's pid.
    pub env: Vec<Vec<u8>>,
    pub listen: bool,
    pub workdir: PathBuf,
    /// Sorted so that a folder is mounted before what lies beneath it.
    pub mounts: Vec<Mount>,
    /// Made 0700 and owned by uid:gid before anything is mounted.
    pub data_dir: PathBuf,
    pub uid: u32,
    pub gid: u32,
    pub network_none: bool,
    /// Sandbox only.
    pub landlock: Ruleset,
}

/// A uid for a new instance from `range` (inclusive), never one in `used`
/// (every other instance's, as kept in the registry), nor one that
/// `taken` says belongs to someone else (a user in /etc/passwd), nor 0.
/// `prefer` (the owner of the instance's data dir left from an earlier
/// life) is taken back when it is free, so a forgotten and re-spawned
/// instance keeps its files' owner; otherwise the first free uid after the
/// highest in use, wrapping around, so a uid just given up is the last to
/// be handed out again. None when the range is full.
pub fn allocate_uid(
    range: (u32, u32),
    used: &std::collections::HashSet<u32>,
    prefer: Option<u32>,
    taken: impl Fn(u32) -> bool,
) -> Option<u32> {
    let (low, high) = (range.0.max(1), range.1);
    if low > high {
        return None;
    }
    let free = |u: u32| (low..=high).contains(&u) && !used.contains(&u) && !taken(u);
    if let Some(u) = prefer.filter(|&u| free(u)) {
        return Some(u);
    }
    let start = used
        .iter()
        .copied()
        .filter(|u| (low..=high).contains(u))
        .max()
        .map_or(low, |m| if m == high { low } else { m + 1 });
    (start..=high).chain(low..start).find(|&u| free(u))
}

/// The uids of /etc/passwd: never handed to an instance.
pub fn passwd_uids() -> std::collections::HashSet<u32> {
    std::fs::read_to_string("/etc/passwd")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split(':').nth(2)?.parse().ok())
        .collect()
}

/// The folders that hold the program: its own folder, or for a program in
/// a `bin`, `sbin` or `shims` folder the folder above (an interpreter's
/// tree: `…/python3.12/bin/python3` needs `…/python3.12/lib`), for the
/// path as found and for where its symlinks lead. System folders are
/// already there; a folder right under `/` is never taken whole.
pub fn program_trees(program: &Path) -> Vec<PathBuf> {
    let mut found = vec![program.to_path_buf()];
    if let Ok(real) = std::fs::canonicalize(program) {
        if real != program {
            found.push(real);
        }
    }
    let mut trees: Vec<PathBuf> = Vec::new();
    for p in found {
        let Some(mut dir) = p.parent().map(Path::to_path_buf) else {
            continue;
        };
        let name = dir.file_name().map(|n| n.as_bytes().to_vec());
        if matches!(name.as_deref(), Some(b"bin" | b"sbin" | b"shims")) {
            if let Some(up) = dir.parent() {
                if up.components().count() > 2 {
                    dir = up.to_path_buf();
                }
            }
        }
        if dir.components().count() <= 2 && !dir.starts_with("/opt") {
            // `/root`, `/home`: too wide. The program's own folder only.
            match p.parent() {
                Some(d) if d.components().count() >= 2 => dir = d.to_path_buf(),
                _ => continue,
            }
        }
        let system = SYSTEM_DIRS.iter().any(|s| dir.starts_with(s));
        if !system && dir != Path::new("/") && !trees.contains(&dir) {
            trees.push(dir);
        }
    }
    trees
}

/// `SOCKET_PATH` of a namespaced instance: the app binds it inside, where
/// its folder (tenement's `run`, hidden otherwise) is the instance's own
/// host folder `{socket}.d`, so it neither sees nor replaces another
/// instance's socket. On the host, `SOCKET_PATH` is a symlink into that
/// folder, which is how the probes and the front reach it. Returns (host
/// folder, folder inside).
pub fn socket_dirs(env: &[(OsString, OsString)]) -> Option<(PathBuf, PathBuf)> {
    let socket = Path::new(env.iter().find(|(k, _)| k == "SOCKET_PATH")?.1.as_os_str());
    let inside = socket.parent()?.to_path_buf();
    let mut name = socket.file_name()?.to_os_string();
    name.push(".d");
    Some((inside.join(name), inside))
}

/// Prepares `socket_dirs` on the host: the instance's folder (0700, its
/// uid), no stale socket in it, and the symlink at `SOCKET_PATH`.
fn prepare_socket(env: &[(OsString, OsString)], uid: u32, gid: u32) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let Some((host, _)) = socket_dirs(env) else {
        return Ok(());
    };
    let socket = Path::new(
        env.iter()
            .find(|(k, _)| k == "SOCKET_PATH")
            .map(|(_, v)| v.as_os_str())
            .unwrap_or_default(),
    );
    let name = socket.file_name().unwrap_or_default();
    std::fs::create_dir_all(&host)?;
    std::os::unix::fs::chown(&host, Some(uid), Some(gid))?;
    std::fs::set_permissions(&host, std::fs::Permissions::from_mode(0o700))?;
    for stale in [host.join(name), socket.to_path_buf()] {
        match std::fs::remove_file(&stale) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
    }
    let mut target = PathBuf::from(host.file_name().unwrap_or_default());
    target.push(name);
    std::os::unix::fs::symlink(target, socket)
}

/// Builds the plan for `spec`. `program` is the resolved program path.
pub fn build(spec: &Spec<'_>, program: &Path) -> Plan {
    let sandbox = spec.req.isolation == Isolation::Sandbox;
    let (uid, gid) = spec.uid;
    let mut read_only: Vec<PathBuf> = Vec::new();
    let mut mounts: Vec<Mount> = Vec::new();
    for dir in SYSTEM_DIRS {
        let path = Path::new(dir);
        match std::fs::symlink_metadata(path) {
            Ok(m) if m.file_type().is_symlink() => {
                if let Ok(target) = std::fs::read_link(path) {
                    mounts.push(Mount::Symlink {
                        path: path.to_path_buf(),
                        target,
                    });
                }
            }
            Ok(m) if m.is_dir() => {
                mounts.push(Mount::ReadOnly(path.to_path_buf()));
                read_only.push(path.to_path_buf());
            }
            _ => {}
        }
    }
    let mut ro: Vec<PathBuf> = vec![spec.req.workdir.to_path_buf()];
    ro.extend(program_trees(program));
    // What an interpreter runs: an argument that is an existing file by
    // absolute path (`python3 /srv/app/main.py`) brings its folder along.
    for arg in spec.req.argv.iter().skip(1).map(Path::new) {
        if arg.is_absolute() && arg.is_file() {
            ro.extend(program_trees(arg));
        }
    }
    // A listed path that does not exist is left out (nothing to bind).
    ro.extend(spec.req.read_paths.iter().filter(|p| p.exists()).cloned());
    for p in ro {
        // "/" as a workdir or read path is the new root itself: binding the
        // host's whole tree would undo everything else.
        if p == Path::new("/") {
            continue;
        }
        if !read_only.contains(&p) {
            read_only.push(p.clone());
            mounts.push(Mount::ReadOnly(p));
        }
    }
    mounts.push(Mount::Tmp(PathBuf::from("/tmp")));
    mounts.push(Mount::Proc);
    mounts.push(Mount::Dev);
    mounts.push(Mount::HideDir(spec.req.tenement_dir.to_path_buf()));
    let bound: Vec<PathBuf> = mounts
        .iter()
        .filter_map(|m| match m {
            Mount::ReadOnly(p) => Some(p.clone()),
            _ => None,
        })
        .collect();
    for f in spec.req.hide {
        if bound.iter().any(|b| f.starts_with(b)) && !f.starts_with(spec.req.tenement_dir) {
            mounts.push(Mount::HideFile(f.clone()));
        }
    }
    let mut read_write = vec![spec.req.data_dir.to_path_buf()];
    read_write.extend(spec.req.write_paths.iter().filter(|p| p.exists()).cloned());
    for p in &read_write {
        mounts.push(Mount::ReadWrite(p.clone()));
    }
    if let Some((host, inside)) = socket_dirs(spec.req.env) {
        mounts.push(Mount::ReadWriteAt {
            source: host,
            path: inside.clone(),
        });
        read_write.push(inside);
    }
    // A folder before what lies beneath it; at equal depth, the order
    // above (binds before hiding, hiding before the data dir).
    mounts.sort_by_key(|m| m.path().components().count());

    let mut env: Vec<Vec<u8>> = Vec::new();
    for (k, v) in spec.req.env {
        if spec.listen_name().is_some()
            && matches!(
                k.as_bytes(),
                b"LISTEN_FDS" | b"LISTEN_PID" | b"LISTEN_FDNAMES"
            )
        {
            continue;
        }
        let mut e = k.as_bytes().to_vec();
        e.push(b'=');
        e.extend_from_slice(v.as_bytes());
        if !e.contains(&0) {
            env.push(e);
        }
    }
    if let Some(name) = spec.listen_name() {
        env.push(b"LISTEN_FDS=1".to_vec());
        let name: Vec<u8> = name.bytes().filter(|&c| c != 0 && c != b':').collect();
        env.push([b"LISTEN_FDNAMES=".as_slice(), &name].concat());
    }

    let mut rw_all = read_write.clone();
    rw_all.push(PathBuf::from("/tmp"));
    rw_all.push(PathBuf::from("/dev/shm"));
    let landlock = if sandbox {
        let mut ro_all = read_only.clone();
        ro_all.push(PathBuf::from("/proc"));
        Ruleset {
            read_only: ro_all,
            read_write_files: vec![PathBuf::from("/dev")],
            read_write: rw_all,
        }
    } else {
        Ruleset::default()
    };
    Plan {
        sandbox,
        hostname: format!("{}.{}", spec.req.id, spec.req.service),
        program: program.to_path_buf(),
        argv: spec.req.argv.to_vec(),
        env,
        listen: spec.listen_name().is_some(),
        workdir: spec.req.workdir.to_path_buf(),
        mounts,
        data_dir: spec.req.data_dir.to_path_buf(),
        uid,
        gid,
        network_none: spec.req.network_none,
        landlock,
    }
}

/// The uid and gid of `user =`: a name from /etc/passwd, or a number
/// (its gid from /etc/passwd when listed there, else the same number).
pub fn resolve_user(user: &crate::config::User) -> Result<(u32, u32), String> {
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    let entries = passwd.lines().filter_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        Some((
            *f.first()?,
            f.get(2)?.parse::<u32>().ok()?,
            f.get(3)?.parse::<u32>().ok()?,
        ))
    });
    match user {
        crate::config::User::Name(name) => entries
            .filter(|(n, _, _)| n == name)
            .map(|(_, u, g)| (u, g))
            .next()
            .ok_or_else(|| format!("user {name:?} is not in /etc/passwd")),
        crate::config::User::Uid(uid) => Ok(entries
            .filter(|(_, u, _)| u == uid)
            .map(|(_, u, g)| (u, g))
            .next()
            .unwrap_or((*uid, *uid))),
    }
}

/// Why a namespaced instance did not start.
#[derive(Debug)]
pub enum StartError {
    /// The kernel or our privileges cannot give the level.
    Unsupported {
        missing: String,
    },
    Workdir {
        source: io::Error,
    },
    /// The program is not there, checked before anything is cloned.
    Program {
        source: io::Error,
    },
    Launch(LaunchError),
}

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StartError::Unsupported { missing } => f.write_str(missing),
            StartError::Workdir { .. } => f.write_str("workdir is not usable"),
            StartError::Program { .. } => f.write_str("cannot execute the program"),
            StartError::Launch(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for StartError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            StartError::Unsupported { .. } => None,
            StartError::Workdir { source } | StartError::Program { source } => Some(source),
            StartError::Launch(e) => e.source(),
        }
    }
}

/// What the level needs from the kernel and from us, checked before
/// anything is started: Err names what is missing.
pub fn preflight(level: Isolation) -> Result<(), String> {
    if !rustix::process::geteuid().is_root() {
        return Err(format!(
            "isolation {:?} needs ten serve to run as root (new namespaces need CAP_SYS_ADMIN)",
            level.as_str()
        ));
    }
    if level == Isolation::Sandbox {
        super::landlock::abi().map_err(|e| e.to_string())?;
        // SAFETY: prctl with integer arguments; EINVAL when the kernel has
        // no seccomp at all.
        if unsafe { libc::prctl(libc::PR_GET_SECCOMP, 0, 0, 0, 0) } == -1 {
            return Err("seccomp is not enabled in this kernel (CONFIG_SECCOMP_FILTER)".into());
        }
    }
    Ok(())
}

/// Starts `spec` at its namespaced level with `exe` (normally
/// /proc/self/exe) as its init. Blocks until the app has been exec'd
/// inside or a step failed.
pub fn start(
    exe: &Path,
    spec: &Spec<'_>,
    listen: Option<BorrowedFd<'_>>,
    cgroups: Cgroups<'_>,
) -> Result<Launched, StartError> {
    preflight(spec.req.isolation).map_err(|missing| StartError::Unsupported { missing })?;
    match std::fs::metadata(spec.req.workdir) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => {
            return Err(StartError::Workdir {
                source: io::Error::from_raw_os_error(libc::ENOTDIR),
            })
        }
        Err(source) => return Err(StartError::Workdir { source }),
    }
    let program = argv_program(spec);
    match std::fs::metadata(&program) {
        Ok(m) if m.is_file() => {}
        Ok(_) => {
            return Err(StartError::Program {
                source: io::Error::from_raw_os_error(libc::EACCES),
            })
        }
        Err(source) => return Err(StartError::Program { source }),
    }
    let plan = build(spec, &program);
    prepare_socket(spec.req.env, plan.uid, plan.gid).map_err(|e| {
        StartError::Launch(LaunchError::Call {
            call: "prepare the instance's socket folder",
            source: e,
        })
    })?;
    super::child::launch(exe, &plan, listen, cgroups).map_err(StartError::Launch)
}

/// The program as execvp would find it with the instance's PATH; a
/// relative path with a slash is taken from the workdir.
fn argv_program(spec: &Spec<'_>) -> PathBuf {
    let program = spec
        .req
        .argv
        .first()
        .map(String::as_str)
        .unwrap_or_default();
    let path = spec
        .req
        .env
        .iter()
        .find(|(k, _)| k == "PATH")
        .map(|(_, v)| v.as_os_str());
    let found = resolve_program(program, path);
    if found.is_relative() {
        spec.req.workdir.join(found)
    } else {
        found
    }
}

/// Where execvp(3) would find `program`: the first of its `candidates`
/// that is an executable regular file. None is: `program` as given, so
/// execve fails with ENOENT and the error names it.
fn resolve_program(program: &str, path: Option<&OsStr>) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    candidates(program, path)
        .into_iter()
        .map(|p| PathBuf::from(OsString::from_vec(p)))
        .find(|p| {
            std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
        .unwrap_or_else(|| PathBuf::from(program))
}

/// The `PATH` execvp(3) searches when the environment has none.
const DEFAULT_PATH: &str = "/usr/local/bin:/usr/bin:/bin";

/// The paths execvp(3) tries for `program`, in order: itself when it has a
/// slash (or is empty: ENOENT), else each folder of `path` (the child's
/// `PATH`, default `DEFAULT_PATH`) joined with it, an empty folder being
/// the workdir.
pub(super) fn candidates(program: &str, path: Option<&OsStr>) -> Vec<Vec<u8>> {
    if program.is_empty() || program.contains('/') {
        return vec![program.as_bytes().to_vec()];
    }
    let path = path.unwrap_or(OsStr::new(DEFAULT_PATH));
    path.as_bytes()
        .split(|&b| b == b':')
        .map(|dir| {
            let mut p = dir.to_vec();
            if !p.is_empty() && !p.ends_with(b"/") {
                p.push(b'/');
            }
            p.extend_from_slice(program.as_bytes());
            p
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn candidates_follow_path_as_execvp_does() {
        let path = std::ffi::OsStr::new("/a:/b/::/c");
        let got: Vec<String> = candidates("app", Some(path))
            .into_iter()
            .map(|c| String::from_utf8(c).unwrap())
            .collect();
        assert_eq!(got, ["/a/app", "/b/app", "app", "/c/app"]);
        let one = |p: &str| -> Vec<String> {
            candidates(p, Some(path))
                .into_iter()
                .map(|c| String::from_utf8(c).unwrap())
                .collect()
        };
        assert_eq!(one("./run"), ["./run"]);
        assert_eq!(one("/usr/bin/env"), ["/usr/bin/env"]);
        assert_eq!(one(""), [""]);
        assert_eq!(candidates("sh", None).len(), 3);
    }

    fn spec<'a>(level: Isolation, argv: &'a [String], hide: &'a [PathBuf]) -> Spec<'a> {
        let mut req = Request::process(argv, Path::new("/srv/app"), &[], None);
        req.isolation = level;
        req.service = "notes";
        req.id = "alice";
        req.data_dir = Path::new("/srv/app/data/notes/alice");
        req.tenement_dir = Path::new("/srv/app/data");
        req.hide = hide;
        Spec {
            req,
            uid: (200_001, 200_001),
        }
    }

    #[test]
    fn uids_are_allocated_without_collision() {
        use std::collections::HashSet;
        let none = |_| false;
        let range = (200_000, 200_004);
        let mut used = HashSet::new();
        // One after another, each new.
        for want in 200_000..=200_004 {
            let u = allocate_uid(range, &used, None, none).unwrap();
            assert_eq!(u, want);
            used.insert(u);
        }
        // Full: no uid is handed out twice.
        assert_eq!(allocate_uid(range, &used, None, none), None);
        // Next after the highest in use: a uid given up lower down waits
        // until the range wraps around.
        used.remove(&200_001);
        used.remove(&200_004);
        assert_eq!(allocate_uid(range, &used, None, none), Some(200_004));
        used.insert(200_004);
        used.remove(&200_003);
        // The highest is the range's end: wrap around to the lowest free.
        assert_eq!(allocate_uid(range, &used, None, none), Some(200_001));
        // The data dir's owner is taken back when free, never when used.
        assert_eq!(
            allocate_uid(range, &used, Some(200_003), none),
            Some(200_003)
        );
        assert_eq!(
            allocate_uid(range, &used, Some(200_002), none),
            Some(200_001)
        );
        // Nor when outside the range.
        assert_eq!(allocate_uid(range, &used, Some(7), none), Some(200_001));
        // Someone else's uid (a user in /etc/passwd) is skipped.
        assert_eq!(
            allocate_uid(range, &used, None, |u| u == 200_001),
            Some(200_003)
        );
        // Never 0, even from a range that starts there.
        assert_eq!(
            allocate_uid((0, 1), &HashSet::new(), Some(0), none),
            Some(1)
        );
    }

    #[test]
    fn folders_come_before_what_lies_beneath() {
        let argv = vec!["/usr/bin/python3".to_string()];
        let hide = [PathBuf::from("/srv/app/tenement.toml")];
        let p = build(
            &spec(Isolation::Namespace, &argv, &hide),
            Path::new("/usr/bin/python3"),
        );
        let pos = |m: &Mount| p.mounts.iter().position(|x| x == m).unwrap();
        let work = pos(&Mount::ReadOnly("/srv/app".into()));
        let hidden = pos(&Mount::HideDir("/srv/app/data".into()));
        let data = pos(&Mount::ReadWrite("/srv/app/data/notes/alice".into()));
        assert!(work < hidden && hidden < data, "{:?}", p.mounts);
        assert!(p
            .mounts
            .contains(&Mount::HideFile("/srv/app/tenement.toml".into())));
        assert!(p.mounts.contains(&Mount::Tmp("/tmp".into())));
        assert!(p.mounts.contains(&Mount::Proc));
        assert_eq!(p.hostname, "alice.notes");
        assert!(!p.sandbox);
        assert_eq!(p.landlock, Ruleset::default());
    }

    #[test]
    fn sandbox_lands_write_access_only_on_data_dir_tmp_and_shm() {
        let argv = vec!["/usr/bin/python3".to_string()];
        let p = build(
            &spec(Isolation::Sandbox, &argv, &[]),
            Path::new("/usr/bin/python3"),
        );
        assert!(p.sandbox);
        assert_eq!(
            p.landlock.read_write,
            [
                PathBuf::from("/srv/app/data/notes/alice"),
                "/tmp".into(),
                "/dev/shm".into()
            ]
        );
        assert!(p.landlock.read_only.contains(&PathBuf::from("/usr")));
        assert!(!p
            .landlock
            .read_only
            .iter()
            .any(|r| r == Path::new("/srv/app/data")));
    }

    #[test]
    fn an_interpreter_tree_comes_along() {
        let t = program_trees(Path::new("/root/.pyenv/versions/3.12/bin/python3"));
        assert_eq!(t, [PathBuf::from("/root/.pyenv/versions/3.12")]);
        let t = program_trees(Path::new("/root/app/run.sh"));
        assert_eq!(t, [PathBuf::from("/root/app")]);
        assert!(program_trees(Path::new("/usr/bin/python3")).is_empty());
        // Never a whole home.
        let t = program_trees(Path::new("/root/bin/tool"));
        assert_eq!(t, [PathBuf::from("/root/bin")]);
    }

    #[test]
    fn a_script_given_by_absolute_path_comes_along() {
        let script = std::env::current_exe().unwrap();
        let argv = vec![
            "/usr/bin/python3".to_string(),
            "-u".to_string(),
            script.display().to_string(),
        ];
        let p = build(
            &spec(Isolation::Namespace, &argv, &[]),
            Path::new("/usr/bin/python3"),
        );
        let dir = script.parent().unwrap().to_path_buf();
        assert!(p.mounts.contains(&Mount::ReadOnly(dir)), "{:?}", p.mounts);
    }

    #[test]
    fn the_host_root_is_never_bound() {
        let argv = vec!["/bin/sleep".to_string()];
        let mut sp = spec(Isolation::Sandbox, &argv, &[]);
        sp.req.workdir = Path::new("/");
        let paths = [PathBuf::from("/")];
        sp.req.read_paths = &paths;
        let p = build(&sp, Path::new("/bin/sleep"));
        assert!(
            !p.mounts.contains(&Mount::ReadOnly("/".into())),
            "{:?}",
            p.mounts
        );
        assert!(!p.landlock.read_only.contains(&PathBuf::from("/")));
    }

    #[test]
    fn passed_socket_variables_are_rebuilt() {
        let argv = vec!["/bin/app".to_string()];
        let env = vec![
            (OsString::from("LISTEN_PID"), OsString::from("1")),
            (OsString::from("A"), OsString::from("b")),
        ];
        let null = std::fs::File::open("/dev/null").unwrap();
        let mut s = spec(Isolation::Namespace, &argv, &[]);
        s.req.env = &env;
        s.req.listen = Some(super::super::spawn::Listen {
            fd: std::os::fd::AsFd::as_fd(&null),
            name: "notes",
        });
        let p = build(&s, Path::new("/bin/app"));
        assert_eq!(
            p.env,
            [
                b"A=b".to_vec(),
                b"LISTEN_FDS=1".to_vec(),
                b"LISTEN_FDNAMES=notes".to_vec()
            ]
        );
        assert!(p.listen);
    }
}
