mod cli;
mod daemon;

fn main() -> std::process::ExitCode {
    cli::main()
}
