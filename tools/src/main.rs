//! `actlog-inspect`: offline inspection of actlog data directories. The
//! subcommands arrive with the inspection issue.

fn main() -> anyhow::Result<()> {
    eprintln!("actlog-inspect: not yet implemented (see the inspection issue)");
    Ok(())
}
