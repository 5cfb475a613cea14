//! The on-disk layout of a data dir: the one place that knows where a file
//! lives. Pure path arithmetic; nothing here touches the disk.
//!
//! ```text
//! {data_dir}/{service}/{id}/                instance data dir (DATA_DIR)
//! {data_dir}/api_token                      admin token for the local CLI
//! {data_dir}/.tenement/                     tenement's own files (0700)
//!     state                                 the instance registry
//!     tokens, tokens.lock                   token hashes and their lock
//!     lock                                  held by the running server
//!     ten.sock                              the local API socket
//!     run/{service}.{id}.sock               instance sockets (SOCKET_PATH)
//!     logs/{service}/{id}.log, .log.1 ...   instance logs, newest first
//! ```

use std::path::{Path, PathBuf};

/// `{data_dir}/.tenement`.
pub fn internal_dir(data_dir: &Path) -> PathBuf {
    data_dir.join(".tenement")
}

/// `{data_dir}/.tenement/state`, the instance registry.
pub fn registry_path(data_dir: &Path) -> PathBuf {
    internal_dir(data_dir).join("state")
}

/// `{data_dir}/.tenement/tokens`, the token hashes.
pub fn tokens_path(data_dir: &Path) -> PathBuf {
    internal_dir(data_dir).join("tokens")
}

/// `{data_dir}/.tenement/tokens.lock`, held while the token store changes.
pub fn tokens_lock_path(data_dir: &Path) -> PathBuf {
    internal_dir(data_dir).join("tokens.lock")
}

/// `{data_dir}/.tenement/lock`, held by the running server.
pub fn server_lock_path(data_dir: &Path) -> PathBuf {
    internal_dir(data_dir).join("lock")
}

/// `{data_dir}/.tenement/ten.sock`, the local API socket.
pub fn api_socket_path(data_dir: &Path) -> PathBuf {
    internal_dir(data_dir).join("ten.sock")
}

/// `{data_dir}/api_token`, the admin token for the local CLI.
pub fn api_token_path(data_dir: &Path) -> PathBuf {
    data_dir.join("api_token")
}

/// `{data_dir}/.tenement/run`, the folder of instance sockets.
pub fn run_dir(data_dir: &Path) -> PathBuf {
    internal_dir(data_dir).join("run")
}

/// `{data_dir}/.tenement/logs`, the folder of instance logs.
pub fn logs_dir(data_dir: &Path) -> PathBuf {
    internal_dir(data_dir).join("logs")
}

/// `{data_dir}/{service}/{id}`: the instance's default data dir.
pub fn instance_dir(data_dir: &Path, service: &str, id: &str) -> PathBuf {
    data_dir.join(service).join(id)
}

/// `{data_dir}/.tenement/run/{service}.{id}.sock`, the instance's socket.
pub fn instance_socket_path(data_dir: &Path, service: &str, id: &str) -> PathBuf {
    run_dir(data_dir).join(format!("{service}.{id}.sock"))
}

/// `{data_dir}/.tenement/logs/{service}/{id}.log`, the current log file.
pub fn log_path(data_dir: &Path, service: &str, id: &str) -> PathBuf {
    logs_dir(data_dir).join(service).join(format!("{id}.log"))
}

/// The `n`th rotated file of the log at `log` (`x.log.1` is the newest);
/// `n == 0` is `log` itself.
pub fn rotated_log_path(log: &Path, n: u32) -> PathBuf {
    if n == 0 {
        return log.to_path_buf();
    }
    let mut s = log.as_os_str().to_owned();
    s.push(format!(".{n}"));
    PathBuf::from(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_the_documented_ones() {
        let d = Path::new("/srv/ten");
        let p = |s: &str| PathBuf::from(s);
        assert_eq!(registry_path(d), p("/srv/ten/.tenement/state"));
        assert_eq!(tokens_path(d), p("/srv/ten/.tenement/tokens"));
        assert_eq!(tokens_lock_path(d), p("/srv/ten/.tenement/tokens.lock"));
        assert_eq!(server_lock_path(d), p("/srv/ten/.tenement/lock"));
        assert_eq!(api_socket_path(d), p("/srv/ten/.tenement/ten.sock"));
        assert_eq!(api_token_path(d), p("/srv/ten/api_token"));
        assert_eq!(instance_dir(d, "api", "a"), p("/srv/ten/api/a"));
        assert_eq!(
            instance_socket_path(d, "api", "a"),
            p("/srv/ten/.tenement/run/api.a.sock")
        );
        let log = log_path(d, "api", "a");
        assert_eq!(log, p("/srv/ten/.tenement/logs/api/a.log"));
        assert_eq!(rotated_log_path(&log, 0), log);
        assert_eq!(
            rotated_log_path(&log, 2),
            p("/srv/ten/.tenement/logs/api/a.log.2")
        );
    }
}
