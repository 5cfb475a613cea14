//! The front's event loops never wait on one client's expensive answer
//! (issue 10): a tenant asking for the size of a data dir of many files and
//! for a huge number of log lines must not hold up another tenant's proxied
//! requests on the same loop. Bounds are upper bounds with wide slack (the
//! machine is shared and noisy), far below the stalls they guard against.

mod util;

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use util::*;

/// Files in the tenant's data dir: a walk of this many takes far longer than
/// `MAX_DELAY` on any machine this runs on.
const FILES: usize = 60_000;

/// Slowest proxied request allowed while the tenant's calls run. An idle
/// request takes a few ms; walking FILES or reading the log on the loop
/// took seconds.
const MAX_DELAY: Duration = Duration::from_millis(300);

#[test]
fn issue_10_a_tenants_storage_and_log_reads_do_not_delay_other_requests() {
    let config = format!(
        "{}{}\n[instances]\napp = [\"alice\", \"bob\"]\n",
        // One loop: every connection shares it with the tenant's calls.
        settings("workers = 1"),
        py_service("app", "echo.py", "")
    );
    let server = Server::start("stalls", &config);
    server.wait_running("app:alice");
    server.wait_running("app:bob");
    let token = server.mint_token(Some("alice"));

    // Many small files in alice's data dir.
    let dir = server.instance_dir("app", "alice");
    for d in 0..(FILES / 1000) {
        let sub = dir.join(format!("d{d}"));
        std::fs::create_dir_all(&sub).unwrap();
        for f in 0..1000 {
            std::fs::write(sub.join(f.to_string()), b"0123456789").unwrap();
        }
    }
    // A big log: about 40 MB of lines in alice's log file.
    let log = server.data_dir.join(".tenement/logs/app/alice.log");
    {
        let mut f = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
        let line = format!("2026-01-01T00:00:00.000Z stdout {}\n", "x".repeat(200));
        let block = line.repeat(1000);
        for _ in 0..180 {
            f.write_all(block.as_bytes()).unwrap();
        }
    }

    // The tenant's calls, on a thread, while this one proxies for bob.
    let done = Arc::new(AtomicBool::new(false));
    let tenant = {
        let done = done.clone();
        let addr = server.addr;
        let token = token.clone();
        std::thread::spawn(move || {
            let auth = format!("Bearer {token}");
            let host = addr.to_string();
            let call = |path: &str| {
                let started = Instant::now();
                let r = Conn::open(addr).request(
                    "GET",
                    &host,
                    path,
                    &[("Authorization", auth.as_str())],
                    b"",
                );
                (r, started.elapsed())
            };
            let (storage, walk) = call("/api/instances/app:alice/storage");
            let (lines, read) = call("/api/logs?limit=1000000");
            let (none, scan) = call("/api/logs?limit=1000000&search=not-in-any-line");
            done.store(true, Ordering::SeqCst);
            (storage, walk, lines, read, none, scan)
        })
    };
    let bob = "bob.app.localhost";
    let mut slowest = Duration::ZERO;
    let mut count = 0;
    while !done.load(Ordering::SeqCst) || count < 20 {
        let started = Instant::now();
        let report = server.echo(bob, "/ping");
        slowest = slowest.max(started.elapsed());
        assert_eq!(report["path"], "/ping", "{report}");
        count += 1;
        std::thread::sleep(Duration::from_millis(2));
    }
    let (storage, walk, lines, read, none, scan) = tenant.join().unwrap();

    eprintln!(
        "walk {walk:?}, read {read:?}, scan {scan:?}; {count} proxied requests, slowest {slowest:?}"
    );
    assert!(
        slowest < MAX_DELAY,
        "a proxied request took {slowest:?} while a tenant's storage walk ({walk:?}) and log \
         reads ({read:?}, {scan:?}) ran\n--- server log ---\n{}",
        server.log()
    );
    assert_eq!(storage.status, 200, "{}", storage.text());
    let storage = storage.json();
    assert_eq!(storage["bytes"], (FILES * 10) as u64, "{storage}");
    assert!(storage["measured_at"].is_string(), "{storage}");
    assert_eq!(lines.status, 200, "{}", lines.text());
    // The limit is clamped to 10,000 lines.
    assert_eq!(lines.json().as_array().map(Vec::len), Some(10_000));
    assert_eq!(none.json(), serde_json::json!([]));
}
