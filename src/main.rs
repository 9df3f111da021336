mod cli;
mod daemon;
mod mount_helper;

fn main() -> std::process::ExitCode {
    cli::main()
}
