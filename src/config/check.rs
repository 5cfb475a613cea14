//! Every check of a parsed file, once: `Config::from_raw` turns the raw
//! tables into settings, services, instances and routes, gathering each
//! refusal with its position so the first in the file is reported. Pure: no I/O.
//! `[settings.tls]` and its ACME keys are checked in `check/tls.rs`.

use std::collections::btree_map::Entry;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use toml::Spanned;

use super::bounds::{self, Bound};
use super::error::{toml_key, Source};
use super::locate::clean;
use super::raw::{Map, Raw, RawRouting, RawService, RawSettings};
use super::{
    millis, shell, suggest, template, Config, ConfigError, FileRef, Isolation, Overrides,
    RestartPolicy, Routing, Service, Settings, User,
};
use crate::names::{InstanceId, InstanceKey, ServiceName};

mod tls;
use tls::original_tls;

impl Config {
    /// Every check, once. On several problems the first in the file is returned.
    pub(super) fn from_raw(raw: Raw, src: &Source<'_>) -> Result<Config, ConfigError> {
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
        if let Some(v) = self.bounded(
            raw.health_check_interval,
            &bounds::HEALTH_CHECK_INTERVAL,
            key("health_check_interval"),
        ) {
            s.health_check_interval = Duration::from_secs(v);
        }
        if let Some(v) = raw.max_restarts {
            s.max_restarts = v.into_inner();
        }
        if let Some(v) = self.bounded(
            raw.restart_window,
            &bounds::RESTART_WINDOW,
            key("restart_window"),
        ) {
            s.restart_window = Duration::from_secs(v);
        }
        if let Some(v) = self.bounded(
            raw.backoff_base_ms,
            &bounds::BACKOFF_BASE_MS,
            key("backoff_base_ms"),
        ) {
            s.backoff_base = Duration::from_millis(v);
        }
        let backoff_max_ms = raw.backoff_max_ms.filter(|v| {
            self.bounded(
                Some(v.clone()),
                &bounds::BACKOFF_MAX_MS,
                key("backoff_max_ms"),
            )
            .is_some()
        });
        if let Some(v) = backoff_max_ms {
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
            let zero = "ports start at 1; 0 cannot be handed to an instance";
            if let Some(range) = self.ordered(&v, key("port_range"), zero) {
                s.port_range = range;
            }
        }
        if let Some(v) = self.bounded(raw.stop_timeout, &bounds::STOP_TIMEOUT, key("stop_timeout"))
        {
            s.stop_timeout = Duration::from_secs(v);
        }
        let workers = raw
            .workers
            .map(|v| Spanned::new(v.span(), u64::from(*v.get_ref())));
        if let Some(v) = self.bounded(workers, &bounds::WORKERS, key("workers")) {
            s.workers = v as usize;
        }
        if let Some(v) = raw.metrics_public {
            s.metrics_public = v.into_inner();
        }
        if let Some(v) = self.bounded(
            raw.log_max_bytes,
            &bounds::LOG_MAX_BYTES,
            key("log_max_bytes"),
        ) {
            s.log_max_bytes = v;
        }
        let log_files = raw
            .log_files
            .map(|v| Spanned::new(v.span(), u64::from(*v.get_ref())));
        if let Some(v) = self.bounded(log_files, &bounds::LOG_FILES, key("log_files")) {
            s.log_files = v as u32;
        }
        if let Some(v) = raw.uid_range {
            let zero = "uid 0 is root: the range must start at 1 or above";
            let (min, max) = bounds::UID_RANGE_LIMITS;
            match self.ordered(&v, key("uid_range"), zero) {
                Some((low, high)) if low < min || high > max => self.fail(
                    v.span(),
                    key("uid_range"),
                    format!("must lie between {min} and {max}"),
                ),
                Some(range) => s.uid_range = range,
                None => {}
            }
        }
        if let Some(list) = raw.trusted_proxies {
            for item in list.into_inner() {
                match super::Cidr::parse(item.get_ref()) {
                    Ok(cidr) => s.trusted_proxies.push(cidr),
                    Err(why) => self.fail(item.span(), key("trusted_proxies"), why),
                }
            }
        }
        if let Some(tls) = raw.tls {
            match original_tls(tls.get_ref()) {
                // The original tenement's keys: say what replaces each.
                Some((at, name, replacements)) => self.fail(
                    at,
                    format!("{}.{name}", key("tls")),
                    format!(
                        "the original tenement's [settings.tls] keys are spelled differently here: {replacements}"
                    ),
                ),
                None => s.tls = self.tls(tls, dir),
            }
        }
        s
    }

    /// A path from the config, made absolute, with where it was written.
    fn file_ref(&mut self, v: &Spanned<String>, key: String, dir: &Path) -> FileRef {
        if v.get_ref().is_empty() {
            self.fail(v.span(), key.clone(), "must not be empty");
        }
        FileRef {
            path: clean(&dir.join(v.get_ref())),
            config: self.src.file.to_path_buf(),
            line: self.src.line(v.span().start),
            key,
        }
    }

    /// A value within `bound` (the table every surface shares). None:
    /// absent or refused.
    /// A `[low, high]` pair: neither end 0 (`zero` says why), low first.
    fn ordered<T>(&mut self, v: &Spanned<[T; 2]>, key: String, zero: &str) -> Option<(T, T)>
    where
        T: Copy + PartialOrd + Default + std::fmt::Display,
    {
        let [low, high] = *v.get_ref();
        if low == T::default() {
            self.fail(v.span(), key, zero);
        } else if low > high {
            self.fail(
                v.span(),
                key,
                format!("low end {low} is above high end {high}"),
            );
        } else {
            return Some((low, high));
        }
        None
    }

    fn bounded(&mut self, value: Option<Spanned<u64>>, bound: &Bound, key: String) -> Option<u64> {
        let value = value?;
        match bound.check(*value.get_ref()) {
            Ok(n) => Some(n),
            Err(why) => {
                self.fail(value.span(), key, why);
                None
            }
        }
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
        let checked = ServiceName::new(name.get_ref());
        if let Err(e) = &checked {
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
        // `command` and `args` take the same {placeholders} as `env`,
        // expanded per instance when it starts.
        if let Some(command) = &raw.command {
            if let Some(why) = argv.iter().find_map(|w| template::check(w).err()) {
                self.fail(command.span(), key("command"), why);
                ok = false;
            }
        }
        if let Some(args) = raw.args {
            if let Some(why) = args.get_ref().iter().find_map(|w| template::check(w).err()) {
                self.fail(args.span(), key("args"), why);
                ok = false;
            }
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

        let mut isolation = Isolation::Process;
        let raw_isolation_set = raw.isolation.is_some();
        if let Some(v) = &raw.isolation {
            match v.get_ref().as_str() {
                "process" => isolation = Isolation::Process,
                "namespace" => isolation = Isolation::Namespace,
                "sandbox" => isolation = Isolation::Sandbox,
                other => self.fail(
                    v.span(),
                    key("isolation"),
                    match other {
                        "firecracker" | "qemu" | "gvisor" | "litebox" | "quark" | "container" => format!("unknown isolation {other:?}: the original tenement's VM and container levels have no counterpart here; \"sandbox\" (namespaces, seccomp, landlock) is the strictest: expected \"process\", \"namespace\" or \"sandbox\""),
                        _ => format!("unknown isolation {other:?}: expected \"process\", \"namespace\" or \"sandbox\""),
                    },
                ),
            }
        }

        let idle_timeout = self
            .bounded(raw.idle_timeout, &bounds::IDLE_TIMEOUT, key("idle_timeout"))
            .filter(|&secs| secs > 0)
            .map(Duration::from_secs);
        let startup_timeout = self
            .bounded(
                raw.startup_timeout,
                &bounds::STARTUP_TIMEOUT,
                key("startup_timeout"),
            )
            .unwrap_or(10);
        let request_timeout = self
            .bounded(
                raw.request_timeout,
                &bounds::REQUEST_TIMEOUT,
                key("request_timeout"),
            )
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

        if let Some(v) = &raw.socket {
            self.fail(
                v.span(),
                key("socket"),
                "the original tenement's `socket` has no counterpart: remove it. tenement sets SOCKET_PATH itself, to {data_dir}/.tenement/run/{name}.{id}.sock (also `{socket}` in templates); an app that listens there is proxied over it, else it listens on PORT",
            );
            ok = false;
        }
        let socket_activation = raw.socket_activation.as_ref().is_some_and(|v| *v.get_ref());
        let mut network_none = false;
        if let Some(v) = raw.network {
            match v.get_ref().as_str() {
                "none" if !socket_activation => self.fail(
                    v.span(),
                    key("network"),
                    "network \"none\" needs socket_activation = true: with no network the app can only be reached through a socket tenement passes in",
                ),
                "none" if isolation != Isolation::Sandbox => self.fail(
                    v.span(),
                    key("network"),
                    "network \"none\" needs isolation = \"sandbox\"",
                ),
                "none" => network_none = true,
                "host" => {}
                other => self.fail(v.span(), key("network"), format!("unknown network {other:?}: expected \"host\" or \"none\"")),
            }
        }
        let mut user = None;
        if let Some(v) = raw.user {
            match v.get_ref() {
                toml::Value::String(name) if !name.is_empty() => {
                    user = Some(User::Name(name.clone()))
                }
                toml::Value::Integer(uid) if (0..=i64::from(u32::MAX)).contains(uid) => {
                    user = Some(User::Uid(*uid as u32))
                }
                _ => self.fail(
                    v.span(),
                    key("user"),
                    "expected a user name or a numeric uid",
                ),
            }
        }
        let paths = |v: Option<Spanned<Vec<String>>>| -> Vec<PathBuf> {
            v.map(|v| v.into_inner().iter().map(|p| clean(&dir.join(p))).collect())
                .unwrap_or_default()
        };
        let read_paths = paths(raw.read_paths);
        let write_paths = paths(raw.write_paths);
        // Cgroup limits: the kernel's own ranges, so a value is never
        // silently clamped.
        let memory_limit_mb = self.bounded(
            raw.memory_limit_mb,
            &bounds::MEMORY_LIMIT_MB,
            key("memory_limit_mb"),
        );
        let cpu_shares = self.bounded(raw.cpu_shares, &bounds::CPU_SHARES, key("cpu_shares"));
        let pids_max = self.bounded(raw.pids_max, &bounds::PIDS_MAX, key("pids_max"));
        let storage_quota_mb = self.bounded(
            raw.storage_quota_mb,
            &bounds::STORAGE_QUOTA_MB,
            key("storage_quota_mb"),
        );
        let env_clear = raw.env_clear.is_some_and(|v| v.into_inner());
        let max_instances = raw
            .max_instances
            .as_ref()
            .map_or(0, |v| *v.get_ref() as usize);
        let mut autospawn = false;
        if let Some(v) = raw.autospawn {
            autospawn = *v.get_ref();
            // Without a cap, anonymous requests for made-up ids would create
            // instances until the port range runs out.
            if autospawn && max_instances == 0 {
                let (span, how) = match &raw.max_instances {
                    Some(m) => (m.span(), "is 0"),
                    None => (v.span(), "is not set"),
                };
                self.fail(
                    span,
                    key("max_instances"),
                    format!("autospawn = true needs max_instances above 0 (it {how}): without a cap, requests for made-up ids create instances until the port range runs out"),
                );
            }
        }

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

        let name = checked.ok()?;
        ok.then(|| Service {
            name,
            argv,
            workdir,
            health,
            isolation,
            isolation_set: raw_isolation_set,
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
            network_none,
            user,
            read_paths,
            write_paths,
            memory_limit_mb,
            cpu_shares,
            pids_max,
            storage_quota_mb,
        })
    }

    /// `[instances]`, in file order.
    fn instances(
        &mut self,
        raw: Map<Vec<Spanned<String>>>,
        declared: &[String],
        services: &BTreeMap<String, Service>,
    ) -> Vec<InstanceKey> {
        let mut entries: Vec<_> = raw.into_iter().collect();
        entries.sort_by_key(|(k, _)| k.span().start);
        let mut out = Vec::new();
        for (service, ids) in entries {
            let key = format!("instances.{}", toml_key(service.get_ref()));
            if !self.declared(&service, &key, declared) {
                continue;
            }
            let mut seen: Vec<&str> = Vec::new();
            let ids_span = ids.span();
            let ids = ids.get_ref();
            // A bad service name is reported with the service's own checks.
            let service_name = ServiceName::new(service.get_ref()).ok();
            for id in ids {
                let checked = InstanceId::new(id.get_ref());
                if let Err(e) = &checked {
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
                    if let (Some(service), Ok(id)) = (&service_name, checked) {
                        out.push(InstanceKey {
                            service: service.clone(),
                            id,
                        });
                    }
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

    /// Whether `service` names a `[service.NAME]` table; when not, refuses it
    /// at `key` as an unknown service, with the nearest declared name.
    fn declared(&mut self, service: &Spanned<String>, key: &str, declared: &[String]) -> bool {
        if declared.contains(service.get_ref()) {
            return true;
        }
        let message = unknown_service(service.get_ref(), declared);
        self.fail(service.span(), key.to_string(), message);
        false
    }

    fn routing(&mut self, raw: RawRouting, declared: &[String]) -> Routing {
        let mut routing = Routing::default();
        if let Some(v) = raw.default {
            if self.declared(&v, "routing.default", declared) {
                routing.default = Some(v.into_inner());
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
            } else if self.declared(&service, &key, declared) {
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
            } else if self.declared(&service, &key, declared) {
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
pub fn check_domain(domain: &str) -> Result<(), String> {
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
