//! The front: N mio event loops proxying HTTP/1.1 by Host, and the management
//! API, dashboard and metrics on the root domain and on `ten.sock`.
//!
//! Each loop owns its listener (SO_REUSEPORT), its connections and its
//! upstream pool. It reads routes from `Published` and talks to the
//! supervisor by message only; it never blocks.

#[cfg(test)]
mod alloc_tests;
pub mod api;
pub mod conn;
pub mod fault;
pub mod machine;
pub mod router;
pub mod stats;
pub mod tls;
pub mod upstream;
pub mod worker;

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use mio::net::{TcpListener, UnixListener};
use mio::{Poll, Waker};
use rustix::net::{sockopt, AddressFamily, SocketFlags, SocketType};

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
}

/// The HTTPS listener's address and the certificates its handshakes use.
pub struct TlsOptions {
    pub listen: SocketAddr,
    pub store: Arc<tls::Store>,
}

/// The running loops.
pub struct Front {
    /// The address actually bound (the port is known even when 0 was asked).
    pub addr: SocketAddr,
    /// The HTTPS address actually bound, with `[settings.tls]`.
    pub https_addr: Option<SocketAddr>,
    stop: Arc<AtomicBool>,
    wakers: Vec<Arc<Waker>>,
    threads: Vec<JoinHandle<()>>,
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
    // The first bind settles the port (the config may ask for 0); the other
    // loops bind the same port, and SO_REUSEPORT spreads connections.
    let first = bind_reuseport(opts.listen).map_err(err(format!("bind {}", opts.listen)))?;
    let addr = first
        .local_addr()
        .map_err(err("read the bound address".into()))?;
    let mut listeners = vec![first];
    for _ in 1..workers {
        listeners.push(bind_reuseport(addr).map_err(err(format!("bind {addr}")))?);
    }
    // The HTTPS listeners, bound the same way.
    let mut https_addr = None;
    let mut tls_listeners = Vec::new();
    let mut tls_config = None;
    if let Some(t) = &opts.tls {
        let first = bind_reuseport(t.listen).map_err(err(format!("bind {}", t.listen)))?;
        let bound = first
            .local_addr()
            .map_err(err("read the bound address".into()))?;
        tls_listeners.push(first);
        for _ in 1..workers {
            tls_listeners.push(bind_reuseport(bound).map_err(err(format!("bind {bound}")))?);
        }
        https_addr = Some(bound);
        let config = tls::server_config(t.store.clone()).map_err(|e| FrontError {
            what: "set up TLS".into(),
            source: io::Error::other(e),
        })?;
        tls_config = Some((config, t.store.clone(), bound.port()));
    }
    let mut tls_listeners = tls_listeners.into_iter();
    let unix = match &opts.socket {
        Some(path) => Some(bind_unix(path).map_err(err(format!("listen on {}", path.display())))?),
        None => None,
    };
    let mut unix = unix;
    let stop = Arc::new(AtomicBool::new(false));
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
    let mut wakers = Vec::new();
    let mut threads = Vec::new();
    for (index, listener) in listeners.into_iter().enumerate() {
        let poll = Poll::new().map_err(err("create a poll".into()))?;
        let waker = Arc::new(
            Waker::new(poll.registry(), worker::WAKER).map_err(err("create a waker".into()))?,
        );
        let mut api = api::Api::new(opts.data_dir.clone());
        api.front = stats.clone();
        api.tokens = TokenStore::with_usage(&opts.data_dir, token_usage.clone());
        api.throttle = throttle.clone();
        api.asks = asks.clone();
        api.tls = opts.tls.as_ref().map(|t| t.store.clone());
        let setup = worker::WorkerSetup {
            index,
            listener,
            unix: if index == 0 { unix.take() } else { None },
            published: published.clone(),
            supervisor: supervisor.clone(),
            api,
            stop: stop.clone(),
            poll,
            waker: waker.clone(),
            stats: stats.clone(),
            max_conns,
            beat: crate::notify::heartbeat(&format!("front-{index}"), waker.clone()),
            tls: match (&tls_config, tls_listeners.next()) {
                (Some((config, store, port)), Some(listener)) => Some(worker::WorkerTls {
                    listener,
                    config: config.clone(),
                    store: store.clone(),
                    port: *port,
                }),
                _ => None,
            },
        };
        let w = worker::Worker::new(setup).map_err(err("register the listener".into()))?;
        let thread = std::thread::Builder::new()
            .name(format!("front-{index}"))
            .spawn(move || w.run())
            .map_err(err("start a front thread".into()))?;
        wakers.push(waker);
        threads.push(thread);
    }
    Ok(Front {
        addr,
        https_addr,
        stop,
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
