//! Whose fault a failed exchange was. That one fact sets the status the
//! front answers, the level the failure is logged at and which upstream
//! connections may still be used; `worker::exchange::fail` applies it.
//!
//! Pure: no I/O, no clock.

use crate::log::Level;

/// The side a proxy error came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The client: a malformed request, a body too large, too slow to send.
    Client,
    /// The instance: refused, closed early, malformed answer, too slow, or
    /// could not be started.
    Upstream,
    /// The front or the supervisor itself.
    Internal,
}

impl Side {
    /// The status for an error from this side; `timed_out` when a deadline
    /// passed rather than something went wrong.
    pub fn status(self, timed_out: bool) -> u16 {
        match (self, timed_out) {
            (Side::Client, true) => 408,
            (Side::Client, false) => 400,
            (Side::Upstream, true) => 504,
            (Side::Upstream, false) => 502,
            (Side::Internal, _) => 500,
        }
    }

    /// How loudly to log it: a client's mistakes are routine (debug), an
    /// instance failing is degraded but handled (warn), our own failure
    /// needs an operator (error).
    pub fn level(self) -> Level {
        match self {
            Side::Client => Level::Debug,
            Side::Upstream => Level::Warn,
            Side::Internal => Level::Error,
        }
    }

    /// Whether an idle upstream connection attached to the client (kept
    /// from an earlier request) may still be reused. A client's error says
    /// nothing about it; after an instance or the front failed, nothing of
    /// that exchange is trusted. The upstream the exchange was using is
    /// always dropped, and the client connection always closes after an
    /// error answer.
    pub fn keeps_idle_upstream(self) -> bool {
        matches!(self, Side::Client)
    }
}

impl std::fmt::Display for Side {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Side::Client => "client",
            Side::Upstream => "upstream",
            Side::Internal => "internal",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_side_sets_status_level_and_reuse() {
        let table = [
            (Side::Client, false, 400, Level::Debug, true),
            (Side::Client, true, 408, Level::Debug, true),
            (Side::Upstream, false, 502, Level::Warn, false),
            (Side::Upstream, true, 504, Level::Warn, false),
            (Side::Internal, false, 500, Level::Error, false),
            (Side::Internal, true, 500, Level::Error, false),
        ];
        for (side, timed_out, status, level, keeps) in table {
            assert_eq!(side.status(timed_out), status, "{side} {timed_out}");
            assert_eq!(side.level(), level, "{side}");
            assert_eq!(side.keeps_idle_upstream(), keeps, "{side}");
        }
    }
}
