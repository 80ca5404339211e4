//! # actlog-engine
//!
//! An append-only, log-structured store for activity / audit records.
//!
//! * **Durable appends.** [`Log::append`] returns ids only after the batch's
//!   bytes are fdatasynced; concurrent appenders share fsyncs (group commit).
//! * **Atomic batches.** After a crash a batch whose append never returned is
//!   entirely present or entirely absent.
//! * **Crash recovery.** Opening scans the active segment (the newest, whatever
//!   its last bytes are); a torn tail — a torn, never-acknowledged flush
//!   included — is cut and reported, damage in front of acknowledged records
//!   is a hard [`Error::Corruption`] that cuts no record. No bytes on disk
//!   can make `open` panic, hang, or allocate more than one frame's hard cap.
//! * **Ids are never handed out twice**, not after a crash, a repair or a
//!   restore (see [`ids`]).
//! * **Fail-stop.** After a failed write or fsync every append returns
//!   [`Error::PreviousIo`] until the log is reopened or [`Log::recover`]ed.
//! * **One owner.** A lock file keeps a second handle out of the directory.
//!
//! The on-disk format is specified in `docs/FORMAT.md`.
//!
//! ```
//! use actlog_engine::{Config, Direction, Log, NewRecord};
//! # let dir = tempfile::tempdir().unwrap();
//! let log = Log::open(dir.path(), Config::default())?;
//! let ids = log.append(&[NewRecord::new("entity", "entity.created", "Created scene 'Movie Night'")])?;
//! let rec = log.get(ids[0])?.expect("durable records are readable");
//! assert_eq!(rec.action, "entity.created");
//! let newest: Vec<_> = log.iter(u64::MAX, Direction::Backward).collect::<Result<_, _>>()?;
//! assert_eq!(newest.len(), 1);
//! # Ok::<(), actlog_engine::Error>(())
//! ```

pub mod backup;
mod config;
pub mod env;
mod error;
pub mod export;
pub mod frame;
mod fsutil;
#[doc(hidden)]
pub mod fuzzing;
mod group_commit;
pub mod ids;
pub mod index;
mod indexer;
pub mod inspect;
mod log;
mod query;
mod record;
mod record_view;
pub mod recovery;
mod retention;
pub mod segment;
mod view;
mod writer;

pub use config::{now_us, Clock, Config, MAX_SEGMENT_BYTES, MIN_SEGMENT_BYTES};
pub use error::{Error, Result};
pub use fsutil::{write_atomic, write_atomic_in};
pub use group_commit::IoStats;
pub use index::file::{index_path, IndexProblem, SealedIndex};
pub use index::{parse_words, Field, Word};
pub use log::{
    missing_marker_path, AppendFuture, Appended, Direction, Iter, Log, SegmentInfo, Stats,
    LOCK_FILE, MAX_BATCH_BYTES, MAX_BATCH_RECORDS, MISSING_MARKER_SUFFIX, MISSING_UNTIL,
    QUARANTINE_DIR,
};
pub use query::{
    Bucket, Cursor, FacetCount, Order, Page, PageBuf, Query, Scan, ScanPages, Selection,
    DEFAULT_LIMIT, MAX_BUCKETS, MAX_LIMIT,
};
pub use record::{
    is_secret_key, redacted, NewRecord, Record, Severity, ValidationError, MAX_MESSAGE_LEN,
    MAX_METADATA_BYTES, MAX_METADATA_DEPTH, MAX_NAME_LEN, MAX_TOKEN_LEN, REDACTED, SYSTEM_ACTOR,
};
pub use record_view::{RawMetadata, RecordView};
pub use recovery::{RecoveryReport, TornTail};
pub use retention::{Retention, RetentionOutcome, DAY_US, WATERMARK_FILE};
pub use segment::sealed::SealedSegment;
