//! `revocable torture`: not built yet (see the open issues).

use std::process::ExitCode;

/// Arguments of `revocable torture`.
#[derive(clap::Args)]
pub struct Args {}

/// Entry point of `revocable torture`.
pub fn run(_args: Args) -> ExitCode {
    eprintln!("revocable torture: not built yet");
    ExitCode::from(2)
}
