mod aws_profile;
mod client;
#[cfg(any(test, feature = "test-doubles"))]
mod doubles;
mod errno;
mod fsutil;
mod hints;
mod in_place;

pub use client::{
    data_home, default_cache_dir, default_store_dir, on_skipped_check, ObjectInfo, Store,
    StoreError, StoreOptions, MARKER_FORMAT, PROBES,
};
#[cfg(any(test, feature = "test-doubles"))]
pub use doubles::{FaultyStore, GateHandle, GatedStore, Gates, SimClock, SimClockStore, SlowStore};
pub use errno::ToErrno;
pub use fsutil::{
    append_private, create_private, lstat_all, private_dir, remove_in_background, will_need,
    will_need_range, write_atomic, write_replace,
};
pub use in_place::{InPlace, InPlaceError};
