//! The service registry as Istio's analyzers see it
//! (`pkg/config/analysis/analyzers/util/service_entry.go`
//! `InitServiceEntryHostMap` and `GetDestinationHost`): every ServiceEntry
//! host and every Kubernetes Service, keyed by export scope and FQDN.

use std::collections::{BTreeMap, HashMap};

use crate::config::{ConfigSet, Kind, ResourceRef};
use crate::model::host;

/// One service port as the analyzers need it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Port {
    pub number: u32,
    pub name: String,
    pub protocol: String,
}

/// A registry entry: a ServiceEntry (for one of its hosts) or a Service.
#[derive(Clone, Debug)]
pub struct Service {
    /// The host as written in the ServiceEntry, or the Service's FQDN.
    pub host: String,
    pub namespace: String,
    pub ports: Vec<Port>,
    /// ServiceEntry `workloadSelector.labels`; empty for Services.
    pub workload_selector: BTreeMap<String, String>,
    pub from: ResourceRef,
}

impl Service {
    pub fn is_kubernetes(&self) -> bool {
        self.from.kind == Kind::Service
    }
}

#[derive(Debug, Default)]
pub struct ServiceRegistry {
    /// `scope/fqdn` → services (several ServiceEntries may declare one host).
    by_key: HashMap<String, Vec<Service>>,
    /// Wildcard ServiceEntry hosts: (scope, host).
    wildcards: Vec<(String, String)>,
}

/// Export scopes of a resource: `*` when `export_to` is empty or holds `*`,
/// else each namespace (`.` is the resource's own).
pub fn scopes(export_to: &[String], own_ns: &str) -> Vec<String> {
    if export_to.is_empty() || export_to.iter().any(|e| e == "*") {
        return vec!["*".to_string()];
    }
    let mut out: Vec<String> = export_to
        .iter()
        .map(|e| {
            if e == "." {
                own_ns.to_string()
            } else {
                e.clone()
            }
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

impl ServiceRegistry {
    pub fn build(config: &ConfigSet) -> ServiceRegistry {
        let mut reg = ServiceRegistry::default();
        for se in &config.service_entries {
            let ports: Vec<Port> = se
                .spec
                .ports
                .iter()
                .map(|p| Port {
                    number: p.number.unwrap_or(0),
                    name: p.name.clone().unwrap_or_default(),
                    protocol: p.protocol.clone().unwrap_or_default(),
                })
                .collect();
            let selector = se
                .spec
                .workload_selector
                .as_ref()
                .map(|s| s.labels.clone())
                .unwrap_or_default();
            for scope in scopes(&se.spec.export_to, se.namespace()) {
                for h in &se.spec.hosts {
                    if host::is_wildcard(h) {
                        reg.wildcards.push((scope.clone(), h.clone()));
                    }
                    reg.by_key
                        .entry(format!("{scope}/{h}"))
                        .or_default()
                        .push(Service {
                            host: h.clone(),
                            namespace: se.namespace().to_string(),
                            ports: ports.clone(),
                            workload_selector: selector.clone(),
                            from: se.reference(),
                        });
                }
            }
        }
        for svc in &config.services {
            let fqdn = format!("{}.{}.svc.cluster.local", svc.name(), svc.namespace());
            let export: Vec<String> = svc
                .meta
                .annotations
                .get("networking.istio.io/exportTo")
                .map(|v| v.split(',').map(|s| s.trim().to_string()).collect())
                .unwrap_or_default();
            let ports: Vec<Port> = svc
                .spec
                .ports
                .iter()
                .map(|p| Port {
                    number: p.port,
                    name: p.name.clone().unwrap_or_default(),
                    protocol: p.protocol.clone().unwrap_or_else(|| "TCP".into()),
                })
                .collect();
            for scope in scopes(&export, svc.namespace()) {
                reg.by_key
                    .entry(format!("{scope}/{fqdn}"))
                    .or_default()
                    .push(Service {
                        host: fqdn.clone(),
                        namespace: svc.namespace().to_string(),
                        ports: ports.clone(),
                        workload_selector: BTreeMap::new(),
                        from: svc.reference(),
                    });
            }
        }
        reg
    }

    /// All entries under one `scope/fqdn` key.
    pub fn get(&self, scope: &str, fqdn: &str) -> Option<&Service> {
        self.by_key
            .get(&format!("{scope}/{fqdn}"))
            .and_then(|v| v.first())
    }

    /// `GetDestinationHost`: the service a resource in `src_ns` with
    /// `export_to` reaches when it names `host`. Note Istio's quirk: the scope
    /// comes from the *referencing* resource's exportTo, not the service's.
    pub fn destination_host(
        &self,
        src_ns: &str,
        export_to: &[String],
        h: &str,
    ) -> Option<&Service> {
        let fqdn = host::to_fqdn(h, src_ns);
        if let Some(s) = self.get("*", &fqdn) {
            return Some(s);
        }
        let own = [src_ns.to_string()];
        let wanted: Vec<String> = if export_to.is_empty() {
            own.to_vec()
        } else {
            export_to
                .iter()
                .map(|e| {
                    if e == "." {
                        src_ns.to_string()
                    } else {
                        e.clone()
                    }
                })
                .collect()
        };
        for scope in &wanted {
            if let Some(s) = self.get(scope, &fqdn) {
                return Some(s);
            }
        }
        for (scope, wild) in &self.wildcards {
            if scope != "*" && scope != src_ns {
                continue;
            }
            let suffix = wild.trim_start_matches('*');
            if fqdn.ends_with(suffix) {
                return self.get(scope, wild);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::{LoadOptions, load_str};

    fn reg(yaml: &str) -> ServiceRegistry {
        ServiceRegistry::build(&load_str(yaml, "t.yaml", &LoadOptions::default()))
    }

    #[test]
    fn kubernetes_service_found_by_short_name_in_its_namespace() {
        let r = reg(
            "apiVersion: v1\nkind: Service\nmetadata: {name: reviews, namespace: default}\nspec:\n  ports: [{port: 9080, name: http}]\n",
        );
        let s = r
            .destination_host("default", &[], "reviews")
            .expect("found");
        assert_eq!(s.ports[0].number, 9080);
        assert!(r.destination_host("other", &[], "reviews").is_none());
        assert!(
            r.destination_host("other", &[], "reviews.default.svc.cluster.local")
                .is_some()
        );
    }

    #[test]
    fn wildcard_service_entry_matches_subdomains() {
        let r = reg(
            "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: w, namespace: default}\nspec:\n  hosts: ['*.example.com']\n  ports: [{number: 443, name: tls, protocol: TLS}]\n",
        );
        assert!(
            r.destination_host("default", &[], "api.example.com")
                .is_some()
        );
        assert!(r.destination_host("default", &[], "example.com").is_none());
    }

    #[test]
    fn private_service_entry_visible_only_in_scope() {
        let r = reg(
            "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: p, namespace: a}\nspec:\n  hosts: [db.internal]\n  exportTo: ['.']\n",
        );
        assert!(r.destination_host("a", &[], "db.internal").is_some());
        assert!(r.destination_host("b", &[], "db.internal").is_none());
    }
}
