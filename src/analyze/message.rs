//! Analyzer messages: Istio's codes, levels and templates
//! (`pkg/config/analysis/msg/messages.yaml`), rendered as istioctl renders them.

use std::cmp::Ordering;
use std::fmt;

use serde::Serialize;

use crate::config::ResourceRef;
use crate::model::duration::go_quote;

/// Message level; the order is istioctl's sort order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum Level {
    Error,
    Warning,
    Info,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Error => "Error",
            Level::Warning => "Warning",
            Level::Info => "Info",
        }
    }

    /// Parse `Error`/`Warning`/`Info` (any case), as istioctl's threshold flags.
    pub fn parse(s: &str) -> Option<Level> {
        match s.to_ascii_lowercase().as_str() {
            "error" => Some(Level::Error),
            "warning" | "warn" => Some(Level::Warning),
            "info" => Some(Level::Info),
            _ => None,
        }
    }

    /// True when `self` is at least as severe as `threshold`.
    pub fn at_least(self, threshold: Level) -> bool {
        self <= threshold
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One kind of message.
#[derive(Debug, PartialEq, Eq)]
pub struct MessageType {
    pub code: &'static str,
    pub name: &'static str,
    pub level: Level,
}

macro_rules! codes {
    ($($ident:ident = $code:literal $name:literal $level:ident;)*) => {
        $(pub static $ident: MessageType = MessageType { code: $code, name: $name, level: Level::$level };)*
        /// Every message type strait can emit.
        pub static ALL: &[&MessageType] = &[$(&$ident),*];
    };
}

codes! {
    DEPRECATED = "IST0002" "Deprecated" Warning;
    REFERENCED_RESOURCE_NOT_FOUND = "IST0101" "ReferencedResourceNotFound" Error;
    SCHEMA_VALIDATION_ERROR = "IST0106" "SchemaValidationError" Error;
    CONFLICTING_MESH_GATEWAY_VIRTUAL_SERVICE_HOSTS = "IST0109" "ConflictingMeshGatewayVirtualServiceHosts" Error;
    CONFLICTING_SIDECAR_WORKLOAD_SELECTORS = "IST0110" "ConflictingSidecarWorkloadSelectors" Error;
    MULTIPLE_SIDECARS_WITHOUT_WORKLOAD_SELECTORS = "IST0111" "MultipleSidecarsWithoutWorkloadSelectors" Error;
    VIRTUAL_SERVICE_DESTINATION_PORT_SELECTOR_REQUIRED = "IST0112" "VirtualServiceDestinationPortSelectorRequired" Error;
    NO_SERVER_CERTIFICATE_VERIFICATION_DESTINATION_LEVEL = "IST0128" "NoServerCertificateVerificationDestinationLevel" Warning;
    NO_SERVER_CERTIFICATE_VERIFICATION_PORT_LEVEL = "IST0129" "NoServerCertificateVerificationPortLevel" Warning;
    VIRTUAL_SERVICE_UNREACHABLE_RULE = "IST0130" "VirtualServiceUnreachableRule" Warning;
    VIRTUAL_SERVICE_INEFFECTIVE_MATCH = "IST0131" "VirtualServiceIneffectiveMatch" Info;
    VIRTUAL_SERVICE_HOST_NOT_FOUND_IN_GATEWAY = "IST0132" "VirtualServiceHostNotFoundInGateway" Warning;
    SCHEMA_WARNING = "IST0133" "SchemaWarning" Warning;
    SERVICE_ENTRY_ADDRESSES_REQUIRED = "IST0134" "ServiceEntryAddressesRequired" Warning;
    GATEWAY_DUPLICATE_CERTIFICATE = "IST0138" "GatewayDuplicateCertificate" Warning;
    INGRESS_ROUTE_RULES_NOT_AFFECTED = "IST0140" "IngressRouteRulesNotAffected" Warning;
    CONFLICTING_GATEWAYS = "IST0145" "ConflictingGateways" Error;
    JWT_CLAIM_BASED_ROUTING_WITHOUT_REQUEST_AUTHN = "IST0149" "JwtClaimBasedRoutingWithoutRequestAuthN" Error;
    INVALID_GATEWAY_CREDENTIAL = "IST0161" "InvalidGatewayCredential" Error;
    GATEWAY_PORT_NOT_DEFINED_ON_SERVICE = "IST0162" "GatewayPortNotDefinedOnService" Warning;
    REFERENCED_INTERNAL_GATEWAY = "IST0165" "ReferencedInternalGateway" Warning;
    INEFFECTIVE_POLICY = "IST0167" "IneffectivePolicy" Warning;
    DESTINATION_RULE_SUBSET_NOT_SELECT_PODS = "IST0173" "DestinationRuleSubsetNotSelectPods" Error;
    UNKNOWN_DESTINATION_RULE_HOST = "IST0174" "UnknownDestinationRuleHost" Warning;
    CONFLICTING_SERVICE_ENTRY_PROTOCOL = "IST0177" "ConflictingServiceEntryProtocol" Warning;
}

/// One finding, attached to a resource (and a field of it, for the line).
#[derive(Clone, Debug)]
pub struct Message {
    pub kind: &'static MessageType,
    pub resource: Option<ResourceRef>,
    /// Field path whose line is reported, e.g. `spec.http[0].route[0].destination.host`.
    pub path: Option<String>,
    pub text: String,
}

impl Message {
    pub fn new(
        kind: &'static MessageType,
        resource: ResourceRef,
        path: impl Into<Option<String>>,
        text: String,
    ) -> Message {
        Message {
            kind,
            resource: Some(resource),
            path: path.into(),
            text,
        }
    }

    pub fn level(&self) -> Level {
        self.kind.level
    }

    /// `Kind ns/name` (istioctl's `FriendlyName`).
    pub fn origin(&self) -> Option<String> {
        self.resource.as_ref().map(ResourceRef::friendly_name)
    }

    /// `file:line`, when the resource came from a file.
    pub fn reference(&self) -> Option<String> {
        self.resource
            .as_ref()
            .and_then(|r| r.origin.reference(self.path.as_deref()))
    }

    pub fn documentation_url(&self) -> String {
        format!(
            "https://istio.io/latest/docs/reference/config/analysis/{}/?ref=istioctl-analyze",
            self.kind.code.to_ascii_lowercase()
        )
    }

    fn sort_key(&self) -> (Level, &'static str, String) {
        let r = self
            .resource
            .as_ref()
            .map(|r| format!("{}/{}/{}", r.kind, r.name, r.namespace))
            .unwrap_or_default();
        (self.kind.level, self.kind.code, r)
    }
}

/// istioctl's log line: `Level [CODE] (Kind ns/name file:line) text`.
impl fmt::Display for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} [{}]", self.kind.level, self.kind.code)?;
        if let Some(origin) = self.origin() {
            match self.reference() {
                Some(r) => write!(f, " ({origin} {r})")?,
                None => write!(f, " ({origin})")?,
            }
        }
        write!(f, " {}", self.text)
    }
}

/// Sort as istioctl does (level, code, resource, full text) and drop
/// messages whose rendered text is identical.
pub fn sorted_deduped(mut msgs: Vec<Message>) -> Vec<Message> {
    let mut keyed: Vec<(String, Message)> = msgs.drain(..).map(|m| (m.to_string(), m)).collect();
    keyed.sort_by(|a, b| match a.1.sort_key().cmp(&b.1.sort_key()) {
        Ordering::Equal => a.0.cmp(&b.0),
        o => o,
    });
    keyed.dedup_by(|a, b| a.0 == b.0);
    keyed.into_iter().map(|(_, m)| m).collect()
}

/// Go's `%v` of a `[]string`: `[a b c]`.
pub fn go_list<S: AsRef<str>>(items: &[S]) -> String {
    let inner: Vec<&str> = items.iter().map(AsRef::as_ref).collect();
    format!("[{}]", inner.join(" "))
}

/// Go's `%q`.
pub fn q(s: &str) -> String {
    go_quote(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Kind, Origin};

    fn vs(ns: &str, name: &str) -> ResourceRef {
        ResourceRef {
            kind: Kind::VirtualService,
            namespace: ns.into(),
            name: name.into(),
            origin: Origin {
                file: "bookinfo.yaml".into(),
                line: 12,
                lines: Default::default(),
            },
        }
    }

    #[test]
    fn renders_like_istioctl() {
        let m = Message::new(
            &REFERENCED_RESOURCE_NOT_FOUND,
            vs("default", "reviews"),
            None,
            format!(
                "Referenced {} not found: {}",
                "host+subset in destinationrule",
                q("reviews+v3")
            ),
        );
        assert_eq!(
            m.to_string(),
            "Error [IST0101] (VirtualService default/reviews bookinfo.yaml:12) Referenced host+subset in destinationrule not found: \"reviews+v3\""
        );
    }

    #[test]
    fn sorts_by_level_then_code_and_dedupes() {
        let a = Message::new(&SCHEMA_WARNING, vs("a", "x"), None, "w".into());
        let b = Message::new(
            &REFERENCED_RESOURCE_NOT_FOUND,
            vs("a", "x"),
            None,
            "e".into(),
        );
        let c = Message::new(
            &REFERENCED_RESOURCE_NOT_FOUND,
            vs("a", "x"),
            None,
            "e".into(),
        );
        let out = sorted_deduped(vec![a, b, c]);
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].kind.code, "IST0101");
    }

    #[test]
    fn thresholds() {
        assert!(Level::Error.at_least(Level::Warning));
        assert!(!Level::Info.at_least(Level::Warning));
    }
}
