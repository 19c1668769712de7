//! The state machine the Raft group tests replicate: a journal of numbers.
#![allow(dead_code)]

use jetlog::raft::machine::Machine;

/// Keeps every command (a big-endian u64) it applied, in order; answers with its length.
#[derive(Default)]
pub struct Journal(pub Vec<u64>);

impl Machine for Journal {
    fn apply(&mut self, command: &[u8]) -> Vec<u8> {
        let mut n = [0u8; 8];
        n.copy_from_slice(&command[..8]);
        self.0.push(u64::from_be_bytes(n));
        (self.0.len() as u64).to_be_bytes().to_vec()
    }
    fn snapshot(&self) -> Vec<u8> {
        serde_json::to_vec(&self.0).unwrap_or_default()
    }
    fn restore(&mut self, snapshot: &[u8]) -> Result<(), String> {
        self.0 = serde_json::from_slice(snapshot).map_err(|e| e.to_string())?;
        Ok(())
    }
}
