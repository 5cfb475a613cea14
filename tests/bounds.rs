//! Huge and hostile numbers at every surface: a duration or size beyond its
//! bound is refused where it is read (config: file, line and key; API: 400
//! with a JSON reason; CLI: exit 2), and the server keeps answering. Before
//! the bounds, each of these aborted the server (release builds abort on
//! panic) when the value was first used in a deadline.

mod util;

use std::path::Path;

use util::*;

const HUGE: &str = "9223372036854775807";
const HUGER: &str = "18446744073709551615";

fn config(extra_settings: &str, extra_service: &str) -> String {
    // The test settings set health_check_interval themselves.
    let mut head = settings(extra_settings);
    if extra_settings.starts_with("health_check_interval") {
        head = head.replacen("health_check_interval = 2\n", "", 1);
    }
    format!(
        "{}{}[instances]\napi = [\"one\"]\n",
        head,
        py_service(
            "api",
            "echo.py",
            &format!("health = \"/health\"\n{extra_service}")
        )
    )
}

/// Asserts `ten config --check` refuses `text`, naming the file, the line
/// of `key` and the key.
fn check_refuses(dir: &Path, text: &str, key: &str) {
    let path = dir.join("tenement.toml");
    std::fs::write(&path, text).unwrap();
    let out = ten_raw(
        dir,
        &["--config", path.to_str().unwrap(), "config", "--check"],
    );
    assert_eq!(out.status.code(), Some(1), "{key}: {}", describe(&out));
    let err = stderr(&out);
    let last = key.rsplit('.').next().unwrap();
    let line = text
        .lines()
        .position(|l| l.starts_with(&format!("{last} =")))
        .unwrap()
        + 1;
    assert!(err.contains("tenement.toml"), "{key}: file named: {err}");
    assert!(
        err.contains(&format!(":{line}")),
        "{key}: line {line} named: {err}"
    );
    assert!(err.contains(key), "{key}: key named: {err}");
}

#[test]
fn huge_durations_and_sizes_in_the_config_are_refused_by_the_check() {
    let dir = Scratch::new("bounds_config");
    for key in [
        "health_check_interval",
        "restart_window",
        "backoff_base_ms",
        "backoff_max_ms",
        "stop_timeout",
        "log_max_bytes",
    ] {
        let text = config(&format!("{key} = {HUGE}"), "");
        check_refuses(&dir.root, &text, &format!("settings.{key}"));
    }
    for key in [
        "idle_timeout",
        "startup_timeout",
        "request_timeout",
        "memory_limit_mb",
        "pids_max",
        "cpu_shares",
    ] {
        let text = config("", &format!("{key} = {HUGE}"));
        check_refuses(&dir.root, &text, &format!("service.api.{key}"));
    }
}

#[test]
fn server_survives_huge_numbers_from_api_cli_and_reload() {
    let server = Server::start("bounds_api", &config("", ""));
    server.wait_running("api:one");
    let token = server.admin_token.clone();
    let auth = format!("Bearer {token}");
    let host = server.addr.to_string();
    let post = |path: &str, body: &str| {
        server.http(
            "POST",
            &host,
            path,
            &[
                ("Authorization", &auth),
                ("Content-Type", "application/json"),
            ],
            body.as_bytes(),
        )
    };
    // Durations beyond the bound, beyond u64, negative, fractional, wrong type.
    for timeout in [
        HUGER,
        HUGE,
        "86401",
        "0",
        "1e30",
        "-1",
        "1.5",
        "\"60\"",
        "340282366920938463463374607431768211456",
    ] {
        let body = format!("{{\"service\":\"api\",\"id\":\"two\",\"timeout_secs\":{timeout}}}");
        let resp = post("/api/deploy", &body);
        assert_eq!(resp.status, 400, "timeout_secs {timeout}: {}", resp.text());
        let reason = resp.json()["error"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        assert!(!reason.is_empty(), "timeout_secs {timeout}: a JSON reason");
        // A whole number that fits the type is refused by the bound, by name.
        if timeout.parse::<u64>().is_ok() {
            assert!(
                reason.contains("timeout_secs"),
                "timeout_secs {timeout}: reason names the field: {reason}"
            );
        }
    }
    for since in [HUGER, "99999999999999999d", "3651d", "213503982334601s"] {
        let resp = server.api(
            "GET",
            &format!("/api/logs?since={since}"),
            Some(&token),
            None,
        );
        assert_eq!(resp.status, 400, "since={since}: {}", resp.text());
        assert!(resp.json()["error"]
            .as_str()
            .unwrap_or_default()
            .contains("since"));
    }
    // The CLI refuses the same values as bad usage, before asking the server.
    for args in [
        vec!["deploy", "api:two", "--timeout", HUGER],
        vec!["deploy", "api:two", "--timeout", "86401"],
        vec!["logs", "api:one", "--since", "3651d"],
        vec!["logs", "api:one", "--since", HUGER],
    ] {
        let out = server.ten(&args);
        assert_eq!(
            out.status.code(),
            Some(2),
            "ten {}: {}",
            args.join(" "),
            describe(&out)
        );
    }
    // A reload of a file with a huge value is refused; the old config stays.
    let good = std::fs::read_to_string(&server.config).unwrap();
    std::fs::write(
        &server.config,
        config("stop_timeout = 9223372036854775807", ""),
    )
    .unwrap();
    let out = server.ten(&["reload"]);
    assert_ne!(
        out.status.code(),
        Some(0),
        "reload of a huge stop_timeout: {}",
        describe(&out)
    );
    assert!(stderr(&out).contains("stop_timeout"), "{}", describe(&out));
    std::fs::write(&server.config, good).unwrap();
    // Still alive and serving: health, the instance, a stop with the old timeout.
    let health = server.http("GET", &host, "/health", &[], b"");
    assert_eq!(health.status, 200, "{}", server.log());
    server.echo("one.api.localhost", "/");
    server.ten_ok(&["stop", "api:one"]);
    assert_eq!(server.http("GET", &host, "/health", &[], b"").status, 200);
}

/// Anonymous requests for made-up ids of an autospawn service create at
/// most a burst of 12 instances per service, then get 503 with Retry-After
/// (logged), even far below max_instances.
#[test]
fn autospawn_creation_is_rate_limited_per_service() {
    let text = format!(
        "{}{}",
        settings(""),
        py_service(
            "api",
            "echo.py",
            "autospawn = true\nmax_instances = 40\nstartup_timeout = 30"
        )
    );
    let server = Server::start("bounds_autospawn", &text);
    let addr = server.addr;
    let threads: Vec<_> = (0..20)
        .map(|i| {
            std::thread::spawn(move || {
                let mut conn = Conn::open(addr);
                let resp = conn.request("GET", &format!("u{i}.api.localhost"), "/", &[], b"");
                (resp.status, resp.header("retry-after").map(str::to_string))
            })
        })
        .collect();
    let results: Vec<_> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    let ok = results.iter().filter(|(s, _)| *s == 200).count();
    let limited: Vec<_> = results.iter().filter(|(s, _)| *s == 503).collect();
    assert_eq!(ok, 12, "{results:?}\n{}", server.log());
    assert_eq!(limited.len(), 8, "{results:?}");
    assert!(
        limited.iter().all(|(_, r)| r.is_some()),
        "Retry-After on each: {results:?}"
    );
    assert_eq!(server.instances().len(), 12);
    assert!(server.log().contains("not autospawned"), "{}", server.log());
    // A request for an instance that exists is never limited.
    let created = results.iter().position(|(s, _)| *s == 200).unwrap();
    assert_eq!(
        server
            .http("GET", &format!("u{created}.api.localhost"), "/", &[], b"")
            .status,
        200
    );
}
