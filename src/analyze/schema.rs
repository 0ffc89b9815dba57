//! `schema.ValidationAnalyzer.<Kind>`: decode problems and validation
//! findings as messages — errors IST0106, warnings IST0133, and the
//! unreachable-rule warnings IST0130/IST0131.

use super::message::{self, Message};
use super::{Analyzer, Context};
use crate::config::{Kind, ResourceRef};
use crate::validate::{self, Finding, Note, Severity};

pub struct ValidationAnalyzer {
    kind: Kind,
    name: &'static str,
}

pub static ANALYZERS: [ValidationAnalyzer; 6] = [
    ValidationAnalyzer {
        kind: Kind::DestinationRule,
        name: "schema.ValidationAnalyzer.DestinationRule",
    },
    ValidationAnalyzer {
        kind: Kind::Gateway,
        name: "schema.ValidationAnalyzer.Gateway",
    },
    ValidationAnalyzer {
        kind: Kind::ServiceEntry,
        name: "schema.ValidationAnalyzer.ServiceEntry",
    },
    ValidationAnalyzer {
        kind: Kind::Sidecar,
        name: "schema.ValidationAnalyzer.Sidecar",
    },
    ValidationAnalyzer {
        kind: Kind::VirtualService,
        name: "schema.ValidationAnalyzer.VirtualService",
    },
    ValidationAnalyzer {
        kind: Kind::WorkloadEntry,
        name: "schema.ValidationAnalyzer.WorkloadEntry",
    },
];

impl Analyzer for ValidationAnalyzer {
    fn name(&self) -> &'static str {
        self.name
    }

    fn description(&self) -> &'static str {
        "Runs schema validation as an analyzer and reports any violations"
    }

    fn analyze(&self, ctx: &Context<'_>, out: &mut Vec<Message>) {
        for p in ctx
            .config
            .problems
            .iter()
            .filter(|p| p.resource.kind == self.kind)
        {
            out.push(Message::new(
                &message::SCHEMA_VALIDATION_ERROR,
                p.resource.clone(),
                p.path.clone(),
                format!("Schema validation error: {}", p.message),
            ));
        }
        let opts = validate::Options {
            auto_allocate_addresses: ctx.mesh.auto_allocates_addresses(),
        };
        let findings: Vec<(ResourceRef, Finding)> = match self.kind {
            Kind::VirtualService => each(
                &ctx.config.virtual_services,
                validate::virtual_service::validate,
            ),
            Kind::DestinationRule => each(
                &ctx.config.destination_rules,
                validate::destination_rule::validate,
            ),
            Kind::ServiceEntry => ctx
                .config
                .service_entries
                .iter()
                .flat_map(|r| {
                    validate::service_entry::validate(r, &opts)
                        .into_iter()
                        .map(|f| (r.reference(), f))
                })
                .collect(),
            Kind::WorkloadEntry => each(
                &ctx.config.workload_entries,
                validate::service_entry::validate_workload_entry,
            ),
            Kind::Gateway => each(&ctx.config.gateways, validate::gateway::validate),
            Kind::Sidecar => each(&ctx.config.sidecars, validate::sidecar::validate),
            _ => Vec::new(),
        };
        for (r, f) in findings {
            out.push(to_message(r, f));
        }
    }
}

fn each<T>(
    list: &[crate::config::Resource<T>],
    f: fn(&crate::config::Resource<T>) -> Vec<Finding>,
) -> Vec<(ResourceRef, Finding)> {
    list.iter()
        .flat_map(|r| f(r).into_iter().map(|x| (r.reference(), x)))
        .collect()
}

/// The message for one finding.
pub fn to_message(r: ResourceRef, f: Finding) -> Message {
    let located = |m: &str| {
        if f.path.is_empty() || f.path == "spec" {
            m.to_string()
        } else {
            format!("{}: {m}", f.path)
        }
    };
    match (&f.note, f.severity) {
        (Note::UnreachableRule { rule, reason }, _) => Message::new(
            &message::VIRTUAL_SERVICE_UNREACHABLE_RULE,
            r,
            f.path.clone(),
            format!("VirtualService rule {rule} not used ({reason})."),
        ),
        (
            Note::IneffectiveMatch {
                rule,
                match_,
                prior,
            },
            _,
        ) => Message::new(
            &message::VIRTUAL_SERVICE_INEFFECTIVE_MATCH,
            r,
            f.path.clone(),
            format!(
                "VirtualService rule {rule} match {match_} is not used (duplicate/overlapping match in rule {prior})."
            ),
        ),
        (Note::Plain, Severity::Error) => Message::new(
            &message::SCHEMA_VALIDATION_ERROR,
            r,
            f.path.clone(),
            format!("Schema validation error: {}", located(&f.message)),
        ),
        (Note::Plain, Severity::Warning) => Message::new(
            &message::SCHEMA_WARNING,
            r,
            f.path.clone(),
            format!("Schema validation warning: {}", located(&f.message)),
        ),
    }
}
