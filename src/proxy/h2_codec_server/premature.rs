//! Envoy's guard against streams reset before they were served (the HTTP
//! connection manager's `isPrematureRstStream` and
//! `maybeDrainDueToPrematureResets`, Envoy 1.24.11+, CVE-2023-44487): a
//! stream that closes without a response head within
//! `overload.premature_reset_min_stream_lifetime_seconds` (1, compared in
//! whole seconds) of its start is premature; once
//! `overload.premature_reset_total_stream_count` (500) streams have
//! closed, a connection whose premature ones are at least half is closed,
//! and before that as soon as they reach half of that count (the ratio
//! could not recover). This bounds what a client that opens and resets
//! streams one round trip apart costs (the codec's own Rapid Reset bound
//! only counts resets within one read).

/// Envoy's `overload.premature_reset_total_stream_count` default.
const TOTAL_STREAMS: u64 = 500;
/// Envoy's `overload.premature_reset_min_stream_lifetime_seconds` default.
const MIN_LIFETIME_SECONDS: u64 = 1;

/// One connection's closed streams and premature ones among them.
#[derive(Debug, Default)]
pub(super) struct PrematureResets {
    closed: u64,
    premature: u64,
}

impl PrematureResets {
    /// A stream closed after `lifetime_ms`, with or without a response
    /// head sent; whether the connection must now be closed.
    pub(super) fn closed(&mut self, responded: bool, lifetime_ms: u64) -> bool {
        self.closed += 1;
        if !responded && lifetime_ms / 1000 <= MIN_LIFETIME_SECONDS {
            self.premature += 1;
        }
        if self.closed < TOTAL_STREAMS {
            self.premature * 2 >= TOTAL_STREAMS
        } else {
            self.premature * 2 >= self.closed
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn half_of_500_premature_resets_close_the_connection_at_once() {
        let mut p = PrematureResets::default();
        for _ in 0..249 {
            assert!(!p.closed(false, 0));
        }
        assert!(
            p.closed(false, 1999),
            "the 250th, under 2 s in whole seconds"
        );
    }

    #[test]
    fn served_or_long_lived_streams_are_not_premature() {
        let mut p = PrematureResets::default();
        for _ in 0..1000 {
            assert!(!p.closed(true, 0), "a response head went out");
            assert!(!p.closed(false, 2000), "two whole seconds old");
        }
    }

    #[test]
    fn past_500_streams_the_ratio_decides() {
        let mut p = PrematureResets::default();
        // 300 served, then premature ones: 200 of 500 is under half...
        for _ in 0..300 {
            assert!(!p.closed(true, 5));
        }
        for _ in 0..200 {
            assert!(!p.closed(false, 5));
        }
        // ...and past 500 the ratio must reach half: 300 premature of 600.
        for _ in 0..99 {
            assert!(!p.closed(false, 5));
        }
        assert!(p.closed(false, 5));
    }
}
