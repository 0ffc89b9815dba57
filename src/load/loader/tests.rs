use super::*;

/// `kubectl get --raw` / API list responses: a typed `XList` whose items
/// have no kind or apiVersion of their own.
#[test]
fn typed_api_lists_give_their_items_the_list_kind() {
    let set = crate::load::load_str(
        r#"{"kind": "EndpointSliceList", "apiVersion": "discovery.k8s.io/v1",
                "metadata": {"resourceVersion": "7"},
                "items": [{"metadata": {"name": "s", "namespace": "ns",
                           "labels": {"kubernetes.io/service-name": "svc"}},
                           "addressType": "IPv4", "endpoints": [{"addresses": ["10.0.0.1"]}]}]}"#,
        "list.json",
        &LoadOptions::default(),
    );
    assert!(set.load_errors.is_empty(), "{:?}", set.load_errors);
    assert_eq!(set.endpoint_slices.len(), 1);
    assert_eq!(
        set.endpoint_slices[0].spec.endpoints[0].addresses,
        ["10.0.0.1"]
    );
    assert_eq!(set.endpoint_slices[0].api_version, "discovery.k8s.io/v1");
}

#[test]
fn namespace_defaults_only_when_missing_and_not_cluster_scoped() {
    let yaml = "apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n---\napiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: d}\nspec: {host: x}\n---\napiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: e, namespace: other}\nspec: {host: x}\n";
    let set = load_str(
        yaml,
        "t.yaml",
        &LoadOptions {
            namespace: Some("prod".into()),
            ..LoadOptions::default()
        },
    );
    assert_eq!(set.namespaces[0].meta.namespace, "");
    assert_eq!(set.destination_rules[0].meta.namespace, "prod");
    assert_eq!(set.destination_rules[1].meta.namespace, "other");
}

#[test]
fn field_lines_are_found_when_first_asked() {
    let yaml = "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: d}\nspec:\n  host: x\n---\napiVersion: v1\nkind: List\nitems:\n- apiVersion: networking.istio.io/v1\n  kind: DestinationRule\n  metadata: {name: e}\n  spec:\n    host: y\n    subsets:\n    - name: v1\n";
    let set = load_str(yaml, "t.yaml", &LoadOptions::default());
    let (d, e) = (&set.destination_rules[0], &set.destination_rules[1]);
    assert_eq!((d.origin.line, e.origin.line), (1, 10));
    assert_eq!(d.origin.line_of("spec.host"), 5);
    assert_eq!(
        d.origin.line_of("spec.subsets[0].name"),
        4,
        "nearest ancestor"
    );
    assert_eq!(e.origin.line_of("spec.host"), 14);
    assert_eq!(e.origin.line_of("spec.subsets[0].name"), 16);
    assert_eq!(e.origin.line_of("nowhere"), 10, "the resource's first line");
}

/// Issue #14: kubectl refuses a misspelt kind or a version the group
/// does not serve ("no matches for kind"); strait does too, with the
/// fix, instead of skipping it as a kind it does not use.
#[test]
fn a_misspelt_kind_or_unserved_version_is_refused_with_the_fix() {
    let doc = |api: &str, kind: &str| {
        format!("apiVersion: {api}\nkind: {kind}\nmetadata: {{name: r}}\nspec: {{}}\n")
    };
    let err = |api: &str, kind: &str| {
        let set = load_str(&doc(api, kind), "t.yaml", &LoadOptions::default());
        assert_eq!(set.load_errors.len(), 1, "{api} {kind}");
        set.load_errors[0].to_string()
    };
    let e = err("networking.istio.io/v1", "VirtualSerivce");
    assert!(
        e.starts_with("t.yaml:1: VirtualSerivce r: no matches for kind"),
        "{e}"
    );
    assert!(e.ends_with("did you mean VirtualService?"), "{e}");
    let e = err("networking.istio.io/v1alpha1", "VirtualService");
    assert!(
        e.contains("networking.istio.io serves versions v1, v1beta1, v1alpha3"),
        "{e}"
    );
    assert!(
        err("networking.istio.io/v1", "Route").contains("networking.istio.io has VirtualService, ")
    );
    assert!(err("v1", "Sevice").ends_with("did you mean Service?"));
    assert!(err("apps/v1", "Deploymnet").ends_with("did you mean Deployment?"));
    assert!(err("v2", "Service").contains("only v1"));
    // Kinds strait does not use are skipped, and counted.
    let text = doc("v1", "ServiceAccount")
        + "---\n"
        + &doc("rbac.authorization.k8s.io/v1", "Role")
        + "---\n"
        + &doc("networking.istio.io/v1alpha3", "EnvoyFilter")
        + "---\n"
        + &doc("apps/v1", "StatefulSet")
        + "---\n"
        + &doc("v1", "ServiceAccount");
    let set = load_str(&text, "t.yaml", &LoadOptions::default());
    assert!(set.load_errors.is_empty(), "{:?}", set.load_errors);
    assert_eq!(set.skipped.get("v1 ServiceAccount"), Some(&2));
    assert_eq!(set.skipped.len(), 4, "{:?}", set.skipped);
}

fn file(l: &mut Loader<'_>, path: &Path) {
    let text = std::fs::read_to_string(path).unwrap();
    l.text(&text, &path.display().to_string(), Some(path));
}

/// Load `text` as the file `path`, in halves or as one.
fn load_file_as(path: &Path, halves: bool) -> ConfigSet {
    let opts = LoadOptions::default();
    let mut l = Loader::new(&opts);
    l.split_min = if halves { 1 } else { usize::MAX };
    file(&mut l, path);
    l.set
}

/// Everything a message or the proxy could see of a set.
fn summary(set: &ConfigSet) -> Vec<String> {
    let mut out: Vec<String> = set.load_errors.iter().map(|e| e.to_string()).collect();
    for p in &set.problems {
        out.push(format!(
            "{} {} {} {:?}",
            p.resource.friendly_name(),
            p.path,
            p.message,
            p.resource.origin.reference(Some(&p.path))
        ));
    }
    for r in &set.virtual_services {
        out.push(format!(
            "{} {} {} {}",
            r.friendly_name(),
            r.seq,
            r.origin.line,
            r.origin.line_of("spec.http[0].route[0].destination.host")
        ));
    }
    for r in &set.destination_rules {
        out.push(format!(
            "{} {} {} {}",
            r.friendly_name(),
            r.seq,
            r.origin.line,
            r.origin.line_of("spec.host")
        ));
    }
    out
}

#[test]
fn a_file_parsed_in_halves_loads_exactly_as_one() {
    let dir = tempfile::tempdir().unwrap();
    let mut text = String::new();
    for i in 0..40 {
        text.push_str(&format!("apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: v{i}}}\nspec:\n  hosts: [h{i}]\n  http:\n  - route:\n    - destination:\n        host: h{i}\n---\n"));
        text.push_str(&format!("apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {{name: d{i}}}\nspec:\n  host: h{i}\n  sbsets: []\n---\n"));
        if i == 30 {
            // In the second half: a document that is no resource, and a List.
            text.push_str("just text\n---\napiVersion: v1\nkind: List\nitems:\n- apiVersion: networking.istio.io/v1\n  kind: DestinationRule\n  metadata: {name: listed}\n  spec:\n    host: l\n---\n");
        }
    }
    let p = dir.path().join("c.yaml");
    std::fs::write(&p, &text).unwrap();
    assert!(split_point(&text, 1).is_some());
    let (one, halves) = (load_file_as(&p, false), load_file_as(&p, true));
    assert_eq!(summary(&one), summary(&halves));
    assert_eq!(one.destination_rules.len(), 41);
    assert_eq!(one.problems.len(), 40, "every sbsets reported");
    assert_eq!(one.load_errors.len(), 1, "the text document");
    // And it was parsed in halves indeed.
    let opts = LoadOptions::default();
    let mut l = Loader::new(&opts);
    l.split_min = 1;
    let name: Arc<str> = Arc::from(p.display().to_string());
    let lines = Arc::new(l.file_lines(&text, Some(&p), None, None));
    if std::thread::available_parallelism().is_ok_and(|n| n.get() > 1) {
        assert!(l.text_in_halves(&text, &name, Some(&p), None, &lines));
        assert_eq!(l.set.destination_rules.len(), 41);
    }

    // An alias after the middle, a syntax error, too many documents:
    // parsed as one, with the same result and message.
    for (what, tail) in [("alias", "a: &x {b: 1}\nc: *x\n"), ("syntax", "a: [1, 2\n")] {
        let bad = format!("{text}{tail}");
        std::fs::write(&p, &bad).unwrap();
        let (one, halves) = (load_file_as(&p, false), load_file_as(&p, true));
        assert_eq!(summary(&one), summary(&halves), "{what}");
    }
    std::fs::write(&p, &text).unwrap();
    let opts = LoadOptions {
        limits: InputLimits {
            max_documents: 60,
            ..InputLimits::default()
        },
        ..LoadOptions::default()
    };
    let mut l = Loader::new(&opts);
    l.split_min = 1;
    file(&mut l, &p);
    assert_eq!(l.set.load_errors.len(), 1);
    assert!(
        l.set.load_errors[0]
            .message
            .contains("more than 60 YAML documents"),
        "{}",
        l.set.load_errors[0]
    );
    assert!(l.set.destination_rules.is_empty());
}

#[test]
fn a_file_parsed_in_halves_keeps_every_kinds_load_order() {
    // The second half's load order is shifted after the first's for every
    // kind (an EndpointSlice was once missed: `config::resource_lists`
    // now names them all), so "the later one replaces the earlier" means
    // the same in halves as in one.
    let dir = tempfile::tempdir().unwrap();
    let mut text = String::new();
    for i in 0..40 {
        text.push_str(&format!("apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {{name: s{i}, namespace: default, labels: {{kubernetes.io/service-name: r}}}}\naddressType: IPv4\nendpoints: []\n---\n"));
        text.push_str(&format!("apiVersion: v1\nkind: Service\nmetadata: {{name: r{i}, namespace: default}}\nspec: {{ports: [{{port: 80, name: http}}]}}\n---\n"));
    }
    let p = dir.path().join("s.yaml");
    std::fs::write(&p, &text).unwrap();
    let seqs = |set: &ConfigSet| {
        let mut v: Vec<(String, usize)> = set
            .endpoint_slices
            .iter()
            .map(|r| (r.key(), r.seq))
            .collect();
        v.extend(set.services.iter().map(|r| (r.key(), r.seq)));
        v
    };
    let (one, halves) = (load_file_as(&p, false), load_file_as(&p, true));
    assert_eq!(one.endpoint_slices.len(), 40);
    assert_eq!(seqs(&one), seqs(&halves));
}

#[test]
fn deployment_counts_as_a_pod_with_template_labels() {
    let yaml = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: reviews-v1, namespace: default}\nspec:\n  template:\n    metadata:\n      labels: {app: reviews, version: v1}\n    spec:\n      containers: [{name: app}]\n";
    let set = load_str(yaml, "t.yaml", &LoadOptions::default());
    assert_eq!(set.pods.len(), 1);
    assert_eq!(
        set.pods[0].meta.labels.get("version").map(String::as_str),
        Some("v1")
    );
}
