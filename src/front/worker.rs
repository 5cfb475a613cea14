//! One front event loop: accepts connections, reads request heads, routes
//! them, proxies to instances and answers the management API.
//!
//! Runs on its own thread and owns everything it touches: its listener, its
//! connections, its upstream pool, its balancer. It learns routes from
//! `Published` and asks the supervisor by message; it never blocks on
//! anything but its own poll.

use std::io::{self, ErrorKind};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::net::{TcpListener, UnixListener};
use mio::{Events, Interest, Poll, Token, Waker};

use super::api::{self, Action, Api, ApiRequest, Response};
use super::conn::{
    ClientStream, Conn, Dest, Exchange, Phase, Ready, Spare, UpStream, Upstream, MAX_BUF,
};
use super::router::{self, Balancer, Target};
use super::stats::{FrontStats, Visit};
use super::upstream::Pool;
use crate::http::{self, BodyKind, Forwarded, Framer, RequestHead};
use crate::names::InstanceKey;
use crate::supervisor::{Command, Published, Reply, ReplyTo, Snapshot, State, SupervisorHandle};

// Token layout: the low two bits say what the token is, the rest is a slot.
const KIND_CLIENT: usize = 0;
const KIND_UPSTREAM: usize = 1;
const KIND_POOL: usize = 2;
const KIND_SPECIAL: usize = 3;
const LISTENER: Token = Token(KIND_SPECIAL);
pub const WAKER: Token = Token((1 << 2) | KIND_SPECIAL);
const UNIX_LISTENER: Token = Token((2 << 2) | KIND_SPECIAL);

fn token(slot: usize, kind: usize) -> Token {
    Token((slot << 2) | kind)
}

/// A request head must arrive within this (REFERENCE: slow clients).
const HEAD_TIMEOUT: Duration = Duration::from_secs(10);
/// Idle keep-alive connections close after this.
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Largest management API request body.
const MAX_API_BODY: usize = 1024 * 1024;
/// How often deadlines are checked while there are connections.
const TICK: Duration = Duration::from_millis(250);
/// A keep-alive connection idle this long gives back its buffers and its
/// attached upstream (to the pool), so held idle connections cost little.
const IDLE_RELEASE: Duration = Duration::from_secs(2);
/// Slack past `startup_timeout` for a held request, in case the supervisor's
/// own 504 is late.
const HOLD_SLACK: Duration = Duration::from_secs(5);
/// A Server-Sent Events stream gets a comment line this often, so proxies
/// and browsers keep it open.
const HEARTBEAT: Duration = Duration::from_secs(15);
/// Refused connections one request may meet (an instance crashing again and
/// again) before it is answered 502.
const MAX_REFUSALS: u32 = 20;

/// Subscription ids are unique across loops.
static NEXT_STREAM_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

/// What a loop needs from the server to start.
pub struct WorkerSetup {
    pub index: usize,
    pub listener: TcpListener,
    pub unix: Option<UnixListener>,
    pub published: Arc<Published>,
    pub supervisor: SupervisorHandle,
    pub api: Api,
    pub stop: Arc<AtomicBool>,
    pub poll: Poll,
    pub waker: Arc<Waker>,
    pub stats: Arc<FrontStats>,
    /// Most client connections this loop holds; accepting pauses beyond.
    pub max_conns: usize,
}

/// One event loop.
pub struct Worker {
    index: usize,
    poll: Poll,
    listener: TcpListener,
    unix: Option<UnixListener>,
    conns: Vec<Option<Conn>>,
    generations: Vec<u32>,
    free: Vec<usize>,
    pool: Pool,
    spare: Spare,
    /// Reused for heads written before they are queued.
    scratch: Vec<u8>,
    published: Arc<Published>,
    snap: Arc<Snapshot>,
    balancer: Balancer,
    api: Api,
    supervisor: SupervisorHandle,
    replies_tx: Sender<(usize, Reply)>,
    replies_rx: Receiver<(usize, Reply)>,
    waker: Arc<Waker>,
    stop: Arc<AtomicBool>,
    open: usize,
    stats: Arc<FrontStats>,
    max_conns: usize,
    /// Accepting is paused (the listener is deregistered) at the cap.
    paused: bool,
}

impl Worker {
    /// Registers the listeners; the caller then runs `run` on the loop's thread.
    pub fn new(setup: WorkerSetup) -> io::Result<Worker> {
        let WorkerSetup {
            index,
            mut listener,
            mut unix,
            published,
            supervisor,
            api,
            stop,
            poll,
            waker,
            stats,
            max_conns,
        } = setup;
        poll.registry()
            .register(&mut listener, LISTENER, Interest::READABLE)?;
        if let Some(unix) = unix.as_mut() {
            poll.registry()
                .register(unix, UNIX_LISTENER, Interest::READABLE)?;
        }
        let (replies_tx, replies_rx) = mpsc::channel();
        let snap = published.load();
        Ok(Worker {
            index,
            poll,
            listener,
            unix,
            conns: Vec::new(),
            generations: Vec::new(),
            free: Vec::new(),
            pool: Pool::default(),
            spare: Spare::default(),
            scratch: Vec::with_capacity(1024),
            published,
            snap,
            balancer: Balancer::default(),
            api,
            supervisor,
            replies_tx,
            replies_rx,
            waker,
            stop,
            open: 0,
            stats,
            max_conns,
            paused: false,
        })
    }

    /// Runs until the stop flag is set and the waker fires.
    pub fn run(mut self) {
        let mut events = Events::with_capacity(1024);
        let mut next_tick = Instant::now() + TICK;
        loop {
            let timeout = if self.open > 0 || !self.pool.is_empty() {
                Some(next_tick.saturating_duration_since(Instant::now()))
            } else {
                None
            };
            if let Err(e) = self.poll.poll(&mut events, timeout) {
                if e.kind() == ErrorKind::Interrupted {
                    continue;
                }
                error!("front", "poll failed in loop {}: {e}", self.index);
                return;
            }
            if self.stop.load(Ordering::Acquire) {
                return;
            }
            for event in events.iter() {
                let t = event.token().0;
                match t & 3 {
                    KIND_SPECIAL => match event.token() {
                        LISTENER => self.accept_tcp(),
                        UNIX_LISTENER => self.accept_unix(),
                        WAKER => self.take_replies(),
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
            let now = Instant::now();
            if now >= next_tick {
                self.tick(now);
                next_tick = now + TICK;
            }
        }
    }

    fn accept_tcp(&mut self) {
        loop {
            if self.open >= self.max_conns {
                // At the cap: stop accepting; the kernel queues new
                // connections until one closes (see `close`).
                if !self.paused {
                    let _ = self.poll.registry().deregister(&mut self.listener);
                    self.paused = true;
                    self.stats.accept_paused.fetch_add(1, Ordering::Relaxed);
                    warn!(
                        "front",
                        "loop {} holds {} connections: accepting paused", self.index, self.open
                    );
                }
                return;
            }
            match self.listener.accept() {
                Ok((stream, peer)) => {
                    let _ = stream.set_nodelay(true);
                    self.add_conn(ClientStream::Tcp(stream), peer.ip(), false);
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

    fn accept_unix(&mut self) {
        loop {
            let Some(unix) = self.unix.as_ref() else {
                return;
            };
            match unix.accept() {
                Ok((stream, _)) => self.add_conn(
                    ClientStream::Unix(stream),
                    IpAddr::V4(Ipv4Addr::LOCALHOST),
                    true,
                ),
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => {
                    warn!("front", "accept on the local socket failed: {e}");
                    return;
                }
            }
        }
    }

    fn add_conn(&mut self, client: ClientStream, peer_ip: IpAddr, local: bool) {
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
        let mut conn = Conn::new(client, peer_ip, local, self.generations[slot]);
        if let Err(e) = self.poll.registry().register(
            conn.client.source(),
            token(slot, KIND_CLIENT),
            Interest::READABLE | Interest::WRITABLE,
        ) {
            warn!("front", "register connection: {e}");
            self.free.push(slot);
            return;
        }
        conn.ready.writable = true;
        conn.deadline = Some(Instant::now() + HEAD_TIMEOUT);
        self.conns[slot] = Some(conn);
        self.open += 1;
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

    fn tick(&mut self, now: Instant) {
        self.pool.expire(self.poll.registry(), now);
        self.shrink_slots();
        for slot in 0..self.conns.len() {
            let beat = matches!(&self.conns[slot],
                Some(c) if c.phase == Phase::Streaming && now >= c.last_beat + HEARTBEAT);
            if beat {
                let mut conn = self.conns[slot].take().expect("checked just above");
                write_chunk(&mut conn, b": keep-alive\n\n");
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
                    self.fail(&mut conn, 408, "request head or body not received in time");
                }
                Phase::Waiting => self.fail(&mut conn, 504, "instance not ready in time"),
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
                    self.fail(&mut conn, 504, &msg);
                }
                Phase::Tunnel | Phase::Streaming => {}
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
    /// still recognised as stale when the slot is reused.
    fn shrink_slots(&mut self) {
        let len = self.conns.len();
        if len < 1024 || self.open * 4 > len {
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

    /// Runs the connection's state machine until no side can make progress.
    fn drive(&mut self, slot: usize) {
        let Some(mut conn) = self.conns.get_mut(slot).and_then(Option::take) else {
            return;
        };
        self.pump(slot, &mut conn);
        self.finish_drive(slot, conn);
    }

    /// Pumps once more (a reply or timeout may have queued bytes) and puts the
    /// connection back, or closes it.
    fn finish_drive(&mut self, slot: usize, mut conn: Conn) {
        let keep = self.pump(slot, &mut conn);
        if keep {
            self.conns[slot] = Some(conn);
        } else {
            self.close(slot, conn);
        }
    }

    fn close(&mut self, slot: usize, mut conn: Conn) {
        let _ = self.poll.registry().deregister(conn.client.source());
        // A sound idle upstream outlives its client: it goes to the pool.
        self.detach_upstream(&mut conn);
        if let Some(id) = conn.stream_id.take() {
            self.supervisor.send(Command::Unsubscribe { id }, None);
        }
        // Dropping the exchange ends its visit (the instance's open count).
        drop(conn);
        self.conns[slot] = None;
        self.free.push(slot);
        self.open -= 1;
        self.stats.open.fetch_sub(1, Ordering::Relaxed);
        if self.paused && self.open < self.max_conns {
            let registry = self.poll.registry();
            if registry
                .register(&mut self.listener, LISTENER, Interest::READABLE)
                .is_ok()
            {
                self.paused = false;
                // Connections queued meanwhile raise no new edge: take them now.
                self.accept_tcp();
            }
        }
    }

    /// Returns false when the connection is finished and must be closed.
    fn pump(&mut self, slot: usize, c: &mut Conn) -> bool {
        for buf in [&mut c.cin, &mut c.cout, &mut c.uin, &mut c.uout] {
            self.spare.supply(buf);
        }
        let keep = self.pump_inner(slot, c);
        if !keep || (c.phase == Phase::Head && c.cin.is_empty() && c.cout.is_empty()) {
            // Between requests (or closing): the storage goes back to the loop.
            for buf in [&mut c.cin, &mut c.cout, &mut c.uin, &mut c.uout] {
                self.spare.reclaim(buf);
            }
        }
        keep
    }

    fn pump_inner(&mut self, slot: usize, c: &mut Conn) -> bool {
        loop {
            let mut progress = false;

            // Read from the client while there is room (backpressure otherwise).
            if c.ready.readable
                && !c.ready.eof
                && c.phase != Phase::Closing
                && c.cin.len() < MAX_BUF
            {
                match c.cin.read_from(&mut c.client) {
                    Ok((0, _)) => {
                        c.ready.eof = true;
                        progress = true;
                    }
                    Ok((_, drained)) => {
                        c.ready.readable = !drained || c.ready.hup;
                        progress = true;
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => c.ready.readable = false,
                    Err(e) if e.kind() == ErrorKind::Interrupted => {}
                    Err(_) => return false,
                }
            }

            match c.phase {
                Phase::Head => {
                    if !c.cin.is_empty() {
                        if c.served > 0
                            && c.deadline
                                .is_some_and(|d| d > Instant::now() + HEAD_TIMEOUT)
                        {
                            // First byte of a keep-alive request: the head timeout starts now.
                            c.deadline = Some(Instant::now() + HEAD_TIMEOUT);
                        }
                        match http::parse_request(c.cin.bytes()) {
                            Ok(Some((head, len))) => {
                                c.cin.consume(len);
                                self.start_request(slot, c, head);
                                progress = true;
                            }
                            Ok(None) => {}
                            Err(e) => {
                                let msg = e.to_string();
                                self.fail(c, e.status(), &msg);
                                progress = true;
                            }
                        }
                    }
                    if c.phase == Phase::Head && c.ready.eof {
                        return false;
                    }
                }
                Phase::ApiBody => {
                    if !c.cin.is_empty() {
                        progress |= self.read_api_body(slot, c);
                    } else if c.ready.eof {
                        return false;
                    }
                }
                Phase::Proxy => progress |= self.proxy_step(slot, c),
                Phase::Tunnel => progress |= self.tunnel_step(c),
                Phase::Waiting => {
                    if c.ready.eof && c.cin.is_empty() {
                        // The client gave up while its request was held.
                        return false;
                    }
                }
                Phase::Streaming => {
                    if c.ready.eof {
                        return false;
                    }
                    // Nothing a client sends on an event stream matters.
                    let n = c.cin.len();
                    c.cin.consume(n);
                }
                Phase::Closing => {}
            }

            // Upstream: write what is queued, read what arrived.
            if let Some(up) = c.upstream.as_mut() {
                if !up.connected && (up.ready.writable || up.ready.readable) {
                    match up.stream.connect_result() {
                        Some(Ok(())) => {
                            up.connected = true;
                            progress = true;
                        }
                        Some(Err(_)) => {
                            self.upstream_refused(slot, c);
                            continue;
                        }
                        None => {
                            up.ready.writable = false;
                            up.ready.readable = false;
                        }
                    }
                }
            }
            if let Some(up) = c.upstream.as_mut() {
                if up.connected && up.ready.writable && !c.uout.is_empty() {
                    match c.uout.write_to(&mut up.stream) {
                        Ok((n, short)) => {
                            if let Some(v) = c.exchange.as_ref().and_then(|x| x.visit.as_ref()) {
                                v.bytes_in(n);
                            }
                            up.ready.writable = !short;
                            progress = true;
                        }
                        Err(e) if e.kind() == ErrorKind::WouldBlock => up.ready.writable = false,
                        Err(e) if e.kind() == ErrorKind::Interrupted => {}
                        Err(_) => {
                            up.ready.eof = true;
                            c.uout.consume(c.uout.len());
                            progress = true;
                        }
                    }
                }
            }
            if let Some(up) = c.upstream.as_mut() {
                if up.connected
                    && up.ready.readable
                    && !up.ready.eof
                    && c.uin.len() < MAX_BUF
                    && c.cout.len() < MAX_BUF
                {
                    match c.uin.read_from(&mut up.stream) {
                        Ok((0, _)) => {
                            up.ready.eof = true;
                            progress = true;
                        }
                        Ok((n, drained)) => {
                            if let Some(v) = c.exchange.as_ref().and_then(|x| x.visit.as_ref()) {
                                v.bytes_out(n);
                            }
                            up.ready.readable = !drained || up.ready.hup;
                            progress = true;
                        }
                        Err(e) if e.kind() == ErrorKind::WouldBlock => up.ready.readable = false,
                        Err(e) if e.kind() == ErrorKind::Interrupted => {}
                        Err(_) => {
                            up.ready.eof = true;
                            progress = true;
                        }
                    }
                }
            }

            // An idle attached upstream that closed or spoke out of turn is
            // of no further use: let it go now rather than at the next request.
            if c.upstream
                .as_ref()
                .is_some_and(|u| !u.in_use && (u.ready.eof || !c.uin.is_empty()))
            {
                if let Some(mut up) = c.upstream.take() {
                    let _ = self.poll.registry().deregister(up.stream.source());
                }
                c.uin.clear();
            }

            // Write to the client.
            if c.ready.writable && !c.cout.is_empty() {
                match c.cout.write_to(&mut c.client) {
                    Ok((_, short)) => {
                        c.ready.writable = !short;
                        progress = true;
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => c.ready.writable = false,
                    Err(e) if e.kind() == ErrorKind::Interrupted => {}
                    Err(_) => return false,
                }
            }

            if c.phase == Phase::Closing && c.cout.is_empty() {
                return false;
            }
            if !progress {
                return true;
            }
        }
    }

    /// A complete request head arrived: route it.
    fn start_request(&mut self, slot: usize, c: &mut Conn, head: RequestHead) {
        if self.published.generation() != self.snap.generation {
            self.snap = self.published.load();
        }
        let path = head.target.split('?').next().unwrap_or("/").to_string();
        let target = if c.local {
            Target::Management
        } else {
            router::route(&self.snap, head.host.as_deref(), &path)
        };
        let mut exchange = Exchange {
            req_framer: Framer::new(head.body),
            req_done: !head.body.has_body(),
            head,
            service: None,
            instance: None,
            visit: None,
            refusals: 0,
            tried: Vec::new(),
            upstream_head: Vec::new(),
            body_sent: false,
            resp_framer: None,
            resp_keep_alive: false,
            dechunk: false,
            resp_started: false,
            api_body: Vec::new(),
            api_status: None,
            request_timeout: Duration::from_secs(60),
        };
        c.deadline = None;
        if !matches!(target, Target::Management | Target::NotFound) && !c.cin.is_empty() {
            // Body bytes that came with the head are checked before anything
            // is forwarded, so a malformed body in the first read reaches no
            // app. Later bytes are checked as they stream.
            let mut probe = exchange.req_framer.clone();
            if let Err(e) = probe.scan(c.cin.bytes()) {
                c.exchange = Some(Box::new(exchange));
                let msg = e.to_string();
                self.fail(c, 400, &msg);
                return;
            }
        }
        match target {
            Target::Management => {
                let expect = exchange.head.expect_continue;
                let has_body = exchange.head.body.has_body();
                c.exchange = Some(Box::new(exchange));
                if has_body {
                    if expect && exchange_minor(c) >= 1 {
                        c.cout.extend(b"HTTP/1.1 100 Continue\r\n\r\n");
                    }
                    c.phase = Phase::ApiBody;
                    c.deadline = Some(Instant::now() + HEAD_TIMEOUT);
                    self.read_api_body(slot, c);
                } else {
                    self.handle_api(slot, c);
                }
            }
            Target::NotFound => {
                let host = exchange.head.host.clone().unwrap_or_default();
                c.exchange = Some(Box::new(exchange));
                self.respond_error(c, 404, &format!("no instance or service for host `{host}`"));
            }
            Target::Instance(index) => {
                c.exchange = Some(Box::new(exchange));
                self.go_to_instance(slot, c, index);
            }
            Target::Spawn { service, id } => {
                let key = InstanceKey { service, id };
                exchange.instance = Some(key.clone());
                c.exchange = Some(Box::new(exchange));
                // The supervisor creates it (or answers 404 past max_instances)
                // and replies within the service's startup_timeout.
                self.hold(
                    slot,
                    c,
                    Command::AwaitReady { key },
                    Duration::from_secs(300),
                );
            }
            Target::Service(service) => {
                exchange.service = Some(service.clone());
                c.exchange = Some(Box::new(exchange));
                match self.balancer.pick(&self.snap, &service, &[]) {
                    Some(index) => self.go_to_instance(slot, c, index),
                    None => self.respond_unavailable(
                        c,
                        &format!("no instance of `{service}` is available"),
                    ),
                }
            }
        }
    }

    /// Sends the request to instance `index` of the current snapshot: at once
    /// if it is running, else held until the supervisor says it is ready.
    fn go_to_instance(&mut self, slot: usize, c: &mut Conn, index: usize) {
        let view = &self.snap.instances[index];
        let (addr, state, startup) = (dest(view), view.state, view.startup_timeout);
        let key = InstanceKey {
            service: view.service.clone(),
            id: view.id.clone(),
        };
        let stats = view.stats.clone();
        if let Some(x) = c.exchange.as_mut() {
            x.request_timeout = view.request_timeout;
            x.tried.push(index);
            x.instance = Some(key.clone());
            // Replacing a visit (weighted retry) ends the old one unrecorded.
            x.visit = Some(Visit::new(stats));
        }
        match state {
            State::Running => self.connect(slot, c, addr),
            State::Failed => {
                self.respond_unavailable(c, &format!("instance {key} has failed"));
            }
            _ => self.hold(slot, c, Command::AwaitReady { key }, startup),
        }
    }

    /// Holds the request until the supervisor answers `cmd` (a wait for an
    /// instance to be ready). `timeout` is the instance's startup_timeout;
    /// the supervisor answers 504 itself, the loop's deadline is a backstop.
    fn hold(&mut self, slot: usize, c: &mut Conn, cmd: Command, timeout: Duration) {
        let reply = self.reply_to(slot, c);
        if self.supervisor.send(cmd, Some(reply)) {
            c.phase = Phase::Waiting;
            c.deadline = Some(Instant::now() + timeout + HOLD_SLACK);
            if let Some(x) = c.exchange.as_mut() {
                if x.head.expect_continue && !x.req_done && x.head.minor >= 1 && !x.body_sent {
                    // No upstream to ask yet: say 100 ourselves so the client
                    // sends the body while the instance starts, and take
                    // `Expect` off the forwarded request so the app does not
                    // answer a second 100.
                    c.cout.extend(b"HTTP/1.1 100 Continue\r\n\r\n");
                    x.head.expect_continue = false;
                    x.head
                        .headers
                        .retain(|h| !h.name.eq_ignore_ascii_case("expect"));
                    x.upstream_head.clear();
                }
            }
        } else {
            self.fail(c, 503, "the supervisor is not running");
        }
    }

    /// Where the supervisor's answer for this connection goes.
    fn reply_to(&self, slot: usize, c: &Conn) -> ReplyTo {
        ReplyTo {
            tx: self.replies_tx.clone(),
            waker: self.waker.clone(),
            conn: (u64::from(c.generation) << 32) as usize | slot,
        }
    }

    /// Opens (or reuses) a connection to `addr` and queues the request head.
    fn connect(&mut self, slot: usize, c: &mut Conn, addr: Dest) {
        self.connect_with(slot, c, addr, true);
    }

    /// `connect`; with `reuse` false, always on a new connection.
    fn connect_with(&mut self, slot: usize, c: &mut Conn, addr: Dest, reuse: bool) {
        // The connection kept from this client's last request, if it goes to
        // the same instance and is still sound: no syscall at all to reuse.
        let kept = reuse
            && c.upstream.as_ref().is_some_and(|up| {
                up.addr == addr && !up.in_use && up.connected && !up.ready.eof && c.uin.is_empty()
            });
        if kept {
            let up = c.upstream.as_mut().expect("checked just above");
            up.reused = true;
            up.in_use = true;
            self.queue_head(c);
            return;
        }
        self.detach_upstream(c);
        let registry = self.poll.registry();
        let pooled = if reuse {
            self.pool.take(registry, &addr)
        } else {
            None
        };
        let (stream, reused) = match pooled {
            Some(stream) => (stream, true),
            None => match UpStream::connect(&addr) {
                Ok(stream) => (stream, false),
                // A Unix socket refuses at once (or is gone while the app
                // restarts, or its accept queue is full for the moment): the
                // same as a refused TCP connect.
                Err(e)
                    if matches!(
                        e.kind(),
                        ErrorKind::ConnectionRefused | ErrorKind::NotFound | ErrorKind::WouldBlock
                    ) =>
                {
                    self.upstream_refused(slot, c);
                    return;
                }
                Err(e) => {
                    self.fail(c, 502, &format!("cannot connect to {addr}: {e}"));
                    return;
                }
            },
        };
        let mut up = Upstream {
            stream,
            addr: addr.clone(),
            connected: reused,
            reused,
            ready: Ready {
                readable: reused,
                writable: reused,
                eof: false,
                hup: false,
            },
            in_use: true,
        };
        if let Err(e) = registry.register(
            up.stream.source(),
            token(slot, KIND_UPSTREAM),
            Interest::READABLE | Interest::WRITABLE,
        ) {
            self.fail(c, 502, &format!("cannot watch connection to {addr}: {e}"));
            return;
        }
        c.upstream = Some(up);
        self.queue_head(c);
    }

    /// Queues the request head for the upstream and enters the proxy phase.
    fn queue_head(&mut self, c: &mut Conn) {
        let x = c
            .exchange
            .as_mut()
            .expect("connect is only called while serving a request");
        if x.upstream_head.is_empty() {
            let fwd = Forwarded {
                client_ip: c.peer_ip,
                proto: "http",
            };
            http::write_request_head(&x.head, &fwd, &mut x.upstream_head);
        }
        c.uin.clear();
        c.uout.clear();
        c.uout.extend(&x.upstream_head);
        c.phase = Phase::Proxy;
        c.deadline = Some(Instant::now() + x.request_timeout);
    }

    /// Drops the attached upstream connection: an idle sound one goes to the
    /// pool for other clients, anything else is closed.
    fn detach_upstream(&mut self, c: &mut Conn) {
        let Some(up) = c.upstream.take() else { return };
        let registry = self.poll.registry();
        if !up.in_use && up.connected && !up.ready.eof && c.uin.is_empty() {
            let addr = up.addr;
            self.pool
                .put(registry, up.stream, addr, Instant::now(), |s| {
                    token(s, KIND_POOL)
                });
        } else {
            let mut stream = up.stream;
            let _ = registry.deregister(stream.source());
        }
        c.uin.clear();
    }

    /// Drops the upstream if the current exchange was using it (it is in an
    /// unknown state after an error); an idle attached one is kept.
    fn drop_used_upstream(&mut self, c: &mut Conn) {
        if c.upstream.as_ref().is_some_and(|u| u.in_use) {
            if let Some(mut up) = c.upstream.take() {
                let _ = self.poll.registry().deregister(up.stream.source());
            }
            c.uin.clear();
            c.uout.clear();
        }
    }

    /// The upstream refused the connection (or a reused one was dead).
    fn upstream_refused(&mut self, slot: usize, c: &mut Conn) {
        let addr = c.upstream.as_ref().map(|u| u.addr.clone());
        if let Some(mut up) = c.upstream.take() {
            let _ = self.poll.registry().deregister(up.stream.source());
        }
        let x = c
            .exchange
            .as_mut()
            .expect("an upstream exists only while serving a request");
        if x.body_sent {
            self.fail(c, 502, "upstream closed the connection");
            return;
        }
        if let Some(service) = x.service.clone() {
            // Weighted routing: skip an instance that refuses and try the next.
            let tried = x.tried.clone();
            if let Some(index) = self.balancer.pick(&self.snap, &service, &tried) {
                self.go_to_instance(slot, c, index);
                return;
            }
        }
        // The instance probably just crashed: hold the request while the
        // supervisor notices and restarts it, rather than answer 502.
        x.refusals += 1;
        if x.refusals <= MAX_REFUSALS {
            if let Some(key) = x.instance.clone() {
                let startup = self
                    .snap
                    .get(&key.service, &key.id)
                    .map_or(Duration::from_secs(10), |v| v.startup_timeout);
                self.hold(slot, c, Command::Refused { key }, startup);
                return;
            }
        }
        let addr = addr.map(|a| a.to_string()).unwrap_or_default();
        self.fail(
            c,
            502,
            &format!("instance at {addr} refused the connection"),
        );
    }

    /// Moves request body and response bytes along. Returns whether anything moved.
    fn proxy_step(&mut self, slot: usize, c: &mut Conn) -> bool {
        let mut progress = false;
        let x = c.exchange.as_mut().expect("proxy phase has an exchange");

        // Request body: client -> upstream, as framed. Only once connected:
        // until then the body stays with the client side, so a refused
        // connection can be retried elsewhere without losing it.
        let connected = c.upstream.as_ref().is_some_and(|u| u.connected);
        if connected && !x.req_done && !c.cin.is_empty() && c.uout.len() < MAX_BUF {
            match x.req_framer.scan(c.cin.bytes()) {
                Ok(scan) => {
                    if scan.used > 0 {
                        c.uout.take_from(&mut c.cin, scan.used);
                        x.body_sent = true;
                        progress = true;
                    }
                    if scan.done {
                        x.req_done = true;
                        progress = true;
                    }
                    if progress && !x.resp_started {
                        // The wait for the response head counts from the last
                        // body byte, so a long upload is not cut short.
                        c.deadline = Some(Instant::now() + x.request_timeout);
                    }
                }
                Err(e) => {
                    let msg = e.to_string();
                    self.fail(c, 400, &msg);
                    return true;
                }
            }
        }
        if !x.req_done && c.ready.eof && c.cin.is_empty() {
            // The client went away mid-body.
            c.phase = Phase::Closing;
            c.cout = Default::default();
            return true;
        }

        // Response head.
        if x.resp_framer.is_none() && !c.uin.is_empty() {
            let head_req = x.head.method == "HEAD";
            match http::parse_response(c.uin.bytes(), head_req) {
                Ok(Some((resp, len))) => {
                    progress = true;
                    if resp.status >= 100 && resp.status < 200 && resp.status != 101 {
                        // Interim response: relay to 1.1 clients, then wait for the real one.
                        if x.head.minor >= 1 {
                            c.cout.extend(&c.uin.bytes()[..len]);
                        }
                        c.uin.consume(len);
                        return true;
                    }
                    c.uin.consume(len);
                    x.resp_started = true;
                    if let Some(v) = x.visit.as_mut() {
                        v.status = resp.status;
                    }
                    c.deadline = None;
                    if resp.status == 101 && x.head.upgrade {
                        self.scratch.clear();
                        http::write_response_head(
                            &resp,
                            x.head.minor,
                            true,
                            false,
                            &mut self.scratch,
                        );
                        c.cout.extend(&self.scratch);
                        c.phase = Phase::Tunnel;
                        return true;
                    }
                    let dechunk = x.head.minor == 0 && resp.body == BodyKind::Chunked;
                    // An answer before the whole request body arrived ends the
                    // connection: the rest of the body cannot be told apart
                    // from a next request.
                    let client_keep = x.head.keep_alive
                        && x.req_done
                        && !c.close_after
                        && resp.body != BodyKind::Close
                        && !dechunk;
                    x.resp_keep_alive = resp.keep_alive;
                    x.dechunk = dechunk;
                    if !client_keep {
                        c.close_after = true;
                    }
                    self.scratch.clear();
                    http::write_response_head(
                        &resp,
                        x.head.minor,
                        client_keep,
                        dechunk,
                        &mut self.scratch,
                    );
                    c.cout.extend(&self.scratch);
                    x.resp_framer = Some(Framer::new(resp.body));
                }
                Ok(None) => {}
                Err(e) => {
                    warn!("front", "bad response from upstream: {e}");
                    self.fail(c, 502, "the instance sent a malformed response");
                    return true;
                }
            }
        }

        // Response body: upstream -> client, as framed.
        let x = c.exchange.as_mut().expect("proxy phase has an exchange");
        if let Some(framer) = x.resp_framer.as_mut() {
            if !framer.is_done() && !c.uin.is_empty() && c.cout.len() < MAX_BUF {
                let result = if x.dechunk {
                    let mut out = Vec::new();
                    let r = framer.decode(c.uin.bytes(), &mut out);
                    c.cout.extend(&out);
                    r.inspect(|scan| c.uin.consume(scan.used))
                } else {
                    framer
                        .scan(c.uin.bytes())
                        .inspect(|scan| c.cout.take_from(&mut c.uin, scan.used))
                };
                match result {
                    Ok(scan) => progress |= scan.used > 0 || scan.done,
                    Err(e) => {
                        warn!("front", "bad response body from upstream: {e}");
                        c.close_after = true;
                        c.phase = Phase::Closing;
                        return true;
                    }
                }
            }
            if framer.is_done() {
                if x.req_done {
                    self.finish_exchange(slot, c);
                    return true;
                }
                // The app answered before reading the whole body: the rest of
                // the body cannot be told from a next request, so close after.
                c.close_after = true;
                x.resp_keep_alive = false;
                self.finish_exchange(slot, c);
                return true;
            }
        }

        // Upstream closed.
        let up_eof = c.upstream.as_ref().is_some_and(|u| u.ready.eof);
        if up_eof && c.uin.is_empty() {
            let x = c.exchange.as_mut().expect("proxy phase has an exchange");
            match x.resp_framer.as_ref() {
                None => {
                    let reused = c.upstream.as_ref().is_some_and(|u| u.reused);
                    if reused && !x.body_sent {
                        // A pooled connection the app had closed: retry on a fresh one.
                        let addr = c
                            .upstream
                            .as_ref()
                            .map(|u| u.addr.clone())
                            .expect("checked above");
                        if let Some(mut up) = c.upstream.take() {
                            let _ = self.poll.registry().deregister(up.stream.source());
                        }
                        self.connect_fresh(slot, c, addr);
                        return true;
                    }
                    if !x.body_sent && matches!(x.head.method.as_str(), "GET" | "HEAD" | "OPTIONS")
                    {
                        // Reset before any answer: the app died with the
                        // request (a killed multi-threaded app keeps its
                        // socket until its last thread exits). A safe request
                        // is retried like a refused connection: the next
                        // instance, or held until this one is back.
                        self.upstream_refused(slot, c);
                        return true;
                    }
                    self.fail(
                        c,
                        502,
                        "the instance closed the connection without answering",
                    );
                    return true;
                }
                Some(framer) => {
                    let close_delimited = !framer.is_done();
                    if close_delimited {
                        // Close-delimited bodies end here; a length or chunked
                        // body cut short cannot be repaired: close the client too.
                        c.close_after = true;
                        x.resp_keep_alive = false;
                        self.finish_exchange(slot, c);
                        return true;
                    }
                }
            }
        }
        progress
    }

    /// Retries on a new connection (a kept or pooled one turned out closed).
    fn connect_fresh(&mut self, slot: usize, c: &mut Conn, addr: Dest) {
        self.connect_with(slot, c, addr, false);
    }

    /// The response is complete: pool the upstream if it can be reused, then
    /// wait for the next request or close.
    fn finish_exchange(&mut self, _slot: usize, c: &mut Conn) {
        let x = c
            .exchange
            .take()
            .expect("finishing an exchange that exists");
        let reusable = x.resp_keep_alive && x.req_done && c.uin.is_empty();
        match c.upstream.as_mut() {
            // Kept attached for this client's next request (see `connect`).
            Some(up) if reusable && !up.ready.eof => up.in_use = false,
            Some(_) => {
                if let Some(mut up) = c.upstream.take() {
                    let _ = self.poll.registry().deregister(up.stream.source());
                }
            }
            None => {}
        }
        c.uin.clear();
        c.uout.clear();
        c.served += 1;
        let now = Instant::now();
        c.idle_since = now;
        if c.close_after {
            c.phase = Phase::Closing;
            c.deadline = Some(now + IDLE_TIMEOUT);
            return;
        }
        c.phase = Phase::Head;
        c.deadline = Some(now + IDLE_TIMEOUT);
    }

    /// After `101`: bytes both ways until both sides are done.
    fn tunnel_step(&mut self, c: &mut Conn) -> bool {
        let mut progress = false;
        if !c.cin.is_empty() && c.uout.len() < MAX_BUF {
            let n = c.cin.len();
            c.uout.take_from(&mut c.cin, n);
            progress = true;
        }
        if !c.uin.is_empty() && c.cout.len() < MAX_BUF {
            let n = c.uin.len();
            c.cout.take_from(&mut c.uin, n);
            progress = true;
        }
        let up_eof = c.upstream.as_ref().is_none_or(|u| u.ready.eof);
        if up_eof && c.uin.is_empty() {
            // The app is done: finish writing to the client, then close.
            c.phase = Phase::Closing;
            c.close_after = true;
            return true;
        }
        if c.ready.eof && c.cin.is_empty() && c.uout.is_empty() {
            if let Some(up) = c.upstream.as_ref() {
                up.stream.shutdown_write();
            }
        }
        progress
    }

    fn read_api_body(&mut self, slot: usize, c: &mut Conn) -> bool {
        let x = c.exchange.as_mut().expect("api body phase has an exchange");
        match x.req_framer.decode(c.cin.bytes(), &mut x.api_body) {
            Ok(scan) => {
                c.cin.consume(scan.used);
                if x.api_body.len() > MAX_API_BODY {
                    self.fail(c, 413, "request body too large for the API (1 MiB at most)");
                    return true;
                }
                if scan.done {
                    x.req_done = true;
                    self.handle_api(slot, c);
                    return true;
                }
                scan.used > 0
            }
            Err(e) => {
                let msg = e.to_string();
                self.fail(c, 400, &msg);
                true
            }
        }
    }

    fn handle_api(&mut self, slot: usize, c: &mut Conn) {
        if self.published.generation() != self.snap.generation {
            self.snap = self.published.load();
        }
        let x = c.exchange.as_ref().expect("api request has an exchange");
        let (path, query) = match x.head.target.split_once('?') {
            Some((p, q)) => (p, q),
            None => (x.head.target.as_str(), ""),
        };
        let authorization = x.head.header("authorization");
        let req = ApiRequest {
            method: &x.head.method,
            path,
            query,
            authorization,
            body: &x.api_body,
            local: c.local,
            peer: c.peer_ip,
            forwarded_for: x.head.header("x-forwarded-for"),
        };
        let action = self.api.handle(&req, &self.snap);
        match action {
            Action::Respond(resp) => self.respond(c, resp),
            Action::Stream(what) => {
                let id = NEXT_STREAM_ID.fetch_add(1, Ordering::Relaxed);
                let reply = self.reply_to(slot, c);
                c.stream_id = Some(id);
                if self
                    .supervisor
                    .send(Command::Subscribe { id, what }, Some(reply))
                {
                    c.phase = Phase::Waiting;
                    c.deadline = None;
                } else {
                    c.stream_id = None;
                    self.fail(c, 503, "the supervisor is not running");
                }
            }
            Action::Ask {
                cmd,
                success_status,
            } => {
                let reply = ReplyTo {
                    tx: self.replies_tx.clone(),
                    waker: self.waker.clone(),
                    conn: (u64::from(c.generation) << 32) as usize | slot,
                };
                if self.supervisor.send(cmd, Some(reply)) {
                    if let Some(x) = c.exchange.as_mut() {
                        x.api_status = Some(success_status);
                    }
                    c.phase = Phase::Waiting;
                    c.deadline = None;
                } else {
                    self.fail(c, 503, "the supervisor is not running");
                }
            }
        }
    }

    fn on_reply(&mut self, slot: usize, c: &mut Conn, reply: Reply) {
        if c.stream_id.is_some() {
            match reply {
                Reply::Stream(message) => {
                    if c.phase == Phase::Waiting {
                        // The supervisor took the subscription: start the stream.
                        c.cout.extend(
                            b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\
                              Cache-Control: no-cache\r\nTransfer-Encoding: chunked\r\n\r\n",
                        );
                        c.phase = Phase::Streaming;
                        c.exchange = None;
                        c.close_after = true;
                        c.deadline = None;
                    }
                    write_chunk(c, &message);
                    c.last_beat = Instant::now();
                }
                Reply::Error { status, message } if c.phase == Phase::Waiting => {
                    c.stream_id = None;
                    self.fail(c, status, &message);
                }
                _ => {}
            }
            return;
        }
        let api_status = c.exchange.as_ref().and_then(|x| x.api_status);
        if let Some(status) = api_status {
            let resp = api::reply_response(reply, status);
            self.respond(c, resp);
            return;
        }
        match reply {
            Reply::Ready(addr) => {
                if self.published.generation() != self.snap.generation {
                    self.snap = self.published.load();
                }
                let mut to = Dest::Tcp(addr);
                if let Some(x) = c.exchange.as_mut() {
                    let view = x
                        .instance
                        .as_ref()
                        .and_then(|k| self.snap.get(&k.service, &k.id));
                    if let Some(view) = view {
                        // The snapshot says whether it listens on its socket.
                        to = dest(view);
                        if x.visit.is_none() {
                            // An autospawned instance: it exists now.
                            x.request_timeout = view.request_timeout;
                            x.visit = Some(Visit::new(view.stats.clone()));
                        }
                    }
                }
                self.connect(slot, c, to);
            }
            Reply::Error { status, message } => {
                if status == 503 {
                    self.respond_unavailable(c, &message);
                } else {
                    self.fail(c, status, &message);
                }
            }
            Reply::Done(_) | Reply::Stream(_) => {
                self.fail(c, 500, "unexpected reply from the supervisor")
            }
        }
    }

    /// Writes a complete front-made response and moves on to the next request.
    fn respond(&mut self, c: &mut Conn, resp: Response) {
        let (minor, keep, head_only) = match c.exchange.as_ref() {
            Some(x) => (
                x.head.minor,
                x.head.keep_alive && x.req_done && !c.close_after,
                x.head.method == "HEAD",
            ),
            None => (1, false, false),
        };
        write_response(c, &resp, minor, keep, head_only);
        if !keep {
            c.close_after = true;
        }
        if let Some(v) = c.exchange.as_mut().and_then(|x| x.visit.as_mut()) {
            if v.status == 0 {
                v.status = resp.status;
            }
        }
        if resp.status >= 400 {
            self.stats.refused(resp.status);
        }
        c.exchange = None;
        c.served += 1;
        c.idle_since = Instant::now();
        self.drop_used_upstream(c);
        if c.close_after {
            c.phase = Phase::Closing;
            c.deadline = Some(Instant::now() + IDLE_TIMEOUT);
        } else {
            c.phase = Phase::Head;
            c.deadline = Some(Instant::now() + IDLE_TIMEOUT);
        }
    }

    /// A JSON error; keeps the connection when the request was fully read.
    fn respond_error(&mut self, c: &mut Conn, status: u16, message: &str) {
        let resp = Response::error(status, message);
        self.respond(c, resp);
    }

    /// 503 with Retry-After.
    fn respond_unavailable(&mut self, c: &mut Conn, message: &str) {
        let mut resp = Response::error(503, message);
        resp.headers.push(("Retry-After", "5".to_string()));
        self.respond(c, resp);
    }

    /// An error after which the connection cannot continue: answer (unless
    /// part of a response already went out) and close.
    fn fail(&mut self, c: &mut Conn, status: u16, message: &str) {
        debug!("front", "answering {status}: {message}");
        let started = c.exchange.as_ref().is_some_and(|x| x.resp_started);
        c.close_after = true;
        if started {
            c.exchange = None;
            self.drop_used_upstream(c);
            c.phase = Phase::Closing;
            return;
        }
        let mut resp = Response::error(status, message);
        if status == 503 {
            resp.headers.push(("Retry-After", "5".to_string()));
        }
        self.respond(c, resp);
    }
}

fn exchange_minor(c: &Conn) -> u8 {
    c.exchange.as_ref().map_or(1, |x| x.head.minor)
}

/// Where to reach an instance: its Unix socket when the app listens there.
fn dest(view: &crate::supervisor::InstanceView) -> Dest {
    match &view.socket {
        Some(path) => Dest::Unix(path.clone()),
        None => Dest::Tcp(view.addr),
    }
}

/// Appends one chunk of a chunked body.
fn write_chunk(c: &mut Conn, data: &[u8]) {
    if data.is_empty() {
        return;
    }
    c.cout.extend(format!("{:x}\r\n", data.len()).as_bytes());
    c.cout.extend(data);
    c.cout.extend(b"\r\n");
}

/// Serialises a front-made response.
fn write_response(c: &mut Conn, resp: &Response, minor: u8, keep_alive: bool, head_only: bool) {
    let mut out = Vec::with_capacity(256 + resp.body.len());
    let version = if minor == 0 { "HTTP/1.0" } else { "HTTP/1.1" };
    out.extend_from_slice(
        format!("{version} {} {}\r\n", resp.status, reason(resp.status)).as_bytes(),
    );
    out.extend_from_slice(format!("Content-Type: {}\r\n", resp.content_type).as_bytes());
    out.extend_from_slice(format!("Content-Length: {}\r\n", resp.body.len()).as_bytes());
    for (name, value) in &resp.headers {
        out.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
    }
    if resp.status == 401
        && !resp
            .headers
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case("www-authenticate"))
    {
        out.extend_from_slice(b"WWW-Authenticate: Bearer\r\n");
    }
    if !keep_alive {
        out.extend_from_slice(b"Connection: close\r\n");
    } else if minor == 0 {
        out.extend_from_slice(b"Connection: keep-alive\r\n");
    }
    out.extend_from_slice(b"\r\n");
    if !head_only {
        out.extend_from_slice(&resp.body);
    }
    c.cout.extend(&out);
}

/// The reason phrase for statuses the front produces.
pub fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        409 => "Conflict",
        411 => "Length Required",
        413 => "Content Too Large",
        414 => "URI Too Long",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Unknown",
    }
}
