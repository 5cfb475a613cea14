//! `Upgrade: websocket` through the front: a real RFC 6455 client
//! (`fixtures/ws_client.py`) talks to a real echo server (`rawhttp.py /ws`)
//! through `ten serve`, both ways, until a clean close; over plain TCP and
//! over TLS (`both_ways!`).

mod raw;
mod util;

use std::io::Write;
use std::process::Command;

use raw::*;
use util::*;

both_ways! {
    fn websocket_echo_is_tunnelled_both_ways(over) {
        let Some(server) = start_over(over, "wsecho", "", "") else {
            return;
        };
        let mut client = Command::new("python3");
        client
            .arg(fixture("ws_client.py"))
            .args([&server.target().to_string(), HOST, "/ws"]);
        // With a CA file, ws_client.py speaks TLS and verifies the front.
        client.args(server.ca());
        let out = client
            .output()
            .expect("run ws_client.py");
        assert!(
            out.status.success() && stdout(&out).ends_with("ok\n"),
            "{}\n--- server log ---\n{}",
            describe(&out),
            server.log()
        );
        assert_eq!(
            stdout(&out),
            "handshake\ngreeting\ntext\nbinary 70000\nbinary 300\npong\nclose\nok\n"
        );
        // The app saw the upgrade request with its hop-by-hop upgrade fields.
        let head = wait_record(&server, "the upgrade request", |r| {
            r["event"] == "request" && r["target"] == "/ws"
        });
        let fields: Vec<(String, String)> = head["headers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| {
                (
                    h[0].as_str().unwrap().to_ascii_lowercase(),
                    h[1].as_str().unwrap().to_string(),
                )
            })
            .collect();
        let get = |name: &str| {
            fields
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(get("upgrade"), Some("websocket"), "{head:#}");
        assert_eq!(
            get("connection").map(str::to_ascii_lowercase).as_deref(),
            Some("upgrade"),
            "{head:#}"
        );
        assert_eq!(get("sec-websocket-version"), Some("13"), "{head:#}");
        assert!(get("sec-websocket-key").is_some(), "{head:#}");
        // And the server is as good as before.
        assert_eq!(get_echo(&server), 200);
    }
}

fn get_echo(server: &Front) -> u16 {
    raw::get(server, "/echo?after-ws").status
}

both_ways! {
    fn an_upgrade_the_app_declines_stays_http(over) {
        let Some(server) = start_over(over, "wsdecline", "", "") else {
            return;
        };
        script(
            &server,
            "noupgrade",
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nno",
        );
        let mut s = server.dial();
        let mut buf = Vec::new();
        s.write_all(
            format!(
                "GET /script/noupgrade HTTP/1.1\r\nHost: {HOST}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
                 Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
            )
            .as_bytes(),
        )
        .unwrap();
        let resp = read_response(&mut s, &mut buf, false);
        assert_eq!(resp.head, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n");
        assert_eq!(resp.body, b"no");
        // Still HTTP: the next request is answered as one.
        s.write_all(format!("GET /echo?next HTTP/1.1\r\nHost: {HOST}\r\n\r\n").as_bytes())
            .unwrap();
        let next = read_response(&mut s, &mut buf, false);
        assert_eq!(next.json()["target"], "/echo?next");
    }
}
