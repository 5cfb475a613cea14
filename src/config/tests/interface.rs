//! Config tests: loading a file, where the config and the data dir are
//! looked for, and the JSON view.

use super::*;

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
    let page = include_str!("../../../man/tenement.toml.5");
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
