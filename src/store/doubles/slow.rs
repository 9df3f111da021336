//! A slow store: it adds latency to every GET, caps the throughput of all
//! response bodies together (like a link), and records what was asked for:
//! each GET's key and byte range, bytes sent, requests in flight.

use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use object_store::path::Path;
use object_store::{GetOptions, GetResult, GetResultPayload, ObjectStore, Result};

use super::layer::{Double, Layer};

/// What the readers asked of the store.
#[derive(Debug, Default)]
pub struct Traffic {
    pub gets: AtomicU64,
    pub bytes: AtomicU64,
    pub in_flight: AtomicU64,
    pub max_in_flight: AtomicU64,
    /// (key, byte range) of every GET, in order of arrival.
    pub ranges: Mutex<Vec<(String, Range<u64>)>>,
}

impl Traffic {
    /// Ranges of objects whose key starts with `prefix`.
    pub fn ranges_under(&self, prefix: &str) -> Vec<(String, Range<u64>)> {
        let r = self.ranges.lock().unwrap();
        r.iter()
            .filter(|(k, _)| k.starts_with(prefix))
            .cloned()
            .collect()
    }

    /// Bytes of objects under `prefix` that were requested more than once.
    pub fn overlap_under(&self, prefix: &str) -> u64 {
        let mut rs = self.ranges_under(prefix);
        rs.sort_by(|a, b| (&a.0, a.1.start).cmp(&(&b.0, b.1.start)));
        let mut dup = 0;
        for w in rs.windows(2) {
            if w[0].0 == w[1].0 && w[1].1.start < w[0].1.end {
                dup += w[0].1.end.min(w[1].1.end) - w[1].1.start;
            }
        }
        dup
    }

    pub fn reset(&self) {
        self.ranges.lock().unwrap().clear();
        for c in [&self.gets, &self.bytes, &self.max_in_flight] {
            c.store(0, Ordering::SeqCst);
        }
    }
}

#[derive(Debug)]
struct Link {
    bytes_per_sec: u64,
    /// When the link is free again.
    free_at: Mutex<Instant>,
}

impl Link {
    /// Time at which `n` more bytes have crossed the link.
    fn reserve(&self, n: u64) -> Instant {
        let mut f = self.free_at.lock().unwrap();
        let start = (*f).max(Instant::now());
        *f = start + Duration::from_secs_f64(n as f64 / self.bytes_per_sec as f64);
        *f
    }
}

/// The store behind a slow link, with its [`Traffic`] recorded.
pub type SlowStore = Double<Slow>;

#[derive(Clone)]
pub struct Slow {
    inner: Arc<dyn ObjectStore>,
    latency: Duration,
    link: Arc<Link>,
    pub traffic: Arc<Traffic>,
}

impl SlowStore {
    pub fn new(inner: Arc<dyn ObjectStore>, latency: Duration, bytes_per_sec: u64) -> SlowStore {
        Double(Slow {
            inner,
            latency,
            link: Arc::new(Link {
                bytes_per_sec,
                free_at: Mutex::new(Instant::now()),
            }),
            traffic: Arc::default(),
        })
    }
}

/// Decrements the in-flight count when a response body is finished or dropped.
struct InFlight(Arc<Traffic>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

const FRAME: usize = 64 << 10;

/// Only GETs are slowed and recorded; `head` and `get_ranges` are GETs too.
#[async_trait]
impl Layer for Slow {
    const NAME: &'static str = "SlowStore";

    fn inner(&self) -> &Arc<dyn ObjectStore> {
        &self.inner
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        let t = self.traffic.clone();
        t.gets.fetch_add(1, Ordering::SeqCst);
        let now = t.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        t.max_in_flight.fetch_max(now, Ordering::SeqCst);
        let guard = InFlight(t.clone());
        tokio::time::sleep(self.latency).await;
        let r = self.inner.get_opts(location, options).await?;
        t.ranges
            .lock()
            .unwrap()
            .push((location.to_string(), r.range.clone()));
        let (meta, range, attributes) = (r.meta.clone(), r.range.clone(), r.attributes.clone());
        let link = self.link.clone();
        let body = r.into_stream();
        let frames = body
            .flat_map(|b| {
                let parts: Vec<Result<Bytes>> = match b {
                    Ok(b) => (0..b.len())
                        .step_by(FRAME)
                        .map(|i| Ok(b.slice(i..(i + FRAME).min(b.len()))))
                        .collect(),
                    Err(e) => vec![Err(e)],
                };
                futures::stream::iter(parts)
            })
            .then(move |f| {
                let (link, t) = (link.clone(), t.clone());
                async move {
                    if let Ok(b) = &f {
                        let at = link.reserve(b.len() as u64);
                        tokio::time::sleep_until(at.into()).await;
                        t.bytes.fetch_add(b.len() as u64, Ordering::SeqCst);
                    }
                    f
                }
            });
        let stream = futures::stream::unfold((frames.boxed(), Some(guard)), |(mut s, g)| async {
            // At the end the guard is dropped: the body is finished.
            s.next().await.map(|x| (x, (s, g)))
        });
        Ok(GetResult {
            payload: GetResultPayload::Stream(stream.boxed()),
            meta,
            range,
            attributes,
        })
    }
}
