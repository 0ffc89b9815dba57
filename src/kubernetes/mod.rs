//! Kubernetes objects (Services, EndpointSlices, Pods, Nodes) → strait's
//! service registry, with Istio's semantics
//! (`pilot/pkg/serviceregistry/kube`). Pure and sans-IO: the file source
//! and (later) the API watcher feed the same [`Index`].

pub mod convert;
pub mod index;

pub use convert::{Health, Port, Resolution, Service};
pub use index::{Endpoint, Index, RegistryService};
