//! Cursor wire bytes: see actlog_engine::fuzzing::decode_cursor.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| actlog_engine::fuzzing::decode_cursor(data));
