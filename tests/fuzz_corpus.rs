//! Replays the fuzz corpora (fuzz/corpus/*) and any crash reproducers kept in
//! fuzz/regressions through the fuzz targets' bodies, so CI runs them without libFuzzer.

use std::path::Path;

fn replay(target: &str, run: fn(&[u8])) -> usize {
    let mut count = 0;
    for folder in ["corpus", "regressions"] {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fuzz")
            .join(folder)
            .join(target);
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries {
            let path = entry.unwrap().path();
            run(&std::fs::read(&path).unwrap());
            count += 1;
        }
    }
    count
}

#[test]
fn cli_grammar_corpus() {
    assert!(replay("cli_grammar", convt::fuzzing::cli_grammar) >= 4);
}

#[test]
fn npy_reader_corpus() {
    assert!(replay("npy_reader", convt::fuzzing::npy_reader) >= 3);
}

#[test]
fn problem_builders_corpus() {
    assert!(replay("problem_builders", convt::fuzzing::problem_builders) >= 2);
}
