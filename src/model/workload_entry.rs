//! `networking.istio.io` WorkloadEntry (`workload_entry.proto`); also the
//! element type of `ServiceEntry.endpoints`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// `WorkloadEntry`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WorkloadEntry {
    /// IP, FQDN (DNS resolution only) or `unix://` path.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// Service port name → endpoint port; takes precedence over `targetPort`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub ports: BTreeMap<String, u32>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub network: Option<String>,
    /// `region/zone/subzone`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub locality: Option<String>,
    /// Relative LB weight.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub weight: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service_account: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn vm_entry() {
        let we: WorkloadEntry = serde_json::from_value(json!({
            "address": "2.2.2.2",
            "ports": {"http": 8080},
            "labels": {"app": "details-legacy", "instance-id": "vm1"},
            "network": "vm-net",
            "locality": "us-east1/us-east1-b",
            "weight": 3,
            "serviceAccount": "details-legacy"
        }))
        .unwrap();
        assert_eq!(we.ports["http"], 8080);
        assert_eq!(we.weight, Some(3));
        assert_eq!(we.service_account.as_deref(), Some("details-legacy"));
        assert_eq!(
            serde_json::to_value(WorkloadEntry::default()).unwrap(),
            json!({})
        );
        let err =
            serde_json::from_value::<WorkloadEntry>(json!({"adress": "1.1.1.1"})).unwrap_err();
        assert!(err.to_string().contains("unknown field `adress`"), "{err}");
    }
}
