//! Log output: stderr for commands, a file for the mount daemon.

/// Logs go to stderr, or to `file` (the mount daemon's log).
pub fn init_logging(verbose: u8, file: Option<std::fs::File>) {
    let level = match (verbose, file.is_some()) {
        (0, false) => "warn",
        (0, true) | (1, _) => "info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("ASSETFS_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    match file {
        Some(f) => builder
            .with_ansi(false)
            .with_writer(std::sync::Mutex::new(f))
            .init(),
        None => builder.with_writer(std::io::stderr).init(),
    }
}
