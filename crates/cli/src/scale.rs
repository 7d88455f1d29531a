//! `revocable scale`: not built yet (see the open issues).

use std::process::ExitCode;

/// Arguments of `revocable scale`.
#[derive(clap::Args)]
pub struct Args {}

/// Entry point of `revocable scale`.
pub fn run(_args: Args) -> ExitCode {
    eprintln!("revocable scale: not built yet");
    ExitCode::from(2)
}
