//! Config tests: each value check, routing, and refused keys, each with
//! their line and key.

use super::*;

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
fn uid_range_is_two_ordered_uids_never_0_and_bounded() {
    let c = ok("[settings]\nuid_range = [100000, 100099]\n");
    assert_eq!(c.settings.uid_range, (100_000, 100_099));
    for (text, fragment) in [
        ("[0, 10]", "uid 0 is root"),
        (
            "[300000, 200000]",
            "low end 300000 is above high end 200000",
        ),
        ("[1, 4294967295]", "between 1 and 2147483646"),
        ("[1]", "length 1"),
        ("[-1, 5]", "invalid value"),
        ("[\"a\", 5]", "wrong type"),
    ] {
        refused(
            &format!("[settings]\nuid_range = {text}\n"),
            2,
            "settings.uid_range",
            fragment,
        );
    }
}

#[test]
fn trusted_proxies_are_addresses_or_blocks() {
    let c = ok("[settings]\ntrusted_proxies = [\"127.0.0.1\", \"::1\", \"10.0.0.0/8\"]\n");
    let shown: Vec<String> = c
        .settings
        .trusted_proxies
        .iter()
        .map(|c| c.to_string())
        .collect();
    assert_eq!(shown, ["127.0.0.1/32", "::1/128", "10.0.0.0/8"]);
    assert_eq!(c.to_json()["settings"]["trusted_proxies"][2], "10.0.0.0/8");
    assert!(ok("[settings]\n").settings.trusted_proxies.is_empty());
    refused(
        "[settings]\ntrusted_proxies = [\n  \"::1\",\n  \"caddy.local\",\n]\n",
        4,
        "settings.trusted_proxies",
        "is not an IP address",
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

#[test]
fn a_nul_byte_in_command_args_or_env_is_refused() {
    let why = "contains a NUL byte";
    refused(
        "[service.api]\ncommand = \"app\\u0000x\"\n",
        2,
        "service.api.command",
        why,
    );
    refused(
        "[service.api]\ncommand = \"app\"\nargs = [\"ok\", \"a\\u0000b\"]\n",
        3,
        "service.api.args",
        why,
    );
    refused(
        "[service.api]\ncommand = \"x\"\n[service.api.env]\nA = \"1\"\nB = \"\\u0000\"\n",
        5,
        "service.api.env.B",
        why,
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

#[test]
fn storage_quota_is_read_and_bounded() {
    let c = ok("[service.api]\ncommand = \"x\"\nstorage_quota_mb = 100\n");
    assert_eq!(c.services["api"].storage_quota_mb, Some(100));
    assert_eq!(c.to_json()["service"]["api"]["storage_quota_mb"], 100);
    assert_eq!(
        ok("[service.api]\ncommand = \"x\"\n").services["api"].storage_quota_mb,
        None
    );
    refused(
        "[service.api]\ncommand = \"x\"\nstorage_quota_mb = 0\n",
        3,
        "service.api.storage_quota_mb",
        "between 1 and 16777216",
    );
    refused(
        "[service.api]\ncommand = \"x\"\nstorage_quota_mb = 16777217\n",
        3,
        "service.api.storage_quota_mb",
        "between 1 and 16777216",
    );
}

#[test]
fn the_default_level_applies_only_where_isolation_is_not_written() {
    let mut c = ok("[service.api]\ncommand = \"x\"\n\
                    [service.low]\ncommand = \"x\"\nisolation = \"process\"\n\
                    [service.high]\ncommand = \"x\"\nisolation = \"sandbox\"\n");
    assert_eq!(c.services["api"].isolation, Isolation::Process);
    c.apply_overrides(crate::config::Overrides {
        default_isolation: Some(Isolation::Namespace),
        ..Default::default()
    });
    assert_eq!(c.services["api"].isolation, Isolation::Namespace);
    assert_eq!(c.services["low"].isolation, Isolation::Process);
    assert_eq!(c.services["high"].isolation, Isolation::Sandbox);
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
fn tls_certificates_are_read_with_their_places() {
    let c = ok(
        "[settings]\ndomain = \"example.com\"\n\n[settings.tls]\ncert = \"a.pem\"\nkey = \"b.pem\"\n\
         redirect_http = true\n\n[[settings.tls.certs]]\nnames = [\"Example.org\", \"*.example.org\"]\n\
         cert = \"/etc/org.pem\"\nkey = \"org.key\"\n",
    );
    let tls = c.settings.tls.expect("tls");
    assert_eq!(tls.https_listen, "0.0.0.0:443".parse().expect("address"));
    assert!(tls.redirect_http);
    assert_eq!(tls.certs.len(), 2);
    assert!(tls.certs[0].names.is_empty());
    assert_eq!(tls.certs[0].cert.path, Path::new("/srv/app/a.pem"));
    assert_eq!(tls.certs[0].cert.line, 5);
    assert_eq!(tls.certs[0].cert.key, "settings.tls.cert");
    assert_eq!(tls.certs[0].key.line, 6);
    assert_eq!(tls.certs[1].names, ["example.org", "*.example.org"]);
    assert_eq!(tls.certs[1].cert.path, Path::new("/etc/org.pem"));
    assert_eq!(tls.certs[1].key.key, "settings.tls.certs[0].key");
    assert_eq!(tls.certs[1].key.line, 12);
    let e = tls.certs[1].key.error("broken".into());
    assert_eq!(
        e.to_string(),
        "/srv/app/tenement.toml:12: key `settings.tls.certs[0].key`: broken"
    );
}

#[test]
fn tls_mistakes_are_refused_by_name_and_line() {
    refused(
        "[settings.tls]\ncert = \"a.pem\"\n",
        2,
        "settings.tls.key",
        "needs its `key`",
    );
    refused(
        "[settings.tls]\nredirect_http = true\n",
        1,
        "settings.tls.cert",
        "HTTPS needs a certificate",
    );
    refused(
        "[settings.tls]\ncert = \"a\"\nkey = \"b\"\nhttps_listen = \"443\"\n",
        4,
        "settings.tls.https_listen",
        "not an address",
    );
    refused(
        "[settings.tls]\nacme_email = \"nobody\"\n",
        2,
        "settings.tls.acme_email",
        "not an email address",
    );
    refused(
        "[settings.tls]\nacme_email = \"a@b.c\"\nacme_challenge = \"dns-01\"\n",
        3,
        "settings.tls.acme_challenge",
        "\"http-01\" or \"tls-alpn-01\"",
    );
    refused(
        "[settings.tls]\nacme_email = \"a@b.c\"\nacme_directory = \"http://ca.test/dir\"\n",
        3,
        "settings.tls.acme_directory",
        "not an https:// URL",
    );
    refused(
        "[settings.tls]\ncert = \"a\"\nkey = \"b\"\nacme_on_demand = true\n",
        4,
        "settings.tls.acme_on_demand",
        "needs `acme_email`",
    );
    refused(
        "[settings.tls]\ncert = \"a\"\nkey = \"b\"\nacme_on_demand_keep = 60\n",
        4,
        "settings.tls.acme_on_demand_keep",
        "needs `acme_email`",
    );
    refused(
        "[[settings.tls.certs]]\nnames = [\"bad name\"]\ncert = \"a\"\nkey = \"b\"\n",
        2,
        "settings.tls.certs[0].names",
        "not a domain name",
    );
}

#[test]
fn acme_keys_with_their_defaults() {
    let c = ok("[settings.tls]\nacme_email = \"ops@example.com\"\n");
    let tls = c.settings.tls.expect("tls");
    assert!(tls.certs.is_empty());
    let acme = tls.acme.expect("acme");
    assert_eq!(acme.email, "ops@example.com");
    assert_eq!(acme.directory, crate::config::LETS_ENCRYPT);
    assert_eq!(acme.challenge, "http-01");
    assert_eq!(acme.on_demand_per_hour, None);
    assert_eq!(acme.on_demand_keep, Duration::from_secs(3600));
    assert_eq!(acme.ca_root, None);
    let c = ok(
        "[settings.tls]\nacme_email = \"ops@example.com\"\nacme_directory = \"https://127.0.0.1:14000/dir\"\n\
         acme_challenge = \"tls-alpn-01\"\nacme_on_demand = true\nacme_ca_root = \"pebble.pem\"\n\
         acme_on_demand_keep = 0\n",
    );
    let acme = c.settings.tls.expect("tls").acme.expect("acme");
    assert_eq!(acme.directory, "https://127.0.0.1:14000/dir");
    assert_eq!(acme.challenge, "tls-alpn-01");
    assert_eq!(acme.on_demand_per_hour, Some(20));
    assert_eq!(acme.on_demand_keep, Duration::ZERO);
    let root = acme.ca_root.expect("ca root");
    assert!(root.path.is_absolute() && root.path.ends_with("pebble.pem"));
    assert_eq!(root.key, "settings.tls.acme_ca_root");
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
        "must be greater than 0",
    );
    refused(
        "[service.api]\ncommand = \"x\"\npids_max = 0\n",
        3,
        "service.api.pids_max",
        "must be greater than 0",
    );
}

#[test]
fn first_error_in_the_file_wins() {
    let text = "[service.b]\ncommand = \"x\"\nhealth = \"nope\"\n[service.a]\ncommand = \"x\"\ncpu_shares = 1\n";
    refused(text, 3, "service.b.health", "is not a path");
}

/// Every bounded duration, size and count: its largest value passes, one
/// above it and the largest TOML integer are refused with file, line and key
/// (a huge timeout once passed the check and aborted the server on use).
#[test]
fn every_duration_and_size_has_an_upper_bound_in_the_file() {
    use super::bounds;
    let settings = [
        bounds::HEALTH_CHECK_INTERVAL,
        bounds::RESTART_WINDOW,
        bounds::BACKOFF_BASE_MS,
        bounds::BACKOFF_MAX_MS,
        bounds::STOP_TIMEOUT,
        bounds::WORKERS,
        bounds::LOG_MAX_BYTES,
        bounds::LOG_FILES,
    ];
    let service = [
        bounds::IDLE_TIMEOUT,
        bounds::STARTUP_TIMEOUT,
        bounds::REQUEST_TIMEOUT,
        bounds::MEMORY_LIMIT_MB,
        bounds::CPU_SHARES,
        bounds::PIDS_MAX,
        bounds::STORAGE_QUOTA_MB,
    ];
    // backoff_max_ms must also be at least backoff_base_ms (default 1000).
    let file = |table: &str, key: &str, n: u64| -> String {
        let pre = if table == "settings" && key == "backoff_max_ms" {
            "backoff_base_ms = 0\n"
        } else {
            ""
        };
        if table == "settings" {
            format!("[settings]\n{pre}{key} = {n}\n[service.api]\ncommand = \"x\"\n")
        } else if table == "settings.tls" {
            format!("[settings.tls]\nacme_email = \"ops@example.com\"\n{key} = {n}\n[service.api]\ncommand = \"x\"\n")
        } else {
            format!("[service.api]\ncommand = \"x\"\n{key} = {n}\n")
        }
    };
    let cases = settings
        .iter()
        .map(|b| ("settings", b, "settings"))
        .chain(service.iter().map(|b| ("service", b, "service.api")))
        .chain([
            (
                "settings.tls",
                &bounds::ACME_ON_DEMAND_PER_HOUR,
                "settings.tls",
            ),
            ("settings.tls", &bounds::ACME_ON_DEMAND_KEEP, "settings.tls"),
        ]);
    let mut seen = 0;
    for (table, b, prefix) in cases {
        ok(&file(table, b.key, b.max));
        let line = if table == "settings" {
            if b.key == "backoff_max_ms" {
                3
            } else {
                2
            }
        } else {
            3
        };
        let full = format!("{prefix}.{}", b.key);
        for n in [b.max + 1, i64::MAX as u64] {
            // u32 keys stop at the type first; the type error names the key too.
            let fragment = if n > u64::from(u32::MAX)
                && matches!(b.key, "workers" | "log_files" | "acme_on_demand_per_hour")
            {
                ""
            } else {
                "must be between"
            };
            refused(&file(table, b.key, n), line, &full, fragment);
        }
        seen += 1;
    }
    // Every bound of a config key is exercised (the rest are API/CLI only).
    let config_keys = bounds::ALL
        .iter()
        .filter(|b| !matches!(b.key, "timeout_secs" | "since"))
        .count();
    assert_eq!(seen, config_keys);
}

/// `autospawn` lets anonymous requests create instances: it needs a cap,
/// whether max_instances is left out or written as 0.
#[test]
fn autospawn_needs_max_instances() {
    refused(
        "[service.api]\ncommand = \"x\"\nautospawn = true\n",
        3,
        "service.api.max_instances",
        "autospawn = true needs max_instances above 0",
    );
    refused(
        "[service.api]\ncommand = \"x\"\nautospawn = true\nmax_instances = 0\n",
        4,
        "service.api.max_instances",
        "is 0",
    );
    let c = ok("[service.api]\ncommand = \"x\"\nautospawn = true\nmax_instances = 1\n");
    assert!(c.services["api"].autospawn);
    // Without autospawn, 0 still means no cap.
    ok("[service.api]\ncommand = \"x\"\nautospawn = false\nmax_instances = 0\n");
}
