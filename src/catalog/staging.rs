//! `<name>@staging`: a writable working copy of an asset on local disk.
//!
//! The tree lives in SQLite (one row per node: parent, name, kind, mode,
//! size, symlink target, and where the content is), so every metadata
//! operation is one transaction and survives a crash of the daemon. Content
//! is copy-on-write: a file unchanged since the base version points at its
//! base manifest entry and is served from the cache and store; the first
//! write copies it up into `data/<node id>`. Commit hashes only the copied-up
//! files; unchanged files are committed with their existing chunk lists.
//!
//! Semantics follow a local POSIX filesystem (see the reference-model test):
//! create/mkdir fail with EEXIST, unlink of a directory with EISDIR, rmdir of
//! a non-empty directory with ENOTEMPTY, rename replaces a file or an empty
//! directory and refuses to move a directory into itself (EINVAL). Hard links
//! are not supported (EPERM). A file removed (unlink, or replaced by
//! rename) while this process has it open stays readable and writable
//! through its open handles, as on a local disk, until the last one closes.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use rusqlite::{params, Connection, OptionalExtension};

use crate::catalog::versions::{Catalog, CatalogError, VersionRecord};
use crate::format::AssetId;
use crate::format::TreeItem;
use crate::format::{EntryKind, Manifest};

pub const ROOT: u64 = 1;

#[derive(Debug, thiserror::Error)]
pub enum StagingError {
    #[error("no such file or directory")]
    NotFound,
    #[error("file exists")]
    Exists,
    #[error("not a directory")]
    NotDir,
    #[error("is a directory")]
    IsDir,
    #[error("directory not empty")]
    NotEmpty,
    #[error("invalid argument: {0}")]
    Invalid(&'static str),
    #[error("no space left on device")]
    NoSpace,
    #[error("staging I/O: {0}")]
    Io(std::io::Error),
    #[error("staging index: {0}")]
    Db(#[from] rusqlite::Error),
}

impl crate::store::ToErrno for StagingError {
    fn errno(&self) -> libc::c_int {
        match self {
            StagingError::NotFound => libc::ENOENT,
            StagingError::Exists => libc::EEXIST,
            StagingError::NotDir => libc::ENOTDIR,
            StagingError::IsDir => libc::EISDIR,
            StagingError::NotEmpty => libc::ENOTEMPTY,
            StagingError::Invalid(_) => libc::EINVAL,
            StagingError::NoSpace => libc::ENOSPC,
            StagingError::Io(e) => e.raw_os_error().unwrap_or(libc::EIO),
            // The index is on the same disk as the data: a full disk is ENOSPC.
            StagingError::Db(rusqlite::Error::SqliteFailure(f, _))
                if f.code == rusqlite::ErrorCode::DiskFull =>
            {
                libc::ENOSPC
            }
            StagingError::Db(_) => libc::EIO,
        }
    }
}

impl From<std::io::Error> for StagingError {
    fn from(e: std::io::Error) -> Self {
        if e.raw_os_error() == Some(libc::ENOSPC) {
            StagingError::NoSpace
        } else {
            StagingError::Io(e)
        }
    }
}

pub type Result<T, E = StagingError> = std::result::Result<T, E>;

/// Why staging could not start from the latest version.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Staging(#[from] StagingError),
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    #[error("{0} has no versions to start staging from")]
    NoVersions(AssetId),
}

impl crate::store::ToErrno for StartError {
    fn errno(&self) -> libc::c_int {
        match self {
            StartError::Staging(e) => e.errno(),
            StartError::Catalog(e) => e.errno(),
            StartError::NoVersions(_) => libc::ENOENT,
        }
    }
}

/// Where versions are looked up when staging starts: the catalog itself
/// (`commit`), or a mount's catalog cache (records and manifests kept on
/// this node).
pub trait VersionLookup {
    fn latest(
        &self,
        asset: &AssetId,
    ) -> impl std::future::Future<Output = Result<Option<u64>, CatalogError>> + Send;
    fn record(
        &self,
        asset: &AssetId,
        v: u64,
    ) -> impl std::future::Future<Output = Result<VersionRecord, CatalogError>> + Send;
    fn manifest(
        &self,
        hash: &str,
    ) -> impl std::future::Future<Output = Result<Arc<Manifest>, CatalogError>> + Send;
}

impl VersionLookup for Catalog {
    async fn latest(&self, asset: &AssetId) -> Result<Option<u64>, CatalogError> {
        Catalog::latest(self, asset).await
    }
    async fn record(&self, asset: &AssetId, v: u64) -> Result<VersionRecord, CatalogError> {
        Catalog::record(self, asset, v).await
    }
    async fn manifest(&self, hash: &str) -> Result<Arc<Manifest>, CatalogError> {
        Ok(Arc::new(Catalog::manifest(self, hash).await?))
    }
}

/// Where a file's bytes are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Content {
    None,
    /// Unchanged since the base version: that manifest's entry index.
    Base(u32),
    /// Copied up or written: `data/<id>`.
    Local,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub id: u64,
    pub parent: u64,
    pub name: String,
    pub kind: EntryKind,
    pub mode: u32,
    pub size: u64,
    pub content: Content,
    pub target: Option<String>,
}

/// One change against the base version.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Change {
    pub path: String,
    /// `added`, `modified` or `deleted`.
    pub change: &'static str,
}

pub struct Staging {
    dir: PathBuf,
    db: Mutex<Connection>,
    /// Open handles per node in this process. A node removed while open
    /// becomes an orphan (parent 0, reachable only through its handles)
    /// until the last handle closes.
    open: Mutex<std::collections::HashMap<u64, u32>>,
    /// Set once this process has recorded a change (see [`has_uncommitted`]).
    dirty_noted: std::sync::atomic::AtomicBool,
    /// Shared while open: `cache clear --staging` never removes it under us.
    _lock: crate::catalog::node_dirs::Lock,
}

fn kind_code(k: EntryKind) -> i64 {
    match k {
        EntryKind::Dir => 0,
        EntryKind::File => 1,
        EntryKind::Symlink => 2,
    }
}

fn kind_of(c: i64) -> EntryKind {
    match c {
        0 => EntryKind::Dir,
        2 => EntryKind::Symlink,
        _ => EntryKind::File,
    }
}

const NODE_COLS: &str = "id, parent, name, kind, mode, size, base, local, target";

fn row_node(r: &rusqlite::Row<'_>) -> rusqlite::Result<Node> {
    let base: Option<i64> = r.get(6)?;
    let local: bool = r.get(7)?;
    Ok(Node {
        id: r.get::<_, i64>(0)? as u64,
        parent: r.get::<_, i64>(1)? as u64,
        name: r.get(2)?,
        kind: kind_of(r.get(3)?),
        mode: r.get::<_, i64>(4)? as u32,
        size: r.get::<_, i64>(5)? as u64,
        content: match (local, base) {
            (true, _) => Content::Local,
            (false, Some(b)) => Content::Base(b as u32),
            _ => Content::None,
        },
        target: r.get(8)?,
    })
}

impl Staging {
    /// Opens (creating if needed) the staging area in `dir`.
    pub fn open(dir: &Path) -> Result<Staging> {
        // Owner-only: staged bytes must not be readable by other local users
        // (the mount's permissions decide who reads them through the mount).
        crate::store::private_dir(&dir.join("data"))?;
        crate::store::private_dir(dir)?;
        let lock =
            crate::catalog::node_dirs::use_dir(dir).map_err(|e| StagingError::Io(e.source))?;
        let db = Connection::open(dir.join("staging.sqlite"))?;
        db.busy_timeout(std::time::Duration::from_secs(10))?;
        db.pragma_update(None, "journal_mode", "WAL")?;
        // FULL: a metadata change that returned is on disk.
        db.pragma_update(None, "synchronous", "FULL")?;
        db.execute_batch(
            "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT);
             CREATE TABLE IF NOT EXISTS nodes (
                 id INTEGER PRIMARY KEY AUTOINCREMENT, parent INTEGER NOT NULL, name TEXT NOT NULL,
                 kind INTEGER NOT NULL, mode INTEGER NOT NULL, size INTEGER NOT NULL,
                 base INTEGER, local INTEGER NOT NULL DEFAULT 0, target TEXT);
             CREATE UNIQUE INDEX IF NOT EXISTS nodes_by_name ON nodes(parent, name);
             CREATE TABLE IF NOT EXISTS writers (id INTEGER NOT NULL, pid INTEGER NOT NULL);",
        )?;
        // The mount daemon that registered a writer: once it is gone (killed,
        // crashed), its open files are closed, whether or not the writer lives.
        if db.prepare("SELECT daemon FROM writers LIMIT 0").is_err() {
            let added = db
                .execute_batch("ALTER TABLE writers ADD COLUMN daemon INTEGER NOT NULL DEFAULT 0");
            // Another process may have added it at the same moment.
            if db.prepare("SELECT daemon FROM writers LIMIT 0").is_err() {
                added?;
            }
        }
        Ok(Staging {
            dir: dir.to_path_buf(),
            db: Mutex::new(db),
            open: Mutex::new(Default::default()),
            dirty_noted: Default::default(),
            _lock: lock,
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn db(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.db.lock().expect("staging db lock")
    }

    /// The base version and manifest hash, once initialised.
    pub fn base(&self) -> Result<Option<(Option<u64>, Option<String>)>> {
        let db = self.db();
        let init: Option<String> = db
            .query_row(
                "SELECT value FROM meta WHERE key = 'initialised'",
                [],
                |r| r.get(0),
            )
            .optional()?;
        if init.is_none() {
            return Ok(None);
        }
        let get = |k: &str| -> Result<Option<String>> {
            Ok(db
                .query_row("SELECT value FROM meta WHERE key = ?1", [k], |r| r.get(0))
                .optional()?)
        };
        let v = get("base_version")?.and_then(|v| v.parse().ok());
        Ok(Some((v, get("base_manifest")?)))
    }

    /// Fills the tree from a base version (or empty), unless already done.
    pub fn init(&self, base: Option<(u64, &str, &Manifest)>) -> Result<()> {
        if self.base()?.is_some() {
            return Ok(());
        }
        let mut db = self.db();
        let tx = db.transaction()?;
        tx.execute("DELETE FROM nodes", [])?;
        Self::fill(&tx, base)?;
        tx.commit()?;
        Ok(())
    }

    /// Inserts the root, the base version's entries and the base metadata.
    fn fill(tx: &rusqlite::Transaction<'_>, base: Option<(u64, &str, &Manifest)>) -> Result<()> {
        tx.execute(
            "INSERT INTO nodes (id, parent, name, kind, mode, size) VALUES (?1, 0, '', 0, ?2, 0)",
            params![ROOT as i64, 0o755],
        )?;
        if let Some((v, hash, m)) = base {
            // Entries are sorted, so a parent is always inserted before its children.
            let mut ids: std::collections::HashMap<&str, i64> = std::collections::HashMap::new();
            let mut st = tx.prepare(
                "INSERT INTO nodes (parent, name, kind, mode, size, base, target) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?;
            for (i, e) in m.entries().enumerate() {
                let (parent, name) = match e.path.rsplit_once('/') {
                    Some((p, n)) => (*ids.get(p).unwrap_or(&(ROOT as i64)), n),
                    None => (ROOT as i64, e.path),
                };
                let base = (e.kind == EntryKind::File).then_some(i as i64);
                st.execute(params![
                    parent,
                    name,
                    kind_code(e.kind),
                    e.mode as i64,
                    e.size as i64,
                    base,
                    e.target
                ])?;
                if e.kind == EntryKind::Dir {
                    ids.insert(e.path, tx.last_insert_rowid());
                }
            }
            drop(st);
            tx.execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES ('base_version', ?1), ('base_manifest', ?2)",
                params![v.to_string(), hash],
            )?;
        }
        // 'tracked': changes from here on are recorded as 'dirty'.
        tx.execute(
            "INSERT OR REPLACE INTO meta (key, value) VALUES ('initialised', '1'), ('tracked', '1')",
            [],
        )?;
        Ok(())
    }

    /// Starts this area from the asset's latest version, found through `v`
    /// (the catalog, or a mount's catalog cache). An asset without versions
    /// starts empty when `create`, else nothing is done and the answer is
    /// [`StartError::NoVersions`]. Returns the base manifest, if any.
    /// Callers check [`Staging::base`] first: an area already started is
    /// left as it is.
    pub async fn start_from_latest(
        &self,
        v: &impl VersionLookup,
        asset: &AssetId,
        create: bool,
    ) -> std::result::Result<Option<Arc<Manifest>>, StartError> {
        match v.latest(asset).await? {
            Some(version) => {
                let rec = v.record(asset, version).await?;
                let m = v.manifest(&rec.manifest).await?;
                self.init(Some((version, &rec.manifest, &m)))?;
                Ok(Some(m))
            }
            None if create => {
                self.init(None)?;
                Ok(None)
            }
            None => Err(StartError::NoVersions(asset.clone())),
        }
    }

    /// Forgets everything: the next `init` starts from a new base.
    pub fn reset(&self) -> Result<()> {
        self.replace(None)
    }

    /// Makes staging a clean view of a new base version (after a commit), in
    /// one transaction: a crash leaves either the old tree or the new one.
    pub fn rebase(&self, v: u64, hash: &str, m: &Manifest) -> Result<()> {
        self.replace(Some((v, hash, m)))
    }

    fn replace(&self, base: Option<(u64, &str, &Manifest)>) -> Result<()> {
        {
            let mut db = self.db();
            let tx = db.transaction()?;
            // AUTOINCREMENT ids are never reused, so a stale inode cannot alias a new node.
            tx.execute_batch("DELETE FROM nodes; DELETE FROM meta; DELETE FROM writers;")?;
            if base.is_some() {
                Self::fill(&tx, base)?;
            }
            tx.commit()?;
        }
        // Local content of the old tree, now unreferenced: moved aside at
        // once and deleted in the background, because unlinking gigabytes
        // of written data can take most of a second (0.3-0.7 s for 2 GiB on
        // a file system mounted with `discard`) and `commit` would wait for
        // it. A crash before this only leaves unreferenced files, moved
        // aside by the next reset or commit; leftovers in `trash` too.
        let data = self.dir.join("data");
        if data.exists() {
            let trash = self.dir.join("trash");
            crate::store::private_dir(&trash)?;
            let nanos = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default()
                .as_nanos();
            std::fs::rename(&data, trash.join(format!("{}-{nanos}", std::process::id())))?;
            let old: Vec<PathBuf> = std::fs::read_dir(&trash)?
                .flatten()
                .map(|e| e.path())
                .collect();
            crate::store::remove_in_background(old);
        }
        crate::store::private_dir(&data)?;
        Ok(())
    }

    pub fn data_path(&self, id: u64) -> PathBuf {
        self.dir.join("data").join(id.to_string())
    }

    pub fn get(&self, id: u64) -> Result<Node> {
        let db = self.db();
        let n = db
            .query_row(
                &format!("SELECT {NODE_COLS} FROM nodes WHERE id = ?1"),
                [id as i64],
                row_node,
            )
            .optional()?
            .ok_or(StagingError::NotFound)?;
        drop(db);
        Ok(self.with_size(n))
    }

    /// A local file's size is its data file's length: writes then need no
    /// index update (and no fsync of the index) at all.
    fn with_size(&self, mut n: Node) -> Node {
        if n.content == Content::Local {
            if let Ok(md) = std::fs::metadata(self.data_path(n.id)) {
                n.size = md.len();
            }
        }
        n
    }

    pub fn lookup(&self, parent: u64, name: &str) -> Result<Node> {
        let p = self.get(parent)?;
        if p.kind != EntryKind::Dir {
            return Err(StagingError::NotDir);
        }
        let db = self.db();
        let n = db
            .query_row(
                &format!("SELECT {NODE_COLS} FROM nodes WHERE parent = ?1 AND name = ?2"),
                params![parent as i64, name],
                row_node,
            )
            .optional()?
            .ok_or(StagingError::NotFound)?;
        drop(db);
        Ok(self.with_size(n))
    }

    pub fn children(&self, id: u64) -> Result<Vec<Node>> {
        if self.get(id)?.kind != EntryKind::Dir {
            return Err(StagingError::NotDir);
        }
        let db = self.db();
        let mut st = db.prepare_cached(&format!(
            "SELECT {NODE_COLS} FROM nodes WHERE parent = ?1 ORDER BY name"
        ))?;
        let rows: Vec<Node> = st
            .query_map([id as i64], row_node)?
            .collect::<Result<_, _>>()?;
        drop(st);
        drop(db);
        Ok(rows.into_iter().map(|n| self.with_size(n)).collect())
    }

    fn check_name(name: &str) -> Result<()> {
        if name.is_empty() || name == "." || name == ".." || name.contains('/') || name.len() > 255
        {
            return Err(StagingError::Invalid("bad file name"));
        }
        Ok(())
    }

    /// Records (once per process) that staging differs from its base, for
    /// [`has_uncommitted`]. Every change of the tree or of a file's content
    /// passes through a create, copy-up, chmod, rename or removal first.
    fn note_change(&self) -> Result<()> {
        use std::sync::atomic::Ordering;
        if !self.dirty_noted.load(Ordering::Relaxed) {
            self.db().execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES ('dirty', '1')",
                [],
            )?;
            self.dirty_noted.store(true, Ordering::Relaxed);
        }
        Ok(())
    }

    fn insert(
        &self,
        parent: u64,
        name: &str,
        kind: EntryKind,
        mode: u32,
        target: Option<&str>,
    ) -> Result<Node> {
        Self::check_name(name)?;
        match self.lookup(parent, name) {
            Ok(_) => return Err(StagingError::Exists),
            Err(StagingError::NotFound) => {}
            Err(e) => return Err(e),
        }
        self.note_change()?;
        let size = target.map(|t| t.len()).unwrap_or(0) as i64;
        let id = {
            let db = self.db();
            db.execute(
                "INSERT INTO nodes (parent, name, kind, mode, size, local, target) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    parent as i64,
                    name,
                    kind_code(kind),
                    (mode & 0o7777) as i64,
                    size,
                    kind == EntryKind::File,
                    target
                ],
            )?;
            db.last_insert_rowid() as u64
        };
        if kind == EntryKind::File {
            crate::store::create_private(&self.data_path(id))?;
        }
        self.get(id)
    }

    pub fn create(&self, parent: u64, name: &str, mode: u32) -> Result<Node> {
        self.insert(parent, name, EntryKind::File, mode, None)
    }

    pub fn mkdir(&self, parent: u64, name: &str, mode: u32) -> Result<Node> {
        self.insert(parent, name, EntryKind::Dir, mode, None)
    }

    pub fn symlink(&self, parent: u64, name: &str, target: &str) -> Result<Node> {
        if target.is_empty() || target.contains('\0') {
            return Err(StagingError::Invalid("bad symlink target"));
        }
        self.insert(parent, name, EntryKind::Symlink, 0o777, Some(target))
    }

    fn open_handles(&self) -> std::sync::MutexGuard<'_, std::collections::HashMap<u64, u32>> {
        self.open.lock().expect("staging open handles lock")
    }

    /// Records a handle opened on node `id` by this process.
    pub fn opened(&self, id: u64) {
        *self.open_handles().entry(id).or_default() += 1;
    }

    /// Records that a handle on `id` was closed; the last close of a removed
    /// node deletes it.
    pub fn closed(&self, id: u64) -> Result<()> {
        let mut open = self.open_handles();
        match open.get_mut(&id) {
            Some(c) if *c > 1 => *c -= 1,
            Some(_) => {
                open.remove(&id);
                match self.get(id) {
                    Ok(n) if n.parent == 0 && n.id != ROOT => self.delete_node(&n)?,
                    _ => {}
                }
            }
            None => {}
        }
        Ok(())
    }

    fn delete_node(&self, n: &Node) -> Result<()> {
        let delete = || {
            self.db()
                .execute("DELETE FROM nodes WHERE id = ?1", [n.id as i64])
        };
        match delete() {
            // On a full disk the index cannot record the removal; free the
            // file's own space first (the caller is deleting it anyway).
            Err(rusqlite::Error::SqliteFailure(f, _))
                if f.code == rusqlite::ErrorCode::DiskFull && n.content == Content::Local =>
            {
                OpenOptions::new()
                    .write(true)
                    .open(self.data_path(n.id))?
                    .set_len(0)?;
                delete()?;
            }
            r => {
                r?;
            }
        }
        if n.content == Content::Local {
            let _ = std::fs::remove_file(self.data_path(n.id));
        }
        Ok(())
    }

    /// The SQL that removes node `?1` from the tree: deletes it, or orphans it
    /// while this process has it open. Call with the open-handles lock held.
    fn removal_sql(open: &std::collections::HashMap<u64, u32>, id: u64) -> &'static str {
        if open.contains_key(&id) {
            "UPDATE nodes SET parent = 0, name = '.removed-' || id WHERE id = ?1"
        } else {
            "DELETE FROM nodes WHERE id = ?1"
        }
    }

    fn remove_node(&self, n: &Node) -> Result<()> {
        self.note_change()?;
        let open = self.open_handles();
        if open.contains_key(&n.id) {
            self.db()
                .execute(Self::removal_sql(&open, n.id), [n.id as i64])?;
            Ok(())
        } else {
            self.delete_node(n)
        }
    }

    pub fn unlink(&self, parent: u64, name: &str) -> Result<()> {
        let n = self.lookup(parent, name)?;
        if n.kind == EntryKind::Dir {
            return Err(StagingError::IsDir);
        }
        self.remove_node(&n)
    }

    pub fn rmdir(&self, parent: u64, name: &str) -> Result<()> {
        let n = self.lookup(parent, name)?;
        if n.kind != EntryKind::Dir {
            return Err(StagingError::NotDir);
        }
        if !self.children(n.id)?.is_empty() {
            return Err(StagingError::NotEmpty);
        }
        self.remove_node(&n)
    }

    fn is_ancestor(&self, anc: u64, mut id: u64) -> Result<bool> {
        while id != 0 {
            if id == anc {
                return Ok(true);
            }
            id = self.get(id)?.parent;
        }
        Ok(false)
    }

    /// POSIX rename(2) within the staging tree.
    pub fn rename(&self, parent: u64, name: &str, newparent: u64, newname: &str) -> Result<()> {
        Self::check_name(newname)?;
        self.note_change()?;
        let src = self.lookup(parent, name)?;
        let np = self.get(newparent)?;
        if np.kind != EntryKind::Dir {
            return Err(StagingError::NotDir);
        }
        if src.kind == EntryKind::Dir && self.is_ancestor(src.id, newparent)? {
            return Err(StagingError::Invalid("cannot move a directory into itself"));
        }
        match self.lookup(newparent, newname) {
            Ok(dst) if dst.id == src.id => Ok(()),
            // Replacing an ancestor of the source: the kernel says ENOTEMPTY.
            Ok(dst) if dst.kind == EntryKind::Dir && self.is_ancestor(dst.id, src.parent)? => {
                Err(StagingError::NotEmpty)
            }
            Ok(dst) => {
                match (src.kind == EntryKind::Dir, dst.kind == EntryKind::Dir) {
                    (true, false) => return Err(StagingError::NotDir),
                    (false, true) => return Err(StagingError::IsDir),
                    (true, true) if !self.children(dst.id)?.is_empty() => {
                        return Err(StagingError::NotEmpty)
                    }
                    _ => {}
                }
                let open = self.open_handles();
                let mut db = self.db();
                let tx = db.transaction()?;
                tx.execute(Self::removal_sql(&open, dst.id), [dst.id as i64])?;
                tx.execute(
                    "UPDATE nodes SET parent = ?1, name = ?2 WHERE id = ?3",
                    params![newparent as i64, newname, src.id as i64],
                )?;
                tx.commit()?;
                drop(db);
                if dst.content == Content::Local && !open.contains_key(&dst.id) {
                    let _ = std::fs::remove_file(self.data_path(dst.id));
                }
                Ok(())
            }
            Err(StagingError::NotFound) => {
                self.db().execute(
                    "UPDATE nodes SET parent = ?1, name = ?2 WHERE id = ?3",
                    params![newparent as i64, newname, src.id as i64],
                )?;
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    pub fn chmod(&self, id: u64, mode: u32) -> Result<Node> {
        self.note_change()?;
        self.db().execute(
            "UPDATE nodes SET mode = ?1 WHERE id = ?2",
            params![(mode & 0o7777) as i64, id as i64],
        )?;
        self.get(id)
    }

    /// Turns a base file into a local one whose bytes `fill` writes. Must be
    /// called before writing to or truncating a `Content::Base` file.
    pub fn copy_up(&self, id: u64, fill: impl FnOnce(&mut File) -> Result<()>) -> Result<Node> {
        let n = self.get(id)?;
        if n.content == Content::Local {
            return Ok(n);
        }
        self.note_change()?;
        let tmp = self.dir.join("data").join(format!("{id}.copyup"));
        let mut f = crate::store::create_private(&tmp)?;
        fill(&mut f)?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, self.data_path(id))?;
        self.db().execute(
            "UPDATE nodes SET local = 1, base = NULL WHERE id = ?1",
            [id as i64],
        )?;
        self.get(id)
    }

    /// A path where a copy-up can be assembled before [`Staging::adopt_copy`].
    pub fn copy_path(&self, id: u64) -> PathBuf {
        self.dir.join("data").join(format!("{id}.copyup"))
    }

    /// Makes the fully written file at [`Staging::copy_path`] the node's content.
    pub fn adopt_copy(&self, id: u64) -> Result<Node> {
        self.note_change()?;
        let tmp = self.copy_path(id);
        File::open(&tmp)?.sync_all()?;
        std::fs::rename(&tmp, self.data_path(id))?;
        self.db().execute(
            "UPDATE nodes SET local = 1, base = NULL WHERE id = ?1",
            [id as i64],
        )?;
        self.get(id)
    }

    fn local_file(&self, n: &Node) -> Result<File> {
        match n.kind {
            EntryKind::Dir => return Err(StagingError::IsDir),
            EntryKind::Symlink => return Err(StagingError::Invalid("a symlink")),
            EntryKind::File => {}
        }
        if n.content != Content::Local {
            return Err(StagingError::Invalid("copy up before writing"));
        }
        Ok(OpenOptions::new()
            .read(true)
            .write(true)
            .open(self.data_path(n.id))?)
    }

    pub fn truncate(&self, id: u64, size: u64) -> Result<Node> {
        let n = self.get(id)?;
        let f = self.local_file(&n)?;
        f.set_len(size)?;
        self.get(id)
    }

    pub fn write(&self, id: u64, offset: u64, data: &[u8]) -> Result<usize> {
        let n = self.get(id)?;
        write_at(&self.local_file(&n)?, offset, data)
    }

    /// A local file's data file, open for reading and writing (for a handle
    /// that writes it many times).
    pub fn data_file(&self, id: u64) -> Result<File> {
        self.local_file(&self.get(id)?)
    }

    /// Reads a local file's bytes (base files are read through the store).
    pub fn read_local(&self, id: u64, offset: u64, size: usize) -> Result<Vec<u8>> {
        let n = self.get(id)?;
        let f = self.local_file(&n)?;
        let end = (offset + size as u64).min(n.size);
        let mut buf = vec![0u8; end.saturating_sub(offset) as usize];
        let mut done = 0;
        while done < buf.len() {
            let k = f.read_at(&mut buf[done..], offset + done as u64)?;
            if k == 0 {
                break;
            }
            done += k;
        }
        buf.truncate(done);
        Ok(buf)
    }

    pub fn fsync(&self, id: u64) -> Result<()> {
        let n = self.get(id)?;
        if n.content == Content::Local {
            File::open(self.data_path(id))?.sync_all()?;
        }
        Ok(())
    }

    /// Records that process `pid` holds node `id` open for writing through
    /// this process (the mount daemon).
    pub fn add_writer(&self, id: u64, pid: u32) -> Result<()> {
        self.without_fsync(|db| {
            db.execute(
                "INSERT INTO writers (id, pid, daemon) VALUES (?1, ?2, ?3)",
                params![id as i64, pid as i64, std::process::id() as i64],
            )
        })?;
        Ok(())
    }

    pub fn remove_writer(&self, id: u64, pid: u32) -> Result<()> {
        self.without_fsync(|db| {
            db.execute(
                "DELETE FROM writers WHERE rowid IN (SELECT rowid FROM writers WHERE id = ?1 AND pid = ?2 LIMIT 1)",
                params![id as i64, pid as i64],
            )
        })?;
        Ok(())
    }

    /// Runs a change to the writer bookkeeping without waiting for the disk.
    /// It needs no durability (after a crash its daemon is gone, which
    /// closes its writers anyway), and an fsync here would make every open
    /// and close for writing wait for the disk, and a `commit` right after a
    /// `close` (whose RELEASE reaches us asynchronously) see the file open.
    fn without_fsync<T>(
        &self,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T>,
    ) -> rusqlite::Result<T> {
        let db = self.db();
        db.pragma_update(None, "synchronous", "NORMAL")?;
        let r = f(&db);
        // WAL order keeps it before any later (FULL, fsynced) change.
        db.pragma_update(None, "synchronous", "FULL")?;
        r
    }

    /// Paths of files open for writing by live processes through a live daemon.
    pub fn open_writers(&self) -> Result<Vec<String>> {
        let rows: Vec<(i64, i64, i64)> = {
            let db = self.db();
            let mut st = db.prepare("SELECT id, pid, daemon FROM writers")?;
            let r = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
            r.collect::<Result<_, _>>()?
        };
        // SAFETY: kill with signal 0 only checks that the process exists.
        let alive = |pid: i64| pid > 0 && unsafe { libc::kill(pid as i32, 0) } == 0;
        let mut out = vec![];
        for (id, pid, daemon) in rows {
            // daemon 0: registered before daemons were recorded.
            if !alive(pid) || (daemon != 0 && !alive(daemon)) {
                continue;
            }
            if let Ok(p) = self.path_of(id as u64) {
                out.push(p);
            }
        }
        out.sort();
        out.dedup();
        Ok(out)
    }

    /// The path of a node relative to the staging root.
    pub fn path_of(&self, mut id: u64) -> Result<String> {
        let mut parts = vec![];
        while id != ROOT {
            let n = self.get(id)?;
            parts.push(n.name);
            id = n.parent;
        }
        parts.reverse();
        Ok(parts.join("/"))
    }

    /// Every node with its path, parents before children, sorted by path.
    pub fn walk(&self) -> Result<Vec<(String, Node)>> {
        let mut out = vec![];
        let mut stack = vec![(String::new(), ROOT)];
        while let Some((prefix, id)) = stack.pop() {
            for c in self.children(id)? {
                let path = if prefix.is_empty() {
                    c.name.clone()
                } else {
                    format!("{prefix}/{}", c.name)
                };
                if c.kind == EntryKind::Dir {
                    stack.push((path.clone(), c.id));
                }
                out.push((path, c));
            }
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }

    /// Paths of files still unchanged since the base version (their bytes
    /// live in the store, not here).
    pub fn base_files(&self) -> Result<Vec<String>> {
        Ok(self
            .walk()?
            .into_iter()
            .filter(|(_, n)| matches!(n.content, Content::Base(_)))
            .map(|(p, _)| p)
            .collect())
    }

    /// The tree to commit: unchanged files keep their base chunks.
    pub fn items(&self, base: Option<&Manifest>) -> Result<Vec<TreeItem>> {
        let mut items = vec![];
        for (path, n) in self.walk()? {
            items.push(match (n.kind, n.content) {
                (EntryKind::Dir, _) => TreeItem::Dir { path, mode: n.mode },
                (EntryKind::Symlink, _) => TreeItem::Symlink {
                    path,
                    target: n.target.unwrap_or_default(),
                },
                (EntryKind::File, Content::Base(i)) => {
                    let m = base.ok_or(StagingError::Invalid("base manifest missing"))?;
                    let e = m.entry(i as usize);
                    let chunks = m
                        .chunks_of(&e)
                        .iter()
                        .map(|c| {
                            (
                                c.hash,
                                crate::format::ChunkLocation {
                                    pack: m.packs[c.pack as usize],
                                    offset: c.offset,
                                    len: c.len,
                                },
                            )
                        })
                        .collect();
                    TreeItem::Stored {
                        path,
                        mode: n.mode,
                        size: e.size,
                        hash: e.hash,
                        chunks,
                    }
                }
                (EntryKind::File, _) => TreeItem::Local {
                    path,
                    mode: n.mode,
                    file: self.data_path(n.id),
                    size: n.size,
                },
            });
        }
        Ok(items)
    }

    /// What changed against the base manifest.
    pub fn status(&self, base: Option<&Manifest>) -> Result<Vec<Change>> {
        let now = self.walk()?;
        let mut out = vec![];
        let mut seen = std::collections::HashSet::new();
        for (path, n) in &now {
            let old = base.and_then(|m| m.get(path));
            seen.insert(path.clone());
            let change = match old {
                None => Some("added"),
                Some(e)
                    if e.kind != n.kind || e.mode != n.mode || e.target != n.target.as_deref() =>
                {
                    Some("modified")
                }
                Some(_) if n.kind == EntryKind::File && n.content == Content::Local => {
                    Some("modified")
                }
                Some(_) => None,
            };
            if let Some(change) = change {
                out.push(Change {
                    path: path.clone(),
                    change,
                });
            }
        }
        if let Some(m) = base {
            for e in m.entries() {
                if !seen.contains(e.path) {
                    out.push(Change {
                        path: e.path.to_string(),
                        change: "deleted",
                    });
                }
            }
        }
        out.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(out)
    }
}

/// Where the staging area of an asset lives: under the data dir, keyed by
/// store so two stores never share a working copy. Records the store as
/// used (see `crate::catalog::node_dirs`).
pub fn staging_dir(data_home: &Path, store_url: &str, asset: &crate::format::AssetId) -> PathBuf {
    let root = crate::catalog::node_dirs::staging_root(data_home, store_url);
    crate::catalog::node_dirs::note_use(&root, store_url);
    root.join(asset.kind.as_str()).join(asset.name.as_str())
}

/// Whether the staging area in `dir` may hold changes not committed: it is
/// initialised and a change was recorded since its base, or it predates
/// change tracking (then nobody can tell, so yes).
pub fn has_uncommitted(dir: &Path) -> bool {
    let db = dir.join("staging.sqlite");
    if !db.exists() {
        return false;
    }
    let Ok(c) = Connection::open_with_flags(&db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY) else {
        return true;
    };
    let _ = c.busy_timeout(std::time::Duration::from_secs(5));
    let has = |k: &str| -> Option<bool> {
        c.query_row("SELECT 1 FROM meta WHERE key = ?1", [k], |_| Ok(()))
            .optional()
            .ok()
            .map(|r| r.is_some())
    };
    !matches!(
        (has("initialised"), has("tracked"), has("dirty")),
        (Some(false), _, _) | (Some(true), Some(true), Some(false))
    )
}

/// The staging area of `asset` for `store` under `data_home`, keyed by the
/// store's identity ([`crate::store::Store::id`]), so that `/data/s` and
/// `file:///data/s/` find the same area. An area made before identities
/// (keyed by the URL as spelled) is moved into place.
pub fn locate(
    data_home: &Path,
    store: &crate::store::Store,
    asset: &crate::format::AssetId,
) -> PathBuf {
    let dir = staging_dir(data_home, &store.id(), asset);
    if !dir.exists() {
        let legacy = staging_dir(data_home, store.url(), asset);
        if legacy != dir && legacy.exists() {
            if let Some(p) = dir.parent() {
                let _ = crate::store::private_dir(p);
            }
            let _ = std::fs::rename(&legacy, &dir);
        }
    }
    dir
}

/// The file beside a store's staging areas that names the store, so that
/// hints can say which store an area belongs to.
pub fn label_path(data_home: &Path, store_id: &str) -> PathBuf {
    let tag = blake3::hash(store_id.as_bytes()).to_hex();
    data_home
        .join("assetfs")
        .join("staging")
        .join(&tag[..16])
        .join("store.txt")
}

/// Writes the label of a store's staging areas if missing (best effort).
pub fn write_label(data_home: &Path, store: &crate::store::Store) {
    let p = label_path(data_home, &store.id());
    if !p.exists() {
        if let Some(d) = p.parent() {
            let _ = crate::store::private_dir(d);
        }
        let _ = std::fs::write(&p, format!("{}\n", store.url()));
    }
}

/// Writes `data` at `offset` of a local data file. Like a local disk (e.g.
/// when it fills up), a write that fails part-way reports the bytes it did
/// write.
pub fn write_at(f: &File, offset: u64, data: &[u8]) -> Result<usize> {
    let mut done = 0;
    while done < data.len() {
        match f.write_at(&data[done..], offset + done as u64) {
            Ok(0) => return Err(std::io::Error::from(std::io::ErrorKind::WriteZero).into()),
            Ok(k) => done += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) if done > 0 => break,
            Err(e) => return Err(e.into()),
        }
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    /// A reset (as a commit's rebase) leaves `data` empty at once; the old
    /// content, and leftovers of an earlier crash, are deleted soon after.
    #[test]
    fn old_data_is_moved_aside_and_deleted_in_the_background() {
        let d = tempfile::tempdir().unwrap();
        let st = Staging::open(d.path()).unwrap();
        std::fs::write(d.path().join("data/7"), vec![1u8; 1 << 20]).unwrap();
        std::fs::create_dir_all(d.path().join("trash/1-2/sub")).unwrap();
        st.reset().unwrap();
        assert_eq!(std::fs::read_dir(d.path().join("data")).unwrap().count(), 0);
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::fs::read_dir(d.path().join("trash")).unwrap().count() > 0 {
            assert!(Instant::now() < deadline, "trash not emptied within 10 s");
            std::thread::sleep(Duration::from_millis(20));
        }
        // Staging works on.
        std::fs::write(st.data_path(8), b"x").unwrap();
        st.reset().unwrap();
        assert!(!st.data_path(8).exists());
    }
}
