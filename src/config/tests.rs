//! Tests for `Config::parse`: defaults, every refusal with its line and key,
//! and the JSON view.

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
        .map(|(s, i)| (s.as_str(), i.as_str()))
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

// --- values ---

#[test]
fn missing_command_is_refused() {
    refused(
        "[settings]\n[service.api]\nhealth = \"/h\"\n",
        2,
        "service.api.command",
        "missing",
    );
}

#[test]
fn empty_command_is_refused() {
    refused(
        "[service.api]\ncommand = \"  \"\n",
        2,
        "service.api.command",
        "is empty",
    );
    refused(
        "[service.api]\ncommand = \"''\"\n",
        2,
        "service.api.command",
        "program name is empty",
    );
}

#[test]
fn unterminated_quote_in_command_is_refused() {
    refused(
        "[service.api]\ncommand = \"run 'x\"\n",
        2,
        "service.api.command",
        "unterminated single quote",
    );
    refused(
        "[service.api]\ncommand = \"a && b\"\n",
        2,
        "service.api.command",
        "not run by a shell",
    );
}

#[test]
fn command_with_args_and_empty_command_string() {
    let c = ok("[service.api]\ncommand = \"python3\"\nargs = [\"-m\", \"http.server\", \"a b\"]\n");
    assert_eq!(
        c.services["api"].argv,
        ["python3", "-m", "http.server", "a b"]
    );
}

#[test]
fn unknown_isolation_and_restart_are_refused() {
    refused(
        "[service.api]\ncommand = \"x\"\nisolation = \"docker\"\n",
        3,
        "service.api.isolation",
        "unknown isolation \"docker\"",
    );
    refused(
        "[service.api]\ncommand = \"x\"\nrestart = \"sometimes\"\n",
        3,
        "service.api.restart",
        "unknown restart policy",
    );
    refused(
        "[service.api]\ncommand = \"x\"\nnetwork = \"bridge\"\n",
        3,
        "service.api.network",
        "unknown network",
    );
}

#[test]
fn network_none_needs_socket_activation() {
    refused(
        "[service.api]\ncommand = \"x\"\nisolation = \"process\"\nnetwork = \"none\"\n",
        4,
        "service.api.network",
        "needs socket_activation = true",
    );
}

#[test]
fn listen_must_be_an_address() {
    refused(
        "[settings]\nlisten = \"localhost:80\"\n",
        2,
        "settings.listen",
        "is not an address",
    );
    refused(
        "[settings]\nlisten = \"8080\"\n",
        2,
        "settings.listen",
        "is not an address",
    );
    assert_eq!(
        ok("[settings]\nlisten = \"[::]:80\"\n").settings.listen,
        "[::]:80".parse().unwrap()
    );
}

#[test]
fn port_range_must_be_ordered() {
    refused(
        "[settings]\nport_range = [40000, 30000]\n",
        2,
        "settings.port_range",
        "low end 40000 is above high end 30000",
    );
    refused(
        "[settings]\nport_range = [0, 10]\n",
        2,
        "settings.port_range",
        "0 cannot be handed",
    );
    assert_eq!(
        ok("[settings]\nport_range = [5, 5]\n").settings.port_range,
        (5, 5)
    );
}

#[test]
fn zero_durations_that_would_spin_are_refused() {
    refused(
        "[settings]\nhealth_check_interval = 0\n",
        2,
        "settings.health_check_interval",
        "greater than 0",
    );
    refused(
        "[service.api]\ncommand = \"x\"\nstartup_timeout = 0\n",
        3,
        "service.api.startup_timeout",
        "greater than 0",
    );
    refused(
        "[settings]\nbackoff_base_ms = 500\nbackoff_max_ms = 100\n",
        3,
        "settings.backoff_max_ms",
        "at least",
    );
}

#[test]
fn domain_is_checked_and_lowercased() {
    assert_eq!(
        ok("[settings]\ndomain = \"Apps.Example.com\"\n")
            .settings
            .domain,
        "apps.example.com"
    );
    refused(
        "[settings]\ndomain = \"exa mple.com\"\n",
        2,
        "settings.domain",
        "is not a domain name",
    );
    refused(
        "[settings]\ndomain = \"example.com.\"\n",
        2,
        "settings.domain",
        "empty label",
    );
    refused(
        "[settings]\ndomain = \"\"\n",
        2,
        "settings.domain",
        "must not be empty",
    );
}

#[test]
fn health_must_be_a_path() {
    refused(
        "[service.api]\ncommand = \"x\"\nhealth = \"health\"\n",
        3,
        "service.api.health",
        "is not a path",
    );
}

#[test]
fn env_names_must_be_valid() {
    refused(
        "[service.api]\ncommand = \"x\"\n[service.api.env]\nOK = \"1\"\n\"1BAD\" = \"x\"\n",
        5,
        "service.api.env.1BAD",
        "not a valid environment variable name",
    );
    refused(
        "[service.api]\ncommand = \"x\"\n[service.api.env]\n\"A-B\" = \"x\"\n\"A B\" = \"y\"\n",
        4,
        "service.api.env.A-B",
        "not a valid environment variable name",
    );
    refused(
        "[service.api]\ncommand = \"x\"\n[service.api.env]\n\"A B\" = \"y\"\n",
        4,
        "service.api.env.\"A B\"",
        "not a valid environment variable name",
    );
}

#[test]
fn unknown_placeholder_in_env_is_refused() {
    refused(
        "[service.api]\ncommand = \"x\"\n[service.api.env]\nURL = \"http://127.0.0.1:{PORT}\"\n",
        4,
        "service.api.env.URL",
        "unknown placeholder `{PORT}`",
    );
    refused(
        "[service.api]\ncommand = \"x\"\nenv = { A = \"{id\" }\n",
        3,
        "service.api.env.A",
        "unclosed `{`",
    );
}

// --- routing ---

const TWO: &str = "[service.api]\ncommand = \"x\"\n[service.web]\ncommand = \"y\"\n";

#[test]
fn routes_to_unknown_services_are_refused() {
    refused(
        &format!("{TWO}[routing]\ndefault = \"wbe\"\n"),
        6,
        "routing.default",
        "unknown service `wbe`",
    );
    refused(
        &format!("{TWO}[routing.subdomain]\nadmin = \"nope\"\n"),
        6,
        "routing.subdomain.admin",
        "unknown service `nope`",
    );
    refused(
        &format!("{TWO}[routing.path]\n\"/docs\" = \"nope\"\n"),
        6,
        "routing.path.\"/docs\"",
        "unknown service `nope`",
    );
}

#[test]
fn subdomain_equal_to_a_service_is_ambiguous() {
    refused(
        &format!("{TWO}[routing.subdomain]\napi = \"web\"\n"),
        6,
        "routing.subdomain.api",
        "ambiguous",
    );
    refused(
        &format!("{TWO}[routing.subdomain]\nWEB = \"api\"\n"),
        6,
        "routing.subdomain.WEB",
        "ambiguous",
    );
}

#[test]
fn subdomain_must_be_one_label_and_unique() {
    refused(
        &format!("{TWO}[routing.subdomain]\n\"a.b\" = \"web\"\n"),
        6,
        "routing.subdomain.\"a.b\"",
        "no dots",
    );
    refused(
        &format!("{TWO}[routing.subdomain]\nadmin = \"web\"\nADMIN = \"api\"\n"),
        7,
        "routing.subdomain.ADMIN",
        "duplicate route",
    );
}

#[test]
fn path_prefixes_start_with_slash_and_are_unique() {
    refused(
        &format!("{TWO}[routing.path]\n\"docs\" = \"web\"\n"),
        6,
        "routing.path.docs",
        "must start with \"/\"",
    );
    refused(
        &format!("{TWO}[routing.path]\n\"/docs\" = \"web\"\n\"/docs/\" = \"api\"\n"),
        7,
        "routing.path.\"/docs/\"",
        "duplicate route",
    );
}

// --- not supported yet ---

#[test]
fn keys_not_built_yet_are_refused_by_name_and_line() {
    let cases: &[(&str, &str, &str)] = &[(
        "storage_quota_mb = 100",
        "service.api.storage_quota_mb",
        "`storage_quota_mb`",
    )];
    for (line, key, what) in cases {
        let text = format!("[service.api]\ncommand = \"x\"\n\n{line}\n");
        let e = refused(&text, 4, key, what);
        assert!(e.message.contains("is not supported yet"), "{e}");
    }
}

#[test]
fn isolation_levels_and_their_keys_are_read() {
    let c = ok("[service.api]\ncommand = \"x\"\nisolation = \"namespace\"\nuser = \"app\"\n");
    let api = &c.services["api"];
    assert_eq!(api.isolation, Isolation::Namespace);
    assert_eq!(api.user, Some(crate::config::User::Name("app".into())));
    let c = ok("[service.api]\ncommand = \"x\"\nisolation = \"sandbox\"\nsocket_activation = true\n\
                network = \"none\"\nuser = 1000\nread_paths = [\"/etc\", \"rel\"]\nwrite_paths = [\"/srv/w\"]\n");
    let api = &c.services["api"];
    assert_eq!(api.isolation, Isolation::Sandbox);
    assert!(api.network_none);
    assert_eq!(api.user, Some(crate::config::User::Uid(1000)));
    assert_eq!(api.read_paths[0], std::path::Path::new("/etc"));
    assert!(api.read_paths[1].is_absolute() && api.read_paths[1].ends_with("rel"));
    assert_eq!(api.write_paths, [std::path::PathBuf::from("/srv/w")]);
    let c = ok("[service.api]\ncommand = \"x\"\nnetwork = \"host\"\n");
    assert!(!c.services["api"].network_none);
}

#[test]
fn network_none_needs_the_sandbox() {
    refused(
        "[service.api]\ncommand = \"x\"\nsocket_activation = true\nnetwork = \"none\"\n",
        4,
        "service.api.network",
        "needs isolation = \"sandbox\"",
    );
}

#[test]
fn tls_table_is_refused_by_name_and_line() {
    let e = refused(
        "[settings]\ndomain = \"example.com\"\n\n[settings.tls]\ncert = \"a.pem\"\nkey = \"b.pem\"\n",
        4,
        "settings.tls",
        "is not supported yet",
    );
    assert!(e.message.contains("[settings.tls]"), "{e}");
    refused(
        "[settings]\ntls = { cert = \"a.pem\" }\n",
        2,
        "settings.tls",
        "is not supported yet",
    );
}

#[test]
fn scale_to_zero_keys_are_supported() {
    let c = ok(
        "[service.api]\ncommand = \"x\"\nidle_timeout = 300\nsocket_activation = true\n\
                autospawn = true\nmax_instances = 7\n",
    );
    let api = &c.services["api"];
    assert_eq!(api.idle_timeout, Some(Duration::from_secs(300)));
    assert!(api.socket_activation);
    assert!(api.autospawn);
    assert_eq!(api.max_instances, 7);
    let c = ok("[service.api]\ncommand = \"x\"\nidle_timeout = 0\n");
    assert_eq!(c.services["api"].idle_timeout, None);
    assert!(!c.services["api"].socket_activation);
}

#[test]
fn defaults_of_unbuilt_keys_are_accepted() {
    let c = ok(
        "[service.api]\ncommand = \"x\"\nisolation = \"process\"\nsocket_activation = false\n\
                idle_timeout = 0\nautospawn = false\nread_paths = []\nwrite_paths = []\n",
    );
    assert_eq!(c.services["api"].isolation, Isolation::Process);
}

#[test]
fn user_of_wrong_type_is_a_type_error_not_unsupported() {
    refused(
        "[service.api]\ncommand = \"x\"\nuser = true\n",
        3,
        "service.api.user",
        "user name or a numeric uid",
    );
}

#[test]
fn cgroup_limits_are_read_and_checked_against_the_kernel_ranges() {
    let text =
        "[service.api]\ncommand = \"x\"\nmemory_limit_mb = 64\ncpu_shares = 512\npids_max = 100\n";
    let c = ok(text);
    let api = &c.services["api"];
    assert_eq!(
        (api.memory_limit_mb, api.cpu_shares, api.pids_max),
        (Some(64), Some(512), Some(100))
    );
    let json = c.to_json();
    assert_eq!(json["service"]["api"]["memory_limit_mb"], 64);
    let c = ok("[service.api]\ncommand = \"x\"\n");
    assert_eq!(c.services["api"].pids_max, None);
    refused(
        "[service.api]\ncommand = \"x\"\ncpu_shares = 1\n",
        3,
        "service.api.cpu_shares",
        "must be between 2 and 262144",
    );
    refused(
        "[service.api]\ncommand = \"x\"\nmemory_limit_mb = 0\n",
        3,
        "service.api.memory_limit_mb",
        "must be at least 1",
    );
    refused(
        "[service.api]\ncommand = \"x\"\npids_max = 0\n",
        3,
        "service.api.pids_max",
        "must be at least 1",
    );
}

#[test]
fn first_error_in_the_file_wins() {
    let text = "[service.b]\ncommand = \"x\"\nhealth = \"nope\"\n[service.a]\ncommand = \"x\"\ncpu_shares = 1\n";
    refused(text, 3, "service.b.health", "is not a path");
}

// --- the rest of the interface ---

#[test]
fn load_reports_unreadable_file() {
    let e = Config::load(Path::new("/nonexistent/tenement.toml")).unwrap_err();
    assert_eq!(e.line, None);
    assert_eq!(
        e.to_string(),
        "/nonexistent/tenement.toml: cannot read config: no such file or directory"
    );
}

#[test]
fn load_reads_a_file() {
    let dir = crate::state::testdir::TempDir::new("config-load");
    let path = dir.0.join("tenement.toml");
    std::fs::write(&path, MINIMAL).unwrap();
    let c = Config::load(&path).unwrap();
    assert_eq!(c.dir, dir.0);
}

#[test]
fn config_lookup_order() {
    let cwd = std::env::current_dir().unwrap();
    let none = |_: &Path| false;
    let all = |_: &Path| true;
    let etc = |p: &Path| p == Path::new("/etc/tenement/tenement.toml");
    let env = Some(OsStr::new("env.toml"));
    // The flag wins, even over an existing file, and need not exist.
    assert_eq!(
        locate_with(Some(Path::new("x/t.toml")), env, all),
        Some(cwd.join("x/t.toml"))
    );
    assert_eq!(
        locate_with(Some(Path::new("/a/b.toml")), None, none),
        Some(PathBuf::from("/a/b.toml"))
    );
    // Then $TENEMENT_CONFIG, unless empty.
    assert_eq!(locate_with(None, env, all), Some(cwd.join("env.toml")));
    assert_eq!(
        locate_with(None, Some(OsStr::new("")), all),
        Some(cwd.join("tenement.toml"))
    );
    // Then ./tenement.toml, then /etc.
    assert_eq!(
        locate_with(None, None, all),
        Some(cwd.join("tenement.toml"))
    );
    assert_eq!(
        locate_with(None, None, etc),
        Some(PathBuf::from("/etc/tenement/tenement.toml"))
    );
    assert_eq!(locate_with(None, None, none), None);
}

#[test]
fn data_dir_lookup_order() {
    let cwd = std::env::current_dir().unwrap();
    let c = ok("[settings]\ndata_dir = \"d\"\n");
    let env = Some(OsStr::new("/from/env"));
    let flag = Some(Path::new("./rel"));
    assert_eq!(
        resolve_data_dir_with(flag, env, Some(&c), true),
        cwd.join("rel")
    );
    assert_eq!(
        resolve_data_dir_with(None, env, Some(&c), true),
        Path::new("/from/env")
    );
    assert_eq!(
        resolve_data_dir_with(None, Some(OsStr::new("e")), None, true),
        cwd.join("e")
    );
    assert_eq!(
        resolve_data_dir_with(None, Some(OsStr::new("")), Some(&c), true),
        Path::new("/srv/app/d")
    );
    assert_eq!(
        resolve_data_dir_with(None, None, Some(&c), true),
        Path::new("/srv/app/d")
    );
    assert_eq!(
        resolve_data_dir_with(None, None, Some(&ok(MINIMAL)), true),
        Path::new("/var/lib/tenement")
    );
    assert_eq!(
        resolve_data_dir_with(None, None, None, true),
        Path::new("/var/lib/tenement")
    );
    assert_eq!(
        resolve_data_dir_with(None, None, None, false),
        cwd.join("data")
    );
}

#[test]
fn data_dir_flag_wins_in_the_public_function() {
    assert_eq!(
        resolve_data_dir(Some(Path::new("/x")), None),
        Path::new("/x")
    );
}

#[test]
fn json_shows_every_resolved_setting() {
    let c = ok(FULL);
    let j = c.to_json();
    assert_eq!(j["path"], FILE);
    assert_eq!(j["settings"]["domain"], "example.com");
    assert_eq!(j["settings"]["listen"], "127.0.0.1:9090");
    assert_eq!(j["settings"]["data_dir"], "/srv/app/state");
    assert_eq!(j["settings"]["backoff_base_ms"], 250);
    assert_eq!(j["settings"]["restart_window"], 60);
    assert_eq!(j["settings"]["port_range"], json!([31000, 31010]));
    assert_eq!(j["settings"]["tls"], Value::Null);
    assert_eq!(
        j["service"]["api"]["argv"],
        json!(["uv", "run", "my app.py", "--verbose"])
    );
    assert_eq!(j["service"]["api"]["restart"], "always");
    assert_eq!(j["service"]["api"]["isolation"], "process");
    assert_eq!(j["service"]["api"]["startup_timeout"], 20);
    assert_eq!(
        j["service"]["api"]["env"]["DATA_DIR"],
        "{data_dir}/{name}/{id}"
    );
    assert_eq!(j["service"]["web"]["health"], Value::Null);
    assert_eq!(j["instances"]["api"], json!(["prod", "staging"]));
    assert_eq!(j["routing"]["default"], "web");
    assert_eq!(j["routing"]["subdomain"]["admin"], "api");
    assert_eq!(
        j["routing"]["path"][0],
        json!({"prefix": "/docs/v2/api", "service": "api"})
    );

    let defaults = ok(MINIMAL).to_json();
    assert_eq!(defaults["settings"]["data_dir"], Value::Null);
    assert_eq!(defaults["settings"]["log_max_bytes"], 10485760);
    assert_eq!(defaults["routing"]["path"], json!([]));
}

#[test]
fn service_defined_only_by_its_env_table_lacks_command() {
    refused(
        "[settings]\n\n[service.api.env]\nX = \"1\"\n",
        3,
        "service.api.command",
        "missing",
    );
}

#[test]
fn dotted_keys_and_inline_tables_work_like_tables() {
    let c = ok("service.api.command = \"a\"\nservice.web = { command = \"b\", args = [\"c\"] }\n");
    assert_eq!(c.services["api"].argv, ["a"]);
    assert_eq!(c.services["web"].argv, ["b", "c"]);
    refused(
        "service.web = { command = \"b\",\n comand = \"c\" }\n",
        2,
        "service.web.comand",
        "did you mean `command`?",
    );
}

#[test]
fn man_page_example_parses() {
    let page = include_str!("../../man/tenement.toml.5");
    let example = page
        .split(".SH \"EXAMPLE\"")
        .nth(1)
        .expect("man page has an EXAMPLE section");
    let body = example
        .split(".nf\n")
        .nth(1)
        .and_then(|b| b.split("\n.fi").next())
        .expect(".nf ... .fi");
    let text = body
        .replace("\\(dq", "\"")
        .replace("\\-", "-")
        .replace("\\e", "\\");
    let c = ok(&text);
    assert_eq!(c.settings.domain, "example.com");
    assert_eq!(
        c.services["notes"].workdir,
        Path::new("/srv/app/apps/notes")
    );
    assert_eq!(
        c.services["docs"].argv,
        [
            "sh",
            "-c",
            "exec python3 -m http.server --bind 127.0.0.1 $PORT"
        ]
    );
    assert_eq!(c.routing.path, [("/docs".to_string(), "docs".to_string())]);
}

#[test]
fn references_to_a_broken_service_report_the_service_itself() {
    let text = "[instances]\napi = [\"prod\"]\n[routing]\ndefault = \"api\"\n[service.api]\ncommand = \"'\"\n";
    refused(text, 6, "service.api.command", "unterminated single quote");
}

/// The same mistake twice: the one earlier in the file is reported, for
/// every kind of mistake (unknown key, wrong type, a value the checks
/// refuse), whether the two are in tables whose names sort the other way,
/// in one table, or in different sections.
#[test]
fn errors_are_reported_in_file_order() {
    let kinds: [(&str, &str, &str); 4] = [
        ("bogus = 1", "bogus", "unknown key"),
        ("idle_timeout = \"x\"", "idle_timeout", "wrong type"),
        ("health = \"nope\"", "health", "not a path"),
        ("env = { \"A B\" = \"x\" }", "env", ""),
    ];
    for (bad, key, fragment) in kinds {
        // [service.zeta] comes first in the file, [service.alpha] sorts first.
        let text = format!(
            "[service.zeta]\ncommand = \"a\"\n{bad}\n\n[service.alpha]\ncommand = \"b\"\n{bad}\n"
        );
        let e = parse(&text).expect_err(&text);
        assert_eq!(e.line, Some(3), "{text}\n{e}");
        assert!(
            e.key
                .as_deref()
                .unwrap_or("")
                .starts_with(&format!("service.zeta.{key}")),
            "{e}"
        );
        assert!(e.message.contains(fragment), "{e}");
    }
    // Two different mistakes in one table: the earlier line wins, whatever
    // the keys' names.
    refused(
        "[service.api]\ncommand = \"a\"\nidle_timeout = \"x\"\nbogus = 1\n",
        3,
        "service.api.idle_timeout",
        "wrong type",
    );
    refused(
        "[service.api]\ncommand = \"a\"\nzzz = 1\nidle_timeout = \"x\"\n",
        3,
        "service.api.zzz",
        "unknown key",
    );
    // Sections: [settings] written after [service.*].
    refused(
        "[service.api]\ncommand = \"a\"\nbogus = 1\n[settings]\nbogus = 1\n",
        3,
        "service.api.bogus",
        "unknown key",
    );
    refused(
        "[settings]\nstop_timeout = \"x\"\n[service.api]\ncommand = \"a\"\nbogus = 1\n",
        2,
        "settings.stop_timeout",
        "wrong type",
    );
}

/// `command` and `args` take the placeholders `env` takes, and refuse the
/// ones it refuses, naming the key.
#[test]
fn command_and_args_templates_are_checked_like_env() {
    for p in PLACEHOLDERS {
        ok(&format!(
            "[service.api]\ncommand = \"./api --{p} {{{p}}}\"\nargs = [\"{{{p}}}\"]\n"
        ));
    }
    ok("[service.api]\ncommand = \"sh -c 'echo {{}}'\"\n");
    refused(
        "[service.api]\ncommand = \"./api --port {prot}\"\n",
        2,
        "service.api.command",
        "unknown placeholder `{prot}`",
    );
    refused(
        "[service.api]\ncommand = \"./api\"\nargs = [\"ok\", \"{nope}\"]\n",
        3,
        "service.api.args",
        "unknown placeholder `{nope}`",
    );
    refused(
        "[service.api]\ncommand = \"sh -c 'echo {'\"\n",
        2,
        "service.api.command",
        "unclosed",
    );
}
