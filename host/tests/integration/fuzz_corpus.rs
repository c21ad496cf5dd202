//! Every fuzz corpus file and every crash the fuzzers found (kept as regression cases) is
//! replayed through the fuzz targets' own entry points on the stable toolchain, so the
//! regular suite guards what fuzzing found without a second, instrumented build
//! (`scripts/fuzz.sh` runs the fuzzers themselves, on nightly).

use crate::support::workspace;

#[path = "../../fuzz/entry.rs"]
mod entry;

#[test]
fn every_fuzz_corpus_and_regression_file_replays_without_a_panic() {
    let root = workspace().join("host/fuzz");
    for (name, target) in entry::TARGETS {
        let mut seeds = 0;
        for dir in ["corpus", "regressions"] {
            let Ok(entries) = std::fs::read_dir(root.join(dir).join(name)) else {
                continue;
            };
            let mut files: Vec<_> = entries.map(|e| e.expect("entry").path()).collect();
            files.sort();
            for file in files {
                let bytes = std::fs::read(&file).expect("read corpus file");
                let outcome = std::panic::catch_unwind(|| target(&bytes));
                assert!(outcome.is_ok(), "{name}: {} panics", file.display());
                if dir == "corpus" {
                    seeds += 1;
                }
            }
        }
        assert!(seeds > 0, "{name}: no seed corpus in host/fuzz/corpus/{name}");
    }
}
