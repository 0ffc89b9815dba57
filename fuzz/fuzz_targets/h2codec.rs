#![no_main]
//! See fuzz/README.md and `strait::fuzzing::h2codec`.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| strait::fuzzing::h2codec(data));
