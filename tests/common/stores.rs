//! Object store wrappers for library-level tests: one that stops a chosen
//! write until the test lets it go (to force an interleaving), and one whose
//! clock the test sets (to cross grace periods and session expiry without
//! waiting).

use std::collections::HashMap;
use std::fmt;
use std::ops::Range;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;
use futures::StreamExt;
use object_store::path::Path;
use object_store::{
    GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult, Result,
};
use tokio::sync::{oneshot, Notify};

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
#[derive(Clone)]
pub struct GatedStore {
    inner: Arc<dyn ObjectStore>,
    pub gates: Arc<Gates>,
}

impl GatedStore {
    pub fn new(inner: Arc<dyn ObjectStore>) -> GatedStore {
        GatedStore::with_gates(inner, Arc::default())
    }

    pub fn with_gates(inner: Arc<dyn ObjectStore>, gates: Arc<Gates>) -> GatedStore {
        GatedStore { inner, gates }
    }
}

impl fmt::Debug for GatedStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "GatedStore")
    }
}

impl fmt::Display for GatedStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "GatedStore({})", self.inner)
    }
}

#[async_trait]
impl ObjectStore for GatedStore {
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
    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> Result<Box<dyn MultipartUpload>> {
        self.inner.put_multipart_opts(location, opts).await
    }
    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        self.inner.get_opts(location, options).await
    }
    async fn get_ranges(&self, location: &Path, ranges: &[Range<u64>]) -> Result<Vec<Bytes>> {
        self.inner.get_ranges(location, ranges).await
    }
    async fn head(&self, location: &Path) -> Result<ObjectMeta> {
        self.inner.head(location).await
    }
    async fn delete(&self, location: &Path) -> Result<()> {
        self.inner.delete(location).await
    }
    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        self.inner.list(prefix)
    }
    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }
    async fn copy(&self, from: &Path, to: &Path) -> Result<()> {
        self.inner.copy(from, to).await
    }
    async fn copy_if_not_exists(&self, from: &Path, to: &Path) -> Result<()> {
        self.inner.copy_if_not_exists(from, to).await
    }
}

/// The store's clock, set by the test: every object's modification time is
/// the simulated time of its last write.
#[derive(Default)]
pub struct SimClock {
    now_ms: AtomicI64,
    written: Mutex<HashMap<String, i64>>,
}

impl SimClock {
    pub fn starting_at(ms: i64) -> SimClock {
        let c = SimClock::default();
        c.now_ms.store(ms, Ordering::SeqCst);
        c
    }

    pub fn now(&self) -> i64 {
        self.now_ms.load(Ordering::SeqCst)
    }

    pub fn advance_ms(&self, ms: i64) {
        self.now_ms.fetch_add(ms, Ordering::SeqCst);
    }

    fn stamp(&self, m: &mut ObjectMeta) {
        let t = self
            .written
            .lock()
            .unwrap()
            .get(m.location.as_ref())
            .copied()
            .unwrap_or(0);
        m.last_modified = chrono::DateTime::from_timestamp_millis(t).expect("valid time");
    }
}

#[derive(Clone)]
pub struct SimClockStore {
    inner: Arc<dyn ObjectStore>,
    pub clock: Arc<SimClock>,
}

impl SimClockStore {
    pub fn new(inner: Arc<dyn ObjectStore>, start_ms: i64) -> SimClockStore {
        SimClockStore::with_clock(inner, Arc::new(SimClock::starting_at(start_ms)))
    }

    pub fn with_clock(inner: Arc<dyn ObjectStore>, clock: Arc<SimClock>) -> SimClockStore {
        SimClockStore { inner, clock }
    }
}

impl fmt::Debug for SimClockStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SimClockStore")
    }
}

impl fmt::Display for SimClockStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SimClockStore({})", self.inner)
    }
}

#[async_trait]
impl ObjectStore for SimClockStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> Result<PutResult> {
        let r = self.inner.put_opts(location, payload, opts).await?;
        self.clock
            .written
            .lock()
            .unwrap()
            .insert(location.to_string(), self.clock.now());
        Ok(r)
    }
    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> Result<Box<dyn MultipartUpload>> {
        self.inner.put_multipart_opts(location, opts).await
    }
    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        let mut r = self.inner.get_opts(location, options).await?;
        self.clock.stamp(&mut r.meta);
        Ok(r)
    }
    async fn get_ranges(&self, location: &Path, ranges: &[Range<u64>]) -> Result<Vec<Bytes>> {
        self.inner.get_ranges(location, ranges).await
    }
    async fn head(&self, location: &Path) -> Result<ObjectMeta> {
        let mut m = self.inner.head(location).await?;
        self.clock.stamp(&mut m);
        Ok(m)
    }
    async fn delete(&self, location: &Path) -> Result<()> {
        self.inner.delete(location).await?;
        self.clock.written.lock().unwrap().remove(location.as_ref());
        Ok(())
    }
    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        let clock = self.clock.clone();
        self.inner
            .list(prefix)
            .map(move |r| {
                r.map(|mut m| {
                    clock.stamp(&mut m);
                    m
                })
            })
            .boxed()
    }
    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        let mut r = self.inner.list_with_delimiter(prefix).await?;
        for m in &mut r.objects {
            self.clock.stamp(m);
        }
        Ok(r)
    }
    async fn copy(&self, from: &Path, to: &Path) -> Result<()> {
        self.inner.copy(from, to).await
    }
    async fn copy_if_not_exists(&self, from: &Path, to: &Path) -> Result<()> {
        self.inner.copy_if_not_exists(from, to).await
    }
}

/// What the live versions of a store use, following forward records of
/// rewritten packs the way readers do: pack ids and manifest hashes (hex),
/// and the rewritten packs whose forward records they go through.
pub async fn live_objects(
    store: &assetfs::store::client::Store,
) -> (
    std::collections::HashSet<String>,
    std::collections::HashSet<String>,
    std::collections::HashSet<String>,
) {
    use assetfs::format::ids::to_hex;
    let catalog = assetfs::catalog::versions::Catalog::new(store.clone());
    let (mut packs, mut manifests, mut via) = (
        std::collections::HashSet::new(),
        std::collections::HashSet::new(),
        std::collections::HashSet::new(),
    );
    let mut forwards: HashMap<
        assetfs::format::ids::PackId,
        assetfs::format::pack_forward::Forwards,
    > = HashMap::new();
    for (asset, k) in catalog.all_asset_keys().await.unwrap() {
        for v in k.live() {
            let rec = catalog.record(&asset, v).await.unwrap();
            let m = catalog.manifest(&rec.manifest).await.unwrap();
            manifests.insert(rec.manifest);
            for c in &m.chunks {
                let (mut p, mut off) = (m.packs[c.pack as usize], c.offset);
                for _ in 0..16 {
                    if let std::collections::hash_map::Entry::Vacant(e) = forwards.entry(p) {
                        e.insert(
                            assetfs::format::pack_forward::load(store, &p)
                                .await
                                .unwrap(),
                        );
                    }
                    match forwards[&p].get(&off) {
                        Some(mv) if mv.len == c.len => {
                            via.insert(to_hex(&p));
                            (p, off) = (mv.to, mv.to_offset);
                        }
                        _ => break,
                    }
                }
                packs.insert(to_hex(&p));
            }
        }
    }
    (packs, manifests, via)
}
