//! Progress bars that appear only on a terminal and only once an operation
//! has run for more than a second, so pipes and quick commands stay quiet.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

const DELAY: Duration = Duration::from_secs(1);

pub struct Progress {
    bar: ProgressBar,
    start: Instant,
    allowed: bool,
    shown: AtomicBool,
}

impl Progress {
    /// A byte counter; `want` is false for `--json`/quiet callers.
    pub fn bytes(total: u64, label: &str, want: bool) -> Progress {
        let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::hidden());
        bar.set_style(
            ProgressStyle::with_template(
                "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} ETA {eta}",
            )
            .expect("valid template")
            .progress_chars("=> "),
        );
        bar.set_message(label.to_string());
        Progress {
            bar,
            start: Instant::now(),
            allowed: want && std::io::stderr().is_terminal(),
            shown: AtomicBool::new(false),
        }
    }

    /// A counter of items (manifests read, objects deleted).
    pub fn count(total: u64, label: &str, want: bool) -> Progress {
        let p = Progress::bytes(total, label, want);
        p.bar.set_style(
            ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} ETA {eta}")
                .expect("valid template")
                .progress_chars("=> "),
        );
        p
    }

    pub fn hidden() -> Progress {
        Progress::bytes(0, "", false)
    }

    pub fn inc(&self, n: u64) {
        self.bar.inc(n);
        if self.allowed
            && !self.shown.load(Ordering::Relaxed)
            && self.start.elapsed() > DELAY
            && !self.shown.swap(true, Ordering::Relaxed)
        {
            self.bar.set_draw_target(ProgressDrawTarget::stderr());
        }
    }

    pub fn finish(&self) {
        if self.shown.load(Ordering::Relaxed) {
            self.bar.finish_and_clear();
        }
    }
}
