//! Listening sockets as the kernel lists them (sock_diag(7) over
//! `NETLINK_SOCK_DIAG`): the TCP listeners on a port, and the Unix listener
//! bound to a given file. Each comes with the inode that names it in
//! `/proc/PID/fd` (`socket:[N]`) and the uid that created it. When the kernel
//! has no inet_diag, `/proc/net/tcp{,6}` answers the TCP question instead.
//!
//! Only builds requests and parses replies (pure, tested); it never looks at
//! processes (that is `isolate::owner`). No `unsafe`: rustix does the calls.

use std::cell::RefCell;
use std::io;
use std::os::fd::OwnedFd;
use std::time::Duration;

use rustix::net::netlink::{SocketAddrNetlink, SOCK_DIAG};
use rustix::net::sockopt::{set_socket_timeout, Timeout};
use rustix::net::{recv, sendto, socket_with, AddressFamily, RecvFlags, SendFlags};
use rustix::net::{SocketFlags, SocketType};

const SOCK_DIAG_BY_FAMILY: u16 = 20;
const TCPDIAG_GETSOCK: u16 = 18;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_DUMP: u16 = 0x300;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLMSG_HDRLEN: usize = 16;
const IPPROTO_TCP: u8 = 6;
const TCP_LISTEN: u32 = 10;
/// The `inet_diag_req_v2` attribute carrying a filter, and its two
/// comparisons of the local port (`inet_diag_bc_op` codes).
const INET_DIAG_REQ_BYTECODE: u16 = 1;
const INET_DIAG_BC_S_GE: u8 = 2;
const INET_DIAG_BC_S_LE: u8 = 3;
const UDIAG_SHOW_VFS: u32 = 0x2;
const UDIAG_SHOW_UID: u32 = 0x40;
const UNIX_DIAG_VFS: u16 = 1;
const UNIX_DIAG_UID: u16 = 7;
/// A reply that takes longer than this is an error, not a hang.
const REPLY_TIMEOUT: Duration = Duration::from_secs(1);

/// One listening socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Listener {
    /// Its inode: `/proc/PID/fd/N` of a holder reads `socket:[inode]`.
    pub inode: u64,
    /// The uid of the process that created it, when the kernel says.
    pub uid: Option<u32>,
}

/// The listening TCP sockets (IPv4 and IPv6, any address) on local `port`.
/// One dump of both families (the kernel walks its listening table once
/// per dump, a fixed cost however few listen), else one per family, else
/// `/proc/net/tcp{,6}` when sock_diag cannot answer.
pub fn tcp_listeners(port: u16) -> io::Result<Vec<Listener>> {
    let mut out = Vec::new();
    let mut keep = |msg: &[u8]| {
        if let Some((p, l)) = parse_inet(msg) {
            if p == port {
                out.push(l);
            }
        }
    };
    let mut diag = dump(&both_families_request(port), &mut keep);
    if diag.is_err() {
        diag = [libc::AF_INET as u8, libc::AF_INET6 as u8]
            .iter()
            .try_for_each(|&family| dump(&inet_request(family, port), &mut keep));
    }
    if diag.is_ok() {
        return Ok(out);
    }
    out.clear();
    let mut read_any = false;
    for file in ["/proc/net/tcp", "/proc/net/tcp6"] {
        match std::fs::read_to_string(file) {
            Ok(text) => {
                read_any = true;
                out.extend(parse_proc_net_tcp(&text, port));
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    match read_any {
        true => Ok(out),
        false => diag.map(|()| out),
    }
}

/// The TCP listener that a connection to 127.0.0.1:`port` would reach (an
/// IPv4 one on 127.0.0.1 or any address, or a dual-stack IPv6 one), as the
/// kernel's own lookup finds it: one question, whatever the number of
/// sockets on the host, and no connection made. None: nobody listens there.
/// Err: the kernel cannot answer (see `can_look_up`).
pub fn tcp_listener_at(port: u16) -> io::Result<Option<Listener>> {
    let mut found = None;
    match ask(&exact_request(port), &mut |msg| found = parse_inet(msg)) {
        Ok(()) => Ok(found.map(|(_, l)| l)),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Whether `tcp_listener_at` can be trusted: the kernel answers inet_diag
/// requests (a kernel without it answers ENOENT to every one, which would
/// read as "nobody listens"). Asked once per process.
pub fn can_look_up() -> bool {
    static ANSWERS: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ANSWERS.get_or_init(|| dump(&inet_request(libc::AF_INET as u8, 0), &mut |_| {}).is_ok())
}

/// The listening Unix sockets bound to the file with device `dev` and
/// inode `ino` (as `stat` reports them), in this network namespace.
pub fn unix_listeners(dev: u64, ino: u64) -> io::Result<Vec<Listener>> {
    let mut out = Vec::new();
    dump(&unix_request(), &mut |msg| {
        if let Some((vfs, l)) = parse_unix(msg) {
            if vfs.is_some_and(|(d, i)| u64::from(i) == ino && dev_matches(d, dev)) {
                out.push(l);
            }
        }
    })?;
    Ok(out)
}

/// Whether the kernel's device number of a socket file (`udiag_vfs_dev`,
/// MAJOR << 20 | MINOR) is `st_dev` (the user-space encoding).
fn dev_matches(kernel: u32, st_dev: u64) -> bool {
    let major = ((st_dev >> 8) & 0xfff) | ((st_dev >> 32) & !0xfff);
    let minor = (st_dev & 0xff) | ((st_dev >> 12) & !0xff);
    u64::from(kernel >> 20) == major && u64::from(kernel & 0xf_ffff) == minor
}

/// The header of a dump request.
fn header(len: usize) -> Vec<u8> {
    header_flags(len, NLM_F_REQUEST | NLM_F_DUMP)
}

fn header_flags(len: usize, flags: u16) -> Vec<u8> {
    let mut b = Vec::with_capacity(len);
    b.extend_from_slice(&(len as u32).to_ne_bytes());
    b.extend_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
    b.extend_from_slice(&flags.to_ne_bytes());
    b.extend_from_slice(&1u32.to_ne_bytes()); // sequence
    b.extend_from_slice(&0u32.to_ne_bytes()); // port id: the kernel fills it
    b
}

/// `nlmsghdr` + `inet_diag_req_v2` asking for the TCP listeners of `family`
/// on local `port`. The port is matched by the kernel (`port_filter`), so
/// a host with thousands of listeners sends back only the few on it.
fn inet_request(family: u8, port: u16) -> Vec<u8> {
    let filter = port_filter(port);
    let mut b = header(NLMSG_HDRLEN + 56 + filter.len());
    b.extend_from_slice(&[family, IPPROTO_TCP, 0, 0]);
    b.extend_from_slice(&(1u32 << TCP_LISTEN).to_ne_bytes());
    b.extend_from_slice(&[0u8; 48]); // inet_diag_sockid: any
    b.extend_from_slice(&filter);
    b
}

/// The same question for IPv4 and IPv6 at once: the older `inet_diag_req`
/// (`TCPDIAG_GETSOCK`), whose dumps cover every family.
fn both_families_request(port: u16) -> Vec<u8> {
    let filter = port_filter(port);
    let mut b = header(NLMSG_HDRLEN + 60 + filter.len());
    b[4..6].copy_from_slice(&TCPDIAG_GETSOCK.to_ne_bytes());
    b.extend_from_slice(&[0u8; 4]); // family (any), lengths, extensions
    b.extend_from_slice(&[0u8; 48]); // inet_diag_sockid: any
    b.extend_from_slice(&(1u32 << TCP_LISTEN).to_ne_bytes());
    b.extend_from_slice(&0u32.to_ne_bytes()); // dbs
    b.extend_from_slice(&filter);
    b
}

/// The `INET_DIAG_REQ_BYTECODE` attribute that keeps local `port` only:
/// two comparisons (port >= it, port <= it) of 8 bytes each, whose `yes`
/// goes on to the next (or the end: a match) and whose `no` jumps past
/// the end (no match).
fn port_filter(port: u16) -> Vec<u8> {
    let ops: [(u8, u8, u16); 4] = [
        (INET_DIAG_BC_S_GE, 8, 20),
        (0, 0, port),
        (INET_DIAG_BC_S_LE, 8, 12),
        (0, 0, port),
    ];
    let mut b = Vec::with_capacity(4 + 4 * ops.len());
    b.extend_from_slice(&((4 + 4 * ops.len()) as u16).to_ne_bytes());
    b.extend_from_slice(&INET_DIAG_REQ_BYTECODE.to_ne_bytes());
    for (code, yes, no) in ops {
        b.extend_from_slice(&[code, yes]);
        b.extend_from_slice(&no.to_ne_bytes());
    }
    b
}

/// `nlmsghdr` + `inet_diag_req_v2` asking for the one TCP socket a
/// connection from 0.0.0.0:0 to 127.0.0.1:`port` would reach (not a dump:
/// the kernel looks it up as for an incoming packet).
fn exact_request(port: u16) -> Vec<u8> {
    let mut b = header_flags(NLMSG_HDRLEN + 56, NLM_F_REQUEST);
    b.extend_from_slice(&[libc::AF_INET as u8, IPPROTO_TCP, 0, 0]);
    b.extend_from_slice(&u32::MAX.to_ne_bytes()); // states: any
    b.extend_from_slice(&port.to_be_bytes()); // its local port
    b.extend_from_slice(&0u16.to_be_bytes()); // the peer's: any
    b.extend_from_slice(&[127, 0, 0, 1]);
    b.extend_from_slice(&[0u8; 12]);
    b.extend_from_slice(&[0u8; 16]); // the peer's address: any
    b.extend_from_slice(&0u32.to_ne_bytes()); // interface: any
    b.extend_from_slice(&[0xff; 8]); // cookie: none
    b
}

/// `nlmsghdr` + `unix_diag_req` asking for every Unix listener with the
/// file it is bound to and its creator's uid.
fn unix_request() -> Vec<u8> {
    let mut b = header(NLMSG_HDRLEN + 24);
    b.extend_from_slice(&[libc::AF_UNIX as u8, 0, 0, 0]);
    b.extend_from_slice(&(1u32 << TCP_LISTEN).to_ne_bytes());
    b.extend_from_slice(&0u32.to_ne_bytes()); // ino: any
    b.extend_from_slice(&(UDIAG_SHOW_VFS | UDIAG_SHOW_UID).to_ne_bytes());
    b.extend_from_slice(&[0xff; 8]); // cookie: none
    b
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// One `inet_diag_msg`: (local port, listener).
fn parse_inet(msg: &[u8]) -> Option<(u16, Listener)> {
    // family, state, timer, retrans; then the sockid (sport first, big endian).
    let port = u16::from_be_bytes(msg.get(4..6)?.try_into().ok()?);
    let uid = u32_at(msg, 4 + 48 + 12)?;
    let inode = u32_at(msg, 4 + 48 + 16)?;
    Some((
        port,
        Listener {
            inode: inode.into(),
            uid: Some(uid),
        },
    ))
}

/// One `unix_diag_msg` and its attributes: (file (dev, ino) if bound to
/// one, listener).
fn parse_unix(msg: &[u8]) -> Option<(Option<(u32, u32)>, Listener)> {
    let inode = u32_at(msg, 4)?;
    let mut vfs = None;
    let mut uid = None;
    let mut at = 16;
    while let (Some(len), Some(kind)) = (u16_at(msg, at), u16_at(msg, at + 2)) {
        let len = usize::from(len);
        if len < 4 {
            break;
        }
        let data = msg.get(at + 4..at + len)?;
        match kind {
            UNIX_DIAG_VFS => vfs = Some((u32_at(data, 4)?, u32_at(data, 0)?)),
            UNIX_DIAG_UID => uid = u32_at(data, 0),
            _ => {}
        }
        at += (len + 3) & !3;
    }
    Some((
        vfs,
        Listener {
            inode: inode.into(),
            uid,
        },
    ))
}

/// The LISTEN lines of a `/proc/net/tcp` or `tcp6` table on local `port`.
pub fn parse_proc_net_tcp(text: &str, port: u16) -> Vec<Listener> {
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let local = f.get(1)?;
            let p = u16::from_str_radix(local.rsplit(':').next()?, 16).ok()?;
            (p == port && *f.get(3)? == "0A").then_some(())?;
            Some(Listener {
                uid: f.get(7)?.parse().ok(),
                inode: f.get(9)?.parse().ok()?,
            })
        })
        .collect()
}

/// Sends `request` and hands each reply's payload to `each` until the dump
/// is done.
fn dump(request: &[u8], each: &mut dyn FnMut(&[u8])) -> io::Result<()> {
    let fd = send(request)?;
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        let (n, _) = recv(&fd, &mut buf[..], RecvFlags::empty())?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        if walk(&buf[..n], each)? {
            return Ok(());
        }
    }
}

thread_local! {
    /// The socket `ask` uses again on this thread: a look-up is then a send
    /// and a receive, without a socket made, set up and closed each time
    /// (the supervisor looks every 250 us while an instance starts). Put
    /// back only after a whole reply was read, so a reply that came late
    /// never answers a later question.
    static ASKER: RefCell<Option<OwnedFd>> = const { RefCell::new(None) };
}

/// Sends a request that is not a dump and hands its one reply's payload to
/// `each`. Err: the kernel's error (ENOENT: no such socket).
fn ask(request: &[u8], each: &mut dyn FnMut(&[u8])) -> io::Result<()> {
    let fd = match ASKER.with(|a| a.borrow_mut().take()) {
        Some(fd) => fd,
        None => open()?,
    };
    send_on(&fd, request)?;
    let mut buf = [0u8; 1024];
    let (n, _) = recv(&fd, &mut buf[..], RecvFlags::empty())?;
    if n == 0 {
        return Err(io::ErrorKind::UnexpectedEof.into());
    }
    // Read whole (an error reply too: ENOENT is an answer): clean for the
    // next question.
    ASKER.with(|a| *a.borrow_mut() = Some(fd));
    walk(&buf[..n], each).map(|_| ())
}

/// A sock_diag socket with `request` sent on it.
fn send(request: &[u8]) -> io::Result<OwnedFd> {
    let fd = open()?;
    send_on(&fd, request)?;
    Ok(fd)
}

/// A new sock_diag socket.
fn open() -> io::Result<OwnedFd> {
    let fd: OwnedFd = socket_with(
        AddressFamily::NETLINK,
        SocketType::DGRAM,
        SocketFlags::CLOEXEC,
        Some(SOCK_DIAG),
    )?;
    set_socket_timeout(&fd, Timeout::Recv, Some(REPLY_TIMEOUT))?;
    Ok(fd)
}

/// Sends `request` to the kernel on `fd`.
fn send_on(fd: &OwnedFd, request: &[u8]) -> io::Result<()> {
    sendto(
        fd,
        request,
        SendFlags::empty(),
        &SocketAddrNetlink::new(0, 0),
    )?;
    Ok(())
}

/// Walks the netlink messages of one datagram. Ok(true): the dump is done.
fn walk(mut buf: &[u8], each: &mut dyn FnMut(&[u8])) -> io::Result<bool> {
    let bad = || io::Error::new(io::ErrorKind::InvalidData, "malformed sock_diag reply");
    while buf.len() >= NLMSG_HDRLEN {
        let len = u32_at(buf, 0).ok_or_else(bad)? as usize;
        let kind = u16_at(buf, 4).ok_or_else(bad)?;
        if len < NLMSG_HDRLEN || len > buf.len() {
            return Err(bad());
        }
        let payload = &buf[NLMSG_HDRLEN..len];
        match kind {
            NLMSG_DONE => return Ok(true),
            NLMSG_ERROR => {
                let errno = u32_at(payload, 0).ok_or_else(bad)? as i32;
                return match errno {
                    0 => Ok(true),
                    e => Err(io::Error::from_raw_os_error(-e)),
                };
            }
            _ => each(payload),
        }
        buf = buf.get((len + 3) & !3..).unwrap_or_default();
    }
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::MetadataExt;

    /// Inodes of this process's sockets, from /proc/self/fd.
    fn own_socket(fd: &impl std::os::fd::AsRawFd) -> u64 {
        let link = std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd())).unwrap();
        let s = link.to_str().unwrap();
        s["socket:[".len()..s.len() - 1].parse().unwrap()
    }

    #[test]
    fn a_tcp_listener_is_found_by_port_with_its_inode() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let found = tcp_listeners(port).unwrap();
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].inode, own_socket(&l));
        assert_eq!(found[0].uid, Some(rustix::process::geteuid().as_raw()));
        drop(l);
        assert_eq!(tcp_listeners(port).unwrap(), vec![]);
    }

    #[test]
    fn the_kernel_sends_only_the_listeners_on_the_port_asked_for() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let others: Vec<std::net::TcpListener> = (0..3)
            .map(|_| std::net::TcpListener::bind("127.0.0.1:0").unwrap())
            .collect();
        // The raw dump, without the fallback to /proc/net/tcp: a filter the
        // kernel refused would be an error here.
        let mut ports = Vec::new();
        dump(&inet_request(libc::AF_INET as u8, port), &mut |msg| {
            ports.extend(parse_inet(msg).map(|(p, _)| p));
        })
        .unwrap();
        assert_eq!(ports, vec![port], "others: {others:?}");
    }

    #[test]
    fn one_dump_lists_the_ipv4_and_ipv6_listeners_on_the_port() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let mut inodes = vec![own_socket(&l)];
        // The same port on IPv6, where the machine has it.
        let l6 = std::net::TcpListener::bind(("::1", port)).ok();
        inodes.extend(l6.as_ref().map(own_socket));
        let _other = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let mut found = Vec::new();
        dump(&both_families_request(port), &mut |msg| {
            found.extend(parse_inet(msg).map(|(p, l)| (p, l.inode)));
        })
        .unwrap();
        found.sort_unstable();
        let mut want: Vec<(u16, u64)> = inodes.iter().map(|&i| (port, i)).collect();
        want.sort_unstable();
        assert_eq!(found, want);
    }

    #[test]
    fn the_listener_a_connection_would_reach_is_looked_up_without_connecting() {
        assert!(can_look_up(), "this kernel answers inet_diag");
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let found = tcp_listener_at(port).unwrap().expect("it listens");
        assert_eq!(found.inode, own_socket(&l));
        // A connection to it is not a listener: still the listener.
        let c = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        let found = tcp_listener_at(port).unwrap().expect("it listens");
        assert_eq!(found.inode, own_socket(&l));
        drop((c, l));
        assert_eq!(tcp_listener_at(port).unwrap(), None, "nobody listens");
        let asker = || ASKER.with(|a| a.borrow().as_ref().map(|f| f.as_raw_fd()));
        let used = asker();
        assert!(used.is_some(), "the socket is kept for the next question");
        // One on any address is reached too, asked on the same socket
        // after the answer "nobody".
        let any = std::net::TcpListener::bind("0.0.0.0:0").unwrap();
        let port = any.local_addr().unwrap().port();
        let found = tcp_listener_at(port).unwrap().expect("it listens");
        assert_eq!(found.inode, own_socket(&any));
        assert_eq!(asker(), used);
    }

    #[test]
    fn an_ipv6_listener_counts_too() {
        let Ok(l) = std::net::TcpListener::bind("[::1]:0") else {
            return; // no IPv6 loopback on this machine
        };
        let port = l.local_addr().unwrap().port();
        let found = tcp_listeners(port).unwrap();
        assert!(found.iter().any(|f| f.inode == own_socket(&l)), "{found:?}");
    }

    #[test]
    fn proc_net_tcp_lines_give_listeners_on_the_port() {
        let text = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 424242 1 0000000000000000 100 0 0 10 0\n\
   1: 0100007F:1F90 0100007F:C350 01 00000000:00000000 00:00000000 00000000  1000        0 777 1 0000000000000000 20 4 30 10 -1\n\
   2: 00000000:0050 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 999 1 0000000000000000 100 0 0 10 0\n";
        assert_eq!(
            parse_proc_net_tcp(text, 8080),
            vec![Listener {
                inode: 424242,
                uid: Some(1000)
            }]
        );
        assert_eq!(parse_proc_net_tcp(text, 80).len(), 1);
        assert_eq!(parse_proc_net_tcp(text, 81), vec![]);
    }

    #[test]
    fn a_unix_listener_is_found_by_its_file() {
        let dir = crate::state::testdir::TempDir::new("sock-diag-unix");
        let path = dir.join("a.sock");
        let l = std::os::unix::net::UnixListener::bind(&path).unwrap();
        let meta = std::fs::metadata(&path).unwrap();
        let found = unix_listeners(meta.dev(), meta.ino()).unwrap();
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].inode, own_socket(&l));
        // Another file is another socket.
        let other_path = dir.join("b.sock");
        let other = std::os::unix::net::UnixListener::bind(&other_path).unwrap();
        let m = std::fs::metadata(&other_path).unwrap();
        let found = unix_listeners(m.dev(), m.ino()).unwrap();
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].inode, own_socket(&other));
        // A file that is not a socket has no listener.
        let plain = dir.join("plain");
        std::fs::write(&plain, b"").unwrap();
        let m = std::fs::metadata(&plain).unwrap();
        assert_eq!(unix_listeners(m.dev(), m.ino()).unwrap(), vec![]);
        drop(l);
    }

    #[test]
    fn kernel_device_numbers_match_user_space_ones() {
        // 8:1 (sda1) and 259:65536 (a large minor).
        assert!(dev_matches(8 << 20 | 1, (8 << 8) | 1));
        let st = (259u64 << 8) | ((65536u64 & !0xff) << 12);
        assert!(dev_matches(259 << 20 | 65536, st));
        assert!(!dev_matches(8 << 20 | 2, (8 << 8) | 1));
    }

    #[test]
    fn an_error_reply_is_its_errno() {
        let mut msg = Vec::new();
        msg.extend_from_slice(&36u32.to_ne_bytes());
        msg.extend_from_slice(&NLMSG_ERROR.to_ne_bytes());
        msg.extend_from_slice(&[0u8; 10]);
        msg.extend_from_slice(&(-libc::ENOENT).to_ne_bytes());
        msg.extend_from_slice(&[0u8; 16]);
        let e = walk(&msg, &mut |_| panic!("no payload")).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ENOENT));
        assert!(walk(&msg[..20], &mut |_| {}).is_err());
    }
}
