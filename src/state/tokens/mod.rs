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

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::atomic::Staged;
use super::layout::{api_token_path, tokens_lock_path, tokens_path};
use super::{StateError, FILE_VERSION};

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

/// What to do about a tokens file that does not validate.
const FIX: &str = "no token is accepted and ten serve does not start with it. Correct or \
delete that record (the file is JSON), or move the file away and mint new tokens \
with `ten token-gen`";

/// Reads the tokens file; missing = empty, unparseable = Corrupt, a record
/// that breaks the rules = Invalid naming it.
pub fn load(path: &Path) -> Result<TokenFile, StateError> {
    let Some(file) = super::read_json::<TokenFile>(path)? else {
        return Ok(TokenFile {
            version: FILE_VERSION,
            tokens: Vec::new(),
        });
    };
    file.validate().map_err(|reason| StateError::Invalid {
        path: path.to_path_buf(),
        reason,
        fix: FIX,
    })?;
    Ok(file)
}

impl TokenFile {
    /// Checks every record with the rules `mint` and the API apply: a token
    /// id and a SHA-256 hash in hex, each once; a tenant that is a valid
    /// instance id. Err: the first problem, naming the record.
    pub fn validate(&self) -> Result<(), String> {
        if self.version != FILE_VERSION {
            return Err(format!(
                "version {} is not the one this ten reads ({FILE_VERSION})",
                self.version
            ));
        }
        let mut ids: HashMap<&str, usize> = HashMap::new();
        let mut hashes: HashMap<&str, usize> = HashMap::new();
        for (i, r) in self.tokens.iter().enumerate() {
            let n = i + 1;
            let at = format!("record {n} (id {:?})", r.id);
            check_id(&r.id).map_err(|why| format!("{at}: {why}"))?;
            if store::unhex32(&r.hash).is_none() {
                return Err(format!("{at}: hash is not 64 lowercase hex digits"));
            }
            if let Some(t) = &r.tenant {
                crate::names::check("tenant", t).map_err(|e| format!("{at}: {e}"))?;
            }
            if let Some(first) = ids.insert(&r.id, n) {
                return Err(format!("{at}: the id of record {first} too"));
            }
            if let Some(first) = hashes.insert(&r.hash, n) {
                return Err(format!("{at}: the same token as record {first}"));
            }
        }
        Ok(())
    }
}

/// A token id as `ten token revoke` and `DELETE /api/tokens/{id}` take it:
/// 1 to 64 lowercase hex digits (minted ids have 8).
pub fn check_id(id: &str) -> Result<(), String> {
    let hex = |b: u8| b.is_ascii_digit() || (b'a'..=b'f').contains(&b);
    if id.is_empty() || id.len() > 64 || !id.bytes().all(hex) {
        return Err(format!(
            "{id:?} is not a token id (hex digits, as `ten token list` shows)"
        ));
    }
    Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::testdir::TempDir;

    fn record(id: &str, fill: char, tenant: Option<&str>) -> TokenRecord {
        TokenRecord {
            id: id.into(),
            hash: std::iter::repeat_n(fill, 64).collect(),
            tenant: tenant.map(str::to_string),
            description: String::new(),
            created_unix: 0,
            last_used_unix: None,
        }
    }

    #[test]
    fn every_record_is_checked_with_the_rules_of_mint() {
        let good = || TokenFile {
            version: 1,
            tokens: vec![
                record("0badf00d", 'a', None),
                record("12345678", 'b', Some("alice")),
            ],
        };
        good().validate().unwrap();
        type Spoil = Box<dyn FnOnce(&mut TokenFile)>;
        let cases: Vec<(&str, Spoil)> = vec![
            (
                r#"record 2 (id "12345678"): invalid tenant "../x""#,
                Box::new(|f| f.tokens[1].tenant = Some("../x".into())),
            ),
            (
                r#"record 1 (id "../x"): "../x" is not a token id"#,
                Box::new(|f| f.tokens[0].id = "../x".into()),
            ),
            (
                r#"record 1 (id "0BADF00D"): "0BADF00D" is not a token id"#,
                Box::new(|f| f.tokens[0].id = "0BADF00D".into()),
            ),
            (
                r#"record 2 (id "12345678"): hash is not 64 lowercase hex digits"#,
                Box::new(|f| f.tokens[1].hash = "abc".into()),
            ),
            (
                r#"record 3 (id "0badf00d"): the id of record 1 too"#,
                Box::new(|f| f.tokens.push(record("0badf00d", 'c', None))),
            ),
            (
                r#"record 3 (id "feedface"): the same token as record 2"#,
                Box::new(|f| f.tokens.push(record("feedface", 'b', None))),
            ),
            (
                "version 7 is not the one this ten reads (1)",
                Box::new(|f| f.version = 7),
            ),
        ];
        for (want, spoil) in cases {
            let t = TempDir::new("tokens-invalid");
            let path = tokens_path(&t.0);
            let mut file = good();
            spoil(&mut file);
            crate::state::atomic::write(&path, &serde_json::to_vec(&file).unwrap(), 0o600).unwrap();
            let err = load(&path).unwrap_err();
            assert!(matches!(err, StateError::Invalid { .. }), "{err:?}");
            let text = err.to_string();
            assert!(
                text.starts_with(&format!("{} is invalid: {want}", path.display())),
                "want {want:?} in\n{text}"
            );
            assert!(text.contains("ten token-gen"), "{text}");
            // Nothing is written over it, and no token is accepted.
            assert!(matches!(
                mint(&t.0, None, ""),
                Err(StateError::Invalid { .. })
            ));
            let mut store = TokenStore::new(&t.0);
            assert!(store.list().is_err());
        }
    }
}
