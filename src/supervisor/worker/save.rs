//! Writing the registry: a command's change before it is made
//! (`save_first`, so a failed save refuses the command with nothing
//! changed), and what happened on its own after each round of the loop
//! (`save_registry`, retried every second while it fails). Only the
//! entries that changed are written, as records appended to the journal
//! (`state::registry_journal`): a spawn costs one line and an fsync,
//! however many instances there are. Blocks on fsync, on the supervisor
//! thread only; never touches the front.

use super::Supervisor;
use crate::names::InstanceKey;
use crate::state::registry_journal::Record;
use crate::state::{Registry, RegistryEntry, StateError};
use crate::supervisor::reply::CommandError;

impl Supervisor {
    /// `key`'s entry may have changed: the next save compares it with what
    /// the files hold.
    pub(super) fn persist(&mut self, key: &InstanceKey) {
        self.persist = true;
        if !self.unsaved_all {
            self.unsaved.insert(key.clone());
        }
    }

    /// Any entry may have changed: the next save compares them all.
    pub(super) fn persist_all(&mut self) {
        self.persist = true;
        self.unsaved_all = true;
        self.unsaved.clear();
    }

    /// The records that bring the files to `changes`: each key with its
    /// entry as it is to be (None: removed). Entries the files hold as
    /// they are make none.
    fn records<'k>(
        &self,
        changes: impl IntoIterator<Item = (&'k InstanceKey, Option<RegistryEntry>)>,
    ) -> Vec<Record> {
        let Some(journal) = self.journal.as_ref() else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for (key, now) in changes {
            match now {
                _ if journal.holds(key, now.as_ref()) => {}
                Some(e) => out.push(Record::Put(e)),
                None => out.push(Record::Remove {
                    service: key.service.to_string(),
                    id: key.id.to_string(),
                }),
            }
        }
        out
    }

    /// Appends `records` to the journal.
    fn append(&mut self, records: &[Record]) -> Result<(), StateError> {
        match self.journal.as_mut() {
            Some(journal) => journal.append(records),
            None => Ok(()),
        }
    }

    /// Saves now the entries of `keys` as they are once the change in hand
    /// is made: `edit` makes that change to them (a registry of those
    /// entries only). A command's change is saved before it is made, so a
    /// failed save refuses it with nothing changed. Err: the answer (507
    /// when the disk is full), logged with the OS error.
    pub(super) fn save_first(
        &mut self,
        what: &str,
        keys: &[&InstanceKey],
        edit: impl FnOnce(&mut Registry),
    ) -> Result<(), CommandError> {
        let mut entries = self.entries(keys);
        edit(&mut entries);
        // A few keys, each found in the edited entries by a look through them.
        let changes = keys
            .iter()
            .map(|k| (*k, entries.entry(&k.service, &k.id).cloned()));
        let records = self.records(changes);
        self.append(&records).map_err(|e| {
            let e = CommandError::storage(what, &e);
            error!("supervisor", "{e}");
            e
        })
    }

    /// `save_first` for a change of instance `key`'s entry; writes nothing
    /// when `edit` leaves the entry as it is.
    pub(super) fn save_entry_first(
        &mut self,
        what: &str,
        key: &InstanceKey,
        edit: impl FnOnce(&mut RegistryEntry),
    ) -> Result<(), CommandError> {
        self.save_first(what, &[key], |r| {
            if let Some(e) = r.entry_mut(&key.service, &key.id) {
                edit(e);
            }
        })
    }

    /// Saves the entries that may have changed since the last save (see
    /// `persist`), unless they are what the files hold already (an
    /// instance that became ready changes nothing there). A failure is
    /// logged (once per distinct error) and `sweep_host` tries again every
    /// second until it works.
    pub(super) fn save_registry(&mut self) {
        let keys: Vec<InstanceKey> = match std::mem::take(&mut self.unsaved_all) {
            true => {
                let mut all: Vec<InstanceKey> = self.instances.keys().cloned().collect();
                if let Some(journal) = self.journal.as_ref() {
                    all.extend(
                        journal
                            .keys()
                            .filter(|k| !self.instances.contains_key(k))
                            .cloned(),
                    );
                }
                self.unsaved.clear();
                all
            }
            false => std::mem::take(&mut self.unsaved).into_iter().collect(),
        };
        let records = self.records(keys.iter().map(|k| (k, self.entry(k))));
        match self.append(&records) {
            Ok(()) => {
                if self.save_error.take().is_some() {
                    info!("supervisor", "registry saved again");
                }
                #[cfg(debug_assertions)]
                self.check_saved();
                // Every entry is saved as it is now: the right moment to
                // write them whole when the journal has grown enough.
                if self.journal.as_ref().is_some_and(|j| j.compact_due()) {
                    self.compact_registry();
                }
            }
            Err(e) => {
                // What it held is compared again at the next try.
                self.unsaved_all = true;
                let why = e.describe();
                if self.save_error.as_deref() != Some(why.as_str()) {
                    error!("supervisor", "save registry: {why}; retrying every second");
                }
                self.save_error = Some(why);
            }
        }
    }

    /// Writes the registry whole and empties its journal (when the journal
    /// outgrew `state`, and at a clean shutdown, so that what is left is
    /// one file). Called only when every entry is saved as it is: what it
    /// writes is then what the files hold. A failure is logged; the
    /// journal still holds everything.
    pub(super) fn compact_registry(&mut self) {
        let all = self.registry().instances;
        if let Some(journal) = self.journal.as_mut() {
            if let Err(e) = journal.compact(all) {
                warn!(
                    "supervisor",
                    "compact the registry: {}; its journal grows until it works",
                    e.describe()
                );
            }
        }
    }

    /// After a save, the files hold every entry as it is: a change that
    /// did not `persist` its instance would be lost at the next start.
    /// Checked after every save in debug builds, so the test suite finds
    /// such a change.
    #[cfg(debug_assertions)]
    fn check_saved(&self) {
        let Some(journal) = self.journal.as_ref() else {
            return;
        };
        let all = self.registry();
        for e in &all.instances {
            let key = InstanceKey::new(&e.service, &e.id).expect("a key of the table");
            assert!(
                journal.holds(&key, Some(e)),
                "{key}'s entry changed without `persist`: {e:?}"
            );
        }
        assert_eq!(
            journal.keys().count(),
            all.instances.len(),
            "an instance left without `persist`"
        );
    }
}
