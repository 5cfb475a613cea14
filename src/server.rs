//! `ten serve`: loads the config, starts the supervisor and the front loops,
//! and serves requests to the server itself (SIGTERM/SIGINT: graceful
//! shutdown; SIGHUP: reload; SIGUSR2 and `POST /api/upgrade`: upgrade in
//! place; a reload that moves the listeners: a new front on the same
//! sockets).
//!
//! Signals are blocked in every thread and taken with sigwait on a thread
//! of their own, which passes them to the server thread with the other
//! requests (`upgrade::Control`), so no handler ever runs inside the loops. Under a service manager (systemd's
//! `Type=notify`) it reports readiness, reloads and shutdown through
//! `notify`.

use std::path::PathBuf;
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;

use crate::config::{self, Config};
use crate::front::listeners::Listeners;
use crate::front::{self, Front, FrontOptions, TlsOptions};
use crate::supervisor::{self, Command, Handover, Published, SupervisorHandle};
use crate::sys::signals;
use crate::upgrade::handover::Description;
use crate::upgrade::{self, Control, FrontSettings, Request};

/// What `ten serve` was told on its command line (flags override the config).
#[derive(Debug, Clone, Default)]
pub struct ServeOptions {
    /// `--config` / `$TENEMENT_CONFIG`, as given.
    pub config: Option<PathBuf>,
    /// `--data-dir` / `$TENEMENT_DATA_DIR`, as given.
    pub data_dir: Option<PathBuf>,
    /// `--port`: replaces the port of `settings.listen`.
    pub port: Option<u16>,
    /// `--bind`: replaces the address of `settings.listen`.
    pub bind: Option<std::net::IpAddr>,
    /// `--domain`.
    pub domain: Option<String>,
}

/// An error that stops `ten serve` from starting.
#[derive(Debug)]
pub struct ServeError(pub String);

impl std::fmt::Display for ServeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ServeError {}

/// Runs the server in the foreground until SIGTERM/SIGINT. Logs
/// `listening on http://ADDR` once it accepts connections. With
/// `TENEMENT_UPGRADE_CHECK` set it only checks that it could (see
/// `upgrade`); with `TENEMENT_UPGRADE_FD` it is the new image of an
/// upgrade in place and adopts what the old one handed over.
pub fn serve(opts: ServeOptions) -> Result<(), Box<dyn std::error::Error>> {
    if std::env::var_os(upgrade::CHECK_ENV).is_some() {
        return self_check(&opts);
    }
    // Before any thread exists, so every thread inherits the blocked mask.
    signals::pthread_sigmask_block()?;
    // Also before any thread: these remove variables from the environment
    // (NOTIFY_SOCKET and WATCHDOG_*, TENEMENT_UPGRADE_KEEPER and _FD), so
    // instances never inherit them.
    if let Some(problem) = crate::notify::take_environment() {
        warn!("server", "{problem}");
    }
    // The keeper of an upgrade waits here, and only goes on when the new
    // image failed: then it serves with the hand-over instead.
    let failed_upgrade = upgrade::keeper::stand_by();
    let mut handed = Description::take_from_environment().unwrap_or_else(|e| {
        error!("server", "upgrade in place: {e}; starting afresh");
        None
    });
    // Taken before any instance starts, so none inherits it.
    let confirm = handed.as_mut().and_then(Description::take_ready);
    raise_fd_limit();

    let config = load_config(&opts)?;
    let data_dir = config::resolve_data_dir(opts.data_dir.as_deref(), Some(&config));
    let internal = crate::state::layout::internal_dir(&data_dir);
    // Created 0700 (tokens, logs and the local socket live there).
    crate::state::atomic::create_dir(&internal).map_err(|e| ServeError(e.to_string()))?;
    tighten_modes(&data_dir)?;
    let (listeners, lock) = match handed.as_mut() {
        Some(d) => d.take_listeners(),
        None => Default::default(),
    };
    let lock = match lock {
        Some(fd) => std::fs::File::from(fd),
        None => lock_data_dir(&data_dir)?,
    };
    // A tokens file that does not validate would lock everyone out: say
    // so now, naming the record, rather than serve with no token accepted.
    crate::state::tokens::load(&crate::state::layout::tokens_path(&data_dir))?;
    // Orphans of instances (double-forked daemons) come back to us and are
    // reaped by the supervisor instead of going to init.
    if let Err(e) = crate::isolate::cgroup::orphans::become_subreaper() {
        warn!(
            "server",
            "prctl(PR_SET_CHILD_SUBREAPER): {e}; orphans go to init"
        );
    }

    // Certificates are read once here, before anything starts: a missing
    // or wrong file is a config error and nothing runs.
    let mut acme = None;
    let tls = match &config.settings.tls {
        Some(t) => {
            let set = crate::certs::load(t, &config.settings.domain)?;
            let files = Arc::new(crate::certs::Store::new(set, t.redirect_http));
            let mut shared = None;
            if let Some(a) = &t.acme {
                let (s, opts, http) = acme_setup(a, &data_dir, &config.settings.domain)?;
                shared = Some(s.clone());
                acme = Some((s, opts, http));
            }
            Some(Arc::new(front::tls::Certs {
                files,
                acme: shared,
            }))
        }
        None => None,
    };
    let published = Arc::new(Published::default());
    if let Some((shared, _, _)) = &acme {
        // ACME orders on demand only names the front would serve.
        shared.set_published(published.clone(), front::api::allowed::would_serve);
    }
    let (tx, rx) = mpsc::channel();
    let exe = handed
        .as_ref()
        .map_or_else(upgrade::own_path, |d| d.exe.clone());
    let status = handed
        .as_ref()
        .map(|d| d.status.clone())
        .unwrap_or_default();
    let control = Arc::new(Control::new(tx, exe, status));
    let settings = front_settings(&config);
    let mut server = Server {
        opts,
        data_dir,
        published,
        tls,
        control,
        lock: Some(lock),
        settings,
        front: None,
        handle: None,
        supervisor: None,
    };
    let adopted = handed.as_mut().map(|d| std::mem::take(&mut d.supervisor));
    server.start(config, adopted, listeners)?;
    // ACME starts once the listeners answer challenges. Its failures are
    // logged and shown in GET /api/tls; they never stop the server.
    if let (Some((shared, opts, http)), Some(certs)) = (acme, &server.tls) {
        if let Err(e) = crate::acme::manager::start(shared, certs.files.clone(), opts, http) {
            warn!("acme", "cannot start the ACME thread: {e}");
        }
    }
    match (&handed, failed_upgrade) {
        (Some(d), None) => {
            info!(
                "server",
                "upgraded in place: ten {} -> {} (pid {} kept)",
                d.from,
                upgrade::VERSION,
                std::process::id()
            );
            server
                .control
                .finish(d.attempt, &d.from, Ok(upgrade::VERSION.to_string()));
        }
        (Some(d), Some(why)) => {
            error!(
                "server",
                "upgrade {} failed: {why}; ten {} serves on as pid {} on the same sockets (its instances start again)",
                d.attempt,
                upgrade::VERSION,
                std::process::id()
            );
            server.control.finish(d.attempt, &d.from, Err(why));
        }
        (None, Some(why)) => error!("server", "upgrade failed: {why}; starting afresh"),
        (None, None) => {}
    }
    if let Some(fd) = confirm {
        upgrade::keeper::confirm(fd);
    }
    // The listeners are bound and restored instances launched (the
    // supervisor started them before returning).
    crate::notify::ready();
    crate::notify::start_watchdog();
    start_signal_thread(server.control.clone())?;

    while let Ok(request) = rx.recv() {
        match request {
            Request::Signal(libc::SIGHUP) => {
                info!("server", "SIGHUP: reloading the config");
                server.ask(Command::Reload);
            }
            Request::Signal(libc::SIGUSR2) => match server.control.begin() {
                Some(attempt) => {
                    info!("server", "SIGUSR2: upgrading in place");
                    server.upgrade(attempt)?;
                }
                None => info!("server", "SIGUSR2: an upgrade is already in progress"),
            },
            Request::Upgrade { attempt } => server.upgrade(attempt)?,
            Request::Front(settings) => server.refront(settings),
            Request::Signal(sig) => {
                crate::notify::stopping();
                info!("server", "signal {sig}: stopping instances and exiting");
                break;
            }
        }
    }
    server.stop();
    info!("server", "stopped");
    Ok(())
}

/// The config as `serve` uses it: located, loaded, the flags applied.
fn load_config(opts: &ServeOptions) -> Result<Config, Box<dyn std::error::Error>> {
    let path = config::locate(opts.config.as_deref()).ok_or_else(|| {
        ServeError(
            "no config found: pass --config, set TENEMENT_CONFIG, or create ./tenement.toml \
             (`ten init` writes one)"
                .into(),
        )
    })?;
    let mut config = Config::load(&path)?;
    config.apply_overrides(config::Overrides {
        port: opts.port,
        bind: opts.bind,
        domain: opts.domain.clone(),
        default_isolation: default_isolation(&config),
    });
    Ok(config)
}

/// The new binary's self-check before an upgrade in place: loads the config
/// and the certificates as `serve` would, binds and starts nothing, and
/// prints `upgrade::check_line`.
fn self_check(opts: &ServeOptions) -> Result<(), Box<dyn std::error::Error>> {
    let config = load_config(opts)?;
    if let Some(t) = &config.settings.tls {
        crate::certs::load(t, &config.settings.domain)?;
    }
    println!("{}", upgrade::check_line());
    Ok(())
}

fn front_settings(config: &Config) -> FrontSettings {
    FrontSettings {
        listen: config.settings.listen,
        workers: config.settings.workers,
        https: config.settings.tls.as_ref().map(|t| t.https_listen),
    }
}

/// Takes the handled signals on a thread of its own and passes them to the
/// server thread, which also hears from the API and the supervisor.
fn start_signal_thread(control: Arc<Control>) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || loop {
            match signals::sigwait() {
                Ok(sig) => {
                    if !control.send(Request::Signal(sig)) {
                        return;
                    }
                }
                Err(e) => {
                    error!("server", "sigwait: {e}");
                    return;
                }
            }
        })
        .map(drop)
}

/// The running server, as the server thread holds it.
struct Server {
    opts: ServeOptions,
    data_dir: PathBuf,
    published: Arc<Published>,
    /// The certificates, with `[settings.tls]` at start.
    tls: Option<Arc<front::tls::Certs>>,
    control: Arc<Control>,
    /// The open lock file; handed to the next image by an upgrade.
    lock: Option<std::fs::File>,
    /// What the front runs with now.
    settings: FrontSettings,
    front: Option<Front>,
    handle: Option<SupervisorHandle>,
    supervisor: Option<JoinHandle<Option<Handover>>>,
}

impl Server {
    /// Starts the supervisor (adopting `adopted`, after an upgrade) and
    /// the front (on `listeners` where they serve the config).
    fn start(
        &mut self,
        config: Config,
        adopted: Option<Handover>,
        listeners: Listeners,
    ) -> Result<(), Box<dyn std::error::Error>> {
        let (handle, thread) = supervisor::start(
            config,
            self.data_dir.clone(),
            self.published.clone(),
            self.tls.as_ref().map(|c| c.files.clone()),
            adopted,
            Some(self.control.clone()),
        )?;
        self.handle = Some(handle);
        self.supervisor = Some(thread);
        if let Err(e) = self.start_front(listeners) {
            self.stop();
            return Err(e.into());
        }
        Ok(())
    }

    fn start_front(&mut self, handed: Listeners) -> Result<(), front::FrontError> {
        let handle = self.handle.clone().expect("the supervisor runs");
        let s = &self.settings;
        let tls = match (&self.tls, s.https) {
            (Some(certs), Some(listen)) => Some(TlsOptions {
                listen,
                certs: certs.clone(),
            }),
            _ => None,
        };
        let front = front::start(
            FrontOptions {
                listen: s.listen,
                workers: s.workers,
                socket: Some(crate::state::layout::api_socket_path(&self.data_dir)),
                data_dir: self.data_dir.clone(),
                tls,
                handed,
                control: Some(self.control.clone()),
            },
            self.published.clone(),
            handle,
        )?;
        if let Some(addr) = front.https_addr {
            info!("front", "listening on https://{addr}");
        }
        info!(
            "front",
            "listening on http://{} data_dir={}",
            front.addr,
            self.data_dir.display()
        );
        self.front = Some(front);
        Ok(())
    }

    fn ask(&self, cmd: Command) {
        if let Some(h) = &self.handle {
            h.send(cmd, None);
        }
    }

    /// Stops the front, then the supervisor with its instances.
    fn stop(&mut self) {
        if let Some(front) = self.front.take() {
            front.stop();
        }
        // The handle (and its waker) lives until the thread ends: dropping
        // the last one closes the waker, which could swallow the wake-up.
        let handle = self.handle.take();
        if let Some(h) = &handle {
            h.send(Command::Shutdown, None);
        }
        if let Some(t) = self.supervisor.take() {
            let _ = t.join();
        }
        drop(handle);
    }

    /// A reload moved the listeners or changed the number of loops: the
    /// front drains and a new one starts on the same listening sockets
    /// (binding only what is new). Instances are not touched.
    fn refront(&mut self, settings: FrontSettings) {
        if settings == self.settings {
            return;
        }
        let Some(front) = self.front.take() else {
            return;
        };
        info!(
            "server",
            "reload: listen {} workers {} (was {} workers {}): the front starts again on the same sockets",
            settings.listen,
            settings.workers,
            self.settings.listen,
            self.settings.workers
        );
        let handed = front.drain();
        crate::notify::forget_ended();
        let before = std::mem::replace(&mut self.settings, settings);
        if let Err(e) = self.start_front(handed) {
            // The supervisor checked the new addresses bind; if one still
            // does not, serve where we did.
            error!("server", "reload: {e}; listening as before");
            self.settings = before;
            if let Err(e) = self.start_front(Listeners::default()) {
                error!("server", "the front cannot start again: {e}");
            }
        }
    }

    /// An upgrade in place, attempt `attempt` (see `upgrade`). Returns when
    /// it failed and the old binary serves on; Err only when the server
    /// cannot go on at all.
    fn upgrade(&mut self, attempt: u64) -> Result<(), Box<dyn std::error::Error>> {
        let exe = self.control.exe.clone();
        info!("server", "upgrade {attempt}: checking {}", exe.display());
        let args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
        let checked = match upgrade::check(&exe, &args) {
            Ok(c) => c,
            Err(e) => {
                error!("server", "upgrade {attempt} refused: {e}; nothing changed");
                self.control.finish(attempt, upgrade::VERSION, Err(e));
                return Ok(());
            }
        };
        let to = checked.version;
        crate::notify::reloading();
        let began = std::time::Instant::now();
        info!(
            "server",
            "upgrade {attempt}: ten {} -> {to}: draining the front",
            upgrade::VERSION
        );
        let listeners = match self.front.take() {
            Some(front) => front.drain(),
            None => Listeners::default(),
        };
        let handle = self.handle.take();
        if let Some(h) = &handle {
            h.send(Command::HandOver, None);
        }
        let handover = self
            .supervisor
            .take()
            .and_then(|t| t.join().ok())
            .flatten()
            .ok_or_else(|| ServeError("the supervisor ended instead of handing over".into()))?;
        drop(handle);
        let lock = self.lock.take().map(std::os::fd::OwnedFd::from);
        let mut desc = Description::new(
            exe.clone(),
            attempt,
            self.control.status(),
            lock,
            listeners,
            handover,
        );
        let keeper = self.keeper(attempt, &to, checked.confirms, &desc);
        desc.ready = keeper
            .as_ref()
            .map(|k| std::os::fd::AsRawFd::as_raw_fd(&k.ready));
        info!(
            "server",
            "upgrade {attempt}: executing {} ({} ms after the drain began)",
            exe.display(),
            began.elapsed().as_millis()
        );
        let why = upgrade::exec(&exe, &desc, &crate::notify::environment());
        // Still here: the exec failed. Take everything back and go on (if
        // this fails too, the keeper serves).
        error!(
            "server",
            "upgrade {attempt} failed: {why}; the old binary serves on"
        );
        self.control.finish(attempt, upgrade::VERSION, Err(why));
        desc.ready = None;
        if let Some(k) = &keeper {
            let _ = rustix::io::fcntl_setfd(&k.ready, rustix::io::FdFlags::CLOEXEC);
        }
        let (listeners, lock) = desc.take_listeners();
        self.lock = lock.map(std::fs::File::from);
        let config = load_config(&self.opts)?;
        let adopted = std::mem::take(&mut desc.supervisor);
        self.start(config, Some(adopted), listeners)?;
        crate::notify::forget_ended();
        match keeper {
            // The keeper makes us the main process again, with READY=1.
            Some(k) => upgrade::keeper::confirm(k.ready),
            None => crate::notify::ready(),
        }
        Ok(())
    }

    /// Starts the keeper that serves if the new binary (version `to`) dies
    /// or hangs before it serves; None when it cannot confirm (an older
    /// binary) or the keeper does not start: then the upgrade goes on
    /// without a fallback, and says so.
    fn keeper(
        &self,
        attempt: u64,
        to: &str,
        confirms: bool,
        desc: &Description,
    ) -> Option<upgrade::keeper::Keeper> {
        if !confirms {
            warn!(
                "server",
                "upgrade {attempt}: ten {to} does not confirm that it serves: nothing falls back if it fails after the exec"
            );
            return None;
        }
        match upgrade::keeper::spawn(desc, &crate::notify::environment()) {
            Ok(k) => {
                info!(
                    "server",
                    "upgrade {attempt}: pid {} keeps the old binary and the sockets until ten {to} serves",
                    k.pid
                );
                Some(k)
            }
            Err(e) => {
                warn!(
                    "server",
                    "upgrade {attempt}: {e}: nothing falls back if ten {to} fails after the exec"
                );
                None
            }
        }
    }
}

/// ACME's shared state, the thread's options and its HTTPS client (with
/// `acme_ca_root` trusted: an unreadable one is a config error).
fn acme_setup(
    a: &config::Acme,
    data_dir: &std::path::Path,
    domain: &str,
) -> Result<
    (
        Arc<crate::acme::shared::Shared>,
        crate::acme::manager::Options,
        crate::acme::https::Client,
    ),
    Box<dyn std::error::Error>,
> {
    use crate::acme::shared::{Challenge, Shared};
    let http = crate::acme::https::Client::new(a.ca_root.as_ref().map(|f| f.path.as_path()))
        .map_err(|e| -> Box<dyn std::error::Error> {
            match &a.ca_root {
                Some(f) => Box::new(f.error(e)),
                None => Box::new(ServeError(e)),
            }
        })?;
    crate::acme::files::ensure_dir(data_dir).map_err(ServeError)?;
    let challenge = if a.challenge == "tls-alpn-01" {
        Challenge::TlsAlpn01
    } else {
        Challenge::Http01
    };
    let shared = Arc::new(Shared::new(
        data_dir.to_path_buf(),
        domain,
        challenge,
        a.on_demand_per_hour,
    ));
    let opts = crate::acme::manager::Options {
        directory: a.directory.clone(),
        email: Some(a.email.clone()),
        keep: a.on_demand_keep,
    };
    Ok((shared, opts, http))
}

/// Makes `{data_dir}/.tenement` 0700 and `{data_dir}/api_token` 0600 (when
/// it exists), whatever modes an older version or an admin left them with,
/// and logs each one it had to fix. Logs and `ten.sock` are set to 0600 by
/// the code that creates them.
fn tighten_modes(data_dir: &std::path::Path) -> Result<(), ServeError> {
    let wanted = [
        (crate::state::layout::internal_dir(data_dir), 0o700, true),
        (crate::state::layout::api_token_path(data_dir), 0o600, false),
    ];
    for (path, mode, required) in wanted {
        match tighten_mode(&path, mode) {
            Ok(Some(was)) => warn!(
                "server",
                "{} was mode {was:o}, readable by others: set to {mode:o}",
                path.display()
            ),
            Ok(None) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => {}
            Err(e) => return Err(ServeError(format!("chmod {}: {e}", path.display()))),
        }
    }
    Ok(())
}

/// Sets `path`'s permission bits to `mode` when they differ. Some(old mode)
/// when it changed them.
fn tighten_mode(path: &std::path::Path, mode: u32) -> std::io::Result<Option<u32>> {
    use std::os::unix::fs::PermissionsExt;
    let was = std::fs::metadata(path)?.permissions().mode() & 0o7777;
    if was == mode {
        return Ok(None);
    }
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
    Ok(Some(was))
}

/// The level of services that do not set `isolation`: `namespace` as root
/// (as the original tenement did), else `process`, with one warning line
/// when some service gets it.
fn default_isolation(config: &Config) -> Option<config::Isolation> {
    if rustix::process::geteuid().is_root() {
        return Some(config::Isolation::Namespace);
    }
    if config.services.values().any(|s| !s.isolation_set) {
        warn!(
            "server",
            "isolation defaults to \"process\": ten serve is not running as root, and new namespaces need it (set isolation = \"process\" to silence this)"
        );
    }
    None
}

/// Takes an exclusive lock on `{data_dir}/.tenement/lock` for the life of the
/// server, so two servers never manage the same instances.
fn lock_data_dir(data_dir: &std::path::Path) -> Result<std::fs::File, ServeError> {
    let path = crate::state::layout::server_lock_path(data_dir);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| ServeError(format!("open {}: {e}", path.display())))?;
    rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive).map_err(
        |_| {
            ServeError(format!(
                "another `ten serve` is using {} (lock {} is held)",
                data_dir.display(),
                path.display()
            ))
        },
    )?;
    Ok(file)
}

/// Raises the soft open-files limit to the hard one: every connection holds
/// descriptors, and the default soft limit (often 1024) is far too low.
/// Instances get the raised limit too, as under systemd's LimitNOFILE.
fn raise_fd_limit() {
    use rustix::process::{getrlimit, setrlimit, Resource};
    let mut limit = getrlimit(Resource::Nofile);
    if limit.current != limit.maximum {
        limit.current = limit.maximum;
        if let Err(e) = setrlimit(Resource::Nofile, limit) {
            warn!("server", "setrlimit(RLIMIT_NOFILE): {e}");
        }
    }
}
