//! The config pipeline, below every front end: validate a loaded
//! [`ConfigSet`] and compile it for a proxy identity at once (compile on a
//! second thread; both only read the set). What `strait run` does at start
//! and `reload` on every change; `explain` and `demo` use the same checks. A
//! configuration is accepted whole or rejected with a typed [`Rejection`],
//! which `cli` maps to an exit code and `reload` to `last_rejected`.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use crate::analyze::{self, Context, Level, MeshConfig, Message};
use crate::compile::{self, ProxyIdentity, Snapshot};
use crate::config::{ConfigSet, LoadError};
use crate::kubernetes::RegistryService;
use crate::load::LoadOptions;

/// Why a configuration is not served.
#[derive(Debug)]
pub enum Rejection {
    /// Input that could not be read or parsed.
    Load(Vec<LoadError>),
    /// Schema validation errors (the blocking messages only).
    Invalid(Vec<Message>),
    /// Gateway servers strait cannot serve.
    Gateway(Vec<String>),
}

impl Rejection {
    /// One line per problem, as printed and shown by the admin API.
    pub fn lines(&self) -> Vec<String> {
        match self {
            Rejection::Load(errors) => errors.iter().map(|e| format!("Error: {e}")).collect(),
            Rejection::Invalid(messages) => {
                let mut lines: Vec<String> = messages.iter().map(ToString::to_string).collect();
                lines.push(
                    "Error: the configuration is invalid; fix the errors above (strait check shows them too)"
                        .into(),
                );
                lines
            }
            Rejection::Gateway(problems) => {
                let mut lines: Vec<String> =
                    problems.iter().map(|p| format!("Error: {p}")).collect();
                lines.push(
                    "Error: the gateway configuration has servers strait cannot serve; fix or remove them"
                        .into(),
                );
                lines
            }
        }
    }
}

impl Rejection {
    /// What a rejected reload records as `last_rejected` (and logs): the
    /// lines, but for a gateway's only its problems, as the admin API has
    /// always shown them.
    pub fn recorded(&self) -> Vec<String> {
        match self {
            Rejection::Gateway(problems) => {
                problems.iter().map(|p| format!("Error: {p}")).collect()
            }
            r => r.lines(),
        }
    }
}

/// The gateway servers of `snapshot` strait cannot serve (a missing
/// certificate file, TLS it cannot honour): what makes [`build`] refuse a
/// configuration ([`Rejection::Gateway`]) and what `explain` warns about.
pub fn gateway_problems(snapshot: &Snapshot) -> Vec<String> {
    snapshot
        .gateway
        .problems
        .iter()
        .map(ToString::to_string)
        .collect()
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.lines().join("\n"))
    }
}

/// A configuration ready to serve.
pub struct Built {
    pub config: ConfigSet,
    /// Analysis messages that do not block serving (any level).
    pub warnings: Vec<Message>,
    pub snapshot: Snapshot,
}

/// How a source loads for a proxy in `namespace`.
pub fn load_options(namespace: &str) -> LoadOptions {
    LoadOptions {
        namespace: Some(namespace.to_string()),
        ..LoadOptions::default()
    }
}

/// Load files (see [`crate::source::file`]) and validate them.
pub fn load_valid(
    paths: &[PathBuf],
    namespace: &str,
) -> Result<(ConfigSet, Vec<Message>), Rejection> {
    let config = crate::source::file::load_paths(paths, &load_options(namespace));
    let messages = validate(&config, namespace)?;
    Ok((config, messages))
}

/// Check `config` (the blocking checks of [`validate`]), and compile it for
/// `identity` on a second thread meanwhile. The snapshot of a configuration
/// that does not pass is dropped; so is one with gateway servers strait
/// cannot serve. `Built::warnings` holds the checks' own non-blocking
/// messages: Istio's other analyzers ([`advise`]) do not decide whether a
/// configuration is served, so a reload runs them after the new one is
/// live, off the critical path (at 10,000 services they cost as much as
/// the compile).
pub fn build(config: ConfigSet, identity: &ProxyIdentity) -> Result<Built, Rejection> {
    build_with(config, None, identity, false, false).map(|(b, _)| b)
}

/// [`build`], with [`advise`]'s messages in `Built::warnings` as well, run
/// on a third thread meanwhile: what `strait run` says at start.
pub fn build_advised(config: ConfigSet, identity: &ProxyIdentity) -> Result<Built, Rejection> {
    build_with(config, None, identity, false, true).map(|(b, _)| b)
}

/// As [`build`], but each resource that fails schema validation is left
/// out alone and the rest served (the Kubernetes source: one bad object in
/// a cluster must not stop the others; istiod likewise drops an invalid
/// resource and serves the rest). Also returns the messages of the
/// resources left out, as `strait check` prints them.
pub fn build_each(
    config: ConfigSet,
    identity: &ProxyIdentity,
) -> Result<(Built, Vec<Message>), Rejection> {
    build_with(config, None, identity, true, false)
}

/// [`build`] (`each`: [`build_each`]) with the Kubernetes registry given
/// when the source keeps it live (the Kubernetes source: compile does not
/// convert every Service, slice and Pod again), else built from `config`.
pub fn build_from(
    config: ConfigSet,
    kube: Option<&[RegistryService]>,
    identity: &ProxyIdentity,
    each: bool,
) -> Result<(Built, Vec<Message>), Rejection> {
    build_with(config, kube, identity, each, false)
}

fn build_with(
    mut config: ConfigSet,
    kube: Option<&[RegistryService]>,
    identity: &ProxyIdentity,
    drop_invalid: bool,
    advised: bool,
) -> Result<(Built, Vec<Message>), Rejection> {
    if !config.load_errors.is_empty() {
        return Err(Rejection::Load(config.load_errors.clone()));
    }
    let compile = |config: &ConfigSet| match kube {
        Some(kube) => compile::compile_with(config, kube, identity),
        None => compile::compile(config, identity),
    };
    let (warnings, snapshot, advice) = std::thread::scope(|s| {
        let compiling = std::thread::Builder::new()
            .name("strait-compile".into())
            .spawn_scoped(s, || compile(&config));
        let advising = advised.then(|| {
            std::thread::Builder::new()
                .name("strait-analyze".into())
                .spawn_scoped(s, || advise(&config))
        });
        let messages = check(&config, kube, &identity.namespace);
        let snapshot = match compiling {
            Ok(h) => h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)),
            // No second thread (resource limits): compile here, after.
            Err(_) => compile(&config),
        };
        let advice = match advising {
            None => Vec::new(),
            Some(Ok(h)) => h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)),
            Some(Err(_)) => advise(&config),
        };
        (messages, snapshot, advice)
    });
    let (warnings, snapshot, left_out) = match warnings {
        Err(Rejection::Invalid(messages)) if drop_invalid => {
            let refs: Vec<_> = messages.iter().filter_map(|m| m.resource.clone()).collect();
            if refs.is_empty() {
                return Err(Rejection::Invalid(messages));
            }
            config.remove(&refs);
            // Schema validation is per resource: the rest stays valid.
            let warnings = check(&config, kube, &identity.namespace)?;
            let snapshot = compile(&config);
            (warnings, snapshot, messages)
        }
        w => (w?, snapshot, Vec::new()),
    };
    let mut warnings = warnings;
    if !advice.is_empty() {
        warnings.extend(advice);
        warnings = analyze::message::sorted_deduped(warnings);
    }
    let problems = gateway_problems(&snapshot);
    if !problems.is_empty() {
        return Err(Rejection::Gateway(problems));
    }
    Ok((
        Built {
            config,
            warnings,
            snapshot,
        },
        left_out,
    ))
}

/// The checks a configuration must pass to be served: it loaded, and no
/// schema validation error (Istio's, or TLS strait cannot honour). The
/// other analyzers' messages come back beside it (`Ok`), so that every
/// Error-level one (a route to an undeclared subset: 503 NC) is said at
/// start and on reload; they do not block it: istiod serves such a
/// configuration too, and a reload must not fail on what `check` reports.
pub fn validate(config: &ConfigSet, namespace: &str) -> Result<Vec<Message>, Rejection> {
    let mut messages = check(config, None, namespace)?;
    messages.extend(advise(config));
    Ok(analyze::message::sorted_deduped(messages))
}

/// Istio's analyzers other than schema validation (IST0101 and the rest):
/// said at start and on every reload, never blocking.
pub fn advise(config: &ConfigSet) -> Vec<Message> {
    let names: Vec<String> = analyze::all()
        .iter()
        .map(|a| a.name())
        .filter(|n| !n.starts_with("schema."))
        .map(str::to_string)
        .collect();
    let mesh = MeshConfig::default();
    analyze::run(&Context::new(config, &mesh), &names).unwrap_or_default()
}

/// The blocking half of [`validate`]: the configuration loaded, and the
/// schema analyzers and strait's TLS check find no error; their other
/// messages come back beside it.
fn check(
    config: &ConfigSet,
    kube: Option<&[RegistryService]>,
    namespace: &str,
) -> Result<Vec<Message>, Rejection> {
    if !config.load_errors.is_empty() {
        return Err(Rejection::Load(config.load_errors.clone()));
    }
    // Said at start and on every reload: a replaced resource is easy to miss.
    for r in &config.replaced {
        tracing::warn!(target: "strait::config", "{r}");
    }
    let mesh = MeshConfig::default();
    let names: Vec<String> = analyze::schema::ANALYZERS
        .iter()
        .map(|a| analyze::Analyzer::name(a).to_string())
        .collect();
    let mut messages = analyze::run(&Context::new(config, &mesh), &names).unwrap_or_default();
    messages.extend(unsupported_tls(config, kube, namespace));
    let blocking = |m: &Message| {
        m.level() == Level::Error && m.kind.code == analyze::message::SCHEMA_VALIDATION_ERROR.code
    };
    if messages.iter().any(blocking) {
        return Err(Rejection::Invalid(
            messages.into_iter().filter(|m| blocking(m)).collect(),
        ));
    }
    Ok(messages)
}

/// DestinationRules this proxy uses whose `tls` strait cannot honour
/// (ISTIO_MUTUAL, credentialName): refused at load time rather than served
/// as plaintext or failing every request.
fn unsupported_tls(
    config: &ConfigSet,
    kube: Option<&[RegistryService]>,
    namespace: &str,
) -> Vec<Message> {
    // Which rules this proxy uses takes a compile: only when some rule has
    // such a `tls` at all (a compile of 10,000 services costs 0.3 s).
    let mut found: Vec<(
        &crate::config::Resource<crate::model::DestinationRule>,
        String,
        String,
    )> = Vec::new();
    for dr in &config.destination_rules {
        let mut policies: Vec<(String, &crate::model::TrafficPolicy)> = Vec::new();
        if let Some(tp) = &dr.spec.traffic_policy {
            policies.push(("spec.trafficPolicy".into(), tp));
        }
        for (i, s) in dr.spec.subsets.iter().enumerate() {
            if let Some(tp) = &s.traffic_policy {
                policies.push((format!("spec.subsets[{i}].trafficPolicy"), tp));
            }
        }
        for (base, tp) in policies {
            let mut tls = vec![(format!("{base}.tls"), tp.tls.as_ref())];
            for (i, p) in tp.port_level_settings.iter().enumerate() {
                tls.push((format!("{base}.portLevelSettings[{i}].tls"), p.tls.as_ref()));
            }
            for (path, t) in tls {
                let Some(t) = t else { continue };
                let Some(reason) = crate::compile::policy::unsupported_tls(t) else {
                    continue;
                };
                let field = if t.mode == Some(crate::model::ClientTLSMode::IstioMutual) {
                    "mode"
                } else {
                    "credentialName"
                };
                found.push((dr, format!("{path}.{field}"), reason));
            }
        }
    }
    if found.is_empty() {
        return Vec::new();
    }
    let identity = ProxyIdentity::sidecar(namespace, &BTreeMap::new());
    let snapshot = match kube {
        Some(kube) => compile::compile_with(config, kube, &identity),
        None => compile::compile(config, &identity),
    };
    let used: std::collections::HashSet<&str> = snapshot
        .clusters
        .values()
        .filter_map(|c| c.destination_rule.as_deref())
        .collect();
    found
        .into_iter()
        .filter(|(dr, _, _)| used.contains(format!("{}/{}", dr.namespace(), dr.name()).as_str()))
        .map(|(dr, field, reason)| {
            Message::new(
                &analyze::message::SCHEMA_VALIDATION_ERROR,
                dr.reference(),
                Some(field.clone()),
                format!("{field}: {reason}"),
            )
        })
        .collect()
}

/// The snapshot for a sidecar in `namespace` with `labels`.
pub fn compile_for(
    config: &ConfigSet,
    namespace: &str,
    labels: &BTreeMap<String, String>,
) -> Snapshot {
    compile::compile(config, &ProxyIdentity::sidecar(namespace, labels))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A route to an undeclared subset (IST0101, Error) is said at start
    /// (`build_advised`) and by `validate`, never blocks, and is not on a
    /// reload's critical path (`build`; the reload runs `advise` after the
    /// swap). Issue #15: configuration scale.
    #[test]
    fn istios_other_analyzers_advise_but_never_block_or_delay_a_reload() {
        let yaml = "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: r, namespace: default}\nspec:\n  hosts: [r]\n  http:\n  - route: [{destination: {host: r, subset: v9}}]\n";
        let load = || crate::load::load_str(yaml, "r.yaml", &load_options("default"));
        let ist0101 = |m: &[Message]| {
            m.iter()
                .any(|m| m.kind.code == "IST0101" && m.level() == Level::Error)
        };
        let identity = ProxyIdentity::default();
        assert!(!ist0101(&build(load(), &identity).ok().unwrap().warnings));
        assert!(ist0101(
            &build_advised(load(), &identity).ok().unwrap().warnings
        ));
        assert!(ist0101(&advise(&load())));
        assert!(ist0101(&validate(&load(), "default").ok().unwrap()));
    }
}
