//! `strait explain`: what the proxy would do with one request, and why.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;

use http::HeaderMap;

use super::exit;
use crate::compile::ProxyIdentity;
use crate::config::ConfigSet;
use crate::explain::{self, Request};
use crate::pipeline::{self, Rejection, load_options, load_valid, validate};

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
    /// `--use-kube`: the live cluster's resources, `config` layered over
    /// them, as `run --kubernetes` would serve them.
    pub cluster: Option<super::check::KubeCluster>,
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
    let loaded = match &args.cluster {
        None => load_valid(&args.config, &args.namespace).map(|(c, _)| c),
        Some(cluster) => match from_cluster(cluster, &args, &mut err) {
            Ok(loaded) => loaded,
            Err(code) => return code,
        },
    };
    let config = match loaded {
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

/// The cluster's resources with the files layered over them, as `run
/// --kubernetes` serves them: a resource that fails validation is left out
/// alone (said on `err`), the rest explained. `Err`: the cluster could not
/// be read (the exit code).
fn from_cluster(
    cluster: &super::check::KubeCluster,
    args: &ExplainArgs,
    err: &mut dyn Write,
) -> Result<Result<ConfigSet, Rejection>, i32> {
    let opts = load_options(&args.namespace);
    let (mut config, _) =
        super::check::load_cluster(cluster, &args.config, &opts).map_err(|e| {
            let _ = writeln!(err, "Error: --use-kube: {e}");
            exit::USAGE
        })?;
    match validate(&config, &args.namespace) {
        Err(Rejection::Invalid(messages)) => {
            let refs: Vec<_> = messages.iter().filter_map(|m| m.resource.clone()).collect();
            if refs.is_empty() {
                return Ok(Err(Rejection::Invalid(messages)));
            }
            for m in &messages {
                let _ = writeln!(
                    err,
                    "Warning: {m}; left out, as run --kubernetes leaves it out"
                );
            }
            config.remove(&refs);
            Ok(validate(&config, &args.namespace).map(|_| config))
        }
        checked => Ok(checked.map(|_| config)),
    }
}
