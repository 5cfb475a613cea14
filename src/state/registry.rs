//! The instance registry, `{data_dir}/.tenement/state`: which instances exist,
//! whether they should be running, their ports and weights, and which
//! process (pid, process group, start time) belongs to each, so a new run of
//! `ten serve` can kill what the previous one left behind.
//!
//! Read and written by the supervisor thread only; writes are atomic.

use std::collections::HashMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::registry_journal::{self, Replay};
use super::{StateError, FILE_VERSION};
use crate::names::{self, InstanceKey};

/// What `ten serve` tells the operator to do about a registry that does
/// not validate.
const FIX: &str = "ten serve does not start with it. Correct or delete that entry \
(the file is JSON) and start again; or move the file away to start with no \
instance restored (what the last run left running is then not killed)";

/// What an instance should be after a restart of tenement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Desired {
    /// Start it.
    Running,
    /// Keep it asleep until a request wakes it.
    Sleeping,
    /// It stays failed until `ten restart` or `ten spawn`.
    Failed,
    /// `ten stop` was asked: the next start kills what is left of its
    /// process and forgets it. Written before the process is signalled, so
    /// a crash during the stop does not bring the instance back.
    Stopping,
}

impl Desired {
    fn parse(s: &str) -> Option<Desired> {
        match s {
            "running" => Some(Desired::Running),
            "sleeping" => Some(Desired::Sleeping),
            "failed" => Some(Desired::Failed),
            "stopping" => Some(Desired::Stopping),
            _ => None,
        }
    }
}

/// A move of the instance to another node (`ten move`), as far as it got.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct MoveRecord {
    /// The target's API URL.
    pub to: String,
    /// The target's listener, once known.
    #[serde(default)]
    pub addr: Option<std::net::SocketAddr>,
    /// `copy`, `stop`, `sync`, `start` or `moved`.
    pub phase: String,
}

/// One instance's persisted record.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "RawEntry")]
pub struct RegistryEntry {
    pub service: String,
    pub id: String,
    pub port: u16,
    pub weight: u8,
    pub desired: Desired,
    /// The process of the run that wrote this, if one was alive.
    pub pid: Option<u32>,
    /// Its process group (it leads its own session, so usually == pid).
    pub pgid: Option<u32>,
    /// Its start time in clock ticks since boot (field 22 of /proc/PID/stat),
    /// so a recycled pid is never mistaken for ours.
    pub start_ticks: Option<u64>,
    pub restarts: u32,
    /// Its own uid (and gid) from `uid_range`, once it ran at a namespaced
    /// level as root: kept so it is the same after every restart, and so no
    /// other instance is given it. Never 0.
    pub uid: Option<u32>,
    /// Set while it is being moved to another node, or has been.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub moving: Option<MoveRecord>,
}

/// A record as read, before `desired` is checked: an unknown value is an
/// error naming the entry, never a guess (the registry decides what starts).
#[derive(Deserialize)]
struct RawEntry {
    service: String,
    id: String,
    port: u16,
    weight: u8,
    desired: String,
    pid: Option<u32>,
    pgid: Option<u32>,
    start_ticks: Option<u64>,
    restarts: u32,
    /// Absent from files written before uids were kept.
    #[serde(default)]
    uid: Option<u32>,
    #[serde(default)]
    moving: Option<MoveRecord>,
}

impl TryFrom<RawEntry> for RegistryEntry {
    type Error = String;

    fn try_from(raw: RawEntry) -> Result<RegistryEntry, String> {
        let desired = Desired::parse(&raw.desired).ok_or_else(|| {
            format!(
                "instance {}:{} has desired {:?}, not \"running\", \"sleeping\", \"failed\" or \"stopping\"",
                raw.service, raw.id, raw.desired
            )
        })?;
        if raw.uid == Some(0) {
            return Err(format!(
                "instance {}:{} has uid 0: an instance's own uid is never root",
                raw.service, raw.id
            ));
        }
        Ok(RegistryEntry {
            service: raw.service,
            id: raw.id,
            port: raw.port,
            weight: raw.weight,
            desired,
            pid: raw.pid,
            pgid: raw.pgid,
            start_ticks: raw.start_ticks,
            restarts: raw.restarts,
            uid: raw.uid,
            moving: raw.moving,
        })
    }
}

/// The whole registry.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Registry {
    pub version: u32,
    /// Counts the times the file was written whole; its journal names the
    /// generation it continues. 0 (absent): written before journals, or
    /// by hand.
    #[serde(default)]
    pub generation: u64,
    pub instances: Vec<RegistryEntry>,
}

impl Registry {
    /// Reads the registry: `state`, then the changes its journal holds
    /// (see `registry_journal`); a missing file is an empty registry. A
    /// file that does not parse is `StateError::Corrupt` naming it, one
    /// with an entry the API would refuse is `StateError::Invalid` naming
    /// the entry: we never guess, since the registry decides which
    /// processes get killed and which folders are used. (`ten serve`
    /// reads it with `registry_journal::Journal::open`.)
    #[cfg(test)]
    pub fn load(path: &Path) -> Result<Registry, StateError> {
        Registry::load_replayed(path).map(|(registry, _)| registry)
    }

    /// `load`, with what the journal held beyond the entries (a torn last
    /// write, a journal of another generation).
    pub fn load_replayed(path: &Path) -> Result<(Registry, Replay), StateError> {
        let Some(mut registry) = super::read_json::<Registry>(path)? else {
            return Ok((Registry::default(), Replay::default()));
        };
        let journal = registry_journal::path_for(path);
        let replay = match std::fs::read(&journal) {
            Ok(bytes) => registry_journal::replay(&mut registry, &bytes),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Replay::default(),
            Err(source) => {
                return Err(StateError::Io {
                    path: journal,
                    op: "read",
                    source,
                })
            }
        };
        registry.validate().map_err(|reason| StateError::Invalid {
            path: path.to_path_buf(),
            reason,
            fix: FIX,
        })?;
        Ok((registry, replay))
    }

    /// Checks every entry with the rules the API applies to what it is
    /// asked: valid names (so no path leaves the data dir), a weight of
    /// 0-100, a port, one entry per instance, per port and per uid, and
    /// process ids that can be ours. Err: the first problem, naming the
    /// entry.
    pub fn validate(&self) -> Result<(), String> {
        if self.version != FILE_VERSION {
            return Err(format!(
                "version {} is not the one this ten reads ({FILE_VERSION})",
                self.version
            ));
        }
        let mut keys: HashMap<InstanceKey, usize> = HashMap::new();
        let mut ports: HashMap<u16, usize> = HashMap::new();
        let mut uids: HashMap<u32, usize> = HashMap::new();
        for (i, e) in self.instances.iter().enumerate() {
            let n = i + 1;
            let at = format!("entry {n} (service {:?}, id {:?})", e.service, e.id);
            let key = InstanceKey::new(&e.service, &e.id).map_err(|err| format!("{at}: {err}"))?;
            names::check_weight(i64::from(e.weight)).map_err(|why| format!("{at}: {why}"))?;
            if e.port == 0 {
                return Err(format!("{at}: port 0 is not a port"));
            }
            for (what, pid) in [("pid", e.pid), ("pgid", e.pgid)] {
                if pid.is_some_and(|p| p < 2 || p > i32::MAX as u32) {
                    return Err(format!(
                        "{at}: {what} {} cannot be an instance's process",
                        pid.unwrap_or_default()
                    ));
                }
            }
            if let Some(first) = keys.insert(key.clone(), n) {
                return Err(format!("{at}: instance {key} is also entry {first}"));
            }
            if let Some(first) = ports.insert(e.port, n) {
                let other = &self.instances[first - 1];
                return Err(format!(
                    "{at}: port {} is also entry {first}'s ({}:{})",
                    e.port, other.service, other.id
                ));
            }
            // Each instance's own uid is its own: a shared one would let
            // two tenants reach each other's files.
            if let Some(first) = e.uid.and_then(|u| uids.insert(u, n)) {
                let other = &self.instances[first - 1];
                return Err(format!(
                    "{at}: uid {} is also entry {first}'s ({}:{})",
                    e.uid.unwrap_or_default(),
                    other.service,
                    other.id
                ));
            }
        }
        Ok(())
    }

    /// The entry of instance `service:id`.
    pub fn entry(&self, service: &str, id: &str) -> Option<&RegistryEntry> {
        self.instances
            .iter()
            .find(|e| e.service == service && e.id == id)
    }

    /// The entry of instance `service:id`, to change before a save.
    pub fn entry_mut(&mut self, service: &str, id: &str) -> Option<&mut RegistryEntry> {
        self.instances
            .iter_mut()
            .find(|e| e.service == service && e.id == id)
    }

    /// Writes it atomically with mode 0600; the bytes written. Blocks on
    /// fsync. Its journal is the caller's (`registry_journal::Journal`).
    pub fn save(&self, path: &Path) -> Result<u64, StateError> {
        let mut bytes = serde_json::to_vec_pretty(self).expect("the registry serialises to json");
        bytes.push(b'\n');
        super::atomic::write(path, &bytes, 0o600)?;
        Ok(bytes.len() as u64)
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
            // A port and a uid of its own per first letter.
            port: 30000 + u16::from(id.as_bytes()[0]),
            weight: 100,
            desired: Desired::Running,
            pid: Some(1234),
            pgid: Some(1234),
            start_ticks: Some(987_654),
            restarts: 2,
            uid: Some(200_000 + u32::from(id.as_bytes()[0])),
            moving: None,
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
            generation: 0,
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
    fn desired_is_written_as_a_word_and_read_back() {
        let t = TempDir::new("registry-desired");
        let path = crate::state::layout::registry_path(&t.0);
        let mut asleep = entry("bob");
        asleep.desired = Desired::Sleeping;
        let mut failed = entry("carol");
        failed.desired = Desired::Failed;
        let mut stopping = entry("dave");
        stopping.desired = Desired::Stopping;
        let reg = Registry {
            version: 1,
            generation: 0,
            instances: vec![entry("alice"), asleep, failed, stopping],
        };
        reg.save(&path).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        for word in ["\"running\"", "\"sleeping\"", "\"failed\"", "\"stopping\""] {
            assert!(text.contains(&format!("\"desired\": {word}")), "{text}");
        }
        assert_eq!(Registry::load(&path).unwrap(), reg);
    }

    #[test]
    fn an_unknown_desired_value_is_an_error_naming_the_entry() {
        let t = TempDir::new("registry-desired-unknown");
        let path = t.0.join("state");
        let record = |id: &str, desired: &str| {
            format!(
                r#"{{"service": "notes", "id": "{id}", "port": 30001, "weight": 100,
                "desired": "{desired}", "pid": null, "pgid": null, "start_ticks": null,
                "restarts": 0}}"#
            )
        };
        let text = format!(
            r#"{{"version": 1, "instances": [{}, {}]}}"#,
            record("alice", "running"),
            record("bob", "runing")
        );
        std::fs::write(&path, text).unwrap();
        let err = Registry::load(&path).unwrap_err().to_string();
        assert!(
            err.starts_with(&format!("{} is corrupt: ", path.display())),
            "{err}"
        );
        assert!(
            err.contains("instance notes:bob has desired \"runing\""),
            "{err}"
        );
    }

    /// Loads a registry of `alice`, `bob` and `carol` after `spoil` changed
    /// it; the error's text.
    fn refused(spoil: impl FnOnce(&mut Registry)) -> String {
        let t = TempDir::new("registry-invalid");
        let path = t.0.join("state");
        let mut reg = Registry {
            version: 1,
            generation: 0,
            instances: vec![entry("alice"), entry("bob"), entry("carol")],
        };
        spoil(&mut reg);
        // Written as JSON without the checks, as a hand edit or another
        // program would.
        std::fs::write(&path, serde_json::to_vec(&reg).unwrap()).unwrap();
        let err = Registry::load(&path).unwrap_err();
        assert!(matches!(err, StateError::Invalid { .. }), "{err:?}");
        let text = err.to_string();
        assert!(
            text.starts_with(&format!("{} is invalid: ", path.display())),
            "{text}"
        );
        assert!(text.contains("Correct or delete that entry"), "{text}");
        text
    }

    #[test]
    fn every_entry_is_checked_with_the_rules_of_the_api() {
        type Spoil = Box<dyn FnOnce(&mut Registry)>;
        let cases: Vec<(&str, Spoil)> = vec![
            (
                r#"entry 2 (service "notes", id "../../x"): invalid instance id "../../x""#,
                Box::new(|r| r.instances[1].id = "../../x".into()),
            ),
            (
                r#"entry 1 (service "Notes", id "alice"): invalid service name "Notes""#,
                Box::new(|r| r.instances[0].service = "Notes".into()),
            ),
            (
                r#"entry 3 (service "notes", id ""): invalid instance id """#,
                Box::new(|r| r.instances[2].id = String::new()),
            ),
            (
                r#"entry 4 (service "notes", id "bob"): instance notes:bob is also entry 2"#,
                Box::new(|r| {
                    let mut twin = entry("bob");
                    twin.port = 31000;
                    r.instances.push(twin)
                }),
            ),
            (
                r#"entry 3 (service "notes", id "carol"): port 30097 is also entry 1's (notes:alice)"#,
                Box::new(|r| r.instances[2].port = r.instances[0].port),
            ),
            (
                r#"entry 2 (service "notes", id "bob"): weight must be 0-100, got 101"#,
                Box::new(|r| r.instances[1].weight = 101),
            ),
            (
                r#"entry 1 (service "notes", id "alice"): port 0 is not a port"#,
                Box::new(|r| r.instances[0].port = 0),
            ),
            (
                r#"entry 2 (service "notes", id "bob"): pid 1 cannot be an instance's process"#,
                Box::new(|r| r.instances[1].pid = Some(1)),
            ),
            (
                r#"entry 2 (service "notes", id "bob"): uid 200097 is also entry 1's (notes:alice)"#,
                Box::new(|r| r.instances[1].uid = r.instances[0].uid),
            ),
            (
                r#"entry 3 (service "notes", id "carol"): pgid 0 cannot be an instance's process"#,
                Box::new(|r| r.instances[2].pgid = Some(0)),
            ),
            (
                "version 2 is not the one this ten reads (1)",
                Box::new(|r| r.version = 2),
            ),
            (
                "version 0 is not the one this ten reads (1)",
                Box::new(|r| r.version = 0),
            ),
        ];
        for (want, spoil) in cases {
            let text = refused(spoil);
            assert!(text.contains(want), "want {want:?} in\n{text}");
        }
    }

    #[test]
    fn uid_is_optional_for_old_files_and_never_0() {
        let t = TempDir::new("registry-uid");
        let path = t.0.join("state");
        let record = |uid: &str| {
            format!(
                r#"{{"version": 1, "instances": [{{"service": "notes", "id": "alice",
                "port": 30001, "weight": 100, "desired": "running", "pid": null,
                "pgid": null, "start_ticks": null, "restarts": 0{uid}}}]}}"#
            )
        };
        std::fs::write(&path, record("")).unwrap();
        assert_eq!(Registry::load(&path).unwrap().instances[0].uid, None);
        std::fs::write(&path, record(r#", "uid": 200001"#)).unwrap();
        assert_eq!(
            Registry::load(&path).unwrap().instances[0].uid,
            Some(200_001)
        );
        std::fs::write(&path, record(r#", "uid": 0"#)).unwrap();
        let err = Registry::load(&path).unwrap_err().to_string();
        assert!(err.contains("notes:alice has uid 0"), "{err}");
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
