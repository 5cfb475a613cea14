//! The hand-over of an upgrade in place: what the old image of the server
//! leaves open for the new one (listening sockets by role and address, the
//! data dir lock, the supervisor's processes) and the status to carry on,
//! as JSON in a memfd named by `TENEMENT_UPGRADE_FD`.
//!
//! Descriptors travel as numbers. While a `Description` exists, the
//! descriptors it names belong to it (they were released with
//! `into_raw_fd`); `take_listeners` and the supervisor's adoption take them
//! back. It never executes anything (`super::exec` does).

use std::io::{Read, Seek, Write};
use std::net::IpAddr;
use std::os::fd::{IntoRawFd, OwnedFd, RawFd};
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::{Status, FD_ENV};
use crate::front::listeners::Listeners;
use crate::front::worker::Handed;
use crate::net::Stream;
use crate::supervisor::Handover;

/// The format of the description; the old image refuses a new binary that
/// reads another (its self-check prints the one it reads).
pub const FORMAT: u32 = 1;

/// One listening socket: its role's address (for the log) and descriptor.
#[derive(Debug, Serialize, Deserialize)]
pub struct Socket {
    pub addr: String,
    pub fd: RawFd,
}

/// An idle keep-alive client connection.
#[derive(Debug, Serialize, Deserialize)]
pub struct ClientSocket {
    pub fd: RawFd,
    /// Came in on `ten.sock` (else TCP).
    pub local: bool,
    pub peer_ip: IpAddr,
}

/// Everything the next image adopts.
#[derive(Debug, Serialize, Deserialize)]
pub struct Description {
    pub format: u32,
    /// The binary executed (the path the first image was started from).
    pub exe: PathBuf,
    /// The version that wrote it.
    pub from: String,
    /// The attempt this hand-over is for, and the status before it.
    pub attempt: u64,
    pub status: Status,
    /// The open file description holding `{data_dir}/.tenement/lock`.
    pub lock: Option<RawFd>,
    pub http: Vec<Socket>,
    pub https: Vec<Socket>,
    /// `ten.sock`: its path and descriptor.
    pub unix: Option<(PathBuf, RawFd)>,
    /// Idle keep-alive client connections.
    pub clients: Vec<ClientSocket>,
    pub supervisor: Handover,
    /// The write end of the keeper's pipe (`keeper.rs`): one byte once the
    /// new image serves. Not in `fds()`: the keeper must not hold it.
    #[serde(default)]
    pub ready: Option<RawFd>,
}

fn socket(l: mio::net::TcpListener) -> Socket {
    let addr = l.local_addr().map(|a| a.to_string()).unwrap_or_default();
    Socket {
        addr,
        fd: l.into_raw_fd(),
    }
}

impl Description {
    /// Releases `listeners`, `lock` and the supervisor's descriptors into a
    /// description.
    pub fn new(
        exe: PathBuf,
        attempt: u64,
        status: Status,
        lock: Option<OwnedFd>,
        listeners: Listeners,
        supervisor: Handover,
    ) -> Description {
        Description {
            format: FORMAT,
            exe,
            from: super::VERSION.to_string(),
            attempt,
            status,
            lock: lock.map(IntoRawFd::into_raw_fd),
            http: listeners.http.into_iter().map(socket).collect(),
            https: listeners.https.into_iter().map(socket).collect(),
            unix: listeners.unix.map(|(path, l)| (path, l.into_raw_fd())),
            clients: listeners
                .clients
                .into_iter()
                .map(|c| ClientSocket {
                    local: c.local,
                    peer_ip: c.peer_ip,
                    fd: match c.stream {
                        Stream::Tcp(s) => s.into_raw_fd(),
                        Stream::Unix(s) => s.into_raw_fd(),
                    },
                })
                .collect(),
            supervisor,
            ready: None,
        }
    }

    /// Takes the keeper's pipe, to confirm through once serving.
    pub fn take_ready(&mut self) -> Option<OwnedFd> {
        let fd = self.ready.take()?;
        crate::sys::fd::adopt(fd)
            .inspect_err(|e| warn!("server", "the upgrade's keeper pipe (fd {fd}): {e}"))
            .ok()
    }

    /// Every descriptor it names.
    pub fn fds(&self) -> Vec<RawFd> {
        let mut all: Vec<RawFd> = self.lock.into_iter().collect();
        all.extend(self.http.iter().chain(&self.https).map(|s| s.fd));
        all.extend(self.unix.as_ref().map(|u| u.1));
        all.extend(self.clients.iter().map(|c| c.fd));
        all.extend(self.supervisor.fds());
        all
    }

    /// Takes back the listening sockets (a bad number is logged and left
    /// out) and the lock.
    pub fn take_listeners(&mut self) -> (Listeners, Option<OwnedFd>) {
        let tcp = |sockets: Vec<Socket>| -> Vec<mio::net::TcpListener> {
            sockets
                .into_iter()
                .filter_map(|s| match crate::sys::fd::adopt(s.fd) {
                    Ok(fd) => {
                        let l = std::net::TcpListener::from(fd);
                        let _ = l.set_nonblocking(true);
                        Some(mio::net::TcpListener::from_std(l))
                    }
                    Err(e) => {
                        warn!(
                            "server",
                            "listener {} (fd {}) not handed over: {e}", s.addr, s.fd
                        );
                        None
                    }
                })
                .collect()
        };
        let unix = self
            .unix
            .take()
            .and_then(|(path, fd)| match crate::sys::fd::adopt(fd) {
                Ok(fd) => {
                    let l = std::os::unix::net::UnixListener::from(fd);
                    let _ = l.set_nonblocking(true);
                    Some((path, mio::net::UnixListener::from_std(l)))
                }
                Err(e) => {
                    warn!(
                        "server",
                        "{} (fd {fd}) not handed over: {e}",
                        path.display()
                    );
                    None
                }
            });
        let clients = std::mem::take(&mut self.clients)
            .into_iter()
            .filter_map(|c| {
                let fd = crate::sys::fd::adopt(c.fd).ok()?;
                let stream = match c.local {
                    true => {
                        let s = std::os::unix::net::UnixStream::from(fd);
                        s.set_nonblocking(true).ok()?;
                        Stream::Unix(mio::net::UnixStream::from_std(s))
                    }
                    false => {
                        let s = std::net::TcpStream::from(fd);
                        s.set_nonblocking(true).ok()?;
                        Stream::Tcp(mio::net::TcpStream::from_std(s))
                    }
                };
                Some(Handed {
                    stream,
                    peer_ip: c.peer_ip,
                    local: c.local,
                })
            })
            .collect();
        let listeners = Listeners {
            http: tcp(std::mem::take(&mut self.http)),
            https: tcp(std::mem::take(&mut self.https)),
            unix,
            clients,
        };
        let lock = self
            .lock
            .take()
            .and_then(|fd| crate::sys::fd::adopt(fd).ok());
        (listeners, lock)
    }

    /// Writes it as JSON into a new memfd (without FD_CLOEXEC handling:
    /// `super::exec` clears it), positioned at the start.
    pub fn to_memfd(&self) -> std::io::Result<OwnedFd> {
        let fd = rustix::fs::memfd_create("ten-upgrade", rustix::fs::MemfdFlags::CLOEXEC)?;
        let mut file = std::fs::File::from(fd);
        serde_json::to_writer(&mut file, self).map_err(std::io::Error::other)?;
        file.flush()?;
        file.rewind()?;
        Ok(OwnedFd::from(file))
    }

    /// In a new image: the description the old one left, if this start is
    /// an upgrade. Removes `TENEMENT_UPGRADE_FD` from the environment, so
    /// call it before any thread starts. Err: there was one but it cannot
    /// be read (the start goes on as a fresh one).
    pub fn take_from_environment() -> Result<Option<Description>, String> {
        let Some(raw) = std::env::var_os(FD_ENV) else {
            return Ok(None);
        };
        std::env::remove_var(FD_ENV);
        let fd: RawFd = raw
            .to_str()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("{FD_ENV}={raw:?} is not a descriptor number"))?;
        let owned = crate::sys::fd::adopt(fd).map_err(|e| format!("{FD_ENV}={fd}: {e}"))?;
        let mut text = String::new();
        std::fs::File::from(owned)
            .read_to_string(&mut text)
            .map_err(|e| format!("read the hand-over: {e}"))?;
        let desc: Description =
            serde_json::from_str(&text).map_err(|e| format!("parse the hand-over: {e}"))?;
        if desc.format != FORMAT {
            return Err(format!(
                "the hand-over has format {}, this binary reads {FORMAT}",
                desc.format
            ));
        }
        Ok(Some(desc))
    }
}
