//! Arbitrary bytes as a segment file (active, behind a valid header, or damage to a genuine sealed log): see actlog_engine::fuzzing::recover_segment.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| actlog_engine::fuzzing::recover_segment(data));
