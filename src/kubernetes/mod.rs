//! Kubernetes objects (Services, EndpointSlices, Pods, Nodes) → strait's
//! service registry, with Istio's semantics
//! (`pilot/pkg/serviceregistry/kube`). Pure and sans-IO: `compile` builds
//! the [`Index`] from the loaded configuration, whichever source (files or
//! the API watcher) filled it.

pub mod convert;
pub mod index;

pub use convert::{Health, Port, Resolution, Service};
pub use index::{Endpoint, Index, RegistryService};
