//! The `latchkey` binary: parse the command line, run it, print the error chain once.

use std::process::ExitCode;

fn main() -> ExitCode {
    latchkey::cli::main()
}
