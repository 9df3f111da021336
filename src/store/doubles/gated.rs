//! A store that stops a chosen write until the test lets it go, to force an
//! interleaving.

use std::ops::Range;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use bytes::Bytes;
use object_store::path::Path;
use object_store::{ObjectMeta, ObjectStore, PutOptions, PutPayload, PutResult, Result};
use tokio::sync::{oneshot, Notify};

use super::layer::{Double, Layer};

/// One armed gate: the first put whose key contains `pattern` stops there.
struct Gate {
    pattern: String,
    reached: Arc<Notify>,
    release: Mutex<Option<oneshot::Receiver<()>>>,
}

/// Lets the test wait for the gated write and then release it.
pub struct GateHandle {
    reached: Arc<Notify>,
    release: Option<oneshot::Sender<()>>,
}

impl GateHandle {
    /// Waits until a write reached the gate (it is held there).
    pub async fn reached(&self) {
        self.reached.notified().await;
    }

    /// Lets the held write proceed.
    pub fn release(mut self) {
        if let Some(tx) = self.release.take() {
            let _ = tx.send(());
        }
    }
}

#[derive(Default)]
pub struct Gates {
    gates: Mutex<Vec<Arc<Gate>>>,
}

impl Gates {
    /// Arms a gate for the next put whose key contains `pattern`.
    pub fn arm(&self, pattern: &str) -> GateHandle {
        let (tx, rx) = oneshot::channel();
        let reached = Arc::new(Notify::new());
        self.gates.lock().unwrap().push(Arc::new(Gate {
            pattern: pattern.to_string(),
            reached: reached.clone(),
            release: Mutex::new(Some(rx)),
        }));
        GateHandle {
            reached,
            release: Some(tx),
        }
    }

    fn take(&self, key: &str) -> Option<Arc<Gate>> {
        let mut g = self.gates.lock().unwrap();
        let i = g.iter().position(|g| key.contains(&g.pattern))?;
        Some(g.remove(i))
    }
}

/// Forwards everything; a put matching an armed gate waits for its release.
pub type GatedStore = Double<Gated>;

#[derive(Clone)]
pub struct Gated {
    inner: Arc<dyn ObjectStore>,
    pub gates: Arc<Gates>,
}

impl GatedStore {
    pub fn new(inner: Arc<dyn ObjectStore>) -> GatedStore {
        GatedStore::with_gates(inner, Arc::default())
    }

    pub fn with_gates(inner: Arc<dyn ObjectStore>, gates: Arc<Gates>) -> GatedStore {
        Double(Gated { inner, gates })
    }
}

#[async_trait]
impl Layer for Gated {
    const NAME: &'static str = "GatedStore";

    fn inner(&self) -> &Arc<dyn ObjectStore> {
        &self.inner
    }

    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> Result<PutResult> {
        if let Some(g) = self.gates.take(location.as_ref()) {
            g.reached.notify_one();
            let rx = g.release.lock().unwrap().take();
            if let Some(rx) = rx {
                let _ = rx.await;
            }
        }
        self.inner.put_opts(location, payload, opts).await
    }
    async fn get_ranges(&self, location: &Path, ranges: &[Range<u64>]) -> Result<Vec<Bytes>> {
        self.inner.get_ranges(location, ranges).await
    }
    async fn head(&self, location: &Path) -> Result<ObjectMeta> {
        self.inner.head(location).await
    }
}
