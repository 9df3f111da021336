//! How the binary shows things: JSON, sizes, errors on one line, the `log`
//! table, progress bars.

pub mod format;
pub mod log_table;
pub mod progress;

pub use format::{human_bytes, one_line};

/// `v` as pretty JSON on stdout (`--json`).
pub fn print_json(v: &impl serde::Serialize) {
    println!(
        "{}",
        serde_json::to_string_pretty(v).expect("output serialises")
    );
}
