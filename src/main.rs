//! `ten`: argv goes to `cli::run`, its exit code comes back. Nothing else lives here.
#![deny(unsafe_code)]
// Unsafe code lives only in `sys` and `isolate`, and every block there says
// why it is sound in a `// SAFETY:` comment right above it.
#![deny(clippy::undocumented_unsafe_blocks)]

#[macro_use]
mod log;
mod cli;
mod config;
mod front;
mod http;
#[allow(unsafe_code)]
mod isolate;
mod names;
mod net;
mod notify;
mod server;
mod state;
mod supervisor;
#[allow(unsafe_code)]
mod sys;

fn main() {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    std::process::exit(cli::run(args));
}
