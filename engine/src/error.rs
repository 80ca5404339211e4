//! The engine's error type.
//!
//! Callers act on the variant (the server maps them to HTTP statuses, the
//! inspection tool to exit codes); the `Display` text is written for the person
//! reading a log line at 3 a.m. and says what to do next.

use std::io;
use std::path::PathBuf;

use crate::record::ValidationError;

/// Result alias used throughout the engine.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in the engine.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An operating-system I/O call failed.
    #[error("I/O error while trying to {op} {}: {source}", path.display())]
    Io {
        /// What the engine was doing ("fsync", "open", "rename", ...).
        op: &'static str,
        /// The file or directory involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },

    /// Bytes on disk that should be valid are not. Acknowledged data may be
    /// affected, so the engine refuses to guess: nothing has been truncated or
    /// deleted.
    #[error(
        "corruption in {} at byte offset {offset}: {reason}. No record was cut or deleted; \
         run `actlog-inspect verify {dir}` for a full report, then `actlog-inspect repair \
         {dir}`, which moves the damaged segment aside (keeping a copy in quarantine/) and \
         never hands its ids out again",
        file.display(),
        dir = dir_of(file)
    )]
    Corruption {
        /// The damaged file.
        file: PathBuf,
        /// Byte offset of the first damaged byte the engine noticed.
        offset: u64,
        /// What was wrong there.
        reason: String,
    },

    /// A file was written by a newer (or unknown) format version.
    #[error(
        "{} has format version {found}, this build reads version {supported}; \
         upgrade actlog to open this data directory",
        file.display()
    )]
    UnsupportedVersion {
        /// The file.
        file: PathBuf,
        /// The version found in its header.
        found: u16,
        /// The version this build writes and reads.
        supported: u16,
    },

    /// A record in a batch failed validation. Nothing of the batch was written.
    #[error("record {index} of the batch is invalid: {source}")]
    Invalid {
        /// Position of the offending record in the batch (0-based).
        index: usize,
        /// Which field and why.
        #[source]
        source: ValidationError,
    },

    /// An earlier write or fsync on this handle failed. The engine does not
    /// retry an fsync (the kernel may have dropped the dirty pages), so every
    /// later append fails until the log is reopened, which re-reads what is
    /// really on disk.
    #[error(
        "an earlier write or fsync failed on this log handle; it refuses further appends \
         (fail-stop). Fix the cause (disk full? failing disk?) and reopen the log"
    )]
    PreviousIo,

    /// Another process (or another handle in this process) owns the directory.
    #[error(
        "data directory {} is locked by another actlog process (lock file {}); \
         stop that process first, or use the read-only `actlog-inspect` commands",
        dir.display(),
        dir.join(crate::LOCK_FILE).display()
    )]
    Locked {
        /// The data directory.
        dir: PathBuf,
    },

    /// A query parameter is out of range or malformed.
    #[error("query parameter `{param}` {reason}")]
    InvalidQuery {
        /// The parameter's wire name (`limit`, `cursor`, `bucket`, ...).
        param: &'static str,
        /// What is wrong with it.
        reason: String,
    },

    /// A restore into this directory started and did not finish: it holds
    /// part of the old contents and part of the backup.
    #[error(
        "a restore into {} did not finish (the file {} is there): it holds part of a backup; \
         run `actlog-inspect restore --from BACKUP --to {} --force` again",
        dir.display(),
        dir.join(crate::backup::RESTORING_FILE).display(),
        dir.display()
    )]
    RestoreUnfinished {
        /// The data directory.
        dir: PathBuf,
    },

    /// The log was opened read-only.
    #[error("this log was opened read-only; appends, rolls, retention and clear need `Log::open`")]
    ReadOnly,

    /// The configuration is unusable.
    #[error("invalid configuration: {0}")]
    Config(String),
}

fn dir_of(file: &std::path::Path) -> String {
    file.parent()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| ".".to_string())
}

impl Error {
    pub(crate) fn io(
        op: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(io::Error) -> Error {
        let path = path.into();
        move |source| Error::Io { op, path, source }
    }

    pub(crate) fn corruption(
        file: impl Into<PathBuf>,
        offset: u64,
        reason: impl Into<String>,
    ) -> Error {
        Error::Corruption {
            file: file.into(),
            offset,
            reason: reason.into(),
        }
    }

    /// True when the error means the disk (not the input) is at fault and the
    /// handle is now fail-stopped; servers answer these with 503.
    pub fn is_storage_failure(&self) -> bool {
        matches!(self, Error::Io { .. } | Error::PreviousIo)
    }

    /// An I/O error that says the disk (or the user's quota) has no room.
    pub(crate) fn is_disk_full(&self) -> bool {
        matches!(self, Error::Io { source, .. }
            if matches!(source.kind(), io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded))
    }
}
