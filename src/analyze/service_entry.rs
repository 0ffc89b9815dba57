//! ServiceEntry analyzers (`pkg/config/analysis/analyzers/serviceentry`).

use std::collections::{BTreeMap, BTreeSet, HashSet};

use super::message::{CONFLICTING_SERVICE_ENTRY_PROTOCOL, SERVICE_ENTRY_ADDRESSES_REQUIRED, q};
use super::registry::scopes;
use super::{Analyzer, Context, MeshConfig, Message};
use crate::config::Resource;
use crate::model;

/// IST0134: TCP (or unset protocol) ports on a ServiceEntry without addresses.
pub struct ProtocolAddressesAnalyzer;

impl Analyzer for ProtocolAddressesAnalyzer {
    fn name(&self) -> &'static str {
        "serviceentry.Analyzer"
    }
    fn description(&self) -> &'static str {
        "Checks the validity of ServiceEntry"
    }
    fn analyze(&self, ctx: &Context<'_>, out: &mut Vec<Message>) {
        if auto_allocated(ctx.mesh) {
            return;
        }
        for se in &ctx.config.service_entries {
            if !se.spec.addresses.is_empty() || status_has_addresses(se) {
                continue;
            }
            for (i, port) in se.spec.ports.iter().enumerate() {
                let proto = port.protocol.as_deref().unwrap_or("");
                if proto.is_empty() || proto.eq_ignore_ascii_case("TCP") {
                    out.push(Message::new(
                        &SERVICE_ENTRY_ADDRESSES_REQUIRED,
                        se.reference(),
                        Some(format!("spec.ports[{i}].name")),
                        "ServiceEntry addresses are required for this protocol.".to_string(),
                    ));
                }
            }
        }
    }
}

/// Istio's reading of the mesh config: DNS capture on, together with DNS
/// auto-allocation or `PILOT_ENABLE_IP_AUTOALLOCATE` (values exactly `true`).
fn auto_allocated(mesh: &MeshConfig) -> bool {
    let md = &mesh.default_config.proxy_metadata;
    let is_true = |k: &str| md.get(k).is_some_and(|v| v == "true");
    is_true("ISTIO_META_DNS_CAPTURE")
        && (is_true("ISTIO_META_DNS_AUTO_ALLOCATE") || is_true("PILOT_ENABLE_IP_AUTOALLOCATE"))
}

/// Whether `status.addresses` holds any allocated address.
fn status_has_addresses(se: &Resource<model::ServiceEntry>) -> bool {
    se.status
        .as_ref()
        .and_then(|s| s.get("addresses"))
        .and_then(|a| a.as_array())
        .is_some_and(|a| !a.is_empty())
}

/// IST0177: one host and port declared with different protocols.
pub struct ConflictingServiceEntryProtocolAnalyzer;

impl Analyzer for ConflictingServiceEntryProtocolAnalyzer {
    fn name(&self) -> &'static str {
        "serviceentry.ConflictingServiceEntryProtocolAnalyzer"
    }
    fn description(&self) -> &'static str {
        "Checks if multiple ServiceEntries define the same host and port with different protocols"
    }
    fn analyze(&self, ctx: &Context<'_>, out: &mut Vec<Message>) {
        let ses = &ctx.config.service_entries;
        // (scope, literal host, port) → (protocol, index of the SE).
        let mut index: BTreeMap<(String, String, u32), Vec<(String, usize)>> = BTreeMap::new();
        for (idx, se) in ses.iter().enumerate() {
            for scope in scopes(&se.spec.export_to, se.namespace()) {
                for h in &se.spec.hosts {
                    for p in &se.spec.ports {
                        index
                            .entry((scope.clone(), h.clone(), p.number.unwrap_or(0)))
                            .or_default()
                            .push((p.protocol.clone().unwrap_or_default(), idx));
                    }
                }
            }
        }
        let mut reported: HashSet<String> = HashSet::new();
        for ((scope, host, port), entries) in &index {
            let mut entries = entries.clone();
            if scope != "*"
                && let Some(star) = index.get(&("*".to_string(), host.clone(), *port))
            {
                entries.extend(star.iter().cloned());
            }
            let protocols: BTreeSet<String> =
                entries.iter().map(|(p, _)| p.to_uppercase()).collect();
            if protocols.len() < 2 {
                continue;
            }
            let names: BTreeSet<String> = entries.iter().map(|(_, i)| ses[*i].key()).collect();
            let names = names.into_iter().collect::<Vec<_>>().join(", ");
            let protocols = protocols.into_iter().collect::<Vec<_>>().join(", ");
            for (_, i) in &entries {
                let se = &ses[*i];
                if !reported.insert(se.key()) {
                    continue;
                }
                out.push(Message::new(
                    &CONFLICTING_SERVICE_ENTRY_PROTOCOL,
                    se.reference(),
                    Some("metadata.name".to_string()),
                    format!(
                        "Multiple ServiceEntries ({names}) define the same host {} and port {port} with conflicting protocols ({protocols}).",
                        q(host)
                    ),
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::{LoadOptions, load_str};

    fn run(a: &dyn Analyzer, yaml: &str, mesh: &MeshConfig) -> Vec<String> {
        let config = load_str(
            yaml,
            "t.yaml",
            &LoadOptions {
                namespace: Some("default".into()),
                ..Default::default()
            },
        );
        let ctx = Context::new(&config, mesh);
        let mut out = Vec::new();
        a.analyze(&ctx, &mut out);
        out.iter().map(|m| m.to_string()).collect()
    }

    const SE: &str = "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: db}\nspec:\n  hosts: [db.example.com]\n  ports:\n  - {number: 5432, name: pg, protocol: tcp}\n  - {number: 80, name: http, protocol: HTTP}\n  - {number: 81, name: plain}\n";

    #[test]
    fn tcp_and_unset_protocol_ports_need_addresses() {
        let out = run(&ProtocolAddressesAnalyzer, SE, &MeshConfig::default());
        assert_eq!(
            out,
            vec![
                "Warning [IST0134] (ServiceEntry default/db t.yaml:7) ServiceEntry addresses are required for this protocol.".to_string(),
                "Warning [IST0134] (ServiceEntry default/db t.yaml:9) ServiceEntry addresses are required for this protocol.".to_string(),
            ]
        );
    }

    #[test]
    fn auto_allocation_or_status_addresses_suffice() {
        let mesh = MeshConfig::from_yaml(
            "defaultConfig:\n  proxyMetadata:\n    ISTIO_META_DNS_CAPTURE: \"true\"\n    ISTIO_META_DNS_AUTO_ALLOCATE: \"true\"\n",
        )
        .expect("mesh");
        assert!(run(&ProtocolAddressesAnalyzer, SE, &mesh).is_empty());
        let with_status =
            format!("{SE}status:\n  addresses: [{{host: db.example.com, value: 240.240.0.1}}]\n");
        assert!(
            run(
                &ProtocolAddressesAnalyzer,
                &with_status,
                &MeshConfig::default()
            )
            .is_empty()
        );
    }

    #[test]
    fn same_host_port_with_different_protocols_conflicts() {
        let yaml = "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: se-http}\nspec:\n  hosts: [api.example.com]\n  ports: [{number: 443, name: a, protocol: HTTP}]\n---\napiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: se-tls}\nspec:\n  hosts: [api.example.com]\n  ports: [{number: 443, name: b, protocol: TLS}]\n---\napiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: se-private, namespace: other}\nspec:\n  hosts: [api.example.com]\n  exportTo: ['.']\n  ports: [{number: 443, name: c, protocol: tls}]\n";
        let out = run(
            &ConflictingServiceEntryProtocolAnalyzer,
            yaml,
            &MeshConfig::default(),
        );
        assert_eq!(
            out,
            vec![
                "Warning [IST0177] (ServiceEntry default/se-http t.yaml:3) Multiple ServiceEntries (default/se-http, default/se-tls) define the same host \"api.example.com\" and port 443 with conflicting protocols (HTTP, TLS).".to_string(),
                "Warning [IST0177] (ServiceEntry default/se-tls t.yaml:10) Multiple ServiceEntries (default/se-http, default/se-tls) define the same host \"api.example.com\" and port 443 with conflicting protocols (HTTP, TLS).".to_string(),
                "Warning [IST0177] (ServiceEntry other/se-private t.yaml:17) Multiple ServiceEntries (default/se-http, default/se-tls, other/se-private) define the same host \"api.example.com\" and port 443 with conflicting protocols (HTTP, TLS).".to_string(),
            ]
        );
    }
}
