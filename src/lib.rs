//! strait: a service-mesh proxy that speaks Istio's traffic-management API.
//!
//! Config flows one way: YAML (`load`) → typed Istio model (`model`) inside a
//! [`config::ConfigSet`] → validation (`validate`) and analysis (`analyze`).
//! See ARCHITECTURE.md for the map.

pub mod allocator;
pub mod analyze;
pub mod cli;
pub mod cluster;
pub mod compile;
pub mod config;
pub mod explain;
pub mod flags;
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
pub mod header_list;
pub mod http1;
pub mod http2;
pub mod kubernetes;
pub mod load;
pub mod logging;
pub mod metrics;
pub mod model;
pub mod pipeline;
pub mod proxy;
pub mod reload;
pub mod route;
pub mod source;
pub mod validate;
