//! Object-store access: URL parsing, the key layout, conditional writes and
//! the self-check that refuses stores which ignore them.
//!
//! Everything the rest of the crate stores goes through [`Store`], so the key
//! layout (see docs/storage-format.md) lives in one place.

use std::ops::Range;
use std::path::{Path as FsPath, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{ClientConfigKey, ObjectStore, PutMode, PutOptions, PutPayload, RetryConfig};

use crate::store::in_place::{InPlace, InPlaceError};

/// Set to `1` to skip the create-if-absent self-check. Only for benchmarks
/// against servers known to ignore conditional writes (Garage); versions
/// written there can be silently overwritten by a concurrent writer.
pub const SKIP_CHECK_ENV: &str = "ASSETFS_UNSAFE_SKIP_CONDITIONAL_CHECK";

/// Whether [`SKIP_CHECK_ENV`] is `1`: [`Store::check_conditional_writes`]
/// then proves nothing.
fn conditional_check_skipped() -> bool {
    std::env::var(SKIP_CHECK_ENV).as_deref() == Ok("1")
}

static SKIPPED_CHECK_NOTICE: std::sync::OnceLock<fn(&str)> = std::sync::OnceLock::new();

/// Sets who tells the user, with `skip_check_warning`'s text, each time
/// the check is skipped (the binary: on stderr); a second call is ignored.
pub fn on_skipped_check(notify: fn(&str)) {
    let _ = SKIPPED_CHECK_NOTICE.set(notify);
}

/// What a user must be told when the conditional-write check is skipped for
/// the store at `url`.
pub fn skip_check_warning(url: &str) -> String {
    format!(
        "WARNING: {SKIP_CHECK_ENV}=1: not checking that {url} honours create-if-absent; \
         concurrent commits may silently overwrite versions. Use only for benchmarks."
    )
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("invalid store URL {url:?}: {why}")]
    Url { url: String, why: String },
    #[error("object {key} not found in the store")]
    NotFound { key: String },
    #[error("store request for {key} failed{hint}: {source}")]
    Backend {
        key: String,
        #[source]
        source: Box<object_store::Error>,
        /// What it most likely means and what to check (may be empty).
        hint: String,
    },
    #[error("the store at {url} does not honour create-if-absent writes (a second create-if-absent put of a probe key succeeded: `If-None-Match: *` on S3 and Azure, `ifGenerationMatch=0` on GCS), so concurrent commits could overwrite each other's versions; refusing to write. Use a store that supports conditional writes (AWS S3, GCS, Azure, MinIO, Ceph RGW, a local directory){hint}")]
    ConditionalWritesIgnored { url: String, hint: String },
    #[error("no store at {url}: {path} does not exist; check --store / ASSETFS_STORE, or create a store there with `assetfs init`")]
    Missing { url: String, path: PathBuf },
    #[error("no assetfs store at {url} (it has no {marker} marker); check --store / ASSETFS_STORE, or create a store there with `assetfs init`")]
    NoMarker { url: String, marker: &'static str },
    #[error(
        "{url} holds a {marker} that is not an assetfs store marker; refusing to use it as a store"
    )]
    ForeignMarker { url: String, marker: &'static str },
    #[error("store {url} has format {found}, newer than this assetfs understands ({supported}); upgrade assetfs")]
    NewerFormat {
        url: String,
        found: u64,
        supported: u64,
    },
    #[error(transparent)]
    LocalWrite(#[from] InPlaceError),
    #[error("cannot create local store directory {path}: {source}")]
    LocalDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// An object as a listing shows it. `modified_ms` is the store's own clock
/// (milliseconds since the Unix epoch), so ages computed from it never
/// depend on the clocks of the nodes that wrote the objects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    pub key: String,
    pub size: u64,
    pub modified_ms: i64,
}

/// A handle on one catalog in an object store, under an optional prefix.
#[derive(Clone, Debug)]
pub struct Store {
    inner: Arc<dyn ObjectStore>,
    prefix: String,
    url: String,
    /// The canonical directory of a local store.
    local: Option<PathBuf>,
    /// Whether new objects may be written straight into `local` (not
    /// through a wrapper that tests use to inject faults).
    in_place: bool,
}

/// Default local store: `$XDG_DATA_HOME/assetfs/store`.
pub fn default_store_dir() -> PathBuf {
    data_home().join("assetfs").join("store")
}

/// `$XDG_DATA_HOME`, or `~/.local/share`.
pub fn data_home() -> PathBuf {
    std::env::var_os("XDG_DATA_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| home().join(".local/share"))
}

/// `$XDG_CACHE_HOME/assetfs`, or `~/.cache/assetfs`.
pub fn default_cache_dir() -> PathBuf {
    std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| home().join(".cache"))
        .join("assetfs")
}

/// `$HOME`, else the user's home from the password database (boot-time
/// mounts may run without `HOME`), else `/`.
fn home() -> PathBuf {
    if let Some(h) = std::env::var_os("HOME").filter(|h| !h.is_empty()) {
        return PathBuf::from(h);
    }
    // SAFETY: getpwuid returns NULL or a pointer to a valid static entry,
    // read at once; pw_dir is a NUL-terminated string.
    unsafe {
        let pw = libc::getpwuid(libc::getuid());
        if !pw.is_null() && !(*pw).pw_dir.is_null() {
            let dir = std::ffi::CStr::from_ptr((*pw).pw_dir);
            return PathBuf::from(
                <std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(dir.to_bytes()),
            );
        }
    }
    PathBuf::from("/")
}

/// Where to reach a cloud store, when not from the environment.
#[derive(Debug, Clone, Default)]
pub struct StoreOptions {
    /// `--endpoint-url`: an S3-compatible server, Azurite, ...
    pub endpoint: Option<String>,
    /// `--region` (S3).
    pub region: Option<String>,
}

/// Applies the AWS shared files (for what the environment leaves unset),
/// then `--endpoint-url` and `--region`.
fn s3_profile_and_flags(
    mut b: object_store::aws::AmazonS3Builder,
    opts: &StoreOptions,
) -> object_store::aws::AmazonS3Builder {
    use object_store::aws::AmazonS3ConfigKey as K;
    let set = |k: &str| std::env::var_os(k).is_some_and(|v| !v.is_empty());
    let p = crate::store::aws_profile::load();
    if !set("AWS_ACCESS_KEY_ID") {
        if let (Some(id), Some(secret)) = (&p.access_key_id, &p.secret_access_key) {
            b = b.with_access_key_id(id).with_secret_access_key(secret);
            if let Some(t) = &p.session_token {
                b = b.with_token(t);
            }
        }
    }
    if !set("AWS_REGION") && !set("AWS_DEFAULT_REGION") {
        if let Some(r) = &p.region {
            b = b.with_region(r);
        }
    }
    if !set("AWS_ENDPOINT") && !set("AWS_ENDPOINT_URL") {
        if let Some(e) = &p.endpoint_url {
            b = b.with_endpoint(e);
            if e.starts_with("http://") {
                b = b.with_config(K::Client(ClientConfigKey::AllowHttp), "true");
            }
        }
    }
    if let Some(r) = &opts.region {
        b = b.with_region(r);
    }
    if let Some(e) = &opts.endpoint {
        b = b.with_endpoint(e);
        if e.starts_with("http://") {
            b = b.with_config(K::Client(ClientConfigKey::AllowHttp), "true");
        }
    }
    b
}

/// Bounded timeouts, so a store that is down gives an error, not a hang.
/// Set as config keys (not a fresh `ClientOptions`) so that options read from
/// the environment, such as `AWS_ALLOW_HTTP`, are kept.
const TIMEOUTS: [(ClientConfigKey, &str); 2] = [
    (ClientConfigKey::ConnectTimeout, "5s"),
    (ClientConfigKey::Timeout, "120s"),
];

/// A new connection per request when the S3 endpoint is plain `http://` (a server on the local
/// network: MinIO, Garage, Ceph RGW). Such servers often answer with Nagle's
/// algorithm on; on a reused (request/response, so delayed-ACK) connection
/// the last small segment of a response then waits ~40 ms for our ACK. A
/// fresh connection starts in quick-ACK mode and never waits, and costs one
/// round trip on a local network (measured in docs/benchmarks.md). Over
/// `https://` (TLS handshakes) connections are reused as usual.
/// `ASSETFS_S3_REUSE_CONNECTIONS=1` keeps reusing them anyway.
fn fresh_connections_for_plain_http(
    b: object_store::aws::AmazonS3Builder,
) -> object_store::aws::AmazonS3Builder {
    use object_store::aws::AmazonS3ConfigKey as K;
    let plain = b
        .get_config_value(&K::Endpoint)
        .is_some_and(|e| e.starts_with("http://"));
    if !plain || std::env::var("ASSETFS_S3_REUSE_CONNECTIONS").as_deref() == Ok("1") {
        return b;
    }
    b.with_config(K::Client(ClientConfigKey::PoolMaxIdlePerHost), "0")
}

fn retry_config() -> RetryConfig {
    RetryConfig {
        max_retries: 4,
        retry_timeout: Duration::from_secs(30),
        ..Default::default()
    }
}

impl Store {
    /// Opens a store from a URL: `file:///dir`, a plain path, `s3://bucket/prefix`,
    /// `gs://bucket/prefix`, `az://container/prefix` or `memory://`.
    /// Cloud credentials and endpoints come from the standard environment
    /// variables of each backend (AWS_*, GOOGLE_*, AZURE_*).
    pub fn open(url: &str) -> Result<Store> {
        Store::open_with(url, &StoreOptions::default())
    }

    /// [`Store::open`] with an endpoint and region that win over the
    /// environment (`--endpoint-url`, `--region`). For S3, credentials,
    /// region and endpoint missing from the environment are read from the
    /// AWS shared config and credentials files.
    pub fn open_with(url: &str, opts: &StoreOptions) -> Result<Store> {
        let bad = |why: &str| StoreError::Url {
            url: url.to_string(),
            why: why.to_string(),
        };
        if url.is_empty() {
            return Err(bad("empty URL"));
        }
        let Some((scheme, rest)) = url.split_once("://") else {
            if let Some(hint) = url_typo(url) {
                return Err(bad(&hint));
            }
            // A bare path is a local directory.
            return Self::open_local(FsPath::new(url), url);
        };
        let (bucket, prefix) = match rest.split_once('/') {
            Some((b, p)) => (b, p.trim_matches('/')),
            None => (rest, ""),
        };
        let cloud_bucket = || {
            if bucket.is_empty() {
                Err(bad("missing bucket or container name"))
            } else {
                Ok(())
            }
        };
        let inner: Arc<dyn ObjectStore> = match scheme {
            "file" => {
                if !rest.starts_with('/') {
                    return Err(bad(
                        "a file URL needs an absolute path: file:///path/to/store",
                    ));
                }
                return Self::open_local(FsPath::new(rest), url);
            }
            "memory" => Arc::new(object_store::memory::InMemory::new()),
            "s3" => {
                cloud_bucket()?;
                use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
                let b = TIMEOUTS
                    .iter()
                    .fold(AmazonS3Builder::from_env(), |b, (k, v)| {
                        b.with_config(AmazonS3ConfigKey::Client(*k), *v)
                    });
                let b = fresh_connections_for_plain_http(s3_profile_and_flags(b, opts));
                Arc::new(
                    b.with_bucket_name(bucket)
                        .with_retry(retry_config())
                        .build()
                        .map_err(|e| bad(&e.to_string()))?,
                )
            }
            "gs" => {
                cloud_bucket()?;
                use object_store::gcp::{GoogleCloudStorageBuilder, GoogleConfigKey};
                let b = TIMEOUTS
                    .iter()
                    .fold(GoogleCloudStorageBuilder::from_env(), |b, (k, v)| {
                        b.with_config(GoogleConfigKey::Client(*k), *v)
                    });
                Arc::new(
                    b.with_bucket_name(bucket)
                        .with_retry(retry_config())
                        .build()
                        .map_err(|e| bad(&e.to_string()))?,
                )
            }
            "az" | "azure" | "abfs" => {
                cloud_bucket()?;
                use object_store::azure::{AzureConfigKey, MicrosoftAzureBuilder};
                let mut b = TIMEOUTS
                    .iter()
                    .fold(MicrosoftAzureBuilder::from_env(), |b, (k, v)| {
                        b.with_config(AzureConfigKey::Client(*k), *v)
                    });
                if let Some(e) = &opts.endpoint {
                    b = b
                        .with_endpoint(e.clone())
                        .with_allow_http(e.starts_with("http://"));
                }
                Arc::new(
                    b.with_container_name(bucket)
                        .with_retry(retry_config())
                        .build()
                        .map_err(|e| bad(&e.to_string()))?,
                )
            }
            other => {
                return Err(bad(&format!(
                    "unknown scheme `{other}`: use file://, s3://, gs://, az:// or memory://"
                )))
            }
        };
        Ok(Store {
            inner,
            prefix: prefix.to_string(),
            url: url.to_string(),
            local: None,
            in_place: false,
        })
    }

    /// Like [`Store::open`], creating a local store's directory if missing
    /// (what `assetfs init` does).
    pub fn create(url: &str) -> Result<Store> {
        Store::create_with(url, &StoreOptions::default())
    }

    /// [`Store::create`] with [`StoreOptions`].
    pub fn create_with(url: &str, opts: &StoreOptions) -> Result<Store> {
        match Store::open_with(url, opts) {
            Err(StoreError::Missing { path, .. }) => {
                std::fs::create_dir_all(&path).map_err(|source| StoreError::LocalDir {
                    path: path.clone(),
                    source,
                })?;
                Store::open_with(url, opts)
            }
            r => r,
        }
    }

    fn open_local(dir: &FsPath, url: &str) -> Result<Store> {
        let dir = std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf());
        if !dir.is_dir() {
            return Err(StoreError::Missing {
                url: url.to_string(),
                path: dir,
            });
        }
        let fs = object_store::local::LocalFileSystem::new_with_prefix(&dir).map_err(|e| {
            StoreError::Url {
                url: url.to_string(),
                why: e.to_string(),
            }
        })?;
        Ok(Store {
            inner: Arc::new(fs),
            prefix: String::new(),
            url: url.to_string(),
            local: dir.canonicalize().ok(),
            in_place: true,
        })
    }

    /// Wraps an existing object store (tests use this for fault injection).
    pub fn from_object_store(inner: Arc<dyn ObjectStore>, url: &str) -> Store {
        Store {
            inner,
            prefix: String::new(),
            url: url.to_string(),
            local: None,
            in_place: false,
        }
    }

    /// The same store (prefix and URL) through a wrapper of its backend,
    /// e.g. one that injects faults or delays (tests).
    pub fn wrapped(&self, f: impl FnOnce(Arc<dyn ObjectStore>) -> Arc<dyn ObjectStore>) -> Store {
        Store {
            inner: f(self.inner.clone()),
            prefix: self.prefix.clone(),
            url: self.url.clone(),
            local: self.local.clone(),
            in_place: false,
        }
    }

    /// For a plain local store, object `key` created empty and written in
    /// place ([`InPlace`]); `None` for any other store. Only for keys that
    /// are unique to their writer and referenced only once complete (packs).
    pub fn create_in_place(&self, key: &str) -> Option<Result<InPlace>> {
        let dir = self.local.as_ref().filter(|_| self.in_place)?;
        Some(InPlace::create(dir.join(self.path(key).as_ref())).map_err(StoreError::from))
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// The directory holding a local store's pack files (`None` for other
    /// stores): packs never change once written, so a reader may use them
    /// in place.
    pub fn local_packs(&self) -> Option<PathBuf> {
        self.local.as_ref().map(|d| d.join("packs"))
    }

    /// The store's identity, however its URL was spelled: `file://` and the
    /// canonical path for a local store (`/data/s`, `file:///data/s/` and
    /// `file:///data/./s` are one store), `scheme://bucket/prefix` with
    /// slashes normalised for a cloud store. Keys what is local to a store
    /// on this node, such as staging areas.
    pub fn id(&self) -> String {
        match &self.local {
            Some(dir) => format!("file://{}", dir.display()),
            None => match self.url.split_once("://") {
                Some((scheme, rest)) => {
                    let parts: Vec<&str> = rest.split('/').filter(|p| !p.is_empty()).collect();
                    format!("{}://{}", scheme.to_lowercase(), parts.join("/"))
                }
                None => self.url.clone(),
            },
        }
    }

    fn path(&self, key: &str) -> Path {
        if self.prefix.is_empty() {
            Path::from(key)
        } else {
            Path::from(format!("{}/{}", self.prefix, key))
        }
    }

    fn strip<'a>(&self, full: &'a str) -> &'a str {
        if self.prefix.is_empty() {
            full
        } else {
            full.strip_prefix(&self.prefix)
                .map(|s| s.trim_start_matches('/'))
                .unwrap_or(full)
        }
    }

    fn backend<'a>(&'a self, key: &'a str) -> impl FnOnce(object_store::Error) -> StoreError + 'a {
        move |source| match source {
            object_store::Error::NotFound { .. } => StoreError::NotFound {
                key: key.to_string(),
            },
            source => StoreError::Backend {
                key: key.to_string(),
                hint: crate::store::hints::hint(&self.url, &source),
                source: Box::new(source),
            },
        }
    }

    pub async fn get(&self, key: &str) -> Result<Bytes> {
        let r = self
            .inner
            .get(&self.path(key))
            .await
            .map_err(self.backend(key))?;
        r.bytes().await.map_err(self.backend(key))
    }

    pub async fn get_ranges(&self, key: &str, ranges: &[Range<u64>]) -> Result<Vec<Bytes>> {
        self.inner
            .get_ranges(&self.path(key), ranges)
            .await
            .map_err(self.backend(key))
    }

    /// The bytes of `range` of an object as they arrive. A local store
    /// reads the range in one piece (its streaming reader goes 8 KiB at a
    /// time through the blocking pool).
    pub async fn get_range_stream(
        &self,
        key: &str,
        range: Range<u64>,
    ) -> Result<futures::stream::BoxStream<'static, Result<Bytes>>> {
        use futures::StreamExt;
        let path = self.path(key);
        if self.local.is_some() {
            let b = self
                .inner
                .get_range(&path, range)
                .await
                .map_err(self.backend(key))?;
            return Ok(futures::stream::once(async move { Ok(b) }).boxed());
        }
        let opts = object_store::GetOptions {
            range: Some(range.into()),
            ..Default::default()
        };
        let r = self
            .inner
            .get_opts(&path, opts)
            .await
            .map_err(self.backend(key))?;
        let (me, key) = (self.clone(), key.to_string());
        Ok(r.into_stream()
            .map(move |f| f.map_err(me.backend(&key)))
            .boxed())
    }

    /// Unconditional put: only for content-addressed or randomly named
    /// objects, whose content can never differ under one key.
    pub async fn put(&self, key: &str, data: Bytes) -> Result<()> {
        self.inner
            .put(&self.path(key), PutPayload::from_bytes(data))
            .await
            .map_err(self.backend(key))?;
        Ok(())
    }

    /// Create-if-absent. Returns `false` when the key already existed.
    pub async fn put_if_absent(&self, key: &str, data: Bytes) -> Result<bool> {
        let opts = PutOptions {
            mode: PutMode::Create,
            ..Default::default()
        };
        match self
            .inner
            .put_opts(&self.path(key), PutPayload::from_bytes(data), opts)
            .await
        {
            Ok(_) => Ok(true),
            Err(object_store::Error::AlreadyExists { .. }) => Ok(false),
            Err(e) => Err(self.backend(key)(e)),
        }
    }

    pub async fn delete(&self, key: &str) -> Result<()> {
        match self.inner.delete(&self.path(key)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.backend(key)(e)),
        }
    }

    /// Every key under `prefix` (recursive), relative to the store root.
    pub async fn list(&self, prefix: &str) -> Result<Vec<(String, u64)>> {
        let p = self.path(prefix);
        let metas: Vec<_> = self
            .inner
            .list(Some(&p))
            .try_collect()
            .await
            .map_err(self.backend(prefix))?;
        Ok(metas
            .into_iter()
            .map(|m| (self.strip(m.location.as_ref()).to_string(), m.size))
            .collect())
    }

    /// Like [`Store::list`], with each object's modification time.
    pub async fn list_info(&self, prefix: &str) -> Result<Vec<ObjectInfo>> {
        let p = self.path(prefix);
        let metas: Vec<_> = self
            .inner
            .list(Some(&p))
            .try_collect()
            .await
            .map_err(self.backend(prefix))?;
        Ok(metas
            .into_iter()
            .map(|m| ObjectInfo {
                key: self.strip(m.location.as_ref()).to_string(),
                size: m.size,
                modified_ms: m.last_modified.timestamp_millis(),
            })
            .collect())
    }

    /// The object's size and modification time, or `None` when it does not exist.
    pub async fn head(&self, key: &str) -> Result<Option<ObjectInfo>> {
        match self.inner.head(&self.path(key)).await {
            Ok(m) => Ok(Some(ObjectInfo {
                key: key.to_string(),
                size: m.size,
                modified_ms: m.last_modified.timestamp_millis(),
            })),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(self.backend(key)(e)),
        }
    }

    /// The store's clock now (ms since the epoch): the modification time of
    /// a probe object written for the purpose, then deleted.
    pub async fn now_ms(&self) -> Result<i64> {
        let key = format!("{PROBES}/clock-{}", random_id());
        self.put(&key, Bytes::from_static(b"clock")).await?;
        let info = self.head(&key).await?;
        self.delete(&key).await?;
        info.map(|i| i.modified_ms)
            .ok_or(StoreError::NotFound { key })
    }

    /// The immediate "subdirectories" under `prefix`, as bare names.
    pub async fn list_dirs(&self, prefix: &str) -> Result<Vec<String>> {
        let p = self.path(prefix);
        let r = self
            .inner
            .list_with_delimiter(Some(&p))
            .await
            .map_err(self.backend(prefix))?;
        Ok(r.common_prefixes
            .into_iter()
            .filter_map(|cp| cp.filename().map(str::to_string))
            .collect())
    }

    /// Proves the store honours create-if-absent before anything is written
    /// that depends on it. Skipped (loudly: see [`on_skipped_check`]) when
    /// `SKIP_CHECK_ENV` is `1`.
    pub async fn check_conditional_writes(&self) -> Result<()> {
        if conditional_check_skipped() {
            if let Some(notify) = SKIPPED_CHECK_NOTICE.get() {
                notify(&skip_check_warning(&self.url));
            }
            tracing::warn!(url = %self.url, "conditional-write self-check skipped");
            return Ok(());
        }
        let key = format!("{PROBES}/{}", random_id());
        let first = self
            .put_if_absent(&key, Bytes::from_static(b"first"))
            .await?;
        let second = self
            .put_if_absent(&key, Bytes::from_static(b"second"))
            .await?;
        let held = self.get(&key).await?;
        self.delete(&key).await?;
        if first && !second && held.as_ref() == b"first" {
            return Ok(());
        }
        let hint = if self.url.starts_with("s3://") {
            format!(
                ". For benchmarks only, {SKIP_CHECK_ENV}=1 skips this check at the risk of lost versions"
            )
        } else {
            String::new()
        };
        Err(StoreError::ConditionalWritesIgnored {
            url: self.url.clone(),
            hint,
        })
    }
}

/// The store format this assetfs writes and understands.
pub const MARKER_FORMAT: u64 = 1;
/// The store's marker object: its format and that conditional writes were checked.
pub const MARKER: &str = "assetfs.json";
/// Where the conditional-write self-check writes its probe objects.
pub const PROBES: &str = "probe";

impl Store {
    /// Checks that this is an assetfs store: its marker exists, is ours,
    /// and is of a format this assetfs understands.
    pub async fn check_marker(&self) -> Result<()> {
        let got = match self.inner.get(&self.path(MARKER)).await {
            Ok(r) => r.bytes().await,
            Err(e) => Err(e),
        };
        let held = match got {
            Ok(b) => b,
            // A missing bucket answers 404 too: say that, not "no marker".
            Err(e @ object_store::Error::NotFound { .. })
                if crate::store::hints::hint(&self.url, &e).starts_with(" (bucket") =>
            {
                return Err(StoreError::Backend {
                    key: MARKER.to_string(),
                    hint: crate::store::hints::hint(&self.url, &e),
                    source: Box::new(e),
                })
            }
            Err(object_store::Error::NotFound { .. }) => {
                return Err(StoreError::NoMarker {
                    url: self.url.clone(),
                    marker: MARKER,
                })
            }
            Err(e) => return Err(self.backend(MARKER)(e)),
        };
        let format = serde_json::from_slice::<serde_json::Value>(&held)
            .ok()
            .and_then(|v| v["assetfs_store_format"].as_u64());
        match format {
            Some(f) if f <= MARKER_FORMAT => Ok(()),
            Some(found) => Err(StoreError::NewerFormat {
                url: self.url.clone(),
                found,
                supported: MARKER_FORMAT,
            }),
            None => Err(StoreError::ForeignMarker {
                url: self.url.clone(),
                marker: MARKER,
            }),
        }
    }

    /// Writes the marker if missing (`init`), then checks it.
    pub async fn write_marker(&self) -> Result<()> {
        let body =
            serde_json::to_vec_pretty(&serde_json::json!({"assetfs_store_format": MARKER_FORMAT}))
                .expect("marker serialises");
        self.put_if_absent(MARKER, Bytes::from(body)).await?;
        self.check_marker().await
    }
}

/// A store string that looks like a URL with a broken `://` (`s3:/bucket`,
/// `gs:bucket`, `file:/dir`): what the user probably meant, so that it is
/// never taken for a local directory of that name.
fn url_typo(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once(':')?;
    let looks_like_scheme = !scheme.is_empty()
        && scheme
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic())
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    if !looks_like_scheme || scheme.contains('/') {
        return None;
    }
    let rest = rest.trim_start_matches('/');
    let meant = match scheme {
        "file" => format!("file:///{rest}"),
        _ => format!("{scheme}://{rest}"),
    };
    Some(format!(
        "a URL needs `://` after the scheme (did you mean {meant}?); a local directory is given as an absolute path or file:///path"
    ))
}

impl StoreError {
    /// An error of assetfs's own about an object (unreadable content).
    pub fn invalid(key: &str, why: String) -> StoreError {
        StoreError::Backend {
            key: key.to_string(),
            source: Box::new(object_store::Error::Generic {
                store: "assetfs",
                source: why.into(),
            }),
            hint: String::new(),
        }
    }
}

/// A random hex id for probe keys (the store knows nothing of pack ids).
fn random_id() -> String {
    let b: [u8; 16] = rand::random();
    b.iter().map(|x| format!("{x:02x}")).collect()
}
