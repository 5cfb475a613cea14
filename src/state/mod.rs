//! tenement's own files under `{data_dir}/.tenement/`: the instance registry
//! (`state`), the token store (`tokens`, hashes only) and the admin token for
//! the local CLI (`{data_dir}/api_token`, 0600). Where every file of a data
//! dir lives is `layout`'s to say.
//!
//! Every write is atomic: temp file, fsync, rename, fsync dir. A crash at any
//! point leaves the old or the new file, never a torn one.

pub mod atomic;
pub mod layout;
pub mod registry;
pub mod registry_journal;
pub mod sha256;
pub mod sizes;
#[cfg(test)]
pub(crate) mod testdir;
pub mod tokens;

use std::path::{Path, PathBuf};

pub use registry::{Desired, MoveRecord, Registry, RegistryEntry};
pub use tokens::{Principal, TokenStore};

/// An error reading or writing one of tenement's files.
#[derive(Debug)]
pub enum StateError {
    Io {
        path: PathBuf,
        op: &'static str,
        source: std::io::Error,
    },
    /// The file exists but is not what we wrote.
    Corrupt { path: PathBuf, reason: String },
    /// The file parses but an entry breaks the rules the API applies (a bad
    /// name, a duplicate, a shared port, ...): `reason` names the entry,
    /// `fix` says what the operator can do.
    Invalid {
        path: PathBuf,
        reason: String,
        fix: &'static str,
    },
    /// A name given to us (a token's tenant) is not a valid instance id.
    Name(crate::names::NameError),
}

impl std::fmt::Display for StateError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StateError::Io { path, op, .. } => write!(f, "{op} {}", path.display()),
            StateError::Corrupt { path, reason } => {
                write!(f, "{} is corrupt: {reason}", path.display())
            }
            StateError::Invalid { path, reason, fix } => {
                write!(f, "{} is invalid: {reason}; {fix}", path.display())
            }
            StateError::Name(e) => write!(f, "{e}"),
        }
    }
}

impl StateError {
    /// The error and its OS cause, for a log line or an answer:
    /// "write /srv/.tenement/.state.tmp.1.2: No space left on device (os error 28)".
    pub fn describe(&self) -> String {
        match std::error::Error::source(self) {
            Some(cause) => format!("{self}: {cause}"),
            None => self.to_string(),
        }
    }

    /// The write failed because the disk (or the user's quota) is full:
    /// ENOSPC or EDQUOT. The API answers these 507, other failures 500.
    pub fn disk_full(&self) -> bool {
        match self {
            StateError::Io { source, .. } => {
                matches!(source.raw_os_error(), Some(libc::ENOSPC | libc::EDQUOT))
            }
            _ => false,
        }
    }
}

impl std::error::Error for StateError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            StateError::Io { source, .. } => Some(source),
            StateError::Corrupt { .. } | StateError::Invalid { .. } | StateError::Name(_) => None,
        }
    }
}

/// The version of `state` and `tokens` this tenement reads and writes.
pub const FILE_VERSION: u32 = 1;

/// Reads one of our JSON files: None when it does not exist, `Corrupt`
/// naming the file when it does not parse.
pub(crate) fn read_json<T: serde::de::DeserializeOwned>(
    path: &Path,
) -> Result<Option<T>, StateError> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(StateError::Io {
                path: path.to_path_buf(),
                op: "read",
                source,
            })
        }
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| StateError::Corrupt {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })
}
