//! `strait check` as a user runs it: output lines, exit codes, formats.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn strait(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_strait"))
        .args(args)
        .output()
        .expect("strait runs")
}

fn strait_stdin(args: &[&str], input: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_strait"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("strait runs");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.as_bytes())
        .expect("write stdin");
    child.wait_with_output().expect("strait finishes")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn example() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/bookinfo")
}

/// A copy of the bookinfo example in a temporary directory.
fn example_copy() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    for e in std::fs::read_dir(example()).expect("example dir") {
        let e = e.expect("entry");
        std::fs::copy(e.path(), dir.path().join(e.file_name())).expect("copy");
    }
    dir
}

fn write(dir: &Path, name: &str, body: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, body).expect("write");
    p
}

#[test]
fn bookinfo_example_is_clean() {
    let out = strait(&["check", example().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "stdout: {}", text(&out.stdout));
    assert!(out.stdout.is_empty(), "no messages: {}", text(&out.stdout));
    assert!(
        text(&out.stderr).contains("\u{2714} No validation issues found when analyzing"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn removing_a_routed_subset_gives_ist0101_and_exit_79() {
    let dir = example_copy();
    let dr = dir.path().join("reviews-destination-rule.yaml");
    let body = std::fs::read_to_string(&dr).unwrap();
    let without_v2 = body.replace("  - name: v2\n    labels:\n      version: v2\n", "");
    assert_ne!(body, without_v2, "the example declares subset v2");
    std::fs::write(&dr, without_v2).unwrap();
    let out = strait(&["check", dir.path().to_str().unwrap()]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(79), "stdout: {stdout}");
    let line = stdout
        .lines()
        .find(|l| l.contains("\"reviews+v2\""))
        .unwrap_or_else(|| panic!("an IST0101 for reviews+v2 in: {stdout}"));
    assert!(
        line.starts_with("Error [IST0101] (VirtualService default/reviews "),
        "{line}"
    );
    // The reference points at the destination's line in the VirtualService file.
    let vs = std::fs::read_to_string(dir.path().join("reviews-virtual-service.yaml")).unwrap();
    let first_v2_line = vs
        .lines()
        .position(|l| l.contains("subset: v2"))
        .expect("the VS routes to v2")
        + 1;
    let host_line = first_v2_line - 1;
    assert!(
        line.contains(&format!("reviews-virtual-service.yaml:{first_v2_line})"))
            || line.contains(&format!("reviews-virtual-service.yaml:{host_line})")),
        "line number of the v2 destination: {line}"
    );
    assert!(text(&out.stderr).contains("Error: Analyzers found issues"));
}

#[test]
fn unparsable_yaml_exits_65_naming_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "bad.yaml", "apiVersion: v1\nkind: [unclosed\n");
    let out = strait(&["check", p.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(65));
    let err = text(&out.stderr);
    assert!(err.contains("bad.yaml:"), "{err}");
    assert!(err.contains("could not be read"), "{err}");
    // Issue #14: no green tick when a file failed to parse.
    assert!(!err.contains('\u{2714}'), "{err}");
    assert!(!err.contains("No validation issues"), "{err}");
}

/// Issue #14: Istio's tasks are a sequence of `kubectl apply -f`; a later
/// VirtualService `default/reviews` replaces the earlier one, as kubectl
/// and Istio's file store for `istioctl analyze` do
/// (pilot/pkg/config/file/store.go). `check` says so, naming both files.
#[test]
fn a_duplicate_name_is_reported_naming_both_files() {
    let dir = tempfile::tempdir().unwrap();
    let vs = |subset: &str| {
        format!(
            "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata:\n  name: reviews\nspec:\n  hosts: [reviews]\n  http:\n  - route:\n    - destination: {{host: reviews, subset: {subset}}}\n---\napiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata:\n  name: reviews-{subset}\nspec:\n  hosts: [reviews.default.svc.cluster.local]\n  ports: [{{number: 9080, name: http, protocol: HTTP}}]\n  resolution: STATIC\n  endpoints: [{{address: 127.0.0.1, labels: {{version: {subset}}}}}]\n"
        )
    };
    let a = write(dir.path(), "a-all-v1.yaml", &vs("v1"));
    let b = write(dir.path(), "b-jason.yaml", &vs("v2"));
    let out = strait(&["check", dir.path().to_str().unwrap()]);
    let err = text(&out.stderr);
    let want = format!(
        "Warning: VirtualService default/reviews is defined twice: the one in {}:1 replaces the one in {}:1",
        b.display(),
        a.display()
    );
    assert!(err.contains(&want), "{err}");
    // The replaced one is gone: no IST0109 about two VirtualServices for one host.
    let stdout = text(&out.stdout);
    assert!(!stdout.contains("IST0109"), "{stdout}");
}

#[test]
fn usage_errors_exit_64() {
    assert_eq!(
        strait(&["check", "--no-such-flag", "x"]).status.code(),
        Some(64)
    );
    let out = strait(&[
        "check",
        "--analyzer",
        "nope.Analyzer",
        example().to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(64));
    assert!(text(&out.stderr).contains("--list-analyzers"));
}

#[test]
fn help_and_version_work() {
    let out = strait(&["--help"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(text(&out.stdout).contains("check"));
    let out = strait(&["--version"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(text(&out.stdout).starts_with("strait "));
}

#[test]
fn list_analyzers_names_istio_analyzers() {
    let out = strait(&["check", "--list-analyzers"]);
    assert_eq!(out.status.code(), Some(0));
    let s = text(&out.stdout);
    for name in [
        "virtualservice.DestinationRuleAnalyzer",
        "destinationrule.SubsetSelectPodAnalyzer",
        "schema.ValidationAnalyzer.VirtualService",
        "gateway.ConflictingGatewayAnalyzer",
    ] {
        assert!(s.contains(name), "{name} listed");
    }
}

const MISPLACED: &str = "\
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: reviews
spec:
  host: reviews
  retries:
    attempts: 3
";

#[test]
fn a_route_field_in_a_destination_rule_teaches_where_it_goes() {
    let out = strait_stdin(&["check", "-"], MISPLACED);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(79), "{stdout}");
    assert!(
        stdout.contains("Error [IST0106] (DestinationRule default/reviews -:7) Schema validation error: spec.retries: unknown field \"retries\"; `retries` is a property of the route, so it belongs in a VirtualService"),
        "{stdout}"
    );
}

#[test]
fn json_output_has_istioctl_keys() {
    let out = strait_stdin(&["check", "-o", "json", "-"], MISPLACED);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON array");
    let m = &v[0];
    assert_eq!(m["code"], "IST0106");
    assert_eq!(m["level"], "Error");
    assert_eq!(m["origin"], "DestinationRule default/reviews");
    assert_eq!(m["reference"], "-:7");
    assert!(m["documentationUrl"].as_str().unwrap().contains("ist0106"));
    assert!(
        m["message"]
            .as_str()
            .unwrap()
            .starts_with("Schema validation error:")
    );
}

#[test]
fn yaml_output_lists_the_same_fields() {
    let out = strait_stdin(&["check", "-o", "yaml", "-"], MISPLACED);
    let s = text(&out.stdout);
    assert!(s.starts_with("- code: \"IST0106\"\n"), "{s}");
    assert!(
        s.contains("  origin: \"DestinationRule default/reviews\"\n"),
        "{s}"
    );
}

#[test]
fn namespace_flag_sets_missing_namespaces_and_filters() {
    let out = strait_stdin(&["check", "-n", "prod", "-"], MISPLACED);
    assert!(text(&out.stdout).contains("(DestinationRule prod/reviews"));
    let other = MISPLACED.replace(
        "  name: reviews\n",
        "  name: reviews\n  namespace: staging\n",
    );
    let out = strait_stdin(&["check", "-n", "prod", "-"], &other);
    assert_eq!(out.status.code(), Some(0), "staging is filtered out");
    let out = strait_stdin(&["check", "-n", "prod", "-A", "-"], &other);
    assert_eq!(out.status.code(), Some(79), "-A shows every namespace");
}

const WARNING_ONLY: &str = "\
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: db
spec:
  hosts: [db.example.com]
  resolution: DNS
  ports:
  - number: 5432
    name: tcp-db
    protocol: TCP
";

#[test]
fn thresholds_decide_exit_code_and_output() {
    let out = strait_stdin(&["check", "-"], WARNING_ONLY);
    assert_eq!(
        out.status.code(),
        Some(0),
        "warnings pass the default Error threshold"
    );
    assert!(
        text(&out.stdout).contains("Warning [IST0134]"),
        "{}",
        text(&out.stdout)
    );
    let out = strait_stdin(
        &["check", "--failure-threshold", "Warning", "-"],
        WARNING_ONLY,
    );
    assert_eq!(out.status.code(), Some(79));
    let out = strait_stdin(&["check", "--output-threshold", "Error", "-"], WARNING_ONLY);
    assert!(!text(&out.stdout).contains("IST0134"));
}

#[test]
fn alias_bomb_is_refused_quickly() {
    let mut s = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
    for i in 1..15 {
        let refs = vec![format!("*a{}", i - 1); 10].join(", ");
        s.push_str(&format!("a{i}: &a{i} [{refs}]\n"));
    }
    let out = strait_stdin(&["check", "-"], &s);
    assert_eq!(out.status.code(), Some(65));
    assert!(
        text(&out.stderr).contains("alias bomb"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn deep_nesting_is_refused() {
    let s = format!("a: {}{}\n", "[".repeat(100_000), "]".repeat(100_000));
    let out = strait_stdin(&["check", "-"], &s);
    assert_eq!(out.status.code(), Some(65), "{}", text(&out.stderr));
}

#[test]
fn directories_are_read_recursively_and_other_kinds_skipped() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("nested")).unwrap();
    write(
        &dir.path().join("nested"),
        "cm.yml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\ndata: {a: b}\n",
    );
    write(dir.path(), "notes.txt", "not yaml: [");
    write(
        &dir.path().join("nested"),
        "dr.json",
        r#"{"apiVersion": "networking.istio.io/v1", "kind": "DestinationRule", "metadata": {"name": "r"}, "spec": {"host": "r", "retries": {}}}"#,
    );
    let out = strait(&["check", dir.path().to_str().unwrap()]);
    let s = text(&out.stdout);
    assert!(s.contains("(DestinationRule default/r "), "{s}");
    assert!(s.contains("dr.json:1)"), "{s}");
    assert_eq!(out.status.code(), Some(79));
}

#[test]
fn kind_list_items_are_loaded_with_their_lines() {
    let list = "\
apiVersion: v1
kind: List
items:
- apiVersion: networking.istio.io/v1
  kind: DestinationRule
  metadata:
    name: a
  spec:
    host: a
    timeout: 5s
";
    let out = strait_stdin(&["check", "-"], list);
    let s = text(&out.stdout);
    assert!(s.contains("(DestinationRule default/a -:10)"), "{s}");
}

/// Issue #14: `check --labels` assumes the workload `run --labels` is, so a
/// Gateway selecting strait's own labels is not "selector not found".
#[test]
fn labels_give_a_gateway_its_workload() {
    let dir = tempfile::tempdir().unwrap();
    let gw = write(
        dir.path(),
        "gw.yaml",
        "apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {name: web}\nspec:\n  selector: {istio: ingressgateway}\n  servers:\n  - port: {number: 80, name: http, protocol: HTTP}\n    hosts: [\"*\"]\n",
    );
    let out = strait(&["check", gw.to_str().unwrap()]);
    assert!(
        text(&out.stdout).contains("Referenced selector not found"),
        "{}",
        text(&out.stdout)
    );
    let out = strait(&[
        "check",
        "--labels",
        "istio=ingressgateway",
        gw.to_str().unwrap(),
    ]);
    assert!(
        !text(&out.stdout).contains("Referenced selector not found"),
        "{}",
        text(&out.stdout)
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
}

/// Issue #14: a misspelt kind or a version the group does not serve was
/// skipped with "✔ No validation issues found" and exit 0; kubectl refuses
/// it ("no matches for kind"), and so do `check` (exit 65, the fix, no
/// tick) and `run`.
#[test]
fn a_misspelt_kind_or_unserved_version_is_refused_not_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let doc = |api: &str, kind: &str| {
        format!(
            "apiVersion: {api}\nkind: {kind}\nmetadata: {{name: reviews}}\nspec:\n  hosts: [reviews]\n  http:\n  - route: [{{destination: {{host: reviews}}}}]\n"
        )
    };
    let cases = [
        (
            write(
                dir.path(),
                "kind.yaml",
                &doc("networking.istio.io/v1", "VirtualSerivce"),
            ),
            "did you mean VirtualService?",
        ),
        (
            write(
                dir.path(),
                "version.yaml",
                &doc("networking.istio.io/v1alpha1", "VirtualService"),
            ),
            "networking.istio.io serves versions v1, v1beta1, v1alpha3",
        ),
    ];
    for (file, fix) in &cases {
        let out = strait(&["check", file.to_str().unwrap()]);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(65), "{err}");
        assert!(err.contains(fix), "{err}");
        assert!(!err.contains('\u{2714}'), "{err}");
        let out = strait(&[
            "run",
            "--listen",
            "127.0.0.1:0",
            "--admin",
            "127.0.0.1:0",
            "-c",
            file.to_str().unwrap(),
        ]);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(65), "run: {err}");
        assert!(err.contains(fix), "run: {err}");
    }
}

/// Issue #14: the README's "Put your own services behind strait" section
/// (a Kubernetes Service written as the ServiceEntry Istio makes of it) is
/// clean for `check`, and a VirtualService's short host reaches it.
#[test]
fn the_readme_own_services_example_checks_clean_and_routes() {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let section = readme
        .split("\n## ")
        .find(|s| s.starts_with("Put your own services behind strait"))
        .expect("the README section");
    let yaml = section
        .split("```yaml\n")
        .nth(1)
        .and_then(|b| b.split("```").next())
        .expect("its ServiceEntry example");
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "reviews.yaml", yaml);
    let out = strait(&["check", dir.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let out = strait(&[
        "explain",
        "-o",
        "json",
        "-c",
        dir.path().to_str().unwrap(),
        "http://reviews:9080/reviews/1",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let d = &v["destinations"][0];
    assert_eq!(d["host"], "reviews.default.svc.cluster.local", "{v}");
    assert_eq!(
        d["endpoints"],
        serde_json::json!(["10.0.0.11:9080", "10.0.0.12:9080"]),
        "{v}"
    );
}

/// strait's own file check (istioctl cannot see a gateway pod's files):
/// the certificate files a terminating server names are read where strait
/// runs; a missing one is IST0101 naming the field and the path, a broken
/// one IST0161 with the file and what is wrong; a credentialName server
/// and a PASSTHROUGH server read no files.
#[test]
fn gateway_certificate_files_are_checked_by_path() {
    let dir = tempfile::tempdir().unwrap();
    let cert = rcgen::generate_simple_self_signed(vec!["web.example.com".to_string()]).unwrap();
    let good_cert = write(dir.path(), "web.pem", &cert.cert.pem());
    let good_key = write(dir.path(), "web-key.pem", &cert.signing_key.serialize_pem());
    let broken_key = write(dir.path(), "broken-key.pem", "not a key\n");
    let missing = dir.path().join("missing-ca.pem");
    let gw = format!(
        "apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {{name: web, namespace: istio-system}}
spec:
  selector: {{istio: ingressgateway}}
  servers:
  - port: {{number: 443, name: https, protocol: HTTPS}}
    hosts: [web.example.com]
    tls:
      mode: MUTUAL
      serverCertificate: {cert}
      privateKey: {key}
      caCertificates: {missing}
  - port: {{number: 8443, name: https-2, protocol: HTTPS}}
    hosts: [web.example.com]
    tls:
      mode: SIMPLE
      serverCertificate: {cert}
      privateKey: {broken}
  - port: {{number: 9443, name: tls, protocol: TLS}}
    hosts: [web.example.com]
    tls: {{mode: PASSTHROUGH}}
",
        cert = good_cert.display(),
        key = good_key.display(),
        missing = missing.display(),
        broken = broken_key.display(),
    );
    let path = write(dir.path(), "gw.yaml", &gw);
    let out = strait(&[
        "check",
        "--labels",
        "istio=ingressgateway",
        "-n",
        "istio-system",
        path.to_str().unwrap(),
    ]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(79), "{stdout}");
    let lines: Vec<&str> = stdout
        .lines()
        .filter(|l| l.contains("IST0101") || l.contains("IST0161"))
        .collect();
    assert_eq!(lines.len(), 2, "{stdout}");
    assert!(
        lines[0].starts_with("Error [IST0101] (Gateway istio-system/web ")
            && lines[0].ends_with(&format!(
                "Referenced caCertificates file not found: \"{}\"",
                missing.display()
            )),
        "{stdout}"
    );
    assert!(
        lines[1].contains("[IST0161] (Gateway istio-system/web ")
            && lines[1].contains(&format!(
                "is invalid, which can cause the traffic not to work as expected (privateKey: {}: not a PEM private key).",
                broken_key.display()
            )),
        "{stdout}"
    );
    // Only the analyzers asked for run.
    let out = strait(&[
        "check",
        "--analyzer",
        "gateway.ConflictingGatewayAnalyzer",
        path.to_str().unwrap(),
    ]);
    assert!(
        !text(&out.stdout).contains("IST0101"),
        "{}",
        text(&out.stdout)
    );
    let listed = text(&strait(&["check", "--list-analyzers"]).stdout);
    assert!(
        listed.contains("gateway.CertificateFileAnalyzer"),
        "{listed}"
    );
}

/// IST0145 (Istio's `ConflictingGatewayAnalyzer`): two Gateways on the
/// same workload and port claiming one host, each message naming the
/// other Gateway (pilot keeps the first server and skips the other).
#[test]
fn conflicting_gateway_servers_on_one_port_name_both_gateways() {
    let dir = tempfile::tempdir().unwrap();
    let gw = |name: &str, mode: &str| {
        format!(
            "apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {{name: {name}, namespace: istio-system}}
spec:
  selector: {{istio: ingressgateway}}
  servers:
  - port: {{number: 443, name: tls-{name}, protocol: TLS}}
    hosts: [api.example.com]
    tls: {{mode: {mode}}}
---
"
        )
    };
    let path = write(
        dir.path(),
        "gw.yaml",
        &format!("{}{}", gw("a", "PASSTHROUGH"), gw("b", "PASSTHROUGH")),
    );
    let out = strait(&[
        "check",
        "--labels",
        "istio=ingressgateway",
        "-n",
        "istio-system",
        "--analyzer",
        "gateway.ConflictingGatewayAnalyzer",
        path.to_str().unwrap(),
    ]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(79), "{stdout}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{stdout}");
    assert!(
        lines[0].starts_with("Error [IST0145] (Gateway istio-system/a "),
        "{stdout}"
    );
    assert!(
        lines[0].ends_with("Conflict with gateways istio-system/b (workload selector istio=ingressgateway, port 443, hosts api.example.com)."),
        "{stdout}"
    );
    assert!(
        lines[1].starts_with("Error [IST0145] (Gateway istio-system/b "),
        "{stdout}"
    );
    assert!(
        lines[1].contains("Conflict with gateways istio-system/a"),
        "{stdout}"
    );
}
