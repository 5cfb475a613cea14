//! Work an API answer needs that must not run on a front event loop:
//! walking an instance's data dir (`storage.rs`) and reading log files
//! (`logs.rs`). A handler returns `Action::Offload` with a `Job`; the loop
//! parks the connection as it does for a supervisor command and calls
//! `Job::submit`, and the reply comes back down the loop's channel.
//!
//! A job runs on a `crate::lanes` helper thread (one per `Lane`, shared by
//! every loop and the supervisor) and never touches sockets.

use crate::supervisor::{CommandError, Reply, ReplyTo};

pub use crate::lanes::Lane;

/// One piece of blocking work and the reply it makes.
pub struct Job {
    lane: Lane,
    work: Box<dyn FnOnce() -> Reply + Send>,
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Job({:?})", self.lane)
    }
}

impl Job {
    pub fn new(lane: Lane, work: impl FnOnce() -> Reply + Send + 'static) -> Job {
        Job {
            lane,
            work: Box::new(work),
        }
    }

    /// Runs the work on the calling thread (blocks). Used by the lane
    /// threads, and by tests.
    pub fn run(self) -> Reply {
        (self.work)()
    }

    /// Queues the job on its lane; `to` gets the reply when it is done (none:
    /// the work is done for its side effect). Never blocks. If the helper
    /// thread cannot be started, `to` gets a 503.
    pub fn submit(self, to: Option<ReplyTo>) {
        let unsent = to.clone();
        let lane = self.lane;
        let queued = crate::lanes::run(
            lane,
            Box::new(move || {
                let reply = self.run();
                if let Some(to) = to {
                    to.send(reply);
                }
            }),
        );
        if let (false, Some(to)) = (queued, unsent) {
            to.send(Reply::Error(CommandError::Unavailable(
                "the server cannot start a helper thread".to_string(),
            )));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{mpsc, Arc};

    #[test]
    fn a_submitted_job_replies_on_the_channel_and_wakes_the_loop() {
        let poll = mio::Poll::new().unwrap();
        let waker = Arc::new(mio::Waker::new(poll.registry(), mio::Token(0)).unwrap());
        let (tx, rx) = mpsc::channel();
        let thread = std::thread::current().id();
        for (lane, n) in [(Lane::Storage, 1u64), (Lane::Logs, 2)] {
            let to = ReplyTo {
                tx: tx.clone(),
                waker: waker.clone(),
                conn: n as usize,
            };
            Job::new(lane, move || {
                assert_ne!(std::thread::current().id(), thread, "ran off the caller");
                Reply::Stream(vec![n as u8])
            })
            .submit(Some(to));
        }
        let mut got: Vec<(usize, String)> = (0..2)
            .map(|_| {
                let (conn, reply) = rx
                    .recv_timeout(std::time::Duration::from_secs(10))
                    .expect("a reply");
                (conn, format!("{reply:?}"))
            })
            .collect();
        got.sort();
        assert_eq!(
            got,
            [
                (1, "Stream([1])".to_string()),
                (2, "Stream([2])".to_string())
            ]
        );
    }
}
