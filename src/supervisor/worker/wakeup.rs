//! When the supervisor's poll returns for its next deadline. `epoll_wait`
//! takes whole milliseconds (mio rounds a timeout up), so a deadline a
//! fraction of a millisecond away would be met up to a millisecond late:
//! deadlines closer than `FINE_BELOW` are kept by a timerfd in the same
//! poll instead, to the microsecond. Readiness polling while an instance
//! starts (every `FAST_POLL`) is what needs it; farther deadlines (health
//! checks, idle timeouts, saves) keep the plain timeout and cost no call.

use std::os::fd::{AsRawFd, OwnedFd};
use std::time::{Duration, Instant};

use mio::unix::SourceFd;
use mio::{Interest, Registry, Token};
use rustix::time::{
    timerfd_create, timerfd_settime, Itimerspec, TimerfdClockId, TimerfdFlags, TimerfdTimerFlags,
    Timespec,
};

/// The timerfd's token: instance fds count up from 1 and never reach it.
pub const TIMER: Token = Token(usize::MAX);
/// Deadlines nearer than this are kept by the timerfd.
const FINE_BELOW: Duration = Duration::from_millis(20);

/// The loop's timerfd and the deadline it is set for.
pub struct Wakeup {
    /// None: no timerfd (creating or registering it failed); the poll's
    /// millisecond timeout does all.
    fd: Option<OwnedFd>,
    armed: Option<Instant>,
}

impl Wakeup {
    /// A timerfd registered in `registry` under `TIMER`.
    pub fn new(registry: &Registry) -> Wakeup {
        let fd = timerfd_create(
            TimerfdClockId::Monotonic,
            TimerfdFlags::CLOEXEC | TimerfdFlags::NONBLOCK,
        )
        .map_err(std::io::Error::from)
        .and_then(|fd| {
            registry.register(&mut SourceFd(&fd.as_raw_fd()), TIMER, Interest::READABLE)?;
            Ok(fd)
        });
        let fd = match fd {
            Ok(fd) => Some(fd),
            Err(e) => {
                warn!(
                    "supervisor",
                    "no timerfd ({e}): deadlines are kept to the millisecond"
                );
                None
            }
        };
        Wakeup { fd, armed: None }
    }

    /// The timeout to poll with for the loop's next `deadline`: the time
    /// left, or, with the timerfd set for a near deadline, None (the timerfd
    /// ends the wait; nothing else needs to).
    pub fn timeout(&mut self, deadline: Option<Instant>, now: Instant) -> Option<Duration> {
        let Some(at) = deadline else {
            self.disarm(now);
            return None;
        };
        let left = at.saturating_duration_since(now);
        if left.is_zero() {
            return Some(left);
        }
        let Some(fd) = self.fd.as_ref().filter(|_| left < FINE_BELOW) else {
            self.disarm(now);
            return Some(left);
        };
        if self.armed == Some(at) {
            return None;
        }
        match set(fd, left) {
            Ok(()) => {
                self.armed = Some(at);
                None
            }
            Err(e) => {
                warn!(
                    "supervisor",
                    "timerfd_settime: {e}; deadlines are kept to the millisecond"
                );
                self.fd = None;
                self.armed = None;
                Some(left)
            }
        }
    }

    /// Stops a timer set for a deadline not yet reached, which no longer
    /// matters: it would wake the loop for nothing.
    fn disarm(&mut self, now: Instant) {
        if let (Some(at), Some(fd)) = (self.armed.take(), self.fd.as_ref()) {
            if at > now {
                let _ = set(fd, Duration::ZERO);
            }
        }
    }
}

/// Sets `fd` to expire once, `after` from now (zero: stops it).
fn set(fd: &OwnedFd, after: Duration) -> rustix::io::Result<()> {
    let zero = Timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    let value = Timespec {
        tv_sec: after.as_secs() as _,
        tv_nsec: after.subsec_nanos() as _,
    };
    let spec = Itimerspec {
        it_interval: zero,
        it_value: value,
    };
    timerfd_settime(fd, TimerfdTimerFlags::empty(), &spec).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;
    use mio::{Events, Poll};

    #[test]
    fn a_near_deadline_is_kept_by_the_timerfd_and_a_far_one_by_the_timeout() {
        let mut poll = Poll::new().unwrap();
        let mut w = Wakeup::new(poll.registry());
        assert!(w.fd.is_some());
        let now = Instant::now();
        // Far: the poll's own timeout, nothing set.
        let far = now + Duration::from_secs(5);
        assert_eq!(w.timeout(Some(far), now), Some(Duration::from_secs(5)));
        assert_eq!(w.armed, None);
        // Passed: poll without waiting.
        assert_eq!(w.timeout(Some(now), now), Some(Duration::ZERO));
        // Near: the timerfd, and it ends a wait with no timeout.
        let near = Instant::now() + Duration::from_micros(300);
        assert_eq!(w.timeout(Some(near), Instant::now()), None);
        assert_eq!(w.armed, Some(near));
        let mut events = Events::with_capacity(4);
        poll.poll(&mut events, Some(Duration::from_secs(30)))
            .unwrap();
        assert!(Instant::now() >= near);
        assert!(events.iter().any(|e| e.token() == TIMER));
        // Once passed, it is polled for at once.
        assert_eq!(w.timeout(Some(near), Instant::now()), Some(Duration::ZERO));
        // A deadline already set is kept as it is.
        let next = Instant::now() + Duration::from_millis(15);
        assert_eq!(w.timeout(Some(next), Instant::now()), None);
        assert_eq!(w.timeout(Some(next), Instant::now()), None);
        assert_eq!(w.armed, Some(next));
    }

    #[test]
    fn a_timer_no_longer_needed_is_stopped() {
        let mut poll = Poll::new().unwrap();
        let mut w = Wakeup::new(poll.registry());
        let near = Instant::now() + Duration::from_millis(10);
        assert_eq!(w.timeout(Some(near), Instant::now()), None);
        // Nothing to wait for any more: stopped, so no wake-up comes.
        assert_eq!(w.timeout(None, Instant::now()), None);
        assert_eq!(w.armed, None);
        let mut events = Events::with_capacity(4);
        poll.poll(&mut events, Some(Duration::from_millis(50)))
            .unwrap();
        assert!(events.iter().all(|e| e.token() != TIMER));
    }
}
