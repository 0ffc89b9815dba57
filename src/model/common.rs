//! Types shared by several Istio networking messages: `StringMatch`,
//! `Percent`, `PortSelector`, the two workload-selector shapes, and the
//! protocol names of `pkg/config/protocol`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// gRPC status code names, by code (`grpc/codes`).
pub const GRPC_STATUS_NAMES: [&str; 17] = [
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
];

/// A label selector (`matchLabels`, a Gateway's `selector`, a workload's
/// `sourceLabels`) against a workload's labels: Kubernetes'
/// `labels.SelectorFromSet(selector).Matches(labels)`, every pair present
/// with its value; an empty selector matches every workload.
pub fn selector_matches(
    selector: &BTreeMap<String, String>,
    labels: &BTreeMap<String, String>,
) -> bool {
    selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

/// The code of a gRPC status name (`UNAVAILABLE` → 14).
pub fn grpc_code(name: &str) -> Option<u32> {
    GRPC_STATUS_NAMES
        .iter()
        .position(|n| *n == name)
        .map(|i| i as u32)
}

/// `istio.networking.v1alpha3.StringMatch` (oneof `exact` / `prefix` / `regex`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StringMatch {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exact: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    /// RE2, must match the entire value.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub regex: Option<String>,
}

impl StringMatch {
    /// The set variant as `("exact" | "prefix" | "regex", value)`, or `None`
    /// when no variant is set (`{}`, which means "presence" for header and
    /// query matches). If several are set (invalid; validation reports it),
    /// the first in the order exact, prefix, regex is returned.
    pub fn kind(&self) -> Option<(&'static str, &str)> {
        if let Some(v) = &self.exact {
            Some(("exact", v))
        } else if let Some(v) = &self.prefix {
            Some(("prefix", v))
        } else {
            self.regex.as_deref().map(|v| ("regex", v))
        }
    }

    /// Number of variants set; more than one is a validation error.
    pub fn set_count(&self) -> usize {
        [&self.exact, &self.prefix, &self.regex]
            .iter()
            .filter(|v| v.is_some())
            .count()
    }
}

/// `istio.networking.v1alpha3.Percent`: a double in 0..=100.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Percent {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<f64>,
}

/// `istio.networking.v1alpha3.PortSelector`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PortSelector {
    /// 1–65535; range-checked by validation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub number: Option<u32>,
}

/// `istio.networking.v1alpha3.WorkloadSelector` (Sidecar, ServiceEntry): `labels`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WorkloadSelector {
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

/// `istio.type.v1beta1.WorkloadSelector` (DestinationRule `workloadSelector`):
/// `matchLabels`, unlike the networking `WorkloadSelector`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MatchLabelsSelector {
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub match_labels: BTreeMap<String, String>,
}

/// Istio's `protocol.Instance`, as returned by `protocol.Parse`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Protocol {
    Http,
    Https,
    Grpc,
    GrpcWeb,
    Http2,
    HttpProxy,
    Mongo,
    Mysql,
    Redis,
    Tcp,
    Tls,
    Udp,
    /// Unknown or empty protocol name (Istio's `Unsupported`; sniffed).
    Unsupported,
}

impl Protocol {
    /// Case-insensitive parse of an Istio protocol name; anything unknown
    /// (including the empty string) is `Unsupported`.
    pub fn parse(s: &str) -> Protocol {
        match s.to_ascii_uppercase().as_str() {
            "HTTP" => Protocol::Http,
            "HTTPS" => Protocol::Https,
            "GRPC" => Protocol::Grpc,
            "GRPC-WEB" => Protocol::GrpcWeb,
            "HTTP2" => Protocol::Http2,
            "HTTP_PROXY" => Protocol::HttpProxy,
            "MONGO" => Protocol::Mongo,
            "MYSQL" => Protocol::Mysql,
            "REDIS" => Protocol::Redis,
            "TCP" => Protocol::Tcp,
            "TLS" => Protocol::Tls,
            "UDP" => Protocol::Udp,
            _ => Protocol::Unsupported,
        }
    }

    /// Canonical Istio spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Http => "HTTP",
            Protocol::Https => "HTTPS",
            Protocol::Grpc => "GRPC",
            Protocol::GrpcWeb => "GRPC-WEB",
            Protocol::Http2 => "HTTP2",
            Protocol::HttpProxy => "HTTP_PROXY",
            Protocol::Mongo => "MONGO",
            Protocol::Mysql => "MYSQL",
            Protocol::Redis => "REDIS",
            Protocol::Tcp => "TCP",
            Protocol::Tls => "TLS",
            Protocol::Udp => "UDP",
            Protocol::Unsupported => "UnsupportedProtocol",
        }
    }

    /// HTTP family: gets `http` routes.
    pub fn is_http(self) -> bool {
        matches!(
            self,
            Protocol::Http
                | Protocol::Http2
                | Protocol::Grpc
                | Protocol::GrpcWeb
                | Protocol::HttpProxy
        )
    }

    /// HTTPS and TLS: get `tls` (SNI) routes.
    pub fn is_tls(self) -> bool {
        matches!(self, Protocol::Https | Protocol::Tls)
    }

    /// Everything that is neither HTTP nor TLS, including unset/unknown.
    pub fn is_tcp(self) -> bool {
        !self.is_http() && !self.is_tls()
    }
}

impl std::fmt::Display for Protocol {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Duration;
    use serde_json::json;

    #[test]
    fn string_match_kind() {
        let m: StringMatch = serde_json::from_value(json!({"prefix": "/api"})).unwrap();
        assert_eq!(m.kind(), Some(("prefix", "/api")));
        assert_eq!(m.set_count(), 1);
        let empty: StringMatch = serde_json::from_value(json!({})).unwrap();
        assert_eq!(empty.kind(), None);
        assert_eq!(serde_json::to_value(&m).unwrap(), json!({"prefix": "/api"}));
        let err = serde_json::from_value::<StringMatch>(json!({"suffix": "x"})).unwrap_err();
        assert!(err.to_string().contains("unknown field `suffix`"), "{err}");
    }

    #[test]
    fn protocol_parse() {
        assert_eq!(Protocol::parse("grpc-web"), Protocol::GrpcWeb);
        assert_eq!(Protocol::parse("Http_Proxy"), Protocol::HttpProxy);
        assert_eq!(Protocol::parse(""), Protocol::Unsupported);
        assert_eq!(Protocol::parse("http3"), Protocol::Unsupported);
        assert!(Protocol::parse("http2").is_http());
        assert!(Protocol::parse("https").is_tls());
        assert!(Protocol::parse("mongo").is_tcp());
        assert!(Protocol::Unsupported.is_tcp());
        assert!(!Protocol::Tls.is_tcp());
    }

    /// Kubernetes' `SelectorFromSet(selector).Matches(labels)`.
    #[test]
    fn a_selector_matches_labels_holding_every_pair() {
        let m = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let pod = m(&[("app", "reviews"), ("version", "v1")]);
        assert!(selector_matches(&m(&[]), &pod), "empty selects all");
        assert!(selector_matches(&m(&[("app", "reviews")]), &pod));
        assert!(selector_matches(&pod, &pod));
        assert!(!selector_matches(&m(&[("app", "ratings")]), &pod));
        assert!(!selector_matches(&m(&[("tier", "web")]), &pod));
        assert!(!selector_matches(&pod, &m(&[("app", "reviews")])));
    }

    #[test]
    fn selectors_and_percent() {
        let p: Percent = serde_json::from_value(json!({"value": 12.5})).unwrap();
        assert_eq!(p.value, Some(12.5));
        let s: MatchLabelsSelector =
            serde_json::from_value(json!({"matchLabels": {"app": "x"}})).unwrap();
        assert_eq!(s.match_labels["app"], "x");
        assert!(serde_json::from_value::<WorkloadSelector>(json!({"matchLabels": {}})).is_err());
    }

    #[test]
    fn duration_round_trips_as_text() {
        let p: PortSelector = serde_json::from_value(json!({"number": 9080})).unwrap();
        assert_eq!(p.number, Some(9080));
        let d = Duration::parse("1.5s").unwrap();
        assert_eq!(serde_json::to_value(&d).unwrap(), json!("1.5s"));
    }
}
