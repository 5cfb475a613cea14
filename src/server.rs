//! `ten serve`: loads the config, starts the supervisor and the front loops,
//! and waits for signals (SIGTERM/SIGINT: graceful shutdown; SIGHUP: reload).
//!
//! Signals are blocked in every thread and taken with sigwait here, so no
//! handler ever runs inside the loops. Under a service manager (systemd's
//! `Type=notify`) it reports readiness, reloads and shutdown through
//! `notify`.

use std::path::PathBuf;
use std::sync::Arc;

use crate::config::{self, Config};
use crate::front::{self, FrontOptions, TlsOptions};
use crate::supervisor::{self, Command, Published};
use crate::sys::signals;

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
/// `listening on http://ADDR` once it accepts connections.
pub fn serve(opts: ServeOptions) -> Result<(), Box<dyn std::error::Error>> {
    // Before any thread exists, so every thread inherits the blocked mask.
    signals::pthread_sigmask_block()?;
    // Also before any thread: it removes NOTIFY_SOCKET and WATCHDOG_* from
    // the environment, so instances never inherit them.
    if let Some(problem) = crate::notify::take_environment() {
        warn!("server", "{problem}");
    }
    raise_fd_limit();

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
    let data_dir = config::resolve_data_dir(opts.data_dir.as_deref(), Some(&config));
    let internal = crate::state::layout::internal_dir(&data_dir);
    // Created 0700 (tokens, logs and the local socket live there).
    crate::state::atomic::create_dir(&internal).map_err(|e| ServeError(e.to_string()))?;
    tighten_modes(&data_dir)?;
    let _lock = lock_data_dir(&data_dir)?;
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
    let tls = match &config.settings.tls {
        Some(t) => {
            let set = front::tls::certs::load(t, &config.settings.domain)?;
            let store = Arc::new(front::tls::Store::new(set, t.redirect_http));
            Some(TlsOptions {
                listen: t.https_listen,
                store,
            })
        }
        None => None,
    };
    let published = Arc::new(Published::default());
    let listen = config.settings.listen;
    let workers = config.settings.workers;
    let store = tls.as_ref().map(|t| t.store.clone());
    let (handle, supervisor_thread) =
        supervisor::start(config, data_dir.clone(), published.clone(), store)?;
    let front = match front::start(
        FrontOptions {
            listen,
            workers,
            socket: Some(crate::state::layout::api_socket_path(&data_dir)),
            data_dir: data_dir.clone(),
            tls,
        },
        published,
        handle.clone(),
    ) {
        Ok(front) => front,
        Err(e) => {
            handle.send(Command::Shutdown, None);
            let _ = supervisor_thread.join();
            return Err(e.into());
        }
    };
    if let Some(addr) = front.https_addr {
        info!("front", "listening on https://{addr}");
    }
    info!(
        "front",
        "listening on http://{} data_dir={}",
        front.addr,
        data_dir.display()
    );
    // The listeners are bound and restored instances launched (the
    // supervisor started them before returning).
    crate::notify::ready();
    crate::notify::start_watchdog();

    loop {
        match signals::sigwait()? {
            libc::SIGHUP => {
                info!("server", "SIGHUP: reloading the config");
                handle.send(Command::Reload, None);
            }
            sig => {
                crate::notify::stopping();
                info!("server", "signal {sig}: stopping instances and exiting");
                break;
            }
        }
    }
    front.stop();
    handle.send(Command::Shutdown, None);
    let _ = supervisor_thread.join();
    info!("server", "stopped");
    Ok(())
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
