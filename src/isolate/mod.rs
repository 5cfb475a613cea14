//! Everything that touches the kernel to start a process. All `unsafe` of the
//! project lives here (and in a thin syscall layer), each block with a
//! `// SAFETY:` line.
//!
//! The supervisor calls `spawn` with a prepared argv, workdir and environment
//! (`env::build`), and uses `proc` to identify, watch and signal what it
//! started. Only the `process` level is implemented here; the others are
//! refused with `SpawnError::Unsupported` rather than run with less isolation.
#![deny(clippy::undocumented_unsafe_blocks)]

pub mod cgroup;
pub mod env;
pub mod proc;
pub mod process;

pub use process::{spawn, Listen, Spawned};
// Used by the namespace and sandbox launch, which lands next.
#[allow(dead_code)]
pub mod landlock;
#[allow(dead_code)]
pub mod seccomp;
