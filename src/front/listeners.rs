//! The front's listening sockets: binding them (one per loop on the same
//! port, SO_REUSEPORT), taking over those a drained front or a previous
//! image of the server handed on, and handing them on again.
//!
//! A listening socket that is handed on is never closed: connections that
//! arrive meanwhile wait in its accept queue and are served by whoever
//! takes it next. Closing one of a SO_REUSEPORT group would reset the
//! connections queued on it, so a front that runs fewer loops than it was
//! handed listeners gives some loops several.
//!
//! Every TCP listener has TCP_NODELAY set, which Linux passes on to each
//! connection it accepts: no setsockopt per connection.
//!
//! No loop runs here; `front::start` and `Front::drain` call it.

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use mio::net::{TcpListener, UnixListener};
use rustix::net::{sockopt, AddressFamily, SocketFlags, SocketType};

/// Listening sockets by role: plain HTTP, HTTPS, and the local API socket
/// with its path; and the idle keep-alive connections a drained front
/// handed on with them.
#[derive(Debug, Default)]
pub struct Listeners {
    pub http: Vec<TcpListener>,
    pub https: Vec<TcpListener>,
    pub unix: Option<(PathBuf, UnixListener)>,
    pub clients: Vec<super::worker::Handed>,
}

/// Why a listener could not be had.
#[derive(Debug)]
pub struct BindError {
    pub what: String,
    pub source: io::Error,
}

fn err(what: String) -> impl FnOnce(io::Error) -> BindError {
    move |source| BindError { what, source }
}

/// Whether a socket bound at `bound` serves the configured `wanted`: the
/// same address, or the same IP when the config asks for any port (0).
pub fn serves(wanted: SocketAddr, bound: SocketAddr) -> bool {
    wanted == bound || (wanted.port() == 0 && wanted.ip() == bound.ip())
}

/// The `count` listeners (at least) of one role at `wanted`: those in
/// `handed` that serve it are kept, whatever their number, and more are
/// bound at the same address until there are `count`. Handed listeners at
/// another address are closed: the config moved away from them. Returns
/// the listeners and the address they are bound to.
pub fn settle(
    wanted: SocketAddr,
    count: usize,
    handed: Vec<TcpListener>,
) -> Result<(Vec<TcpListener>, SocketAddr), BindError> {
    let mut kept: Vec<TcpListener> = Vec::new();
    let mut bound: Option<SocketAddr> = None;
    for l in handed {
        match l.local_addr() {
            Ok(a) if serves(wanted, a) && bound.is_none_or(|b| b == a) => {
                bound = Some(a);
                // An older image may have handed it on without.
                sockopt::set_tcp_nodelay(&l, true).map_err(|e| BindError {
                    what: format!("set TCP_NODELAY on the listener at {a}"),
                    source: e.into(),
                })?;
                kept.push(l);
            }
            Ok(a) => info!("front", "closing the listener on {a}: no longer configured"),
            Err(_) => {}
        }
    }
    let addr = match bound {
        Some(a) => a,
        None => {
            // The first bind settles the port (the config may ask for 0).
            let first = bind_reuseport(wanted).map_err(err(format!("bind {wanted}")))?;
            let a = first
                .local_addr()
                .map_err(err("read the bound address".into()))?;
            kept.push(first);
            a
        }
    };
    while kept.len() < count {
        kept.push(bind_reuseport(addr).map_err(err(format!("bind {addr}")))?);
    }
    Ok((kept, addr))
}

/// The local API socket at `path`: the handed one when it listens there,
/// else a fresh one (replacing a stale socket file, mode 0600).
pub fn settle_unix(
    path: &Path,
    handed: Option<(PathBuf, UnixListener)>,
) -> Result<UnixListener, BindError> {
    if let Some((at, l)) = handed {
        if at == path && path.exists() {
            return Ok(l);
        }
    }
    bind_unix(path).map_err(err(format!("listen on {}", path.display())))
}

/// Splits `all` into `n` groups as evenly as the count allows, in order:
/// loop i gets group i.
pub fn deal<T>(all: Vec<T>, n: usize) -> Vec<Vec<T>> {
    let n = n.max(1);
    let mut groups: Vec<Vec<T>> = (0..n).map(|_| Vec::new()).collect();
    for (i, item) in all.into_iter().enumerate() {
        groups[i % n].push(item);
    }
    groups
}

fn bind_reuseport(addr: SocketAddr) -> io::Result<TcpListener> {
    let family = if addr.is_ipv4() {
        AddressFamily::INET
    } else {
        AddressFamily::INET6
    };
    let fd = rustix::net::socket_with(
        family,
        SocketType::STREAM,
        SocketFlags::CLOEXEC | SocketFlags::NONBLOCK,
        None,
    )?;
    sockopt::set_socket_reuseaddr(&fd, true)?;
    sockopt::set_socket_reuseport(&fd, true)?;
    // Inherited by every accepted connection.
    sockopt::set_tcp_nodelay(&fd, true)?;
    rustix::net::bind(&fd, &addr)?;
    rustix::net::listen(&fd, 1024)?;
    Ok(TcpListener::from_std(std::net::TcpListener::from(fd)))
}

/// Listens on the local API socket, replacing a stale socket file, mode 0600.
fn bind_unix(path: &Path) -> io::Result<UnixListener> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let listener = UnixListener::bind(path)?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(listener)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn local(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    #[test]
    fn a_configured_port_zero_is_served_by_any_port_on_the_same_ip() {
        assert!(serves(local(0), local(4242)));
        assert!(serves(local(4242), local(4242)));
        assert!(!serves(local(4243), local(4242)));
        assert!(!serves(SocketAddr::from(([0, 0, 0, 0], 0)), local(4242)));
    }

    #[test]
    fn handed_listeners_are_kept_and_topped_up_on_their_port() {
        let (first, addr) = settle(local(0), 1, Vec::new()).expect("bind");
        assert_eq!(first.len(), 1);
        let (more, again) = settle(local(0), 3, first).expect("top up");
        assert_eq!(again, addr, "the handed listener's port is kept");
        assert_eq!(more.len(), 3);
        // Fewer loops than listeners: every listener is kept.
        let (kept, _) = settle(addr, 1, more).expect("keep");
        assert_eq!(kept.len(), 3);
        let client = std::net::TcpStream::connect(addr).expect("the kept port accepts");
        drop(client);
    }

    #[test]
    fn a_listener_at_an_address_no_longer_configured_is_closed() {
        let (old, old_addr) = settle(local(0), 1, Vec::new()).expect("bind");
        let (new, new_addr) = settle(local(0), 1, Vec::new()).expect("bind");
        drop(new);
        let (kept, addr) = settle(new_addr, 1, old).expect("move");
        assert_eq!(addr, new_addr);
        assert_eq!(kept.len(), 1);
        assert!(std::net::TcpStream::connect(old_addr).is_err());
    }

    #[test]
    fn dealing_spreads_items_over_groups() {
        assert_eq!(deal(vec![1, 2, 3], 2), vec![vec![1, 3], vec![2]]);
        assert_eq!(deal(vec![1], 3), vec![vec![1], vec![], vec![]]);
    }
}
