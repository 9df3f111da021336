//! A minimal `mount-s3` for scripts/bench-mount.sh, built on the published `mountpoint-s3-fs`
//! library (mountpoint-s3 has no binary on crates.io). Built outside the repository by
//! scripts/bench/build-mountpoint-s3.sh; nothing here is assetfs code.
//!
//!   mp-mount BUCKET[/PREFIX] MOUNTPOINT --endpoint-url URL [--region R] [--cache DIR]
//!            [--part-size BYTES] [--max-threads N] [--memory-target BYTES] [--metadata-ttl indefinite|minimal|SECS]
//!
//! Mounts read-only in the foreground until unmounted (fusermount3 -u) or interrupted. The settings
//! are mount-s3's defaults (16 FUSE threads, 8 MiB parts, 10 Gbit/s throughput target, memory target
//! 95% of RAM, 1 MiB disk-cache blocks with the cache bounded by 5% free space), except that metadata
//! is cached indefinitely by default (the benchmark's objects never change; same as
//! `mount-s3 --metadata-ttl indefinite`). Credentials come from the usual AWS_* environment.

use std::time::Duration;

use anyhow::{Context, Result, bail};
use mountpoint_s3_client::config::AddressingStyle;
use mountpoint_s3_client::user_agent::UserAgent;
use mountpoint_s3_fs::data_cache::{CacheLimit, DataCacheConfig, DiskDataCacheConfig, ManagedCacheDir};
use mountpoint_s3_fs::fs::{CacheConfig, TimeToLive};
use mountpoint_s3_fs::fuse::config::{FuseOptions, FuseSessionConfig, MountPoint};
use mountpoint_s3_fs::logging::{LoggingConfig, init_logging};
use mountpoint_s3_fs::memory::{CandidateSize, PagedPool, effective_total_memory};
use mountpoint_s3_fs::s3::S3Path;
use mountpoint_s3_fs::s3::config::{ClientConfig, MemoryLimitSetting, PartConfig, Region, TargetThroughputSetting};
use mountpoint_s3_fs::{MountpointConfig, Runtime, S3FilesystemConfig, Superblock, SuperblockConfig};

struct Args {
    s3_uri: String,
    mountpoint: String,
    endpoint_url: String,
    region: String,
    cache: Option<String>,
    part_size: usize,
    max_threads: usize,
    memory_target: Option<usize>,
    metadata_ttl: TimeToLive,
}

fn parse_args() -> Result<Args> {
    let mut pos = Vec::new();
    let mut a = Args {
        s3_uri: String::new(),
        mountpoint: String::new(),
        endpoint_url: String::new(),
        region: "us-east-1".into(),
        cache: None,
        part_size: 8 << 20,
        max_threads: 16,
        memory_target: None,
        metadata_ttl: TimeToLive::Indefinite,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut val = || it.next().with_context(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--endpoint-url" => a.endpoint_url = val()?,
            "--region" => a.region = val()?,
            "--cache" => a.cache = Some(val()?),
            "--part-size" => a.part_size = val()?.parse()?,
            "--max-threads" => a.max_threads = val()?.parse()?,
            "--memory-target" => a.memory_target = Some(val()?.parse()?),
            "--metadata-ttl" => {
                a.metadata_ttl = match val()?.as_str() {
                    "indefinite" => TimeToLive::Indefinite,
                    "minimal" => TimeToLive::Minimal,
                    s => TimeToLive::Duration(Duration::from_secs(s.parse()?)),
                }
            }
            s if s.starts_with("--") => bail!("unknown option {s}"),
            _ => pos.push(arg),
        }
    }
    let [uri, mnt] = <[String; 2]>::try_from(pos)
        .map_err(|_| anyhow::anyhow!("usage: mp-mount BUCKET[/PREFIX] MOUNTPOINT --endpoint-url URL [options]"))?;
    if a.endpoint_url.is_empty() {
        bail!("--endpoint-url is required");
    }
    a.s3_uri = uri;
    a.mountpoint = mnt;
    Ok(a)
}

fn main() -> Result<()> {
    let args = parse_args()?;
    let _logging = init_logging(LoggingConfig {
        log_file: None,
        log_to_stdout: true,
        default_filter: "warn,awscrt=off".into(),
    })?;

    // mount-s3 takes BUCKET and --prefix P/; a prefix must end in '/'.
    let uri = match args.s3_uri.trim_end_matches('/').split_once('/') {
        Some((bucket, prefix)) => format!("s3://{bucket}/{prefix}/"),
        None => format!("s3://{}", args.s3_uri.trim_end_matches('/')),
    };
    let s3_path = S3Path::parse_s3_uri(&uri)?;
    let memory = match args.memory_target {
        Some(b) => MemoryLimitSetting::User(b),
        None => MemoryLimitSetting::Default((effective_total_memory() as f64 * 0.95) as usize),
    };
    let client_config = ClientConfig {
        region: Region::new_user_specified(args.region.clone()),
        endpoint_url: Some(args.endpoint_url.clone()),
        addressing_style: AddressingStyle::Path,
        dual_stack: false,
        transfer_acceleration: false,
        auth_config: Default::default(),
        requester_pays: false,
        expected_bucket_owner: None,
        throughput_target: TargetThroughputSetting::Default,
        bind: None,
        part_config: PartConfig::with_part_size(args.part_size).validate(memory)?,
        user_agent: UserAgent::new(Some("assetfs-bench-mp-mount".into())),
        tls_config: None,
    };
    let pool = PagedPool::config()
        .with_candidate_sizes([CandidateSize::new(client_config.part_config.read_size_bytes)])
        .with_memory_limit(memory.bytes())
        .build();
    let client = client_config
        .create_client(pool.clone(), Some(&s3_path))
        .context("creating the S3 client")?;
    let runtime = Runtime::new(client.event_loop_group());

    let fs_config = S3FilesystemConfig {
        cache_config: CacheConfig::new(args.metadata_ttl),
        read_only: true,
        ..Default::default()
    };
    let superblock = Superblock::new(
        client.clone(),
        s3_path,
        SuperblockConfig {
            cache_config: fs_config.cache_config.clone(),
            s3_personality: fs_config.s3_personality,
        },
    );

    let mut managed_dir = None;
    let data_cache = match &args.cache {
        None => DataCacheConfig::default(),
        Some(dir) => {
            let managed = ManagedCacheDir::new_from_parent_with_cache_key(dir, None, true)?;
            let cache_directory = managed.as_path_buf();
            managed_dir = Some(managed);
            DataCacheConfig {
                disk_cache_config: Some(DiskDataCacheConfig {
                    cache_directory,
                    block_size: 1 << 20,
                    limit: CacheLimit::default(),
                }),
                express_cache_config: None,
            }
        }
    };
    let fuse = FuseSessionConfig::new(
        MountPoint::new(&args.mountpoint)?,
        FuseOptions {
            read_only: true,
            auto_unmount: false,
            allow_root: false,
            allow_other: false,
            clone_fd: false,
        },
        args.max_threads,
    )?;
    let mut session =
        MountpointConfig::new(fuse, fs_config, data_cache)?.create_fuse_session(superblock, client, runtime, pool)?;
    if let Some(dir) = managed_dir {
        session.run_on_close(Box::new(move || drop(dir)));
    }
    session.join()
}
