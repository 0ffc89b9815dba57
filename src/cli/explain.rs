//! `strait explain`: what the proxy would do with one request, and why.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;

use http::{HeaderMap, HeaderName, HeaderValue};

use super::run::load_valid;
use crate::compile::Options;
use crate::explain::{self, Request};

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
    pub json: bool,
}

/// `Name: value` → header.
pub fn parse_header(s: &str) -> Result<(HeaderName, HeaderValue), String> {
    let (n, v) = s
        .split_once(':')
        .ok_or_else(|| format!("header {s:?} is not `Name: value`"))?;
    let name = HeaderName::from_bytes(n.trim().to_ascii_lowercase().as_bytes())
        .map_err(|_| format!("invalid header name {:?}", n.trim()))?;
    let value =
        HeaderValue::from_str(v.trim()).map_err(|_| format!("invalid header value in {s:?}"))?;
    Ok((name, value))
}

pub fn run(args: ExplainArgs) -> i32 {
    let (mut out, mut err) = (std::io::stdout(), std::io::stderr());
    let mut headers = HeaderMap::new();
    for h in &args.headers {
        match parse_header(h) {
            Ok((n, v)) => {
                headers.append(n, v);
            }
            Err(e) => {
                let _ = writeln!(err, "Error: {e}");
                return super::check::EXIT_USAGE;
            }
        }
    }
    let req = match Request::parse(&args.method, &args.url, headers) {
        Ok(r) => r,
        Err(e) => {
            let _ = writeln!(err, "Error: {e}");
            return super::check::EXIT_USAGE;
        }
    };
    let (config, _) = match load_valid(&args.config, &args.namespace) {
        Ok(c) => c,
        Err((text, code)) => {
            let _ = writeln!(err, "{text}");
            return code;
        }
    };
    let opts = Options {
        namespace: args.namespace.clone(),
        labels: args.labels.clone(),
        domain: args.domain_suffix.clone(),
        ..Options::default()
    };
    let snap = crate::compile::compile(&config, &opts);
    let report = explain::explain(&config, &snap, &opts, &req);
    if args.json {
        let _ = writeln!(
            out,
            "{}",
            serde_json::to_string_pretty(&report).unwrap_or_default()
        );
    } else {
        let _ = write!(out, "{}", explain::render_text(&report));
    }
    0
}
