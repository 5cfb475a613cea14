//! Tests for `Config::parse`: the helpers, defaults, syntax and type errors
//! and names. Value checks, routing and unsupported keys are in `values.rs`;
//! loading, lookup order and the JSON view in `interface.rs`.

use std::ffi::OsStr;

use super::*;

const FILE: &str = "/srv/app/tenement.toml";

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::parse(text, Path::new(FILE))
}

fn ok(text: &str) -> Config {
    parse(text).unwrap_or_else(|e| panic!("expected success, got: {e}"))
}

/// Asserts the error's line, key, and a fragment of its message.
#[track_caller]
fn refused(text: &str, line: usize, key: &str, fragment: &str) -> ConfigError {
    let e = match parse(text) {
        Ok(_) => panic!("expected an error containing {fragment:?}, the config was accepted"),
        Err(e) => e,
    };
    assert_eq!(e.file, Path::new(FILE), "{e}");
    assert_eq!(e.line, Some(line), "{e}");
    assert_eq!(e.key.as_deref(), Some(key), "{e}");
    assert!(
        e.message.contains(fragment),
        "expected {fragment:?} in: {e}"
    );
    e
}

const MINIMAL: &str = "[service.api]\ncommand = \"./api\"\n";

#[test]
fn minimal_config_gets_every_default() {
    let c = ok(MINIMAL);
    assert_eq!(c.path, Path::new(FILE));
    assert_eq!(c.dir, Path::new("/srv/app"));
    let s = &c.settings;
    assert_eq!(s.data_dir, None);
    assert_eq!(s.domain, "localhost");
    assert_eq!(s.listen, "0.0.0.0:8080".parse().unwrap());
    assert_eq!(s.health_check_interval, Duration::from_secs(10));
    assert_eq!(s.max_restarts, 3);
    assert_eq!(s.restart_window, Duration::from_secs(300));
    assert_eq!(s.backoff_base, Duration::from_millis(1000));
    assert_eq!(s.backoff_max, Duration::from_millis(60000));
    assert_eq!(s.port_range, (30000, 40000));
    assert_eq!(s.uid_range, (200_000, 265_535));
    assert_eq!(s.stop_timeout, Duration::from_secs(10));
    assert_eq!(s.workers, 0);
    assert!(!s.metrics_public);
    assert_eq!(s.log_max_bytes, 10485760);
    assert_eq!(s.log_files, 3);

    let api = &c.services["api"];
    assert_eq!(api.name, "api");
    assert_eq!(api.argv, ["./api"]);
    assert_eq!(api.workdir, Path::new("/srv/app"));
    assert_eq!(api.health, None);
    assert_eq!(api.isolation, Isolation::Process);
    assert_eq!(api.idle_timeout, None);
    assert_eq!(api.startup_timeout, Duration::from_secs(10));
    assert_eq!(api.request_timeout, Duration::from_secs(60));
    assert_eq!(api.restart, RestartPolicy::OnFailure);
    assert!(api.storage_persist);
    assert!(api.env.is_empty());
    assert!(!api.env_clear);
    assert!(!api.autospawn);
    assert_eq!(api.max_instances, 0);
    assert!(c.instances.is_empty());
    assert_eq!(c.routing.default, None);
    assert!(c.routing.subdomain.is_empty());
    assert!(c.routing.path.is_empty());
}

#[test]
fn empty_file_is_a_valid_config() {
    let c = ok("");
    assert!(c.services.is_empty());
}

const FULL: &str = r#"
[settings]
data_dir = "./state"
domain = "Example.COM"
listen = "127.0.0.1:9090"
health_check_interval = 5
max_restarts = 7
restart_window = 60
backoff_base_ms = 250
backoff_max_ms = 8000
port_range = [31000, 31010]
stop_timeout = 3
workers = 2
metrics_public = true
log_max_bytes = 1000
log_files = 1

[service.api]
command = "uv run 'my app.py'"
args = ["--verbose"]
workdir = "srv/../api"
health = "/healthz"
isolation = "process"
idle_timeout = 0
startup_timeout = 20
request_timeout = 30
restart = "always"
storage_persist = false
socket_activation = false
read_paths = []
write_paths = []
env_clear = true
autospawn = false
max_instances = 5

[service.api.env]
ZED = "{port}"
DATA_DIR = "{data_dir}/{name}/{id}"
_X1 = "literal {{braces}}"

[service.web]
command = "/usr/bin/web"
workdir = "/opt/web"

[service.docs]
command = "docs"

[instances]
web = ["main"]
api = ["prod", "staging"]

[routing]
default = "web"
[routing.subdomain]
Admin = "api"
[routing.path]
"/docs" = "docs"
"/docs/v2/api" = "api"
"/" = "web"
"#;

#[test]
fn every_key_is_read() {
    let c = ok(FULL);
    let s = &c.settings;
    assert_eq!(s.data_dir.as_deref(), Some(Path::new("/srv/app/state")));
    assert_eq!(s.domain, "example.com");
    assert_eq!(s.listen, "127.0.0.1:9090".parse().unwrap());
    assert_eq!(s.health_check_interval, Duration::from_secs(5));
    assert_eq!(s.max_restarts, 7);
    assert_eq!(s.restart_window, Duration::from_secs(60));
    assert_eq!(s.backoff_base, Duration::from_millis(250));
    assert_eq!(s.backoff_max, Duration::from_millis(8000));
    assert_eq!(s.port_range, (31000, 31010));
    assert_eq!(s.stop_timeout, Duration::from_secs(3));
    assert_eq!(s.workers, 2);
    assert!(s.metrics_public);
    assert_eq!(s.log_max_bytes, 1000);
    assert_eq!(s.log_files, 1);

    let api = &c.services["api"];
    assert_eq!(api.argv, ["uv", "run", "my app.py", "--verbose"]);
    assert_eq!(api.workdir, Path::new("/srv/app/srv/../api"));
    assert_eq!(api.health.as_deref(), Some("/healthz"));
    assert_eq!(api.startup_timeout, Duration::from_secs(20));
    assert_eq!(api.request_timeout, Duration::from_secs(30));
    assert_eq!(api.restart, RestartPolicy::Always);
    assert!(!api.storage_persist);
    assert!(api.env_clear);
    assert_eq!(api.max_instances, 5);
    // File order, not alphabetical.
    let env: Vec<(&str, &str)> = api
        .env
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(
        env,
        [
            ("ZED", "{port}"),
            ("DATA_DIR", "{data_dir}/{name}/{id}"),
            ("_X1", "literal {{braces}}")
        ]
    );
    assert_eq!(c.services["web"].workdir, Path::new("/opt/web"));

    // File order: web before api.
    let pairs: Vec<(&str, &str)> = c
        .instances
        .iter()
        .map(|k| (k.service.as_str(), k.id.as_str()))
        .collect();
    assert_eq!(
        pairs,
        [("web", "main"), ("api", "prod"), ("api", "staging")]
    );

    assert_eq!(c.routing.default.as_deref(), Some("web"));
    assert_eq!(
        c.routing.subdomain.get("admin").map(String::as_str),
        Some("api")
    );
    let paths: Vec<&str> = c.routing.path.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(paths, ["/docs/v2/api", "/docs", "/"]);
}

#[test]
fn relative_config_path_is_made_absolute() {
    let c = Config::parse(MINIMAL, Path::new("./conf/tenement.toml")).unwrap();
    let cwd = std::env::current_dir().unwrap();
    assert_eq!(c.path, cwd.join("conf/tenement.toml"));
    assert_eq!(c.services["api"].workdir, cwd.join("conf"));
}

#[test]
fn workdir_dot_is_the_config_folder() {
    let c = ok("[service.api]\ncommand = \"x\"\nworkdir = \".\"\n");
    assert_eq!(c.services["api"].workdir, Path::new("/srv/app"));
}

// --- syntax and type errors ---

#[test]
fn toml_syntax_error_has_line() {
    let e = parse("[service.api]\ncommand = \"x\"\nargs = [\n\n").unwrap_err();
    assert_eq!(e.line, Some(3), "{e}");
    assert!(e.message.contains("unclosed array"), "{e}");
    assert_eq!(e.key, None);
    let e = parse("[settings]\nworkers = 1\n\n[service.api\ncommand = \"x\"\n").unwrap_err();
    assert_eq!(e.line, Some(4), "{e}");
    let e = parse("[service.api]\ncommand = \"x\"\ncommand = \"y\"\n").unwrap_err();
    assert_eq!(e.line, Some(3), "{e}");
    assert_eq!(e.message, "duplicate key `command`");
    let e = parse("[service.api]\ncommand = \"x\"\n[service.api]\n").unwrap_err();
    assert_eq!(e.line, Some(3), "{e}");
    assert_eq!(e.key.as_deref(), Some("service.api"), "{e}");
    let e = parse("[routing.path]\n\"/a\" = \"x\"\n\"/a\" = \"y\"\n").unwrap_err();
    assert_eq!(e.line, Some(3), "{e}");
    assert!(e.message.starts_with("duplicate key"), "{e}");
}

#[test]
fn unknown_key_suggests_the_nearest() {
    let e = refused(
        "\n[service.api]\ncomand = \"x\"\n",
        3,
        "service.api.comand",
        "unknown key `comand`",
    );
    assert_eq!(e.message, "unknown key `comand`, did you mean `command`?");
    assert_eq!(
        e.to_string(),
        "/srv/app/tenement.toml:3: key `service.api.comand`: unknown key `comand`, did you mean `command`?"
    );
    refused(
        "[settings]\nmax-restarts = 1\n",
        2,
        "settings.max-restarts",
        "did you mean `max_restarts`?",
    );
    refused(
        "[setting]\ndomain = \"x\"\n",
        1,
        "setting",
        "did you mean `settings`?",
    );
    refused(
        "[routing]\ndefualt = \"x\"\n",
        2,
        "routing.defualt",
        "did you mean `default`?",
    );
    refused(
        "[settings.tls]\ncertificate = \"x\"\n",
        2,
        "settings.tls.certificate",
        "unknown key `certificate`",
    );
}

#[test]
fn unknown_key_far_from_all_lists_the_valid_ones() {
    let e = refused(
        "[routing]\nzzzzzz = 1\n",
        2,
        "routing.zzzzzz",
        "unknown key `zzzzzz`;",
    );
    assert!(e.message.contains("default, subdomain, path"), "{e}");
}

#[test]
fn wrong_types_name_key_and_line() {
    refused(
        "[settings]\n\nmax_restarts = \"three\"\n",
        3,
        "settings.max_restarts",
        "non-negative integer",
    );
    refused(
        "[settings]\nmax_restarts = -1\n",
        2,
        "settings.max_restarts",
        "non-negative integer",
    );
    refused(
        "[settings]\nmetrics_public = \"yes\"\n",
        2,
        "settings.metrics_public",
        "expected a boolean",
    );
    refused(
        "[settings]\nport_range = [1, 70000]\n",
        2,
        "settings.port_range",
        "0 to 65535",
    );
    refused(
        "[settings]\nport_range = [1]\n",
        2,
        "settings.port_range",
        "length 1",
    );
    refused(
        "[service.api]\ncommand = 5\n",
        2,
        "service.api.command",
        "expected a string",
    );
    refused(
        "[service.api]\ncommand = \"x\"\nargs = [\"a\", 1]\n",
        3,
        "service.api.args",
        "expected a string",
    );
    refused(
        "[instances]\napi = \"prod\"\n",
        2,
        "instances.api",
        "expected an array",
    );
    refused(
        "[service.api.env]\nX = 1\n",
        2,
        "service.api.env.X",
        "expected a string",
    );
    refused("service = 3\n", 1, "service", "expected a table");
}

// --- names ---

#[test]
fn bad_service_name_is_refused() {
    refused(
        "\n[service.Api]\ncommand = \"x\"\n",
        2,
        "service.Api",
        "invalid service name \"Api\": must be lowercase",
    );
    refused(
        "[service.-api]\ncommand = \"x\"\n",
        1,
        "service.-api",
        "must start with a letter or a digit",
    );
    let long = "a".repeat(64);
    refused(
        &format!("[service.{long}]\ncommand = \"x\"\n"),
        1,
        &format!("service.{long}"),
        "at most 63",
    );
    refused(
        "[service.\"a.b\"]\ncommand = \"x\"\n",
        1,
        "service.\"a.b\"",
        "may only contain",
    );
}

#[test]
fn bad_instance_id_is_refused() {
    refused(
        &format!("{MINIMAL}[instances]\napi = [\"prod\",\n  \"Bob\"]\n"),
        5,
        "instances.api",
        "invalid instance id \"Bob\"",
    );
}

#[test]
fn duplicate_instance_is_refused() {
    refused(
        &format!("{MINIMAL}[instances]\napi = [\n \"prod\",\n \"prod\",\n]\n"),
        6,
        "instances.api",
        "duplicate instance `api:prod`",
    );
}

#[test]
fn instances_of_unknown_service_are_refused() {
    refused(
        &format!("{MINIMAL}[instances]\napx = [\"prod\"]\n"),
        4,
        "instances.apx",
        "did you mean `api`?",
    );
}

#[test]
fn instances_beyond_max_instances_are_refused() {
    refused(
        "[service.api]\ncommand = \"x\"\nmax_instances = 1\n[instances]\napi = [\"a\", \"b\"]\n",
        5,
        "instances.api",
        "max_instances is 1",
    );
}

mod interface;
mod values;
