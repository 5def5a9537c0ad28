//! The command-line grammar: arbitrary text as NAME=VALUE items, then every op's problem
//! builder (and, for small problems, the computation against the reference).
#![no_main]
use libfuzzer_sys::fuzz_target;
#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // Values ending in .npy would read files: keep the fuzzer away from the file system.
    let items: Vec<String> = text
        .split('\n')
        .filter(|s| !s.ends_with(".npy"))
        .map(String::from)
        .collect();
    let Ok(args) = convt::call::Args::parse_cli(&items) else {
        return;
    };
    for op in convt::call::OPS {
        common::check(op, &args);
        let _ = convt::explain::explain(op, &args).map(|e| e.text());
        let _ = convt::translate::translate(op, &args);
    }
});
