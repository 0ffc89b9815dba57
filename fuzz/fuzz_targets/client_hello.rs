#![no_main]
//! See fuzz/README.md and `strait::fuzzing::client_hello`.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| strait::fuzzing::client_hello(data));
