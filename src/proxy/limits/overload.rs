//! The overload guard: resident memory sampled off the request path; over
//! `--memory-limit`, new requests get 503 OM and new connections are
//! refused.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use super::DownstreamStats;

/// The overload guard's state, written only by the sampler.
#[derive(Debug, Default)]
pub struct Overload {
    /// Bytes; 0 is off.
    limit: AtomicU64,
    rss: AtomicU64,
    active: AtomicBool,
}

impl Overload {
    pub fn new(limit: Option<u64>) -> Overload {
        Overload {
            limit: AtomicU64::new(limit.unwrap_or(0)),
            ..Overload::default()
        }
    }

    /// New requests get 503 and new connections are refused.
    #[inline]
    pub fn active(&self) -> bool {
        self.active.load(Ordering::Relaxed)
    }

    /// Change the memory limit at run time (`None`: off); the next sample
    /// applies it.
    pub fn set_limit(&self, limit: Option<u64>) {
        self.limit.store(limit.unwrap_or(0), Ordering::Relaxed);
    }

    /// The last resident-memory sample, in bytes.
    pub fn rss(&self) -> u64 {
        self.rss.load(Ordering::Relaxed)
    }

    /// Take one sample and update the state; returns whether it is active.
    pub fn sample(&self, stats: &DownstreamStats) -> bool {
        let limit = self.limit.load(Ordering::Relaxed);
        let active = if limit == 0 {
            false
        } else {
            match resident_bytes() {
                Some(rss) => {
                    self.rss.store(rss, Ordering::Relaxed);
                    rss >= limit
                }
                // Unreadable: keep the previous state rather than flap.
                None => self.active(),
            }
        };
        if self.active.swap(active, Ordering::Relaxed) != active {
            if active {
                tracing::warn!(
                    rss = self.rss(),
                    limit,
                    "overloaded: shedding new requests and refusing connections until memory is under --memory-limit"
                );
            } else {
                tracing::info!(rss = self.rss(), limit, "no longer overloaded");
            }
        }
        stats.overload_active.set(i64::from(active));
        active
    }
}

/// This process's resident memory (Linux `/proc/self/status` VmRSS).
pub fn resident_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line
        .trim_start_matches("VmRSS:")
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kb * 1024)
}

/// Parse a byte size: plain bytes or with a K/M/G (KiB, MiB, GiB) suffix,
/// `Ki`/`Mi`/`Gi` (Kubernetes style) or `KB`/`MB`/`GB` accepted alike.
pub fn parse_bytes(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num.parse().map_err(|_| {
        format!("{s:?} is not a size: use bytes or a number with K, M or G (e.g. 512M)")
    })?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "ki" | "kb" | "kib" => 1 << 10,
        "m" | "mi" | "mb" | "mib" => 1 << 20,
        "g" | "gi" | "gb" | "gib" => 1 << 30,
        _ => {
            return Err(format!(
                "{s:?} has an unknown unit: use K, M or G (e.g. 512M)"
            ));
        }
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("{s:?} is too large"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_binary_units() {
        assert_eq!(parse_bytes("1024").unwrap(), 1024);
        assert_eq!(parse_bytes("512M").unwrap(), 512 << 20);
        assert_eq!(parse_bytes("2Gi").unwrap(), 2 << 30);
        assert_eq!(parse_bytes("64kb").unwrap(), 64 << 10);
        assert!(parse_bytes("12X").is_err());
        assert!(parse_bytes("").is_err());
        assert!(parse_bytes("99999999999999G").is_err());
    }

    #[test]
    fn resident_memory_is_readable_here() {
        if cfg!(target_os = "linux") {
            assert!(resident_bytes().unwrap() > 0);
        }
    }
}
