//! Fuzz target: see `convt::fuzzing::npy_reader`.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| convt::fuzzing::npy_reader(data));
