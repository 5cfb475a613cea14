//! A stream that is TCP or Unix, written once: the front's client and
//! upstream connections and the supervisor's probes use the non-blocking
//! (mio) kind, the CLI's API client the blocking (std) kind.
//!
//! A plain enum, so reading and writing is a `match`, never a virtual call.
//! Connecting stays with the caller, which knows where and how to connect
//! (TCP_NODELAY, timeouts).

use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd};
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

impl<T: AsFd, U: AsFd> AsFd for Stream<T, U> {
    fn as_fd(&self) -> BorrowedFd<'_> {
        match self {
            Stream::Tcp(s) => s.as_fd(),
            Stream::Unix(s) => s.as_fd(),
        }
    }
}

impl<T: AsFd, U: AsFd> Read for Stream<T, U> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        recv(self.as_fd(), buf)
    }
}

impl<T: AsFd, U: AsFd> Write for Stream<T, U> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        send(self.as_fd(), buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// One `recv` on a connected socket, made directly (rustix's system call,
/// not the C library's wrapper: musl's is a cancellation point that checks
/// the thread's cancel state around the call, glibc's turns asynchronous
/// cancellation on and off). The front makes one on each side per proxied
/// request. Errors as `Read::read` gives them (WouldBlock, Interrupted).
pub fn recv(fd: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<usize> {
    rustix::net::recv(fd, buf, rustix::net::RecvFlags::empty())
        .map(|(n, _)| n)
        .map_err(io::Error::from)
}

/// One `send` on a connected socket, made directly as `recv` is. A peer
/// that closed gives EPIPE, never SIGPIPE (MSG_NOSIGNAL, as std's streams
/// send).
pub fn send(fd: BorrowedFd<'_>, buf: &[u8]) -> io::Result<usize> {
    rustix::net::send(fd, buf, rustix::net::SendFlags::NOSIGNAL).map_err(io::Error::from)
}

/// A borrowed socket that reads and writes through `recv` and `send`.
pub struct Raw<'a>(pub BorrowedFd<'a>);

impl Read for Raw<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        recv(self.0, buf)
    }
}

impl Write for Raw<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        send(self.0, buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
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
