//! Index files, raw and behind a valid footer: see actlog_engine::fuzzing::decode_index.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(
    // A panic inside fst that the engine contains is an error, not a crash;
    // any other panic still aborts (see contain_fst_panics).
    init: actlog_engine::fuzzing::contain_fst_panics(),
    |data: &[u8]| actlog_engine::fuzzing::decode_index(data)
);
