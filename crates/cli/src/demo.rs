//! `revocable demo`: not built yet (see the open issues).

use std::process::ExitCode;

/// Arguments of `revocable demo`.
#[derive(clap::Args)]
pub struct Args {}

/// Entry point of `revocable demo`.
pub fn run(_args: Args) -> ExitCode {
    eprintln!("revocable demo: not built yet");
    ExitCode::from(2)
}
