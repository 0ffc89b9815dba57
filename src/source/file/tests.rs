use super::*;
use crate::load::InputLimits;

#[test]
fn files_over_the_size_limit_are_refused_before_reading() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("big.yaml");
    std::fs::write(&p, "a: 1\n".repeat(100)).unwrap();
    let opts = LoadOptions {
        limits: InputLimits {
            max_file_bytes: 100,
            ..InputLimits::default()
        },
        ..LoadOptions::default()
    };
    let set = load_paths(&[p], &opts);
    assert_eq!(set.load_errors.len(), 1);
    assert!(
        set.load_errors[0].message.contains("larger than"),
        "{}",
        set.load_errors[0]
    );
}

#[test]
fn a_file_that_stops_parsing_contributes_only_its_error() {
    // Documents are decoded as they are parsed: the ones before a syntax
    // error must not leak into the set.
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("a.yaml");
    let bad = dir.path().join("b.yaml");
    let dr = |n: &str| {
        format!(
            "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {{name: {n}}}\nspec: {{host: {n}}}\n---\n"
        )
    };
    std::fs::write(&good, dr("a1") + &dr("a2")).unwrap();
    std::fs::write(&bad, dr("b1") + "kind: [oops\n").unwrap();
    let set = load_paths(&[good, bad], &LoadOptions::default());
    let names: Vec<&str> = set.destination_rules.iter().map(|d| d.name()).collect();
    assert_eq!(names, ["a1", "a2"]);
    assert_eq!(set.load_errors.len(), 1);
    assert_eq!(set.load_errors[0].line, Some(7), "{}", set.load_errors[0]);
    assert!(set.load_errors[0].message.starts_with("invalid YAML"));
    assert_eq!(set.files.len(), 2);
    let seqs: Vec<usize> = set.destination_rules.iter().map(|d| d.seq).collect();
    assert_eq!(seqs, [1, 2]);
}

#[test]
fn field_lines_come_from_the_file_as_loaded_or_fall_back_to_the_resource() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("r.yaml");
    let yaml = "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: d}\nspec:\n  host: x\n";
    std::fs::write(&p, yaml).unwrap();
    let set = load_paths(std::slice::from_ref(&p), &LoadOptions::default());
    assert_eq!(set.destination_rules[0].origin.line_of("spec.host"), 5);
    // Changed before a line was first asked for: never another text's lines.
    let set = load_paths(std::slice::from_ref(&p), &LoadOptions::default());
    std::fs::write(&p, format!("# moved\n{yaml}")).unwrap();
    assert_eq!(set.destination_rules[0].origin.line_of("spec.host"), 1);
}

/// `kubectl apply -f a.yaml -f b.yaml` and Istio's file store
/// (pilot/pkg/config/file/store.go `ApplyContent`): the later resource
/// with the same kind, namespace and name replaces the earlier one.
#[test]
fn a_later_resource_with_the_same_name_replaces_the_earlier() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a.yaml"), dir.path().join("b.yaml"));
    let vs = |dest: &str| {
        format!(
            "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: reviews}}\nspec:\n  hosts: [reviews]\n  http:\n  - route:\n    - destination: {{host: reviews, subset: {dest}}}\n"
        )
    };
    // The earlier one also has a schema problem: it goes with it.
    std::fs::write(&a, vs("v1") + "    bogus: 1\n").unwrap();
    // A DestinationRule and a Deployment's pod may share the name.
    std::fs::write(
            &b,
            vs("v3")
                + "---\napiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: reviews}\nspec: {host: reviews}\n---\napiVersion: v1\nkind: Pod\nmetadata: {name: reviews}\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {name: reviews}\n",
        )
        .unwrap();
    let opts = LoadOptions {
        namespace: Some("default".into()),
        ..LoadOptions::default()
    };
    let set = load_paths(&[a.clone(), b.clone()], &opts);
    assert_eq!(set.virtual_services.len(), 1);
    let kept = &set.virtual_services[0];
    assert_eq!(&*kept.origin.file, b.display().to_string());
    assert_eq!(
        kept.spec.http[0].route[0]
            .destination
            .as_ref()
            .unwrap()
            .subset
            .as_deref(),
        Some("v3")
    );
    assert!(set.problems.is_empty(), "{:?}", set.problems);
    assert_eq!(set.destination_rules.len(), 1);
    assert_eq!(
        set.pods.len(),
        2,
        "a Pod and a Deployment are different kinds"
    );
    assert_eq!(set.replaced.len(), 1);
    let text = set.replaced[0].to_string();
    assert!(
            text.starts_with(&format!(
                "VirtualService default/reviews is defined twice: the one in {}:1 replaces the one in {}:1",
                b.display(),
                a.display()
            )),
            "{text}"
        );
    // Load order decides, as with kubectl apply: the other way round, a's wins.
    let set = load_paths(&[b, a.clone()], &opts);
    assert_eq!(
        &*set.virtual_services[0].origin.file,
        a.display().to_string()
    );
}

/// Issue #14: two `DestinationRule default/reviews` in two files were
/// merged (the subsets of both served); the later replaces the earlier,
/// as `kubectl apply` and Istio's file store do, and it is said.
#[test]
fn two_destination_rules_with_one_name_are_not_merged() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a.yaml"), dir.path().join("b.yaml"));
    let dr = |subset: &str| {
        format!(
            "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {{name: reviews}}\nspec:\n  host: reviews\n  subsets: [{{name: {subset}, labels: {{version: {subset}}}}}]\n"
        )
    };
    std::fs::write(&a, dr("v1")).unwrap();
    std::fs::write(&b, dr("v2")).unwrap();
    let opts = LoadOptions {
        namespace: Some("default".into()),
        ..LoadOptions::default()
    };
    let set = load_paths(&[a.clone(), b.clone()], &opts);
    assert_eq!(set.destination_rules.len(), 1);
    let kept = &set.destination_rules[0];
    assert_eq!(&*kept.origin.file, b.display().to_string());
    let subsets: Vec<Option<&str>> = kept
        .spec
        .subsets
        .iter()
        .map(|s| s.name.as_deref())
        .collect();
    assert_eq!(subsets, [Some("v2")]);
    assert_eq!(set.replaced.len(), 1);
    assert!(
            set.replaced[0].to_string().starts_with(&format!(
                "DestinationRule default/reviews is defined twice: the one in {}:1 replaces the one in {}:1",
                b.display(),
                a.display()
            )),
            "{}",
            set.replaced[0]
        );
}
