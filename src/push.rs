//! `push`: commit a local directory as the next version of an asset.
//!
//! Order matters for crash safety: packs, then the chunk index, then the
//! manifest, and only then the version claim. A crash before the claim leaves
//! unreferenced objects (reclaimed by `gc`), never a partial version.

use std::fs::File;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use tokio::runtime::Handle;

use crate::catalog::{Catalog, CatalogError};
use crate::chunker::chunk_stream;
use crate::ids::Hash;
use crate::manifest::{ChunkLocation, ManifestBuilder};
use crate::meta::{MetaError, MetaInput};
use crate::names::{validate_alias, AssetId, NameError, Reference, Selector};
use crate::packer::{ChunkIndex, PackStats, Packer};
use crate::progress::Progress;
use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum PushError {
    #[error("{0}: not a directory")]
    NotADir(PathBuf),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}: only regular files, directories and symlinks can be pushed")]
    Unsupported(PathBuf),
    #[error("{0}: path is not valid UTF-8")]
    NotUtf8(PathBuf),
    #[error("{0}: changed while it was being pushed; nothing was committed, push again")]
    Changed(PathBuf),
    #[error(
        "{0} names a version; push creates the next version, so give the asset only (e.g. {1})"
    )]
    NotBare(Reference, AssetId),
    #[error("input {input}: {source}")]
    Input {
        input: String,
        #[source]
        source: CatalogError,
    },
    #[error(transparent)]
    Name(#[from] NameError),
    #[error(transparent)]
    Meta(#[from] MetaError),
    #[error(transparent)]
    Context(#[from] crate::context::ContextError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Catalog(#[from] CatalogError),
}

#[derive(Debug, Clone, Default)]
pub struct PushOptions {
    pub meta: MetaInput,
    /// Lineage inputs as given; resolved to concrete versions before upload.
    pub inputs: Vec<Reference>,
    pub aliases: Vec<String>,
    pub progress: bool,
    /// Where chunk indexes are cached between runs.
    pub cache_dir: Option<PathBuf>,
    /// The version a staging commit started from (recorded as `base`).
    pub base: Option<u64>,
}

#[derive(Debug, Clone)]
pub struct PushOutcome {
    pub reference: Reference,
    pub version: u64,
    pub manifest: String,
    pub files: u64,
    pub total_bytes: u64,
    pub stats: PackStats,
    /// Version numbers lost to concurrent writers before this one was claimed.
    pub claim_retries: u32,
}

/// Checks that a reference names an asset for a new version (`x` or `x@staging`).
pub fn asset_for_new_version(r: &Reference) -> Result<AssetId, PushError> {
    match r.selector {
        Selector::Latest | Selector::Staging => Ok(r.asset.clone()),
        _ => Err(PushError::NotBare(r.clone(), r.asset.clone())),
    }
}

/// One entry of the tree being committed.
#[derive(Debug, Clone)]
pub enum TreeItem {
    Dir {
        path: String,
        mode: u32,
    },
    Symlink {
        path: String,
        target: String,
    },
    /// A local file, chunked and hashed at commit time.
    Local {
        path: String,
        mode: u32,
        file: PathBuf,
        size: u64,
    },
    /// A file whose chunks the store already has (unchanged since the base
    /// version): committed without reading or hashing it again.
    Stored {
        path: String,
        mode: u32,
        size: u64,
        hash: Hash,
        chunks: Vec<(Hash, ChunkLocation)>,
    },
}

/// `push`: commit a local directory.
pub async fn push(
    catalog: &Catalog,
    target: &Reference,
    dir: &Path,
    opts: PushOptions,
) -> Result<PushOutcome, PushError> {
    asset_for_new_version(target)?;
    let meta_dir = std::fs::metadata(dir).map_err(|source| PushError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    if !meta_dir.is_dir() {
        return Err(PushError::NotADir(dir.to_path_buf()));
    }
    let d = dir.to_path_buf();
    let items = tokio::task::spawn_blocking(move || scan_dir(&d))
        .await
        .expect("scan worker panicked")?;
    commit_tree(catalog, target, items, opts).await
}

/// The one commit implementation, shared by `push` and the mount's `commit`.
pub async fn commit_tree(
    catalog: &Catalog,
    target: &Reference,
    items: Vec<TreeItem>,
    mut opts: PushOptions,
) -> Result<PushOutcome, PushError> {
    let asset = asset_for_new_version(target)?;
    for a in &opts.aliases {
        validate_alias(a)?;
    }
    // Refuse bad metadata now, not after the data has been uploaded.
    opts.meta.validate()?;
    for s in opts.meta.take_file_inputs()? {
        opts.inputs.push(Reference::parse(&s)?);
    }
    for input in &opts.inputs {
        let v = catalog
            .resolve(input)
            .await
            .map_err(|source| PushError::Input {
                input: input.to_string(),
                source,
            })?;
        opts.meta.inputs.push(input.asset.at(v).to_string());
    }
    // Log path, stored tests and (features) schema summary, against the tree.
    crate::context::check_tree(&mut opts.meta, catalog, &asset, &items, opts.base).await?;
    catalog.store().check_conditional_writes().await?;
    let index = ChunkIndex::load(catalog.store(), opts.cache_dir.clone()).await?;

    let store = catalog.store().clone();
    let rt = Handle::current();
    let progress = opts.progress;
    let (builder, files, total, stats) = tokio::task::spawn_blocking(move || {
        let mut packer = Packer::new(store, rt, index);
        let (builder, files, total) = build_tree(items, &mut packer, progress)?;
        let stats = packer.finish()?;
        Ok::<_, PushError>((builder, files, total, stats))
    })
    .await
    .expect("push worker panicked")?;

    let mut meta = opts.meta.build(&asset, files, total)?;
    if let Some(base) = opts.base {
        meta.insert("base".into(), base.into());
    }
    let manifest = builder.finish(serde_json::to_string(&meta).expect("meta serialises"));
    let hash = catalog.put_manifest(&manifest).await?;
    let (version, claim_retries) = catalog.claim_version_counted(&asset, &hash, &meta).await?;
    for a in &opts.aliases {
        catalog.set_alias(&asset, a, version).await?;
    }
    Ok(PushOutcome {
        reference: asset.at(version),
        version,
        manifest: hash,
        files,
        total_bytes: total,
        stats,
        claim_retries,
    })
}

/// Walks `dir` into tree items (no file is read yet).
pub fn scan_dir(dir: &Path) -> Result<Vec<TreeItem>, PushError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| PushError::Io { path, source }
    };
    let mut items = vec![];
    for e in walkdir::WalkDir::new(dir)
        .follow_links(false)
        .sort_by_file_name()
        .min_depth(1)
    {
        let e = e.map_err(|err| {
            let path = err.path().unwrap_or(dir).to_path_buf();
            PushError::Io {
                path,
                source: err.into(),
            }
        })?;
        let rel = e
            .path()
            .strip_prefix(dir)
            .expect("walkdir stays under its root");
        let path = rel
            .to_str()
            .ok_or_else(|| PushError::NotUtf8(e.path().to_path_buf()))?
            .to_string();
        let md = e.path().symlink_metadata().map_err(io(e.path()))?;
        let mode = md.permissions().mode();
        if md.is_dir() {
            items.push(TreeItem::Dir { path, mode });
        } else if md.file_type().is_symlink() {
            let target = std::fs::read_link(e.path()).map_err(io(e.path()))?;
            let target = target
                .to_str()
                .ok_or_else(|| PushError::NotUtf8(e.path().to_path_buf()))?
                .to_string();
            items.push(TreeItem::Symlink { path, target });
        } else if md.is_file() {
            items.push(TreeItem::Local {
                path,
                mode,
                file: e.into_path(),
                size: md.len(),
            });
        } else {
            return Err(PushError::Unsupported(e.path().to_path_buf()));
        }
    }
    Ok(items)
}

/// Chunks every local file into the packer and returns the manifest builder
/// with the file count and byte total.
fn build_tree(
    items: Vec<TreeItem>,
    packer: &mut Packer,
    progress: bool,
) -> Result<(ManifestBuilder, u64, u64), PushError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| PushError::Io { path, source }
    };
    let local: u64 = items
        .iter()
        .map(|i| match i {
            TreeItem::Local { size, .. } => *size,
            _ => 0,
        })
        .sum();
    let bar = Progress::bytes(local, "push", progress);
    let mut builder = ManifestBuilder::default();
    let (mut files, mut total) = (0u64, 0u64);
    for item in items {
        match item {
            TreeItem::Dir { path, mode } => builder.add_dir(&path, mode),
            TreeItem::Symlink { path, target } => builder.add_symlink(&path, &target),
            TreeItem::Stored {
                path,
                mode,
                size,
                hash,
                chunks,
            } => {
                builder.add_file(&path, mode, size, hash, &chunks);
                files += 1;
                total += size;
            }
            TreeItem::Local {
                path,
                mode,
                file,
                size: expected,
            } => {
                let f = File::open(&file).map_err(io(&file))?;
                let mut chunks: Vec<(Hash, ChunkLocation)> = vec![];
                let (hash, size) = chunk_stream(f, |c| {
                    bar.inc(c.data.len() as u64);
                    let loc = packer.add(c.hash, &c.data)?;
                    chunks.push((c.hash, loc));
                    Ok::<_, PushError>(())
                })
                .map_err(|e| match e {
                    PushError::Io { source, .. } => PushError::Io {
                        path: file.clone(),
                        source,
                    },
                    other => other,
                })?;
                if size != expected {
                    return Err(PushError::Changed(file));
                }
                builder.add_file(&path, mode, size, hash, &chunks);
                files += 1;
                total += size;
            }
        }
    }
    bar.finish();
    Ok((builder, files, total))
}

impl From<std::io::Error> for PushError {
    fn from(source: std::io::Error) -> Self {
        PushError::Io {
            path: PathBuf::new(),
            source,
        }
    }
}
