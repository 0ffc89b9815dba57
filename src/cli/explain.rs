//! `strait explain`: what the proxy would do with one request, and why.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;

use http::HeaderMap;

use super::exit;
use crate::compile::ProxyIdentity;
use crate::explain::{self, Request};
use crate::pipeline::{self, load_valid};

#[derive(Clone, Debug)]
pub struct ExplainArgs {
    pub config: Vec<PathBuf>,
    pub namespace: String,
    pub labels: BTreeMap<String, String>,
    /// Kubernetes Service host suffix (`cluster.local`).
    pub domain_suffix: String,
    pub method: String,
    pub headers: Vec<String>,
    pub url: String,
    /// As the gateway workload: on server port `port`. TLS SNI `sni`
    /// (on the sidecar listener without `gateway`).
    pub gateway: bool,
    pub port: Option<u16>,
    pub sni: Option<String>,
    pub json: bool,
}

pub fn run(args: ExplainArgs) -> i32 {
    let (mut out, mut err) = (std::io::stdout(), std::io::stderr());
    let mut headers = HeaderMap::new();
    for h in &args.headers {
        match explain::parse_header(h) {
            Ok((n, v)) => {
                headers.append(n, v);
            }
            Err(e) => {
                let _ = writeln!(err, "Error: {e}");
                return exit::USAGE;
            }
        }
    }
    let req = match Request::parse(&args.method, &args.url, headers) {
        Ok(r) => r,
        Err(e) => {
            let _ = writeln!(err, "Error: {e}");
            return exit::USAGE;
        }
    };
    let (config, _) = match load_valid(&args.config, &args.namespace) {
        Ok(c) => c,
        Err(rejection) => {
            let _ = writeln!(err, "{rejection}");
            return exit::rejected(&rejection);
        }
    };
    // explain has no --locality: it shows the routing, not the balancing.
    let opts = ProxyIdentity::new(
        &args.namespace,
        &args.labels,
        args.gateway,
        &args.domain_suffix,
        "",
    );
    let snap = crate::compile::compile(&config, &opts);
    // A server strait cannot build (a missing certificate file) is what
    // `run` would refuse: say so, and explain the rest.
    for p in pipeline::gateway_problems(&snap) {
        let _ = writeln!(err, "Warning: {p}");
    }
    let report = if args.gateway {
        explain::explain_gateway(&config, &snap, &opts, &req, args.port, args.sni.as_deref())
    } else if let Some(sni) = &args.sni {
        explain::explain_sidecar_tls(&config, &snap, &opts, &req, Some(sni))
    } else {
        explain::explain(&config, &snap, &opts, &req)
    };
    if args.json {
        let _ = writeln!(
            out,
            "{}",
            serde_json::to_string_pretty(&report).unwrap_or_default()
        );
    } else {
        let _ = write!(out, "{}", explain::render_text(&report));
    }
    exit::OK
}
