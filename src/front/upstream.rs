//! One loop's pool of idle keep-alive connections to instances.
//!
//! An idle connection stays registered for readability: any event on it (the
//! app closed it, or sent bytes nobody asked for) means it is no longer
//! usable, and it is dropped. Connections idle longer than `MAX_IDLE` are
//! closed on the loop's tick.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use mio::{Interest, Registry, Token};

use super::conn::Dest;
use crate::net::MioStream;

/// Idle connections kept per instance address.
const PER_ADDR: usize = 64;
/// How long an idle upstream connection is kept.
pub const MAX_IDLE: Duration = Duration::from_secs(30);

struct Idle {
    stream: MioStream,
    addr: Dest,
    since: Instant,
}

/// Pooled connections, addressed by slot for the poll's tokens.
#[derive(Default)]
pub struct Pool {
    slots: Vec<Option<Idle>>,
    free: Vec<usize>,
    by_addr: HashMap<Dest, Vec<usize>>,
}

impl Pool {
    /// Keeps `stream` for reuse. `token` maps a slot to its poll token.
    pub fn put(
        &mut self,
        registry: &Registry,
        mut stream: MioStream,
        addr: Dest,
        now: Instant,
        token: impl Fn(usize) -> Token,
    ) {
        let list = self.by_addr.entry(addr.clone()).or_default();
        if list.len() >= PER_ADDR {
            let _ = registry.deregister(&mut stream);
            return;
        }
        let slot = match self.free.pop() {
            Some(slot) => slot,
            None => {
                self.slots.push(None);
                self.slots.len() - 1
            }
        };
        if registry
            .reregister(&mut stream, token(slot), Interest::READABLE)
            .is_err()
        {
            self.free.push(slot);
            return;
        }
        list.push(slot);
        self.slots[slot] = Some(Idle {
            stream,
            addr,
            since: now,
        });
    }

    /// Takes the most recently used idle connection to `addr`. It stays
    /// registered under its pool token: the taker moves it to its own
    /// token and interests with one `reregister` (EPOLL_CTL_MOD), not a
    /// deregister and a register.
    pub fn take(&mut self, addr: &Dest) -> Option<MioStream> {
        let list = self.by_addr.get_mut(addr)?;
        let slot = list.pop()?;
        let idle = self.slots[slot]
            .take()
            .expect("pool index lists only filled slots");
        self.free.push(slot);
        Some(idle.stream)
    }

    /// An event on an idle connection: it closed or misbehaved; drop it.
    pub fn on_event(&mut self, registry: &Registry, slot: usize) {
        self.remove(registry, slot);
    }

    /// Closes connections idle longer than MAX_IDLE.
    pub fn expire(&mut self, registry: &Registry, now: Instant) {
        let old: Vec<usize> = self
            .slots
            .iter()
            .enumerate()
            .filter_map(|(i, s)| match s {
                Some(idle) if now.duration_since(idle.since) > MAX_IDLE => Some(i),
                _ => None,
            })
            .collect();
        for slot in old {
            self.remove(registry, slot);
        }
    }

    /// Whether no idle connection is kept (the loop then needs no tick).
    pub fn is_empty(&self) -> bool {
        self.free.len() == self.slots.len()
    }

    fn remove(&mut self, registry: &Registry, slot: usize) {
        let Some(mut idle) = self.slots.get_mut(slot).and_then(Option::take) else {
            return;
        };
        let _ = registry.deregister(&mut idle.stream);
        if let Some(list) = self.by_addr.get_mut(&idle.addr) {
            list.retain(|&s| s != slot);
        }
        self.free.push(slot);
    }
}
