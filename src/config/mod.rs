//! `tenement.toml` to a typed, validated `Config`: the types every other
//! module reads, loading and parsing one file, and the JSON view of the result.
//!
//! `raw.rs` mirrors the file exactly; `check.rs` (`Config::from_raw`) does
//! every check once and nothing downstream checks again. `error.rs` turns
//! byte offsets and serde's wording into errors that carry file, line and key
//! and suggest the nearest valid key. `locate.rs` finds the file and the data
//! dir. Reads one file, nothing else: the only other I/O is `locate` and
//! `resolve_data_dir` looking at the environment, the current directory and
//! whether a file exists.
//!
//! Keys of the original tenement that mean something else here are parsed
//! and then refused with their replacement, never silently ignored.

pub mod bounds;
mod check;
mod cidr;
mod error;
mod locate;
mod raw;
mod shell;
mod starter;
mod suggest;
mod template;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{json, Value};
use toml::de::DeTable;

use crate::names::{InstanceKey, ServiceName};
use error::{io_message, Source};
use locate::absolute;
#[cfg(test)]
use locate::{locate_with, resolve_data_dir_with};
use raw::Raw;

pub use check::check_domain;
pub use cidr::{any_contains, Cidr};
pub use error::ConfigError;
pub use locate::{locate, resolve_data_dir};
pub use template::TemplateVars;
#[cfg(test)]
pub use template::PLACEHOLDERS;

/// The whole validated config.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file it was read from (absolute).
    pub path: PathBuf,
    /// The folder relative paths are resolved against (the file's folder).
    /// Paths in the config are already resolved against it.
    #[allow(dead_code)]
    pub dir: PathBuf,
    pub settings: Settings,
    /// Services by name.
    pub services: BTreeMap<String, Service>,
    /// `[instances]`: (service, id) pairs spawned when the server starts, in file order.
    pub instances: Vec<InstanceKey>,
    pub routing: Routing,
    /// What `ten serve`'s flags replaced; kept so a reload of the file
    /// applies them again.
    pub overrides: Overrides,
}

/// `ten serve --port/--bind/--domain`, which win over the file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Overrides {
    pub port: Option<u16>,
    pub bind: Option<std::net::IpAddr>,
    pub domain: Option<String>,
    /// The level of services that do not set `isolation`: `namespace` when
    /// `ten serve` runs as root. None: `process`.
    pub default_isolation: Option<Isolation>,
}

impl Config {
    /// Sets the overrides and applies them to the settings.
    pub fn apply_overrides(&mut self, overrides: Overrides) {
        if let Some(port) = overrides.port {
            self.settings.listen.set_port(port);
        }
        if let Some(ip) = overrides.bind {
            self.settings.listen.set_ip(ip);
        }
        if let Some(domain) = &overrides.domain {
            self.settings.domain = domain.to_ascii_lowercase();
        }
        if let Some(level) = overrides.default_isolation {
            for svc in self.services.values_mut().filter(|s| !s.isolation_set) {
                svc.isolation = level;
            }
        }
        self.overrides = overrides;
    }
}

#[derive(Debug, Clone)]
pub struct Settings {
    /// `settings.data_dir`, already made absolute against `Config::dir`. None: not set.
    pub data_dir: Option<PathBuf>,
    /// Lowercased.
    pub domain: String,
    pub listen: SocketAddr,
    pub health_check_interval: Duration,
    pub max_restarts: u32,
    pub restart_window: Duration,
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    /// Inclusive range.
    pub port_range: (u16, u16),
    pub stop_timeout: Duration,
    /// 0 = one per CPU.
    pub workers: usize,
    pub metrics_public: bool,
    pub log_max_bytes: u64,
    pub log_files: u32,
    /// Inclusive range the instances' own uids (and gids) come from, as
    /// root at the namespaced levels; never 0.
    pub uid_range: (u32, u32),
    /// Peers whose X-Forwarded-* headers are believed. Default: none.
    pub trusted_proxies: Vec<Cidr>,
    /// `[settings.tls]`; None: plain HTTP only.
    pub tls: Option<Tls>,
}

/// `[settings.tls]`: HTTPS from certificate files and/or ACME.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tls {
    pub https_listen: SocketAddr,
    /// The plain listener answers 308 to https (except ACME challenges).
    pub redirect_http: bool,
    /// `cert`/`key` first when given, then each `[[settings.tls.certs]]`, in
    /// file order. Empty only with `acme`.
    pub certs: Vec<CertFiles>,
    /// The `acme_*` keys, with `acme_email` set.
    pub acme: Option<Acme>,
}

/// Let's Encrypt's production directory, `acme_directory`'s default.
pub const LETS_ENCRYPT: &str = "https://acme-v02.api.letsencrypt.org/directory";

/// The `acme_*` keys of `[settings.tls]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Acme {
    pub email: String,
    /// An https:// URL.
    pub directory: String,
    /// `acme_ca_root`: an extra trusted root for the ACME server.
    pub ca_root: Option<FileRef>,
    /// `"http-01"` or `"tls-alpn-01"`.
    pub challenge: String,
    /// `Some(per_hour)` with `acme_on_demand = true`.
    pub on_demand_per_hour: Option<u32>,
    /// `acme_on_demand_keep`: how long an on-demand certificate is kept
    /// after its instance left the registry.
    pub on_demand_keep: std::time::Duration,
}

/// One certificate chain and its key, as named in the config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertFiles {
    /// Host names it is chosen for (exact, or `*.` wildcards), lowercased.
    /// Empty: the names the certificate itself carries.
    pub names: Vec<String>,
    pub cert: FileRef,
    pub key: FileRef,
}

/// A file the config names, with where it names it: what is wrong with the
/// file's contents is reported as a config error at that key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileRef {
    /// Absolute (made so against `Config::dir`).
    pub path: PathBuf,
    /// The config file and the line and key that name it.
    pub config: PathBuf,
    pub line: usize,
    pub key: String,
}

impl FileRef {
    /// A config error at the key that names this file.
    pub fn error(&self, message: String) -> ConfigError {
        ConfigError {
            file: self.config.clone(),
            line: Some(self.line),
            key: Some(self.key.clone()),
            message,
        }
    }
}

/// The levels of REFERENCE.md (`isolation =`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Isolation {
    Process,
    Namespace,
    Sandbox,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestartPolicy {
    Always,
    OnFailure,
    Never,
}

#[derive(Debug, Clone)]
pub struct Service {
    pub name: ServiceName,
    /// The program and its arguments: `command` shell-split (quotes honoured)
    /// followed by `args`. Never empty.
    pub argv: Vec<String>,
    /// Absolute (made so against `Config::dir`); default `Config::dir`.
    pub workdir: PathBuf,
    /// GET path for health checks; None: TCP connect check.
    pub health: Option<String>,
    pub isolation: Isolation,
    /// `isolation` is written in the file (else it is the default, which
    /// depends on who runs `ten serve`: `Overrides::default_isolation`).
    pub isolation_set: bool,
    /// None when 0 (never sleep).
    pub idle_timeout: Option<Duration>,
    pub startup_timeout: Duration,
    pub request_timeout: Duration,
    pub restart: RestartPolicy,
    pub storage_persist: bool,
    /// `[service.NAME.env]`, templates not yet expanded, in file order.
    pub env: Vec<(String, String)>,
    pub env_clear: bool,
    /// A request for a valid unknown id creates that instance.
    pub autospawn: bool,
    /// 0 = no cap.
    pub max_instances: usize,
    /// tenement binds 127.0.0.1:PORT and passes it as fd 3 (LISTEN_FDS).
    pub socket_activation: bool,
    /// `network = "none"` (sandbox): an empty network namespace.
    pub network_none: bool,
    /// `user =`: who a namespaced instance runs as instead of its own uid.
    pub user: Option<User>,
    /// Absolute (made so against `Config::dir`).
    pub read_paths: Vec<PathBuf>,
    pub write_paths: Vec<PathBuf>,
    /// Cgroup limits of each instance (MiB, v1-style shares, processes).
    pub memory_limit_mb: Option<u64>,
    pub cpu_shares: Option<u64>,
    pub pids_max: Option<u64>,
    /// `storage_quota_mb`: the data dir size (MiB) above which the instance
    /// is flagged over quota (logged at 80 % and 100 %).
    pub storage_quota_mb: Option<u64>,
}

/// `user = "name"` or `user = 1000`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum User {
    Name(String),
    Uid(u32),
}

#[derive(Debug, Clone, Default)]
pub struct Routing {
    /// Service for the bare domain.
    pub default: Option<String>,
    /// `{sub}.{domain}` -> service. Keys lowercased.
    pub subdomain: BTreeMap<String, String>,
    /// Path prefix -> service, longest prefix first.
    pub path: Vec<(String, String)>,
}

impl Config {
    /// Reads and validates one file. Blocks on the read; any thread may call it.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: absolute(path),
            line: None,
            key: None,
            message: format!("cannot read config: {}", io_message(&e)),
        })?;
        Config::parse(&text, path)
    }

    /// Parses and validates text as if read from `path` (used by `load` and tests).
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let path = absolute(path);
        let src = Source { file: &path, text };
        let doc = DeTable::parse(text).map_err(|e| {
            // The best-effort parse of a broken file still knows most keys,
            // enough to name the one at the error.
            let (partial, _) = DeTable::parse_recoverable(text);
            src.toml_error(&e, Some(partial.get_ref()))
        })?;
        let raw = Raw::read(&doc).map_err(|e| src.toml_error(&e, Some(doc.get_ref())))?;
        Config::from_raw(raw, &src)
    }

    /// Every resolved setting, service and route, for `ten config` and `GET
    /// /api/config`. Durations use the units of their TOML keys (seconds, or
    /// milliseconds for the `_ms` keys), so the output reads like the file.
    pub fn to_json(&self) -> Value {
        let s = &self.settings;
        let services: serde_json::Map<String, Value> = self
            .services
            .iter()
            .map(|(name, svc)| {
                let env: serde_json::Map<String, Value> = svc
                    .env
                    .iter()
                    .map(|(k, v)| (k.clone(), Value::from(v.as_str())))
                    .collect();
                let value = json!({
                    "argv": svc.argv,
                    "workdir": svc.workdir.to_string_lossy(),
                    "health": svc.health,
                    "isolation": svc.isolation.as_str(),
                    "idle_timeout": svc.idle_timeout.map_or(0, |d| d.as_secs()),
                    "startup_timeout": svc.startup_timeout.as_secs(),
                    "request_timeout": svc.request_timeout.as_secs(),
                    "restart": svc.restart.as_str(),
                    "storage_persist": svc.storage_persist,
                    "env": env,
                    "env_clear": svc.env_clear,
                    "autospawn": svc.autospawn,
                    "max_instances": svc.max_instances,
                    "socket_activation": svc.socket_activation,
                    "network": if svc.network_none { "none" } else { "host" },
                    "user": match &svc.user {
                        None => Value::Null,
                        Some(User::Name(n)) => Value::from(n.as_str()),
                        Some(User::Uid(u)) => Value::from(*u),
                    },
                    "read_paths": svc.read_paths.iter().map(|p| p.to_string_lossy()).collect::<Vec<_>>(),
                    "write_paths": svc.write_paths.iter().map(|p| p.to_string_lossy()).collect::<Vec<_>>(),
                    "memory_limit_mb": svc.memory_limit_mb,
                    "cpu_shares": svc.cpu_shares,
                    "pids_max": svc.pids_max,
                    "storage_quota_mb": svc.storage_quota_mb,
                });
                (name.clone(), value)
            })
            .collect();
        let mut instances = serde_json::Map::new();
        for InstanceKey { service, id } in &self.instances {
            let ids = instances
                .entry(service.to_string())
                .or_insert_with(|| Value::Array(Vec::new()));
            if let Value::Array(ids) = ids {
                ids.push(Value::from(id.as_str()));
            }
        }
        let paths: Vec<Value> = self
            .routing
            .path
            .iter()
            .map(|(prefix, service)| json!({"prefix": prefix, "service": service}))
            .collect();
        json!({
            "path": self.path.to_string_lossy(),
            "settings": {
                "data_dir": s.data_dir.as_ref().map(|d| d.to_string_lossy()),
                "domain": s.domain,
                "listen": s.listen.to_string(),
                "health_check_interval": s.health_check_interval.as_secs(),
                "max_restarts": s.max_restarts,
                "restart_window": s.restart_window.as_secs(),
                "backoff_base_ms": millis(s.backoff_base),
                "backoff_max_ms": millis(s.backoff_max),
                "port_range": [s.port_range.0, s.port_range.1],
                "stop_timeout": s.stop_timeout.as_secs(),
                "workers": s.workers,
                "metrics_public": s.metrics_public,
                "log_max_bytes": s.log_max_bytes,
                "log_files": s.log_files,
                "uid_range": [s.uid_range.0, s.uid_range.1],
                "trusted_proxies": s.trusted_proxies.iter().map(|c| c.to_string()).collect::<Vec<_>>(),
                "tls": s.tls.as_ref().map(|t| json!({
                    "https_listen": t.https_listen.to_string(),
                    "redirect_http": t.redirect_http,
                    "acme": t.acme.as_ref().map(|a| json!({
                        "email": a.email,
                        "directory": a.directory,
                        "ca_root": a.ca_root.as_ref().map(|f| f.path.to_string_lossy()),
                        "challenge": a.challenge,
                        "on_demand": a.on_demand_per_hour.is_some(),
                        "on_demand_per_hour": a.on_demand_per_hour,
                        "on_demand_keep": a.on_demand_keep.as_secs(),
                    })),
                    "certs": t.certs.iter().map(|c| json!({
                        "names": c.names,
                        "cert": c.cert.path.to_string_lossy(),
                        "key": c.key.path.to_string_lossy(),
                    })).collect::<Vec<_>>(),
                })),
            },
            "service": services,
            "instances": instances,
            "routing": {
                "default": self.routing.default,
                "subdomain": self.routing.subdomain,
                // An array, not a table: the order (longest prefix first) is the matching order.
                "path": paths,
            },
        })
    }
}

impl Default for Settings {
    /// The defaults of REFERENCE.md, tenement.toml.
    fn default() -> Settings {
        Settings {
            data_dir: None,
            domain: "localhost".to_string(),
            listen: SocketAddr::from(([0, 0, 0, 0], 8080)),
            health_check_interval: Duration::from_secs(10),
            max_restarts: 3,
            restart_window: Duration::from_secs(300),
            backoff_base: Duration::from_millis(1000),
            backoff_max: Duration::from_millis(60_000),
            port_range: (30000, 40000),
            stop_timeout: Duration::from_secs(10),
            workers: 0,
            metrics_public: false,
            log_max_bytes: 10 * 1024 * 1024,
            log_files: 3,
            uid_range: bounds::UID_RANGE,
            trusted_proxies: Vec::new(),
            tls: None,
        }
    }
}

impl Isolation {
    /// The word used in the file.
    pub fn as_str(self) -> &'static str {
        match self {
            Isolation::Process => "process",
            Isolation::Namespace => "namespace",
            Isolation::Sandbox => "sandbox",
        }
    }
}

impl RestartPolicy {
    /// The word used in the file.
    pub fn as_str(self) -> &'static str {
        match self {
            RestartPolicy::Always => "always",
            RestartPolicy::OnFailure => "on-failure",
            RestartPolicy::Never => "never",
        }
    }
}

/// Expands `{name} {id} {data_dir} {port} {socket}` in an env value. `{{` and
/// `}}` are literal braces; an unknown placeholder (refused at load) is left as written.
pub fn expand_template(value: &str, vars: &TemplateVars<'_>) -> String {
    template::expand(value, vars)
}

/// A starter `tenement.toml` for `ten init`, with one service `name` running
/// `command`. The caller checks `name` with `names::check` first; `command`
/// may hold any text, it is written as a quoted TOML string. The result
/// always parses with `Config::parse`.
pub fn starter(name: &str, command: &str) -> String {
    starter::render(name, command)
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests;
