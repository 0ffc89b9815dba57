//! Serde mirror of Istio's `networking.istio.io` API and of the few Kubernetes
//! kinds that analysis needs. Field names are Istio's. No behaviour beyond the
//! intrinsic semantics of field values (durations, hosts, regexes, names).

pub mod common;
pub mod destination_rule;
pub mod duration;
pub mod gateway;
pub mod host;
pub mod k8s;
pub mod names;
pub mod re2;
pub mod service_entry;
pub mod sidecar;
pub mod virtual_service;
pub mod workload_entry;

pub use common::*;
pub use destination_rule::*;
pub use duration::Duration;
pub use gateway::*;
pub use service_entry::*;
pub use sidecar::*;
pub use virtual_service::*;
pub use workload_entry::*;
