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
            if emptied_by_a_schema_problem(ctx, &r, &f) {
                continue;
            }
            out.push(to_message(r, f));
        }
    }
}

/// An "at least one field" finding on a block whose only fields were
/// refused as schema problems (`retries` in a DestinationRule's
/// trafficPolicy) is their consequence, not a second mistake: the schema
/// problem alone says what to do.
fn emptied_by_a_schema_problem(ctx: &Context<'_>, r: &ResourceRef, f: &Finding) -> bool {
    if !f.message.contains("at least one field") || f.path.is_empty() {
        return false;
    }
    ctx.config.problems.iter().any(|p| {
        p.resource.kind == r.kind
            && p.resource.namespace == r.namespace
            && p.resource.name == r.name
            && p.resource.origin.line == r.origin.line
            && p.resource.origin.file == r.origin.file
            && p.path
                .strip_prefix(f.path.as_str())
                .is_some_and(|rest| rest.starts_with('.') || rest.starts_with('['))
    })
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analyze::MeshConfig;
    use crate::load::{LoadOptions, load_str};

    /// Issue #14: `retries` in a DestinationRule's trafficPolicy is one
    /// mistake (it belongs in a VirtualService route), said once.
    #[test]
    fn a_refused_field_does_not_also_report_its_emptied_block() {
        let config = load_str(
            "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: r, namespace: default}\nspec:\n  host: r\n  trafficPolicy:\n    retries: {attempts: 3}\n",
            "t.yaml",
            &LoadOptions::default(),
        );
        let mesh = MeshConfig::default();
        let ctx = Context::new(&config, &mesh);
        let mut out = Vec::new();
        ANALYZERS[0].analyze(&ctx, &mut out);
        let text: Vec<String> = out.iter().map(ToString::to_string).collect();
        assert_eq!(text.len(), 1, "{text:#?}");
        assert!(text[0].contains("spec.trafficPolicy.retries"), "{text:#?}");
        assert!(!text[0].contains("at least one field"), "{text:#?}");
    }
}
