pub mod aws_profile;
pub mod client;
pub mod errno;
pub mod faults;
pub mod fsutil;
pub mod hints;
#[cfg(test)]
pub(crate) mod store_double;
