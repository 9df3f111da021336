pub mod aws_profile;
pub mod client;
#[cfg(any(test, feature = "test-doubles"))]
pub mod doubles;
pub mod errno;
pub mod fsutil;
pub mod hints;
