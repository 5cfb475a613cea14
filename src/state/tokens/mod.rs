//! API tokens: 256 random bits from the kernel, shown once, stored as SHA-256
//! hashes in `{data_dir}/.tenement/tokens` (0600) and compared in constant
//! time. The admin token is also kept in plaintext in `{data_dir}/api_token`
//! (0600) for the local CLI.
//!
//! Every token has an id: 8 hex digits drawn at random when it is minted,
//! never derived from the secret, so listings and logs can name a token
//! without giving anything of it away.
//!
//! `mint`, `rotate` and `revoke` are called by `ten token-gen` and `ten token
//! revoke` (server running or not) and by the supervisor for `DELETE
//! /api/tokens/{id}`; they block on disk I/O and never run on a front loop.
//! `TokenStore` is used by the front loops, which pick up minted and revoked
//! tokens without a restart. `TokenUsage` keeps "last used" in memory; its
//! `flush` writes it to the tokens file (once a minute and at shutdown, from
//! the server's flusher thread), never once per request. Never log a token:
//! log its id.
//!
//! This file owns the tokens file's format (`TokenFile`), reading and
//! writing it under the writers' lock, and `api_token`. `store` checks
//! presented tokens for the front loops, `usage` keeps "last used", `mint`
//! makes and removes tokens. Nothing here talks to the supervisor.

mod mint;
mod store;
mod usage;

use std::fs::{self, File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::atomic::Staged;
use super::layout::{api_token_path, tokens_lock_path, tokens_path};
use super::StateError;

pub use mint::{mint, revoke, rotate};
pub use store::TokenStore;
pub use usage::{TokenUsage, UsageFlusher};

/// Who a token belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    Admin,
    /// A tenant token: sees and acts on instances whose id is this only.
    Tenant(String),
}

/// One token as stored. The plaintext is never stored here.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenRecord {
    /// 8 hex digits, random: what logs and listings name the token by.
    pub id: String,
    /// Lowercase hex SHA-256 of the whole token (`ten_...`).
    pub hash: String,
    /// None: an admin token.
    pub tenant: Option<String>,
    pub description: String,
    pub created_unix: u64,
    /// When a request last presented it, as of the last flush. None: never.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_used_unix: Option<u64>,
}

impl TokenRecord {
    /// The record as listings show it (`GET /api/tokens`, `ten token list
    /// --json`): everything but the hash. `last_used` is the newest time
    /// known, which may be newer than the file's.
    pub fn public_json(&self, last_used: Option<u64>) -> Value {
        json!({
            "id": self.id,
            "kind": if self.tenant.is_some() { "tenant" } else { "admin" },
            "tenant": self.tenant,
            "description": self.description,
            "created_unix": self.created_unix,
            "last_used_unix": last_used.max(self.last_used_unix),
        })
    }
}

/// The tokens file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenFile {
    pub version: u32,
    pub tokens: Vec<TokenRecord>,
}

/// Reads the tokens file; missing = empty, unparseable = Corrupt.
pub fn load(path: &Path) -> Result<TokenFile, StateError> {
    Ok(super::read_json(path)?.unwrap_or(TokenFile {
        version: 1,
        tokens: Vec::new(),
    }))
}

/// Replaces the tokens file atomically, 0600. Call with the lock held.
fn save(path: &Path, file: &TokenFile) -> Result<(), StateError> {
    stage(path, file)?.commit()
}

/// The new tokens file, written beside the old one (see `atomic::stage`).
fn stage(path: &Path, file: &TokenFile) -> Result<Staged, StateError> {
    let mut bytes = serde_json::to_vec_pretty(file).expect("the token file serialises to json");
    bytes.push(b'\n');
    super::atomic::stage(path, &bytes, 0o600)
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Every token record, for `ten token list` with the server stopped.
pub fn list(data_dir: &Path) -> Result<Vec<TokenRecord>, StateError> {
    Ok(load(&tokens_path(data_dir))?.tokens)
}

/// The new `api_token`, written beside the old one (see `atomic::stage`).
fn stage_api_token(data_dir: &Path, token: &str) -> Result<Staged, StateError> {
    super::atomic::stage(
        &api_token_path(data_dir),
        format!("{token}\n").as_bytes(),
        0o600,
    )
}

/// Takes the exclusive lock that serialises writers of the tokens file.
/// Released when the returned file is dropped.
fn lock(data_dir: &Path) -> Result<File, StateError> {
    let path = tokens_lock_path(data_dir);
    super::atomic::create_dir(path.parent().expect("under .tenement"))?;
    let file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(&path)
        .map_err(|source| StateError::Io {
            path: path.clone(),
            op: "open",
            source,
        })?;
    loop {
        match rustix::fs::flock(&file, rustix::fs::FlockOperation::LockExclusive) {
            Ok(()) => return Ok(file),
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => {
                return Err(StateError::Io {
                    path,
                    op: "flock",
                    source: e.into(),
                })
            }
        }
    }
}

/// The admin token saved by `mint` in `{data_dir}/api_token`, trimmed.
/// None when the file is missing, unreadable or empty. The CLI never
/// sends it anywhere (it talks to `ten.sock`, which needs none).
pub fn read_api_token(data_dir: &Path) -> Option<String> {
    let text = fs::read_to_string(api_token_path(data_dir)).ok()?;
    let token = text.trim();
    (!token.is_empty()).then(|| token.to_string())
}

#[cfg(test)]
pub(crate) mod test_util {
    use std::fs;
    use std::os::unix::fs::PermissionsExt;
    use std::path::Path;

    use super::TokenRecord;

    pub fn mode(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    pub fn is_token(t: &str) -> bool {
        t.len() == 68
            && t.starts_with("ten_")
            && t[4..]
                .bytes()
                .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c))
    }

    pub fn records(dir: &Path) -> Vec<TokenRecord> {
        super::list(dir).unwrap()
    }
}
