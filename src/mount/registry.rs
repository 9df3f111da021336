//! This node's live mounts: the kernel's mount table joined with one record
//! file per mount daemon, so that `assetfs mounts` can list them and
//! `assetfs unmount` can wait until a mount's daemon has exited.
//!
//! Records live in `/run/assetfs/mounts` for root and in
//! `$XDG_RUNTIME_DIR/assetfs/mounts` (else `/tmp/assetfs-<uid>/mounts`) for
//! other users. A record is named after its mount point and daemon pid, so an
//! exiting daemon never removes the record of a newer mount at the same path.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// What a mount daemon writes about itself once its mount is live.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct MountRecord {
    pub mountpoint: PathBuf,
    pub store: String,
    pub cache_dir: PathBuf,
    /// Where this mount keeps `@staging` areas (`None`: a read-only mount).
    pub staging_home: Option<PathBuf>,
    pub pid: u32,
    /// The daemon's start time in clock ticks since boot (`/proc/PID/stat`),
    /// so that a reused pid is not taken for the daemon.
    pub pid_start: u64,
    /// `major:minor` of the mount, from the mount table.
    pub dev: String,
    pub uid: u32,
    /// Seconds since the Unix epoch.
    pub started: u64,
    pub log: PathBuf,
    /// The asset or version shown at the root, for `--only` mounts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub only: Option<String>,
}

/// One entry of the kernel's mount table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableEntry {
    pub mountpoint: PathBuf,
    /// `major:minor`.
    pub dev: String,
    pub fstype: String,
    pub source: String,
}

impl TableEntry {
    /// Mounted by assetfs (directly, through fusermount3 or mount.fuse3).
    pub fn is_assetfs(&self) -> bool {
        self.fstype.starts_with("fuse") && self.source.starts_with("assetfs")
            || self.fstype == "fuse.assetfs"
    }
}

/// Decodes a path as `/proc/self/mountinfo` writes it.
pub fn unescape_mountinfo(s: &str) -> String {
    // The kernel writes space, tab, newline and backslash as \ooo octal.
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 4 <= b.len() {
            let oct = std::str::from_utf8(&b[i + 1..i + 4]).unwrap_or("x");
            if let Ok(n) = u8::from_str_radix(oct, 8) {
                out.push(n);
                i += 4;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Parses `/proc/self/mountinfo` text.
pub fn parse_mountinfo(text: &str) -> Vec<TableEntry> {
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            let sep = f.iter().position(|x| *x == "-")?;
            Some(TableEntry {
                mountpoint: PathBuf::from(unescape_mountinfo(f.get(4)?)),
                dev: f.get(2)?.to_string(),
                fstype: f.get(sep + 1)?.to_string(),
                source: unescape_mountinfo(f.get(sep + 2)?),
            })
        })
        .collect()
}

/// The mount table, in mount order (a later entry at one path covers an earlier one).
pub fn mount_table() -> Vec<TableEntry> {
    parse_mountinfo(&std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default())
}

/// The visible (topmost) mount at `p`, if `p` is a mount point.
pub fn mount_at(p: &Path) -> Option<TableEntry> {
    mount_table().into_iter().rev().find(|e| e.mountpoint == p)
}

fn uid() -> u32 {
    // SAFETY: getuid has no preconditions.
    unsafe { libc::getuid() }
}

/// Where this user's mount daemons write their records.
pub fn own_dir() -> PathBuf {
    if uid() == 0 {
        return PathBuf::from("/run/assetfs/mounts");
    }
    match std::env::var_os("XDG_RUNTIME_DIR").filter(|v| !v.is_empty()) {
        Some(d) => PathBuf::from(d).join("assetfs/mounts"),
        None => PathBuf::from(format!("/tmp/assetfs-{}/mounts", uid())),
    }
}

/// Every record directory this user can look at: their own, root's, and as
/// root every user's runtime directory.
fn read_dirs() -> Vec<PathBuf> {
    let mut dirs = vec![own_dir(), PathBuf::from("/run/assetfs/mounts")];
    if uid() == 0 {
        if let Ok(rd) = std::fs::read_dir("/run/user") {
            dirs.extend(rd.flatten().map(|e| e.path().join("assetfs/mounts")));
        }
        if let Ok(rd) = std::fs::read_dir("/tmp") {
            dirs.extend(
                rd.flatten()
                    .filter(|e| e.file_name().to_string_lossy().starts_with("assetfs-"))
                    .map(|e| e.path().join("mounts")),
            );
        }
    }
    dirs.sort();
    dirs.dedup();
    dirs
}

fn record_name(mountpoint: &Path, pid: u32) -> String {
    let tag = blake3::hash(mountpoint.as_os_str().as_encoded_bytes()).to_hex();
    format!("{}-{pid}.json", &tag[..16])
}

/// The start time of a running process (clock ticks since boot); `None`
/// once it has exited (a zombie waiting to be reaped counts as exited).
pub fn process_start(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses: fields follow the last ')'.
    let mut rest = stat[stat.rfind(')')? + 1..].split_whitespace();
    // `rest` starts at field 3 (the state); the start time is field 22.
    if matches!(rest.next()?, "Z" | "X") {
        return None;
    }
    rest.nth(18)?.parse().ok()
}

impl MountRecord {
    /// A record for this process's mount at `mountpoint`, whose table entry has `dev`.
    pub fn for_this_process(
        mountpoint: &Path,
        dev: &str,
        store: &str,
        cache_dir: &Path,
        staging_home: Option<PathBuf>,
        log: &Path,
        only: Option<String>,
    ) -> MountRecord {
        let pid = std::process::id();
        MountRecord {
            mountpoint: mountpoint.to_path_buf(),
            store: store.to_string(),
            cache_dir: cache_dir.to_path_buf(),
            staging_home,
            pid,
            pid_start: process_start(pid).unwrap_or(0),
            dev: dev.to_string(),
            uid: uid(),
            started: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
            log: log.to_path_buf(),
            only,
        }
    }

    /// Is the daemon that wrote this record still running?
    pub fn daemon_alive(&self) -> bool {
        process_start(self.pid).is_some_and(|s| s == self.pid_start)
    }

    fn path(&self) -> PathBuf {
        own_dir().join(record_name(&self.mountpoint, self.pid))
    }

    /// Writes the record (readable by every local user, like the mount table).
    pub fn write(&self) -> std::io::Result<PathBuf> {
        use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
        let dir = own_dir();
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(&dir)?;
        let p = self.path();
        crate::store::write_atomic(
            &p,
            &serde_json::to_vec_pretty(self).expect("record serialises"),
        )?;
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644))?;
        Ok(p)
    }

    /// Removes this record (never another daemon's).
    pub fn remove(&self) {
        let _ = std::fs::remove_file(self.path());
    }
}

/// Every record this user can read, paired with the file it came from.
fn all_records() -> Vec<(PathBuf, MountRecord)> {
    let mut out = vec![];
    for dir in read_dirs() {
        let Ok(rd) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.extension().is_some_and(|x| x == "json") {
                let rec = std::fs::read(&p)
                    .ok()
                    .and_then(|b| serde_json::from_slice::<MountRecord>(&b).ok());
                if let Some(r) = rec {
                    out.push((p, r));
                }
            }
        }
    }
    out
}

/// Deletes records whose daemon is gone and whose mount is no longer in
/// the table (what a killed daemon leaves behind). Best effort.
pub fn prune() {
    let table = mount_table();
    for (p, r) in all_records() {
        let mounted = table
            .iter()
            .any(|e| e.mountpoint == r.mountpoint && e.dev == r.dev);
        if !mounted && !r.daemon_alive() {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// What `assetfs mounts` knows about one assetfs mount of this node.
#[derive(Debug, Clone)]
pub struct NodeMount {
    pub entry: TableEntry,
    /// The daemon's record, when one matches the mount.
    pub record: Option<MountRecord>,
    /// The daemon is gone or the mount answers ENOTCONN.
    pub stale: bool,
}

/// Is the mount at `p` a dead FUSE connection (its daemon gone)?
pub fn answers_enotconn(p: &Path) -> bool {
    // Not `stat`: the kernel may answer that from cached attributes.
    matches!(std::fs::read_dir(p), Err(e) if e.raw_os_error() == Some(libc::ENOTCONN))
}

/// Is the mount at `p` stale: its daemon's record says it is gone, or the
/// mount answers ENOTCONN?
pub fn is_stale(entry: &TableEntry) -> bool {
    record_for(entry).is_some_and(|r| !r.daemon_alive()) || answers_enotconn(&entry.mountpoint)
}

/// The record of the daemon serving the mount `entry`, if any.
pub fn record_for(entry: &TableEntry) -> Option<MountRecord> {
    all_records()
        .into_iter()
        .map(|(_, r)| r)
        .filter(|r| r.mountpoint == entry.mountpoint && r.dev == entry.dev)
        .max_by_key(|r| r.started)
}

/// Every assetfs mount in this node's mount table, with its daemon's record.
pub fn node_mounts() -> Vec<NodeMount> {
    let records = all_records();
    mount_table()
        .into_iter()
        .filter(TableEntry::is_assetfs)
        .map(|entry| {
            let record = records
                .iter()
                .map(|(_, r)| r)
                .filter(|r| r.mountpoint == entry.mountpoint && r.dev == entry.dev)
                .max_by_key(|r| r.started)
                .cloned();
            let dead = record.as_ref().is_some_and(|r| !r.daemon_alive());
            let stale = dead || answers_enotconn(&entry.mountpoint);
            NodeMount {
                entry,
                record,
                stale,
            }
        })
        .collect()
}

/// Waits (bounded) until the process of `record` has exited. True if it has.
pub fn wait_for_exit(record: &MountRecord, bound: Duration) -> bool {
    let deadline = Instant::now() + bound;
    while record.daemon_alive() {
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_parsing() {
        let text = "36 35 98:0 /mnt1 /mnt/parent rw,noatime master:1 - ext3 /dev/root rw,errors=continue\n\
                    700 29 0:77 / /tmp/a\\040b rw,nosuid,nodev,noatime - fuse.assetfs assetfs rw,user_id=0\n\
                    701 29 0:78 / /tmp/c rw - fuse assetfs rw,user_id=0\n";
        let t = parse_mountinfo(text);
        assert_eq!(t.len(), 3);
        assert_eq!(t[1].mountpoint, Path::new("/tmp/a b"));
        assert_eq!(t[1].dev, "0:77");
        assert!(t[1].is_assetfs() && t[2].is_assetfs() && !t[0].is_assetfs());
        assert_eq!(unescape_mountinfo("/plain"), "/plain");
    }

    #[test]
    fn own_process_is_alive_and_a_wrong_start_is_not() {
        let mut r = MountRecord::for_this_process(
            Path::new("/x"),
            "0:1",
            "memory://",
            Path::new("/c"),
            None,
            Path::new("/l"),
            None,
        );
        assert!(r.pid_start > 0);
        assert!(r.daemon_alive());
        r.pid_start += 1;
        assert!(!r.daemon_alive(), "a reused pid is not the daemon");
    }
}

/// One mount as `assetfs mounts` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct MountReport {
    pub mountpoint: PathBuf,
    /// `live`, `stale` (daemon gone) or `unknown` (no record of its daemon).
    pub state: &'static str,
    pub store: Option<String>,
    pub cache_dir: Option<PathBuf>,
    pub pid: Option<u32>,
    pub uid: Option<u32>,
    pub uptime_s: Option<u64>,
    /// Chunk cache hits / (hits + misses), when the cache is readable.
    pub cache_hit_rate: Option<f64>,
    /// Staging areas of this mount with changes against their base.
    pub staging: Vec<StagedArea>,
    pub log: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub only: Option<String>,
    /// What to do about it, for a stale mount.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct StagedArea {
    pub asset: String,
    pub base: Option<u64>,
    pub changes: usize,
}

/// Staging areas under `staging_home` for the store at `store_url` that
/// differ from their base (base manifests come from the mount's cache).
async fn staged_areas(staging_home: &Path, store_url: &str, cache_dir: &Path) -> Vec<StagedArea> {
    use crate::format::{AssetId, AssetName, Kind};
    let mut out = vec![];
    let Ok(store) = crate::store::Store::open(store_url) else {
        return out;
    };
    let meta =
        crate::catalog::CatalogCache::new(crate::catalog::Catalog::new(store.clone()), cache_dir);
    for kind in Kind::ALL {
        let probe = AssetId {
            kind,
            name: AssetName::parse("x").expect("valid name"),
        };
        let dir = crate::catalog::staging_dir(staging_home, &store.id(), &probe);
        let Some(kind_dir) = dir.parent() else {
            continue;
        };
        let Ok(rd) = std::fs::read_dir(kind_dir) else {
            continue;
        };
        let mut names: Vec<AssetName> = rd
            .flatten()
            .filter_map(|e| AssetName::parse(&e.file_name().to_string_lossy()).ok())
            .collect();
        names.sort();
        for name in names {
            let Ok(st) = crate::catalog::Staging::open(&kind_dir.join(name.as_str())) else {
                continue;
            };
            let Ok(Some((base, hash))) = st.base() else {
                continue;
            };
            let manifest = match &hash {
                Some(h) => match meta.manifest(h).await {
                    Ok(m) => Some(m),
                    Err(_) => continue,
                },
                None => None,
            };
            let changes = st.status(manifest.as_deref()).map(|c| c.len()).unwrap_or(0);
            if changes > 0 {
                out.push(StagedArea {
                    asset: AssetId { kind, name }.to_string(),
                    base,
                    changes,
                });
            }
        }
    }
    out
}

/// Describes one mount of this node.
pub async fn report(m: &NodeMount) -> MountReport {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let r = m.record.as_ref();
    let state = match (m.stale, r) {
        (true, _) => "stale",
        (false, Some(_)) => "live",
        (false, None) => "unknown",
    };
    let mut rep = MountReport {
        mountpoint: m.entry.mountpoint.clone(),
        state,
        store: r.map(|r| r.store.clone()),
        cache_dir: r.map(|r| r.cache_dir.clone()),
        pid: r.map(|r| r.pid),
        uid: r.map(|r| r.uid),
        uptime_s: r.map(|r| now.saturating_sub(r.started)),
        cache_hit_rate: None,
        staging: vec![],
        log: r.map(|r| r.log.clone()),
        only: r.and_then(|r| r.only.clone()),
        hint: m.stale.then(|| {
            format!(
                "its daemon is gone; clear it with `assetfs unmount {}`",
                m.entry.mountpoint.display()
            )
        }),
    };
    if let Some(r) = r {
        // Only an existing, readable cache: never create one here.
        if r.cache_dir.join("cache.sqlite").is_file() {
            if let Ok(s) =
                crate::catalog::DiskCache::open(&r.cache_dir, u64::MAX).and_then(|d| d.stats())
            {
                rep.cache_hit_rate = Some(s.hit_rate());
            }
        }
        if let Some(home) = &r.staging_home {
            rep.staging = staged_areas(home, &r.store, &r.cache_dir).await;
        }
    }
    rep
}

/// Where else a user who finds nothing staged for `asset` of `store` under
/// `data_home` should look: staging areas of the asset kept for the same
/// store under other spellings or for other stores, and mounts of this node
/// that keep their staging areas under another user's data directory.
pub fn staging_hints(
    data_home: &Path,
    store: &crate::store::Store,
    asset: &crate::format::AssetId,
) -> Vec<String> {
    let mut hints = vec![];
    let here = crate::catalog::staging_dir(data_home, &store.id(), asset);
    let root = data_home.join("assetfs").join("staging");
    if let Ok(rd) = std::fs::read_dir(&root) {
        for e in rd.flatten() {
            let dir = e.path().join(asset.kind.as_str()).join(asset.name.as_str());
            if dir == here || !dir.join("staging.sqlite").is_file() {
                continue;
            }
            match std::fs::read_to_string(e.path().join("store.txt")) {
                Ok(url) => hints.push(format!(
                    "this node has {asset}@staging for store {} (use --store {0})",
                    url.trim()
                )),
                Err(_) => hints.push(format!(
                    "this node has {asset}@staging for another store in {}",
                    dir.display()
                )),
            }
        }
    }
    for m in node_mounts() {
        let Some(r) = &m.record else { continue };
        let Some(home) = &r.staging_home else {
            continue;
        };
        if home == data_home {
            continue;
        }
        let same = crate::store::Store::open(&r.store).is_ok_and(|s| s.id() == store.id());
        if same {
            hints.push(format!(
                "the mount at {} (pid {}, uid {}) keeps its staging areas under {}: run this as that user, or with XDG_DATA_HOME={}",
                r.mountpoint.display(),
                r.pid,
                r.uid,
                home.join("assetfs/staging").display(),
                home.display()
            ));
        }
    }
    if hints.is_empty() {
        hints.push(format!(
            "staging is made by writing into MNT/{}/{}@staging of a mount of this store",
            asset.kind, asset.name
        ));
    }
    hints
}
