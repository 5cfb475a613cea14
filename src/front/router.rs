//! Host (and path) to target, and smooth weighted round robin. Pure: no I/O.
