//! Istio's own analyzer test cases (`../shared/conformance/istio-analyzer/`),
//! each run through `strait check --analyzer <name>`: the multiset of
//! `CODE Kind namespace/name` must equal what Istio's test expects.

use std::path::{Path, PathBuf};
use std::process::Command;

fn conformance_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/conformance/istio-analyzer")
}

struct Case {
    name: String,
    inputs: Vec<String>,
    analyzer: String,
    expected: Vec<String>,
    mesh_config: Option<String>,
}

fn cases() -> Vec<Case> {
    let tsv = std::fs::read_to_string(conformance_dir().join("expected.tsv"))
        .expect("../shared/conformance/istio-analyzer/expected.tsv is readable");
    tsv.lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let cols: Vec<&str> = l.split('\t').collect();
            let col = |i: usize| cols.get(i).copied().unwrap_or("");
            let mut expected: Vec<String> = col(3)
                .split(';')
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect();
            expected.sort();
            Case {
                name: col(0).to_string(),
                inputs: col(1).split(',').map(str::to_string).collect(),
                analyzer: col(2).to_string(),
                expected,
                mesh_config: Some(col(4)).filter(|s| !s.is_empty()).map(str::to_string),
            }
        })
        .collect()
}

/// Run one case through the CLI; returns the sorted `CODE Kind ns/name` list.
fn run_case(c: &Case) -> Result<Vec<String>, String> {
    let dir = conformance_dir();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_strait"));
    // Istio's harness keeps namespace-less resources in the empty namespace
    // and shows every namespace.
    cmd.args([
        "check",
        "-o",
        "json",
        "-A",
        "-n",
        "",
        "--analyzer",
        &c.analyzer,
    ]);
    if let Some(m) = &c.mesh_config {
        cmd.arg("--mesh-config").arg(dir.join("testdata").join(m));
    }
    for f in &c.inputs {
        cmd.arg(dir.join("testdata").join(f));
    }
    cmd.arg(dir.join("harness/default-ingressgateway.yaml"));
    let out = cmd
        .output()
        .map_err(|e| format!("cannot run strait: {e}"))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let json: serde_json::Value = serde_json::from_str(&stdout).map_err(|e| {
        format!(
            "output is not JSON ({e}); exit {:?}; stdout: {stdout}; stderr: {}",
            out.status.code(),
            String::from_utf8_lossy(&out.stderr)
        )
    })?;
    let mut got: Vec<String> = json
        .as_array()
        .ok_or("output is not a JSON array")?
        .iter()
        .map(|m| {
            format!(
                "{} {}",
                m["code"].as_str().unwrap_or("?"),
                m["origin"].as_str().unwrap_or("?")
            )
        })
        .collect();
    got.sort();
    Ok(got)
}

#[test]
fn istio_analyzer_conformance() {
    let cases = cases();
    assert_eq!(cases.len(), 57, "expected.tsv has Istio's 57 cases");
    // STRAIT_CONFORMANCE_FILTER=virtualservice runs only the matching analyzers' cases.
    let filter = std::env::var("STRAIT_CONFORMANCE_FILTER").unwrap_or_default();
    let cases: Vec<&Case> = cases
        .iter()
        .filter(|c| c.analyzer.contains(&filter))
        .collect();
    let mut failures = Vec::new();
    for c in &cases {
        let c: &Case = c;
        match run_case(c) {
            Ok(got) if got == c.expected => {}
            Ok(got) => failures.push(format!(
                "case {:?} ({}):\n  expected: {:?}\n  got:      {:?}",
                c.name, c.analyzer, c.expected, got
            )),
            Err(e) => failures.push(format!("case {:?}: {e}", c.name)),
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} conformance cases disagree with Istio:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}
