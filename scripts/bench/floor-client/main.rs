//! What a cold read costs without FUSE and without a disk cache: the floor
//! for a mount that verifies what it serves (docs/benchmarks.md, goal 1).
//!
//! Ranged GETs of every object under a prefix, CONC at once, RANGE_MIB each,
//! through `object_store` (the daemon's S3 client), each body received into
//! one buffer. MODE `get` stops there; `verify` also hashes every 300 KiB
//! with BLAKE3 (one chunk's check); `serve` also makes the two copies a read
//! through a mount's page cache costs (into the page cache, out to the
//! reader). Prints JSON: bytes, seconds.
//!
//! Usage: floor-client MODE CONC RANGE_MIB BUCKET PREFIX (AWS_* from the
//! environment). Built by scripts/bench/diag/contract-floor.sh.
use futures::StreamExt;
use object_store::{aws::AmazonS3Builder, path::Path, GetOptions, GetRange, ObjectStore};
use std::sync::Arc;
use std::time::Instant;

#[tokio::main]
async fn main() {
    let a: Vec<String> = std::env::args().collect();
    assert!(a.len() == 6, "usage: floor-client MODE CONC RANGE_MIB BUCKET PREFIX");
    let mode = a[1].clone();
    assert!(["get", "verify", "serve"].contains(&mode.as_str()), "MODE: get, verify or serve");
    let conc: usize = a[2].parse().expect("CONC");
    let range = a[3].parse::<u64>().expect("RANGE_MIB") << 20;
    let s3 = Arc::new(
        AmazonS3Builder::from_env()
            .with_bucket_name(&a[4])
            .with_allow_http(true)
            .build()
            .expect("S3 client"),
    );
    let objects: Vec<_> = s3
        .list(Some(&Path::from(a[5].as_str())))
        .map(|o| o.expect("list"))
        .collect()
        .await;
    let mut ranges = vec![];
    for o in &objects {
        for start in (0..o.size).step_by(range as usize) {
            ranges.push((o.location.clone(), start..(start + range).min(o.size)));
        }
    }
    let t0 = Instant::now();
    let bytes: u64 = futures::stream::iter(ranges)
        .map(|(key, r)| {
            let (s3, mode) = (s3.clone(), mode.clone());
            async move {
                let len = (r.end - r.start) as usize;
                let opts = GetOptions {
                    range: Some(GetRange::Bounded(r)),
                    ..Default::default()
                };
                let mut body = s3.get_opts(&key, opts).await.expect("GET").into_stream();
                let mut buf = Vec::with_capacity(len);
                while let Some(b) = body.next().await {
                    buf.extend_from_slice(&b.expect("body"));
                }
                assert_eq!(buf.len(), len, "short body");
                tokio::task::spawn_blocking(move || work(&mode, &buf))
                    .await
                    .expect("worker");
                len as u64
            }
        })
        .buffer_unordered(conc)
        .fold(0, |sum, n| async move { sum + n })
        .await;
    let secs = t0.elapsed().as_secs_f64();
    println!("{{\"bytes\": {bytes}, \"seconds\": {secs:.3}}}");
}

fn work(mode: &str, buf: &[u8]) {
    if mode == "get" {
        return;
    }
    for c in buf.chunks(300 << 10) {
        std::hint::black_box(blake3::hash(c));
    }
    if mode == "serve" {
        let (mut page_cache, mut reader) = (vec![0u8; 1 << 20], vec![0u8; 1 << 20]);
        for c in buf.chunks(1 << 20) {
            page_cache[..c.len()].copy_from_slice(c);
            reader[..c.len()].copy_from_slice(&page_cache[..c.len()]);
            std::hint::black_box(&reader);
        }
    }
}
