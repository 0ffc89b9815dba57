//! Golden tests: config + request → the exact `strait explain` text, one
//! case per kind of decision (`tests/data/explain/`). Regenerate after an
//! intended change with `STRAIT_BLESS=1 cargo test --test it explain_golden::`.

use std::path::Path;
use std::process::Command;

#[test]
fn explain_output_matches_the_golden_files() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/explain");
    let cases = std::fs::read_to_string(dir.join("cases.tsv")).expect("cases.tsv");
    let bless = std::env::var_os("STRAIT_BLESS").is_some();
    let mut failures = Vec::new();
    let mut n = 0;
    for line in cases.lines().skip(1).filter(|l| !l.trim().is_empty()) {
        let (name, args) = line.split_once('\t').expect("name<TAB>args");
        let out = Command::new(env!("CARGO_BIN_EXE_strait"))
            .arg("explain")
            .arg("-c")
            .arg(dir.join("base.yaml"))
            .args(args.split_whitespace())
            .output()
            .expect("strait runs");
        assert_eq!(
            out.status.code(),
            Some(0),
            "{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let got = String::from_utf8_lossy(&out.stdout).replace(&dir.display().to_string(), "<dir>");
        let golden = dir.join(format!("{name}.txt"));
        if bless {
            std::fs::write(&golden, &got).unwrap();
        } else {
            let want = std::fs::read_to_string(&golden).unwrap_or_default();
            if got != want {
                failures.push(format!("case {name}:\n--- want\n{want}\n--- got\n{got}"));
            }
        }
        n += 1;
    }
    assert!(n >= 6);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
