//! HTTP/1.x message heads and body framing as pure state machines over bytes.
//!
//! Used by the front (proxying, API) and the CLI client. No sockets, no clock,
//! no I/O here: callers own the buffers and the sockets. RFC 9112 rules are
//! cited where they decide something.

pub mod append;
pub mod body;
pub mod fields;
pub mod head;
mod hop;
pub mod response;
#[cfg(test)]
mod testutil;
pub mod write;

pub use body::Framer;
pub use head::{parse_response, BodyKind, RequestHead};
pub use write::{client_address, write_request_head, write_response_head, Forwarded};
