//! The MeshConfig settings analysis depends on, with Istio's defaults
//! (`pkg/config/mesh/mesh.go`). `--mesh-config FILE` merges a YAML file over them.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", default)]
pub struct MeshConfig {
    pub root_namespace: String,
    pub ingress_service: String,
    pub ingress_selector: String,
    pub default_config: ProxyConfig,
    pub default_service_export_to: Vec<String>,
    pub default_virtual_service_export_to: Vec<String>,
    pub default_destination_rule_export_to: Vec<String>,
    /// Whatever else the file held, kept for `config_dump`.
    #[serde(flatten)]
    pub other: BTreeMap<String, Value>,
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", default)]
pub struct ProxyConfig {
    pub proxy_metadata: BTreeMap<String, String>,
    #[serde(flatten)]
    pub other: BTreeMap<String, Value>,
}

impl Default for MeshConfig {
    fn default() -> Self {
        MeshConfig {
            root_namespace: "istio-system".into(),
            ingress_service: "istio-ingressgateway".into(),
            ingress_selector: "ingressgateway".into(),
            default_config: ProxyConfig::default(),
            default_service_export_to: vec!["*".into()],
            default_virtual_service_export_to: vec!["*".into()],
            default_destination_rule_export_to: vec!["*".into()],
            other: BTreeMap::new(),
        }
    }
}

impl MeshConfig {
    /// Parse MeshConfig YAML and merge it over the defaults.
    pub fn from_yaml(text: &str) -> Result<MeshConfig, String> {
        let docs = crate::load::yaml::parse_documents(text, &Default::default())
            .map_err(|e| format!("line {}: {}", e.line, e.message))?;
        let mut merged = serde_json::to_value(Self::default_value()).unwrap_or(Value::Null);
        for d in docs {
            merge(&mut merged, d.value);
        }
        serde_json::from_value(merged).map_err(|e| e.to_string())
    }

    fn default_value() -> Value {
        serde_json::json!({
            "rootNamespace": "istio-system",
            "ingressService": "istio-ingressgateway",
            "ingressSelector": "ingressgateway",
        })
    }

    fn proxy_metadata_true(&self, key: &str) -> bool {
        self.default_config
            .proxy_metadata
            .get(key)
            .is_some_and(|v| v.eq_ignore_ascii_case("true"))
    }

    /// Whether ServiceEntries get auto-allocated addresses: DNS capture with
    /// DNS auto-allocation, or `PILOT_ENABLE_IP_AUTOALLOCATE`.
    pub fn auto_allocates_addresses(&self) -> bool {
        (self.proxy_metadata_true("ISTIO_META_DNS_CAPTURE")
            && self.proxy_metadata_true("ISTIO_META_DNS_AUTO_ALLOCATE"))
            || self.proxy_metadata_true("PILOT_ENABLE_IP_AUTOALLOCATE")
    }
}

fn merge(base: &mut Value, over: Value) {
    match (base, over) {
        (Value::Object(b), Value::Object(o)) => {
            for (k, v) in o {
                merge(b.entry(k).or_insert(Value::Null), v);
            }
        }
        (b, o) => *b = o,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_istios() {
        let m = MeshConfig::default();
        assert_eq!(m.root_namespace, "istio-system");
        assert!(!m.auto_allocates_addresses());
    }

    #[test]
    fn dns_capture_and_auto_allocate_together_allocate() {
        let m = MeshConfig::from_yaml(
            "defaultConfig:\n  proxyMetadata:\n    ISTIO_META_DNS_CAPTURE: \"true\"\n    ISTIO_META_DNS_AUTO_ALLOCATE: \"true\"\n",
        )
        .unwrap();
        assert!(m.auto_allocates_addresses());
        assert_eq!(m.root_namespace, "istio-system");
        let m = MeshConfig::from_yaml(
            "defaultConfig:\n  proxyMetadata:\n    ISTIO_META_DNS_CAPTURE: \"true\"\n",
        )
        .unwrap();
        assert!(!m.auto_allocates_addresses());
    }
}
