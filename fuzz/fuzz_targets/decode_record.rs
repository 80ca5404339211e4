//! Frames and MessagePack payloads: see actlog_engine::fuzzing::decode_record.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| actlog_engine::fuzzing::decode_record(data));
