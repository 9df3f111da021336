//! Errors become errno values for the kernel through one trait, implemented
//! beside each error type (so the FUSE adapter decides no policy).

use libc::c_int;

use crate::store::client::StoreError;

/// The errno a failed filesystem operation reports for this error.
pub trait ToErrno {
    fn errno(&self) -> c_int;
}

/// A store that fails or cannot be reached is an I/O error to the reader.
impl ToErrno for StoreError {
    fn errno(&self) -> c_int {
        libc::EIO
    }
}
