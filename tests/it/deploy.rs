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

/// Each strait workload drains on SIGTERM before the kubelet's SIGKILL
/// (`--drain-timeout` shorter than `terminationGracePeriodSeconds`, 30 s
/// when unset), asks for CPU and memory, and runs as non-root with a
/// read-only root filesystem and no capabilities.
#[test]
fn workloads_drain_within_their_grace_period_request_resources_and_run_as_non_root() {
    let mut checked = 0;
    for (file, doc) in documents() {
        if !matches!(kind(&doc), "DaemonSet" | "Deployment") {
            continue;
        }
        let pod = &doc["spec"]["template"]["spec"];
        let grace = pod["terminationGracePeriodSeconds"].as_u64().unwrap_or(30);
        // workload-example.yaml's Deployment is a workload, not strait.
        let Some(c) = pod["containers"]
            .as_array()
            .and_then(|cs| cs.iter().find(|c| c["name"] == "strait"))
        else {
            continue;
        };
        let drain = c["args"]
            .as_array()
            .unwrap()
            .iter()
            .find_map(|a| a.as_str()?.strip_prefix("--drain-timeout="))
            .unwrap_or("10s");
        let drain = strait::model::Duration::parse(drain).unwrap().as_std();
        assert!(
            drain < std::time::Duration::from_secs(grace),
            "{file}: --drain-timeout {drain:?} must end before the {grace}s grace period"
        );
        let requests = &c["resources"]["requests"];
        assert!(
            requests["cpu"].is_string() && requests["memory"].is_string(),
            "{file}: resource requests: {requests}"
        );
        assert_eq!(pod["securityContext"]["runAsNonRoot"], true, "{file}");
        let sc = &c["securityContext"];
        assert_eq!(sc["allowPrivilegeEscalation"], false, "{file}");
        assert_eq!(sc["readOnlyRootFilesystem"], true, "{file}");
        assert_eq!(
            sc["capabilities"]["drop"],
            serde_json::json!(["ALL"]),
            "{file}"
        );
        checked += 1;
    }
    assert_eq!(checked, 2, "the node proxy and the gateway");
}

/// The gateway Deployment is the workload its `--labels` name (so a
/// Gateway with that `selector` gets its servers), and its Service selects
/// those Pods on ports the gateway listens on (server port + the
/// `--port-offset`).
#[test]
fn the_gateway_pods_carry_their_labels_and_the_service_selects_them() {
    let docs: Vec<Value> = documents().into_iter().map(|(_, d)| d).collect();
    let deployment = docs
        .iter()
        .find(|d| {
            kind(d) == "Deployment"
                && d["spec"]["template"]["spec"]["containers"][0]["name"] == "strait"
        })
        .expect("the gateway Deployment");
    let pod_labels = &deployment["spec"]["template"]["metadata"]["labels"];
    let c = &deployment["spec"]["template"]["spec"]["containers"][0];
    let args: Vec<&str> = c["args"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(args.contains(&"--gateway"), "{args:?}");
    let labels = args
        .iter()
        .find_map(|a| a.strip_prefix("--labels="))
        .expect("--labels");
    for kv in labels.split(',') {
        let (k, v) = kv.split_once('=').unwrap();
        assert_eq!(pod_labels[k], v, "the Pods carry {kv}: {pod_labels}");
    }
    let offset: u64 = args
        .iter()
        .find_map(|a| a.strip_prefix("--port-offset="))
        .map_or(0, |o| o.parse().unwrap());
    let service = docs
        .iter()
        .find(|d| kind(d) == "Service" && d["metadata"]["name"] == deployment["metadata"]["name"])
        .expect("the gateway Service (named as its Deployment)");
    assert_eq!(
        service["metadata"]["namespace"],
        deployment["metadata"]["namespace"]
    );
    for (k, v) in service["spec"]["selector"].as_object().unwrap() {
        assert_eq!(&pod_labels[k], v, "the Service selects the Pods by {k}");
    }
    let container_ports: BTreeSet<u64> = c["ports"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["containerPort"].as_u64())
        .collect();
    for p in service["spec"]["ports"].as_array().unwrap() {
        let (port, target) = (
            p["port"].as_u64().unwrap(),
            p["targetPort"].as_u64().unwrap(),
        );
        assert_eq!(
            target,
            port + offset,
            "{p}: the listener of server port {port}"
        );
        assert!(container_ports.contains(&target), "{p}");
    }
}

/// The `Dockerfile` (no container engine runs here): multi-stage, a
/// static (musl, Alpine) build of the `strait` binary, a distroless static
/// base running as a non-root user; and what it copies into the build
/// stage is a package cargo can read (every target file it declares).
#[test]
fn the_dockerfile_builds_a_static_non_root_image_from_what_it_copies() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(root.join("Dockerfile")).expect("Dockerfile");
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .collect();
    let froms: Vec<&str> = lines
        .iter()
        .filter(|l| l.starts_with("FROM "))
        .copied()
        .collect();
    assert!(froms.len() >= 2, "multi-stage: {froms:?}");
    assert!(
        froms[0].contains("alpine"),
        "a musl (static) build: {}",
        froms[0]
    );
    let last = froms.last().unwrap();
    assert!(
        last.contains("distroless/static"),
        "a minimal static base: {last}"
    );
    assert!(text.contains("--bin strait"), "builds the strait binary");
    let user = lines
        .iter()
        .rev()
        .find_map(|l| l.strip_prefix("USER "))
        .expect("a USER in the final stage");
    let uid = user.split(':').next().unwrap();
    assert!(uid != "0" && uid != "root", "non-root: USER {user}");
    // The build stage's COPYs (not `--from`), into a scratch directory:
    // cargo must read the package from them alone.
    let scratch = tempfile::tempdir().unwrap();
    let stage = &text[..text.find(last).unwrap()];
    for l in stage
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("COPY "))
    {
        let parts: Vec<&str> = l.split_whitespace().skip(1).collect();
        assert!(!parts[0].starts_with("--"), "{l}");
        let (dest, sources) = parts.split_last().unwrap();
        // Relative to the WORKDIR (the scratch directory); `dir/` takes
        // each source by its name.
        let dest = scratch.path().join(dest);
        for s in sources {
            let to = if l.ends_with('/') {
                dest.join(Path::new(s).file_name().unwrap())
            } else {
                dest.clone()
            };
            copy(&root.join(s), &to);
        }
    }
    let out = Command::new(env!("CARGO"))
        .args([
            "metadata",
            "--no-deps",
            "--offline",
            "--format-version",
            "1",
        ])
        .arg("--manifest-path")
        .arg(scratch.path().join("Cargo.toml"))
        .output()
        .expect("cargo metadata");
    assert!(
        out.status.success(),
        "the build stage's files are not a package cargo can read: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: Value = serde_json::from_slice(&out.stdout).unwrap();
    let bins: Vec<&str> = meta["packages"][0]["targets"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["kind"][0] == "bin")
        .filter_map(|t| t["name"].as_str())
        .collect();
    assert_eq!(bins, ["strait"]);
    // Files the sources embed (`include_str!`) are copied too (the demo's
    // examples/): cargo metadata does not compile, so look for them.
    let mut embedded = 0;
    for file in rust_files(&scratch.path().join("src")) {
        let code = std::fs::read_to_string(&file).unwrap();
        let parts = ["include_str!(\"", "include_bytes!(\""]
            .into_iter()
            .flat_map(|m| code.split(m).skip(1));
        for part in parts {
            let Some(rel) = part.split('"').next() else {
                continue;
            };
            let at = file.parent().unwrap().join(rel);
            assert!(
                at.exists(),
                "{} embeds {rel}, not copied into the image's build",
                file.display()
            );
            embedded += 1;
        }
    }
    assert!(
        embedded > 0,
        "the sources embed files (the demo's examples)"
    );
}

/// Every `.rs` file under `dir`.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(rust_files(&p));
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
    out
}

/// `cp -r from to`.
fn copy(from: &Path, to: &Path) {
    if from.is_dir() {
        std::fs::create_dir_all(to).unwrap();
        for e in std::fs::read_dir(from).unwrap() {
            let e = e.unwrap();
            copy(&e.path(), &to.join(e.file_name()));
        }
    } else {
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(from, to).unwrap_or_else(|e| panic!("{}: {e}", from.display()));
    }
}
