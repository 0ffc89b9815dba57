//! Istio's validation rules (the admission webhook's `ValidateVirtualService`
//! and friends, plus the CRD schema rules), one resource at a time. Findings
//! name the field path and say what to do; `check` prints errors as IST0106
//! and warnings as IST0133 (or IST0130/IST0131 for unreachable rules).

pub mod common;
pub mod destination_rule;
pub mod gateway;
pub mod service_entry;
pub mod sidecar;
pub mod virtual_service;

use crate::config::{ConfigSet, ResourceRef};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Severity {
    Error,
    Warning,
}

/// Warnings that istioctl reports under their own codes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Note {
    Plain,
    /// IST0130: `VirtualService rule <rule> not used (<reason>).`
    UnreachableRule {
        rule: String,
        reason: String,
    },
    /// IST0131: `VirtualService rule <rule> match <m> is not used (duplicate/overlapping match in rule <prior>).`
    IneffectiveMatch {
        rule: String,
        match_: String,
        prior: String,
    },
}

/// One validation finding on one resource.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    pub severity: Severity,
    /// Field path, e.g. `spec.http[0].timeout`; `spec` for whole-resource findings.
    pub path: String,
    pub message: String,
    pub note: Note,
}

impl Finding {
    pub fn error(path: impl Into<String>, message: impl Into<String>) -> Finding {
        Finding {
            severity: Severity::Error,
            path: path.into(),
            message: message.into(),
            note: Note::Plain,
        }
    }

    pub fn warning(path: impl Into<String>, message: impl Into<String>) -> Finding {
        Finding {
            severity: Severity::Warning,
            path: path.into(),
            message: message.into(),
            note: Note::Plain,
        }
    }
}

/// Mesh-wide settings that change what validation accepts.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// ServiceEntry addresses are auto-allocated (no warning for TCP ports without addresses).
    pub auto_allocate_addresses: bool,
}

/// Validate every resource of the set.
pub fn all(config: &ConfigSet, opts: &Options) -> Vec<(ResourceRef, Finding)> {
    let mut out = Vec::new();
    for r in &config.virtual_services {
        out.extend(
            virtual_service::validate(r)
                .into_iter()
                .map(|f| (r.reference(), f)),
        );
    }
    for r in &config.destination_rules {
        out.extend(
            destination_rule::validate(r)
                .into_iter()
                .map(|f| (r.reference(), f)),
        );
    }
    for r in &config.service_entries {
        out.extend(
            service_entry::validate(r, opts)
                .into_iter()
                .map(|f| (r.reference(), f)),
        );
    }
    for r in &config.workload_entries {
        out.extend(
            service_entry::validate_workload_entry(r)
                .into_iter()
                .map(|f| (r.reference(), f)),
        );
    }
    for r in &config.gateways {
        out.extend(gateway::validate(r).into_iter().map(|f| (r.reference(), f)));
    }
    for r in &config.sidecars {
        out.extend(sidecar::validate(r).into_iter().map(|f| (r.reference(), f)));
    }
    out
}
