//! Evening out client connections between the front's loops.
//!
//! The kernel deals new connections to the loops' SO_REUSEPORT listeners
//! by a hash of their addresses, so long-lived keep-alive connections end
//! up unevenly spread (64 of them split 28/36 as often as not), and the
//! clients of the busier loop wait longer for every answer. Each loop
//! counts the connections it holds here; a loop that accepts a plain
//! connection while it holds more than `SLACK` above the least busy loop
//! passes the new connection to that loop's inbox and wakes it, before
//! reading a byte from it. HTTPS connections stay where they were accepted.
//!
//! Touched on accept and close only, never per request: each loop's count
//! sits on a cache line of its own.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use mio::Waker;

use super::worker::Handed;

/// How many more connections than the least busy loop a loop keeps before
/// it passes new ones on.
const SLACK: usize = 1;

/// One loop's count of client connections, on a cache line of its own.
#[derive(Debug, Default)]
#[repr(align(128))]
struct Load(AtomicUsize);

/// The loops' connection counts and inboxes.
pub struct Share {
    loads: Box<[Load]>,
    inboxes: Box<[Mutex<Vec<Handed>>]>,
    wakers: Box<[Arc<Waker>]>,
}

impl Share {
    /// For the loops woken by `wakers`, loop `i` by `wakers[i]`.
    pub fn new(wakers: Vec<Arc<Waker>>) -> Share {
        let n = wakers.len();
        Share {
            loads: (0..n).map(|_| Load::default()).collect(),
            inboxes: (0..n).map(|_| Mutex::new(Vec::new())).collect(),
            wakers: wakers.into_boxed_slice(),
        }
    }

    /// Loop `index` holds one more connection.
    pub fn opened(&self, index: usize) {
        if let Some(l) = self.loads.get(index) {
            l.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Loop `index` holds one connection fewer.
    pub fn closed(&self, index: usize) {
        if let Some(l) = self.loads.get(index) {
            l.0.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// The loop that should take a connection loop `index` just accepted:
    /// the least busy one, when `index` holds more than `SLACK` above it.
    pub fn pick(&self, index: usize) -> Option<usize> {
        let mine = self.loads.get(index)?.0.load(Ordering::Relaxed);
        let (least, load) = self
            .loads
            .iter()
            .map(|l| l.0.load(Ordering::Relaxed))
            .enumerate()
            .filter(|&(i, _)| i != index)
            .min_by_key(|&(_, load)| load)?;
        (mine > load + SLACK).then_some(least)
    }

    /// Passes `conn` to loop `to`, counted there from now on, and wakes it.
    pub fn send(&self, to: usize, conn: Handed) {
        self.opened(to);
        self.inboxes[to]
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(conn);
        if let Err(e) = self.wakers[to].wake() {
            warn!("front", "wake loop {to} for a passed connection: {e}");
        }
    }

    /// The connections passed to loop `index`, no longer counted as waiting
    /// (the loop counts each again as it takes it in).
    pub fn take(&self, index: usize) -> Vec<Handed> {
        let Some(inbox) = self.inboxes.get(index) else {
            return Vec::new();
        };
        let mut inbox = inbox.lock().unwrap_or_else(|e| e.into_inner());
        if inbox.is_empty() {
            return Vec::new();
        }
        let taken = std::mem::take(&mut *inbox);
        drop(inbox);
        for _ in &taken {
            self.closed(index);
        }
        taken
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mio::{Poll, Token};

    fn share(n: usize) -> (Vec<Poll>, Share) {
        let polls: Vec<Poll> = (0..n).map(|_| Poll::new().expect("a poll")).collect();
        let wakers = polls
            .iter()
            .map(|p| Arc::new(Waker::new(p.registry(), Token(0)).expect("a waker")))
            .collect();
        (polls, Share::new(wakers))
    }

    fn handed() -> Handed {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let client =
            std::net::TcpStream::connect(listener.local_addr().expect("addr")).expect("connect");
        client.set_nonblocking(true).expect("non-blocking");
        Handed {
            stream: crate::net::Stream::Tcp(mio::net::TcpStream::from_std(client)),
            peer_ip: std::net::Ipv4Addr::LOCALHOST.into(),
            local: false,
        }
    }

    #[test]
    fn a_loop_passes_connections_on_only_when_it_holds_more_than_the_slack() {
        let (_polls, s) = share(3);
        assert_eq!(s.pick(0), None, "all loops are equal");
        s.opened(0);
        assert_eq!(
            s.pick(0),
            None,
            "one above the least busy is within the slack"
        );
        s.opened(0);
        s.opened(1);
        // Loop 0 holds 2, loop 1 holds 1, loop 2 none: loop 2 gets it.
        assert_eq!(s.pick(0), Some(2));
        assert_eq!(s.pick(1), None);
        s.closed(0);
        assert_eq!(s.pick(0), None);
    }

    #[test]
    fn one_loop_never_passes_anything_on() {
        let (_polls, s) = share(1);
        for _ in 0..10 {
            s.opened(0);
        }
        assert_eq!(s.pick(0), None);
    }

    #[test]
    fn a_passed_connection_counts_for_its_new_loop_and_wakes_it() {
        let (mut polls, s) = share(2);
        for _ in 0..3 {
            s.opened(0);
        }
        let to = s.pick(0).expect("loop 0 is busier");
        assert_eq!(to, 1);
        s.send(to, handed());
        // Counted at once, before loop 1 takes it: the next accept on loop
        // 0 sees 3 against 1 and passes that one on too.
        assert_eq!(s.pick(0), Some(1));
        s.send(to, handed());
        assert_eq!(s.pick(0), None, "3 against 2");
        let mut events = mio::Events::with_capacity(8);
        polls[1]
            .poll(&mut events, Some(std::time::Duration::from_secs(10)))
            .expect("poll");
        assert!(!events.is_empty(), "loop 1 was woken");
        let taken = s.take(1);
        assert_eq!(taken.len(), 2);
        assert!(s.take(1).is_empty());
        assert!(s.take(0).is_empty());
        // Taken in, loop 1 counts them as its own.
        s.opened(1);
        s.opened(1);
        assert_eq!(s.pick(0), None);
        assert_eq!(s.pick(1), None);
    }
}
