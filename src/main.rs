//! `ten`: argv goes to `cli::run`, its exit code comes back. Nothing else lives here.
#![deny(unsafe_code)]
// Unsafe code lives only in `sys` and `isolate`, and every block there says
// why it is sound in a `// SAFETY:` comment right above it.
#![deny(clippy::undocumented_unsafe_blocks)]

#[macro_use]
pub(crate) mod log;
pub(crate) mod acme;
pub(crate) mod certs;
pub(crate) mod cli;
pub(crate) mod config;
pub(crate) mod front;
pub(crate) mod http;
#[allow(unsafe_code)]
pub(crate) mod isolate;
pub(crate) mod lanes;
pub(crate) mod names;
pub(crate) mod net;
pub(crate) mod notify;
pub(crate) mod server;
pub(crate) mod state;
pub(crate) mod supervisor;
#[allow(unsafe_code)]
pub(crate) mod sys;
pub(crate) mod transfer;
pub(crate) mod upgrade;

fn main() {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    std::process::exit(cli::run(args));
}
