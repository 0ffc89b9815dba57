//! Analysis: Istio's analyzers (`istioctl analyze`) over a loaded
//! [`ConfigSet`], with Istio's analyzer names, message codes and texts.
//! Analysis never aborts on one bad resource: it reports and goes on.

pub mod deprecation;
pub mod destination_rule;
pub mod gateway;
pub mod mesh;
pub mod message;
pub mod registry;
pub mod schema;
pub mod service_entry;
pub mod sidecar;
pub mod virtual_service;

use std::sync::OnceLock;

pub use mesh::MeshConfig;
pub use message::{Level, Message, MessageType};

use crate::config::ConfigSet;
use registry::ServiceRegistry;

/// One analyzer, named as Istio names it (`virtualservice.DestinationRuleAnalyzer`).
pub trait Analyzer: Sync {
    fn name(&self) -> &'static str;
    fn description(&self) -> &'static str;
    fn analyze(&self, ctx: &Context<'_>, out: &mut Vec<Message>);
}

/// What analyzers read: the config, the mesh config, and indexes built once.
pub struct Context<'a> {
    pub config: &'a ConfigSet,
    pub mesh: &'a MeshConfig,
    registry: OnceLock<ServiceRegistry>,
    /// Reads a file the configuration references (Gateway certificate
    /// files); analyzers do no I/O of their own, and without a reader the
    /// file checks are skipped.
    pub read_file: Option<&'a ReadFile>,
}

/// How `Context::read_file` reads a file: its bytes, or the I/O error
/// (`NotFound` for a file that is not there).
pub type ReadFile = dyn Fn(&str) -> std::io::Result<Vec<u8>> + Sync;

impl<'a> Context<'a> {
    pub fn new(config: &'a ConfigSet, mesh: &'a MeshConfig) -> Self {
        Context {
            config,
            mesh,
            registry: OnceLock::new(),
            read_file: None,
        }
    }

    /// The same context, able to read referenced files with `read`.
    pub fn with_files(mut self, read: &'a ReadFile) -> Self {
        self.read_file = Some(read);
        self
    }

    /// The service registry as the analyzers see it (`InitServiceEntryHostMap`).
    pub fn registry(&self) -> &ServiceRegistry {
        self.registry
            .get_or_init(|| ServiceRegistry::build(self.config))
    }
}

/// Every analyzer, in `--list-analyzers` order.
pub fn all() -> Vec<&'static dyn Analyzer> {
    let mut v: Vec<&'static dyn Analyzer> = vec![
        &deprecation::DeprecationAnalyzer,
        &destination_rule::CaCertificateAnalyzer,
        &destination_rule::SubsetSelectPodAnalyzer,
        &gateway::CertificateAnalyzer,
        &gateway::CertificateFileAnalyzer,
        &gateway::ConflictingGatewayAnalyzer,
        &gateway::IngressGatewayPortAnalyzer,
        &gateway::SecretAnalyzer,
    ];
    v.extend(schema::ANALYZERS.iter().map(|a| a as &dyn Analyzer));
    v.extend([
        &service_entry::ProtocolAddressesAnalyzer as &dyn Analyzer,
        &service_entry::ConflictingServiceEntryProtocolAnalyzer,
        &sidecar::SelectorAnalyzer,
        &virtual_service::ConflictingMeshGatewayHostsAnalyzer,
        &virtual_service::DestinationHostAnalyzer,
        &virtual_service::DestinationRuleAnalyzer,
        &virtual_service::GatewayAnalyzer,
        &virtual_service::JwtClaimRouteAnalyzer,
    ]);
    v
}

/// Run the named analyzers (all when `names` is empty). Unknown names are an
/// error listing the known ones.
pub fn run(ctx: &Context<'_>, names: &[String]) -> Result<Vec<Message>, String> {
    let analyzers = all();
    let selected: Vec<&dyn Analyzer> = if names.is_empty() {
        analyzers
    } else {
        let mut sel = Vec::new();
        for n in names {
            match analyzers.iter().find(|a| a.name() == n) {
                Some(a) => sel.push(*a),
                None => {
                    return Err(format!(
                        "unknown analyzer {n:?}; `strait check --list-analyzers` lists them"
                    ));
                }
            }
        }
        sel
    };
    let mut out = Vec::new();
    for a in selected {
        a.analyze(ctx, &mut out);
    }
    Ok(message::sorted_deduped(out))
}
