//! Test doubles of an object store: each wraps a real one (usually
//! `object_store::memory::InMemory`) and changes what a test needs. A test
//! makes a `Store` of one with `Store::from_object_store`.
//!
//! Compiled for the crate's own tests and under the `test-doubles` feature
//! (which the integration tests turn on through the dev-dependency in
//! `Cargo.toml`); never in the release binary.

mod faulty;
mod gated;
mod layer;
mod sim_clock;
mod slow;

pub use faulty::FaultyStore;
pub use gated::{GateHandle, GatedStore, Gates};
pub use sim_clock::{SimClock, SimClockStore};
pub use slow::SlowStore;
