//! Writing the registry: a command's change before it is made
//! (`save_first`, so a failed save refuses the command with nothing
//! changed), and what happened on its own after each round of the loop
//! (`save_registry`, retried every second while it fails). Blocks on fsync,
//! on the supervisor thread only; never touches the front.

use super::Supervisor;
use crate::names::InstanceKey;
use crate::state::{Registry, RegistryEntry};
use crate::supervisor::reply::CommandError;

impl Supervisor {
    /// Saves the registry now, as it is once the change in hand is made:
    /// `edit` makes that change to what `registry()` shows. A command's
    /// change is saved before it is made, so a failed save refuses it with
    /// nothing changed. Err: the answer (507 when the disk is full), logged
    /// with the OS error.
    pub(super) fn save_first(
        &mut self,
        what: &str,
        edit: impl FnOnce(&mut Registry),
    ) -> Result<(), CommandError> {
        let mut registry = self.registry();
        edit(&mut registry);
        match registry.save(&self.registry_path()) {
            Ok(()) => {
                self.saved = Some(registry);
                Ok(())
            }
            Err(e) => {
                self.saved = None;
                let e = CommandError::storage(what, &e);
                error!("supervisor", "{e}");
                Err(e)
            }
        }
    }

    /// `save_first` for a change of instance `key`'s entry; writes nothing
    /// when `edit` leaves the entry as it is.
    pub(super) fn save_entry_first(
        &mut self,
        what: &str,
        key: &InstanceKey,
        edit: impl FnOnce(&mut RegistryEntry),
    ) -> Result<(), CommandError> {
        let Some(entry) = self
            .registry()
            .instances
            .into_iter()
            .find(|e| e.service == key.service && e.id == key.id)
        else {
            return Ok(());
        };
        let mut changed = entry.clone();
        edit(&mut changed);
        if changed == entry {
            return Ok(());
        }
        self.save_first(what, |r| {
            if let Some(e) = r.entry_mut(&key.service, &key.id) {
                *e = changed;
            }
        })
    }

    /// Saves the registry as it is, unless that is what the last save
    /// wrote (an instance that became ready changes nothing there). A
    /// failure is logged (once per distinct error) and `sweep_host` tries
    /// again every second until it works.
    pub(super) fn save_registry(&mut self) {
        let registry = self.registry();
        if self.saved.as_ref() == Some(&registry) {
            return;
        }
        match registry.save(&self.registry_path()) {
            Ok(()) => {
                self.saved = Some(registry);
                if self.save_error.take().is_some() {
                    info!("supervisor", "registry saved again");
                }
            }
            Err(e) => {
                self.saved = None;
                let why = e.describe();
                if self.save_error.as_deref() != Some(why.as_str()) {
                    error!("supervisor", "save registry: {why}; retrying every second");
                }
                self.save_error = Some(why);
            }
        }
    }
}
