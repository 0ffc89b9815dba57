//! What configuration is live and what was last rejected, for the admin
//! API (never read on the request path). Written by whoever installs
//! configurations (`reload`, `cli::run`).

use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;

use serde::Serialize;

use crate::config::ConfigSet;

/// A rejected change, as the admin API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct Rejected {
    pub at: String,
    pub errors: Vec<String>,
}

/// What configuration is live.
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    /// Increases with every applied configuration, from 1.
    pub version: u64,
    pub loaded_at: String,
    pub paths: Vec<String>,
    pub last_rejected: Option<Rejected>,
    /// Resources left out of the live configuration (the Kubernetes
    /// source rejects an invalid resource alone), as `strait check` says why.
    pub rejected: Vec<String>,
    /// Configurations applied as endpoint-only changes (routes kept).
    pub endpoint_updates: u64,
    #[serde(skip)]
    pub config: Arc<ConfigSet>,
    /// The proxy identity the snapshot was compiled for.
    #[serde(skip)]
    pub options: crate::compile::ProxyIdentity,
}

impl Default for Status {
    fn default() -> Self {
        Status {
            version: 0,
            loaded_at: String::new(),
            paths: Vec::new(),
            last_rejected: None,
            rejected: Vec::new(),
            endpoint_updates: 0,
            config: Arc::new(ConfigSet::default()),
            options: crate::compile::ProxyIdentity::default(),
        }
    }
}

/// The configuration source's watch metrics (the Kubernetes source), read
/// from its live state at scrape time: per kind, the watch events, relists
/// and errors, and when the last change was applied.
#[derive(Clone, Debug, Default)]
pub struct SourceStats {
    events: Family<Vec<(String, String)>, Counter>,
    relists: Family<Vec<(String, String)>, Counter>,
    errors: Family<Vec<(String, String)>, Counter>,
    last_change: Gauge<f64, AtomicU64>,
}

impl SourceStats {
    pub fn register(&self, metrics: &mut crate::metrics::Metrics) {
        metrics.register(
            "strait_kubernetes_watch_events",
            "Objects received by the Kubernetes watches (listed or watched), per kind",
            self.events.clone(),
        );
        metrics.register(
            "strait_kubernetes_watch_relists",
            "Full lists by the Kubernetes watches (the first, and after a 410 Gone), per kind",
            self.relists.clone(),
        );
        metrics.register(
            "strait_kubernetes_watch_errors",
            "Errors of the Kubernetes watches (retried with backoff), per kind",
            self.errors.clone(),
        );
        metrics.register(
            "strait_kubernetes_last_change_timestamp_seconds",
            "When the last change from the Kubernetes API was applied to the watch cache (Unix seconds)",
            self.last_change.clone(),
        );
    }

    /// Bring the series up to the source's state (`/config_dump`'s `source`).
    pub fn refresh(&self, state: &serde_json::Value) {
        let Some(watches) = state["watches"].as_array() else {
            return;
        };
        let mut sums: std::collections::BTreeMap<&str, [u64; 3]> = Default::default();
        for w in watches {
            let Some(kind) = w["kind"].as_str() else {
                continue;
            };
            let s = sums.entry(kind).or_default();
            for (i, f) in ["events", "relists", "errors"].iter().enumerate() {
                s[i] += w[f].as_u64().unwrap_or(0);
            }
        }
        for (kind, [events, relists, errors]) in sums {
            let labels = vec![("kind".to_string(), kind.to_string())];
            for (family, value) in [
                (&self.events, events),
                (&self.relists, relists),
                (&self.errors, errors),
            ] {
                let c = family.get_or_create(&labels);
                c.inc_by(value.saturating_sub(c.get()));
            }
        }
        if let Some(t) = state["lastChangeUnixSeconds"].as_f64() {
            self.last_change.set(t);
        }
    }
}
