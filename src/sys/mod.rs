//! Thin wrappers over the few syscalls the rest of the server needs that
//! rustix does not wrap safely. Each keeps the kernel's name.

pub mod signals;
