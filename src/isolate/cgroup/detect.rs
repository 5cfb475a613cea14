//! Which cgroup hierarchies this machine has and where our cgroups go:
//! `/proc/self/cgroup` and `/proc/self/mountinfo` read into a `Layout`.
//! Pure parsing plus the reads at start-up.

use super::*;

// ---- detection ----------------------------------------------------------

/// Our own place in one mounted hierarchy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hierarchy {
    /// The controllers a v1 hierarchy carries (`memory`, `cpu`, `cpuacct`,
    /// ...); empty for v2, whose controllers `cgroup.controllers` lists.
    pub controllers: Vec<String>,
    /// Where it is mounted.
    pub mount: PathBuf,
    /// The directory of the cgroup `ten serve` itself is in.
    pub own: PathBuf,
}

impl Hierarchy {
    pub(super) fn has(&self, controller: &str) -> bool {
        self.controllers.iter().any(|c| c == controller)
    }
}

/// The hierarchies mounted here and our cgroup in each.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Layout {
    pub v2: Option<Hierarchy>,
    pub v1: Vec<Hierarchy>,
}

/// One line of `/proc/self/cgroup`: `id:controllers:path`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Membership {
    /// Empty for the v2 line (`0::/path`) and for named v1 hierarchies.
    controllers: Vec<String>,
    named: bool,
    path: String,
}

pub(super) fn parse_proc_cgroup(text: &str) -> Vec<Membership> {
    text.lines()
        .filter_map(|l| {
            let mut parts = l.splitn(3, ':');
            let _id = parts.next()?;
            let list = parts.next()?;
            let path = parts.next()?.to_string();
            let named = list.split(',').any(|c| c.starts_with("name="));
            let controllers = list
                .split(',')
                .filter(|c| !c.is_empty() && !c.starts_with("name="))
                .map(str::to_string)
                .collect();
            Some(Membership {
                controllers,
                named,
                path,
            })
        })
        .collect()
}

/// One cgroup mount from `/proc/self/mountinfo`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Mount {
    /// The cgroup mounted there (field 4), relative to our cgroup namespace.
    root: String,
    point: PathBuf,
    v2: bool,
    /// Super options: for v1 the controllers, plus flags such as `rw`.
    options: Vec<String>,
}

/// Undoes mountinfo's octal escapes (`\040` for a space, proc(5)).
pub(super) fn unescape(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let v = (b[i + 1] - b'0') as u32 * 64
                + (b[i + 2] - b'0') as u32 * 8
                + (b[i + 3] - b'0') as u32;
            if let Ok(byte) = u8::try_from(v) {
                out.push(byte);
                i += 4;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    out
}

pub(super) fn parse_mountinfo(text: &str) -> Vec<Mount> {
    text.lines()
        .filter_map(|l| {
            let (left, right) = l.split_once(" - ")?;
            let left: Vec<&str> = left.split(' ').collect();
            let mut right = right.split(' ');
            let fstype = right.next()?;
            let v2 = match fstype {
                "cgroup2" => true,
                "cgroup" => false,
                _ => return None,
            };
            let _source = right.next()?;
            let options = right
                .next()
                .unwrap_or("")
                .split(',')
                .map(str::to_string)
                .collect();
            Some(Mount {
                root: String::from_utf8(unescape(left.get(3)?)).ok()?,
                point: PathBuf::from(std::ffi::OsStr::from_bytes(&unescape(left.get(4)?))),
                v2,
                options,
            })
        })
        .collect()
}

/// `point` plus the part of `path` below the mounted `root`; None when our
/// cgroup is not below what is mounted there.
pub(super) fn own_dir(point: &Path, root: &str, path: &str) -> Option<PathBuf> {
    let rel = if root == "/" {
        path.trim_start_matches('/')
    } else if path == root {
        ""
    } else {
        path.strip_prefix(root)?.strip_prefix('/')?
    };
    // A cgroup path never has `..`; refuse one rather than leave the mount.
    if rel.split('/').any(|c| c == "..") {
        return None;
    }
    Some(if rel.is_empty() {
        point.to_path_buf()
    } else {
        point.join(rel)
    })
}

impl Layout {
    /// Reads `/proc/self/cgroup` and `/proc/self/mountinfo`.
    pub fn detect() -> Result<Layout, CgroupError> {
        let read_proc = |p: &str| {
            read(Path::new(p)).map_err(|source| CgroupError::Read {
                path: PathBuf::from(p),
                source,
            })
        };
        Ok(Layout::parse(
            &read_proc("/proc/self/cgroup")?,
            &read_proc("/proc/self/mountinfo")?,
        ))
    }

    /// Pure: matches each line of `/proc/self/cgroup` with its mount.
    pub fn parse(proc_cgroup: &str, mountinfo: &str) -> Layout {
        let mounts = parse_mountinfo(mountinfo);
        let mut layout = Layout::default();
        for m in parse_proc_cgroup(proc_cgroup) {
            if m.controllers.is_empty() && !m.named {
                let found = mounts
                    .iter()
                    .filter(|mnt| mnt.v2)
                    .find_map(|mnt| Some((mnt, own_dir(&mnt.point, &mnt.root, &m.path)?)));
                if let Some((mnt, own)) = found {
                    layout.v2 = Some(Hierarchy {
                        controllers: Vec::new(),
                        mount: mnt.point.clone(),
                        own,
                    });
                }
                continue;
            }
            if m.controllers.is_empty() {
                // A named hierarchy (name=systemd) carries no controller.
                continue;
            }
            let found = mounts
                .iter()
                .filter(|mnt| !mnt.v2 && m.controllers.iter().all(|c| mnt.options.contains(c)))
                .find_map(|mnt| Some((mnt, own_dir(&mnt.point, &mnt.root, &m.path)?)));
            if let Some((mnt, own)) = found {
                layout.v1.push(Hierarchy {
                    controllers: m.controllers.clone(),
                    mount: mnt.point.clone(),
                    own,
                });
            }
        }
        layout
    }

    /// How long moving a thread into a v1 cgroup takes here: the calling
    /// thread is moved into the cgroup it is already in (`0` written to
    /// `tasks`), which changes nothing but takes the kernel's cgroup
    /// threadgroup lock for writing as every move does. Without
    /// `favordynmods` in effect that waits for an RCU grace period.
    /// None without a v1 hierarchy or when the write fails.
    pub fn time_a_move(&self) -> Option<std::time::Duration> {
        let h = self.v1.first()?;
        let started = std::time::Instant::now();
        write(&h.own.join("tasks"), "0").ok()?;
        Some(started.elapsed())
    }

    /// The v1 hierarchy that carries `controller`, unless cpuset rides along:
    /// a cpuset cgroup refuses processes until its cpus and mems are set.
    pub(super) fn v1_with(&self, controller: &str) -> Option<&Hierarchy> {
        self.v1
            .iter()
            .find(|h| h.has(controller) && !h.has("cpuset"))
    }
}

/// The name of the tenement cgroup of a server whose data dir is `data_dir`:
/// stable across restarts (leftovers of a previous run are found again) and
/// distinct for two servers on one machine.
pub fn tree_name(data_dir: &Path) -> String {
    let canonical = std::fs::canonicalize(data_dir).unwrap_or_else(|_| data_dir.to_path_buf());
    // FNV-1a, 64 bits: enough to tell the data dirs of one machine apart.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in canonical.as_os_str().as_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("tenement-{:012x}", h >> 16)
}

/// The cgroup name of instance `service:id`. `@` never appears in a name
/// and never in a kernel interface file, so it cannot collide with either.
pub fn instance_name(service: &str, id: &str) -> String {
    format!("{service}@{id}")
}
