//! Everything that touches the kernel to start a process. All `unsafe` of the
//! project lives here (and in a thin syscall layer), each block with a
//! `// SAFETY:` line.
