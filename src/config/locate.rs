//! Where things are: the config file (`--config`, `$TENEMENT_CONFIG`, the
//! usual places) and the data dir, and paths made absolute. Reads only the
//! environment, the current directory and whether a file exists.

use std::ffi::OsStr;
use std::path::{Component, Path, PathBuf};

use super::Config;

/// Where the config comes from: `--config` (`explicit`), `$TENEMENT_CONFIG`,
/// `./tenement.toml`, `/etc/tenement/tenement.toml`; first found wins. An
/// explicit path (flag or env) is returned even if missing, so the caller can
/// say it is missing. None: no config anywhere. The path returned is absolute.
pub fn locate(explicit: Option<&Path>) -> Option<PathBuf> {
    let env = std::env::var_os("TENEMENT_CONFIG");
    locate_with(explicit, env.as_deref(), |path| path.is_file())
}

/// `locate` with the environment and the file system passed in, for tests.
pub(super) fn locate_with(
    explicit: Option<&Path>,
    env: Option<&OsStr>,
    exists: impl Fn(&Path) -> bool,
) -> Option<PathBuf> {
    if let Some(path) = explicit {
        return Some(absolute(path));
    }
    if let Some(path) = env.filter(|v| !v.is_empty()) {
        return Some(absolute(Path::new(path)));
    }
    [
        Path::new("tenement.toml"),
        Path::new("/etc/tenement/tenement.toml"),
    ]
    .into_iter()
    .find(|path| exists(path))
    .map(absolute)
}

/// The data dir: `cli` (the `--data-dir` flag), else `$TENEMENT_DATA_DIR` if
/// set and not empty, else `settings.data_dir` of `config`, else
/// `/var/lib/tenement` when running as root (effective uid 0), else `./data`.
/// Always absolute: relative values are joined to the current directory
/// (`settings.data_dir` is already absolute, against the config's folder).
pub fn resolve_data_dir(cli: Option<&Path>, config: Option<&Config>) -> PathBuf {
    let env = std::env::var_os("TENEMENT_DATA_DIR");
    let root = rustix::process::geteuid().is_root();
    resolve_data_dir_with(cli, env.as_deref(), config, root)
}

/// `resolve_data_dir` with the environment and the effective uid passed in, for tests.
pub(super) fn resolve_data_dir_with(
    cli: Option<&Path>,
    env: Option<&OsStr>,
    config: Option<&Config>,
    root: bool,
) -> PathBuf {
    if let Some(dir) = cli {
        return absolute(dir);
    }
    if let Some(dir) = env.filter(|v| !v.is_empty()) {
        return absolute(Path::new(dir));
    }
    if let Some(dir) = config.and_then(|c| c.settings.data_dir.as_deref()) {
        return absolute(dir);
    }
    if root {
        PathBuf::from("/var/lib/tenement")
    } else {
        absolute(Path::new("data"))
    }
}

/// `path` made absolute against the current directory, with `.` components
/// dropped. `..` is kept: removing it without reading symlinks could change
/// which directory is meant.
pub(super) fn absolute(path: &Path) -> PathBuf {
    let joined = if path.is_absolute() {
        path.to_path_buf()
    } else {
        // The current directory only goes missing if it was deleted under us;
        // the relative path is then the best there is.
        match std::env::current_dir() {
            Ok(cwd) => cwd.join(path),
            Err(_) => path.to_path_buf(),
        }
    };
    clean(&joined)
}

/// Drops `.` components (`/srv/app/./data` -> `/srv/app/data`).
pub(super) fn clean(path: &Path) -> PathBuf {
    path.components()
        .filter(|c| !matches!(c, Component::CurDir))
        .collect()
}
