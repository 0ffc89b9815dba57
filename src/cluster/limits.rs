//! Envoy circuit breakers that act on requests, from a DestinationRule's
//! `connectionPool.http`: `http2MaxRequests` (Envoy `max_requests`: active
//! requests in the cluster, HTTP/1.1 and HTTP/2 alike) and `maxRetries`
//! (Envoy `max_retries`: retries in flight across the cluster).
//!
//! They fail fast and never queue: [`ResourceLimit::try_acquire`] either hands
//! out a [`Permit`] (released when dropped) or refuses. Istio writes
//! 2^32-1 for every threshold it does not set, and treats 0 as unset
//! (`if settings.Http.MaxRetries > 0`), so an explicit `maxRetries: 0`
//! does not disable retries.
//!
//! `http1MaxPendingRequests` and `tcp.maxConnections` belong to the
//! connection pool (`proxy::upstream`), not here.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use crate::compile::cluster_policy::CircuitBreakers;

/// One counted resource with a maximum (Envoy's `ResourceManager` entry).
#[derive(Debug)]
pub struct ResourceLimit {
    count: AtomicU32,
    max: u32,
}

impl ResourceLimit {
    pub fn new(max: u32) -> Arc<ResourceLimit> {
        Arc::new(ResourceLimit {
            count: AtomicU32::new(0),
            max,
        })
    }

    /// A permit if the resource is below its maximum; `None` (overflow)
    /// otherwise. Never waits.
    pub fn try_acquire(self: &Arc<Self>) -> Option<Permit> {
        self.count
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |c| {
                (c < self.max).then_some(c + 1)
            })
            .ok()
            .map(|_| Permit(self.clone()))
    }

    /// Permits currently held.
    pub fn count(&self) -> u32 {
        self.count.load(Ordering::Acquire)
    }

    pub fn max(&self) -> u32 {
        self.max
    }
}

/// A held unit of a [`ResourceLimit`]; dropping it releases the unit.
#[derive(Debug)]
pub struct Permit(Arc<ResourceLimit>);

impl Drop for Permit {
    fn drop(&mut self) {
        self.0.count.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The request-level circuit breakers of one cluster.
#[derive(Debug)]
pub struct Breakers {
    /// `http2MaxRequests` → Envoy `max_requests`.
    pub requests: Arc<ResourceLimit>,
    /// `maxRetries` → Envoy `max_retries`.
    pub retries: Arc<ResourceLimit>,
}

impl Breakers {
    /// Fresh counters for the compiled thresholds.
    pub fn new(breakers: &CircuitBreakers) -> Breakers {
        Breakers {
            requests: ResourceLimit::new(breakers.max_requests),
            retries: ResourceLimit::new(breakers.max_retries),
        }
    }

    /// Admit one more active request, or `None` (503 UO).
    pub fn try_request(&self) -> Option<Permit> {
        self.requests.try_acquire()
    }

    /// Admit one more retry, or `None` (`upstream_rq_retry_overflow`).
    pub fn try_retry(&self) -> Option<Permit> {
        self.retries.try_acquire()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compile::cluster_policy::{ClusterPolicy, UNLIMITED};
    use crate::model::{ConnectionPoolSettings, HTTPSettings, TrafficPolicy};

    fn from_policy(policy: Option<&TrafficPolicy>) -> Breakers {
        Breakers::new(&ClusterPolicy::new(policy).breakers)
    }

    fn policy(max_requests: Option<i32>, max_retries: Option<i32>) -> TrafficPolicy {
        TrafficPolicy {
            connection_pool: Some(Box::new(ConnectionPoolSettings {
                http: Some(HTTPSettings {
                    http2_max_requests: max_requests,
                    max_retries,
                    ..Default::default()
                }),
                ..Default::default()
            })),
            ..Default::default()
        }
    }

    #[test]
    fn unset_and_zero_thresholds_are_istio_max() {
        let l = from_policy(None);
        assert_eq!(l.requests.max(), UNLIMITED);
        assert_eq!(l.retries.max(), UNLIMITED);
        let l = from_policy(Some(&policy(Some(0), Some(0))));
        assert_eq!(l.requests.max(), UNLIMITED);
        assert_eq!(l.retries.max(), UNLIMITED, "Istio ignores maxRetries: 0");
        let l = from_policy(Some(&policy(Some(2), Some(1))));
        assert_eq!((l.requests.max(), l.retries.max()), (2, 1));
    }

    #[test]
    fn permits_fail_fast_at_the_limit_and_release_on_drop() {
        let l = from_policy(Some(&policy(Some(2), Some(1))));
        let a = l.try_request().expect("first");
        let b = l.try_request().expect("second");
        assert!(l.try_request().is_none(), "third overflows");
        assert_eq!(l.requests.count(), 2);
        drop(a);
        let c = l.try_request().expect("a slot was released");
        drop((b, c));
        assert_eq!(l.requests.count(), 0);
        let r = l.try_retry().expect("one retry");
        assert!(l.try_retry().is_none());
        drop(r);
        assert!(l.try_retry().is_some());
    }
}
