//! API tokens: 256 random bits from the kernel, shown once, stored as SHA-256
//! hashes in `{data_dir}/.tenement/tokens` (0600) and compared in constant
//! time. The admin token is also kept in plaintext in `{data_dir}/api_token`
//! (0600) for the local CLI.
//!
//! `mint` is called by `ten token-gen` (server running or not); `TokenStore`
//! by the front loops, which pick up new tokens without a restart. Never log
//! a token: log its record id.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use super::sha256;
use super::StateError;

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
}

/// The tokens file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenFile {
    pub version: u32,
    pub tokens: Vec<TokenRecord>,
}

/// What identifies one version of the tokens file: `(dev, ino, size, mtime
/// s, mtime ns)`. Every write is a rename, so a new version has a new inode.
type Stamp = (u64, u64, u64, i64, i64);

/// The token store as the server uses it: reloaded when the file changes, so
/// a token minted by `ten token-gen` while serving works at once.
#[derive(Debug)]
pub struct TokenStore {
    path: PathBuf,
    /// The version of the file `records` came from; None: not read, or missing.
    stamp: Option<Stamp>,
    /// Decoded hashes and whom they stand for.
    records: Vec<([u8; 32], Principal)>,
}

impl TokenStore {
    /// A store backed by `{data_dir}/.tenement/tokens`; reads it lazily.
    pub fn new(data_dir: &Path) -> TokenStore {
        TokenStore {
            path: tokens_path(data_dir),
            stamp: None,
            records: Vec::new(),
        }
    }

    /// Checks a presented token. Re-reads the file if it changed since the
    /// last call (cheap: one stat). None: unknown token.
    ///
    /// A missing file means no tokens. An unreadable or corrupt one also
    /// means no tokens (fail closed), logged once per version of the file.
    pub fn verify(&mut self, token: &str) -> Option<Principal> {
        self.refresh();
        let presented = sha256::digest(token.as_bytes());
        // Look at every record, and every byte of each, whatever matches.
        let mut found = None;
        for (hash, principal) in &self.records {
            if hashes_equal(hash, &presented) && found.is_none() {
                found = Some(principal);
            }
        }
        found.cloned()
    }

    /// Reloads `records` when the file's stamp moved.
    fn refresh(&mut self) {
        let stamp = match fs::metadata(&self.path) {
            Ok(m) => Some((m.dev(), m.ino(), m.size(), m.mtime(), m.mtime_nsec())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => {
                if self.stamp.is_some() || !self.records.is_empty() {
                    warn!(
                        "state",
                        "stat {}: {e}; no token is accepted",
                        self.path.display()
                    );
                }
                self.stamp = None;
                self.records.clear();
                return;
            }
        };
        if stamp == self.stamp {
            return;
        }
        self.stamp = stamp;
        self.records.clear();
        if stamp.is_none() {
            return;
        }
        match load(&self.path) {
            Ok(file) => match decode(&file) {
                Ok(records) => self.records = records,
                Err(reason) => warn!(
                    "state",
                    "{} is corrupt: {reason}; no token is accepted",
                    self.path.display()
                ),
            },
            Err(e) => warn!("state", "{e}; no token is accepted"),
        }
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
fn decode(file: &TokenFile) -> Result<Vec<([u8; 32], Principal)>, String> {
    file.tokens
        .iter()
        .map(|r| {
            let hash = unhex32(&r.hash).ok_or_else(|| format!("token {}: bad hash", r.id))?;
            let principal = match &r.tenant {
                None => Principal::Admin,
                Some(t) => Principal::Tenant(t.clone()),
            };
            Ok((hash, principal))
        })
        .collect()
}

fn unhex32(s: &str) -> Option<[u8; 32]> {
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

/// `{data_dir}/.tenement/tokens`.
pub fn tokens_path(data_dir: &Path) -> PathBuf {
    super::internal_dir(data_dir).join("tokens")
}

/// Reads the tokens file; missing = empty, unparseable = Corrupt.
pub fn load(path: &Path) -> Result<TokenFile, StateError> {
    Ok(super::read_json(path)?.unwrap_or(TokenFile {
        version: 1,
        tokens: Vec::new(),
    }))
}

/// Fills `buf` from the kernel's CSPRNG (getrandom(2), blocking until the
/// pool is initialised), looping over short reads and EINTR.
fn random_bytes(buf: &mut [u8]) -> Result<(), StateError> {
    let mut filled = 0;
    while filled < buf.len() {
        match rustix::rand::getrandom(&mut buf[filled..], rustix::rand::GetRandomFlags::empty()) {
            Ok(n) => filled += n,
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => {
                return Err(StateError::Io {
                    path: PathBuf::from("getrandom"),
                    op: "read random bytes from",
                    source: e.into(),
                })
            }
        }
    }
    Ok(())
}

/// Mints a token for `tenant` (None: admin), appends its hash to the store
/// and, for admin, writes `{data_dir}/api_token`. Returns the plaintext.
/// Works with the server stopped or running.
///
/// Two `mint`s at once are serialised by an flock on
/// `.tenement/tokens.lock`, so neither loses the other's record. A corrupt
/// tokens file is an error and is left as it is.
pub fn mint(
    data_dir: &Path,
    tenant: Option<&str>,
    description: &str,
) -> Result<String, StateError> {
    if let Some(t) = tenant {
        crate::names::check("tenant", t).map_err(StateError::Name)?;
    }
    let mut secret = [0u8; 32];
    random_bytes(&mut secret)?;
    let mut id = [0u8; 4];
    random_bytes(&mut id)?;
    let token = format!("ten_{}", sha256::hex(&secret));

    let path = tokens_path(data_dir);
    let _lock = lock(data_dir)?;
    let mut file = load(&path)?;
    file.version = 1;
    file.tokens.push(TokenRecord {
        id: sha256::hex(&id),
        hash: sha256::hex(&sha256::digest(token.as_bytes())),
        tenant: tenant.map(str::to_string),
        description: description.to_string(),
        created_unix: SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
    });
    let mut bytes = serde_json::to_vec_pretty(&file).expect("the token file serialises to json");
    bytes.push(b'\n');
    super::atomic::write(&path, &bytes, 0o600)?;

    if tenant.is_none() {
        super::atomic::write(
            &super::api_token_path(data_dir),
            format!("{token}\n").as_bytes(),
            0o600,
        )?;
    }
    Ok(token)
}

/// Takes the exclusive lock that serialises writers of the tokens file.
/// Released when the returned file is dropped.
fn lock(data_dir: &Path) -> Result<File, StateError> {
    let dir = super::internal_dir(data_dir);
    super::atomic::create_dir(&dir)?;
    let path = dir.join("tokens.lock");
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
/// None when the file is missing, unreadable or empty.
pub fn read_api_token(data_dir: &Path) -> Option<String> {
    let text = fs::read_to_string(super::api_token_path(data_dir)).ok()?;
    let token = text.trim();
    (!token.is_empty()).then(|| token.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::testdir::TempDir;
    use std::os::unix::fs::PermissionsExt;

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    fn is_token(t: &str) -> bool {
        t.len() == 68
            && t.starts_with("ten_")
            && t[4..]
                .bytes()
                .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c))
    }

    #[test]
    fn admin_mint_writes_hash_and_api_token_0600() {
        let t = TempDir::new("tokens-admin");
        let token = mint(&t.0, None, "first").unwrap();
        assert!(is_token(&token), "{token}");
        assert_eq!(mode(&tokens_path(&t.0)), 0o600);
        assert_eq!(mode(&t.0.join("api_token")), 0o600);
        assert_eq!(mode(&t.0.join(".tenement")), 0o700);
        assert_eq!(
            fs::read_to_string(t.0.join("api_token")).unwrap(),
            format!("{token}\n")
        );
        assert_eq!(read_api_token(&t.0).as_deref(), Some(token.as_str()));

        let text = fs::read_to_string(tokens_path(&t.0)).unwrap();
        assert!(!text.contains(&token[4..]), "plaintext must not be stored");
        let file: TokenFile = serde_json::from_str(&text).unwrap();
        assert_eq!(file.tokens.len(), 1);
        let rec = &file.tokens[0];
        assert_eq!(rec.hash, sha256::hex(&sha256::digest(token.as_bytes())));
        assert_eq!(rec.id.len(), 8);
        assert_eq!(rec.tenant, None);
        assert_eq!(rec.description, "first");
        // No temp files left next to them.
        let mut names: Vec<_> = fs::read_dir(t.0.join(".tenement"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, ["tokens", "tokens.lock"]);
    }

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
    fn bad_tenant_name_is_refused_before_anything_is_written() {
        let t = TempDir::new("tokens-badtenant");
        assert!(matches!(
            mint(&t.0, Some("Bad Name"), ""),
            Err(StateError::Name(_))
        ));
        assert!(!tokens_path(&t.0).exists());
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
    fn read_api_token_is_none_when_missing_or_empty() {
        let t = TempDir::new("tokens-apitoken");
        assert_eq!(read_api_token(&t.0), None);
        fs::write(t.0.join("api_token"), b"\n").unwrap();
        assert_eq!(read_api_token(&t.0), None);
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
