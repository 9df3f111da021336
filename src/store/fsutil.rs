//! Small local-filesystem helpers.

use std::io::Write;
use std::path::Path;

/// Writes a file so that readers see either the old content or all of the
/// new, and flushes it to disk before it becomes visible.
pub fn write_atomic(path: &Path, data: &[u8]) -> std::io::Result<()> {
    write_replace(path, data, true)
}

/// Like [`write_atomic`]; with `durable == false` it skips the fsync, for
/// content that is verified when read back (cache entries).
pub fn write_replace(path: &Path, data: &[u8], durable: bool) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    tmp.write_all(data)?;
    if durable {
        tmp.as_file().sync_all()?;
    }
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

/// Creates `dir` (and missing parents) readable only by its owner (0700),
/// and tightens `dir` itself to 0700 if it already existed wider: caches,
/// staging areas and logs hold bytes other local users must not read.
pub fn private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    let md = std::fs::metadata(dir)?;
    if md.permissions().mode() & 0o077 != 0 {
        // Best effort: another user's directory is theirs to set.
        if let Err(e) = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)) {
            tracing::warn!("cannot make {} private (mode 0700): {e}", dir.display());
        }
    }
    Ok(())
}

/// Creates (or truncates) a file readable only by its owner (0600).
pub fn create_private(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
}

/// Opens a file for appending, creating it readable only by its owner.
pub fn append_private(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)
}
