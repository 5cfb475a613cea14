//! Making and removing tokens: `mint` (a new admin or tenant token),
//! `rotate` (replace the admin token in `api_token`) and `revoke`. Each
//! takes the writers' lock, reads the file, changes it and writes it back
//! atomically; a corrupt file is an error and is left as it is. Blocks on
//! disk I/O: never called from a front loop.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use super::{
    api_token_path, load, lock, read_api_token, save, stage, stage_api_token, tokens_path,
    unix_now, TokenFile, TokenRecord,
};
use crate::state::sha256;
use crate::state::StateError;

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
    // Both files are written before either is replaced: a full disk fails
    // the mint with nothing changed.
    let staged = stage(&path, &file)?;
    let api_token = match tenant {
        None => Some(stage_api_token(data_dir, &token)?),
        Some(_) => None,
    };
    staged.commit()?;
    if let Some(api_token) = api_token {
        api_token.commit()?;
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
    // Both files are written before either is replaced (a full disk fails
    // the rotation with nothing changed); then the tokens file first: from
    // that rename on the old token is refused.
    let staged = stage(&path, &file)?;
    let api_token = stage_api_token(data_dir, &token)?;
    staged.commit()?;
    api_token.commit()?;
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

#[cfg(test)]
mod tests {
    use super::super::test_util::*;
    use super::super::{Principal, TokenFile, TokenStore};
    use super::*;
    use crate::state::testdir::TempDir;

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
    fn bad_tenant_name_is_refused_before_anything_is_written() {
        let t = TempDir::new("tokens-badtenant");
        assert!(matches!(
            mint(&t.0, Some("Bad Name"), ""),
            Err(StateError::Name(_))
        ));
        assert!(!tokens_path(&t.0).exists());
    }

    #[test]
    fn read_api_token_is_none_when_missing_or_empty() {
        let t = TempDir::new("tokens-apitoken");
        assert_eq!(read_api_token(&t.0), None);
        fs::write(t.0.join("api_token"), b"\n").unwrap();
        assert_eq!(read_api_token(&t.0), None);
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
}
