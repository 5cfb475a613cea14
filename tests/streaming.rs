//! Responses stream as they are written (Server-Sent Events, slow bodies),
//! and 1 GiB bodies cross the front both ways with bounded memory: the
//! server's RSS, sampled from /proc while the bytes flow, stays within 64 MiB
//! of its value before the transfer (a memory bound, not a timing one).
//! Each test runs twice (`both_ways!`): over plain TCP and over TLS.

mod raw;
mod util;

use std::io::{Read, Write};
use std::time::Duration;

use raw::*;

const GIB: usize = 1 << 30;
/// Growth of `ten serve`'s RSS allowed during a 1 GiB transfer.
const RSS_SLACK_KIB: u64 = 64 * 1024;

/// Reads from `s` into `buf` until `buf` contains `needle`.
fn read_until(s: &mut impl Read, buf: &mut Vec<u8>, needle: &[u8]) {
    let mut chunk = [0u8; 4096];
    while !buf.windows(needle.len()).any(|w| w == needle) {
        let n = s.read(&mut chunk).unwrap_or_else(|e| {
            panic!(
                "waiting for {:?}: {e}; so far {:?}",
                String::from_utf8_lossy(needle),
                String::from_utf8_lossy(buf)
            )
        });
        assert!(
            n > 0,
            "closed before {:?}: {:?}",
            String::from_utf8_lossy(needle),
            String::from_utf8_lossy(buf)
        );
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// The first event reaches the client while the backend is still blocked
/// waiting for a file that the test creates only after reading that event.
fn first_event_arrives_before_the_backend_finishes(
    over: Over,
    name: &str,
    query: &str,
    version: &str,
) {
    let Some(server) = start_over(over, name, "", "") else {
        return;
    };
    let go = format!("go-{name}");
    let mut s = server.dial();
    s.write_all(format!("GET /sse?go={go}{query} {version}\r\nHost: {HOST}\r\n\r\n").as_bytes())
        .unwrap();
    let mut buf = Vec::new();
    read_until(&mut s, &mut buf, b"data: one\n\n");
    let text = String::from_utf8_lossy(&buf).into_owned();
    assert!(
        !text.contains("data: two"),
        "the backend cannot have gone on: {text:?}"
    );
    std::fs::write(backend_dir(&server).join(&go), b"").unwrap();
    let resp = read_response(&mut s, &mut buf, false);
    assert!(buf.is_empty(), "bytes after the stream: {buf:?}");
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header("content-type"), Some("text/event-stream"));
    assert_eq!(resp.text(), "data: one\n\ndata: two\n\n");
}

both_ways! {
    fn server_sent_events_are_delivered_as_written_chunked(over) {
        first_event_arrives_before_the_backend_finishes(over, "ssechunked", "", "HTTP/1.1");
    }
}

both_ways! {
    fn server_sent_events_are_delivered_as_written_close_delimited(over) {
        first_event_arrives_before_the_backend_finishes(over, "sseclose", "&close=1", "HTTP/1.1");
    }
}

both_ways! {
    fn a_chunked_stream_is_delivered_as_written_to_an_http10_client(over) {
        first_event_arrives_before_the_backend_finishes(over, "sse10", "", "HTTP/1.0");
    }
}

both_ways! {
    fn one_gib_download_streams_with_bounded_memory(over) {
        let Some(server) = start_over(over, "download1g", "", "") else {
            return;
        };
        // Warm up: the first proxied request allocates what every later one reuses.
        assert_eq!(get(&server, "/echo?warm").status, 200);
        let pid = server_pid(&server);
        let start_rss = rss_kib(pid);
        let sampler = RssSampler::start(pid);

        let mut s = server.dial();
        s.write_all(format!("GET /download?size={GIB} HTTP/1.1\r\nHost: {HOST}\r\n\r\n").as_bytes())
            .unwrap();
        let mut head = Vec::new();
        read_until(&mut s, &mut head, b"\r\n\r\n");
        let end = head.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
        let head_text = String::from_utf8_lossy(&head[..end]).into_owned();
        assert!(
            head_text.starts_with("HTTP/1.1 200 OK\r\n"),
            "{head_text:?}"
        );
        assert!(
            head_text.contains(&format!("Content-Length: {GIB}\r\n")),
            "{head_text:?}"
        );
        let pattern = pattern(1 << 20);
        let mut got = 0usize;
        let check = |bytes: &[u8], got: &mut usize| {
            let off = *got % 251;
            assert!(
                bytes == &pattern[off..off + bytes.len()],
                "the body differs from the pattern near byte {got}"
            );
            *got += bytes.len();
        };
        check(&head[end..], &mut got);
        let mut chunk = vec![0u8; 1 << 20];
        let mut paused = false;
        while got < GIB {
            if !paused && got >= GIB / 4 {
                // A slow client: the front must stop reading the app, not buffer.
                paused = true;
                std::thread::sleep(Duration::from_secs(1));
            }
            let want = chunk.len().min(GIB - got);
            let n = s.read(&mut chunk[..want]).expect("read body");
            assert!(n > 0, "closed after {got} bytes");
            check(&chunk[..n], &mut got);
        }
        let peak = sampler.peak();
        drop(sampler);
        assert_eq!(got, GIB);
        assert!(
            peak <= start_rss + RSS_SLACK_KIB,
            "ten serve grew from {start_rss} KiB to {peak} KiB during a 1 GiB download"
        );
        eprintln!("download: RSS {start_rss} KiB before, {peak} KiB at most during");
        // The connection is still good for another request.
        s.write_all(format!("GET /echo?after HTTP/1.1\r\nHost: {HOST}\r\n\r\n").as_bytes())
            .unwrap();
        let resp = read_response(&mut s, &mut Vec::new(), false);
        assert_eq!(resp.json()["target"], "/echo?after");
    }
}

both_ways! {
    fn one_gib_upload_streams_with_bounded_memory(over) {
        let Some(server) = start_over(over, "upload1g", "", "") else {
            return;
        };
        assert_eq!(get(&server, "/echo?warm").status, 200);
        let pid = server_pid(&server);
        let start_rss = rss_kib(pid);
        let sampler = RssSampler::start(pid);

        let mut s = server.dial();
        // The app stops reading for a second after 256 MiB.
        s.write_all(
            format!(
                "POST /upload?pause={} HTTP/1.1\r\nHost: {HOST}\r\nContent-Length: {GIB}\r\n\r\n",
                GIB / 4
            )
            .as_bytes(),
        )
        .unwrap();
        let pattern = pattern(1 << 20);
        let mut sent = 0usize;
        while sent < GIB {
            let off = sent % 251;
            let n = (1usize << 20).min(GIB - sent);
            s.write_all(&pattern[off..off + n]).expect("write body");
            sent += n;
        }
        let resp = read_response(&mut s, &mut Vec::new(), false);
        let peak = sampler.peak();
        drop(sampler);
        assert_eq!(resp.status, 200, "{resp:#?}");
        let report = resp.json();
        assert_eq!(report["body_len"], GIB as u64);
        assert_eq!(report["pattern_ok"], true);
        assert!(
            peak <= start_rss + RSS_SLACK_KIB,
            "ten serve grew from {start_rss} KiB to {peak} KiB during a 1 GiB upload"
        );
        eprintln!("upload: RSS {start_rss} KiB before, {peak} KiB at most during");
    }
}
