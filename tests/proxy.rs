//! The proxy path: requests reach the instance with method, path, query,
//! headers (Authorization included) and body intact plus `X-Forwarded-*`;
//! chunked bodies both ways; keep-alive on the client and upstream sides.

mod util;

use util::*;

fn start(name: &str) -> Server {
    start_with(name, "")
}

/// `start` with extra `[settings]` lines.
fn start_with(name: &str, extra: &str) -> Server {
    let config = format!(
        "{}{}[instances]\napi = [\"prod\"]\n",
        settings(extra),
        py_service("api", "echo.py", "health = \"/health\"")
    );
    let server = Server::start(name, &config);
    server.wait_running("api:prod");
    server
}

#[test]
fn post_body_and_headers_arrive_intact_with_forwarded_headers() {
    if !tools_present(&["python3", "curl"]) {
        return;
    }
    let server = start("post_intact");
    let body = "first line\nsecond line: caf\u{e9} \u{2713}\n{\"json\": [1, 2, 3]}";
    let resp = server.http(
        "POST",
        "prod.api.localhost",
        "/submit/it?x=1&y=two%20words",
        &[
            ("Authorization", "Bearer app-secret-123"),
            ("X-Custom-Thing", "a b  c"),
            ("Content-Type", "text/plain; charset=utf-8"),
            ("X-Forwarded-For", "10.1.2.3"),
            // Forged: this peer is not in trusted_proxies.
            ("X-Forwarded-Proto", "https"),
            ("X-Forwarded-Host", "bank.example"),
        ],
        body.as_bytes(),
    );
    assert_eq!(
        resp.status,
        200,
        "{}\n--- server log ---\n{}",
        resp.text(),
        server.log()
    );
    let report = resp.json();
    assert_eq!(report["method"], "POST");
    assert_eq!(report["path"], "/submit/it");
    assert_eq!(report["query"], "x=1&y=two%20words");
    assert_eq!(report["body"], body);
    assert_eq!(report["body_len"], body.len());
    assert_eq!(report["env"]["INSTANCE_ID"], "prod");
    assert_eq!(
        echoed_header(&report, "Authorization").as_deref(),
        Some("Bearer app-secret-123")
    );
    assert_eq!(
        echoed_header(&report, "X-Custom-Thing").as_deref(),
        Some("a b  c")
    );
    assert_eq!(
        echoed_header(&report, "Content-Type").as_deref(),
        Some("text/plain; charset=utf-8")
    );
    assert_eq!(
        echoed_headers(&report, "X-Forwarded-Proto"),
        ["http"],
        "tenement's own scheme replaces the client's"
    );
    assert_eq!(
        echoed_headers(&report, "X-Forwarded-Host"),
        ["prod.api.localhost"],
        "tenement's own host replaces the client's"
    );
    // Appended: the client's own value first, then the address the front saw.
    let xff = echoed_headers(&report, "X-Forwarded-For").join(", ");
    let theirs = xff
        .find("10.1.2.3")
        .unwrap_or_else(|| panic!("client's X-Forwarded-For kept: {xff:?}"));
    let ours = xff
        .find("127.0.0.1")
        .unwrap_or_else(|| panic!("peer address appended: {xff:?}"));
    assert!(theirs < ours, "appended after the client's value: {xff:?}");

    // The same through real curl, with other methods.
    for method in ["PUT", "PATCH", "DELETE"] {
        let url = format!("{}/m/{method}?k=v", server.url());
        let out = curl(&[
            "-X",
            method,
            "-H",
            "Host: prod.api.localhost",
            "-H",
            "Authorization: Bearer curl-token",
            "--data-binary",
            "payload from curl",
            &url,
        ]);
        assert!(out.status.success(), "{}", describe(&out));
        let report: Value = serde_json::from_slice(&out.stdout).expect("echo JSON");
        assert_eq!(report["method"], method);
        assert_eq!(report["path"], format!("/m/{method}"));
        assert_eq!(report["query"], "k=v");
        assert_eq!(report["body"], "payload from curl");
        assert_eq!(
            echoed_header(&report, "Authorization").as_deref(),
            Some("Bearer curl-token")
        );
        assert_eq!(
            echoed_header(&report, "X-Forwarded-For").as_deref(),
            Some("127.0.0.1")
        );
    }
}

#[test]
fn forwarded_headers_from_a_trusted_proxy_are_kept() {
    if !tools_present(&["python3"]) {
        return;
    }
    let server = start_with(
        "trusted_proxy",
        "trusted_proxies = [\"127.0.0.0/8\", \"::1\"]",
    );
    let resp = server.http(
        "GET",
        "prod.api.localhost",
        "/",
        &[
            ("X-Forwarded-For", "198.51.100.20"),
            ("X-Forwarded-Proto", "https"),
            ("X-Forwarded-Host", "prod.api.example.org"),
        ],
        b"",
    );
    assert_eq!(resp.status, 200, "{}", resp.text());
    let report = resp.json();
    assert_eq!(echoed_headers(&report, "X-Forwarded-Proto"), ["https"]);
    assert_eq!(
        echoed_headers(&report, "X-Forwarded-Host"),
        ["prod.api.example.org"]
    );
    let xff = echoed_headers(&report, "X-Forwarded-For").join(", ");
    assert_eq!(xff, "198.51.100.20, 127.0.0.1");
}

#[test]
fn chunked_upload_reaches_the_backend_whole() {
    if !tools_present(&["python3", "curl"]) {
        return;
    }
    let server = start("chunked_upload");

    // Raw bytes: three chunks, a chunk extension, sent in pieces.
    let mut conn = Conn::open(server.addr);
    conn.send_raw(
        b"POST /up HTTP/1.1\r\nHost: prod.api.localhost\r\nTransfer-Encoding: chunked\r\n\r\n",
    );
    conn.send_raw(b"5\r\nhello\r\n");
    conn.send_raw(b"6;ext=1\r\n world\r\n");
    conn.send_raw(b"1\r\n!\r\n0\r\n\r\n");
    let resp = conn.read_response(false);
    assert_eq!(
        resp.status,
        200,
        "{}\n--- server log ---\n{}",
        resp.text(),
        server.log()
    );
    assert_eq!(resp.json()["body"], "hello world!");

    // A larger body through curl, which sends it chunked.
    let text: String = (0..20_000)
        .map(|i| format!("line {i:05} of the upload\n"))
        .collect();
    let file = server.root().join("upload.txt");
    std::fs::write(&file, &text).expect("write upload file");
    let url = format!("{}/upload", server.url());
    let data = format!("@{}", file.display());
    let out = curl(&[
        "-H",
        "Host: prod.api.localhost",
        "-H",
        "Transfer-Encoding: chunked",
        "-H",
        "Content-Type: text/plain",
        "--data-binary",
        &data,
        &url,
    ]);
    assert!(out.status.success(), "{}", describe(&out));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "echo JSON ({e})\n{}\n--- server log ---\n{}",
            describe(&out),
            server.log()
        )
    });
    assert_eq!(report["body_len"], text.len());
    assert!(report["body"] == text.as_str(), "uploaded body differs");
}

#[test]
fn chunked_download_streams_through() {
    if !tools_present(&["python3", "curl"]) {
        return;
    }
    let server = start("chunked_download");
    let expected = "chunk-0;chunk-1;chunk-2;chunk-3;chunk-4;";

    let mut conn = Conn::open(server.addr);
    let resp = conn.request("GET", "prod.api.localhost", "/chunked", &[], b"");
    assert_eq!(resp.status, 200);
    assert!(
        resp.chunked,
        "a body of unknown length goes to an HTTP/1.1 client chunked: {:?}",
        resp.headers
    );
    assert_eq!(resp.text(), expected);
    // The framing ended where it should: the connection is usable afterwards.
    let resp = conn.request("GET", "prod.api.localhost", "/after", &[], b"");
    assert_eq!(resp.status, 200);
    assert_eq!(resp.json()["path"], "/after");

    let url = format!("{}/chunked", server.url());
    let out = curl(&["-H", "Host: prod.api.localhost", &url]);
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(stdout(&out), expected);
}

#[test]
fn keepalive_serves_several_requests_on_one_connection_both_sides() {
    if !tools_present(&["python3"]) {
        return;
    }
    let server = start("keepalive");
    let mut conn = Conn::open(server.addr);
    let first = conn.request("GET", "prod.api.localhost", "/one", &[], b"");
    let second = conn.request("POST", "prod.api.localhost", "/two", &[], b"body two");
    let third = conn.request("GET", "prod.api.localhost", "/three", &[], b"");
    for resp in [&first, &second, &third] {
        assert_eq!(
            resp.status,
            200,
            "{}\n--- server log ---\n{}",
            resp.text(),
            server.log()
        );
    }
    let (first, second, third) = (first.json(), second.json(), third.json());
    assert_eq!(first["path"], "/one");
    assert_eq!(second["path"], "/two");
    assert_eq!(second["body"], "body two");
    assert_eq!(third["path"], "/three");
    assert_eq!(first["pid"], second["pid"]);
    // The front kept its upstream connection too: the backend saw one peer.
    assert_eq!(first["peer"], second["peer"], "upstream connection reused");
    assert_eq!(second["peer"], third["peer"], "upstream connection reused");
}
