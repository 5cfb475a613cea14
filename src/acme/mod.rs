//! ACME (RFC 8555): certificates from a CA such as Let's Encrypt, obtained
//! and renewed by tenement itself, on a thread of its own.
//!
//! `jws` (account key, signed requests) and `der` (CSR, TLS-ALPN-01
//! certificate) are pure; `https` is a small blocking client for the CA;
//! `client` speaks the protocol; `files` keeps keys and certificates under
//! `{data_dir}/.tenement/acme/`; `shared` is what the front loops read in
//! handshakes and on the plain listener (challenge answers, issued
//! certificates); `manager` is the thread deciding what to order and when.
//! Nothing here runs on a front loop except `shared`'s lookups, which
//! never block on the network or the disk.

pub mod client;
pub mod der;
pub mod files;
pub mod https;
pub mod jws;
pub mod manager;
pub mod shared;
