//! Behind Caddy: `ten caddy` prints a Caddyfile that `caddy adapt` accepts
//! (on-demand TLS asking tenement, reverse proxy to tenement), and the `ask`
//! endpoint `GET /api/tls/allowed?domain=NAME` answers 200 only for names
//! tenement serves, without a token.

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
