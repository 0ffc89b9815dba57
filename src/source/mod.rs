//! Where configuration comes from. A source reads its whole configuration
//! into a [`ConfigSet`] (resources with their origins, parsed by `load`)
//! and signals when it may have changed; `reload` debounces the signals and
//! runs the pipeline: files, directories and stdin (`file`); the
//! Kubernetes API (`kube`, feature `kubernetes`), with files layered over it.

pub mod certs;
pub mod file;
#[cfg(feature = "kubernetes")]
pub mod kube;

use tokio::sync::mpsc;

use crate::config::ConfigSet;
use crate::kubernetes::RegistryService;
use crate::load::LoadOptions;

/// Signals "the configuration may have changed"; a full channel drops the
/// signal, as one pending signal is as good as many.
pub type Changes = mpsc::Sender<()>;

/// Keeps a source's change notifications alive until dropped.
pub struct Watch {
    _guard: Box<dyn Send>,
}

impl Watch {
    pub fn new(guard: impl Send + 'static) -> Watch {
        Watch {
            _guard: Box::new(guard),
        }
    }
}

/// Since an index generation: the registry entries of the Kubernetes
/// Services whose endpoints changed, or of every Service.
#[derive(Debug)]
pub enum EndpointUpdate {
    All(Vec<RegistryService>),
    Services(Vec<RegistryService>),
}

/// A configuration source.
pub trait Source: Send + Sync {
    /// The whole configuration as of now. Blocking (I/O): call it off the
    /// async workers. Unreadable input is reported in
    /// [`ConfigSet::load_errors`], never a panic.
    fn load(&self, opts: &LoadOptions) -> ConfigSet;

    /// Signal `changes` whenever the configuration may have changed, until
    /// the returned guard is dropped. Must be called inside a tokio runtime.
    fn watch(&self, changes: Changes) -> Result<Watch, String>;

    /// What the source reads, for the admin API (`paths`).
    fn describe(&self) -> Vec<String>;

    /// The source's own state for `/config_dump` (a watcher's sync state
    /// per kind); `None` for sources without one.
    fn state(&self) -> Option<serde_json::Value> {
        None
    }

    /// Resources the source itself could not load and left out (one line
    /// each), when the rest is served without them.
    fn rejected(&self) -> Vec<String> {
        Vec::new()
    }

    /// (configuration, endpoints) generations: when only the second moved
    /// since the last build, only endpoints changed (EndpointSlices, Pod
    /// labels, Nodes) and routes need not be recompiled. `None`: unknown,
    /// always rebuild whole.
    fn generations(&self) -> Option<(u64, u64)> {
        None
    }

    /// Whether the source has read its configuration once (the Kubernetes
    /// source: every kind has synced). Before that a reload (SIGHUP) does
    /// nothing: an empty configuration must not be served, nor make the
    /// proxy ready.
    fn ready(&self) -> bool {
        true
    }

    /// The Kubernetes registry the source keeps live (every Service with
    /// its endpoints) and the index generation it reflects. `None`:
    /// compile builds it from the loaded set's Services.
    fn registry(&self, _domain: &str) -> Option<(Vec<RegistryService>, u64)> {
        None
    }

    /// What endpoints changed since index generation `since` (one
    /// [`Source::registry`] or this gave), and the generation now.
    fn endpoint_update(&self, _since: u64, _domain: &str) -> Option<(EndpointUpdate, u64)> {
        None
    }

    /// The set Istio's analyzers should read for a built `config`, when
    /// the source keeps objects they read out of it (the Kubernetes
    /// source's Pods and Nodes live in its index only). `None`: `config`.
    fn for_analysis(&self, _config: &ConfigSet) -> Option<ConfigSet> {
        None
    }
}
