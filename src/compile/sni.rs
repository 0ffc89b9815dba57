//! TLS routes picked by SNI, as Envoy picks a listener's filter chain by
//! `server_names` (`FilterChainMatch`): a VirtualService `tls` rule's
//! `match[].sniHosts` become one chain each, whose tcp_proxy sends the raw
//! TLS stream to the rule's weighted destinations. Shared by gateway
//! `PASSTHROUGH` servers (`gateway.rs`) and the sidecar listener
//! (`sidecar_tls`), and by `explain`.

use super::gateway::TcpDestination;

/// One filter chain: SNI names → tcp_proxy.
#[derive(Debug)]
pub struct TlsRoute {
    /// `namespace/name` of the VirtualService; `None` for a service's own
    /// chain (the sidecar's route to a TLS service no `tls` rule covers).
    pub virtual_service: Option<String>,
    /// Index of the rule in the VirtualService's `tls` list.
    pub rule_index: usize,
    /// Index of the match in the rule's `match` list.
    pub match_index: usize,
    /// Lower-cased `server_names`; empty matches any SNI and none (a
    /// `sniHosts: ['*']` match: pilot leaves `server_names` out).
    pub sni: Vec<String>,
    /// The weighted destinations; empty when none names a known service
    /// (the connection is then closed, flag NC).
    pub destinations: Vec<TcpDestination>,
}

impl TlsRoute {
    /// The access log's `route_name`: `namespace/name#tls[i]`, or the
    /// service's cluster for a service's own chain.
    pub fn name(&self) -> String {
        match &self.virtual_service {
            Some(vs) => format!("{vs}#tls[{}]", self.rule_index),
            None => self
                .destinations
                .first()
                .map_or_else(String::new, |d| d.cluster.name.to_string()),
        }
    }
}

/// pilot's filter chain `server_names` for SNI hosts: lower-cased, sorted,
/// unique; none at all when one is `*` (`toFilterChainMatch`).
pub fn server_names(hosts: &[String]) -> Vec<String> {
    let mut out: Vec<String> = hosts
        .iter()
        .map(|h| h.trim_end_matches('.').to_ascii_lowercase())
        .collect();
    if out.iter().any(|h| h == "*") {
        return Vec::new();
    }
    out.sort();
    out.dedup();
    out
}

/// How well `names` (a chain's `server_names`) match `sni`, best first:
/// an exact name, then a `*.suffix` wildcard (the longer suffix the
/// better: Envoy tries `*.b.example.com` before `*.example.com` for
/// `a.b.example.com`), then a chain without names, which matches any SNI
/// and none; `None`: no match.
fn rank(names: &[String], sni: Option<&str>) -> Option<(u8, usize)> {
    if names.is_empty() {
        return Some((2, 0));
    }
    let sni = sni?;
    let mut best: Option<(u8, usize)> = None;
    for n in names {
        let r = if n == sni {
            (0, 0)
        } else if let Some(suffix) = n.strip_prefix('*')
            && suffix.starts_with('.')
            && sni.len() > suffix.len()
            && sni.ends_with(suffix)
        {
            (1, usize::MAX - suffix.len())
        } else {
            continue;
        };
        best = Some(best.map_or(r, |b| b.min(r)));
    }
    best
}

/// The SNI as matched: lower-cased, without a trailing dot.
pub fn normalize(sni: &str) -> String {
    sni.trim_end_matches('.').to_ascii_lowercase()
}

/// Envoy's filter chain match on `server_names` over `chains` (each with
/// its names): the best match by [`rank`], the first of equals. `None`:
/// no filter chain matches and Envoy closes the connection.
pub fn select<'a, T>(
    chains: impl IntoIterator<Item = (&'a [String], T)>,
    sni: Option<&str>,
) -> Option<T> {
    let sni = sni.map(normalize);
    let mut best: Option<((u8, usize), T)> = None;
    for (names, item) in chains {
        let Some(r) = rank(names, sni.as_deref()) else {
            continue;
        };
        if best.as_ref().is_none_or(|(b, _)| r < *b) {
            best = Some((r, item));
        }
    }
    best.map(|(_, item)| item)
}

/// The weighted pick of a destination (`None` when there is none).
pub fn pick_destination(
    destinations: &[TcpDestination],
    roll: impl FnOnce(u64) -> u64,
) -> Option<&TcpDestination> {
    let total: u64 = destinations
        .iter()
        .map(|d| u64::from(d.cluster.weight))
        .sum();
    if destinations.len() > 1 && total > 0 {
        let roll = roll(total);
        let mut acc = 0u64;
        for d in destinations {
            acc += u64::from(d.cluster.weight);
            if roll < acc {
                return Some(d);
            }
        }
    }
    destinations.first()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(n: &[&str]) -> Vec<String> {
        server_names(&n.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    /// Envoy `FilterChainMatch.server_names`: exact first, then the longest
    /// wildcard, then a chain without server names; no SNI only the last.
    #[test]
    fn exact_then_longest_wildcard_then_catch_all() {
        let chains = [
            names(&["*.example.com"]),
            names(&["*.b.example.com"]),
            names(&["A.b.example.com."]),
            names(&["*"]),
        ];
        let pick = |sni: Option<&str>| {
            select(
                chains.iter().enumerate().map(|(i, n)| (n.as_slice(), i)),
                sni,
            )
        };
        assert_eq!(pick(Some("a.b.example.com")), Some(2));
        assert_eq!(pick(Some("A.B.EXAMPLE.COM.")), Some(2));
        assert_eq!(pick(Some("c.b.example.com")), Some(1));
        assert_eq!(pick(Some("x.y.example.com")), Some(0));
        assert_eq!(pick(Some("example.com")), Some(3));
        assert_eq!(pick(None), Some(3));
        let no_catch_all = &chains[..3];
        let pick = |sni: Option<&str>| {
            select(
                no_catch_all
                    .iter()
                    .enumerate()
                    .map(|(i, n)| (n.as_slice(), i)),
                sni,
            )
        };
        assert_eq!(pick(Some("example.com")), None);
        assert_eq!(pick(Some("b.example.com")), Some(0));
        assert_eq!(pick(None), None);
    }
}
