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

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::layout::{api_token_path, tokens_lock_path, tokens_path};
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
            Err(e) => describe(&e),
        };
        warn!("state", "{why}; no token is accepted");
        self.broken = Some(why);
    }
}

/// When each token was last presented, kept in memory by the front loops
/// and written to the tokens file by `flush`, so using a token costs no
/// disk write. Holds at most one entry per token that is in the file (ids
/// no longer there are dropped at the next flush).
#[derive(Debug, Default)]
pub struct TokenUsage {
    /// Token id -> (last use, unix seconds; whether the file has it).
    seen: Mutex<HashMap<String, (u64, bool)>>,
}

impl TokenUsage {
    /// Notes that token `id` was used at `unix`.
    pub fn touch(&self, id: &str, unix: u64) {
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        match seen.get_mut(id) {
            Some(entry) if entry.0 >= unix => {}
            Some(entry) => *entry = (unix, false),
            None => {
                seen.insert(id.to_string(), (unix, false));
            }
        }
    }

    /// The last use of `id` noted since the server started.
    pub fn get(&self, id: &str) -> Option<u64> {
        let seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        seen.get(id).map(|e| e.0)
    }

    /// Writes the uses noted since the last flush into the tokens file
    /// (under the writers' lock, atomically). Does nothing when nothing new
    /// was noted. On error the uses stay pending for the next flush. Blocks
    /// on disk I/O.
    pub fn flush(&self, data_dir: &Path) -> Result<(), StateError> {
        let pending: HashMap<String, u64> = {
            let seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
            seen.iter()
                .filter(|(_, e)| !e.1)
                .map(|(id, e)| (id.clone(), e.0))
                .collect()
        };
        if pending.is_empty() {
            return Ok(());
        }
        let _lock = lock(data_dir)?;
        let path = tokens_path(data_dir);
        let mut file = load(&path)?;
        let mut changed = false;
        for record in &mut file.tokens {
            if let Some(&unix) = pending.get(&record.id) {
                if record.last_used_unix < Some(unix) {
                    record.last_used_unix = Some(unix);
                    changed = true;
                }
            }
        }
        if changed {
            save(&path, &file)?;
        }
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        seen.retain(|id, _| file.tokens.iter().any(|r| r.id == *id));
        for (id, unix) in pending {
            if let Some(entry) = seen.get_mut(&id) {
                // A use noted during the write stays pending.
                if entry.0 == unix {
                    entry.1 = true;
                }
            }
        }
        Ok(())
    }
}

/// The thread that flushes `TokenUsage` every `every` and once more when
/// stopped. Runs in `ten serve` only.
pub struct UsageFlusher {
    stop: mpsc::Sender<()>,
    thread: JoinHandle<()>,
}

impl UsageFlusher {
    /// Starts the thread. Err: the thread could not be created.
    pub fn start(
        usage: Arc<TokenUsage>,
        data_dir: PathBuf,
        every: Duration,
    ) -> io::Result<UsageFlusher> {
        let (stop, rx) = mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("token-usage".into())
            .spawn(move || loop {
                let last = !matches!(rx.recv_timeout(every), Err(mpsc::RecvTimeoutError::Timeout));
                if let Err(e) = usage.flush(&data_dir) {
                    warn!(
                        "state",
                        "saving when tokens were last used: {}",
                        describe(&e)
                    );
                }
                if last {
                    return;
                }
            })?;
        Ok(UsageFlusher { stop, thread })
    }

    /// Flushes once more and ends the thread; returns when it has.
    pub fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.thread.join();
    }
}

/// The error with its cause, for the log.
fn describe(e: &StateError) -> String {
    match std::error::Error::source(e) {
        Some(cause) => format!("{e}: {cause}"),
        None => e.to_string(),
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

/// Reads the tokens file; missing = empty, unparseable = Corrupt.
pub fn load(path: &Path) -> Result<TokenFile, StateError> {
    Ok(super::read_json(path)?.unwrap_or(TokenFile {
        version: 1,
        tokens: Vec::new(),
    }))
}

/// Replaces the tokens file atomically, 0600. Call with the lock held.
fn save(path: &Path, file: &TokenFile) -> Result<(), StateError> {
    let mut bytes = serde_json::to_vec_pretty(file).expect("the token file serialises to json");
    bytes.push(b'\n');
    super::atomic::write(path, &bytes, 0o600)
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
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

/// A new token for `tenant` (None: admin) and its record, with an id no
/// record in `file` has. Returns the plaintext; the caller adds the record.
fn new_token(
    file: &TokenFile,
    tenant: Option<&str>,
    description: &str,
) -> Result<(String, TokenRecord), StateError> {
    let mut secret = [0u8; 32];
    random_bytes(&mut secret)?;
    let token = format!("ten_{}", sha256::hex(&secret));
    // The id is drawn apart from the secret: knowing it tells nothing of it.
    let id = loop {
        let mut id = [0u8; 4];
        random_bytes(&mut id)?;
        let id = sha256::hex(&id);
        if file.tokens.iter().all(|r| r.id != id) {
            break id;
        }
    };
    let record = TokenRecord {
        id,
        hash: sha256::hex(&sha256::digest(token.as_bytes())),
        tenant: tenant.map(str::to_string),
        description: description.to_string(),
        created_unix: unix_now(),
        last_used_unix: None,
    };
    Ok((token, record))
}

/// Mints a token for `tenant` (None: admin), appends its hash to the store
/// and, for admin, writes `{data_dir}/api_token`. Returns the plaintext.
/// Works with the server stopped or running.
///
/// Writers (`mint`, `rotate`, `revoke`, `TokenUsage::flush`) are serialised
/// by an flock on `.tenement/tokens.lock`, so none loses another's change.
/// A corrupt tokens file is an error and is left as it is.
pub fn mint(
    data_dir: &Path,
    tenant: Option<&str>,
    description: &str,
) -> Result<String, StateError> {
    if let Some(t) = tenant {
        crate::names::check("tenant", t).map_err(StateError::Name)?;
    }
    let path = tokens_path(data_dir);
    let _lock = lock(data_dir)?;
    let mut file = load(&path)?;
    file.version = 1;
    let (token, record) = new_token(&file, tenant, description)?;
    file.tokens.push(record);
    save(&path, &file)?;
    if tenant.is_none() {
        write_api_token(data_dir, &token)?;
    }
    Ok(token)
}

/// What `rotate` did.
#[derive(Debug)]
pub struct Rotated {
    /// The new admin token (plaintext, shown once).
    pub token: String,
    /// Its id.
    pub id: String,
    /// The record of the admin token it replaced, now revoked. None: the
    /// token in `api_token` was missing or no longer valid.
    pub replaced: Option<TokenRecord>,
}

/// Replaces the admin token: mints a new admin token, revokes the one
/// `{data_dir}/api_token` holds, and saves the new one there, in one write
/// of the tokens file. The new token keeps the old one's description unless
/// `description` is given. Other admin tokens are left alone.
pub fn rotate(data_dir: &Path, description: Option<&str>) -> Result<Rotated, StateError> {
    let path = tokens_path(data_dir);
    let _lock = lock(data_dir)?;
    let mut file = load(&path)?;
    file.version = 1;
    let replaced = read_api_token(data_dir).and_then(|old| {
        let hash = sha256::hex(&sha256::digest(old.as_bytes()));
        let at = file
            .tokens
            .iter()
            .position(|r| r.tenant.is_none() && r.hash == hash)?;
        Some(file.tokens.remove(at))
    });
    let description = description
        .map(str::to_string)
        .or_else(|| replaced.as_ref().map(|r| r.description.clone()))
        .unwrap_or_default();
    let (token, record) = new_token(&file, None, &description)?;
    let id = record.id.clone();
    file.tokens.push(record);
    // The tokens file first: from this write on the old token is refused.
    save(&path, &file)?;
    write_api_token(data_dir, &token)?;
    Ok(Rotated {
        token,
        id,
        replaced,
    })
}

/// What `revoke` did.
#[derive(Debug)]
pub struct Revoked {
    /// The record removed.
    pub record: TokenRecord,
    /// `{data_dir}/api_token` held this token and was removed.
    pub removed_api_token: bool,
}

/// Revokes token `id`: removes its record from the tokens file, so every
/// loop refuses it from its next request. When `{data_dir}/api_token` holds
/// that token, the file is removed too (a dead secret is not left lying
/// around). Ok(None): no token has that id.
pub fn revoke(data_dir: &Path, id: &str) -> Result<Option<Revoked>, StateError> {
    let path = tokens_path(data_dir);
    let _lock = lock(data_dir)?;
    let mut file = load(&path)?;
    let Some(at) = file.tokens.iter().position(|r| r.id == id) else {
        return Ok(None);
    };
    let record = file.tokens.remove(at);
    save(&path, &file)?;
    let saved = read_api_token(data_dir)
        .is_some_and(|t| sha256::hex(&sha256::digest(t.as_bytes())) == record.hash);
    let mut removed_api_token = false;
    if saved {
        let api_token = api_token_path(data_dir);
        match fs::remove_file(&api_token) {
            Ok(()) => removed_api_token = true,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(source) => {
                return Err(StateError::Io {
                    path: api_token,
                    op: "remove",
                    source,
                })
            }
        }
    }
    Ok(Some(Revoked {
        record,
        removed_api_token,
    }))
}

/// Every token record, for `ten token list` with the server stopped.
pub fn list(data_dir: &Path) -> Result<Vec<TokenRecord>, StateError> {
    Ok(load(&tokens_path(data_dir))?.tokens)
}

fn write_api_token(data_dir: &Path, token: &str) -> Result<(), StateError> {
    super::atomic::write(
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
    fn read_api_token_is_none_when_missing_or_empty() {
        let t = TempDir::new("tokens-apitoken");
        assert_eq!(read_api_token(&t.0), None);
        fs::write(t.0.join("api_token"), b"\n").unwrap();
        assert_eq!(read_api_token(&t.0), None);
    }

    fn records(dir: &Path) -> Vec<TokenRecord> {
        list(dir).unwrap()
    }

    #[test]
    fn ids_are_short_distinct_and_not_from_the_secret() {
        let t = TempDir::new("tokens-ids");
        let mut tokens = Vec::new();
        for _ in 0..20 {
            tokens.push(mint(&t.0, Some("alice"), "").unwrap());
        }
        let recs = records(&t.0);
        let mut ids: Vec<&str> = recs.iter().map(|r| r.id.as_str()).collect();
        for (token, rec) in tokens.iter().zip(&recs) {
            assert_eq!(rec.id.len(), 8);
            assert!(rec.id.bytes().all(|c| c.is_ascii_hexdigit()));
            assert!(!token.contains(&rec.id), "{} inside {token}", rec.id);
            assert!(!rec.hash.starts_with(&rec.id));
        }
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), 20);
    }

    #[test]
    fn revoke_removes_the_record_and_the_store_refuses_it_at_once() {
        let t = TempDir::new("tokens-revoke");
        let admin = mint(&t.0, None, "").unwrap();
        let alice = mint(&t.0, Some("alice"), "a").unwrap();
        let mut store = TokenStore::new(&t.0);
        assert!(store.verify(&alice).is_some());
        let id = records(&t.0)[1].id.clone();
        let done = revoke(&t.0, &id).unwrap().expect("known id");
        assert_eq!(done.record.tenant.as_deref(), Some("alice"));
        assert!(!done.removed_api_token);
        assert_eq!(store.verify(&alice), None);
        assert_eq!(store.verify(&admin), Some(Principal::Admin));
        assert!(revoke(&t.0, &id).unwrap().is_none());
        assert!(revoke(&t.0, "nothere").unwrap().is_none());
        assert_eq!(mode(&tokens_path(&t.0)), 0o600);
    }

    #[test]
    fn revoking_the_saved_admin_token_removes_api_token() {
        let t = TempDir::new("tokens-revoke-admin");
        mint(&t.0, None, "").unwrap();
        let id = records(&t.0)[0].id.clone();
        let done = revoke(&t.0, &id).unwrap().unwrap();
        assert!(done.removed_api_token);
        assert!(!t.0.join("api_token").exists());
    }

    #[test]
    fn rotate_replaces_the_saved_admin_token_only() {
        let t = TempDir::new("tokens-rotate");
        let other_admin = mint(&t.0, None, "ci").unwrap();
        let saved = mint(&t.0, None, "local cli").unwrap();
        let alice = mint(&t.0, Some("alice"), "").unwrap();
        let mut store = TokenStore::new(&t.0);
        assert!(store.verify(&saved).is_some());
        let old_id = records(&t.0)[1].id.clone();

        let r = rotate(&t.0, None).unwrap();
        assert!(is_token(&r.token));
        assert_eq!(
            r.replaced.as_ref().map(|x| x.id.as_str()),
            Some(old_id.as_str())
        );
        assert_eq!(store.verify(&saved), None, "the old token is refused");
        assert_eq!(store.verify(&r.token), Some(Principal::Admin));
        assert_eq!(store.verify(&other_admin), Some(Principal::Admin));
        assert!(store.verify(&alice).is_some());
        assert_eq!(read_api_token(&t.0).as_deref(), Some(r.token.as_str()));
        assert_eq!(mode(&t.0.join("api_token")), 0o600);
        let recs = records(&t.0);
        assert_eq!(recs.len(), 3);
        let new = recs.iter().find(|x| x.id == r.id).unwrap();
        assert_eq!(new.description, "local cli", "the description carries over");
        assert_eq!(new.tenant, None);

        // With api_token gone, rotating mints a new admin token and replaces nothing.
        fs::remove_file(t.0.join("api_token")).unwrap();
        let r2 = rotate(&t.0, Some("new")).unwrap();
        assert!(r2.replaced.is_none());
        assert_eq!(records(&t.0).len(), 4);
        assert_eq!(store.verify(&r.token), Some(Principal::Admin));
    }

    #[test]
    fn usage_is_kept_in_memory_until_flushed() {
        let t = TempDir::new("tokens-usage");
        let token = mint(&t.0, None, "").unwrap();
        let usage = Arc::new(TokenUsage::default());
        let mut store = TokenStore::with_usage(&t.0, usage.clone());
        let before = fs::read(tokens_path(&t.0)).unwrap();
        assert!(store.verify(&token).is_some());
        assert!(store.verify("ten_wrong").is_none());
        // Verifying writes nothing.
        assert_eq!(fs::read(tokens_path(&t.0)).unwrap(), before);
        let listed = store.list().unwrap();
        assert_eq!(listed.len(), 1);
        let used = listed[0]["last_used_unix"].as_u64().expect("in memory");
        assert!(used + 5 >= unix_now());
        assert!(listed[0].get("hash").is_none());
        assert_eq!(listed[0]["kind"], "admin");

        usage.flush(&t.0).unwrap();
        assert_eq!(records(&t.0)[0].last_used_unix, Some(used));
        assert_eq!(mode(&tokens_path(&t.0)), 0o600);
        // Nothing new: no write.
        let stamp = fs::metadata(tokens_path(&t.0)).unwrap().ino();
        usage.flush(&t.0).unwrap();
        assert_eq!(fs::metadata(tokens_path(&t.0)).unwrap().ino(), stamp);
        // A token minted after the flush does not lose the recorded use.
        mint(&t.0, Some("bob"), "").unwrap();
        assert_eq!(records(&t.0)[0].last_used_unix, Some(used));
    }

    #[test]
    fn flush_drops_revoked_ids_and_keeps_newer_uses() {
        let t = TempDir::new("tokens-usage-revoked");
        mint(&t.0, None, "").unwrap();
        let id = records(&t.0)[0].id.clone();
        let usage = TokenUsage::default();
        usage.touch(&id, 100);
        usage.touch(&id, 50);
        assert_eq!(usage.get(&id), Some(100));
        usage.touch("gone1234", 100);
        usage.flush(&t.0).unwrap();
        assert_eq!(records(&t.0)[0].last_used_unix, Some(100));
        assert_eq!(usage.get("gone1234"), None);
        usage.touch(&id, 200);
        usage.flush(&t.0).unwrap();
        assert_eq!(records(&t.0)[0].last_used_unix, Some(200));
    }

    #[test]
    fn flusher_writes_on_stop() {
        let t = TempDir::new("tokens-flusher");
        mint(&t.0, None, "").unwrap();
        let id = records(&t.0)[0].id.clone();
        let usage = Arc::new(TokenUsage::default());
        let flusher =
            UsageFlusher::start(usage.clone(), t.0.clone(), Duration::from_secs(3600)).unwrap();
        usage.touch(&id, 1234);
        flusher.stop();
        assert_eq!(records(&t.0)[0].last_used_unix, Some(1234));
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
