//! A failure-injecting store: it can go "down", or behave like the
//! S3-compatible servers (Garage, `rclone serve s3`) that answer 200 to
//! `If-None-Match: *` and overwrite.

use std::ops::Range;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;
use futures::StreamExt;
use object_store::path::Path;
use object_store::{
    GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore, PutMode,
    PutMultipartOptions, PutOptions, PutPayload, PutResult, Result,
};

use super::layer::{Double, Layer};

#[derive(Debug, Default)]
pub struct Faults {
    /// Treat create-if-absent as a plain overwrite.
    pub ignore_conditional: AtomicBool,
    /// Fail every request as if the store were unreachable.
    pub down: AtomicBool,
    /// Requests seen (any kind).
    pub requests: AtomicU64,
}

/// The store with [`Faults`] switched by the test.
pub type FaultyStore = Double<Faulty>;

#[derive(Clone)]
pub struct Faulty {
    inner: Arc<dyn ObjectStore>,
    pub faults: Arc<Faults>,
}

impl FaultyStore {
    pub fn new(inner: Arc<dyn ObjectStore>) -> FaultyStore {
        Double(Faulty {
            inner,
            faults: Arc::default(),
        })
    }
}

impl Faulty {
    fn check(&self) -> Result<()> {
        self.faults.requests.fetch_add(1, Ordering::Relaxed);
        if self.faults.down.load(Ordering::Relaxed) {
            return Err(object_store::Error::Generic {
                store: "faulty",
                source: "injected fault: store unreachable".into(),
            });
        }
        Ok(())
    }
}

#[async_trait]
impl Layer for Faulty {
    const NAME: &'static str = "FaultyStore";

    fn inner(&self) -> &Arc<dyn ObjectStore> {
        &self.inner
    }

    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        mut opts: PutOptions,
    ) -> Result<PutResult> {
        self.check()?;
        if self.faults.ignore_conditional.load(Ordering::Relaxed) {
            opts.mode = PutMode::Overwrite;
        }
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> Result<Box<dyn MultipartUpload>> {
        self.check()?;
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        self.check()?;
        self.inner.get_opts(location, options).await
    }

    async fn get_ranges(&self, location: &Path, ranges: &[Range<u64>]) -> Result<Vec<Bytes>> {
        self.check()?;
        self.inner.get_ranges(location, ranges).await
    }

    async fn delete(&self, location: &Path) -> Result<()> {
        self.check()?;
        self.inner.delete(location).await
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        if let Err(e) = self.check() {
            return futures::stream::once(async move { Err(e) }).boxed();
        }
        self.inner.list(prefix)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        self.check()?;
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy(&self, from: &Path, to: &Path) -> Result<()> {
        self.check()?;
        self.inner.copy(from, to).await
    }

    async fn copy_if_not_exists(&self, from: &Path, to: &Path) -> Result<()> {
        self.check()?;
        self.inner.copy_if_not_exists(from, to).await
    }
}
