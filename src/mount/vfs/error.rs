//! Errors of the mount's filesystem logic, each with its errno.

use crate::catalog::CatalogError;
use crate::mount::reader::ReadError;
use crate::store::ToErrno;

#[derive(Debug, thiserror::Error)]
pub enum VfsError {
    #[error("no such file or directory")]
    NotFound,
    #[error("not a directory")]
    NotDir,
    #[error("is a directory")]
    IsDir,
    #[error("not a symlink")]
    NotSymlink,
    #[error("read-only: committed versions are immutable")]
    ReadOnly,
    #[error("no such attribute")]
    NoAttr,
    #[error("extended attributes outside the user namespace are not supported")]
    XattrNamespace,
    #[error("bad file handle")]
    BadHandle,
    #[error("read failed: {0}")]
    Read(#[from] ReadError),
    #[error("catalog: {0}")]
    Catalog(#[from] CatalogError),
    #[error("staging: {0}")]
    Staging(#[from] crate::catalog::StagingError),
    #[error("invalid: {0}")]
    Invalid(String),
    #[error("not permitted: {0}")]
    NotPermitted(&'static str),
    #[error("cross-device: {0}")]
    CrossDevice(&'static str),
    #[error("not supported: {0}")]
    NotSupported(&'static str),
}

impl ToErrno for VfsError {
    fn errno(&self) -> libc::c_int {
        match self {
            VfsError::NotFound => libc::ENOENT,
            VfsError::NotDir => libc::ENOTDIR,
            VfsError::IsDir => libc::EISDIR,
            VfsError::NotSymlink => libc::EINVAL,
            VfsError::ReadOnly => libc::EROFS,
            VfsError::NoAttr => libc::ENODATA,
            VfsError::XattrNamespace => libc::EOPNOTSUPP,
            VfsError::BadHandle => libc::EBADF,
            VfsError::Read(e) => e.errno(),
            VfsError::Catalog(e) => e.errno(),
            VfsError::Staging(e) => e.errno(),
            VfsError::Invalid(_) => libc::EINVAL,
            VfsError::NotPermitted(_) => libc::EPERM,
            VfsError::CrossDevice(_) => libc::EXDEV,
            VfsError::NotSupported(_) => libc::EOPNOTSUPP,
        }
    }
}

pub type Result<T, E = VfsError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errno_mapping() {
        assert_eq!(VfsError::ReadOnly.errno(), libc::EROFS);
        assert_eq!(VfsError::NoAttr.errno(), libc::ENODATA);
        assert_eq!(
            VfsError::Read(crate::mount::reader::ReadError::Timeout(
                std::time::Duration::from_secs(1)
            ))
            .errno(),
            libc::EIO
        );
    }
}
