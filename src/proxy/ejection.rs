//! One attempt's (HTTP) or connection's (TCP) outcome on a host, reported to
//! the cluster's outlier detection; an ejection it causes is logged and
//! counted (`envoy_cluster_outlier_detection_ejections_total` and the
//! `_active` gauge), the same way for both protocols.

use std::sync::Arc;

use super::Shared;
use crate::cluster::outlier::HostOutcome;
use crate::cluster::{ClusterState, Host};
use crate::compile::Cluster;
use crate::metrics::ClusterLabels;

/// Report `outcome` on `host` (of `state`, the state the host was picked
/// from) and count an ejection it causes.
pub fn record(
    shared: &Shared,
    state: &ClusterState,
    cluster: &Cluster,
    stats: &ClusterLabels,
    host: &Arc<Host>,
    outcome: HostOutcome,
) {
    let registry = &shared.clusters;
    let now = super::clock::now();
    let Some(e) = registry.record(state, &cluster.key, host, outcome, now) else {
        return;
    };
    tracing::info!(
        cluster = %cluster.name,
        host = %host.authority(),
        kind = ?e.kind,
        duration_ms = e.duration.as_millis() as u64,
        "outlier detection ejected a host"
    );
    shared
        .metrics
        .outlier_detection_ejections_total
        .get_or_create(stats)
        .inc();
    let active = registry
        .state_for(cluster)
        .outlier
        .as_ref()
        .map_or(0, |od| od.ejected_count(now));
    shared
        .metrics
        .outlier_detection_ejections_active
        .get_or_create(stats)
        .set(active as i64);
}
