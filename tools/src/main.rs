//! `actlog-inspect`: offline inspection, verification, repair, dump, backup
//! and restore of an actlog data directory, on the engine's public API.
//!
//! Exit codes: 0 success; 1 damage found (verify) or an operation failed;
//! 2 usage errors (bad flags, a directory that does not exist).

mod backup;
mod cli;
mod dump;
mod progress;
mod repair;
mod report;

use std::process::ExitCode;

use clap::Parser;

use cli::{Cli, Command};

/// How a command ended.
pub enum Outcome {
    /// All good.
    Ok,
    /// Damage found (exit 1).
    Damage,
}

/// A failure that is the caller's mistake (exit 2), not the data's.
#[derive(Debug)]
pub struct Usage(pub String);

impl std::fmt::Display for Usage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Usage {}

/// Fails with a usage error unless `dir` is a directory.
pub fn need_dir(dir: &std::path::Path) -> anyhow::Result<()> {
    if dir.is_dir() {
        Ok(())
    } else {
        Err(Usage(format!("{} is not a directory", dir.display())).into())
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Ls { dir } => report::ls(&dir),
        Command::Stat { dir } => report::stat(&dir),
        Command::Verify { dir } => report::verify(&dir),
        Command::Dump {
            dir,
            filters,
            format,
        } => dump::dump(&dir, &filters, format),
        Command::Repair { dir, dry_run } => repair::repair(&dir, dry_run),
        Command::Backup {
            from,
            url,
            to,
            token,
            insecure_http,
        } => backup::backup(from.as_deref(), url.as_deref(), &to, token, insecure_http),
        Command::Restore { from, to, force } => backup::restore(&from, &to, force),
    };
    match result {
        Ok(Outcome::Ok) => ExitCode::SUCCESS,
        Ok(Outcome::Damage) => ExitCode::from(1),
        Err(e) if e.is::<Usage>() => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}
