//! The one place where errors become errno values for the kernel.

use libc::c_int;

use crate::catalog::versions::CatalogError;
use crate::catalog::staging::StagingError;
use crate::mount::vfs::VfsError;

pub fn staging_errno(e: &StagingError) -> c_int {
    match e {
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

pub fn errno(e: &VfsError) -> c_int {
    match e {
        VfsError::NotFound => libc::ENOENT,
        VfsError::NotDir => libc::ENOTDIR,
        VfsError::IsDir => libc::EISDIR,
        VfsError::NotSymlink => libc::EINVAL,
        VfsError::ReadOnly => libc::EROFS,
        VfsError::NoAttr => libc::ENODATA,
        VfsError::XattrNamespace => libc::EOPNOTSUPP,
        VfsError::BadHandle => libc::EBADF,
        VfsError::Read(_) => libc::EIO,
        VfsError::Catalog(CatalogError::NoSuchVersion { .. })
        | VfsError::Catalog(CatalogError::NoVersions(_))
        | VfsError::Catalog(CatalogError::NoSuchAlias { .. })
        | VfsError::Catalog(CatalogError::Deleted { .. })
        | VfsError::Catalog(CatalogError::AliasToDeleted { .. }) => libc::ENOENT,
        VfsError::Catalog(_) => libc::EIO,
        VfsError::Staging(e) => staging_errno(e),
        VfsError::Invalid(_) => libc::EINVAL,
        VfsError::NotPermitted(_) => libc::EPERM,
        VfsError::CrossDevice(_) => libc::EXDEV,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mapping() {
        assert_eq!(errno(&VfsError::ReadOnly), libc::EROFS);
        assert_eq!(errno(&VfsError::NoAttr), libc::ENODATA);
        assert_eq!(
            errno(&VfsError::Read(crate::mount::reader::ReadError::Timeout(
                std::time::Duration::from_secs(1)
            ))),
            libc::EIO
        );
    }
}
