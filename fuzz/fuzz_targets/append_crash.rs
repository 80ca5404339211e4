//! Operation sequences on the simulated filesystem, cut by a power failure at an arbitrary point: see actlog_engine::fuzzing::append_crash.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| actlog_engine::fuzzing::append_crash(data));
