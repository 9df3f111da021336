//! Inodes of sidecars (`<name>@<v>.json`) and alias links (`<name>@<alias>`),
//! numbered in the order first seen and never reused.

use std::collections::HashMap;
use std::sync::{Mutex, RwLock};

use crate::format::AssetId;
use crate::mount::vfs::inodes::misc_ino;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Misc {
    Sidecar(AssetId, u64),
    Alias(AssetId, String),
}

#[derive(Default)]
pub struct MiscInodes {
    all: RwLock<Vec<Misc>>,
    ids: Mutex<HashMap<Misc, u64>>,
}

impl MiscInodes {
    pub fn ino(&self, m: Misc) -> u64 {
        let mut ids = self.ids.lock().expect("misc ids lock");
        if let Some(&ino) = ids.get(&m) {
            return ino;
        }
        let mut all = self.all.write().expect("misc lock");
        let ino = misc_ino(all.len());
        all.push(m.clone());
        ids.insert(m, ino);
        ino
    }

    /// The `i`th of the table (see `inodes::Ino::Misc`).
    pub fn get(&self, i: usize) -> Option<Misc> {
        self.all.read().expect("misc lock").get(i).cloned()
    }
}
