//! The compiled routing table and route selection: pure data and pure
//! functions, shared by the proxy and `strait explain`. Built by
//! `compile` from a `ConfigSet`; never mutated after that.

mod cors;
pub mod hash_policy;
pub mod matcher;
pub mod retry;
pub mod rewrite;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderName, HeaderValue, StatusCode};

pub use matcher::{Miss, RequestView, RouteMatch, StrMatch};
pub use retry::RetryPolicy;

/// Envoy's cluster identity: `outbound|<port>|<subset>|<fqdn>`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClusterKey {
    pub port: u16,
    pub subset: String,
    pub host: String,
}

impl fmt::Display for ClusterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "outbound|{}|{}|{}", self.port, self.subset, self.host)
    }
}

/// Upstream protocol of a cluster, from the service port's protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UpstreamProtocol {
    Http1,
    /// HTTP/2 cleartext with prior knowledge (`HTTP2`, `GRPC` ports).
    H2c,
}

/// One routing table: every virtual host reachable through the listener.
#[derive(Debug, Default)]
pub struct RouteTable {
    /// `host:port` (lowercase) → index into `vhosts`.
    domains: rustc_hash::FxHashMap<Box<[u8]>, usize>,
    /// Wildcard domains (`*.example.com:443`): (suffix after `*`, port, index),
    /// longest suffix first.
    wildcards: Vec<(String, u16, usize)>,
    pub vhosts: Vec<VirtualHost>,
    /// Match domains on the host alone (Envoy's
    /// `ignore_port_in_host_matching`, which Istio sets on gateway routes);
    /// domains are then registered on port 0.
    ignore_port: bool,
}

impl RouteTable {
    /// A table whose lookups ignore the authority's port (gateways).
    pub fn ignoring_port() -> RouteTable {
        RouteTable {
            ignore_port: true,
            ..RouteTable::default()
        }
    }

    pub fn add_vhost(&mut self, vhost: VirtualHost) -> usize {
        self.vhosts.push(vhost);
        self.vhosts.len() - 1
    }

    /// Register `domain` (`host` or `*.suffix`) on `port` for vhost `idx`.
    /// The first registration of a domain wins, as Envoy's first vhost does.
    pub fn add_domain(&mut self, domain: &str, port: u16, idx: usize) {
        let d = domain.to_ascii_lowercase();
        if let Some(suffix) = d.strip_prefix('*') {
            if !self
                .wildcards
                .iter()
                .any(|(s, p, _)| s == suffix && *p == port)
            {
                self.wildcards.push((suffix.to_string(), port, idx));
                self.wildcards.sort_by_key(|w| std::cmp::Reverse(w.0.len()));
            }
        } else {
            self.domains
                .entry(format!("{d}:{port}").into_bytes().into_boxed_slice())
                .or_insert(idx);
        }
    }

    /// The vhost for a request authority (`host[:port]`, port 80 when absent).
    pub fn vhost(&self, authority: &str) -> Option<&VirtualHost> {
        let (host, port) = split_authority(authority);
        let port = if self.ignore_port { 0 } else { port };
        // `host:port` lowercased, built on the stack for usual lengths.
        let mut stack = [0u8; 128];
        let mut heap = Vec::new();
        let need = host.len() + 6;
        let buf: &mut [u8] = if need <= stack.len() {
            &mut stack[..need]
        } else {
            heap.resize(need, 0);
            &mut heap[..]
        };
        buf[..host.len()].copy_from_slice(host.as_bytes());
        buf[..host.len()].make_ascii_lowercase();
        let host_len = host.len();
        buf[host_len] = b':';
        let mut digits = [0u8; 5];
        let mut n = port;
        let mut d = digits.len();
        loop {
            d -= 1;
            digits[d] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        let len = host_len + 1 + (digits.len() - d);
        buf[host_len + 1..len].copy_from_slice(&digits[d..]);
        // Keyed by bytes: the authority is text already, no UTF-8 check.
        let key = &buf[..len];
        if let Some(i) = self.domains.get(key) {
            return self.vhosts.get(*i);
        }
        let host = &key[..host_len];
        self.wildcards
            .iter()
            .find(|(suffix, p, _)| {
                *p == port && host.ends_with(suffix.as_bytes()) && host.len() > suffix.len()
            })
            .and_then(|(_, _, i)| self.vhosts.get(*i))
    }

    pub fn domain_count(&self) -> usize {
        self.domains.len() + self.wildcards.len()
    }
}

/// Split `host[:port]` (IPv6 in brackets); the port defaults to 80.
pub fn split_authority(authority: &str) -> (&str, u16) {
    if let Some(rest) = authority.strip_prefix('[')
        && let Some((h, after)) = rest.split_once(']')
    {
        let port = after
            .strip_prefix(':')
            .and_then(|p| p.parse().ok())
            .unwrap_or(80);
        return (h, port);
    }
    match authority.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') => match p.parse() {
            Ok(port) => (h, port),
            Err(_) => (authority, 80),
        },
        _ => (authority, 80),
    }
}

/// Routes for one service port (or one VirtualService host).
#[derive(Debug)]
pub struct VirtualHost {
    /// Envoy's vhost name, `host:port`.
    pub name: String,
    /// The VirtualService that produced the routes (`namespace/name`), if any.
    pub virtual_service: Option<String>,
    pub routes: Vec<Route>,
}

impl VirtualHost {
    /// First route whose match accepts the request (first match wins).
    pub fn select(&self, req: &RequestView<'_>) -> Option<&Route> {
        self.select_traced(req, |_, _| {})
    }

    /// [`select`](Self::select), reporting every route it looked at and why
    /// it matched or not: the one selection function, shared with `explain`.
    pub fn select_traced(
        &self,
        req: &RequestView<'_>,
        mut trace: impl FnMut(&Route, Result<(), Miss>),
    ) -> Option<&Route> {
        for r in &self.routes {
            let res = r.matcher.check(req);
            trace(r, res);
            if res.is_ok() {
                return Some(r);
            }
        }
        None
    }
}

/// One Envoy route: one `HTTPRoute` × one of its `match` entries.
#[derive(Debug)]
pub struct Route {
    /// `%ROUTE_NAME%`: the HTTPRoute name, `name.matchName`, or empty.
    pub name: Arc<str>,
    /// Index of the HTTPRoute in the VirtualService's `http` list.
    pub rule_index: Option<usize>,
    pub matcher: RouteMatch,
    pub action: Action,
    pub timeout: Option<Duration>,
    pub retry: Option<Arc<RetryPolicy>>,
    pub fault: Option<Fault>,
    pub mirrors: Vec<Mirror>,
    pub request_headers: HeaderOps,
    pub response_headers: HeaderOps,
    pub rewrite: Option<Rewrite>,
    pub cors: Option<Arc<Cors>>,
}

#[derive(Debug)]
pub enum Action {
    Forward(Vec<WeightedCluster>),
    Redirect(Redirect),
    Direct { status: StatusCode, body: Bytes },
}

/// The one weighted pick (Envoy's weighted clusters, Istio's route
/// `weight`s, HTTP and TCP alike): `roll(total)` must be uniform in
/// `0..total`, and is asked only when there is a choice (two items or more,
/// a total above 0); otherwise the first item.
pub fn pick_weighted<T>(
    items: &[T],
    weight: impl Fn(&T) -> u32,
    roll: impl FnOnce(u64) -> u64,
) -> Option<&T> {
    let total: u64 = items.iter().map(|i| u64::from(weight(i))).sum();
    if items.len() < 2 || total == 0 {
        return items.first();
    }
    let roll = roll(total);
    let mut acc = 0u64;
    for i in items {
        acc += u64::from(weight(i));
        if roll < acc {
            return Some(i);
        }
    }
    items.last()
}

impl Action {
    /// A route's destination by relative weight ([`pick_weighted`]).
    pub fn pick(
        clusters: &[WeightedCluster],
        roll: impl FnOnce(u64) -> u64,
    ) -> Option<&WeightedCluster> {
        pick_weighted(clusters, |c| c.weight, roll)
    }

    pub fn total_weight(clusters: &[WeightedCluster]) -> u64 {
        clusters.iter().map(|c| u64::from(c.weight)).sum()
    }
}

#[derive(Debug)]
pub struct WeightedCluster {
    pub cluster: ClusterKey,
    /// The cluster's name, rendered once.
    pub name: Arc<str>,
    pub weight: u32,
    pub request_headers: HeaderOps,
    pub response_headers: HeaderOps,
    /// Per-destination authority rewrite (`headers.request.set.host`), used
    /// only when the route has no rewrite of its own.
    pub authority: Option<HeaderValue>,
    /// Requests this route sent here (the admin page's observed share).
    pub picked: Picks,
}

/// How many requests a route sent to one of its destinations. A statistic
/// beside the configuration, not part of it: metrics count per cluster,
/// and a cluster can sit in several routes (the demo's `v2` takes the
/// jason route and a tenth of the 90/10 split), so only the route can tell
/// its own split. One relaxed add per forwarded request.
#[derive(Debug, Default)]
pub struct Picks(std::sync::atomic::AtomicU64);

impl Picks {
    pub fn add(&self) {
        self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    pub fn get(&self) -> u64 {
        self.0.load(std::sync::atomic::Ordering::Relaxed)
    }
}

#[derive(Debug, Default)]
pub struct HeaderOps {
    pub set: Vec<(HeaderName, HeaderValue)>,
    pub add: Vec<(HeaderName, HeaderValue)>,
    pub remove: Vec<HeaderName>,
}

impl HeaderOps {
    pub fn is_empty(&self) -> bool {
        self.set.is_empty() && self.add.is_empty() && self.remove.is_empty()
    }

    /// Apply to a request's or a response's header list.
    pub fn apply(&self, headers: &mut crate::header_list::HeaderList) {
        for n in &self.remove {
            headers.remove(n.as_str());
        }
        for (n, v) in &self.set {
            headers.insert(n.clone(), v.clone());
        }
        for (n, v) in &self.add {
            headers.append(n.clone(), v.clone());
        }
    }
}

#[derive(Debug)]
pub struct Rewrite {
    /// Replace the matched prefix (or the whole path for exact/regex matches).
    pub uri: Option<String>,
    pub uri_regex: Option<(regex::Regex, String)>,
    pub authority: Option<HeaderValue>,
}

#[derive(Debug)]
pub struct Redirect {
    pub uri: Option<String>,
    pub prefix_rewrite: Option<String>,
    pub authority: Option<String>,
    pub port: Option<u16>,
    pub derive_port_from_request: bool,
    pub scheme: Option<String>,
    pub status: StatusCode,
}

#[derive(Debug)]
pub struct Fault {
    /// (delay, fraction in millionths).
    pub delay: Option<(Duration, u32)>,
    pub abort: Option<(AbortKind, u32)>,
}

#[derive(Debug, Clone, Copy)]
pub enum AbortKind {
    Http(StatusCode),
    Grpc(u32),
}

#[derive(Debug)]
pub struct Mirror {
    pub cluster: ClusterKey,
    pub name: Arc<str>,
    /// Fraction in millionths.
    pub fraction: u32,
}

#[derive(Debug)]
pub struct Cors {
    pub allow_origins: Vec<StrMatch>,
    pub allow_methods: Option<HeaderValue>,
    pub allow_headers: Option<HeaderValue>,
    pub expose_headers: Option<HeaderValue>,
    pub max_age: Option<HeaderValue>,
    pub allow_credentials: bool,
    pub forward_unmatched_preflights: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authority_port_defaults_to_80() {
        assert_eq!(split_authority("reviews"), ("reviews", 80));
        assert_eq!(split_authority("reviews:9080"), ("reviews", 9080));
        assert_eq!(split_authority("[::1]:8080"), ("::1", 8080));
        assert_eq!(split_authority("[::1]"), ("::1", 80));
        assert_eq!(split_authority("bad:port"), ("bad:port", 80));
    }

    #[test]
    fn vhost_lookup_exact_then_longest_wildcard() {
        let mut t = RouteTable::default();
        let mk = |n: &str| VirtualHost {
            name: n.into(),
            virtual_service: None,
            routes: vec![],
        };
        let a = t.add_vhost(mk("a"));
        let b = t.add_vhost(mk("b"));
        let c = t.add_vhost(mk("c"));
        t.add_domain("reviews", 9080, a);
        t.add_domain("*.example.com", 80, b);
        t.add_domain("*.api.example.com", 80, c);
        assert_eq!(t.vhost("Reviews:9080").unwrap().name, "a");
        assert!(t.vhost("reviews").is_none(), "port 80 has no reviews vhost");
        assert_eq!(t.vhost("x.example.com").unwrap().name, "b");
        assert_eq!(t.vhost("x.api.example.com").unwrap().name, "c");
        assert!(
            t.vhost("example.com").is_none(),
            "wildcard does not match the bare domain"
        );
    }

    #[test]
    fn weighted_pick_is_relative() {
        let wc = |w| WeightedCluster {
            cluster: ClusterKey {
                port: 1,
                subset: String::new(),
                host: "h".into(),
            },
            name: "n".into(),
            weight: w,
            request_headers: HeaderOps::default(),
            response_headers: HeaderOps::default(),
            authority: None,
            picked: Picks::default(),
        };
        let cs = vec![wc(90), wc(20)];
        assert_eq!(Action::total_weight(&cs), 110);
        assert_eq!(Action::pick(&cs, |_| 89).unwrap().weight, 90);
        assert_eq!(Action::pick(&cs, |_| 90).unwrap().weight, 20);
        assert_eq!(Action::pick(&cs, |_| 109).unwrap().weight, 20);
    }

    #[test]
    fn a_roll_is_asked_only_when_there_is_a_choice() {
        let no_roll = |_: u64| -> u64 { panic!("no choice to roll for") };
        let weight = |w: &u32| *w;
        assert_eq!(pick_weighted(&[] as &[u32], weight, no_roll), None);
        assert_eq!(pick_weighted(&[0], weight, no_roll), Some(&0));
        assert_eq!(pick_weighted(&[7], weight, no_roll), Some(&7));
        assert_eq!(pick_weighted(&[0, 0], weight, no_roll), Some(&0));
        let mut asked = None;
        let got = pick_weighted(&[3, 0, 1], weight, |total| {
            asked = Some(total);
            3
        });
        assert_eq!((asked, got), (Some(4), Some(&1)));
    }
}
