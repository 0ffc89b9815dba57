//! `networking.istio.io` ServiceEntry (`service_entry.proto`).

use serde::{Deserialize, Serialize};

use crate::model::{WorkloadEntry, WorkloadSelector};

/// `ServiceEntry`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ServiceEntry {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hosts: Vec<String>,
    /// VIPs or CIDRs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub addresses: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<ServicePort>,
    /// Unset means MESH_EXTERNAL.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub location: Option<Location>,
    /// Unset means NONE.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resolution: Option<Resolution>,
    /// Inline endpoints; exclusive with `workloadSelector`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub endpoints: Vec<WorkloadEntry>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workload_selector: Option<WorkloadSelector>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub export_to: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subject_alt_names: Vec<String>,
}

/// `ServicePort`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ServicePort {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub number: Option<u32>,
    /// Parsed case-insensitively with `Protocol::parse`; empty means sniffed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Defaults to `number`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_port: Option<u32>,
}

/// `ServiceEntry.Location`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Location {
    #[default]
    MeshExternal,
    MeshInternal,
}

/// `ServiceEntry.Resolution`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Resolution {
    #[default]
    None,
    Static,
    Dns,
    DnsRoundRobin,
    DynamicDns,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn external_with_endpoints() {
        let se: ServiceEntry = serde_json::from_value(json!({
            "hosts": ["mymongodb.somedomain"],
            "addresses": ["192.192.192.192/24"],
            "ports": [{"number": 27018, "name": "mongo", "protocol": "MONGO", "targetPort": 27017}],
            "location": "MESH_INTERNAL",
            "resolution": "STATIC",
            "endpoints": [
                {"address": "2.2.2.2", "ports": {"mongo": 7777}, "labels": {"app": "mongo"}},
                {"address": "3.3.3.3", "weight": 2}
            ],
            "exportTo": ["*"],
            "subjectAltNames": ["spiffe://cluster.local/ns/db/sa/mongo"]
        }))
        .unwrap();
        assert_eq!(se.location, Some(Location::MeshInternal));
        assert_eq!(se.resolution, Some(Resolution::Static));
        assert_eq!(se.ports[0].target_port, Some(27017));
        assert_eq!(se.endpoints[0].ports["mongo"], 7777);
        assert_eq!(se.endpoints[1].weight, Some(2));

        let dyn_dns: ServiceEntry = serde_json::from_value(json!({
            "hosts": ["*.example.com"], "resolution": "DYNAMIC_DNS",
            "workloadSelector": {"labels": {"app": "x"}}
        }))
        .unwrap();
        assert_eq!(dyn_dns.resolution, Some(Resolution::DynamicDns));
        assert_eq!(dyn_dns.workload_selector.unwrap().labels["app"], "x");
    }

    #[test]
    fn unknown_endpoint_field_is_rejected() {
        let err = serde_json::from_value::<ServiceEntry>(json!({
            "hosts": ["a.example"], "endpoints": [{"address": "1.1.1.1", "port": 80}]
        }))
        .unwrap_err();
        assert!(err.to_string().contains("unknown field `port`"), "{err}");
    }
}
