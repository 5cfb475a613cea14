//! The front: N mio event loops proxying HTTP/1.1 by Host, and the management
//! API, dashboard and metrics on the root domain and on `ten.sock`.
//!
//! Each loop owns its listener (SO_REUSEPORT), its connections and its
//! upstream pool. It reads routes from `Published` and talks to the
//! supervisor by message only; it never blocks.

pub mod api;
pub mod router;
