//! The request path's random draws (load balancing, weighted splits,
//! fractions, retry jitter): a fast generator per thread (rand's
//! `SmallRng`, Xoshiro256++), seeded once per thread from rand's
//! `ThreadRng`. Nothing here needs unpredictability, and `ThreadRng`
//! (ChaCha12 with reseeding checks) costs a few hundred instructions per
//! request's draws. Request ids keep `ThreadRng`.

use std::cell::RefCell;

use rand::distr::uniform::{SampleRange, SampleUniform};
use rand::distr::{Distribution, StandardUniform};
use rand::rngs::SmallRng;
use rand::{RngExt, SeedableRng};

thread_local! {
    static RNG: RefCell<SmallRng> = RefCell::new(SmallRng::from_seed(rand::random()));
}

/// A value drawn uniformly from `range`, as `rand::random_range` (which
/// panics on an empty range, as this does).
pub fn random_range<T, R>(range: R) -> T
where
    T: SampleUniform,
    R: SampleRange<T>,
{
    RNG.with_borrow_mut(|r| r.random_range(range))
}

/// A random value, as `rand::random`.
pub fn random<T>() -> T
where
    StandardUniform: Distribution<T>,
{
    RNG.with_borrow_mut(|r| r.random())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_cover_the_range_and_stay_in_it() {
        let mut seen = [0u32; 10];
        for _ in 0..10_000 {
            let i = random_range(0..10usize);
            seen[i] += 1;
        }
        // Uniform enough for load balancing: every value, none dominant.
        assert!(seen.iter().all(|&n| (800..1200).contains(&n)), "{seen:?}");
        let f: f64 = random();
        assert!((0.0..1.0).contains(&f));
    }

    #[test]
    fn threads_draw_different_sequences() {
        let a: Vec<u64> = (0..4).map(|_| random()).collect();
        let b = std::thread::spawn(|| (0..4).map(|_| random()).collect::<Vec<u64>>())
            .join()
            .unwrap();
        assert_ne!(a, b);
    }
}
