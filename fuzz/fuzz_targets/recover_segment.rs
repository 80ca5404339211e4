//! Arbitrary bytes as the active segment: opening never panics, every record
//! it then serves passes its CRC and decodes, and recovering a second time is
//! a fixed point (nothing more is cut, the same records are served).
#![no_main]

use actlog_engine::segment::{segment_file_name, SegmentHeader};
use actlog_engine::{Config, Direction, Log};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(dir) = tempfile::tempdir() else { return };
    // Half the inputs get a valid header so the fuzzer reaches the frame scan.
    let mut bytes = Vec::with_capacity(data.len() + 32);
    if data.first().is_some_and(|b| b & 1 == 0) {
        bytes.extend_from_slice(&SegmentHeader { base_id: 1, created_us: 0 }.encode());
        bytes.extend_from_slice(&data[1..]);
    } else {
        bytes.extend_from_slice(data);
    }
    let path = dir.path().join(segment_file_name(1));
    if std::fs::write(&path, &bytes).is_err() {
        return;
    }
    let first = match Log::open(dir.path(), Config::default()) {
        Ok(log) => {
            let recs: Vec<_> = log
                .iter(0, Direction::Forward)
                .collect::<Result<_, _>>()
                .expect("every served record verifies");
            recs
        }
        Err(_) => return,
    };
    let log = Log::open(dir.path(), Config::default()).expect("recovered log reopens");
    assert!(log.recovery_report().torn_tail.is_none(), "recovery is idempotent");
    let again: Vec<_> = log
        .iter(0, Direction::Forward)
        .collect::<Result<_, _>>()
        .expect("every served record verifies");
    assert_eq!(first, again);
});
