//! The `onramp` binary: parses the command line and dispatches.
#![forbid(unsafe_code)]

fn main() -> std::process::ExitCode {
    onramp::interfaces::cli::main()
}
