//! DestinationRule analyzers (`pkg/config/analysis/analyzers/destinationrule`).

use std::collections::{BTreeMap, HashMap};

use super::message::{
    DESTINATION_RULE_SUBSET_NOT_SELECT_PODS, NO_SERVER_CERTIFICATE_VERIFICATION_DESTINATION_LEVEL,
    NO_SERVER_CERTIFICATE_VERIFICATION_PORT_LEVEL, UNKNOWN_DESTINATION_RULE_HOST,
};
use super::{Analyzer, Context, Message};
use crate::config::{Kind, Resource};
use crate::model::{
    self, ClientTLSMode, ClientTLSSettings, PortSelector, ServiceEntry, selector_matches,
};

/// IST0128/IST0129: client TLS SIMPLE/MUTUAL without `caCertificates`.
pub struct CaCertificateAnalyzer;

impl Analyzer for CaCertificateAnalyzer {
    fn name(&self) -> &'static str {
        "destinationrule.CaCertificateAnalyzer"
    }
    fn description(&self) -> &'static str {
        "Checks if caCertificates is set when TLS mode is SIMPLE/MUTUAL"
    }
    fn analyze(&self, ctx: &Context<'_>, out: &mut Vec<Message>) {
        for dr in &ctx.config.destination_rules {
            analyze_ca_certificates(dr, out);
        }
    }
}

/// Go's `ClientTLSSettings_TLSmode.String()` for the modes that need a CA.
fn verifying_mode(tls: Option<&ClientTLSSettings>) -> Option<&'static str> {
    match tls?.mode? {
        ClientTLSMode::Simple => Some("SIMPLE"),
        ClientTLSMode::Mutual => Some("MUTUAL"),
        _ => None,
    }
}

/// True when the TLS settings leave the server unverified: no
/// `caCertificates`, unless a `credentialName` is used by a DR with a
/// `workloadSelector` (the gateway case, where the secret carries the CA).
fn lacks_ca(tls: &ClientTLSSettings, has_selector: bool) -> bool {
    let empty = |s: &Option<String>| s.as_deref().unwrap_or("").is_empty();
    if !empty(&tls.ca_certificates) {
        return false;
    }
    !has_selector || empty(&tls.credential_name)
}

/// Protobuf text of a `PortSelector` (`number:9443`), as Go's `String()`.
fn port_selector_text(p: Option<&PortSelector>) -> String {
    match p.and_then(|p| p.number) {
        Some(n) => format!("number:{n}"),
        None => String::new(),
    }
}

fn analyze_ca_certificates(dr: &Resource<model::DestinationRule>, out: &mut Vec<Message>) {
    let spec = &dr.spec;
    let host = spec.host.as_deref().unwrap_or("");
    let has_selector = spec.workload_selector.is_some();
    let full_name = dr.key();
    let Some(tp) = spec.traffic_policy.as_ref() else {
        return;
    };
    if let (Some(mode), Some(tls)) = (verifying_mode(tp.tls.as_ref()), tp.tls.as_ref())
        && lacks_ca(tls, has_selector)
    {
        out.push(Message::new(
            &NO_SERVER_CERTIFICATE_VERIFICATION_DESTINATION_LEVEL,
            dr.reference(),
            Some("spec.trafficPolicy.tls.caCertificates".to_string()),
            format!(
                "DestinationRule {full_name} in namespace {} has TLS mode set to {mode} but no caCertificates are set to validate server identity for host: {host}",
                dr.namespace()
            ),
        ));
    }
    for (i, p) in tp.port_level_settings.iter().enumerate() {
        if let (Some(mode), Some(tls)) = (verifying_mode(p.tls.as_ref()), p.tls.as_ref())
            && lacks_ca(tls, has_selector)
        {
            out.push(Message::new(
                &NO_SERVER_CERTIFICATE_VERIFICATION_PORT_LEVEL,
                dr.reference(),
                Some(format!(
                    "spec.trafficPolicy.portLevelSettings[{i}].tls.caCertificates"
                )),
                format!(
                    "DestinationRule {full_name} in namespace {} has TLS mode set to {mode} but no caCertificates are set to validate server identity for host: {host} at port {}",
                    dr.namespace(),
                    port_selector_text(p.port.as_ref())
                ),
            ));
        }
    }
}

/// IST0174 (host matches no service) and IST0173 (subset selects no workload).
pub struct SubsetSelectPodAnalyzer;

impl Analyzer for SubsetSelectPodAnalyzer {
    fn name(&self) -> &'static str {
        "destinationrule.SubsetSelectPodAnalyzer"
    }
    fn description(&self) -> &'static str {
        "Checks if pods are selected by subsets in destination rules."
    }
    fn analyze(&self, ctx: &Context<'_>, out: &mut Vec<Message>) {
        let pod_labels = pod_labels_with_topology(ctx);
        // By namespace/name, the first of duplicates winning as a scan would:
        // one scan per DestinationRule is quadratic at 10,000 services.
        let mut entries: HashMap<(&str, &str), &Resource<ServiceEntry>> = HashMap::new();
        for s in &ctx.config.service_entries {
            entries.entry((s.namespace(), s.name())).or_insert(s);
        }
        for dr in &ctx.config.destination_rules {
            let host = dr.spec.host.as_deref().unwrap_or("");
            let Some(svc) =
                ctx.registry()
                    .destination_host(dr.namespace(), &dr.spec.export_to, host)
            else {
                out.push(Message::new(
                    &UNKNOWN_DESTINATION_RULE_HOST,
                    dr.reference(),
                    Some("spec.host".to_string()),
                    format!(
                        "The host {host} defined in the DestinationRule does not match any services in the mesh."
                    ),
                ));
                continue;
            };
            if dr.spec.subsets.is_empty() {
                continue;
            }
            // strait: the ServiceEntry behind the host contributes its inline
            // endpoints and the WorkloadEntries it selects as workloads.
            let se = (svc.from.kind == Kind::ServiceEntry)
                .then(|| {
                    entries
                        .get(&(svc.from.namespace.as_str(), svc.from.name.as_str()))
                        .copied()
                })
                .flatten();
            let mut endpoints: Vec<&BTreeMap<String, String>> = Vec::new();
            if let Some(se) = se {
                endpoints.extend(se.spec.endpoints.iter().map(|e| &e.labels));
                if let Some(ws) = &se.spec.workload_selector {
                    endpoints.extend(
                        ctx.config
                            .workload_entries
                            .iter()
                            .filter(|we| {
                                we.namespace() == se.namespace()
                                    && selector_matches(&ws.labels, &we.spec.labels)
                            })
                            .map(|we| &we.spec.labels),
                    );
                }
            }
            for (i, subset) in dr.spec.subsets.iter().enumerate() {
                let mut selector = svc.workload_selector.clone();
                selector.extend(subset.labels.iter().map(|(k, v)| (k.clone(), v.clone())));
                let matched = pod_labels.iter().any(|l| selector_matches(&selector, l))
                    || endpoints.iter().any(|l| selector_matches(&selector, l));
                if matched {
                    continue;
                }
                let name = subset.name.as_deref().unwrap_or("");
                let detail = if selector.is_empty() {
                    String::new()
                } else {
                    let labels: Vec<String> =
                        selector.iter().map(|(k, v)| format!("{k}: {v}")).collect();
                    format!(
                        " (labels {{{}}} match no Pod, ServiceEntry endpoint or WorkloadEntry)",
                        labels.join(", ")
                    )
                };
                out.push(Message::new(
                    &DESTINATION_RULE_SUBSET_NOT_SELECT_PODS,
                    dr.reference(),
                    Some(format!("spec.subsets[{i}].name")),
                    format!(
                        "The Subset {name} defined in the DestinationRule does not select any pods. Which may lead to 503 UH (NoHealthyUpstream).{detail}"
                    ),
                ));
            }
        }
    }
}

const LABEL_REGION: &str = "topology.kubernetes.io/region";
const LABEL_ZONE: &str = "topology.kubernetes.io/zone";
const LABEL_SUBZONE: &str = "topology.istio.io/subzone";
const LABEL_HOSTNAME: &str = "kubernetes.io/hostname";

/// Every pod's labels, augmented with its node's topology labels as pilot
/// does (`augmentPodLabelsWithNodeTopology`).
fn pod_labels_with_topology(ctx: &Context<'_>) -> Vec<BTreeMap<String, String>> {
    let nodes: HashMap<&str, &BTreeMap<String, String>> = ctx
        .config
        .nodes
        .iter()
        .map(|n| (n.name(), &n.meta.labels))
        .collect();
    ctx.config
        .pods
        .iter()
        .map(|pod| {
            let mut labels = pod.meta.labels.clone();
            let node_name = pod.spec.node_name.as_deref().unwrap_or("");
            if node_name.is_empty() {
                return labels;
            }
            let Some(node) = nodes.get(node_name) else {
                return labels;
            };
            for key in [LABEL_REGION, LABEL_ZONE, LABEL_SUBZONE] {
                // Empty values are not topology (pilot's `AugmentLabels`).
                if let Some(v) = node.get(key).filter(|v| !v.is_empty()) {
                    labels.insert(key.to_string(), v.clone());
                }
            }
            labels.insert(LABEL_HOSTNAME.to_string(), node_name.to_string());
            labels
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analyze::MeshConfig;
    use crate::load::{LoadOptions, load_str};

    fn run(a: &dyn Analyzer, yaml: &str) -> Vec<String> {
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
        a.analyze(&ctx, &mut out);
        out.iter().map(|m| m.to_string()).collect()
    }

    #[test]
    fn simple_tls_without_ca_warns_at_destination_and_port_level() {
        let out = run(
            &CaCertificateAnalyzer,
            "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: db-tls}\nspec:\n  host: mydbserver.prod.svc.cluster.local\n  trafficPolicy:\n    tls: {mode: SIMPLE}\n    portLevelSettings:\n    - port: {number: 443}\n      tls: {mode: MUTUAL, clientCertificate: /c, privateKey: /k}\n",
        );
        assert_eq!(
            out,
            vec![
                "Warning [IST0128] (DestinationRule default/db-tls t.yaml:7) DestinationRule default/db-tls in namespace default has TLS mode set to SIMPLE but no caCertificates are set to validate server identity for host: mydbserver.prod.svc.cluster.local".to_string(),
                "Warning [IST0129] (DestinationRule default/db-tls t.yaml:10) DestinationRule default/db-tls in namespace default has TLS mode set to MUTUAL but no caCertificates are set to validate server identity for host: mydbserver.prod.svc.cluster.local at port number:443".to_string(),
            ]
        );
    }

    #[test]
    fn credential_name_with_workload_selector_needs_no_ca() {
        let out = run(
            &CaCertificateAnalyzer,
            "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: db-tls}\nspec:\n  host: db\n  workloadSelector: {matchLabels: {app: gw}}\n  trafficPolicy:\n    tls: {mode: SIMPLE, credentialName: cred}\n",
        );
        assert!(out.is_empty(), "{out:?}");
    }

    #[test]
    fn unknown_host_is_reported() {
        let out = run(
            &SubsetSelectPodAnalyzer,
            "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: fake}\nspec:\n  host: nowhere\n",
        );
        assert_eq!(
            out,
            vec!["Warning [IST0174] (DestinationRule default/fake t.yaml:5) The host nowhere defined in the DestinationRule does not match any services in the mesh.".to_string()]
        );
    }

    const SE_WITH_ENDPOINTS: &str = "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: ext}\nspec:\n  hosts: [api.example.com]\n  ports: [{number: 80, name: http, protocol: HTTP}]\n  resolution: STATIC\n  endpoints:\n  - {address: 1.1.1.1, labels: {version: v1}}\n---\n";

    #[test]
    fn subset_matching_service_entry_endpoint_selects_workloads() {
        let yaml = format!(
            "{SE_WITH_ENDPOINTS}apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {{name: ext}}\nspec:\n  host: api.example.com\n  subsets:\n  - {{name: v1, labels: {{version: v1}}}}\n"
        );
        let out = run(&SubsetSelectPodAnalyzer, &yaml);
        assert!(out.is_empty(), "{out:?}");
    }

    #[test]
    fn subset_matching_nothing_is_reported_with_its_labels() {
        let yaml = format!(
            "{SE_WITH_ENDPOINTS}apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {{name: ext}}\nspec:\n  host: api.example.com\n  subsets:\n  - {{name: v1, labels: {{version: v1}}}}\n  - {{name: v9, labels: {{version: v9}}}}\n"
        );
        let out = run(&SubsetSelectPodAnalyzer, &yaml);
        assert_eq!(
            out,
            vec!["Error [IST0173] (DestinationRule default/ext t.yaml:18) The Subset v9 defined in the DestinationRule does not select any pods. Which may lead to 503 UH (NoHealthyUpstream). (labels {version: v9} match no Pod, ServiceEntry endpoint or WorkloadEntry)".to_string()]
        );
    }

    #[test]
    fn subset_matching_selected_workload_entry_selects_workloads() {
        let yaml = "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: vm}\nspec:\n  hosts: [vm.example.com]\n  ports: [{number: 80, name: http, protocol: HTTP}]\n  workloadSelector: {labels: {app: vm}}\n---\napiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata: {name: vm1}\nspec:\n  address: 2.2.2.2\n  labels: {app: vm, version: v2}\n---\napiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: vm}\nspec:\n  host: vm.example.com\n  subsets:\n  - {name: v2, labels: {version: v2}}\n  - {name: v3, labels: {version: v3}}\n";
        let out = run(&SubsetSelectPodAnalyzer, yaml);
        assert_eq!(out.len(), 1, "{out:?}");
        assert!(out[0].contains("The Subset v3 "), "{out:?}");
        assert!(out[0].contains("{app: vm, version: v3}"), "{out:?}");
    }

    #[test]
    fn pod_matches_through_node_topology_labels() {
        let yaml = "apiVersion: v1\nkind: Service\nmetadata: {name: httpbin}\nspec:\n  ports: [{port: 8000}]\n---\napiVersion: v1\nkind: Pod\nmetadata: {name: p, labels: {app: httpbin}}\nspec: {nodeName: n1}\n---\napiVersion: v1\nkind: Node\nmetadata: {name: n1, labels: {topology.kubernetes.io/zone: z1}}\n---\napiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: d}\nspec:\n  host: httpbin\n  subsets:\n  - {name: z1, labels: {topology.kubernetes.io/zone: z1}}\n  - {name: host, labels: {kubernetes.io/hostname: n1}}\n  - {name: z2, labels: {topology.kubernetes.io/zone: z2}}\n";
        let out = run(&SubsetSelectPodAnalyzer, yaml);
        assert_eq!(out.len(), 1, "{out:?}");
        assert!(out[0].contains("The Subset z2 "), "{out:?}");
    }
}
