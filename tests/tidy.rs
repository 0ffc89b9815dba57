//! Architecture invariants that the compiler does not check.

use std::path::Path;

fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for e in std::fs::read_dir(dir).expect("readable source dir") {
        let p = e.expect("entry").path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The config layers (model, load, validate, analyze, compile, route) and the
/// cluster runtime state know nothing of the async runtime or the HTTP
/// server: they must stay usable from `check` and `explain` and testable
/// without I/O.
#[test]
fn config_layers_do_not_depend_on_the_proxy() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = vec![src.join("config.rs")];
    for d in [
        "model",
        "load",
        "validate",
        "analyze",
        "compile",
        "route",
        "cluster",
        "kubernetes",
    ] {
        rust_files(&src.join(d), &mut files);
    }
    let mut offenders = Vec::new();
    for f in files {
        let body = std::fs::read_to_string(&f).expect("readable");
        for banned in ["tokio", "hyper", "crate::proxy"] {
            if body.lines().any(|l| {
                let l = l.trim_start();
                !l.starts_with("//") && l.contains(banned)
            }) {
                offenders.push(format!("{} uses {banned}", f.display()));
            }
        }
    }
    assert!(offenders.is_empty(), "{}", offenders.join("\n"));
}
