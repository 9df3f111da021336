//! `Vfs` without a mount: browsing, reading, refusals, the manifest cache.

use super::attr::FOREVER;
use super::*;
use crate::catalog::Catalog;
use crate::catalog::DiskCache;
use crate::format::Reference;
use crate::ops::{push, PushOptions};
use crate::store::Store;
use crate::store::ToErrno;

async fn fixture(tmp: &std::path::Path) -> (Vfs, Vec<u8>) {
    fixture_owned(tmp, Ownership::current()).await
}

async fn fixture_owned(tmp: &std::path::Path, owner: Ownership) -> (Vfs, Vec<u8>) {
    let store = Store::open("memory://").unwrap();
    let catalog = Catalog::new(store.clone());
    let src = tmp.join("src");
    std::fs::create_dir_all(src.join("w")).unwrap();
    let big: Vec<u8> = (0..3_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(src.join("w/big.bin"), &big).unwrap();
    std::fs::write(src.join("a.txt"), b"hello").unwrap();
    std::os::unix::fs::symlink("a.txt", src.join("link")).unwrap();
    push(
        &catalog,
        &Reference::parse("models/m").unwrap(),
        &src,
        PushOptions::default(),
    )
    .await
    .unwrap();
    catalog
        .set_alias(&Reference::parse("models/m").unwrap().asset, "prod", 1)
        .await
        .unwrap();
    let disk = Arc::new(DiskCache::open(&tmp.join("cache"), 1 << 30).unwrap());
    let source = ChunkSource::new(store, disk, Duration::from_secs(5));
    let meta = CatalogCache::new(catalog, &tmp.join("cache"));
    let vfs = Vfs::new(
        meta,
        source,
        VfsConfig {
            refresh: Duration::from_secs(30),
            staging_home: None,
            owner,
            only: None,
            manifest_cache: DEFAULT_MANIFEST_CACHE,
        },
    );
    (vfs, big)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browse_read_and_refuse_writes() {
    let tmp = tempfile::TempDir::new().unwrap();
    let (vfs, big) = fixture(tmp.path()).await;
    let models = vfs.lookup(ROOT, "models").await.unwrap();
    let names: Vec<String> = vfs
        .readdir(models.ino, 0, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.name)
        .collect();
    assert_eq!(names, ["m@1", "m@1.json", "m@latest", "m@prod"]);
    let latest = vfs.lookup(models.ino, "m@latest").await.unwrap();
    assert_eq!(latest.kind, FileKind::Symlink);
    assert_eq!(vfs.readlink(latest.ino).await.unwrap(), "m@1");
    assert!(matches!(
        vfs.lookup(models.ino, "m@2").await,
        Err(VfsError::NotFound)
    ));

    // Deep lookup without listing the version first.
    let v1 = vfs.lookup(models.ino, "m@1").await.unwrap();
    let w = vfs.lookup(v1.ino, "w").await.unwrap();
    let f = vfs.lookup(w.ino, "big.bin").await.unwrap();
    assert_eq!(f.size, big.len() as u64);
    assert_eq!(f.ttl, FOREVER);

    let fh = vfs.open(f.ino, libc::O_RDONLY, 1).await.unwrap();
    let mut got = vec![];
    let mut off = 0u64;
    while off < f.size {
        let b = vfs.read(fh, off, 128 * 1024).await.unwrap();
        off += b.len() as u64;
        got.extend_from_slice(&b);
    }
    assert_eq!(got, big);
    let mid = vfs.read(fh, 1_000_000, 4096).await.unwrap();
    assert_eq!(&mid[..], &big[1_000_000..1_004_096]);
    assert!(vfs.read(fh, f.size + 10, 10).await.unwrap().is_empty());
    vfs.release(fh);

    let hash = vfs.getxattr(f.ino, XATTR_BLAKE3).await.unwrap();
    assert_eq!(
        hash,
        crate::format::to_hex(&crate::format::content_hash(&big)).as_bytes()
    );
    assert!(matches!(
        vfs.getxattr(f.ino, "user.other").await,
        Err(VfsError::NoAttr)
    ));
    for other in ["security.selinux", "system.posix_acl_access", "trusted.x"] {
        let e = vfs.getxattr(f.ino, other).await.unwrap_err();
        assert_eq!(e.errno(), libc::EOPNOTSUPP, "{other}");
    }
    for flags in [libc::O_WRONLY, libc::O_RDWR, libc::O_RDONLY | libc::O_TRUNC] {
        assert!(matches!(
            vfs.open(f.ino, flags, 1).await,
            Err(VfsError::ReadOnly)
        ));
    }
    assert_eq!(
        vfs.open(f.ino, libc::O_WRONLY, 1)
            .await
            .unwrap_err()
            .errno(),
        libc::EROFS
    );

    let side = vfs.lookup(models.ino, "m@1.json").await.unwrap();
    let fh = vfs.open(side.ino, libc::O_RDONLY, 1).await.unwrap();
    let json: serde_json::Value =
        serde_json::from_slice(&vfs.read(fh, 0, 1 << 20).await.unwrap()).unwrap();
    assert_eq!(json["version"], 1);
    assert_eq!(json["aliases"], serde_json::json!(["latest", "prod"]));
    let root = vfs.readdir(v1.ino, 0, 100).await.unwrap();
    let names: Vec<&str> = root.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(names, ["a.txt", "link", "w"]);
    let link = vfs.lookup(v1.ino, "link").await.unwrap();
    assert_eq!(vfs.readlink(link.ino).await.unwrap(), "a.txt");
}

/// `--uid/--gid/--file-mode/--dir-mode` shape every attribute the same
/// way, whichever request returns it (LOOKUP, GETATTR, READDIRPLUS).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ownership_applies_to_every_attribute() {
    let tmp = tempfile::TempDir::new().unwrap();
    let owner = Ownership {
        uid: 4242,
        gid: 4343,
        file_mode: Some(0o440),
        dir_mode: Some(0o550),
    };
    let (vfs, _) = fixture_owned(tmp.path(), owner).await;
    let models = vfs.lookup(ROOT, "models").await.unwrap();
    let v1 = vfs.lookup(models.ino, "m@1").await.unwrap();
    let mut seen = vec![];
    for (name, kind, perm, nlink) in [
        ("a.txt", FileKind::File, 0o440, 1),
        ("w", FileKind::Dir, 0o550, 2),
        ("link", FileKind::Symlink, 0o777, 1),
    ] {
        let a = vfs.lookup(v1.ino, name).await.unwrap();
        let g = vfs.getattr(a.ino).await.unwrap();
        for (how, a) in [("lookup", &a), ("getattr", &g)] {
            assert_eq!(a.kind, kind, "{how} {name}");
            assert_eq!(a.perm, perm, "{how} {name}");
            assert_eq!((a.uid, a.gid, a.nlink), (4242, 4343, nlink), "{how} {name}");
        }
        seen.push((name, a.perm));
    }
    let mut listed = vec![];
    vfs.readdir_plus(v1.ino, 0, |name, a| {
        assert_eq!((a.uid, a.gid), (4242, 4343), "readdirplus {name}");
        listed.push((name.to_string(), a.perm));
        false
    })
    .await
    .unwrap();
    listed.sort();
    seen.sort();
    let seen: Vec<(String, u16)> = seen.into_iter().map(|(n, p)| (n.to_string(), p)).collect();
    assert_eq!(listed, seen);
    for (name, a) in [("models", &models), ("m@1", &v1)] {
        assert_eq!((a.perm, a.uid, a.nlink), (0o550, 4242, 2), "{name}");
    }
}

/// Names that are not UTF-8 are not there (ENOENT) and cannot be made
/// (EINVAL); rename flags are refused; committed versions refuse every
/// change with EROFS.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_decided_without_a_mount() {
    use std::os::unix::ffi::OsStrExt;
    let tmp = tempfile::TempDir::new().unwrap();
    let (vfs, _) = fixture(tmp.path()).await;
    let models = vfs.lookup(ROOT, "models").await.unwrap();
    let v1 = vfs.lookup(models.ino, "m@1").await.unwrap();
    let f = vfs.lookup(v1.ino, "a.txt").await.unwrap();
    let bad = std::ffi::OsStr::from_bytes(b"\xff\xfe");
    assert_eq!(
        vfs.lookup(v1.ino, bad).await.unwrap_err().errno(),
        libc::ENOENT
    );
    assert_eq!(
        vfs.unlink(v1.ino, bad).await.unwrap_err().errno(),
        libc::ENOENT
    );
    assert_eq!(
        vfs.mkdir(v1.ino, bad, 0o755).await.unwrap_err().errno(),
        libc::EINVAL
    );
    assert_eq!(
        vfs.rename(v1.ino, "a.txt", v1.ino, "b", libc::RENAME_NOREPLACE)
            .await
            .unwrap_err()
            .errno(),
        libc::EINVAL
    );
    assert_eq!(
        vfs.mkdir(v1.ino, "d", 0o755).await.unwrap_err().errno(),
        libc::EROFS
    );
    assert_eq!(vfs.mknod(v1.ino).errno(), libc::EROFS);
    assert_eq!(vfs.link(f.ino).errno(), libc::EROFS);
    assert_eq!(vfs.setxattr(f.ino).unwrap_err().errno(), libc::EROFS);
    assert_eq!(vfs.fallocate(f.ino).unwrap_err().errno(), libc::EROFS);
    assert_eq!(vfs.page_cache(f.ino), PageCache::Keep);
    assert_eq!(vfs.dir_cache(v1.ino), DirCache::Keep);
    assert_eq!(vfs.dir_cache(models.ino), DirCache::None);
    let side = vfs.lookup(models.ino, "m@1.json").await.unwrap();
    assert_eq!(vfs.page_cache(side.ino), PageCache::Direct);
}

/// Several versions opened one after another under a manifest cache
/// that holds one: the others are evicted, yet an open file keeps
/// reading, and an inode of an evicted version still resolves (its
/// manifest reloaded from this node's catalog cache, with the store
/// down).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manifests_evicted_under_a_small_bound_stay_usable() {
    use std::sync::atomic::Ordering;
    let tmp = tempfile::TempDir::new().unwrap();
    let faulty = crate::store::FaultyStore::new(Arc::new(object_store::memory::InMemory::new()));
    let faults = faulty.faults.clone();
    let store = Store::from_object_store(Arc::new(faulty), "memory://evict");
    let catalog = Catalog::new(store.clone());
    let r = Reference::parse("models/m").unwrap();
    let mut contents = vec![];
    for v in 1..=4u32 {
        let src = tmp.path().join(format!("src{v}"));
        std::fs::create_dir_all(src.join("d")).unwrap();
        for i in 0..200 {
            std::fs::write(src.join(format!("d/f{i:03}")), format!("v{v} file {i}")).unwrap();
        }
        let big: Vec<u8> = (0..2_500_000u32).map(|i| (i * v % 253) as u8).collect();
        std::fs::write(src.join("big.bin"), &big).unwrap();
        push(&catalog, &r, &src, PushOptions::default())
            .await
            .unwrap();
        contents.push(big);
    }
    let disk = Arc::new(DiskCache::open(&tmp.path().join("cache"), 1 << 30).unwrap());
    let source = ChunkSource::new(store, disk, Duration::from_secs(5));
    let meta = CatalogCache::new(catalog, &tmp.path().join("cache"));
    let vfs = Vfs::new(
        meta,
        source,
        VfsConfig {
            refresh: Duration::from_secs(3600),
            staging_home: None,
            owner: Ownership::current(),
            only: None,
            manifest_cache: 1,
        },
    );
    let models = vfs.lookup(ROOT, "models").await.unwrap();
    let read_all = |fh: u64, size: u64| {
        let vfs = &vfs;
        async move {
            let mut got = vec![];
            while (got.len() as u64) < size {
                let b = vfs.read(fh, got.len() as u64, 1 << 20).await.unwrap();
                assert!(!b.is_empty());
                got.extend_from_slice(&b);
            }
            got
        }
    };
    // Version 1's file stays open while the others are used.
    let v1 = vfs.lookup(models.ino, "m@1").await.unwrap();
    let big1 = vfs.lookup(v1.ino, "big.bin").await.unwrap();
    let fh1 = vfs.open(big1.ino, libc::O_RDONLY, 1).await.unwrap();
    let mut inos = vec![];
    for v in 2..=4usize {
        let root = vfs.lookup(models.ino, &format!("m@{v}")).await.unwrap();
        let d = vfs.lookup(root.ino, "d").await.unwrap();
        assert_eq!(vfs.readdir(d.ino, 0, 1000).await.unwrap().len(), 200);
        let f = vfs.lookup(d.ino, "f123").await.unwrap();
        let fh = vfs.open(f.ino, libc::O_RDONLY, 1).await.unwrap();
        assert_eq!(
            &vfs.read(fh, 0, 100).await.unwrap()[..],
            format!("v{v} file 123").as_bytes()
        );
        vfs.release(fh);
        let big = vfs.lookup(root.ino, "big.bin").await.unwrap();
        let fh = vfs.open(big.ino, libc::O_RDONLY, 1).await.unwrap();
        assert!(
            read_all(fh, big.size).await == contents[v - 1],
            "v{v} big.bin"
        );
        vfs.release(fh);
        inos.push((v, root.ino, f.ino, big.ino));
    }
    let (cached, _, evicted) = vfs.manifest_cache_stats();
    assert_eq!(cached, 1, "the bound holds one manifest");
    assert!(evicted >= 3, "{evicted} evictions");
    // The open file of an evicted version reads on.
    assert!(
        read_all(fh1, big1.size).await == contents[0],
        "v1 through its open handle"
    );
    vfs.release(fh1);

    // Store down: evicted versions come back from the node's catalog cache.
    faults.down.store(true, Ordering::Relaxed);
    let before = faults.requests.load(Ordering::Relaxed);
    for (v, root, f, big) in inos {
        let a = vfs.getattr(f).await.unwrap();
        assert_eq!(a.size, format!("v{v} file 123").len() as u64);
        assert_eq!(vfs.getattr(big).await.unwrap().size, 2_500_000);
        let names: Vec<String> = vfs
            .readdir(root, 0, 10)
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.name)
            .collect();
        assert_eq!(names, ["big.bin", "d"]);
        let fh = vfs.open(f, libc::O_RDONLY, 1).await.unwrap();
        // Chunks are in the disk cache from the reads above.
        assert_eq!(
            &vfs.read(fh, 0, 100).await.unwrap()[..],
            format!("v{v} file 123").as_bytes()
        );
        vfs.release(fh);
    }
    assert!(vfs.manifest_cache_stats().2 >= 5);
    assert_eq!(
        faults.requests.load(Ordering::Relaxed),
        before,
        "reloads came from the node's caches, not the store"
    );
    assert!(matches!(
        vfs.getattr((99u64 << 32) | 1).await,
        Err(VfsError::NotFound)
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opening_a_small_cached_file_starts_reading_its_records() {
    let tmp = tempfile::TempDir::new().unwrap();
    let (vfs, _) = fixture(tmp.path()).await;
    let models = vfs.lookup(ROOT, "models").await.unwrap();
    let v1 = vfs.lookup(models.ino, "m@1").await.unwrap();
    let small = vfs.lookup(v1.ino, "a.txt").await.unwrap();
    let w = vfs.lookup(v1.ino, "w").await.unwrap();
    let big = vfs.lookup(w.ino, "big.bin").await.unwrap();
    let advised = || vfs.source().disk().advised();
    // Not cached yet: nothing to start.
    let fh = vfs.open(small.ino, libc::O_RDONLY, 0).await.unwrap();
    assert_eq!(advised(), 0);
    assert_eq!(&vfs.read(fh, 0, 4096).await.unwrap()[..], b"hello");
    vfs.release(fh);
    let fh = vfs.open(big.ino, libc::O_RDONLY, 0).await.unwrap();
    assert_eq!(vfs.read(fh, 0, 4 << 20).await.unwrap().len(), 3_000_000);
    vfs.release(fh);
    vfs.source().flush_writes(Duration::from_secs(10)).await;
    // Cached now: the small file's record is asked for at open, the large
    // file's (past the first readahead window) is left to its readahead.
    let fh = vfs.open(small.ino, libc::O_RDONLY, 0).await.unwrap();
    assert_eq!(advised(), 1);
    assert_eq!(&vfs.read(fh, 0, 4096).await.unwrap()[..], b"hello");
    vfs.release(fh);
    let fh = vfs.open(big.ino, libc::O_RDONLY, 0).await.unwrap();
    assert_eq!(advised(), 1);
    vfs.release(fh);
}
