//! Command-line shape (API.md "CLI").

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Inspect, verify, repair, dump, back up and restore actlog data directories.
#[derive(Debug, Parser)]
#[command(name = "actlog-inspect", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
// Parsed once per run: `Dump`'s filters being larger than the other
// variants costs nothing worth a box.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum Command {
    /// One line per segment: ids, times, records, bytes, state, index.
    Ls {
        /// Data directory.
        dir: PathBuf,
    },
    /// Totals, watermark, settings, format version, key count.
    Stat {
        /// Data directory.
        dir: PathBuf,
    },
    /// Read every byte and report every problem (exit 1 on damage). Safe on a
    /// directory a server is using.
    Verify {
        /// Data directory.
        dir: PathBuf,
    },
    /// Print records as ndjson or csv, with the API's filters.
    Dump {
        /// Data directory.
        dir: PathBuf,
        /// Filters.
        #[command(flatten)]
        filters: Filters,
        /// Output format.
        #[arg(long, value_enum, default_value_t = DumpFormat::Ndjson)]
        format: DumpFormat,
    },
    /// Cut a torn tail, rebuild indexes, move unreadable segments to quarantine/.
    Repair {
        /// Data directory.
        dir: PathBuf,
        /// Only print what would be done.
        #[arg(long)]
        dry_run: bool,
    },
    /// Copy a consistent backup (incremental into an existing OUT).
    Backup {
        /// Data directory to back up.
        #[arg(long, conflicts_with = "url", required_unless_present = "url")]
        from: Option<PathBuf>,
        /// A running server to back up through its admin API.
        #[arg(long)]
        url: Option<String>,
        /// Backup directory.
        #[arg(long)]
        to: PathBuf,
        /// Admin token for --url.
        #[arg(long, env = "ACTLOG_TOKEN", hide_env_values = true)]
        token: Option<String>,
        /// Allow a plain `http://` URL to a host other than loopback: the
        /// admin token and the backup then cross the network unencrypted.
        #[arg(long)]
        insecure_http: bool,
    },
    /// Verify a backup and install it into a data directory.
    Restore {
        /// Backup directory.
        #[arg(long)]
        from: PathBuf,
        /// Data directory to create.
        #[arg(long)]
        to: PathBuf,
        /// Replace the contents of a non-empty directory.
        #[arg(long)]
        force: bool,
    },
}

/// Output format of `dump`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DumpFormat {
    /// One JSON record per line.
    Ndjson,
    /// RFC 4180 CSV, formula-injection safe.
    Csv,
}

/// The API's filters as flags.
#[derive(Debug, Clone, Args, Default)]
pub struct Filters {
    /// Category (repeatable: OR).
    #[arg(long)]
    pub category: Vec<String>,
    /// Action (repeatable).
    #[arg(long)]
    pub action: Vec<String>,
    /// Actor (repeatable).
    #[arg(long)]
    pub actor: Vec<String>,
    /// Entity type (repeatable).
    #[arg(long)]
    pub entity_type: Vec<String>,
    /// Entity id (repeatable).
    #[arg(long)]
    pub entity_id: Vec<String>,
    /// Severity (repeatable).
    #[arg(long)]
    pub severity: Vec<String>,
    /// Who sent the record: an API key id (`key_…`) or `server` (repeatable).
    #[arg(long)]
    pub recorded_by: Vec<String>,
    /// Words, all required; `word*` matches a prefix.
    #[arg(long)]
    pub q: Option<String>,
    /// Inclusive lower bound, RFC 3339.
    #[arg(long)]
    pub since: Option<String>,
    /// Exclusive upper bound, RFC 3339.
    #[arg(long)]
    pub until: Option<String>,
    /// desc (newest first) or asc.
    #[arg(long, default_value = "asc")]
    pub order: String,
    /// At most this many records.
    #[arg(long)]
    pub limit: Option<u64>,
}
