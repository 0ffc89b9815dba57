//! `deploy/kubernetes/` stays in step with the binary: every strait
//! container's arguments are flags `strait` accepts, and the ClusterRole
//! grants `list` and `watch` on exactly the kinds the Kubernetes source
//! watches cluster-wide (least privilege), nothing more and nothing
//! missing; Secrets only to the gateway, in its namespace.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use strait::load::yaml::{InputLimits, parse_documents};

fn deploy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/kubernetes")
}

/// Every document of every YAML file in `deploy/kubernetes/`.
fn documents() -> Vec<(String, Value)> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(deploy_dir())
        .expect("deploy/kubernetes")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    assert!(files.len() >= 4, "deploy/kubernetes has its manifests");
    let mut out = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(&f).expect("read manifest");
        let docs = parse_documents(&text, &InputLimits::default())
            .unwrap_or_else(|e| panic!("{}: {e:?}", f.display()));
        for d in docs {
            out.push((f.display().to_string(), d.value));
        }
    }
    out
}

fn kind(v: &Value) -> &str {
    v["kind"].as_str().unwrap_or("")
}

/// `$(POD_NAMESPACE)` is the pod's namespace from the downward API.
fn expand(arg: &str) -> String {
    arg.replace("$(POD_NAMESPACE)", "strait-system")
}

#[test]
fn every_strait_container_runs_with_flags_strait_accepts() {
    let mut checked = 0;
    for (file, doc) in documents() {
        if !matches!(kind(&doc), "DaemonSet" | "Deployment") {
            continue;
        }
        let containers = doc["spec"]["template"]["spec"]["containers"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        for c in containers {
            if c["name"] != "strait" {
                continue;
            }
            let args: Vec<String> = c["args"]
                .as_array()
                .expect("strait container has args")
                .iter()
                .map(|a| expand(a.as_str().expect("string arg")))
                .collect();
            assert_eq!(args[0], "run", "{file}: {args:?}");
            assert!(args.iter().any(|a| a == "--kubernetes"), "{file}: {args:?}");
            // `--help` after the flags: clap refuses an unknown flag or a bad
            // value before it prints help.
            let out = Command::new(env!("CARGO_BIN_EXE_strait"))
                .args(&args)
                .arg("--help")
                .output()
                .expect("run strait");
            assert!(
                out.status.success(),
                "{file}: strait {args:?} refused: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            // The readiness probe is the admin listener's /ready.
            let probe = &c["readinessProbe"]["httpGet"];
            assert_eq!(probe["path"], "/ready", "{file}");
            let admin = args
                .iter()
                .find_map(|a| a.strip_prefix("--admin="))
                .unwrap_or_else(|| panic!("{file}: --admin must listen beyond loopback"));
            assert!(
                admin.ends_with(&format!(":{}", probe["port"])),
                "{file}: {admin}"
            );
            checked += 1;
        }
    }
    assert_eq!(checked, 2, "the node proxy and the gateway");
}

/// (group, resource) pairs a role's rules grant, each rule `list` and
/// `watch` only.
fn granted(role: &Value) -> BTreeSet<(String, String)> {
    let mut granted = BTreeSet::new();
    for rule in role["rules"].as_array().expect("rules") {
        let verbs: BTreeSet<&str> = rule["verbs"]
            .as_array()
            .expect("verbs")
            .iter()
            .map(|v| v.as_str().expect("verb"))
            .collect();
        assert_eq!(verbs, BTreeSet::from(["list", "watch"]), "{rule}");
        for g in rule["apiGroups"].as_array().expect("apiGroups") {
            for r in rule["resources"].as_array().expect("resources") {
                granted.insert((
                    g.as_str().expect("group").to_string(),
                    r.as_str().expect("resource").to_string(),
                ));
            }
        }
    }
    granted
}

#[cfg(feature = "kubernetes")]
#[test]
fn the_cluster_role_grants_list_and_watch_on_exactly_the_watched_kinds() {
    use strait::source::kube::kinds::KINDS;
    let role = documents()
        .into_iter()
        .map(|(_, d)| d)
        .find(|d| kind(d) == "ClusterRole")
        .expect("a ClusterRole");
    let watched: BTreeSet<(String, String)> = KINDS
        .iter()
        .filter(|k| !k.own_namespace)
        .map(|k| (k.group.to_string(), k.plural.to_string()))
        .collect();
    assert_eq!(granted(&role), watched);
}

/// Secrets (`credentialName`) are granted to the gateway alone, in its
/// own namespace (a Role bound to the gateway Deployment's service
/// account); the node proxy's service account gets no Role.
#[cfg(feature = "kubernetes")]
#[test]
fn secrets_are_granted_to_the_gateway_in_its_namespace_only() {
    use strait::source::kube::kinds::KINDS;
    let docs: Vec<Value> = documents().into_iter().map(|(_, d)| d).collect();
    let account = |workload: &str| -> (String, String) {
        let d = docs
            .iter()
            .find(|d| kind(d) == workload)
            .unwrap_or_else(|| panic!("a {workload}"));
        (
            d["metadata"]["namespace"].as_str().unwrap().to_string(),
            d["spec"]["template"]["spec"]["serviceAccountName"]
                .as_str()
                .unwrap()
                .to_string(),
        )
    };
    let gateway = account("Deployment");
    let node_proxy = account("DaemonSet");
    assert_ne!(gateway.1, node_proxy.1, "the gateway has its own account");
    let roles: Vec<&Value> = docs.iter().filter(|d| kind(d) == "Role").collect();
    assert_eq!(roles.len(), 1);
    let role = roles[0];
    assert_eq!(
        role["metadata"]["namespace"].as_str(),
        Some(gateway.0.as_str())
    );
    let own: BTreeSet<(String, String)> = KINDS
        .iter()
        .filter(|k| k.own_namespace)
        .map(|k| (k.group.to_string(), k.plural.to_string()))
        .collect();
    assert_eq!(granted(role), own);
    let bindings: Vec<&Value> = docs.iter().filter(|d| kind(d) == "RoleBinding").collect();
    assert_eq!(bindings.len(), 1);
    let binding = bindings[0];
    assert_eq!(binding["roleRef"]["name"], role["metadata"]["name"]);
    let subjects: Vec<(String, String)> = binding["subjects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["namespace"].as_str().unwrap().to_string(),
                s["name"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(subjects, std::slice::from_ref(&gateway));
    // Both accounts get the ClusterRole.
    let crb = docs
        .iter()
        .find(|d| kind(d) == "ClusterRoleBinding")
        .expect("a ClusterRoleBinding");
    let bound: BTreeSet<(String, String)> = crb["subjects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["namespace"].as_str().unwrap().to_string(),
                s["name"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(bound, BTreeSet::from([gateway, node_proxy]));
}
