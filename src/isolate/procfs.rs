//! What `/proc` tells about a process we started, and signals to its group.
//!
//! `start_ticks` (field 22 of `/proc/PID/stat`) identifies a process across a
//! restart of tenement: a pid may be recycled, a (pid, start time) pair not.
//! Parsing is pure and tested; the readers return None when the process is
//! gone or `/proc` is unreadable.

use std::io;

use rustix::process::{kill_process_group, test_kill_process_group, Pid, Signal};

/// The fields of `/proc/PID/stat` we use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stat {
    /// Field 3: R, S, D, Z, T, ...
    pub state: char,
    /// Field 4: the parent.
    pub ppid: u32,
    /// Field 5: the process group.
    pub pgrp: i32,
    /// Field 6: the session.
    pub session: i32,
    /// Field 22: start time in clock ticks since boot.
    pub start_ticks: u64,
}

/// Parses one `/proc/PID/stat` line. The command name (field 2) is in
/// parentheses and may itself contain spaces and parentheses, so the fields
/// are counted from the last `)` (proc(5)).
pub fn parse_stat(text: &str) -> Option<Stat> {
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // fields[0] is field 3 of the line.
    let state = fields.first()?.chars().next()?;
    let ppid = fields.get(4 - 3)?.parse().ok()?;
    let pgrp = fields.get(5 - 3)?.parse().ok()?;
    let session = fields.get(6 - 3)?.parse().ok()?;
    let start_ticks = fields.get(22 - 3)?.parse().ok()?;
    Some(Stat {
        state,
        ppid,
        pgrp,
        session,
        start_ticks,
    })
}

/// Reads and parses `/proc/{pid}/stat`.
pub fn stat(pid: u32) -> Option<Stat> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat(&text)
}

/// Parses `VmRSS:   1234 kB` out of `/proc/PID/status`, in bytes.
pub fn parse_rss(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line["VmRSS:".len()..]
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kb * 1024)
}

/// Parses the resident pages (the second number) out of
/// `/proc/PID/statm`, in bytes: the same figure as `VmRSS`.
pub fn parse_statm(statm: &[u8], page_size: u64) -> Option<u64> {
    let text = std::str::from_utf8(statm).ok()?;
    let pages: u64 = text.split_ascii_whitespace().nth(1)?.parse().ok()?;
    Some(pages * page_size)
}

/// The resident memory of `pid`, in bytes, from `/proc/PID/statm` (a
/// line of numbers: far cheaper for the kernel to make than `status`).
pub fn rss(pid: u32) -> Option<u64> {
    use std::io::Read;
    let mut file = std::fs::File::open(format!("/proc/{pid}/statm")).ok()?;
    let mut buf = [0u8; 128];
    let n = file.read(&mut buf).ok()?;
    parse_statm(&buf[..n], rustix::param::page_size() as u64)
}

/// Parses the effective uid and gid out of `/proc/PID/status` (the second
/// of the four numbers on its `Uid:` and `Gid:` lines).
pub fn parse_ids(status: &str) -> Option<(u32, u32)> {
    let effective = |key: &str| -> Option<u32> {
        let line = status.lines().find(|l| l.starts_with(key))?;
        line[key.len()..].split_whitespace().nth(1)?.parse().ok()
    };
    Some((effective("Uid:")?, effective("Gid:")?))
}

/// The effective (uid, gid) `pid` runs as.
pub fn ids(pid: u32) -> Option<(u32, u32)> {
    parse_ids(&std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?)
}

/// Every process `/proc` lists, by pid. None: `/proc` is unreadable.
pub fn pids() -> Option<impl Iterator<Item = u32>> {
    let dir = std::fs::read_dir("/proc").ok()?;
    Some(
        dir.flatten()
            .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok()),
    )
}

fn pid(raw: u32) -> Option<Pid> {
    Pid::from_raw(i32::try_from(raw).ok()?)
}

/// Sends `sig` to every process of group `pgid`. A group that is already
/// gone is not an error.
pub fn signal_group(pgid: u32, sig: Signal) -> io::Result<()> {
    let Some(pgid) = pid(pgid) else { return Ok(()) };
    // pgid 1 would be kill(-1): every process we may signal. Never.
    if pgid == Pid::INIT {
        return Ok(());
    }
    match kill_process_group(pgid, sig) {
        Err(rustix::io::Errno::SRCH) => Ok(()),
        r => r.map_err(io::Error::from),
    }
}

/// Whether group `pgid` still has a live (non-zombie) member. Orphans that
/// died wait as zombies until init reaps them, and kill(2) still finds those,
/// so when it does, `/proc` is scanned for a member that is not a zombie.
pub fn group_alive(pgid: u32) -> bool {
    let Some(p) = pid(pgid) else { return false };
    if p == Pid::INIT {
        return false;
    }
    match test_kill_process_group(p) {
        Err(rustix::io::Errno::SRCH) => return false,
        Err(_) => return true,
        Ok(()) => {}
    }
    let Some(all) = pids() else {
        return true;
    };
    all.filter_map(stat)
        .any(|s| s.pgrp == p.as_raw_pid() && s.state != 'Z' && s.state != 'X')
}

/// Live (non-zombie) processes of group `pgid` that started at or after
/// `since_ticks`, by pid.
pub fn group_members(pgid: u32, since_ticks: u64) -> Vec<u32> {
    let Some(all) = pids() else {
        return Vec::new();
    };
    all.filter(|&pid| {
        stat(pid).is_some_and(|s| {
            s.pgrp as u32 == pgid
                && s.start_ticks >= since_ticks
                && s.state != 'Z'
                && s.state != 'X'
        })
    })
    .collect()
}

/// Whether `pid` exists and is not a zombie.
pub fn alive(pid: u32) -> bool {
    stat(pid).is_some_and(|s| s.state != 'Z' && s.state != 'X')
}

/// Whether `pid` is still the process that started at `start_ticks` and
/// has not exited.
pub fn is_same_process(pid: u32, start_ticks: u64) -> bool {
    matches!(stat(pid), Some(s) if s.start_ticks == start_ticks && s.state != 'Z' && s.state != 'X')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_from_the_last_parenthesis() {
        let line = "4242 (we (ird) name) S 1 4242 4242 0 -1 4194560 120 0 0 0 1 0 0 0 20 0 1 0 987654 2400000 300 18446744073709551615";
        let s = parse_stat(line).unwrap();
        assert_eq!(
            s,
            Stat {
                state: 'S',
                ppid: 1,
                pgrp: 4242,
                session: 4242,
                start_ticks: 987654
            }
        );
    }

    #[test]
    fn truncated_stat_is_none() {
        assert_eq!(parse_stat("12 (x) S 1 2"), None);
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn own_stat_is_readable() {
        let me = stat(std::process::id()).unwrap();
        assert!(me.start_ticks > 0);
        assert!(is_same_process(std::process::id(), me.start_ticks));
        assert!(!is_same_process(std::process::id(), me.start_ticks + 1));
    }

    #[test]
    fn rss_is_read_in_bytes() {
        let status = "Name:\tpython3\nVmPeak:\t  1000 kB\nVmRSS:\t    2048 kB\nThreads:\t1\n";
        assert_eq!(parse_rss(status), Some(2048 * 1024));
        assert_eq!(parse_rss("Name: x\n"), None);
    }

    #[test]
    fn statm_resident_pages_are_read_in_bytes() {
        assert_eq!(
            parse_statm(b"2533 512 300 1 0 180 0\n", 4096),
            Some(512 * 4096)
        );
        assert_eq!(parse_statm(b"2533\n", 4096), None);
        assert_eq!(parse_statm(b"", 4096), None);
        let me = rss(std::process::id()).expect("our own rss");
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let vm_rss = parse_rss(&status).unwrap();
        // Both count the same pages, read a moment apart.
        assert!(
            me / 2 < vm_rss && vm_rss / 2 < me,
            "statm {me}, status {vm_rss}"
        );
    }

    #[test]
    fn effective_ids_are_the_second_of_four() {
        let status =
            "Name:\tapp\nUid:\t0\t200001\t200001\t200001\nGid:\t5\t200002\t200002\t200002\n";
        assert_eq!(parse_ids(status), Some((200001, 200002)));
        assert_eq!(parse_ids("Name: x\nUid:\t1\n"), None);
        let me = ids(std::process::id()).expect("our own status");
        assert_eq!(me.0, rustix::process::geteuid().as_raw());
        assert_eq!(me.1, rustix::process::getegid().as_raw());
    }
}
