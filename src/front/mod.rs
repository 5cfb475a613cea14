//! The front: N mio event loops proxying HTTP/1.1 by Host, and the management
//! API, dashboard and metrics on the root domain and on `ten.sock`.
//!
//! Each loop owns its listener (SO_REUSEPORT), its connections and its
//! upstream pool; a loop holding more connections than another passes new
//! ones to it (`share.rs`). It reads routes from `Published` and talks to
//! the supervisor by message only; it never blocks.

#[cfg(test)]
mod alloc_tests;
pub mod api;
pub mod conn;
pub mod fault;
pub mod listeners;
pub mod machine;
pub mod router;
pub mod share;
pub mod stats;
pub mod tls;
pub mod upstream;
pub mod worker;

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use mio::{Poll, Waker};

use crate::state::tokens::{TokenStore, TokenUsage, UsageFlusher};
use crate::supervisor::{Published, SupervisorHandle};

/// How often "last used" of tokens is written to the tokens file.
const TOKEN_USAGE_FLUSH: std::time::Duration = std::time::Duration::from_secs(60);

/// What the front needs to start.
pub struct FrontOptions {
    pub listen: SocketAddr,
    /// Number of loops; 0 = one per CPU.
    pub workers: usize,
    /// Where to listen for the local API (`ten.sock`).
    pub socket: Option<PathBuf>,
    pub data_dir: PathBuf,
    /// With `[settings.tls]`: where HTTPS listens and its certificates.
    pub tls: Option<TlsOptions>,
    /// Listening sockets a drained front or the previous image of the
    /// server handed on: those at the configured addresses are used
    /// instead of binding, the others closed.
    pub handed: listeners::Listeners,
    /// The server thread's mailbox, for `POST /api/upgrade`.
    pub control: Option<Arc<crate::upgrade::Control>>,
}

/// The HTTPS listener's address and the certificates its handshakes use.
pub struct TlsOptions {
    pub listen: SocketAddr,
    pub certs: Arc<tls::Certs>,
}

/// The running loops.
pub struct Front {
    /// The address actually bound (the port is known even when 0 was asked).
    pub addr: SocketAddr,
    /// The HTTPS address actually bound, with `[settings.tls]`.
    pub https_addr: Option<SocketAddr>,
    stop: Arc<AtomicBool>,
    /// Set by `drain`: the loops stop accepting and end once their
    /// connections are done.
    drain: Arc<AtomicBool>,
    wakers: Vec<Arc<Waker>>,
    threads: Vec<JoinHandle<worker::Returned>>,
    socket: Option<PathBuf>,
    /// Writes when tokens were last used, once a minute and at the end.
    usage_flusher: UsageFlusher,
}

/// Why the front could not start.
#[derive(Debug)]
pub struct FrontError {
    pub what: String,
    pub source: io::Error,
}

impl std::fmt::Display for FrontError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.what)
    }
}

impl std::error::Error for FrontError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

fn err(what: String) -> impl FnOnce(io::Error) -> FrontError {
    move |source| FrontError { what, source }
}

/// Binds the listeners and starts the loops.
pub fn start(
    opts: FrontOptions,
    published: Arc<Published>,
    supervisor: SupervisorHandle,
) -> Result<Front, FrontError> {
    let workers = if opts.workers == 0 {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    } else {
        opts.workers
    };
    let listeners::Listeners {
        http,
        https,
        unix: handed_unix,
        clients,
    } = opts.handed;
    let mut clients = listeners::deal(clients, workers).into_iter();
    let bind = |e: listeners::BindError| FrontError {
        what: e.what,
        source: e.source,
    };
    let (listeners, addr) = listeners::settle(opts.listen, workers, http).map_err(bind)?;
    // The HTTPS listeners, the same way.
    let mut https_addr = None;
    let mut tls_listeners = Vec::new();
    let mut tls_config = None;
    if let Some(t) = &opts.tls {
        let (bound, at) = listeners::settle(t.listen, workers, https).map_err(bind)?;
        tls_listeners = bound;
        https_addr = Some(at);
        let config = tls::server_config(t.certs.clone()).map_err(|e| FrontError {
            what: "set up TLS".into(),
            source: io::Error::other(e),
        })?;
        tls_config = Some((config, t.certs.clone(), at.port()));
    } else {
        for l in https {
            if let Ok(a) = l.local_addr() {
                info!("front", "closing the listener on {a}: no longer configured");
            }
        }
    }
    let mut tls_listeners = listeners::deal(tls_listeners, workers).into_iter();
    let mut unix = match &opts.socket {
        Some(path) => Some(listeners::settle_unix(path, handed_unix).map_err(bind)?),
        None => None,
    };
    let stop = Arc::new(AtomicBool::new(false));
    let drain = Arc::new(AtomicBool::new(false));
    let stats = Arc::new(stats::FrontStats::default());
    let max_conns = connection_cap(workers);
    let token_usage = Arc::new(TokenUsage::default());
    let throttle = Arc::new(api::throttle::Throttle::default());
    let asks = Arc::new(api::allowed::AskLimit::default());
    let usage_flusher = UsageFlusher::start(
        token_usage.clone(),
        opts.data_dir.clone(),
        TOKEN_USAGE_FLUSH,
    )
    .map_err(err("start the token usage thread".into()))?;
    // Every loop's poll and waker first: each loop may wake the others
    // when it passes them a connection.
    let mut polls = Vec::new();
    let mut wakers = Vec::new();
    for _ in 0..workers {
        let poll = Poll::new().map_err(err("create a poll".into()))?;
        let waker = Arc::new(
            Waker::new(poll.registry(), worker::WAKER).map_err(err("create a waker".into()))?,
        );
        polls.push(poll);
        wakers.push(waker);
    }
    let share = Arc::new(share::Share::new(wakers.clone()));
    let mut threads = Vec::new();
    let loops = listeners::deal(listeners, workers)
        .into_iter()
        .zip(polls)
        .zip(wakers.iter().cloned());
    for (index, ((group, poll), waker)) in loops.enumerate() {
        let mut api = api::Api::new(opts.data_dir.clone());
        api.front = stats.clone();
        api.tokens = TokenStore::with_usage(&opts.data_dir, token_usage.clone());
        api.throttle = throttle.clone();
        api.asks = asks.clone();
        api.tls = opts.tls.as_ref().map(|t| t.certs.clone());
        api.upgrade = opts.control.clone();
        let setup = worker::WorkerSetup {
            index,
            listeners: group,
            clients: clients.next().unwrap_or_default(),
            unix: if index == 0 { unix.take() } else { None },
            published: published.clone(),
            supervisor: supervisor.clone(),
            api,
            stop: stop.clone(),
            drain: drain.clone(),
            poll,
            waker: waker.clone(),
            stats: stats.clone(),
            max_conns,
            beat: crate::notify::heartbeat(&format!("front-{index}"), waker.clone()),
            tls: match (&tls_config, tls_listeners.next()) {
                (Some((config, certs, port)), Some(listeners)) => Some(worker::WorkerTls {
                    listeners,
                    config: config.clone(),
                    certs: certs.clone(),
                    port: *port,
                }),
                _ => None,
            },
            share: share.clone(),
        };
        let w = worker::Worker::new(setup).map_err(err("register the listener".into()))?;
        let thread = std::thread::Builder::new()
            .name(format!("front-{index}"))
            .spawn(move || w.run())
            .map_err(err("start a front thread".into()))?;
        threads.push(thread);
    }
    Ok(Front {
        addr,
        https_addr,
        stop,
        drain,
        wakers,
        threads,
        socket: opts.socket,
        usage_flusher,
    })
}

impl Front {
    /// Stops the loops (open connections are dropped), writes when tokens
    /// were last used, and removes `ten.sock`.
    pub fn stop(self) {
        self.stop.store(true, Ordering::Release);
        for w in &self.wakers {
            let _ = w.wake();
        }
        for t in self.threads {
            let _ = t.join();
        }
        self.usage_flusher.stop();
        if let Some(path) = self.socket {
            let _ = std::fs::remove_file(path);
        }
    }

    /// Stops accepting (the listening sockets stay open, so new connections
    /// wait in the kernel's queue), lets the exchanges in flight finish
    /// within `worker::DRAIN`, closes idle keep-alive connections and event
    /// streams, and returns the listening sockets for the next front. Every
    /// response finished meanwhile says `Connection: close`.
    pub fn drain(self) -> listeners::Listeners {
        self.drain.store(true, Ordering::Release);
        for w in &self.wakers {
            let _ = w.wake();
        }
        let mut out = listeners::Listeners::default();
        for t in self.threads {
            if let Ok(back) = t.join() {
                out.http.extend(back.http);
                out.clients.extend(back.clients);
                out.https.extend(back.https);
                if let (Some(unix), Some(path)) = (back.unix, &self.socket) {
                    out.unix = Some((path.clone(), unix));
                }
            }
        }
        self.usage_flusher.stop();
        out
    }
}

/// Client connections one loop may hold: each proxied connection needs two
/// descriptors (client and upstream), and some are kept for logs, pipes and
/// pidfds. Past the cap a loop stops accepting until a connection closes.
fn connection_cap(workers: usize) -> usize {
    let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile)
        .current
        .unwrap_or(1 << 20) as usize;
    (limit.saturating_sub(256) / 2 / workers.max(1)).max(64)
}
