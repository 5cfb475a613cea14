//! Helper threads for blocking work that must not run on an event loop or
//! on the supervisor's thread: walking data dirs, reading log files,
//! writing a data dir sent by another node. Each `Lane` is one thread,
//! started on first use and shared by every caller, that runs its work in
//! order: a long walk delays other walks, never a log read, and never a
//! proxied request. The work says itself where its result goes.

use std::sync::mpsc::{self, Sender};
use std::sync::OnceLock;

/// Which helper thread runs a piece of work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lane {
    /// Data dir walks.
    Storage,
    /// Log file reads.
    Logs,
    /// Writes of a data dir sent by another node (`/api/transfer`).
    Transfer,
}

type Work = Box<dyn FnOnce() + Send>;

static STORAGE: OnceLock<Option<Sender<Work>>> = OnceLock::new();
static LOGS: OnceLock<Option<Sender<Work>>> = OnceLock::new();
static TRANSFER: OnceLock<Option<Sender<Work>>> = OnceLock::new();

impl Lane {
    fn thread_name(self) -> &'static str {
        match self {
            Lane::Storage => "ten-storage",
            Lane::Logs => "ten-logs",
            Lane::Transfer => "ten-transfer",
        }
    }
}

/// Queues `work` on `lane`. Never blocks. False when the lane's thread
/// cannot be started (then `work` is dropped unrun).
pub fn run(lane: Lane, work: Work) -> bool {
    let tx = match lane {
        Lane::Storage => &STORAGE,
        Lane::Logs => &LOGS,
        Lane::Transfer => &TRANSFER,
    };
    match tx.get_or_init(|| start(lane)) {
        Some(tx) => tx.send(work).is_ok(),
        None => false,
    }
}

/// Starts a lane's thread. None if the thread cannot be created.
fn start(lane: Lane) -> Option<Sender<Work>> {
    let (tx, rx) = mpsc::channel::<Work>();
    let name = lane.thread_name();
    let spawned = std::thread::Builder::new()
        .name(name.to_string())
        .spawn(move || {
            for work in rx {
                work();
            }
        });
    match spawned {
        Ok(_) => Some(tx),
        Err(e) => {
            error!("server", "cannot start the {name} thread: {e}");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn work_runs_in_order_on_its_lanes_thread() {
        let (tx, rx) = mpsc::channel();
        for n in 0..3 {
            let tx = tx.clone();
            assert!(run(
                Lane::Logs,
                Box::new(move || {
                    let name = std::thread::current().name().map(str::to_string);
                    tx.send((n, name)).unwrap();
                })
            ));
        }
        let got: Vec<(i32, Option<String>)> = (0..3)
            .map(|_| {
                rx.recv_timeout(std::time::Duration::from_secs(10))
                    .expect("the work ran")
            })
            .collect();
        let logs = Some("ten-logs".to_string());
        assert_eq!(got, [(0, logs.clone()), (1, logs.clone()), (2, logs)]);
    }
}
