//! Draining a loop (an upgrade in place, a reload that moves the
//! listeners): accepting stops, exchanges in flight finish, and the loop's
//! sockets are handed on to the next front instead of being closed.
//!
//! A plain keep-alive connection between requests is handed on as it is:
//! the next front serves its next request, and a request already sent
//! waits in the socket's buffer meanwhile, so keep-alive clients never see
//! their connection closed. TLS connections cannot be handed on (their
//! session state lives here): they end after their current response with
//! `Connection: close`. Tunnels and event streams, which never end by
//! themselves, are closed at once (an event stream with a `: reconnect`
//! comment first, on which `ten logs -f` connects again); anything still
//! busy after `DRAIN` too.

use std::net::IpAddr;
use std::time::Instant;

use mio::net::{TcpListener, UnixListener};

use super::{Worker, DRAIN};
use crate::front::conn::{Conn, Phase};
use crate::front::tls::Client;
use crate::net::MioStream;
use crate::supervisor::Command;

/// The comment an event stream ends with at a drain: the client connects
/// again and the next front (or the next image) answers.
const RECONNECT: &[u8] = b": reconnect\n\n";

/// An idle client connection taken out of a loop, for the next one.
#[derive(Debug)]
pub struct Handed {
    pub stream: MioStream,
    pub peer_ip: IpAddr,
    /// Came in on `ten.sock`.
    pub local: bool,
}

/// What a loop gives back when it ends: its listening sockets, open, and
/// the idle connections it took out while draining.
pub struct Returned {
    pub http: Vec<TcpListener>,
    pub https: Vec<TcpListener>,
    pub unix: Option<UnixListener>,
    pub clients: Vec<Handed>,
}

impl Worker {
    /// The front drains: accepting stops (the kernel queues new
    /// connections meanwhile), tunnels and event streams end now, TLS
    /// connections end after their current response, and the rest are
    /// handed on as each becomes idle (`hand_off_idle`), within `DRAIN`.
    pub(super) fn begin_drain(&mut self) {
        self.draining = Some(Instant::now() + DRAIN);
        self.stop_accepting();
        if let Some(unix) = self.unix.as_mut() {
            let _ = self.poll.registry().deregister(unix);
        }
        for slot in 0..self.conns.len() {
            let Some(mut conn) = self.conns[slot].take() else {
                continue;
            };
            match conn.phase {
                Phase::Tunnel => {
                    self.close(slot, conn);
                    continue;
                }
                Phase::Streaming => {
                    // A comment telling the client to connect again (the
                    // next front answers), then the last chunk, so it
                    // sees a clean end.
                    self.send_chunk(&mut conn, RECONNECT);
                    conn.cout.extend(b"0\r\n\r\n");
                    conn.phase = Phase::Closing;
                }
                _ if conn.client.is_tls() => conn.close_after = true,
                _ => {}
            }
            self.finish_drive(slot, conn);
        }
    }

    /// Takes every idle connection out of the loop: plain ones into
    /// `handed`, TLS ones closed.
    pub(super) fn hand_off_idle(&mut self) {
        for slot in 0..self.conns.len() {
            let idle = matches!(&self.conns[slot], Some(c) if is_idle(c));
            if !idle {
                continue;
            }
            let mut conn = self.conns[slot].take().expect("checked just above");
            if conn.client.is_tls() {
                self.close(slot, conn);
                continue;
            }
            let _ = self.poll.registry().deregister(&mut conn.client);
            self.detach_upstream(&mut conn);
            if let Some(id) = conn.stream_id.take() {
                self.supervisor.send(Command::Unsubscribe { id }, None);
            }
            let (peer_ip, local) = (conn.peer_ip, conn.local);
            let Conn { client, .. } = *conn;
            if let Client::Plain(stream) = client {
                self.handed.push(Handed {
                    stream,
                    peer_ip,
                    local,
                });
            }
            self.vacate(slot);
        }
    }

    /// The loop's sockets, for whoever serves next.
    pub(super) fn give_back(mut self) -> Returned {
        self.stop_accepting();
        if let Some(unix) = self.unix.as_mut() {
            let _ = self.poll.registry().deregister(unix);
        }
        // Connections another loop passed on just before the drain began
        // and this one never took in go on with the rest.
        self.handed.extend(self.share.take(self.index));
        Returned {
            http: std::mem::take(&mut self.listeners),
            https: self.tls.take().map(|t| t.listeners).unwrap_or_default(),
            unix: self.unix.take(),
            clients: std::mem::take(&mut self.handed),
        }
    }
}

/// Between requests, with nothing buffered either way.
fn is_idle(c: &Conn) -> bool {
    c.phase == Phase::Head
        && c.cin.is_empty()
        && c.cout.is_empty()
        && !c.client.has_pending()
        && c.stream_id.is_none()
}
