//! One front event loop: the poll, accepting connections (passing some to
//! a less busy loop, `share.rs`), the slot table of connections, timers
//! (deadlines, heartbeats, idle release) and closing.
//!
//! Runs on its own thread and owns everything it touches: its listeners, its
//! connections, its upstream pool, its balancer. It learns routes from
//! `Published` and asks the supervisor by message; it never blocks on
//! anything but its own poll. What happens on a connection lives beside it
//! in `worker/` as further `impl Worker` blocks: `pump.rs` (moving bytes),
//! `exchange.rs` (routing and proxying a request, the front's own answers),
//! `connect.rs` (upstream connections, refusals), `manage.rs` (the
//! management API and supervisor replies) and `drain.rs` (ending the loop
//! and handing its sockets on).

mod connect;
mod drain;
mod exchange;
mod manage;
mod pump;

use std::io::{self, ErrorKind};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::net::{TcpListener, UnixListener};
use mio::{Events, Interest, Poll, Token, Waker};

use super::api::Api;
use super::conn::{Conn, Exchanges, Phase, Spare};
use super::router::Balancer;
use super::share::Share;
use super::stats::FrontStats;
use super::tls::{Certs, Client, TlsStream};
use super::upstream::Pool;
use crate::front::fault::Side;
use crate::net::Stream;
use crate::supervisor::{Command, Published, Reply, ReplyTo, Snapshot, SupervisorHandle};

// Token layout: the low two bits say what the token is, the rest is a slot.
const KIND_CLIENT: usize = 0;
const KIND_UPSTREAM: usize = 1;
const KIND_POOL: usize = 2;
const KIND_SPECIAL: usize = 3;
pub const WAKER: Token = Token((1 << 2) | KIND_SPECIAL);
const UNIX_LISTENER: Token = Token((2 << 2) | KIND_SPECIAL);
/// Special tokens from this number up are TCP listeners: plain ones even,
/// HTTPS ones odd (`listener_token`).
const FIRST_LISTENER: usize = 4;

fn token(slot: usize, kind: usize) -> Token {
    Token((slot << 2) | kind)
}

/// The token of the loop's `index`th plain (or HTTPS, with `tls`) listener.
fn listener_token(index: usize, tls: bool) -> Token {
    token(FIRST_LISTENER + index * 2 + usize::from(tls), KIND_SPECIAL)
}

/// A request head must arrive within this (REFERENCE: slow clients).
const HEAD_TIMEOUT: Duration = Duration::from_secs(10);
/// Idle keep-alive connections close after this.
pub(super) const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// How often deadlines are checked while there are connections.
const TICK: Duration = Duration::from_millis(250);
/// While the front drains (an upgrade, a reload that moves the listeners):
/// how long exchanges in flight get to finish before their connections are
/// closed. New connections wait in the kernel's queue meanwhile.
pub const DRAIN: Duration = Duration::from_secs(5);
/// A keep-alive connection idle this long gives back its buffers and its
/// attached upstream (to the pool), so held idle connections cost little.
const IDLE_RELEASE: Duration = Duration::from_secs(2);
/// A Server-Sent Events stream gets a comment line this often, so proxies
/// and browsers keep it open.
const HEARTBEAT: Duration = Duration::from_secs(15);
/// Connections that make a burst: once at least this many were open and
/// three quarters of them have closed, the loop gives memory back.
const BURST: usize = 256;

/// What a loop needs from the server to start.
pub struct WorkerSetup {
    pub index: usize,
    /// Usually one; more when a drained front with more loops handed them on.
    pub listeners: Vec<TcpListener>,
    /// Idle keep-alive connections a drained front handed on: served as if
    /// just accepted.
    pub clients: Vec<Handed>,
    pub unix: Option<UnixListener>,
    pub published: Arc<Published>,
    pub supervisor: SupervisorHandle,
    pub api: Api,
    pub stop: Arc<AtomicBool>,
    /// Set when the front drains (see `Front::drain`).
    pub drain: Arc<AtomicBool>,
    pub poll: Poll,
    pub waker: Arc<Waker>,
    pub stats: Arc<FrontStats>,
    /// Most client connections this loop holds; accepting pauses beyond.
    pub max_conns: usize,
    /// Bumped after every poll, for the service manager's watchdog.
    pub beat: crate::notify::Beat,
    /// The HTTPS listener and what its handshakes use, with `[settings.tls]`.
    pub tls: Option<WorkerTls>,
    /// Every loop's connection count and inbox (`share.rs`).
    pub share: Arc<Share>,
}

/// One loop's HTTPS side.
pub struct WorkerTls {
    pub listeners: Vec<TcpListener>,
    pub config: Arc<rustls::ServerConfig>,
    pub certs: Arc<Certs>,
    /// The port of `https_listen` as bound, for redirects to https.
    pub port: u16,
}

pub use drain::{Handed, Returned};

/// One event loop.
pub struct Worker {
    index: usize,
    poll: Poll,
    listeners: Vec<TcpListener>,
    unix: Option<UnixListener>,
    /// Boxed, so taking a connection out of its slot to drive it and
    /// putting it back moves a pointer, not the whole connection.
    conns: Vec<Option<Box<Conn>>>,
    generations: Vec<u32>,
    free: Vec<usize>,
    pool: Pool,
    spare: Spare,
    /// Finished exchanges, whose storage the next requests' heads reuse.
    exchanges: Exchanges,
    /// Reused for heads written before they are queued.
    scratch: Vec<u8>,
    /// The loop's clock, read once when each poll returns: deadlines and
    /// visits on the request path take it from here.
    now: Instant,
    published: Arc<Published>,
    snap: Arc<Snapshot>,
    balancer: Balancer,
    api: Api,
    supervisor: SupervisorHandle,
    replies_tx: Sender<(usize, Reply)>,
    replies_rx: Receiver<(usize, Reply)>,
    waker: Arc<Waker>,
    stop: Arc<AtomicBool>,
    drain: Arc<AtomicBool>,
    /// Draining since `drain` was seen: until this deadline.
    draining: Option<Instant>,
    open: usize,
    /// Most connections open at once since memory was last given back.
    peak: usize,
    /// Memory was given back during a burst's closes: once more when the
    /// last connection has gone.
    after_burst: bool,
    stats: Arc<FrontStats>,
    max_conns: usize,
    /// Accepting is paused (the listener is deregistered) at the cap.
    paused: bool,
    beat: crate::notify::Beat,
    tls: Option<WorkerTls>,
    /// While draining: idle connections taken out of the loop, for the
    /// next front.
    handed: Vec<Handed>,
    /// On-demand orders settled when parked handshakes were last looked at.
    settled_seen: u64,
    share: Arc<Share>,
}

impl Worker {
    /// Registers the listeners; the caller then runs `run` on the loop's thread.
    pub fn new(setup: WorkerSetup) -> io::Result<Worker> {
        let WorkerSetup {
            index,
            mut listeners,
            clients,
            mut unix,
            published,
            supervisor,
            api,
            stop,
            drain,
            poll,
            waker,
            stats,
            max_conns,
            beat,
            mut tls,
            share,
        } = setup;
        for (i, l) in listeners.iter_mut().enumerate() {
            poll.registry()
                .register(l, listener_token(i, false), Interest::READABLE)?;
        }
        if let Some(tls) = tls.as_mut() {
            for (i, l) in tls.listeners.iter_mut().enumerate() {
                poll.registry()
                    .register(l, listener_token(i, true), Interest::READABLE)?;
            }
        }
        if let Some(unix) = unix.as_mut() {
            poll.registry()
                .register(unix, UNIX_LISTENER, Interest::READABLE)?;
        }
        let (replies_tx, replies_rx) = mpsc::channel();
        let snap = published.load();
        let acme = tls.as_ref().and_then(|t| t.certs.acme());
        if let Some(acme) = acme {
            acme.wake_on_settle(&waker);
        }
        let settled_seen = acme.map_or(0, |a| a.settled_count());
        let mut worker = Worker {
            index,
            poll,
            listeners,
            unix,
            conns: Vec::new(),
            generations: Vec::new(),
            free: Vec::new(),
            pool: Pool::default(),
            spare: Spare::default(),
            exchanges: Exchanges::default(),
            scratch: Vec::with_capacity(1024),
            now: Instant::now(),
            published,
            snap,
            balancer: Balancer::default(),
            api,
            supervisor,
            replies_tx,
            replies_rx,
            waker,
            stop,
            drain,
            draining: None,
            open: 0,
            peak: 0,
            after_burst: false,
            stats,
            max_conns,
            paused: false,
            beat,
            tls,
            handed: Vec::new(),
            settled_seen,
            share,
        };
        for c in clients {
            worker.add_conn(Client::Plain(c.stream), c.peer_ip, c.local);
        }
        Ok(worker)
    }

    /// Runs until the stop flag is set and the waker fires, or until a
    /// drain is over; gives back the listening sockets, open.
    pub fn run(mut self) -> Returned {
        let mut events = Events::with_capacity(1024);
        let mut next_tick = self.now + TICK;
        loop {
            let timeout = if self.open > 0 || !self.pool.is_empty() {
                Some(next_tick.saturating_duration_since(self.now))
            } else {
                None
            };
            let polled = self.poll.poll(&mut events, timeout);
            self.now = Instant::now();
            if let Err(e) = polled {
                if e.kind() == ErrorKind::Interrupted {
                    continue;
                }
                error!("front", "poll failed in loop {}: {e}", self.index);
                return self.give_back();
            }
            self.beat.beat();
            if self.stop.load(Ordering::Acquire) {
                return self.give_back();
            }
            if self.draining.is_none() && self.drain.load(Ordering::Acquire) {
                self.begin_drain();
            }
            for event in events.iter() {
                let t = event.token().0;
                match t & 3 {
                    KIND_SPECIAL => match event.token() {
                        UNIX_LISTENER => self.accept_unix(),
                        WAKER => {
                            self.take_replies();
                            self.take_passed();
                        }
                        _ if t >> 2 >= FIRST_LISTENER => {
                            let n = (t >> 2) - FIRST_LISTENER;
                            self.accept_tcp(n / 2, n % 2 == 1)
                        }
                        _ => {}
                    },
                    KIND_CLIENT => {
                        let slot = t >> 2;
                        if let Some(Some(conn)) = self.conns.get_mut(slot) {
                            if event.is_readable() || event.is_read_closed() || event.is_error() {
                                conn.ready.readable = true;
                            }
                            if event.is_read_closed() || event.is_error() {
                                conn.ready.hup = true;
                            }
                            if event.is_writable() || event.is_write_closed() || event.is_error() {
                                conn.ready.writable = true;
                            }
                        }
                        self.drive(slot);
                    }
                    KIND_UPSTREAM => {
                        let slot = t >> 2;
                        if let Some(Some(conn)) = self.conns.get_mut(slot) {
                            if let Some(up) = conn.upstream.as_mut() {
                                if event.is_readable() || event.is_read_closed() || event.is_error()
                                {
                                    up.ready.readable = true;
                                }
                                if event.is_read_closed() || event.is_error() {
                                    up.ready.hup = true;
                                }
                                if event.is_writable()
                                    || event.is_write_closed()
                                    || event.is_error()
                                {
                                    up.ready.writable = true;
                                }
                            }
                        }
                        self.drive(slot);
                    }
                    _ => self.pool.on_event(self.poll.registry(), t >> 2),
                }
            }
            // Replies may arrive without the waker's event being in this batch.
            self.take_replies();
            self.resume_parked();
            let now = self.now;
            if now >= next_tick {
                self.tick(now);
                next_tick = now + TICK;
            }
            if self.draining.is_some() {
                self.hand_off_idle();
            }
            if self
                .draining
                .is_some_and(|until| self.open == 0 || now >= until)
            {
                if self.open > 0 {
                    info!(
                        "front",
                        "loop {}: {} connections still busy after {}s of draining: closed",
                        self.index,
                        self.open,
                        DRAIN.as_secs()
                    );
                }
                return self.give_back();
            }
        }
    }

    /// Stops watching every listening socket (the kernel queues new
    /// connections meanwhile).
    fn stop_accepting(&mut self) {
        let registry = self.poll.registry();
        for l in self.listeners.iter_mut() {
            let _ = registry.deregister(l);
        }
        if let Some(t) = self.tls.as_mut() {
            for l in t.listeners.iter_mut() {
                let _ = registry.deregister(l);
            }
        }
    }

    /// Accepts on the loop's `index`th plain listener, or HTTPS one when
    /// `tls`.
    fn accept_tcp(&mut self, index: usize, tls: bool) {
        loop {
            if self.draining.is_some() {
                return;
            }
            if self.open >= self.max_conns {
                // At the cap: stop accepting; the kernel queues new
                // connections until one closes (see `close`).
                if !self.paused {
                    self.stop_accepting();
                    self.paused = true;
                    self.stats.accept_paused.fetch_add(1, Ordering::Relaxed);
                    warn!(
                        "front",
                        "loop {} holds {} connections: accepting paused", self.index, self.open
                    );
                }
                return;
            }
            let listener = match (&self.tls, tls) {
                (Some(t), true) => t.listeners.get(index),
                _ => self.listeners.get(index),
            };
            let Some(listener) = listener else { return };
            let accepted = listener.accept();
            match accepted {
                Ok((stream, peer)) => {
                    // TCP_NODELAY comes from the listener (`listeners.rs`).
                    let client = match (&self.tls, tls) {
                        (Some(t), true) => {
                            match TlsStream::new(stream, t.config.clone(), t.certs.clone()) {
                                Ok(s) => Client::Tls(Box::new(s)),
                                Err(e) => {
                                    warn!("front", "start a TLS connection: {e}");
                                    continue;
                                }
                            }
                        }
                        _ => match self.pass_on(stream, peer.ip()) {
                            Some(stream) => Client::Plain(Stream::Tcp(stream)),
                            None => continue,
                        },
                    };
                    self.add_conn(client, peer.ip(), false);
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => {
                    // EMFILE and the like: leave the rest queued for the next event.
                    warn!("front", "accept failed: {e}");
                    return;
                }
            }
        }
    }

    /// Passes a plain connection just accepted to a less busy loop
    /// (`share.rs`); gives it back when this loop keeps it. Nothing is
    /// passed while the front drains: the other loop may be ending.
    fn pass_on(
        &mut self,
        stream: mio::net::TcpStream,
        peer_ip: IpAddr,
    ) -> Option<mio::net::TcpStream> {
        if self.drain.load(Ordering::Relaxed) {
            return Some(stream);
        }
        let Some(to) = self.share.pick(self.index) else {
            return Some(stream);
        };
        let stream = Stream::Tcp(stream);
        self.share.send(
            to,
            Handed {
                stream,
                peer_ip,
                local: false,
            },
        );
        None
    }

    fn accept_unix(&mut self) {
        loop {
            let Some(unix) = self.unix.as_ref() else {
                return;
            };
            match unix.accept() {
                Ok((stream, _)) => {
                    let client = Client::Plain(Stream::Unix(stream));
                    self.add_conn(client, IpAddr::V4(Ipv4Addr::LOCALHOST), true)
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => {
                    warn!("front", "accept on the local socket failed: {e}");
                    return;
                }
            }
        }
    }

    fn add_conn(&mut self, client: Client, peer_ip: IpAddr, local: bool) {
        let slot = match self.free.pop() {
            Some(slot) => slot,
            None => {
                self.conns.push(None);
                if self.generations.len() < self.conns.len() {
                    self.generations.push(0);
                }
                self.conns.len() - 1
            }
        };
        self.generations[slot] = self.generations[slot].wrapping_add(1);
        let mut conn = Box::new(Conn::new(client, peer_ip, local, self.generations[slot]));
        if let Err(e) = self.poll.registry().register(
            &mut conn.client,
            token(slot, KIND_CLIENT),
            Interest::READABLE | Interest::WRITABLE,
        ) {
            warn!("front", "register connection: {e}");
            self.free.push(slot);
            return;
        }
        conn.ready.writable = true;
        conn.deadline = Some(self.now + HEAD_TIMEOUT);
        self.conns[slot] = Some(conn);
        self.open += 1;
        self.share.opened(self.index);
        self.peak = self.peak.max(self.open);
        self.stats.open.fetch_add(1, Ordering::Relaxed);
        self.stats.accepted.fetch_add(1, Ordering::Relaxed);
    }

    fn take_replies(&mut self) {
        while let Ok((tag, reply)) = self.replies_rx.try_recv() {
            let slot = tag & 0xffff_ffff;
            let generation = (tag >> 32) as u32;
            let Some(mut conn) = self.conns.get_mut(slot).and_then(Option::take) else {
                continue;
            };
            if conn.generation != generation
                || !matches!(conn.phase, Phase::Waiting | Phase::Streaming)
            {
                self.conns[slot] = Some(conn);
                continue;
            }
            self.on_reply(slot, &mut conn, reply);
            self.finish_drive(slot, conn);
        }
    }

    /// Takes in the connections another loop passed to this one.
    fn take_passed(&mut self) {
        for h in self.share.take(self.index) {
            self.add_conn(Client::Plain(h.stream), h.peer_ip, h.local);
        }
    }

    /// When an on-demand order settled since the last look (ACME woke the
    /// loop): drives every parked handshake again, which goes on, gets its
    /// alert, or stays parked; the head timeout starts after it.
    fn resume_parked(&mut self) {
        let Some(acme) = self.tls.as_ref().and_then(|t| t.certs.acme()) else {
            return;
        };
        let settled = acme.settled_count();
        if settled == self.settled_seen {
            return;
        }
        self.settled_seen = settled;
        let now = Instant::now();
        for slot in 0..self.conns.len() {
            let parked = self.conns[slot]
                .as_ref()
                .is_some_and(|c| c.client.parked_since().is_some());
            if parked {
                let mut conn = self.conns[slot].take().expect("checked just above");
                conn.deadline = Some(now + HEAD_TIMEOUT);
                conn.ready.readable = true;
                self.finish_drive(slot, conn);
            }
        }
    }

    fn tick(&mut self, now: Instant) {
        self.pool.expire(self.poll.registry(), now);
        self.shrink_slots(1024);
        for slot in 0..self.conns.len() {
            // A handshake held for an on-demand certificate (resumed by
            // `resume_parked`): dropped when it waited too long.
            if let Some(since) = self.conns[slot]
                .as_ref()
                .and_then(|c| c.client.parked_since())
            {
                if now.duration_since(since) >= super::tls::ON_DEMAND_WAIT {
                    let conn = self.conns[slot].take().expect("checked just above");
                    self.close(slot, conn);
                }
                continue;
            }
            // An event stream whose token was revoked ends now.
            let revoked = match &self.conns[slot] {
                Some(c) if matches!(c.phase, Phase::Streaming | Phase::Waiting) => c
                    .stream_token
                    .as_deref()
                    .is_some_and(|id| !self.api.token_valid(id)),
                _ => false,
            };
            if revoked {
                let mut conn = self.conns[slot].take().expect("checked just above");
                if conn.phase == Phase::Streaming {
                    self.send_chunk(&mut conn, b": token revoked\n\n");
                    conn.cout.extend(b"0\r\n\r\n");
                }
                conn.stream_token = None;
                conn.phase = Phase::Closing;
                self.finish_drive(slot, conn);
                continue;
            }
            let beat = matches!(&self.conns[slot],
                Some(c) if c.phase == Phase::Streaming && now >= c.last_beat + HEARTBEAT);
            if beat {
                let mut conn = self.conns[slot].take().expect("checked just above");
                self.send_chunk(&mut conn, b": keep-alive\n\n");
                conn.last_beat = now;
                self.finish_drive(slot, conn);
                continue;
            }
            let idle = matches!(&self.conns[slot],
                Some(c) if c.phase == Phase::Head && c.cin.is_empty()
                    && now.duration_since(c.idle_since) >= IDLE_RELEASE
                    && (c.upstream.is_some() || c.cin.has_storage() || c.cout.has_storage()
                        || c.uin.has_storage() || c.uout.has_storage()));
            if idle {
                let mut conn = self.conns[slot].take().expect("checked just above");
                if conn.cout.is_empty() {
                    self.detach_upstream(&mut conn);
                    for buf in [&mut conn.cin, &mut conn.cout, &mut conn.uin, &mut conn.uout] {
                        self.spare.reclaim(buf);
                    }
                }
                self.conns[slot] = Some(conn);
            }
            let expired =
                matches!(&self.conns[slot], Some(c) if c.deadline.is_some_and(|d| d <= now));
            if !expired {
                continue;
            }
            let mut conn = self.conns[slot].take().expect("checked just above");
            conn.deadline = None;
            match conn.phase {
                Phase::Head | Phase::ApiBody => {
                    if conn.cin.is_empty() && conn.phase == Phase::Head {
                        self.close(slot, conn);
                        continue;
                    }
                    self.fail_timeout(
                        &mut conn,
                        Side::Client,
                        "request head or body not received in time",
                    );
                }
                Phase::Waiting => {
                    self.fail_timeout(&mut conn, Side::Upstream, "instance not ready in time")
                }
                Phase::Proxy => {
                    let started = conn.exchange.as_ref().is_some_and(|x| x.resp_started);
                    if started {
                        self.close(slot, conn);
                        continue;
                    }
                    let secs = conn
                        .exchange
                        .as_ref()
                        .map_or(0, |x| x.request_timeout.as_secs());
                    let msg = format!("upstream did not answer within {secs}s");
                    self.fail_timeout(&mut conn, Side::Upstream, &msg);
                }
                // A retry is settled within the pump that entered it.
                Phase::Tunnel | Phase::Streaming | Phase::Retry => {}
                Phase::Closing => {
                    self.close(slot, conn);
                    continue;
                }
            }
            self.finish_drive(slot, conn);
        }
    }

    /// After a burst of connections has gone, gives the slot table's memory
    /// back. Generations are kept, so a late reply for a dropped slot is
    /// still recognised as stale when the slot is reused. A table shorter
    /// than `min_len` is left as it is.
    fn shrink_slots(&mut self, min_len: usize) {
        let len = self.conns.len();
        if len < min_len || self.open * 4 > len {
            return;
        }
        let keep = self
            .conns
            .iter()
            .rposition(Option::is_some)
            .map_or(0, |i| i + 1);
        if keep * 2 > len {
            return;
        }
        self.conns.truncate(keep);
        self.conns.shrink_to_fit();
        self.free.retain(|&slot| slot < keep);
        self.free.shrink_to_fit();
    }

    /// After a burst of connections: frees the spare buffers and exchanges
    /// and the slot table's unused end, and has the allocator return free
    /// memory to the kernel, so the server's RSS comes back down.
    fn give_back_memory(&mut self) {
        self.spare.release();
        self.exchanges.release();
        self.shrink_slots(0);
        crate::sys::memory::trim();
        self.after_burst = self.open > 0;
        self.peak = self.open;
    }

    /// Runs the connection's state machine until no side can make progress.
    fn drive(&mut self, slot: usize) {
        let Some(conn) = self.conns.get_mut(slot).and_then(Option::take) else {
            return;
        };
        // The pump runs until nothing moves: once is enough.
        self.finish_drive(slot, conn);
    }

    /// Pumps once more (a reply or timeout may have queued bytes) and puts the
    /// connection back, or closes it when its pump said it is finished.
    fn finish_drive(&mut self, slot: usize, mut conn: Box<Conn>) {
        if self.pump(slot, &mut conn) {
            self.conns[slot] = Some(conn);
        } else {
            self.close(slot, conn);
        }
    }

    fn close(&mut self, slot: usize, mut conn: Box<Conn>) {
        conn.client.close_notify();
        // No deregister: closing the socket takes it out of the poll. A
        // late event for the slot (a spawn's fork still held the socket
        // until its exec) only makes the next connection in it try a read
        // or a write that would block.
        // A sound idle upstream outlives its client: it goes to the pool.
        self.detach_upstream(&mut conn);
        if let Some(id) = conn.stream_id.take() {
            self.supervisor.send(Command::Unsubscribe { id }, None);
        }
        // Ending the exchange ends its visit (the instance's open count).
        if let Some(x) = conn.exchange.take() {
            self.exchanges.give_back(x, self.now);
        }
        drop(conn);
        self.vacate(slot);
        let burst_over = self.peak >= BURST && self.open * 4 <= self.peak;
        if burst_over || (self.open == 0 && self.after_burst) {
            self.give_back_memory();
        }
        if self.paused && self.open < self.max_conns && self.draining.is_none() {
            self.paused = false;
            let registry = self.poll.registry();
            for (i, l) in self.listeners.iter_mut().enumerate() {
                let _ = registry.register(l, listener_token(i, false), Interest::READABLE);
            }
            if let Some(t) = self.tls.as_mut() {
                for (i, l) in t.listeners.iter_mut().enumerate() {
                    let _ = registry.register(l, listener_token(i, true), Interest::READABLE);
                }
            }
            // Connections queued meanwhile raise no new edge: take them now.
            for i in 0..self.listeners.len() {
                self.accept_tcp(i, false);
            }
            for i in 0..self.tls.as_ref().map_or(0, |t| t.listeners.len()) {
                self.accept_tcp(i, true);
            }
        }
    }

    /// A connection has left `slot` (closed, or handed on at a drain): the
    /// slot is free again and every count of open connections (the loop's,
    /// the share's, the front's) drops by one.
    fn vacate(&mut self, slot: usize) {
        self.conns[slot] = None;
        self.free.push(slot);
        self.open -= 1;
        self.share.closed(self.index);
        self.stats.open.fetch_sub(1, Ordering::Relaxed);
    }

    /// Where the supervisor's answer for this connection goes.
    fn reply_to(&self, slot: usize, c: &Conn) -> ReplyTo {
        ReplyTo {
            tx: self.replies_tx.clone(),
            waker: self.waker.clone(),
            conn: (u64::from(c.generation) << 32) as usize | slot,
        }
    }
}
