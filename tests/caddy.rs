//! Behind Caddy: `ten caddy` prints a Caddyfile that `caddy adapt` accepts
//! (on-demand TLS asking tenement, reverse proxy to tenement), the `ask`
//! endpoint `GET /api/tls/allowed?domain=NAME` answers 200 only for names
//! tenement serves, without a token, and a real Caddy run from that
//! Caddyfile serves an instance host over HTTPS and refuses an unknown one.

mod util;

use util::*;

#[test]
fn the_caddyfile_is_accepted_by_caddy_and_asks_tenement() {
    if !tools_present(&["caddy"]) {
        return;
    }
    let scratch = Scratch::new("caddyfile");
    scratch.write(
        "tenement.toml",
        "[settings]\ndomain = \"example.com\"\nlisten = \"127.0.0.1:9123\"\n\n[service.notes]\ncommand = \"true\"\n",
    );
    let out = ten_raw(&scratch.path(""), &["caddy", "--domain", "example.com"]);
    assert!(out.status.success(), "{}", describe(&out));
    let text = stdout(&out);
    assert!(
        text.contains("ask http://127.0.0.1:9123/api/tls/allowed"),
        "{text}"
    );
    assert!(text.contains("reverse_proxy 127.0.0.1:9123"), "{text}");
    let file = scratch.write("Caddyfile", &text);
    let adapted = std::process::Command::new("caddy")
        .args(["adapt", "--adapter", "caddyfile", "--config"])
        .arg(&file)
        .output()
        .expect("run caddy adapt");
    assert!(adapted.status.success(), "{}\n{text}", describe(&adapted));
    // No warnings either (unformatted input, needless directives).
    assert!(
        !stderr(&adapted).contains("\"warn\""),
        "{}\n{text}",
        describe(&adapted)
    );
    let json: serde_json::Value = serde_json::from_slice(&adapted.stdout).expect("caddy's JSON");
    let tls = &json["apps"]["tls"]["automation"];
    assert_eq!(
        tls["on_demand"]["ask"], "http://127.0.0.1:9123/api/tls/allowed",
        "{json:#}"
    );
    assert_eq!(tls["policies"][0]["on_demand"], true, "{json:#}");
    let server = &json["apps"]["http"]["servers"]["srv0"];
    assert_eq!(server["listen"][0], ":443", "{json:#}");
    let handler = &server["routes"][0]["handle"][0];
    assert_eq!(handler["handler"], "reverse_proxy", "{json:#}");
    assert_eq!(
        handler["upstreams"][0]["dial"], "127.0.0.1:9123",
        "{json:#}"
    );
}

#[test]
fn the_ask_endpoint_allows_served_names_only() {
    if !tools_present(&["python3"]) {
        return;
    }
    let config = format!(
        "{}{}{}max_instances = 3\n[instances]\napi = [\"prod\"]\nnotes = [\"alice\"]\n",
        settings(""),
        py_service("api", "echo.py", "health = \"/health\""),
        py_service("notes", "echo.py", "autospawn = true"),
    );
    let server = Server::start("caddy_ask", &config);
    server.wait_running("api:prod");
    server.wait_running("notes:alice");
    let host = server.addr.to_string();
    let ask = |name: &str| {
        let resp = server.http(
            "GET",
            &host,
            &format!("/api/tls/allowed?domain={name}"),
            &[],
            b"",
        );
        (resp.status, resp.text())
    };
    // Instances, services and the root domain: yes, no token needed.
    for name in [
        "prod.api.localhost",
        "PROD.API.LOCALHOST.",
        "alice.notes.localhost",
        "api.localhost",
        "notes.localhost",
        "localhost",
        // An autospawn service's valid new id, within max_instances.
        "bob.notes.localhost",
    ] {
        assert_eq!(ask(name).0, 200, "{name}: {:?}", ask(name));
    }
    // Unknown and malformed names: no.
    for name in [
        "ghost.api.localhost",
        "nosuch.localhost",
        "a.b.api.localhost",
        "example.org",
        "127.0.0.1",
        "bad_id.notes.localhost",
        "-x.notes.localhost",
        "%2e%2e.api.localhost",
        "",
    ] {
        assert_eq!(ask(name).0, 404, "{name}: {:?}", ask(name));
    }
    let resp = server.http("GET", &host, "/api/tls/allowed", &[], b"");
    assert_eq!(resp.status, 400, "{}", resp.text());
    // A stopped instance is no longer served.
    server.ten_ok(&["stop", "api:prod"]);
    assert_eq!(ask("prod.api.localhost").0, 404);
    // Rate-limited per address: a burst, then 429 with Retry-After.
    let mut conn = Conn::open(server.addr);
    let mut limited = None;
    for i in 0..200 {
        let resp = conn.request("GET", &host, "/api/tls/allowed?domain=localhost", &[], b"");
        if resp.status == 429 {
            limited = Some((i, resp));
            break;
        }
        assert_eq!(resp.status, 200);
    }
    let (i, resp) = limited.expect("429 within 200 asks");
    assert!(i >= 40, "429 after only {i} asks");
    assert!(resp.header("Retry-After").is_some(), "{}", resp.text());
}

/// Stops Caddy when the test ends, however it ends.
struct Caddy(std::process::Child);

impl Drop for Caddy {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

#[test]
fn caddy_in_front_serves_instance_hosts_over_https_and_refuses_unknown_ones() {
    if !tools_present(&["caddy", "curl", "python3"]) {
        return;
    }
    let server = Server::start(
        "caddy_e2e",
        &format!(
            "{}{}[instances]\napi = [\"prod\"]\n",
            settings("trusted_proxies = [\"127.0.0.1\", \"::1\"]"),
            py_service("api", "echo.py", "health = \"/health\""),
        ),
    );
    server.wait_running("api:prod");
    // The Caddyfile for this server's address, with what a test needs on
    // top: its own ports, certificates from Caddy's local CA instead of an
    // ACME one, no admin endpoint, its files in the scratch folder.
    let scratch = Scratch::new("caddy_e2e_caddy");
    scratch.write(
        "tenement.toml",
        &format!(
            "[settings]\ndomain = \"localhost\"\nlisten = \"{}\"\n",
            server.addr
        ),
    );
    let out = ten_raw(&scratch.root, &["caddy", "--domain", "localhost"]);
    assert!(out.status.success(), "{}", describe(&out));
    let (http_port, https_port) = (free_port(), free_port());
    let text = stdout(&out).replacen(
        "{\n\ton_demand_tls {",
        &format!(
            "{{\n\tadmin off\n\tlocal_certs\n\tskip_install_trust\n\thttp_port {http_port}\n\thttps_port {https_port}\n\ton_demand_tls {{"
        ),
        1,
    );
    assert!(text.contains("local_certs"), "{text}");
    let file = scratch.write("Caddyfile", &text);
    let log = std::fs::File::create(scratch.path("caddy.log")).expect("caddy log");
    let _caddy = Caddy(
        std::process::Command::new("caddy")
            .args(["run", "--adapter", "caddyfile", "--config"])
            .arg(&file)
            .env("XDG_DATA_HOME", scratch.path("data"))
            .env("XDG_CONFIG_HOME", scratch.path("config"))
            .env("HOME", &scratch.root)
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start caddy"),
    );
    let caddy_log = || std::fs::read_to_string(scratch.path("caddy.log")).unwrap_or_default();
    let up = wait_until(std::time::Duration::from_secs(20), || {
        std::net::TcpStream::connect(("127.0.0.1", https_port)).is_ok()
    });
    assert!(up, "caddy never listened\n{}", caddy_log());
    let https = |host: &str| {
        let resolve = format!("{host}:{https_port}:127.0.0.1");
        let url = format!("https://{host}:{https_port}/hello");
        curl(&["-k", "--max-time", "30", "--resolve", &resolve, &url])
    };

    // An instance host, two labels below the domain: a certificate on demand,
    // then the app, which sees Caddy's scheme and host (trusted) and the
    // client behind it.
    let out = https("prod.api.localhost");
    assert!(out.status.success(), "{}\n{}", describe(&out), caddy_log());
    let report: Value = serde_json::from_slice(&out.stdout).expect("echo JSON");
    assert_eq!(report["env"]["INSTANCE_ID"], "prod", "{report:#}");
    assert_eq!(
        echoed_headers(&report, "X-Forwarded-Proto"),
        ["https"],
        "{report:#}"
    );
    assert_eq!(
        echoed_headers(&report, "X-Forwarded-Host"),
        [format!("prod.api.localhost:{https_port}")],
        "{report:#}"
    );
    let xff = echoed_headers(&report, "X-Forwarded-For").join(", ");
    assert!(xff.starts_with("127.0.0.1"), "{xff}");
    // A name tenement does not serve gets no certificate: the handshake fails.
    let out = https("ghost.api.localhost");
    // curl's 35: the TLS handshake failed.
    assert_eq!(out.status.code(), Some(35), "{}", describe(&out));
    assert!(out.stdout.is_empty(), "{}", describe(&out));
    // Caddy stored a certificate for the instance host and none for it.
    let certs = scratch.path("data/caddy/certificates/local");
    assert!(certs.join("prod.api.localhost").is_dir(), "{}", caddy_log());
    assert!(
        !certs.join("ghost.api.localhost").exists(),
        "{}",
        caddy_log()
    );
}
