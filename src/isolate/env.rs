//! The argv and the environment an instance starts with (REFERENCE
//! "tenement.toml"): `command` and `args` with their templates expanded; the
//! inherited environment minus `TENEMENT_*`, the service's `env` table with
//! templates expanded, then `PORT`, `HOST`, `SERVICE`, `INSTANCE_ID`,
//! `DATA_DIR` unless the table sets it, `SOCKET_PATH`.
//!
//! Pure: the caller passes the inherited variables in; nothing here reads the
//! process environment or touches the disk.

use std::ffi::OsString;
use std::path::Path;

use crate::config::{expand_template, Service, TemplateVars};
use crate::state::layout::{instance_dir, instance_socket_path};

/// The values of the `{placeholders}` for instance `service`:`id`.
fn vars<'a>(
    service: &'a Service,
    id: &'a str,
    port: u16,
    data_dir: &'a Path,
    socket: &'a Path,
) -> TemplateVars<'a> {
    TemplateVars {
        name: &service.name,
        id,
        data_dir,
        port,
        socket,
    }
}

/// The argv of instance `service`:`id`: `command` (already split into
/// words) and `args`, each word with its templates expanded as in `env`.
/// A value with spaces stays one argument.
pub fn argv(service: &Service, id: &str, port: u16, data_dir: &Path) -> Vec<String> {
    let socket = instance_socket_path(data_dir, &service.name, id);
    let vars = vars(service, id, port, data_dir, &socket);
    service
        .argv
        .iter()
        .map(|word| expand_template(word, &vars))
        .collect()
}

/// An ordered environment in which a later `set` replaces an earlier value in
/// place, so the result reads like the layers that built it.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct EnvList {
    vars: Vec<(OsString, OsString)>,
}

impl EnvList {
    pub fn set(&mut self, key: impl Into<OsString>, value: impl Into<OsString>) {
        let (key, value) = (key.into(), value.into());
        match self.vars.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = value,
            None => self.vars.push((key, value)),
        }
    }

    pub fn get(&self, key: &str) -> Option<&OsString> {
        self.vars.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    pub fn vars(&self) -> &[(OsString, OsString)] {
        &self.vars
    }
}

/// Builds the environment of instance `service`:`id` listening on `port`.
/// `inherited` is the server's own environment (ignored with `env_clear`);
/// `TENEMENT_*` variables never pass, since they configure the server.
pub fn build(
    inherited: impl IntoIterator<Item = (OsString, OsString)>,
    service: &Service,
    id: &str,
    port: u16,
    data_dir: &Path,
) -> EnvList {
    let mut env = EnvList::default();
    if !service.env_clear {
        for (k, v) in inherited {
            if !k.to_string_lossy().starts_with("TENEMENT_") {
                env.set(k, v);
            }
        }
    }
    let socket = instance_socket_path(data_dir, &service.name, id);
    let mut data_dir_set = false;
    if !service.env.is_empty() {
        let vars = vars(service, id, port, data_dir, &socket);
        for (k, v) in &service.env {
            data_dir_set |= k == "DATA_DIR";
            env.set(k, expand_template(v, &vars));
        }
    }
    env.set("PORT", port.to_string());
    env.set("HOST", "127.0.0.1");
    env.set("SERVICE", service.name.as_str());
    env.set("INSTANCE_ID", id);
    if !data_dir_set {
        env.set("DATA_DIR", instance_dir(data_dir, &service.name, id));
    }
    env.set("SOCKET_PATH", socket);
    env
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::config::{Isolation, RestartPolicy};
    use std::time::Duration;

    pub(crate) fn service(name: &str, argv: &[&str]) -> Service {
        Service {
            name: crate::names::ServiceName::new(name).expect("a valid test service name"),
            argv: argv.iter().map(|s| s.to_string()).collect(),
            workdir: std::env::temp_dir(),
            health: None,
            isolation: Isolation::Process,
            isolation_set: false,
            idle_timeout: None,
            startup_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(60),
            restart: RestartPolicy::OnFailure,
            storage_persist: true,
            env: Vec::new(),
            env_clear: false,
            autospawn: false,
            max_instances: 0,
            socket_activation: false,
            network_none: false,
            user: None,
            read_paths: Vec::new(),
            write_paths: Vec::new(),
            memory_limit_mb: None,
            cpu_shares: None,
            pids_max: None,
            storage_quota_mb: None,
        }
    }

    fn os(pairs: &[(&str, &str)]) -> Vec<(OsString, OsString)> {
        pairs.iter().map(|(k, v)| (k.into(), v.into())).collect()
    }

    #[test]
    fn inherited_env_passes_except_tenement_variables() {
        let svc = service("api", &["app"]);
        let inherited = os(&[("PATH", "/bin"), ("TENEMENT_CONFIG", "/x"), ("PORT", "1")]);
        let env = build(inherited, &svc, "prod", 30001, Path::new("/data"));
        let expect = os(&[
            ("PATH", "/bin"),
            ("PORT", "30001"),
            ("HOST", "127.0.0.1"),
            ("SERVICE", "api"),
            ("INSTANCE_ID", "prod"),
            ("DATA_DIR", "/data/api/prod"),
            ("SOCKET_PATH", "/data/.tenement/run/api.prod.sock"),
        ]);
        assert_eq!(env.vars(), &expect[..]);
    }

    #[test]
    fn env_clear_starts_from_nothing() {
        let mut svc = service("api", &["app"]);
        svc.env_clear = true;
        let env = build(os(&[("PATH", "/bin")]), &svc, "a", 30000, Path::new("/d"));
        assert!(env.get("PATH").is_none());
        assert_eq!(env.get("PORT").unwrap(), "30000");
    }

    // Calls config::expand_template, which another module implements.
    #[test]
    fn service_env_sets_data_dir_and_is_expanded() {
        let mut svc = service("notes", &["app"]);
        svc.env = vec![
            ("DATA_DIR".into(), "/srv/{id}".into()),
            ("GREETING".into(), "hi".into()),
        ];
        let env = build(Vec::new(), &svc, "alice", 30000, Path::new("/d"));
        assert_eq!(env.get("DATA_DIR").unwrap(), "/srv/alice");
        assert_eq!(env.get("GREETING").unwrap(), "hi");
    }

    /// Every placeholder env knows works in the argv too, in any word, and a
    /// value with spaces stays one argument.
    #[test]
    fn argv_words_are_expanded_like_env() {
        let mut words = vec!["./app".to_string()];
        for p in crate::config::PLACEHOLDERS {
            words.push(format!("--{p}={{{p}}}"));
        }
        words.push("{{literal}}".into());
        let words: Vec<&str> = words.iter().map(String::as_str).collect();
        let svc = service("notes", &words);
        let argv = argv(&svc, "alice", 30001, Path::new("/srv/my data"));
        assert_eq!(
            argv,
            [
                "./app",
                "--name=notes",
                "--id=alice",
                "--data_dir=/srv/my data",
                "--port=30001",
                "--socket=/srv/my data/.tenement/run/notes.alice.sock",
                "{literal}",
            ]
        );
        assert!(argv.iter().all(|a| !a.contains("{port}")));
    }
}
