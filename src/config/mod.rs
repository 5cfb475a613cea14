//! `tenement.toml` to a typed, validated `Config`.
//!
//! `raw.rs` mirrors the file exactly; `Config::from_raw` does every check once
//! and nothing downstream checks again. Errors carry file, line and key, and
//! suggest the nearest valid key. Reads one file, nothing else: the only other
//! I/O is `locate` and `resolve_data_dir` looking at the environment, the
//! current directory and whether a file exists.
//!
//! Keys whose behaviour this version does not have yet (`[settings.tls]`,
//! isolation other than "process", resource limits, ...) are parsed and then
//! refused with "is not supported yet", never silently ignored: an operator who
//! asks for a memory limit must not get a process without one.

mod raw;
mod shell;
mod starter;
mod suggest;
mod template;

use std::collections::btree_map::Entry;
use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::net::SocketAddr;
use std::ops::Range;
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use serde_json::{json, Value};
use toml::de::{DeTable, DeValue};
use toml::Spanned;

use crate::names;
use raw::{Map, Raw, RawRouting, RawService, RawSettings};

pub use template::TemplateVars;

/// A config error, printed as `FILE:LINE: key `KEY`: MESSAGE` (line and key when known).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: PathBuf,
    pub line: Option<usize>,
    pub key: Option<String>,
    pub message: String,
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        write!(f, ": ")?;
        if let Some(key) = &self.key {
            write!(f, "key `{key}`: ")?;
        }
        write!(f, "{}", self.message)
    }
}

impl std::error::Error for ConfigError {}

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
    pub instances: Vec<(String, String)>,
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
}

/// The levels of REFERENCE.md. Only `Process` passes validation in this
/// version; the others are refused as "not supported yet" until built.
#[allow(dead_code)]
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
    pub name: String,
    /// The program and its arguments: `command` shell-split (quotes honoured)
    /// followed by `args`. Never empty.
    pub argv: Vec<String>,
    /// Absolute (made so against `Config::dir`); default `Config::dir`.
    pub workdir: PathBuf,
    /// GET path for health checks; None: TCP connect check.
    pub health: Option<String>,
    pub isolation: Isolation,
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

/// Where the config comes from: `--config` (`explicit`), `$TENEMENT_CONFIG`,
/// `./tenement.toml`, `/etc/tenement/tenement.toml`; first found wins. An
/// explicit path (flag or env) is returned even if missing, so the caller can
/// say it is missing. None: no config anywhere. The path returned is absolute.
pub fn locate(explicit: Option<&Path>) -> Option<PathBuf> {
    let env = std::env::var_os("TENEMENT_CONFIG");
    locate_with(explicit, env.as_deref(), |path| path.is_file())
}

/// `locate` with the environment and the file system passed in, for tests.
fn locate_with(
    explicit: Option<&Path>,
    env: Option<&OsStr>,
    exists: impl Fn(&Path) -> bool,
) -> Option<PathBuf> {
    if let Some(path) = explicit {
        return Some(absolute(path));
    }
    if let Some(path) = env.filter(|v| !v.is_empty()) {
        return Some(absolute(Path::new(path)));
    }
    [
        Path::new("tenement.toml"),
        Path::new("/etc/tenement/tenement.toml"),
    ]
    .into_iter()
    .find(|path| exists(path))
    .map(absolute)
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
        let raw = Raw::deserialize(toml::de::Deserializer::from(doc.clone()))
            .map_err(|e| src.toml_error(&e, Some(doc.get_ref())))?;
        Config::from_raw(raw, &src)
    }

    /// Every check, once. On several problems the first in the file is returned.
    fn from_raw(raw: Raw, src: &Source<'_>) -> Result<Config, ConfigError> {
        let dir = src
            .file
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("/"));
        let mut check = Check {
            src,
            errors: Vec::new(),
        };
        let settings = check.settings(
            raw.settings.map(Spanned::into_inner).unwrap_or_default(),
            &dir,
        );
        // Every [service.NAME] written, valid or not: a route to a service
        // with a bad command is that service's error, not "unknown service".
        let declared: Vec<String> = raw.service.keys().map(|k| k.get_ref().clone()).collect();
        let mut services = BTreeMap::new();
        for (name, service) in raw.service {
            if let Some(service) = check.service(&name, service, &dir) {
                services.insert(name.into_inner(), service);
            }
        }
        let instances = check.instances(raw.instances, &declared, &services);
        let routing = match raw.routing {
            Some(routing) => check.routing(routing.into_inner(), &declared),
            None => Routing::default(),
        };
        if let Some((_, first)) = check.errors.into_iter().min_by_key(|(at, _)| *at) {
            return Err(first);
        }
        Ok(Config {
            overrides: Overrides::default(),
            path: src.file.to_path_buf(),
            dir,
            settings,
            services,
            instances,
            routing,
        })
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
                });
                (name.clone(), value)
            })
            .collect();
        let mut instances = serde_json::Map::new();
        for (service, id) in &self.instances {
            let ids = instances
                .entry(service.clone())
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
                "tls": Value::Null,
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

/// The data dir: `cli` (the `--data-dir` flag), else `$TENEMENT_DATA_DIR` if
/// set and not empty, else `settings.data_dir` of `config`, else
/// `/var/lib/tenement` when running as root (effective uid 0), else `./data`.
/// Always absolute: relative values are joined to the current directory
/// (`settings.data_dir` is already absolute, against the config's folder).
pub fn resolve_data_dir(cli: Option<&Path>, config: Option<&Config>) -> PathBuf {
    let env = std::env::var_os("TENEMENT_DATA_DIR");
    let root = rustix::process::geteuid().is_root();
    resolve_data_dir_with(cli, env.as_deref(), config, root)
}

/// `resolve_data_dir` with the environment and the effective uid passed in, for tests.
fn resolve_data_dir_with(
    cli: Option<&Path>,
    env: Option<&OsStr>,
    config: Option<&Config>,
    root: bool,
) -> PathBuf {
    if let Some(dir) = cli {
        return absolute(dir);
    }
    if let Some(dir) = env.filter(|v| !v.is_empty()) {
        return absolute(Path::new(dir));
    }
    if let Some(dir) = config.and_then(|c| c.settings.data_dir.as_deref()) {
        return absolute(dir);
    }
    if root {
        PathBuf::from("/var/lib/tenement")
    } else {
        absolute(Path::new("data"))
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

/// `path` made absolute against the current directory, with `.` components
/// dropped. `..` is kept: removing it without reading symlinks could change
/// which directory is meant.
fn absolute(path: &Path) -> PathBuf {
    let joined = if path.is_absolute() {
        path.to_path_buf()
    } else {
        // The current directory only goes missing if it was deleted under us;
        // the relative path is then the best there is.
        match std::env::current_dir() {
            Ok(cwd) => cwd.join(path),
            Err(_) => path.to_path_buf(),
        }
    };
    clean(&joined)
}

/// Drops `.` components (`/srv/app/./data` -> `/srv/app/data`).
fn clean(path: &Path) -> PathBuf {
    path.components()
        .filter(|c| !matches!(c, Component::CurDir))
        .collect()
}

/// An io::Error without Rust's " (os error N)" suffix, lowercased like our own messages.
fn io_message(e: &std::io::Error) -> String {
    let text = e.to_string();
    let text = text.split(" (os error").next().unwrap_or(&text).to_string();
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => text,
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// A key as it would be written in TOML: bare when it can be, else quoted.
fn toml_key(key: &str) -> String {
    if !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        key.to_string()
    } else {
        toml::Value::String(key.to_string()).to_string()
    }
}

/// The text being parsed and where it came from, to turn byte offsets into lines.
struct Source<'a> {
    file: &'a Path,
    text: &'a str,
}

impl Source<'_> {
    /// 1-based line of a byte offset.
    fn line(&self, offset: usize) -> usize {
        let end = offset.min(self.text.len());
        self.text.as_bytes()[..end]
            .iter()
            .filter(|&&b| b == b'\n')
            .count()
            + 1
    }

    fn error(
        &self,
        span: Option<Range<usize>>,
        key: Option<String>,
        message: String,
    ) -> ConfigError {
        ConfigError {
            file: self.file.to_path_buf(),
            line: span.map(|s| self.line(s.start)),
            key,
            message,
        }
    }

    /// A syntax or serde error; `doc`, the parsed document, is where the
    /// dotted key at the error's position is looked up.
    fn toml_error(&self, e: &toml::de::Error, doc: Option<&DeTable<'_>>) -> ConfigError {
        let span = e.span();
        let key = match (doc, &span) {
            (Some(doc), Some(span)) => key_at(doc, span.start),
            _ => None,
        };
        let mut message = tidy_message(e.message());
        // toml says only "duplicate key"; the text under the span says which.
        if message == "duplicate key" {
            let text = span.as_ref().and_then(|s| self.text.get(s.clone()));
            if let Some(text) = text.filter(|t| !t.is_empty() && !t.contains('\n')) {
                message = format!("duplicate key `{}`", text.trim());
            }
        }
        self.error(span, key, message)
    }
}

/// The dotted key whose key or value covers byte `pos`: the narrowest match
/// wins, so a value inside a table beats the table itself.
fn key_at(doc: &DeTable<'_>, pos: usize) -> Option<String> {
    fn walk(
        table: &DeTable<'_>,
        pos: usize,
        path: &mut Vec<String>,
        best: &mut Option<(usize, String)>,
    ) {
        for (key, value) in table.iter() {
            path.push(toml_key(key.get_ref()));
            for span in [key.span(), value.span()] {
                if span.contains(&pos) && best.as_ref().is_none_or(|(width, _)| span.len() < *width)
                {
                    *best = Some((span.len(), path.join(".")));
                }
            }
            match value.get_ref() {
                DeValue::Table(inner) => walk(inner, pos, path, best),
                DeValue::Array(items) => {
                    for item in items {
                        if let DeValue::Table(inner) = item.get_ref() {
                            walk(inner, pos, path, best);
                        }
                    }
                }
                _ => {}
            }
            path.pop();
        }
    }
    let mut best = None;
    walk(doc, pos, &mut Vec::new(), &mut best);
    best.map(|(_, key)| key)
}

/// serde's and toml's wording made to speak TOML: "unknown field" becomes
/// "unknown key" with the nearest valid key, Rust type names become TOML ones.
fn tidy_message(message: &str) -> String {
    let message = message.trim().replace('\n', "; ");
    if let Some(rest) = message.strip_prefix("unknown field `") {
        // serde: "unknown field `x`, expected one of `a`, `b`" (or "expected `a`",
        // "expected `a` or `b`", "there are no fields").
        let mut ticks = rest.split('`');
        let unknown = ticks.next().unwrap_or_default();
        let valid: Vec<&str> = ticks.skip(1).step_by(2).collect();
        return match suggest::nearest(unknown, &valid) {
            Some(near) => format!("unknown key `{unknown}`, did you mean `{near}`?"),
            None if valid.is_empty() => format!("unknown key `{unknown}`"),
            None => format!(
                "unknown key `{unknown}`; valid keys here: {}",
                valid.join(", ")
            ),
        };
    }
    let mut message = message.replace("invalid type: ", "wrong type: ");
    for (rust, toml) in [
        ("expected u16", "expected an integer from 0 to 65535"),
        ("expected u32", "expected a non-negative integer"),
        ("expected u64", "expected a non-negative integer"),
        ("expected a sequence", "expected an array"),
        ("expected a map", "expected a table"),
        ("wrong type: map", "wrong type: table"),
        ("wrong type: sequence", "wrong type: array"),
    ] {
        message = message.replace(rust, toml);
    }
    // `expected struct RawService` and friends: the struct names mean nothing to an operator.
    if let Some(at) = message.find("expected struct Raw") {
        message.truncate(at);
        message.push_str("expected a table");
    }
    message
}

/// One run of checks, gathering every error with its byte offset.
struct Check<'a> {
    src: &'a Source<'a>,
    errors: Vec<(usize, ConfigError)>,
}

impl Check<'_> {
    fn fail(&mut self, span: Range<usize>, key: String, message: impl Into<String>) {
        let at = span.start;
        let error = self.src.error(Some(span), Some(key), message.into());
        self.errors.push((at, error));
    }

    /// "`KEY` is not supported yet" for a key this version parses but cannot
    /// honour. `what` names it, `instead` says what to do.
    fn unsupported(&mut self, span: Range<usize>, key: String, what: &str, instead: &str) {
        self.fail(
            span,
            key,
            format!("{what} is not supported yet in this version; {instead}"),
        );
    }

    fn settings(&mut self, raw: RawSettings, dir: &Path) -> Settings {
        let mut s = Settings::default();
        let key = |name: &str| format!("settings.{name}");
        if let Some(v) = raw.data_dir {
            if v.get_ref().is_empty() {
                self.fail(v.span(), key("data_dir"), "must not be empty");
            } else {
                s.data_dir = Some(clean(&dir.join(v.get_ref())));
            }
        }
        if let Some(v) = raw.domain {
            let domain = v.get_ref().to_ascii_lowercase();
            match check_domain(&domain) {
                Ok(()) => s.domain = domain,
                Err(why) => self.fail(v.span(), key("domain"), why),
            }
        }
        if let Some(v) = raw.listen {
            match v.get_ref().parse::<SocketAddr>() {
                Ok(addr) => s.listen = addr,
                Err(_) => self.fail(
                    v.span(),
                    key("listen"),
                    format!("{:?} is not an address: expected IP:PORT, like \"0.0.0.0:8080\" or \"[::]:8080\"", v.get_ref()),
                ),
            }
        }
        if let Some(v) = self.positive(raw.health_check_interval, key("health_check_interval")) {
            s.health_check_interval = Duration::from_secs(v);
        }
        if let Some(v) = raw.max_restarts {
            s.max_restarts = v.into_inner();
        }
        if let Some(v) = self.positive(raw.restart_window, key("restart_window")) {
            s.restart_window = Duration::from_secs(v);
        }
        if let Some(v) = raw.backoff_base_ms {
            s.backoff_base = Duration::from_millis(v.into_inner());
        }
        if let Some(v) = raw.backoff_max_ms {
            if Duration::from_millis(*v.get_ref()) < s.backoff_base {
                self.fail(
                    v.span(),
                    key("backoff_max_ms"),
                    format!(
                        "must be at least backoff_base_ms ({} ms)",
                        millis(s.backoff_base)
                    ),
                );
            }
            s.backoff_max = Duration::from_millis(v.into_inner());
        }
        if let Some(v) = raw.port_range {
            let [low, high] = *v.get_ref();
            if low == 0 {
                self.fail(
                    v.span(),
                    key("port_range"),
                    "ports start at 1; 0 cannot be handed to an instance",
                );
            } else if low > high {
                self.fail(
                    v.span(),
                    key("port_range"),
                    format!("low end {low} is above high end {high}"),
                );
            } else {
                s.port_range = (low, high);
            }
        }
        if let Some(v) = raw.stop_timeout {
            s.stop_timeout = Duration::from_secs(v.into_inner());
        }
        if let Some(v) = raw.workers {
            s.workers = v.into_inner() as usize;
        }
        if let Some(v) = raw.metrics_public {
            s.metrics_public = v.into_inner();
        }
        if let Some(v) = self.positive(raw.log_max_bytes, key("log_max_bytes")) {
            s.log_max_bytes = v;
        }
        if let Some(v) = raw.log_files {
            s.log_files = v.into_inner();
        }
        if let Some(tls) = raw.tls {
            self.unsupported(
                tls.span(),
                key("tls"),
                "`[settings.tls]`",
                "remove it and terminate TLS in a proxy in front (see `ten caddy`)",
            );
        }
        s
    }

    /// A value that must be above 0. None: absent or refused.
    fn positive(&mut self, value: Option<Spanned<u64>>, key: String) -> Option<u64> {
        let value = value?;
        if *value.get_ref() == 0 {
            self.fail(value.span(), key, "must be greater than 0");
            return None;
        }
        Some(value.into_inner())
    }

    fn service(
        &mut self,
        name: &Spanned<String>,
        raw: Spanned<RawService>,
        dir: &Path,
    ) -> Option<Service> {
        let table = raw.span();
        let raw = raw.into_inner();
        let name_key = format!("service.{}", toml_key(name.get_ref()));
        let key = |k: &str| format!("{name_key}.{k}");
        let mut ok = true;
        if let Err(e) = names::check("service name", name.get_ref()) {
            self.fail(name.span(), name_key.clone(), e.to_string());
            ok = false;
        }

        let mut argv = Vec::new();
        match &raw.command {
            None => {
                self.fail(
                    table,
                    key("command"),
                    "missing: every service needs a `command`",
                );
                ok = false;
            }
            Some(command) => match shell::split(command.get_ref()) {
                Ok(words) => argv = words,
                Err(why) => {
                    self.fail(command.span(), key("command"), why);
                    ok = false;
                }
            },
        }
        if let Some(args) = raw.args {
            argv.extend(args.into_inner());
        }
        if let (Some(command), true) = (&raw.command, ok && argv.is_empty()) {
            self.fail(
                command.span(),
                key("command"),
                "is empty: it must name a program to run",
            );
            ok = false;
        }
        // argv[0] is passed to execvp as is: an empty program name can never run.
        if let (Some(command), Some(program)) = (&raw.command, argv.first()) {
            if program.is_empty() {
                self.fail(command.span(), key("command"), "the program name is empty");
                ok = false;
            }
        }

        let mut workdir = dir.to_path_buf();
        if let Some(v) = raw.workdir {
            if v.get_ref().is_empty() {
                self.fail(
                    v.span(),
                    key("workdir"),
                    "must not be empty (leave it out for the config's folder)",
                );
            } else {
                workdir = clean(&dir.join(v.get_ref()));
            }
        }

        let mut health = None;
        if let Some(v) = raw.health {
            let path = v.get_ref();
            if !path.starts_with('/') || path.chars().any(|c| c.is_whitespace() || c.is_control()) {
                self.fail(
                    v.span(),
                    key("health"),
                    format!("{path:?} is not a path: expected something like \"/health\""),
                );
            } else {
                health = Some(v.into_inner());
            }
        }

        if let Some(v) = raw.isolation {
            match v.get_ref().as_str() {
                "process" => {}
                level @ ("namespace" | "sandbox") => {
                    self.unsupported(v.span(), key("isolation"), &format!("isolation {level:?}"), "use \"process\"")
                }
                other => self.fail(
                    v.span(),
                    key("isolation"),
                    format!("unknown isolation {other:?}: expected \"process\", \"namespace\" or \"sandbox\""),
                ),
            }
        }

        let idle_timeout = raw
            .idle_timeout
            .map(|v| v.into_inner())
            .filter(|&secs| secs > 0)
            .map(Duration::from_secs);
        let startup_timeout = self
            .positive(raw.startup_timeout, key("startup_timeout"))
            .unwrap_or(10);
        let request_timeout = self
            .positive(raw.request_timeout, key("request_timeout"))
            .unwrap_or(60);

        let mut restart = RestartPolicy::OnFailure;
        if let Some(v) = raw.restart {
            match v.get_ref().as_str() {
                "always" => restart = RestartPolicy::Always,
                "on-failure" => restart = RestartPolicy::OnFailure,
                "never" => restart = RestartPolicy::Never,
                other => self.fail(
                    v.span(),
                    key("restart"),
                    format!("unknown restart policy {other:?}: expected \"always\", \"on-failure\" or \"never\""),
                ),
            }
        }

        let socket_activation = raw.socket_activation.as_ref().is_some_and(|v| *v.get_ref());
        if let Some(v) = raw.network {
            match v.get_ref().as_str() {
                "none" if !socket_activation => self.fail(
                    v.span(),
                    key("network"),
                    "network \"none\" needs socket_activation = true: with no network the app can only be reached through a socket tenement passes in",
                ),
                "host" | "none" => self.unsupported(v.span(), key("network"), "`network`", "remove it"),
                other => self.fail(v.span(), key("network"), format!("unknown network {other:?}: expected \"host\" or \"none\"")),
            }
        }
        if let Some(v) = raw.user {
            match v.get_ref() {
                toml::Value::String(_) => {
                    self.unsupported(v.span(), key("user"), "`user`", "remove it")
                }
                toml::Value::Integer(uid) if (0..=i64::from(u32::MAX)).contains(uid) => {
                    self.unsupported(v.span(), key("user"), "`user`", "remove it")
                }
                _ => self.fail(
                    v.span(),
                    key("user"),
                    "expected a user name or a numeric uid",
                ),
            }
        }
        for (field, value) in [
            ("memory_limit_mb", raw.memory_limit_mb),
            ("cpu_shares", raw.cpu_shares),
            ("pids_max", raw.pids_max),
            ("storage_quota_mb", raw.storage_quota_mb),
        ] {
            if let Some(v) = value {
                self.unsupported(v.span(), key(field), &format!("`{field}`"), "remove it");
            }
        }
        for (field, value) in [
            ("read_paths", raw.read_paths),
            ("write_paths", raw.write_paths),
        ] {
            if let Some(v) = value {
                if !v.get_ref().is_empty() {
                    self.unsupported(v.span(), key(field), &format!("`{field}`"), "remove it");
                }
            }
        }
        let env_clear = raw.env_clear.is_some_and(|v| v.into_inner());
        let autospawn = raw.autospawn.is_some_and(|v| v.into_inner());
        let max_instances = raw.max_instances.map_or(0, |v| v.into_inner() as usize);

        let mut env = Vec::new();
        if let Some(table) = raw.env {
            let mut entries: Vec<_> = table.into_inner().into_iter().collect();
            entries.sort_by_key(|(k, _)| k.span().start);
            for (name, value) in entries {
                let env_key = format!("{}.{}", key("env"), toml_key(name.get_ref()));
                if !is_env_name(name.get_ref()) {
                    self.fail(
                        name.span(),
                        env_key,
                        format!("{:?} is not a valid environment variable name (letters, digits and _, not starting with a digit)", name.get_ref()),
                    );
                    continue;
                }
                if let Err(why) = template::check(value.get_ref()) {
                    self.fail(value.span(), env_key, why);
                    continue;
                }
                env.push((name.into_inner(), value.into_inner()));
            }
        }

        ok.then(|| Service {
            name: name.get_ref().clone(),
            argv,
            workdir,
            health,
            isolation: Isolation::Process,
            idle_timeout,
            startup_timeout: Duration::from_secs(startup_timeout),
            request_timeout: Duration::from_secs(request_timeout),
            restart,
            storage_persist: raw.storage_persist.is_none_or(|v| v.into_inner()),
            env,
            env_clear,
            autospawn,
            max_instances,
            socket_activation,
        })
    }

    /// `[instances]`, in file order.
    fn instances(
        &mut self,
        raw: Map<Vec<Spanned<String>>>,
        declared: &[String],
        services: &BTreeMap<String, Service>,
    ) -> Vec<(String, String)> {
        let mut entries: Vec<_> = raw.into_iter().collect();
        entries.sort_by_key(|(k, _)| k.span().start);
        let mut out = Vec::new();
        for (service, ids) in entries {
            let key = format!("instances.{}", toml_key(service.get_ref()));
            if !declared.contains(service.get_ref()) {
                let message = unknown_service(service.get_ref(), declared);
                self.fail(service.span(), key, message);
                continue;
            }
            let mut seen: Vec<&str> = Vec::new();
            let ids_span = ids.span();
            let ids = ids.get_ref();
            for id in ids {
                if let Err(e) = names::check("instance id", id.get_ref()) {
                    self.fail(id.span(), key.clone(), e.to_string());
                } else if seen.contains(&id.get_ref().as_str()) {
                    self.fail(
                        id.span(),
                        key.clone(),
                        format!(
                            "duplicate instance `{}:{}`",
                            service.get_ref(),
                            id.get_ref()
                        ),
                    );
                } else {
                    seen.push(id.get_ref());
                    out.push((service.get_ref().clone(), id.get_ref().clone()));
                }
            }
            // A service that failed its own checks has no max_instances to compare with.
            let cap = services
                .get(service.get_ref())
                .map_or(0, |svc| svc.max_instances);
            if cap > 0 && seen.len() > cap {
                self.fail(
                    ids_span,
                    key,
                    format!(
                        "{} instances listed, but service.{}.max_instances is {cap}",
                        seen.len(),
                        service.get_ref(),
                    ),
                );
            }
        }
        out
    }

    fn routing(&mut self, raw: RawRouting, declared: &[String]) -> Routing {
        let known = declared;
        let mut routing = Routing::default();
        if let Some(v) = raw.default {
            if declared.contains(v.get_ref()) {
                routing.default = Some(v.into_inner());
            } else {
                self.fail(
                    v.span(),
                    "routing.default".to_string(),
                    unknown_service(v.get_ref(), known),
                );
            }
        }

        let by_file_order = |table: Spanned<Map<String>>| {
            let mut entries: Vec<_> = table.into_inner().into_iter().collect();
            entries.sort_by_key(|(k, _)| k.span().start);
            entries
        };
        for (sub, service) in raw.subdomain.map(by_file_order).unwrap_or_default() {
            let key = format!("routing.subdomain.{}", toml_key(sub.get_ref()));
            let label = sub.get_ref().to_ascii_lowercase();
            if let Err(why) = check_label(&label) {
                self.fail(sub.span(), key, format!("{:?} {why}", sub.get_ref()));
            } else if declared.contains(&label) {
                self.fail(
                    sub.span(),
                    key,
                    format!("`{label}` is also a service name, so host `{label}.DOMAIN` would be ambiguous"),
                );
            } else if !declared.contains(service.get_ref()) {
                self.fail(
                    service.span(),
                    key,
                    unknown_service(service.get_ref(), known),
                );
            } else {
                match routing.subdomain.entry(label) {
                    Entry::Vacant(slot) => {
                        slot.insert(service.into_inner());
                    }
                    Entry::Occupied(slot) => self.fail(
                        sub.span(),
                        key,
                        format!("duplicate route: subdomain `{}` is listed twice (case does not matter)", slot.key()),
                    ),
                }
            }
        }

        for (prefix, service) in raw.path.map(by_file_order).unwrap_or_default() {
            let key = format!("routing.path.{}", toml_key(prefix.get_ref()));
            let p = prefix.get_ref();
            let same = |a: &str, b: &str| a.trim_end_matches('/') == b.trim_end_matches('/');
            if !p.starts_with('/') {
                self.fail(
                    prefix.span(),
                    key,
                    format!("path prefix {p:?} must start with \"/\""),
                );
            } else if p
                .chars()
                .any(|c| c.is_whitespace() || c.is_control() || c == '?' || c == '#')
            {
                self.fail(
                    prefix.span(),
                    key,
                    format!("path prefix {p:?} may not contain spaces, `?` or `#`"),
                );
            } else if let Some((other, _)) = routing.path.iter().find(|(other, _)| same(other, p)) {
                self.fail(
                    prefix.span(),
                    key,
                    format!("duplicate route: {p:?} is the same prefix as {other:?}"),
                );
            } else if !declared.contains(service.get_ref()) {
                self.fail(
                    service.span(),
                    key,
                    unknown_service(service.get_ref(), known),
                );
            } else {
                routing
                    .path
                    .push((prefix.into_inner(), service.into_inner()));
            }
        }
        // Longest first, so the first match is the most specific; ties by text for a stable order.
        routing
            .path
            .sort_by(|(a, _), (b, _)| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
        routing
    }
}

/// "unknown service `x`", with the nearest known name when one is close.
fn unknown_service(name: &str, known: &[String]) -> String {
    let known: Vec<&str> = known.iter().map(String::as_str).collect();
    match suggest::nearest(name, &known) {
        Some(near) => {
            format!("unknown service `{name}` (no [service.{name}] table), did you mean `{near}`?")
        }
        None => format!("unknown service `{name}` (no [service.{name}] table)"),
    }
}

/// A POSIX-portable environment variable name (IEEE Std 1003.1, chapter 8).
fn is_env_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// One DNS label (RFC 1035 section 2.3.1, with leading digits as RFC 1123 allows).
fn check_label(label: &str) -> Result<(), &'static str> {
    if label.is_empty() || label.len() > 63 {
        return Err("must be 1 to 63 characters");
    }
    if !label
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    {
        return Err("is not a host name label: only letters, digits and - are allowed, no dots");
    }
    if label.starts_with('-') || label.ends_with('-') {
        return Err("is not a host name label: it may not start or end with -");
    }
    Ok(())
}

/// The listener's domain: dot-separated labels, already lowercased.
fn check_domain(domain: &str) -> Result<(), String> {
    if domain.is_empty() {
        return Err("must not be empty".to_string());
    }
    if domain.len() > 253 {
        return Err("is longer than 253 characters".to_string());
    }
    for label in domain.split('.') {
        if let Err(why) = check_label(label) {
            let label = if label.is_empty() {
                "(empty label)"
            } else {
                label
            };
            return Err(format!("{domain:?} is not a domain name: {label:?} {why}"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
