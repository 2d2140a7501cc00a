//! The `residency-agent` binary: parse the command line, start logging, run.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = residency_agent::cli::Cli::parse();
    residency_agent::cli::run(cli)
}
