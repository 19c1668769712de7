//! The meta group's machine on a server: the catalog of assignments, readable without
//! waiting on the Raft task, and the events that tell this server what to do about each
//! committed change (open the streams placed on it, answer the client that asked).

use std::sync::{Arc, RwLock, RwLockReadGuard};

use tokio::sync::mpsc;

use crate::jetstream::assignments::{Assignments, MetaCommand, MetaOutcome};
use crate::raft::machine::Machine;

/// A committed change of the catalog, in log order.
#[derive(Debug)]
pub enum MetaEvent {
    /// The entry at `index` was applied with `outcome`.
    Applied {
        index: u64,
        command: Box<MetaCommand>,
        outcome: MetaOutcome,
    },
    /// The catalog was replaced by a snapshot taken at `index`: what this server runs must
    /// be compared with the whole catalog, as the entries in between will not be seen.
    Restored { index: u64 },
}

/// The catalog, shared between the machine and the API thread that reads it.
#[derive(Clone, Default)]
pub struct Catalog(Arc<RwLock<Assignments>>);

impl Catalog {
    pub fn read(&self) -> RwLockReadGuard<'_, Assignments> {
        self.0.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Assignments> {
        self.0.write().unwrap_or_else(|p| p.into_inner())
    }
}

/// [`Assignments`] as the meta group's machine, reporting every change as a [`MetaEvent`].
pub struct MetaMachine {
    catalog: Catalog,
    events: mpsc::UnboundedSender<MetaEvent>,
}

impl MetaMachine {
    pub fn new(events: mpsc::UnboundedSender<MetaEvent>) -> (Self, Catalog) {
        let catalog = Catalog::default();
        let machine = Self {
            catalog: catalog.clone(),
            events,
        };
        (machine, catalog)
    }

    /// The catalog as applied so far.
    pub fn catalog(&self) -> RwLockReadGuard<'_, Assignments> {
        self.catalog.read()
    }
}

impl Machine for MetaMachine {
    fn apply(&mut self, command: &[u8]) -> Vec<u8> {
        self.apply_at(0, command)
    }

    fn apply_at(&mut self, index: u64, command: &[u8]) -> Vec<u8> {
        let outcome = match serde_json::from_slice::<MetaCommand>(command) {
            Ok(command) => {
                let outcome = self.catalog.write().apply_command(command.clone());
                // Nobody listening only means the server is stopping.
                let _ = self.events.send(MetaEvent::Applied {
                    index,
                    command: Box::new(command),
                    outcome: outcome.clone(),
                });
                outcome
            }
            Err(_) => MetaOutcome::Undecodable,
        };
        serde_json::to_vec(&outcome).unwrap_or_default()
    }

    fn snapshot(&self) -> Vec<u8> {
        self.catalog.read().snapshot()
    }

    fn restore(&mut self, snapshot: &[u8]) -> Result<(), String> {
        self.restore_at(0, snapshot)
    }

    fn restore_at(&mut self, index: u64, snapshot: &[u8]) -> Result<(), String> {
        self.catalog.write().restore(snapshot)?;
        let _ = self.events.send(MetaEvent::Restored { index });
        Ok(())
    }
}
