//! `ten serve`: loads the config, starts the supervisor and the front loops,
//! and waits for signals (SIGTERM/SIGINT: graceful shutdown; SIGHUP: reload).

use std::net::SocketAddr;
use std::path::PathBuf;

/// What `ten serve` was told on its command line (flags override the config).
#[derive(Debug, Clone, Default)]
pub struct ServeOptions {
    /// `--config` / `$TENEMENT_CONFIG`, as given.
    pub config: Option<PathBuf>,
    /// `--data-dir` / `$TENEMENT_DATA_DIR`, as given.
    pub data_dir: Option<PathBuf>,
    /// `--port`: replaces the port of `settings.listen`.
    pub port: Option<u16>,
    /// `--bind`: replaces the address of `settings.listen`.
    pub bind: Option<std::net::IpAddr>,
    /// `--domain`.
    pub domain: Option<String>,
}

/// Runs the server in the foreground until SIGTERM/SIGINT. Prints
/// `listening on ADDR` on stderr once it accepts connections.
pub fn serve(opts: ServeOptions) -> Result<(), Box<dyn std::error::Error>> {
    let _: Option<SocketAddr> = None;
    let _ = opts;
    todo!("server::serve")
}
