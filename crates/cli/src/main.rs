//! The `revocable` command. Each subcommand lives in its own module, which owns its arguments
//! (`Args`) and its entry point (`run`).

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod demo;
mod demo_net;
mod devfs;
mod scale;
mod tempdir;
mod torture;

/// Revocable resources for user space: demo, FUSE device nodes, torture and scalability tests.
#[derive(Parser)]
#[command(name = "revocable", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Mount devfs in a temporary directory, run real clients, unplug the EC under them, report.
    Demo(demo::Args),
    /// Serve the device file system at MOUNTPOINT until SIGINT/SIGTERM/SIGHUP or unmount.
    Devfs(devfs::Args),
    /// Stress the core like rcutorture: readers, racing revokers, poison checks, a watchdog.
    Torture(torture::Args),
    /// Measure read-side and update-side cost against the baselines, like refscale.
    Scale(scale::Args),
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Demo(a) => demo::run(a),
        Command::Devfs(a) => devfs::run(a),
        Command::Torture(a) => torture::run(a),
        Command::Scale(a) => scale::run(a),
    }
}

/// Parses `argv` as the arguments of subcommand `name` (for each subcommand's flag tests).
#[cfg(test)]
fn parse_args<A: clap::Args + clap::FromArgMatches>(
    name: &'static str,
    argv: &[&str],
) -> Result<A, clap::Error> {
    let cmd = A::augment_args(clap::Command::new(name));
    let m = cmd.try_get_matches_from(std::iter::once(name).chain(argv.iter().copied()))?;
    A::from_arg_matches(&m)
}
