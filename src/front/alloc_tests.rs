//! The request path allocates nothing in steady state: a counting global
//! allocator (this test binary only, `sys::memory::counting`) counts the allocations a front loop's
//! thread makes while it proxies thousands of keep-alive requests to a real
//! backend over loopback, and the count must not move after warm-up.
//!
//! The loop runs in-process (the crate is a binary, so this lives beside the
//! front rather than in tests/); the client and the backend run on their own
//! threads, which are not counted. Owns only this test.

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use mio::{Poll, Waker};

use super::api::Api;
use super::stats::FrontStats;
use super::worker::{Worker, WorkerSetup, WAKER};
use crate::state::testdir::TempDir;
use crate::supervisor::{InstanceView, Published, Snapshot, State, SupervisorHandle};
use crate::sys::memory::counting;

/// The backend: answers every request on a keep-alive connection. `/chunked`
/// gets a chunked body, anything else `hello\n` with a length; a request
/// body (by Content-Length) is read and its size echoed in a header.
fn backend() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind the backend");
    let addr = listener.local_addr().expect("backend address");
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { return };
            std::thread::spawn(move || serve_backend(stream));
        }
    });
    addr
}

fn serve_backend(stream: TcpStream) {
    let mut out = stream.try_clone().expect("clone the backend stream");
    let mut reader = BufReader::new(stream);
    loop {
        let mut target = String::new();
        let mut length = 0usize;
        let mut line = String::new();
        let mut first = true;
        loop {
            line.clear();
            match reader.read_line(&mut line) {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
            if first {
                target = line.split(' ').nth(1).unwrap_or("/").to_string();
                first = false;
            } else if line == "\r\n" {
                break;
            } else if let Some((name, value)) = line.split_once(':') {
                if name.eq_ignore_ascii_case("content-length") {
                    length = value.trim().parse().unwrap_or(0);
                }
            }
        }
        let mut body = vec![0; length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        let answer = if target == "/chunked" {
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"
                .to_string()
        } else {
            format!("HTTP/1.1 200 OK\r\nContent-Length: 6\r\nX-Got: {length}\r\n\r\nhello\n")
        };
        if out.write_all(answer.as_bytes()).is_err() {
            return;
        }
    }
}

fn snapshot(backend: SocketAddr) -> Snapshot {
    let view = InstanceView {
        port: backend.port(),
        addr: backend,
        ..crate::front::router::tests::view("bench", "main", 100, State::Running)
    };
    Snapshot {
        domain: "example.com".into(),
        by_key: HashMap::from([(("bench".into(), "main".into()), 0)]),
        services: BTreeMap::from([("bench".into(), vec![0])]),
        instances: vec![view.into()],
        ..Snapshot::default()
    }
}

/// Reads one response off a keep-alive connection; returns its head.
fn read_response(r: &mut BufReader<TcpStream>) -> String {
    let mut head = String::new();
    let mut length = None;
    let mut chunked = false;
    loop {
        let mut line = String::new();
        assert!(r.read_line(&mut line).expect("read a response line") > 0);
        if line == "\r\n" {
            break;
        }
        let lower = line.to_ascii_lowercase();
        if let Some(v) = lower.strip_prefix("content-length:") {
            length = Some(v.trim().parse::<usize>().expect("a length"));
        }
        chunked |= lower.starts_with("transfer-encoding:") && lower.contains("chunked");
        head.push_str(&line);
    }
    if chunked {
        loop {
            let mut size = String::new();
            r.read_line(&mut size).expect("a chunk size");
            let n = usize::from_str_radix(size.trim(), 16).expect("hex size");
            let mut data = vec![0; n + 2];
            r.read_exact(&mut data).expect("chunk data");
            if n == 0 {
                break;
            }
        }
    } else {
        let mut body = vec![0; length.expect("a length or chunks")];
        r.read_exact(&mut body).expect("the body");
    }
    head
}

#[test]
fn proxied_keep_alive_requests_allocate_nothing_in_steady_state() {
    let backend = backend();
    let dir = TempDir::new("alloc");
    let published = Arc::new(Published::default());
    published.publish(snapshot(backend));

    let (listeners, addr) =
        super::listeners::settle("127.0.0.1:0".parse().expect("an address"), 1, Vec::new())
            .map_err(|e| e.source)
            .expect("bind the front");
    let poll = Poll::new().expect("a poll");
    let waker = Arc::new(Waker::new(poll.registry(), WAKER).expect("a waker"));
    // The supervisor is never asked anything here: a channel nobody reads.
    let (tx, _commands) = mpsc::channel();
    let sup_poll = Poll::new().expect("a poll");
    let sup_waker = Arc::new(Waker::new(sup_poll.registry(), mio::Token(0)).expect("a waker"));
    let stop = Arc::new(AtomicBool::new(false));
    let worker = Worker::new(WorkerSetup {
        index: 0,
        listeners,
        clients: Vec::new(),
        unix: None,
        published,
        supervisor: SupervisorHandle {
            tx,
            waker: sup_waker,
        },
        api: Api::new(dir.0.clone()),
        stop: stop.clone(),
        drain: Arc::new(AtomicBool::new(false)),
        poll,
        waker: waker.clone(),
        stats: Arc::new(FrontStats::default()),
        max_conns: 1000,
        beat: crate::notify::heartbeat("front-alloc-test", waker.clone()),
        tls: None,
        share: Arc::new(super::share::Share::new(vec![waker.clone()])),
    })
    .expect("a worker");
    let thread = std::thread::spawn(move || {
        counting::count_this_thread();
        worker.run();
    });

    // Four keep-alive clients, each sending in turn a GET, a GET answered
    // chunked, and a POST with a body.
    let requests: [&[u8]; 3] = [
        b"GET /a?x=1 HTTP/1.1\r\nHost: main.bench.example.com\r\nUser-Agent: t\r\nAccept: */*\r\n\r\n",
        b"GET /chunked HTTP/1.1\r\nHost: main.bench.example.com\r\n\r\n",
        b"POST /form HTTP/1.1\r\nHost: main.bench.example.com\r\nContent-Length: 5\r\nContent-Type: text/plain\r\n\r\nhello",
    ];
    let mut clients: Vec<(TcpStream, BufReader<TcpStream>)> = (0..4)
        .map(|_| {
            let s = TcpStream::connect(addr).expect("connect to the front");
            s.set_read_timeout(Some(Duration::from_secs(10)))
                .expect("a timeout");
            let r = BufReader::new(s.try_clone().expect("clone"));
            (s, r)
        })
        .collect();
    let mut round = |n: usize| {
        for i in 0..n {
            let (s, r) = &mut clients[i % 4];
            s.write_all(requests[i % 3]).expect("send a request");
            let head = read_response(r);
            assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
            if i % 3 == 2 {
                assert!(head.contains("X-Got: 5\r\n"), "{head}");
            }
        }
    };
    // Warm-up: pools, slot tables and the reused heads reach their sizes.
    round(600);
    let before = counting::counted();
    round(3000);
    let after = counting::counted();

    stop.store(true, Ordering::Release);
    waker.wake().expect("wake the loop");
    thread.join().expect("the loop ends");
    assert_eq!(
        after - before,
        0,
        "the front loop allocated {} times over 3000 proxied requests after warm-up",
        after - before
    );
    // The counter does count this loop's allocations: the warm-up made some.
    assert!(before > 0, "no allocation was counted at all");
}
