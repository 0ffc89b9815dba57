//! Kubernetes objects (Services, EndpointSlices, Pods, Nodes) → strait's
//! service registry, with Istio's semantics
//! (`pilot/pkg/serviceregistry/kube`). Pure and sans-IO: `compile` builds
//! the [`Index`] from the loaded configuration (files), and the API
//! watcher (`source::kube`) keeps one live.

pub mod convert;
pub mod index;

pub use convert::{Health, Port, Resolution, Service};
pub use index::{Endpoint, EndpointChanges, Index, RegistryService};
