#![no_main]
//! See fuzz/README.md and `strait::fuzzing::route`.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| strait::fuzzing::route(data));
