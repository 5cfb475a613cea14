//! The `ten` command line: a table-driven flag parser with real `--help` per
//! command, a blocking HTTP client for the API (TCP or `ten.sock`), and table
//! or JSON output. `ten serve` hands over to `server::serve`.

/// Runs one invocation; returns the exit code (0 ok, 1 failed, 2 bad usage).
pub fn run(args: Vec<std::ffi::OsString>) -> i32 {
    let _ = args;
    todo!("cli::run")
}
