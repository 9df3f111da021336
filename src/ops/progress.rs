//! Progress of long operations (push, get, prefetch, gc), as a handle the
//! operations update. Drawing it is the binary's job: it installs a
//! [`Drawer`] once with [`set_drawer`]; without one (the library's tests,
//! other callers) progress is counted nowhere and nothing is shown.

use std::sync::OnceLock;

/// What a progress counter counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Bytes,
    Items,
}

/// One drawn progress counter.
pub trait Bar: Send + Sync {
    fn inc(&self, n: u64);
    fn finish(&self);
}

/// Makes the counters an operation asks for (the binary's terminal drawing).
pub trait Drawer: Send + Sync {
    fn bar(&self, total: u64, label: &str, unit: Unit) -> Box<dyn Bar>;
}

static DRAWER: OnceLock<Box<dyn Drawer>> = OnceLock::new();

/// Installs the drawer for this process; a second call is ignored.
pub fn set_drawer(d: Box<dyn Drawer>) {
    let _ = DRAWER.set(d);
}

/// A progress counter; shown only if the caller wants it and a drawer is set.
pub struct Progress {
    bar: Option<Box<dyn Bar>>,
}

impl Progress {
    /// A byte counter; `want` is false for `--json`/quiet callers.
    pub fn bytes(total: u64, label: &str, want: bool) -> Progress {
        Progress::new(total, label, want, Unit::Bytes)
    }

    /// A counter of items (manifests read, objects deleted).
    pub fn count(total: u64, label: &str, want: bool) -> Progress {
        Progress::new(total, label, want, Unit::Items)
    }

    pub fn hidden() -> Progress {
        Progress { bar: None }
    }

    fn new(total: u64, label: &str, want: bool, unit: Unit) -> Progress {
        let bar = match DRAWER.get() {
            Some(d) if want => Some(d.bar(total, label, unit)),
            _ => None,
        };
        Progress { bar }
    }

    pub fn inc(&self, n: u64) {
        if let Some(b) = &self.bar {
            b.inc(n);
        }
    }

    pub fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish();
        }
    }
}
