//! Engine configuration. Every field's doc says its default.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::env::Fs;
use crate::error::{Error, Result};

/// Smallest accepted `segment_max_bytes` (tests use small segments to roll often).
pub const MIN_SEGMENT_BYTES: u64 = 1024;
/// Largest accepted `segment_max_bytes`: frame offsets are `u32`, and a batch
/// may overshoot the bound by up to [`crate::MAX_BATCH_BYTES`].
pub const MAX_SEGMENT_BYTES: u64 = 1 << 30;
/// Smallest accepted `active_index_max_bytes`.
pub const MIN_ACTIVE_INDEX_BYTES: usize = 64 << 10;

/// Engine configuration.
#[derive(Clone, Debug)]
pub struct Config {
    /// The active segment is sealed and a new one started before an append
    /// would take it past this size.
    ///
    /// Default: 64 MiB — about 250,000 typical records: few enough files that
    /// opening a 10 M-record log maps ~40 segments, small enough that
    /// retention by `max_entries` frees space in steps of well under 1 % of a
    /// large log.
    pub segment_max_bytes: u64,
    /// The active segment is sealed before an append once its first record is
    /// this old.
    ///
    /// Default: 24 h — day-based retention then deletes whole files with day
    /// granularity, while a quiet home controller writes one file a day.
    pub segment_max_age: Duration,
    /// The active segment is sealed before an append once its in-memory
    /// index is estimated to take this much heap (keys, map entries and
    /// bitmaps). Sealing moves the index to a mapped file.
    ///
    /// Default: 32 MiB. Typical records share most of their terms, so a
    /// 64 MiB segment's index stays far below it; records that each carry
    /// unique words (a request id in every message) would otherwise grow
    /// the heap by ~200 bytes a record until the segment fills.
    pub active_index_max_bytes: usize,
    /// Where `ts` comes from. Default: the system clock.
    pub clock: Clock,
    /// The filesystem every file operation of the [`Log`](crate::Log) goes
    /// through. Default: [`StdFs`](crate::env::StdFs), the real one; tests
    /// and fuzz targets pass a [`SimFs`](crate::env::sim::SimFs).
    pub fs: Fs,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            segment_max_bytes: 64 << 20,
            segment_max_age: Duration::from_secs(24 * 3600),
            active_index_max_bytes: 32 << 20,
            clock: Clock::system(),
            fs: Fs::default(),
        }
    }
}

impl Config {
    pub(crate) fn validate(&self) -> Result<()> {
        if !(MIN_SEGMENT_BYTES..=MAX_SEGMENT_BYTES).contains(&self.segment_max_bytes) {
            return Err(Error::Config(format!(
                "segment_max_bytes is {}; it must lie between {MIN_SEGMENT_BYTES} and {MAX_SEGMENT_BYTES}",
                self.segment_max_bytes
            )));
        }
        if self.active_index_max_bytes < MIN_ACTIVE_INDEX_BYTES {
            return Err(Error::Config(format!(
                "active_index_max_bytes is {}; it must be at least {MIN_ACTIVE_INDEX_BYTES}",
                self.active_index_max_bytes
            )));
        }
        if self.segment_max_age.is_zero() {
            return Err(Error::Config("segment_max_age must be positive".into()));
        }
        Ok(())
    }

    pub(crate) fn max_age_us(&self) -> i64 {
        i64::try_from(self.segment_max_age.as_micros()).unwrap_or(i64::MAX)
    }
}

/// A source of wall-clock time in µs since the Unix epoch.
///
/// The engine never lets `ts` go backwards whatever the clock does
/// (`ts = max(now, last ts)`); a manual clock lets tests and data imports
/// control time.
#[derive(Clone)]
pub struct Clock(Arc<dyn Fn() -> i64 + Send + Sync>);

impl Clock {
    /// The system clock.
    pub fn system() -> Clock {
        Clock(Arc::new(now_us))
    }

    /// A clock that calls `f`.
    pub fn from_fn(f: impl Fn() -> i64 + Send + Sync + 'static) -> Clock {
        Clock(Arc::new(f))
    }

    /// The current time, µs since the epoch.
    pub fn now(&self) -> i64 {
        (self.0)()
    }
}

impl fmt::Debug for Clock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Clock")
    }
}

/// The system time in µs since the Unix epoch (0 if the clock is before 1970).
pub fn now_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}
