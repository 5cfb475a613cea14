//! API tokens: 256 random bits from the kernel, shown once, stored as SHA-256
//! hashes in `{data_dir}/.tenement/tokens` (0600) and compared in constant
//! time. The admin token is also kept in plaintext in `{data_dir}/api_token`
//! (0600) for the local CLI.

use std::path::{Path, PathBuf};

use super::StateError;

/// Who a token belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    Admin,
    /// A tenant token: sees and acts on instances whose id is this only.
    Tenant(String),
}

/// The token store as the server uses it: reloaded when the file changes, so
/// a token minted by `ten token-gen` while serving works at once.
#[derive(Debug)]
pub struct TokenStore {
    path: PathBuf,
}

impl TokenStore {
    /// A store backed by `{data_dir}/.tenement/tokens`; reads it lazily.
    pub fn new(data_dir: &Path) -> TokenStore {
        TokenStore { path: super::internal_dir(data_dir).join("tokens") }
    }

    /// Checks a presented token. Re-reads the file if it changed since the
    /// last call (cheap: one stat). None: unknown token.
    pub fn verify(&mut self, token: &str) -> Option<Principal> {
        let _ = (token, &self.path);
        todo!("TokenStore::verify")
    }
}

/// Mints a token for `tenant` (None: admin), appends its hash to the store
/// and, for admin, writes `{data_dir}/api_token`. Returns the plaintext.
/// Works with the server stopped or running.
pub fn mint(data_dir: &Path, tenant: Option<&str>, description: &str) -> Result<String, StateError> {
    let _ = (data_dir, tenant, description);
    todo!("tokens::mint")
}
