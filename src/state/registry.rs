//! The instance registry, `{data_dir}/.tenement/state`: which instances exist,
//! whether they should be running, their ports and weights, and which
//! process (pid, process group, start time) belongs to each, so a new run of
//! `ten serve` can kill what the previous one left behind.
//!
//! Read and written by the supervisor thread only; writes are atomic.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::StateError;

/// One instance's persisted record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegistryEntry {
    pub service: String,
    pub id: String,
    pub port: u16,
    pub weight: u8,
    /// "running" or "sleeping" (what it should be after a restart of tenement);
    /// "failed" stays failed.
    pub desired: String,
    /// The process of the run that wrote this, if one was alive.
    pub pid: Option<u32>,
    /// Its process group (it leads its own session, so usually == pid).
    pub pgid: Option<u32>,
    /// Its start time in clock ticks since boot (field 22 of /proc/PID/stat),
    /// so a recycled pid is never mistaken for ours.
    pub start_ticks: Option<u64>,
    pub restarts: u32,
}

/// The whole registry.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Registry {
    pub version: u32,
    pub instances: Vec<RegistryEntry>,
}

impl Registry {
    /// Reads the registry; a missing file is an empty registry. A file that
    /// does not parse is `StateError::Corrupt` naming it: we never guess, since
    /// the registry decides which processes get killed.
    pub fn load(path: &Path) -> Result<Registry, StateError> {
        Ok(super::read_json(path)?.unwrap_or_default())
    }

    /// Writes it atomically with mode 0600. Blocks on fsync.
    pub fn save(&self, path: &Path) -> Result<(), StateError> {
        let mut bytes = serde_json::to_vec_pretty(self).expect("the registry serialises to json");
        bytes.push(b'\n');
        super::atomic::write(path, &bytes, 0o600)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::testdir::TempDir;

    fn entry(id: &str) -> RegistryEntry {
        RegistryEntry {
            service: "notes".into(),
            id: id.into(),
            port: 30001,
            weight: 100,
            desired: "running".into(),
            pid: Some(1234),
            pgid: Some(1234),
            start_ticks: Some(987_654),
            restarts: 2,
        }
    }

    #[test]
    fn missing_file_is_empty_registry() {
        let t = TempDir::new("registry-missing");
        assert_eq!(
            Registry::load(&t.0.join(".tenement/state")).unwrap(),
            Registry::default()
        );
    }

    #[test]
    fn save_then_load_round_trips() {
        let t = TempDir::new("registry-roundtrip");
        let path = t.0.join(".tenement/state");
        let reg = Registry {
            version: 1,
            instances: vec![entry("alice"), entry("bob")],
        };
        reg.save(&path).unwrap();
        assert_eq!(Registry::load(&path).unwrap(), reg);
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }

    #[test]
    fn unparseable_file_is_corrupt_naming_the_file() {
        let t = TempDir::new("registry-corrupt");
        let path = t.0.join("state");
        std::fs::write(&path, b"{\"version\": 1, \"instances\": [").unwrap();
        let err = Registry::load(&path).unwrap_err();
        assert!(matches!(err, StateError::Corrupt { .. }));
        assert!(
            err.to_string()
                .starts_with(&format!("{} is corrupt: ", path.display())),
            "{err}"
        );
    }
}
