//! The instance registry, `{data_dir}/.tenement/state`: which instances exist,
//! whether they should be running, their ports and weights, and which
//! process (pid, process group, start time) belongs to each, so a new run of
//! `ten serve` can kill what the previous one left behind.

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
    /// Reads the registry; a missing file is an empty registry.
    pub fn load(path: &Path) -> Result<Registry, StateError> {
        let _ = path;
        todo!("Registry::load")
    }

    /// Writes it atomically with mode 0600.
    pub fn save(&self, path: &Path) -> Result<(), StateError> {
        let _ = path;
        todo!("Registry::save")
    }
}
