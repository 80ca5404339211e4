//! `actlog`: the actlog server. The HTTP API arrives with the server issue;
//! for now the binary only reports what it would serve.

fn main() -> anyhow::Result<()> {
    eprintln!("actlog server: not yet implemented (see the server issue)");
    Ok(())
}
