//! A stream that is TCP or Unix, written once: the front's client and
//! upstream connections and the supervisor's probes use the non-blocking
//! (mio) kind, the CLI's API client the blocking (std) kind.
//!
//! A plain enum, so reading and writing is a `match`, never a virtual call.
//! Connecting stays with the caller, which knows where and how to connect
//! (TCP_NODELAY, timeouts).

use std::io::{self, Read, Write};
use std::time::Duration;

use mio::event::Source;
use mio::{Interest, Registry, Token};

/// TCP or Unix.
#[derive(Debug)]
pub enum Stream<T, U> {
    Tcp(T),
    Unix(U),
}

/// Non-blocking, registered with a poll.
pub type MioStream = Stream<mio::net::TcpStream, mio::net::UnixStream>;

/// Blocking, with timeouts.
pub type StdStream = Stream<std::net::TcpStream, std::os::unix::net::UnixStream>;

impl<T: Read, U: Read> Read for Stream<T, U> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.read(buf),
            Stream::Unix(s) => s.read(buf),
        }
    }
}

impl<T: Write, U: Write> Write for Stream<T, U> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.write(buf),
            Stream::Unix(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.flush(),
            Stream::Unix(s) => s.flush(),
        }
    }
}

impl<T: Source, U: Source> Source for Stream<T, U> {
    fn register(
        &mut self,
        registry: &Registry,
        token: Token,
        interests: Interest,
    ) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.register(registry, token, interests),
            Stream::Unix(s) => s.register(registry, token, interests),
        }
    }

    fn reregister(
        &mut self,
        registry: &Registry,
        token: Token,
        interests: Interest,
    ) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.reregister(registry, token, interests),
            Stream::Unix(s) => s.reregister(registry, token, interests),
        }
    }

    fn deregister(&mut self, registry: &Registry) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.deregister(registry),
            Stream::Unix(s) => s.deregister(registry),
        }
    }
}

impl MioStream {
    /// The socket's pending error (SO_ERROR), which a failed non-blocking
    /// connect leaves.
    pub fn take_error(&self) -> io::Result<Option<io::Error>> {
        match self {
            Stream::Tcp(s) => s.take_error(),
            Stream::Unix(s) => s.take_error(),
        }
    }

    /// Ok once a non-blocking connect completed; NotConnected (or
    /// EINPROGRESS) while it is in progress.
    pub fn connected(&self) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.peer_addr().map(drop),
            Stream::Unix(s) => s.peer_addr().map(drop),
        }
    }

    /// Whether a non-blocking connect finished: Some(Ok) connected,
    /// Some(Err) failed, None still in progress.
    pub fn connect_result(&self) -> Option<io::Result<()>> {
        if let Ok(Some(e)) | Err(e) = self.take_error() {
            return Some(Err(e));
        }
        match self.connected() {
            Ok(()) => Some(Ok(())),
            Err(e) if e.kind() == io::ErrorKind::NotConnected => None,
            Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => None,
            Err(e) => Some(Err(e)),
        }
    }

    /// Shuts down the writing half (the peer reads end of stream); errors
    /// (the peer is gone) are of no use to the caller and ignored.
    pub fn shutdown_write(&self) {
        let _ = match self {
            Stream::Tcp(s) => s.shutdown(std::net::Shutdown::Write),
            Stream::Unix(s) => s.shutdown(std::net::Shutdown::Write),
        };
    }
}

impl StdStream {
    /// Sets the read and write timeouts of a blocking stream.
    pub fn set_timeouts(&self, read: Duration, write: Duration) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => {
                s.set_read_timeout(Some(read))?;
                s.set_write_timeout(Some(write))
            }
            Stream::Unix(s) => {
                s.set_read_timeout(Some(read))?;
                s.set_write_timeout(Some(write))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_kinds_read_and_write_through_one_type() {
        let (a, b) = std::os::unix::net::UnixStream::pair().expect("a socket pair");
        let mut a: StdStream = Stream::Unix(a);
        let mut b: StdStream = Stream::Unix(b);
        a.set_timeouts(Duration::from_secs(5), Duration::from_secs(5))
            .expect("timeouts");
        a.write_all(b"ping").expect("write");
        let mut got = [0; 4];
        b.read_exact(&mut got).expect("read");
        assert_eq!(&got, b"ping");

        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let c =
            std::net::TcpStream::connect(listener.local_addr().expect("addr")).expect("connect");
        let (s, _) = listener.accept().expect("accept");
        let mut c: StdStream = Stream::Tcp(c);
        let mut s: StdStream = Stream::Tcp(s);
        s.write_all(b"pong").expect("write");
        c.read_exact(&mut got).expect("read");
        assert_eq!(&got, b"pong");
    }

    #[test]
    fn a_refused_nonblocking_connect_reports_its_error() {
        // A port nobody listens on: bind one, note it, close it.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port");
        let mut poll = mio::Poll::new().expect("a poll");
        let mut events = mio::Events::with_capacity(4);
        let mut s: MioStream = Stream::Tcp(mio::net::TcpStream::connect(port).expect("connect"));
        poll.registry()
            .register(&mut s, Token(0), Interest::WRITABLE)
            .expect("register");
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        let result = loop {
            if let Some(result) = s.connect_result() {
                break result;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "connect never finished"
            );
            poll.poll(&mut events, Some(Duration::from_millis(100)))
                .expect("poll");
        };
        let e = result.expect_err("nobody listens there");
        assert_eq!(e.kind(), io::ErrorKind::ConnectionRefused);
    }
}
