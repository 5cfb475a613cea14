//! Whose listener is it? Before tenement sends an instance anything after a
//! start or a wake (its own probes included), the socket that would accept
//! the connection (the TCP listener on the instance's port, or the Unix
//! listener at its `SOCKET_PATH`) must be held by one of the instance's own
//! processes. A listener anyone else holds is a squatter, named by pid.
//!
//! The instance's processes are its cgroup's when it has one, else its
//! process tree (`tree`). Listeners come from sock_diag (`sys::sock_diag`),
//! holders from `/proc/PID/fd`. Only reads; never signals or changes anything.

use std::collections::HashSet;
use std::fmt;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use super::procfs;
use crate::sys::sock_diag::{self, Listener};

/// What the check found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Every listener there is the instance's.
    Owned,
    /// Nobody listens there (yet).
    Missing,
    /// Someone else listens there.
    Foreign(Squatter),
}

/// Who holds a listener that is not the instance's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Squatter {
    /// The processes holding it (empty: none visible to tenement).
    pub pids: Vec<u32>,
    /// The uid that created it, when known.
    pub uid: Option<u32>,
}

impl fmt::Display for Squatter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let pids: Vec<String> = self.pids.iter().map(u32::to_string).collect();
        match (pids.len(), self.uid) {
            (0, Some(uid)) => write!(f, "a process of uid {uid} that tenement cannot see"),
            (0, None) => write!(f, "a process tenement cannot see"),
            (1, uid) => write!(f, "pid {}", pids[0]).and_then(|()| uid_suffix(f, uid)),
            (_, uid) => write!(f, "pids {}", pids.join(", ")).and_then(|()| uid_suffix(f, uid)),
        }
    }
}

fn uid_suffix(f: &mut fmt::Formatter<'_>, uid: Option<u32>) -> fmt::Result {
    match uid {
        Some(uid) => write!(f, " (uid {uid})"),
        None => Ok(()),
    }
}

/// An instance's processes when it has no cgroup: the leader, everything
/// descended from it, and whatever shares its process group or session
/// (a daemon that double-forked away from both is not found).
pub fn tree(leader: u32) -> Vec<u32> {
    let Some(all) = procfs::pids() else {
        return vec![leader];
    };
    let stats: Vec<(u32, procfs::Stat)> = all
        .filter_map(|p| Some((p, procfs::stat(p)?)))
        .filter(|(_, s)| s.state != 'Z' && s.state != 'X')
        .collect();
    let Some(lead) = stats.iter().find(|(p, _)| *p == leader).map(|(_, s)| *s) else {
        return vec![leader];
    };
    let mut set: HashSet<u32> = stats
        .iter()
        .filter(|(p, s)| {
            *p == leader
                || s.pgrp == lead.pgrp
                || (lead.session as u32 == leader && s.session == lead.session)
        })
        .map(|(p, _)| *p)
        .collect();
    loop {
        let before = set.len();
        for (p, s) in &stats {
            if set.contains(&s.ppid) {
                set.insert(*p);
            }
        }
        if set.len() == before {
            break;
        }
    }
    set.into_iter().collect()
}

/// `socket:[1234]` -> 1234.
fn socket_inode(link: &Path) -> Option<u64> {
    let s = link.to_str()?.strip_prefix("socket:[")?.strip_suffix(']')?;
    s.parse().ok()
}

/// The socket inodes process `pid` holds open.
fn sockets_of(pid: u32) -> impl Iterator<Item = u64> {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| socket_inode(&std::fs::read_link(e.path()).ok()?))
}

/// The socket inodes any of `pids` holds.
pub fn socket_inodes(pids: &[u32]) -> HashSet<u64> {
    pids.iter().flat_map(|&p| sockets_of(p)).collect()
}

/// Every process that holds socket `inode` open (a scan of all of /proc:
/// only for naming a squatter).
pub fn holders(inode: u64) -> Vec<u32> {
    procfs::pids()
        .into_iter()
        .flatten()
        .filter(|&p| sockets_of(p).any(|i| i == inode))
        .collect()
}

/// Judges the listeners found at one place against the instance's
/// processes `members`.
pub fn judge(listeners: &[Listener], members: &[u32]) -> Verdict {
    if listeners.is_empty() {
        return Verdict::Missing;
    }
    let own = socket_inodes(members);
    let foreign: Vec<&Listener> = listeners
        .iter()
        .filter(|l| !own.contains(&l.inode))
        .collect();
    let Some(first) = foreign.first() else {
        return Verdict::Owned;
    };
    let mut pids: Vec<u32> = foreign.iter().flat_map(|l| holders(l.inode)).collect();
    pids.sort_unstable();
    pids.dedup();
    Verdict::Foreign(Squatter {
        pids,
        uid: first.uid,
    })
}

/// Checks the TCP listeners on `port` (any address, IPv4 and IPv6: a
/// connection to 127.0.0.1 may reach a wildcard or dual-stack one).
pub fn tcp(port: u16, members: &[u32]) -> io::Result<Verdict> {
    Ok(judge(&sock_diag::tcp_listeners(port)?, members))
}

/// Checks the Unix listener bound at `path` (followed if a symlink).
/// `peer`: (pid, uid) from SO_PEERCRED of a connection just made there,
/// i.e. who called listen(2); when that pid is the instance's, it is
/// settled without a scan. A listener sock_diag does not list (another
/// network namespace) is judged by `peer` alone.
pub fn unix(path: &Path, peer: Option<(u32, u32)>, members: &[u32]) -> io::Result<Verdict> {
    if peer.is_some_and(|(pid, _)| members.contains(&pid)) {
        return Ok(Verdict::Owned);
    }
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Verdict::Missing),
        Err(e) => return Err(e),
    };
    let listeners = sock_diag::unix_listeners(meta.dev(), meta.ino())?;
    let verdict = match (listeners.is_empty(), peer) {
        (true, Some((pid, uid))) => Verdict::Foreign(Squatter {
            pids: vec![pid],
            uid: Some(uid),
        }),
        _ => judge(&listeners, members),
    };
    Ok(match verdict {
        Verdict::Foreign(mut s) => {
            if s.pids.is_empty() {
                s.pids.extend(peer.map(|(pid, _)| pid));
            }
            Verdict::Foreign(s)
        }
        v => v,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::{Command, Stdio};

    fn me() -> u32 {
        std::process::id()
    }

    #[test]
    fn own_tcp_listener_is_owned_and_a_stranger_is_named() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        assert_eq!(tcp(port, &[me()]).unwrap(), Verdict::Owned);
        // Seen from an instance made of another process, we are the squatter.
        let v = tcp(port, &[1]).unwrap();
        let Verdict::Foreign(s) = v else {
            panic!("{v:?}")
        };
        // Other tests of this binary fork; a child between fork and exec
        // holds the socket for a moment too.
        assert!(s.pids.contains(&me()), "{s:?}");
        assert!(s.to_string().contains(&format!("{}", me())), "{s}");
        drop(l);
        assert_eq!(tcp(port, &[me()]).unwrap(), Verdict::Missing);
    }

    #[test]
    fn own_unix_listener_is_owned_and_a_replaced_one_is_not() {
        let dir = crate::state::testdir::TempDir::new("owner-unix");
        let path = dir.join("a.sock");
        let _l = std::os::unix::net::UnixListener::bind(&path).unwrap();
        assert_eq!(unix(&path, None, &[me()]).unwrap(), Verdict::Owned);
        assert_eq!(
            unix(&path, Some((me(), 0)), &[me()]).unwrap(),
            Verdict::Owned
        );
        let Verdict::Foreign(s) = unix(&path, None, &[1]).unwrap() else {
            panic!("not foreign")
        };
        assert!(s.pids.contains(&me()), "{s:?}");
        // Through a symlink, as a namespaced instance's SOCKET_PATH is.
        let link = dir.join("link.sock");
        std::os::unix::fs::symlink(&path, &link).unwrap();
        assert_eq!(unix(&link, None, &[me()]).unwrap(), Verdict::Owned);
        assert_eq!(
            unix(&dir.join("none.sock"), None, &[me()]).unwrap(),
            Verdict::Missing
        );
    }

    #[test]
    fn the_tree_holds_children_of_the_leader() {
        let mut child = Command::new("sleep")
            .arg("30")
            .stdin(Stdio::null())
            .spawn()
            .unwrap();
        let t = tree(me());
        assert!(t.contains(&me()) && t.contains(&child.id()), "{t:?}");
        assert!(!tree(child.id()).contains(&1));
        let _ = child.kill();
        let _ = child.wait();
    }

    #[test]
    fn socket_links_parse() {
        assert_eq!(socket_inode(Path::new("socket:[4242]")), Some(4242));
        assert_eq!(socket_inode(Path::new("pipe:[4242]")), None);
        assert_eq!(socket_inode(Path::new("/dev/null")), None);
    }

    #[test]
    fn squatters_read_well() {
        let s = |pids: Vec<u32>, uid| Squatter { pids, uid }.to_string();
        assert_eq!(s(vec![7], Some(65534)), "pid 7 (uid 65534)");
        assert_eq!(s(vec![7, 9], None), "pids 7, 9");
        assert_eq!(
            s(vec![], Some(1000)),
            "a process of uid 1000 that tenement cannot see"
        );
    }
}
