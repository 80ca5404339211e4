//! Index files, raw and behind a valid footer: see actlog_engine::fuzzing::decode_index.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| actlog_engine::fuzzing::decode_index(data));
