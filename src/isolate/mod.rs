//! Everything that touches the kernel to start a process. All `unsafe` of the
//! project lives here (and in a thin syscall layer), each block with a
//! `// SAFETY:` line.
//!
//! The supervisor calls `spawn` with a prepared argv, workdir and environment
//! (`env::build`), and uses `procfs` to identify, watch and signal what it
//! started. Only the `process` level is implemented here; the others are
//! refused with `SpawnError::Unsupported` rather than run with less isolation.
#![deny(clippy::undocumented_unsafe_blocks)]

pub mod cgroup;
pub mod env;
pub mod owner;
pub mod process;
pub mod procfs;

pub mod spawn;
pub mod zygote;

pub use spawn::{spawn, Child, Listen, Request, Spawned};
pub mod caps;
// `launch` and `start` reach the supervisor in the next change; until then
// only the tests call them.
#[cfg_attr(not(test), allow(dead_code))]
pub mod child;
pub mod init;
pub mod landlock;
pub mod mount;
#[cfg_attr(not(test), allow(dead_code))]
pub mod plan;
pub mod seccomp;
pub mod socket_path;

#[cfg(test)]
mod live_tests;
