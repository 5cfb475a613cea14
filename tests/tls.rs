//! HTTPS in the front, as a user would check it: certificates made by
//! `openssl` at test time, real `curl --cacert`, a rustls client for
//! keep-alive, pipelining and a large streamed download, the WebSocket
//! client over TLS; the certificate chosen by SNI among several (ECDSA
//! P-256 in SEC1, P-384 in PKCS#8, RSA in PKCS#1); config errors for a
//! missing file and a key that is not the certificate's; `redirect_http`;
//! `ten reload` swapping certificates under an open connection; and the
//! server's cipher order and session resumption for more clients than a
//! session cache holds.

mod raw;
mod util;

use std::io::{Read, Write};
use std::path::Path;
use std::process::Command;

use raw::pki::*;
use util::*;

/// A server with services `web` (echo.py, instance `a`) and `raw`
/// (rawhttp.py, instance `prod`), HTTPS on a port of its own, `tls` the
/// rest of `[settings.tls]`.
fn start(name: &str, tls: &str) -> Server {
    let config = format!(
        "{}{}{}[instances]\nweb = [\"a\"]\nraw = [\"prod\"]\n",
        settings(&format!(
            "[settings.tls]\nhttps_listen = \"127.0.0.1:0\"\n{tls}"
        )),
        py_service("web", "echo.py", ""),
        py_service("raw", "rawhttp.py", ""),
    );
    let server = Server::start(name, &config);
    server.wait_running("web:a");
    server.wait_running("raw:prod");
    assert!(server.https.is_some(), "no https line\n{}", server.log());
    server
}

fn cert_keys(cert: &Path, key: &Path) -> String {
    format!("cert = {}\nkey = {}\n", toml_str(cert), toml_str(key))
}

/// `curl --cacert CA https://NAME:PORT/PATH`, resolving NAME to the server.
fn curl_https(
    server: &Server,
    ca: &Path,
    name: &str,
    path: &str,
    extra: &[&str],
) -> std::process::Output {
    let https = server.https.expect("an https listener");
    let resolve = format!("{name}:{}:127.0.0.1", https.port());
    let url = format!("https://{name}:{}{path}", https.port());
    let ca = ca.to_str().expect("UTF-8 path");
    let mut args = vec![
        "-sS",
        "--max-time",
        "20",
        "--cacert",
        ca,
        "--resolve",
        &resolve,
    ];
    args.extend_from_slice(extra);
    args.push(&url);
    curl(&args)
}

/// Reads one response from `tls`, keeping what follows in `buf`.
fn read_response(tls: &mut Tls, buf: &mut Vec<u8>) -> raw::RawResp {
    let mut chunk = vec![0u8; 65536];
    loop {
        if let Some((resp, used)) = raw::parse_one(buf, false, false) {
            buf.drain(..used);
            return resp;
        }
        let n = tls.read(&mut chunk).expect("read a response");
        assert!(
            n > 0,
            "closed mid-response: {:?}",
            String::from_utf8_lossy(buf)
        );
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// Reads until the server closes, which it must do with close_notify
/// (rustls reads a bare end of stream as UnexpectedEof).
fn read_to_close(tls: &mut Tls) -> Vec<u8> {
    let mut out = Vec::new();
    let mut chunk = vec![0u8; 65536];
    loop {
        match tls.read(&mut chunk) {
            Ok(0) => return out,
            Ok(n) => out.extend_from_slice(&chunk[..n]),
            Err(e) => panic!(
                "read: {e} (a close without close_notify?); so far {:?}",
                String::from_utf8_lossy(&out)
            ),
        }
    }
}

#[test]
fn https_serves_apps_with_keep_alive_pipelining_streaming_and_websocket() {
    let Some(pki) = Pki::new("tls_https") else {
        return;
    };
    pki.ca("ca");
    let names = [
        "localhost",
        "*.localhost",
        "*.web.localhost",
        "*.raw.localhost",
    ];
    let (cert, key) = pki.leaf("ca", "site", &names, Key::P256Sec1);
    let server = start("tls_https", &cert_keys(&cert, &key));
    let ca = pki.path("ca.pem");
    let https = server.https.expect("https");

    // curl, verifying against the test CA: the app sees https.
    let out = curl_https(
        &server,
        &ca,
        "a.web.localhost",
        "/hello?x=1",
        &["-w", "\n%{http_version}"],
    );
    assert!(out.status.success(), "{}\n{}", describe(&out), server.log());
    let text = stdout(&out);
    let (body, version) = text.rsplit_once('\n').expect("body and version");
    assert_eq!(version, "1.1");
    let report: Value = serde_json::from_str(body).expect("echo JSON");
    assert_eq!(report["path"], "/hello");
    assert_eq!(
        echoed_header(&report, "x-forwarded-proto").as_deref(),
        Some("https")
    );
    // Plain HTTP still says http.
    let plain = server.echo("a.web.localhost", "/plain");
    assert_eq!(
        echoed_header(&plain, "x-forwarded-proto").as_deref(),
        Some("http")
    );

    // Keep-alive: sequential requests on one TLS connection, ALPN http/1.1.
    let config = client_config(&ca);
    let mut tls = tls_connect(https, raw::HOST, config.clone());
    assert_eq!(tls.conn.alpn_protocol(), Some(&b"http/1.1"[..]));
    let mut buf = Vec::new();
    for n in 1..=3 {
        let req = format!("GET /echo?n={n} HTTP/1.1\r\nHost: {}\r\n\r\n", raw::HOST);
        tls.write_all(req.as_bytes()).expect("write");
        let resp = read_response(&mut tls, &mut buf);
        assert_eq!(resp.status_line, "HTTP/1.1 200 OK", "{resp:#?}");
        assert_eq!(resp.json()["target"], format!("/echo?n={n}"));
    }

    // A 20 MB download streams through, byte for byte.
    const SIZE: usize = 20 * 1024 * 1024;
    let req = format!(
        "GET /download?size={SIZE} HTTP/1.1\r\nHost: {}\r\n\r\n",
        raw::HOST
    );
    tls.write_all(req.as_bytes()).expect("write");
    let resp = read_response(&mut tls, &mut buf);
    assert_eq!(resp.status, 200);
    assert_eq!(resp.body.len(), SIZE);
    let pattern = raw::pattern(SIZE);
    assert!(
        resp.body == pattern[..SIZE],
        "the download differs from the pattern"
    );

    // Pipelining: three requests in one write, answered in order.
    let wire = format!(
        "GET /echo?n=1 HTTP/1.1\r\nHost: {h}\r\n\r\n\
         POST /echo?n=2 HTTP/1.1\r\nHost: {h}\r\nContent-Length: 3\r\n\r\ntwo\
         PUT /echo?n=3 HTTP/1.1\r\nHost: {h}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n\
         5\r\nthree\r\n0\r\n\r\n",
        h = raw::HOST
    );
    tls.write_all(wire.as_bytes()).expect("write");
    let mut rest = buf;
    rest.extend(read_to_close(&mut tls));
    let resps = raw::parse_all(&rest, &[]);
    let targets: Vec<Value> = resps.iter().map(|r| r.json()["target"].clone()).collect();
    assert_eq!(
        targets,
        ["/echo?n=1", "/echo?n=2", "/echo?n=3"],
        "{resps:#?}"
    );
    assert_eq!(resps[1].json()["payload"], "two");
    assert!(resps[2].says_close());

    // The front's own answers end with close_notify too: a head it cannot
    // parse (400), and HTTP/1.0 without keep-alive.
    for (wire, status) in [
        (
            "GET /echo HTTP/1.1\r\nHost: {h}\r\nBad Header\r\n\r\n",
            "400",
        ),
        ("GET /echo?n=10 HTTP/1.0\r\nHost: {h}\r\n\r\n", "200"),
    ] {
        let mut tls = tls_connect(https, raw::HOST, config.clone());
        tls.write_all(wire.replace("{h}", raw::HOST).as_bytes())
            .expect("write");
        let answer = read_to_close(&mut tls);
        let text = String::from_utf8_lossy(&answer);
        assert!(text.starts_with("HTTP/1."), "{text}");
        assert_eq!(text.get(9..12), Some(status), "{text}");
    }

    // WebSocket over TLS: the Upgrade tunnel, both ways, to a clean close.
    let out = Command::new("python3")
        .arg(fixture("ws_client.py"))
        .args([
            &https.to_string(),
            raw::HOST,
            "/ws",
            ca.to_str().expect("UTF-8"),
        ])
        .output()
        .expect("run ws_client.py");
    assert_eq!(
        stdout(&out),
        "handshake\ngreeting\ntext\nbinary 70000\nbinary 300\npong\nclose\nok\n",
        "{}\n{}",
        describe(&out),
        server.log()
    );
}

#[test]
fn the_certificate_is_chosen_by_sni_among_key_kinds() {
    let Some(pki) = Pki::new("tls_sni") else {
        return;
    };
    pki.ca("ca");
    let (main_cert, main_key) = pki.leaf(
        "ca",
        "main",
        &["localhost", "*.web.localhost"],
        Key::P256Sec1,
    );
    let (org_cert, org_key) = pki.leaf("ca", "org", &["example.org"], Key::RsaPkcs1);
    let (net_cert, net_key) = pki.leaf("ca", "net", &["net.example"], Key::P384Pkcs8);
    let tls = format!(
        "{}\n[[settings.tls.certs]]\nnames = [\"example.org\", \"*.example.org\"]\n{}\n\
         [[settings.tls.certs]]\n{}",
        cert_keys(&main_cert, &main_key),
        cert_keys(&org_cert, &org_key),
        cert_keys(&net_cert, &net_key),
    );
    let server = start("tls_sni", &tls);
    let ca = pki.path("ca.pem");
    // Each name verifies only with the certificate made for it.
    for name in ["a.web.localhost", "example.org", "net.example"] {
        let out = curl_https(
            &server,
            &ca,
            name,
            "/api/health",
            &["-o", "/dev/null", "-w", "%{http_code}"],
        );
        assert!(
            out.status.success(),
            "{name}: {}\n{}",
            describe(&out),
            server.log()
        );
    }
    // `*.example.org` was listed in `names`, though the certificate itself
    // does not carry it: the handshake picks it, and curl then refuses the
    // name, which shows which certificate came.
    let out = curl_https(&server, &ca, "www.example.org", "/", &[]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("example.org") || stderr(&out).contains("match"),
        "{}",
        describe(&out)
    );
}

#[test]
fn missing_or_mismatched_files_are_config_errors_naming_them() {
    let Some(pki) = Pki::new("tls_errors") else {
        return;
    };
    pki.ca("ca");
    let (cert, key) = pki.leaf("ca", "one", &["localhost"], Key::P256Sec1);
    let (_, other_key) = pki.leaf("ca", "two", &["localhost"], Key::P384Pkcs8);
    let check = |tls: &str| {
        let text = format!("[settings]\ndomain = \"localhost\"\n\n[settings.tls]\n{tls}\n[service.api]\ncommand = \"x\"\n");
        let path = pki.dir.write("tenement.toml", &text);
        ten_raw(
            &pki.dir.root,
            &[
                "--config",
                path.to_str().expect("UTF-8"),
                "config",
                "--check",
            ],
        )
    };
    let out = check(&cert_keys(&cert, &key));
    assert!(out.status.success(), "{}", describe(&out));

    let missing = pki.path("nowhere.pem");
    let out = check(&cert_keys(&missing, &key));
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let want = format!(
        "tenement.toml:5: key `settings.tls.cert`: cannot read {}: no such file",
        missing.display()
    );
    assert!(
        stderr(&out).contains(&want),
        "want {want:?}\n{}",
        describe(&out)
    );

    let out = check(&cert_keys(&cert, &other_key));
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let err = stderr(&out);
    assert!(
        err.contains("tenement.toml:6: key `settings.tls.key`")
            && err.contains("does not match the certificate"),
        "{}",
        describe(&out)
    );

    // A file that is not PEM at all.
    let junk = pki.dir.write("junk.pem", "hello\n");
    let out = check(&cert_keys(&junk, &key));
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert!(stderr(&out).contains("junk.pem"), "{}", describe(&out));
}

#[test]
fn redirect_http_answers_308_except_acme_challenges() {
    let Some(pki) = Pki::new("tls_redirect") else {
        return;
    };
    pki.ca("ca");
    let (cert, key) = pki.leaf(
        "ca",
        "site",
        &["localhost", "*.web.localhost"],
        Key::P256Sec1,
    );
    // Started without it (the harness waits for instances through the
    // plain API), then turned on by a reload.
    let server = start("tls_redirect", &cert_keys(&cert, &key));
    let text = std::fs::read_to_string(&server.config).expect("read config");
    let text = text.replace("https_listen", "redirect_http = true\nhttps_listen");
    std::fs::write(&server.config, text).expect("write config");
    server.ten_ok(&["reload"]);
    let port = server.https.expect("https").port();
    let resp = server.http("GET", "a.web.localhost:8080", "/path?q=1", &[], b"");
    assert_eq!(resp.status, 308, "{}", resp.text());
    assert_eq!(
        resp.header("location"),
        Some(format!("https://a.web.localhost:{port}/path?q=1").as_str())
    );
    // ACME HTTP-01 challenges stay on plain HTTP (routed as usual).
    let resp = server.http(
        "GET",
        "a.web.localhost",
        "/.well-known/acme-challenge/tok",
        &[],
        b"",
    );
    assert_eq!(resp.status, 200, "{}", resp.text());
    // Over HTTPS the same request is served.
    let out = curl_https(
        &server,
        &pki.path("ca.pem"),
        "a.web.localhost",
        "/path",
        &["-o", "/dev/null", "-w", "%{http_code}"],
    );
    assert_eq!(stdout(&out), "200", "{}", describe(&out));
}

#[test]
fn reload_swaps_certificates_and_keeps_open_connections() {
    let Some(pki) = Pki::new("tls_reload") else {
        return;
    };
    pki.ca("old");
    pki.ca("new");
    let (cert, key) = pki.leaf(
        "old",
        "site",
        &["localhost", "*.raw.localhost"],
        Key::P256Sec1,
    );
    let server = start("tls_reload", &cert_keys(&cert, &key));
    let https = server.https.expect("https");
    let mut tls = tls_connect(https, raw::HOST, client_config(&pki.path("old.pem")));
    let mut buf = Vec::new();
    let get = |tls: &mut Tls, buf: &mut Vec<u8>, n: u32| {
        let req = format!("GET /echo?n={n} HTTP/1.1\r\nHost: {}\r\n\r\n", raw::HOST);
        tls.write_all(req.as_bytes()).expect("write");
        let resp = read_response(tls, buf);
        assert_eq!(resp.status, 200, "{resp:#?}");
    };
    get(&mut tls, &mut buf, 1);

    // New files in place (signed by another CA), then a reload.
    let (new_cert, new_key) = pki.leaf(
        "new",
        "next",
        &["localhost", "*.raw.localhost"],
        Key::P384Pkcs8,
    );
    std::fs::copy(&new_cert, &cert).expect("replace cert");
    std::fs::copy(&new_key, &key).expect("replace key");
    server.ten_ok(&["reload"]);

    // The connection made before the swap goes on.
    get(&mut tls, &mut buf, 2);
    // New connections get the new certificate: the new CA verifies it,
    // the old one no longer does.
    let ok = curl_https(
        &server,
        &pki.path("new.pem"),
        raw::HOST,
        "/echo",
        &["-o", "/dev/null"],
    );
    assert!(ok.status.success(), "{}\n{}", describe(&ok), server.log());
    let old = curl_https(
        &server,
        &pki.path("old.pem"),
        raw::HOST,
        "/echo",
        &["-o", "/dev/null"],
    );
    assert!(!old.status.success(), "the old certificate is still served");
    get(&mut tls, &mut buf, 3);

    // A reload with a broken file is refused, and HTTPS goes on as it was.
    std::fs::write(&key, "broken\n").expect("break key");
    let out = server.ten(&["reload"]);
    assert!(!out.status.success(), "{}", describe(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("settings.tls.key"),
        "{}",
        describe(&out)
    );
    let ok = curl_https(
        &server,
        &pki.path("new.pem"),
        raw::HOST,
        "/echo",
        &["-o", "/dev/null"],
    );
    assert!(ok.status.success(), "{}", describe(&ok));

    // GET /api/tls shows the certificate in use and why the reload failed.
    let token = server.admin_token.clone();
    let resp = server.api("GET", "/api/tls", Some(&token), None);
    assert_eq!(resp.status, 200, "{}", resp.text());
    let list = resp.json();
    let cert = &list[0];
    assert_eq!(
        cert["names"],
        serde_json::json!(["localhost", "*.raw.localhost"]),
        "{list:#}"
    );
    assert_eq!(cert["issuer"], "CN=new", "{list:#}");
    assert_eq!(cert["source"], "file");
    let left = cert["expires_in_seconds"].as_i64().expect("seconds left");
    assert!(left > 86_400 && left <= 2 * 86_400 + 60, "{list:#}");
    let why = cert["last_error"]
        .as_str()
        .expect("the failed reload's error");
    assert!(why.contains("settings.tls.key"), "{why}");
    assert_eq!(server.api("GET", "/api/tls", None, None).status, 401);

    // The expiry per name, and the handshake the old CA's curl broke off.
    let metrics = server.api("GET", "/metrics", Some(&token), None).text();
    let expiry = metrics
        .lines()
        .find_map(|l| l.strip_prefix("ten_tls_certificate_expiry_seconds{name=\"localhost\"} "))
        .unwrap_or_else(|| panic!("no expiry for localhost in\n{metrics}"));
    assert!(expiry.parse::<i64>().expect("a number") > 86_400);
    let alerts = metrics
        .lines()
        .find_map(|l| {
            l.strip_prefix("ten_tls_handshake_failures_total{reason=\"alert_received\"} ")
        })
        .unwrap_or_else(|| panic!("no handshake failures in\n{metrics}"));
    assert!(alerts.parse::<u64>().expect("a number") >= 1, "{metrics}");
}

#[test]
fn the_cli_talks_to_an_https_server_verifying_its_certificate() {
    let Some(pki) = Pki::new("tls_cli") else {
        return;
    };
    let ca = pki.ca("ca");
    let other = pki.ca("other");
    let (cert, key) = pki.leaf("ca", "server", &["localhost", "127.0.0.1"], Key::P256Sec1);
    let server = start("tls_cli", &cert_keys(&cert, &key));
    let https = server.https.expect("an https listener");
    let token = server.admin_token.clone();
    let cwd = pki.path("");
    let ten = |url: &str, ca: Option<&Path>, args: &[&str]| {
        let mut all = vec!["--server", url, "--token", &token];
        if let Some(ca) = ca {
            all.extend(["--cacert", ca.to_str().expect("UTF-8 path")]);
        }
        all.extend_from_slice(args);
        ten_raw(&cwd, &all)
    };
    for host in ["127.0.0.1", "localhost"] {
        let url = format!("https://{host}:{}", https.port());
        let out = ten(&url, Some(&ca), &["ps"]);
        assert!(out.status.success(), "{url}: {}", describe(&out));
        let table = stdout(&out);
        assert!(
            table.contains("web:a") && table.contains("raw:prod"),
            "{table}"
        );
    }
    let url = format!("https://127.0.0.1:{}", https.port());
    // Writes and streams go over TLS too.
    let out = ten(&url, Some(&ca), &["weight", "web:a", "40"]);
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(server.instance("web:a").expect("web:a")["weight"], 40);
    let out = ten(&url, Some(&ca), &["logs", "raw:prod", "--limit", "5"]);
    assert!(out.status.success(), "{}", describe(&out));

    // A certificate from another CA, or from none the system trusts: refused,
    // saying what to do.
    for (ca, against) in [(Some(other.as_path()), "other.pem"), (None, "system")] {
        let out = ten(&url, ca, &["ps"]);
        assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
        let err = stderr(&out);
        assert!(
            err.starts_with("ten: error: cannot reach the server at https://127.0.0.1:")
                && err.contains("certificate is not trusted")
                && err.contains(against)
                && err.contains("--cacert FILE"),
            "{err}"
        );
    }
    let out = ten(&url, Some(&pki.path("missing.pem")), &["ps"]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert!(
        stderr(&out).contains("cannot read --cacert"),
        "{}",
        describe(&out)
    );
    // https:// to the plain listener: a TLS error, not a hang.
    let plain = format!("https://127.0.0.1:{}", server.addr.port());
    let out = ten(&plain, Some(&ca), &["ps"]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert!(stderr(&out).contains("TLS"), "{}", describe(&out));
}

#[test]
fn sessions_resume_for_any_number_of_clients_with_aes_128_preferred() {
    use rustls::client::Resumption;
    use rustls::crypto::ring::cipher_suite::{TLS13_AES_128_GCM_SHA256, TLS13_AES_256_GCM_SHA384};
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::CertificateDer;
    use rustls::ClientConfig;
    use rustls::HandshakeKind;
    use std::sync::Arc;

    let Some(pki) = Pki::new("tls_resume") else {
        return;
    };
    pki.ca("ca");
    let (cert, key) = pki.leaf("ca", "main", &["localhost"], Key::P256Sec1);
    let server = start("tls_resume", &cert_keys(&cert, &key));
    let addr = server.https.expect("https");
    // A client of its own (its own session store), preferring AES-256.
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(pki.path("ca.pem")).expect("open CA") {
        roots.add(cert.expect("CA PEM")).expect("add CA");
    }
    let client = || {
        let mut provider = rustls::crypto::ring::default_provider();
        provider.cipher_suites = vec![TLS13_AES_256_GCM_SHA384, TLS13_AES_128_GCM_SHA256];
        let mut c = ClientConfig::builder_with_provider(Arc::new(provider))
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_root_certificates(roots.clone())
            .with_no_client_auth();
        c.resumption = Resumption::in_memory_sessions(4);
        Arc::new(c)
    };
    // One exchange, reading to the end. `eager`: the request is written
    // before the handshake, so it leaves with the client's Finished and
    // the server holds the session tickets for the response; otherwise
    // they come as soon as the handshake ends.
    let visit = |config: &Arc<ClientConfig>, eager: bool| {
        let request = b"GET /health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
        let mut tls = if eager {
            let tcp = std::net::TcpStream::connect(addr).expect("connect");
            tcp.set_read_timeout(Some(std::time::Duration::from_secs(30)))
                .expect("timeout");
            let name = rustls::pki_types::ServerName::try_from("localhost").expect("name");
            let mut conn = rustls::ClientConnection::new(config.clone(), name).expect("client");
            conn.writer()
                .write_all(request)
                .expect("buffer the request");
            rustls::StreamOwned::new(conn, tcp)
        } else {
            let mut tls = tls_connect(addr, "localhost", config.clone());
            tls.write_all(request).expect("write");
            tls
        };
        let body = read_to_close(&mut tls);
        assert!(
            body.starts_with(b"HTTP/1.1 200"),
            "{:?}",
            String::from_utf8_lossy(&body)
        );
        (
            tls.conn.handshake_kind(),
            tls.conn.negotiated_cipher_suite().map(|s| s.suite()),
        )
    };
    let first = client();
    let (kind, suite) = visit(&first, true);
    assert_eq!(kind, Some(HandshakeKind::Full));
    assert_eq!(
        suite,
        Some(TLS13_AES_128_GCM_SHA256.suite()),
        "the server's order decides"
    );
    // More clients than a session cache would hold (rustls' default keeps
    // 256 sessions, two per handshake)...
    for _ in 0..300 {
        visit(&client(), false);
    }
    // ...and the first one still resumes (its tickets came with its first
    // response): no signature for it.
    let (kind, _) = visit(&first, false);
    assert_eq!(kind, Some(HandshakeKind::Resumed), "{}", server.log());
}
