//! A store whose clock the test sets, to cross grace periods and session
//! expiry without waiting: every object's modification time is the simulated
//! time of its last write.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;
use futures::StreamExt;
use object_store::path::Path;
use object_store::{
    GetOptions, GetResult, ListResult, ObjectMeta, ObjectStore, PutOptions, PutPayload, PutResult,
    Result,
};

use super::layer::{Double, Layer};

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
        // Converted through `SystemTime`, which spares a direct chrono dependency.
        let epoch = std::time::UNIX_EPOCH;
        let at = if t >= 0 {
            epoch + Duration::from_millis(t as u64)
        } else {
            epoch - Duration::from_millis(t.unsigned_abs())
        };
        m.last_modified = at.into();
    }
}

/// The store with object times from a [`SimClock`].
pub type SimClockStore = Double<SimClocked>;

#[derive(Clone)]
pub struct SimClocked {
    inner: Arc<dyn ObjectStore>,
    pub clock: Arc<SimClock>,
}

impl SimClockStore {
    pub fn new(inner: Arc<dyn ObjectStore>, start_ms: i64) -> SimClockStore {
        SimClockStore::with_clock(inner, Arc::new(SimClock::starting_at(start_ms)))
    }

    pub fn with_clock(inner: Arc<dyn ObjectStore>, clock: Arc<SimClock>) -> SimClockStore {
        Double(SimClocked { inner, clock })
    }
}

#[async_trait]
impl Layer for SimClocked {
    const NAME: &'static str = "SimClockStore";

    fn inner(&self) -> &Arc<dyn ObjectStore> {
        &self.inner
    }

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
}
