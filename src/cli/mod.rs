//! The `assetfs` binary: arguments (`args/`), one file per command group
//! (`commands/`), how results are shown (`output/`), and the mount's
//! daemon and mount(8) helper. Every command calls into the library.

mod args;
mod commands;
mod daemon;
mod logging;
mod mount_helper;
mod output;
mod test_mounter;

use std::process::ExitCode;

use clap::Parser;

use args::{Cli, Command};
use output::one_line;

pub fn main() -> ExitCode {
    let args = match mount_helper::rewrite_args(std::env::args_os().collect()) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("assetfs: error: {}", one_line(&e));
            return ExitCode::FAILURE;
        }
    };
    let cli = Cli::parse_from(args);
    output::progress::Terminal::install();
    assetfs::store::on_skipped_check(|warning| eprintln!("{warning}"));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let result = if let Command::Mount(m) = &cli.cmd {
        let m = m.clone();
        daemon::run_mount(&commands::env::cli_context(&cli), m, &rt)
    } else {
        logging::init_logging(cli.verbose, None);
        rt.block_on(commands::run(cli))
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("assetfs: error: {}", one_line(&e));
            ExitCode::FAILURE
        }
    }
}
