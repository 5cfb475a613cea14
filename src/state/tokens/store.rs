//! Checking presented tokens for the front loops: `TokenStore` keeps the
//! tokens file's records with their decoded hashes, re-reads the file when
//! it changes (one stat per request) and compares hashes in constant time.
//! A missing, unreadable or corrupt file accepts no token. Never writes.

use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::Value;

use super::{load, tokens_path, unix_now, Principal, TokenFile, TokenRecord, TokenUsage};
use crate::state::sha256;

/// What identifies one version of the tokens file: `(dev, ino, size, mtime
/// s, mtime ns)`. Every write is a rename, so a new version has a new inode.
type Stamp = (u64, u64, u64, i64, i64);

/// The token store as the server uses it: reloaded when the file changes, so
/// a token minted or revoked by the CLI while serving counts at the next
/// request, on new and already open connections alike.
#[derive(Debug)]
pub struct TokenStore {
    path: PathBuf,
    /// The version of the file `records` came from; None: not read, or missing.
    stamp: Option<Stamp>,
    /// The records and their decoded hashes, in file order.
    records: Vec<(TokenRecord, [u8; 32], Principal)>,
    /// Why the file gave no tokens, when it is unreadable or corrupt.
    broken: Option<String>,
    /// Where accepted tokens note their use; shared by every loop.
    usage: Arc<TokenUsage>,
}

impl TokenStore {
    /// A store backed by `{data_dir}/.tenement/tokens` with its own usage
    /// table; reads the file lazily.
    pub fn new(data_dir: &Path) -> TokenStore {
        TokenStore::with_usage(data_dir, Arc::default())
    }

    /// A store that notes token use in `usage` (shared by the loops and the
    /// flusher).
    pub fn with_usage(data_dir: &Path, usage: Arc<TokenUsage>) -> TokenStore {
        TokenStore {
            path: tokens_path(data_dir),
            stamp: None,
            records: Vec::new(),
            broken: None,
            usage,
        }
    }

    /// Checks a presented token and notes its use in memory. Re-reads the
    /// file if it changed since the last call (cheap: one stat). None:
    /// unknown token.
    ///
    /// A missing file means no tokens. An unreadable or corrupt one also
    /// means no tokens (fail closed), logged once per version of the file.
    #[cfg(test)]
    pub fn verify(&mut self, token: &str) -> Option<Principal> {
        self.verify_with_id(token).map(|(who, _)| who)
    }

    /// `verify`, also returning the token's id.
    pub fn verify_with_id(&mut self, token: &str) -> Option<(Principal, String)> {
        self.refresh();
        let presented = sha256::digest(token.as_bytes());
        // Look at every record, and every byte of each, whatever matches.
        let mut found = None;
        for (record, hash, principal) in &self.records {
            if hashes_equal(hash, &presented) && found.is_none() {
                found = Some((record, principal));
            }
        }
        let (record, principal) = found?;
        self.usage.touch(&record.id, unix_now());
        Some((principal.clone(), record.id.clone()))
    }

    /// Whether token `id` is still valid (re-reads the file if it changed):
    /// false once it is revoked or rotated out. The front asks this for its
    /// open event streams.
    pub fn is_valid(&mut self, id: &str) -> bool {
        self.refresh();
        self.records.iter().any(|(r, _, _)| r.id == id)
    }

    /// Every token as `TokenRecord::public_json` shows it, with "last used"
    /// from memory where it is newer than the file. Err: the file is
    /// unreadable or corrupt (why).
    pub fn list(&mut self) -> Result<Vec<Value>, String> {
        self.refresh();
        if let Some(why) = &self.broken {
            return Err(why.clone());
        }
        Ok(self
            .records
            .iter()
            .map(|(r, _, _)| r.public_json(self.usage.get(&r.id)))
            .collect())
    }

    /// Reloads `records` when the file's stamp moved.
    fn refresh(&mut self) {
        let stamp = match fs::metadata(&self.path) {
            Ok(m) => Some((m.dev(), m.ino(), m.size(), m.mtime(), m.mtime_nsec())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => {
                if self.broken.is_none() {
                    warn!(
                        "state",
                        "stat {}: {e}; no token is accepted",
                        self.path.display()
                    );
                }
                self.stamp = None;
                self.records.clear();
                self.broken = Some(format!("stat {}: {e}", self.path.display()));
                return;
            }
        };
        if stamp == self.stamp && (stamp.is_some() || self.broken.is_none()) {
            return;
        }
        self.stamp = stamp;
        self.records.clear();
        self.broken = None;
        if stamp.is_none() {
            return;
        }
        let why = match load(&self.path) {
            Ok(file) => match decode(file) {
                Ok(records) => {
                    self.records = records;
                    return;
                }
                Err(reason) => format!("{} is corrupt: {reason}", self.path.display()),
            },
            Err(e) => e.describe(),
        };
        warn!("state", "{why}; no token is accepted");
        self.broken = Some(why);
    }
}

/// Compares two hashes without an early exit: the time taken does not
/// depend on where they differ.
fn hashes_equal(a: &[u8; 32], b: &[u8; 32]) -> bool {
    let mut diff = 0u8;
    for (x, y) in a.iter().zip(b) {
        diff |= x ^ y;
    }
    std::hint::black_box(diff) == 0
}

/// Decodes every record's hash. Any bad record makes the whole file bad.
fn decode(file: TokenFile) -> Result<Vec<(TokenRecord, [u8; 32], Principal)>, String> {
    file.tokens
        .into_iter()
        .map(|r| {
            let hash = unhex32(&r.hash).ok_or_else(|| format!("token {}: bad hash", r.id))?;
            let principal = match &r.tenant {
                None => Principal::Admin,
                Some(t) => Principal::Tenant(t.clone()),
            };
            Ok((r, hash, principal))
        })
        .collect()
}

pub(super) fn unhex32(s: &str) -> Option<[u8; 32]> {
    let s = s.as_bytes();
    if s.len() != 64 {
        return None;
    }
    let digit = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    };
    let mut out = [0u8; 32];
    for (i, pair) in s.chunks_exact(2).enumerate() {
        out[i] = digit(pair[0])? << 4 | digit(pair[1])?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::super::test_util::*;
    use super::super::{mint, read_api_token, TokenFile, TokenRecord};
    use super::*;
    use crate::state::layout::tokens_path;
    use crate::state::testdir::TempDir;
    use crate::state::StateError;

    #[test]
    fn verify_accepts_minted_and_refuses_others() {
        let t = TempDir::new("tokens-verify");
        let token = mint(&t.0, None, "").unwrap();
        let mut store = TokenStore::new(&t.0);
        assert_eq!(store.verify(&token), Some(Principal::Admin));
        assert_eq!(
            store.verify("ten_0000000000000000000000000000000000000000000000000000000000000000"),
            None
        );
        assert_eq!(store.verify(""), None);
        assert_eq!(store.verify(&token[..67]), None);
        assert_eq!(store.verify(&format!("{token}0")), None);
    }

    #[test]
    fn missing_file_means_no_tokens() {
        let t = TempDir::new("tokens-missing");
        let mut store = TokenStore::new(&t.0);
        assert_eq!(store.verify("ten_abc"), None);
    }

    #[test]
    fn corrupt_file_accepts_nothing_and_mint_refuses_to_overwrite() {
        let t = TempDir::new("tokens-corrupt");
        let token = mint(&t.0, None, "").unwrap();
        fs::write(tokens_path(&t.0), b"[not json").unwrap();
        let mut store = TokenStore::new(&t.0);
        assert_eq!(store.verify(&token), None);
        assert!(matches!(
            mint(&t.0, None, ""),
            Err(StateError::Corrupt { .. })
        ));
        assert_eq!(fs::read(tokens_path(&t.0)).unwrap(), b"[not json");
    }

    #[test]
    fn store_reloads_after_mint_by_another_process() {
        let t = TempDir::new("tokens-reload");
        let mut store = TokenStore::new(&t.0);
        let first = mint(&t.0, None, "a").unwrap();
        assert_eq!(store.verify(&first), Some(Principal::Admin));
        // A second store stands for `ten token-gen` in another process.
        let second = mint(&t.0, None, "b").unwrap();
        assert_eq!(store.verify(&second), Some(Principal::Admin));
        assert_eq!(store.verify(&first), Some(Principal::Admin));
        let mut other = TokenStore::new(&t.0);
        assert_eq!(other.verify(&first), Some(Principal::Admin));
        // api_token holds the newest admin token.
        assert_eq!(read_api_token(&t.0).as_deref(), Some(second.as_str()));
    }

    #[test]
    fn tenant_token_verifies_as_tenant_and_leaves_api_token() {
        let t = TempDir::new("tokens-tenant");
        let admin = mint(&t.0, None, "").unwrap();
        let alice = mint(&t.0, Some("alice"), "alice's").unwrap();
        assert!(is_token(&alice));
        let mut store = TokenStore::new(&t.0);
        assert_eq!(
            store.verify(&alice),
            Some(Principal::Tenant("alice".into()))
        );
        assert_eq!(store.verify(&admin), Some(Principal::Admin));
        assert_eq!(read_api_token(&t.0).as_deref(), Some(admin.as_str()));
    }

    #[test]
    fn tenant_record_from_file_verifies_as_tenant() {
        // Same as the test above without names::check: write the record by hand.
        let t = TempDir::new("tokens-tenant-file");
        let token = "ten_1111111111111111111111111111111111111111111111111111111111111111";
        let file = TokenFile {
            version: 1,
            tokens: vec![TokenRecord {
                id: "0badf00d".into(),
                hash: sha256::hex(&sha256::digest(token.as_bytes())),
                tenant: Some("alice".into()),
                description: String::new(),
                created_unix: 0,
                last_used_unix: None,
            }],
        };
        crate::state::atomic::write(
            &tokens_path(&t.0),
            &serde_json::to_vec(&file).unwrap(),
            0o600,
        )
        .unwrap();
        let mut store = TokenStore::new(&t.0);
        assert_eq!(store.verify(token), Some(Principal::Tenant("alice".into())));
    }

    #[test]
    fn list_of_a_corrupt_file_is_an_error() {
        let t = TempDir::new("tokens-list-corrupt");
        mint(&t.0, None, "").unwrap();
        fs::write(tokens_path(&t.0), b"{").unwrap();
        let mut store = TokenStore::new(&t.0);
        assert!(store.list().unwrap_err().contains("corrupt"));
    }

    #[test]
    fn hash_compare_checks_all_bytes() {
        let a = [7u8; 32];
        let mut b = a;
        assert!(hashes_equal(&a, &b));
        b[31] ^= 1;
        assert!(!hashes_equal(&a, &b));
        b = a;
        b[0] ^= 0x80;
        assert!(!hashes_equal(&a, &b));
    }
}
