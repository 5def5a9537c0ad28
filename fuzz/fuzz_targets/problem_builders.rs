//! Fuzz target: see `convt::fuzzing::problem_builders`.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| convt::fuzzing::problem_builders(data));
