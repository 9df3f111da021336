//! Open files: what each file handle reads from.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;

use crate::format::Manifest;
use crate::mount::readahead::ReadAhead;
use crate::mount::reader::ChunkMap;
use crate::mount::vfs::error::{Result, VfsError};
use crate::mount::vfs::staging_view::StagingHandle;

pub enum OpenFile {
    Version {
        manifest: Arc<Manifest>,
        idx: u32,
        map: ChunkMap,
        readahead: Mutex<ReadAhead>,
    },
    Bytes(Bytes),
    Staging(StagingHandle),
}

pub struct Handles {
    open: Mutex<HashMap<u64, Arc<OpenFile>>>,
    next_fh: AtomicU64,
}

impl Default for Handles {
    fn default() -> Handles {
        Handles {
            open: Mutex::new(HashMap::new()),
            next_fh: AtomicU64::new(1),
        }
    }
}

impl Handles {
    pub fn add(&self, f: OpenFile) -> u64 {
        let fh = self.next_fh.fetch_add(1, Ordering::Relaxed);
        self.open
            .lock()
            .expect("handles lock")
            .insert(fh, Arc::new(f));
        fh
    }

    pub fn get(&self, fh: u64) -> Result<Arc<OpenFile>> {
        self.open
            .lock()
            .expect("handles lock")
            .get(&fh)
            .cloned()
            .ok_or(VfsError::BadHandle)
    }

    pub fn remove(&self, fh: u64) -> Option<Arc<OpenFile>> {
        self.open.lock().expect("handles lock").remove(&fh)
    }
}
