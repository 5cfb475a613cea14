//! When each token was last used: `TokenUsage` notes uses in memory from
//! the front loops, `flush` writes them into the tokens file under the
//! writers' lock, and `UsageFlusher` is the thread of `ten serve` that
//! flushes once a minute and at shutdown. Never once per request.

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use super::{load, lock, save, tokens_path};
use crate::state::StateError;

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
                        e.describe()
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

#[cfg(test)]
mod tests {
    use super::super::test_util::*;
    use super::super::{mint, unix_now, TokenStore};
    use super::*;
    use crate::state::testdir::TempDir;
    use std::fs;
    use std::os::unix::fs::MetadataExt;

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
}
