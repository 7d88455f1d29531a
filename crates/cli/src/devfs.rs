//! `revocable devfs`: not built yet (see the open issues).

use std::process::ExitCode;

/// Arguments of `revocable devfs`.
#[derive(clap::Args)]
pub struct Args {}

/// Entry point of `revocable devfs`.
pub fn run(_args: Args) -> ExitCode {
    eprintln!("revocable devfs: not built yet");
    ExitCode::from(2)
}
