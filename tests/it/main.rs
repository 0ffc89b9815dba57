//! The integration tests, one binary: one link instead of one per file, and
//! the tests of every file share the test harness's threads. Each module was
//! a test binary of its own; `cargo test --test it <module>::` runs one.
//!
//! `tests/reliability.rs` and `tests/hardening_downstream.rs` stay binaries of
//! their own: they count the process's open file descriptors against a
//! baseline, which only works while no other file's tests share the process.

#[path = "../support/mod.rs"]
mod support;

mod admin;
mod admin_page;
mod check_cli;
mod conformance;
mod deploy;
mod explain_agreement;
mod explain_cli;
mod explain_golden;
mod fuzz_corpus;
mod gateway;
mod gateway_listeners;
mod gateway_passthrough;
mod gateway_tls;
mod h1_differential;
mod h2_rules;
mod h2_server;
mod kube_api;
mod kube_files;
mod kube_watch;
mod proxy_balancing;
mod proxy_conn_pool;
mod proxy_endpoints;
mod proxy_hashing;
mod proxy_locality;
mod proxy_outlier;
mod proxy_protocols;
mod proxy_resilience;
mod proxy_routing;
mod proxy_smoke;
mod proxy_upstream_tls;
mod reload;
mod run_cli;
mod sidecar_tcp;
mod sidecar_tls;
mod tcp_half_close;
mod tidy;
mod workers;

/// `strait demo` binds the example's fixed upstream addresses
/// (127.0.1.1–3:9080): the tests that run it hold this, one at a time.
static DEMO_PORTS: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
