//! ACME (RFC 8555): certificates from a CA such as Let's Encrypt, obtained
//! and renewed by tenement itself, on a thread of its own.
//!
//! `jws` (account key, signed requests) and `der` (CSR, TLS-ALPN-01
//! certificate) are pure; `https` is a small blocking client for the CA;
//! `client` speaks the protocol. Nothing here runs on a front loop.

pub mod client;
pub mod der;
pub mod https;
pub mod jws;
