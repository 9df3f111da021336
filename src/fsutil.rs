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
