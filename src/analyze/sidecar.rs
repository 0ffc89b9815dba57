//! Sidecar analyzer (`pkg/config/analysis/analyzers/sidecar`).

use std::collections::{BTreeMap, HashMap, HashSet};

use super::gateway::selector_string;
use super::message::{
    CONFLICTING_SIDECAR_WORKLOAD_SELECTORS, INEFFECTIVE_POLICY,
    MULTIPLE_SIDECARS_WITHOUT_WORKLOAD_SELECTORS, REFERENCED_RESOURCE_NOT_FOUND, go_list, q,
};
use super::{Analyzer, Context, Message};
use crate::config::Resource;
use crate::model::selector_matches;
use crate::model::{self, k8s};

/// IST0101 (selector matches no pod), IST0110 (pod selected twice), IST0111
/// (several selector-less Sidecars in a namespace), IST0167 (ambient mode).
pub struct SelectorAnalyzer;

impl Analyzer for SelectorAnalyzer {
    fn name(&self) -> &'static str {
        "sidecar.SelectorAnalyzer"
    }
    fn description(&self) -> &'static str {
        "Validates that sidecars that define a workload selector match at least one pod, and that there aren't multiple sidecar resources that select overlapping pods"
    }
    fn analyze(&self, ctx: &Context<'_>, out: &mut Vec<Message>) {
        let cfg = ctx.config;
        // Pod index → Sidecars selecting it, in first-seen order of pods.
        let mut pod_order: Vec<usize> = Vec::new();
        let mut pods_to_sidecars: HashMap<usize, Vec<&Resource<model::Sidecar>>> = HashMap::new();
        // Namespace → selector-less Sidecars, in first-seen order.
        let mut ns_order: Vec<&str> = Vec::new();
        let mut ns_to_sidecars: HashMap<&str, Vec<&Resource<model::Sidecar>>> = HashMap::new();

        for sc in &cfg.sidecars {
            let labels = sc
                .spec
                .workload_selector
                .as_ref()
                .map(|w| &w.labels)
                .filter(|l| !l.is_empty());
            let Some(labels) = labels else {
                let ns = sc.namespace();
                if !ns_to_sidecars.contains_key(ns) {
                    ns_order.push(ns);
                }
                ns_to_sidecars.entry(ns).or_default().push(sc);
                continue;
            };
            let mut found = false;
            for (i, pod) in cfg.pods.iter().enumerate() {
                if pod.namespace() != sc.namespace() || !selector_matches(labels, &pod.meta.labels)
                {
                    continue;
                }
                found = true;
                if !pods_to_sidecars.contains_key(&i) {
                    pod_order.push(i);
                }
                pods_to_sidecars.entry(i).or_default().push(sc);
            }
            if !found {
                let first = labels.keys().next().map(String::as_str).unwrap_or("");
                out.push(Message::new(
                    &REFERENCED_RESOURCE_NOT_FOUND,
                    sc.reference(),
                    Some(format!("spec.workloadSelector.labels.{first}")),
                    format!(
                        "Referenced selector not found: {}",
                        q(&selector_string(labels))
                    ),
                ));
            }
        }

        let namespaces: HashMap<&str, &Resource<k8s::NamespaceSpec>> =
            cfg.namespaces.iter().map(|n| (n.name(), n)).collect();
        let mut reported: HashSet<String> = HashSet::new();

        for i in pod_order {
            let Some(pod) = cfg.pods.get(i) else {
                continue;
            };
            let sidecars = pods_to_sidecars.get(&i).map(Vec::as_slice).unwrap_or(&[]);
            let ambient = pod_in_ambient_mode(&pod.meta.annotations);
            if sidecars.len() == 1 && !ambient {
                continue;
            }
            let names: Vec<&str> = sidecars.iter().map(|s| s.name()).collect();
            for sc in sidecars {
                if ambient {
                    if reported.insert(sc.key()) {
                        out.push(ineffective(
                            sc,
                            "selected workload is in ambient mode, the policy has no impact",
                        ));
                    }
                    continue;
                }
                out.push(Message::new(
                    &CONFLICTING_SIDECAR_WORKLOAD_SELECTORS,
                    sc.reference(),
                    Some("metadata.name".to_string()),
                    format!(
                        "The Sidecars {} in namespace {} select the same workload pod {}, which can lead to undefined behavior.",
                        go_list(&names),
                        q(pod.namespace()),
                        q(pod.name())
                    ),
                ));
            }
        }

        for ns in ns_order {
            let sidecars = ns_to_sidecars.get(ns).map(Vec::as_slice).unwrap_or(&[]);
            if namespaces
                .get(ns)
                .is_some_and(|n| namespace_in_ambient_mode(&n.meta.labels))
            {
                for sc in sidecars {
                    if reported.insert(sc.key()) {
                        out.push(ineffective(
                            sc,
                            "namespace is in ambient mode, the policy has no impact",
                        ));
                    }
                }
                continue;
            }
            if sidecars.len() > 1 {
                let names: Vec<&str> = sidecars.iter().map(|s| s.name()).collect();
                for sc in sidecars {
                    out.push(Message::new(
                        &MULTIPLE_SIDECARS_WITHOUT_WORKLOAD_SELECTORS,
                        sc.reference(),
                        Some("metadata.name".to_string()),
                        format!(
                            "The Sidecars {} in namespace {} have no workload selector, which can lead to undefined behavior.",
                            go_list(&names),
                            q(ns)
                        ),
                    ));
                }
            }
        }
    }
}

fn ineffective(sc: &Resource<model::Sidecar>, why: &str) -> Message {
    Message::new(
        &INEFFECTIVE_POLICY,
        sc.reference(),
        Some("metadata.name".to_string()),
        format!("The policy has no impact: {why}."),
    )
}

/// `util.PodInAmbientMode`: the ambient redirection annotation is `enabled`.
fn pod_in_ambient_mode(annotations: &BTreeMap<String, String>) -> bool {
    annotations
        .get("ambient.istio.io/redirection")
        .is_some_and(|v| v == "enabled")
}

/// `util.NamespaceInAmbientMode`: dataplane mode `ambient`, unless sidecar
/// injection or a revision label is set.
fn namespace_in_ambient_mode(labels: &BTreeMap<String, String>) -> bool {
    if labels
        .get("istio-injection")
        .is_some_and(|v| v == "enabled")
    {
        return false;
    }
    if labels.get("istio.io/rev").is_some_and(|v| !v.is_empty()) {
        return false;
    }
    labels
        .get("istio.io/dataplane-mode")
        .is_some_and(|v| v == "ambient")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analyze::MeshConfig;
    use crate::load::{LoadOptions, load_str};

    fn run(yaml: &str) -> Vec<String> {
        let config = load_str(
            yaml,
            "t.yaml",
            &LoadOptions {
                namespace: Some("default".into()),
                ..Default::default()
            },
        );
        let mesh = MeshConfig::default();
        let ctx = Context::new(&config, &mesh);
        let mut out = Vec::new();
        SelectorAnalyzer.analyze(&ctx, &mut out);
        out.iter().map(|m| m.to_string()).collect()
    }

    fn sidecar(name: &str, selector: &str) -> String {
        format!(
            "apiVersion: networking.istio.io/v1\nkind: Sidecar\nmetadata: {{name: {name}}}\nspec:\n{selector}  egress: [{{hosts: ['./*']}}]\n---\n"
        )
    }

    #[test]
    fn selector_matching_no_pod_is_reported() {
        let out = run(&sidecar(
            "s",
            "  workloadSelector:\n    labels: {app: ghost}\n",
        ));
        assert_eq!(
            out,
            vec!["Error [IST0101] (Sidecar default/s t.yaml:6) Referenced selector not found: \"app=ghost\"".to_string()]
        );
    }

    #[test]
    fn two_sidecars_selecting_one_pod_conflict() {
        let sel = "  workloadSelector:\n    labels: {app: a}\n";
        let yaml = format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: a-1, labels: {{app: a}}}}\n---\n{}{}",
            sidecar("one", sel),
            sidecar("two", sel)
        );
        let out = run(&yaml);
        assert_eq!(out.len(), 2, "{out:?}");
        assert_eq!(
            out[0],
            "Error [IST0110] (Sidecar default/one t.yaml:7) The Sidecars [one two] in namespace \"default\" select the same workload pod \"a-1\", which can lead to undefined behavior."
        );
    }

    #[test]
    fn selectorless_sidecars_conflict_unless_namespace_is_ambient() {
        let yaml = format!("{}{}", sidecar("left", ""), sidecar("right", ""));
        let out = run(&yaml);
        assert_eq!(
            out[0],
            "Error [IST0111] (Sidecar default/left t.yaml:3) The Sidecars [left right] in namespace \"default\" have no workload selector, which can lead to undefined behavior."
        );
        let ambient = format!(
            "apiVersion: v1\nkind: Namespace\nmetadata: {{name: default, labels: {{istio.io/dataplane-mode: ambient}}}}\n---\n{yaml}"
        );
        let out = run(&ambient);
        assert_eq!(out.len(), 2, "{out:?}");
        assert!(
            out[0].ends_with(
                "The policy has no impact: namespace is in ambient mode, the policy has no impact."
            ),
            "{out:?}"
        );
    }
}
