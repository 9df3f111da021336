//! Progress bars that appear only on a terminal and only once an operation
//! has run for more than a second, so pipes and quick commands stay quiet.
//! The operations count through `assetfs::ops::progress`; this draws.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use assetfs::ops::{Bar, Drawer, Unit};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

const DELAY: Duration = Duration::from_secs(1);

/// Draws on stderr with indicatif.
pub struct Terminal;

impl Terminal {
    /// Makes every operation of this process draw its progress here.
    pub fn install() {
        assetfs::ops::set_drawer(Box::new(Terminal));
    }
}

impl Drawer for Terminal {
    fn bar(&self, total: u64, label: &str, unit: Unit) -> Box<dyn Bar> {
        let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::hidden());
        let template = match unit {
            Unit::Bytes => "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} ETA {eta}",
            Unit::Items => "{msg} [{bar:30}] {pos}/{len} ETA {eta}",
        };
        bar.set_style(
            ProgressStyle::with_template(template)
                .expect("valid template")
                .progress_chars("=> "),
        );
        bar.set_message(label.to_string());
        Box::new(DelayedBar {
            bar,
            start: Instant::now(),
            allowed: std::io::stderr().is_terminal(),
            shown: AtomicBool::new(false),
        })
    }
}

/// Hidden until it has run for [`DELAY`], and for good when stderr is not a
/// terminal.
struct DelayedBar {
    bar: ProgressBar,
    start: Instant,
    allowed: bool,
    shown: AtomicBool,
}

impl Bar for DelayedBar {
    fn inc(&self, n: u64) {
        self.bar.inc(n);
        if self.allowed
            && !self.shown.load(Ordering::Relaxed)
            && self.start.elapsed() > DELAY
            && !self.shown.swap(true, Ordering::Relaxed)
        {
            self.bar.set_draw_target(ProgressDrawTarget::stderr());
        }
    }

    fn finish(&self) {
        if self.shown.load(Ordering::Relaxed) {
            self.bar.finish_and_clear();
        }
    }
}
