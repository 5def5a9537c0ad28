//! Fuzz target: see `convt::fuzzing::cli_grammar`.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| convt::fuzzing::cli_grammar(data));
