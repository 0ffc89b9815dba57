//! Replays the fuzz corpus (reliability case 31): every file under
//! `fuzz/corpus/<target>/` and `fuzz/regressions/<target>/` goes through the
//! same `strait::fuzzing` function the cargo-fuzz target calls, so a fixed
//! finding stays fixed and the corpus keeps working without nightly.

use std::path::{Path, PathBuf};

fn inputs(target: &str) -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let mut files = Vec::new();
    for dir in ["corpus", "regressions"] {
        let Ok(entries) = std::fs::read_dir(root.join(dir).join(target)) else {
            continue;
        };
        files.extend(
            entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.is_file()),
        );
    }
    files.sort();
    files
}

fn replay(target: &str, run: fn(&[u8])) {
    let files = inputs(target);
    assert!(
        !files.is_empty(),
        "fuzz/corpus/{target}/ is empty or missing: restore it from git (see fuzz/README.md)"
    );
    for f in &files {
        let data = std::fs::read(f).expect("readable corpus file");
        // Name the input before running it, so a panic says which one.
        eprintln!("replaying {}", f.display());
        run(&data);
    }
}

#[test]
fn config_corpus_replays() {
    replay("config", strait::fuzzing::config);
}

#[test]
fn route_corpus_replays() {
    replay("route", strait::fuzzing::route);
}

#[test]
fn http1_corpus_replays() {
    replay("http1", strait::fuzzing::http1);
}

/// The codec target's own corpus, and the `http1` target's (raw client
/// bytes too, found against the whole listener).
#[test]
fn h1codec_corpus_replays() {
    replay("h1codec", strait::fuzzing::h1codec);
    replay("http1", strait::fuzzing::h1codec);
}

#[test]
fn h2codec_corpus_replays() {
    replay("h2codec", strait::fuzzing::h2codec);
}

/// A whole codec connection; the `h2codec` corpus (client frames) too.
#[test]
fn h2conn_corpus_replays() {
    replay("h2conn", strait::fuzzing::h2conn);
    replay("h2codec", strait::fuzzing::h2conn);
}

#[test]
fn client_hello_corpus_replays() {
    replay("client_hello", strait::fuzzing::client_hello);
}
