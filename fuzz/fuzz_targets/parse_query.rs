//! The server's query-string parser: see actlog_server::params::fuzz_check.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| actlog_server::params::fuzz_check(data));
