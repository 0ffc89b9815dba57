#![no_main]
//! See fuzz/README.md and `strait::fuzzing::h2conn`.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| strait::fuzzing::h2conn(data));
