//! A histogram whose observations take no lock. prometheus-client's
//! `Histogram` takes a mutex per observation (three per request, shared by
//! every worker's requests to the same series); here each observation is
//! two atomic additions and a compare-and-swap for the sum.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use prometheus_client::encoding::{EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::{MetricType, TypedMetric};

/// Fixed upper bounds plus `+Inf`; a clone shares the counts.
#[derive(Clone, Debug)]
pub struct Histogram {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    bounds: &'static [f64],
    /// One count per bound, the last for `+Inf` (not cumulative).
    counts: Box<[AtomicU64]>,
    /// The sum's `f64` bits.
    sum: AtomicU64,
}

impl Histogram {
    pub fn new(bounds: &'static [f64]) -> Histogram {
        Histogram {
            inner: Arc::new(Inner {
                bounds,
                counts: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
                sum: AtomicU64::new(0f64.to_bits()),
            }),
        }
    }

    pub fn observe(&self, v: f64) {
        let i = &self.inner;
        // The first bound at or above `v`; past them all (and NaN): `+Inf`.
        let at = i
            .bounds
            .iter()
            .position(|b| v <= *b)
            .unwrap_or(i.bounds.len());
        if let Some(c) = i.counts.get(at) {
            c.fetch_add(1, Ordering::Relaxed);
        }
        let _ = i
            .sum
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |s| {
                Some((f64::from_bits(s) + v).to_bits())
            });
    }

    /// The count in each bucket and the sum. The total count is the
    /// buckets' sum, so `_count` and the `+Inf` bucket always agree.
    fn read(&self) -> (f64, u64, Vec<(f64, u64)>) {
        let i = &self.inner;
        let mut count = 0u64;
        let buckets = i
            .counts
            .iter()
            .enumerate()
            .map(|(k, c)| {
                let n = c.load(Ordering::Relaxed);
                count += n;
                (i.bounds.get(k).copied().unwrap_or(f64::INFINITY), n)
            })
            .collect();
        (
            f64::from_bits(i.sum.load(Ordering::Relaxed)),
            count,
            buckets,
        )
    }

    /// Cumulative counts, one per bound and a last for `+Inf` (the admin
    /// page's sampler reads them).
    pub fn cumulative(&self) -> Vec<u64> {
        let mut total = 0u64;
        self.inner
            .counts
            .iter()
            .map(|c| {
                total += c.load(Ordering::Relaxed);
                total
            })
            .collect()
    }
}

impl TypedMetric for Histogram {
    const TYPE: MetricType = MetricType::Histogram;
}

impl EncodeMetric for Histogram {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        let (sum, count, buckets) = self.read();
        encoder.encode_histogram::<NoLabelSet>(sum, count, &buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        Self::TYPE
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus_client::registry::Registry;

    const BOUNDS: [f64; 3] = [1.0, 10.0, 100.0];

    fn text(h: &Histogram) -> String {
        let mut r = Registry::default();
        r.register("d", "", h.clone());
        let mut out = String::new();
        prometheus_client::encoding::text::encode_registry(&mut out, &r).unwrap();
        out
    }

    #[test]
    fn encodes_as_prometheus_clients_histogram_does() {
        let ours = Histogram::new(&BOUNDS);
        let theirs = prometheus_client::metrics::histogram::Histogram::new(BOUNDS);
        for v in [0.5, 1.0, 3.0, 10.0, 99.0, 1e9, f64::NAN] {
            ours.observe(if v.is_nan() { 0.0 } else { v });
            theirs.observe(if v.is_nan() { 0.0 } else { v });
        }
        let mut r = Registry::default();
        r.register("d", "", theirs);
        let mut expected = String::new();
        prometheus_client::encoding::text::encode_registry(&mut expected, &r).unwrap();
        assert_eq!(text(&ours), expected);
        assert_eq!(ours.cumulative(), vec![3, 5, 6, 7]);
    }

    #[test]
    fn nan_and_values_past_every_bound_count_in_inf() {
        let h = Histogram::new(&BOUNDS);
        h.observe(f64::NAN);
        h.observe(1e12);
        assert_eq!(h.cumulative(), vec![0, 0, 0, 2]);
        assert!(text(&h).contains("d_count 2"), "{}", text(&h));
    }

    #[test]
    fn observations_from_many_threads_all_count() {
        let h = Histogram::new(&BOUNDS);
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    for _ in 0..1000 {
                        h.observe(2.0);
                    }
                });
            }
        });
        assert_eq!(h.cumulative(), vec![0, 4000, 4000, 4000]);
        assert!(text(&h).contains("d_sum 8000.0"), "{}", text(&h));
    }
}
