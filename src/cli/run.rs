//! `strait run`: load, validate, compile, serve.

use std::collections::BTreeMap;
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;

use super::exit;
use crate::compile::ProxyIdentity;
use crate::config::ConfigSet;
use crate::pipeline;
use crate::proxy::access_log::{AccessLog, Format};
use crate::source::Source;
use crate::source::file::FileSource;

#[derive(Clone, Debug)]
pub struct RunArgs {
    pub config: Vec<PathBuf>,
    /// Watch the Kubernetes API (with `config` layered over it).
    pub kube: KubeArgs,
    pub namespace: String,
    pub labels: BTreeMap<String, String>,
    /// The proxy's locality, `region/zone/subzone` (empty: none).
    pub locality: String,
    /// Kubernetes Service host suffix (`cluster.local`).
    pub domain_suffix: String,
    pub listen: SocketAddr,
    pub admin: SocketAddr,
    pub access_log: Option<String>,
    pub access_log_format: Format,
    /// How long SIGTERM waits for in-flight requests.
    pub drain_timeout: std::time::Duration,
    /// Worker threads (default: one per CPU).
    pub workers: Option<usize>,
    /// Run as a gateway workload, binding its server ports here.
    pub gateway: Option<crate::proxy::gateway::Bind>,
    /// Downstream limits and the overload guard.
    pub limits: crate::proxy::DownstreamLimits,
    /// Share `listen` with other processes (SO_REUSEPORT); refused otherwise.
    pub reuse_port: bool,
}

/// `strait run`'s Kubernetes flags (README: "Kubernetes").
#[derive(clap::Args, Clone, Debug, Default)]
pub struct KubeArgs {
    /// Serve the cluster's Istio resources, Services and EndpointSlices,
    /// watched from the Kubernetes API; /ready says 200 once every kind has
    /// synced.
    #[arg(long)]
    pub kubernetes: bool,
    /// The kubeconfig (default: KUBECONFIG, ~/.kube/config, else the
    /// in-cluster service account), as kubectl finds it.
    #[arg(long, value_name = "PATH", requires = "kubernetes")]
    pub kubeconfig: Option<PathBuf>,
    /// The kubeconfig context (default: its current context).
    #[arg(long, value_name = "NAME", requires = "kubernetes")]
    pub context: Option<String>,
    /// Watch namespaced kinds in this namespace only (repeatable; default:
    /// every namespace).
    #[arg(long = "watch-namespace", value_name = "NS", requires = "kubernetes")]
    pub watch_namespaces: Vec<String>,
}

/// `strait run`'s limit flags (README: "Limits and safe defaults").
#[derive(clap::Args, Clone, Debug)]
pub struct LimitArgs {
    /// Open downstream connections; more are accepted and closed at once
    /// (default: 10000, or half the open-file limit if lower).
    #[arg(long, value_name = "N")]
    pub max_connections: Option<usize>,
    /// Largest request head in KiB (Envoy's max_request_headers_kb); over it: 431.
    #[arg(long, default_value_t = 60, value_name = "KIB")]
    pub max_request_headers_kb: usize,
    /// Most request headers (Envoy's max_headers_count); over it: 431.
    #[arg(long, default_value_t = 100, value_name = "N")]
    pub max_request_headers: usize,
    /// A request head must arrive within this of its first byte, and a new
    /// connection's first request within this of accept (slowloris); a
    /// keep-alive connection waiting for its next request is timed by
    /// --idle-timeout only, as in Envoy (Go duration, 0 = off).
    #[arg(long, default_value = "60s", value_parser = parse_timeout, value_name = "DURATION")]
    pub request_headers_timeout: Timeout,
    /// Close a connection with no request in flight and no traffic for this
    /// long (Envoy's idle_timeout; 0 = off).
    #[arg(long, default_value = "1h", value_parser = parse_timeout, value_name = "DURATION")]
    pub idle_timeout: Timeout,
    /// End a request with no activity for this long: 408 while it is still
    /// arriving, 504 after (Envoy's stream_idle_timeout, flag SI; 0 = off).
    #[arg(long, default_value = "5m", value_parser = parse_timeout, value_name = "DURATION")]
    pub stream_idle_timeout: Timeout,
    /// HTTP/2 streams per connection (SETTINGS_MAX_CONCURRENT_STREAMS);
    /// excess streams are refused with REFUSED_STREAM.
    #[arg(long, default_value_t = 100, value_name = "N")]
    pub max_concurrent_streams: u32,
    /// Bytes buffered per connection before back-pressure, in KiB (Envoy's
    /// per_connection_buffer_limit_bytes; the HTTP/2 connection window).
    #[arg(long, default_value_t = 1024, value_name = "KIB")]
    pub buffer_limit_kb: usize,
    /// Resident memory at which new requests get 503 "envoy overloaded" (flag
    /// OM) and new connections are refused, e.g. 512M or 2G (off when unset).
    #[arg(long, value_parser = crate::proxy::limits::parse_bytes, value_name = "BYTES")]
    pub memory_limit: Option<u64>,
    /// The downstream HTTP/2 server, `codec` (strait's own, the default) or
    /// `h2` (the `h2` crate's, the way back for now, issue #15); else
    /// `STRAIT_HTTP2_SERVER`.
    #[arg(long, hide = true, value_name = "SERVER")]
    pub http2_server: Option<crate::proxy::Http2Server>,
}

/// A timeout flag: `0` turns it off.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timeout(pub Option<std::time::Duration>);

fn parse_timeout(s: &str) -> Result<Timeout, String> {
    if s.trim() == "0" {
        return Ok(Timeout(None));
    }
    let d = crate::model::Duration::parse(s)?.as_std();
    Ok(Timeout((!d.is_zero()).then_some(d)))
}

impl LimitArgs {
    /// The limits, validated; `Err` says which flag to fix.
    pub fn into_limits(self) -> Result<crate::proxy::DownstreamLimits, String> {
        let max_connections = match self.max_connections {
            Some(n) => n,
            None => {
                let default = crate::proxy::DownstreamLimits::default().max_connections;
                // Each proxied connection needs a downstream and usually an
                // upstream descriptor: past half the limit, accept() fails.
                match crate::proxy::limits::open_files_limit() {
                    Some(fds) if (fds / 2) < default as u64 => (fds / 2).max(1) as usize,
                    _ => default,
                }
            }
        };
        let limits = crate::proxy::DownstreamLimits {
            max_connections,
            max_request_headers_kb: self.max_request_headers_kb,
            max_request_headers: self.max_request_headers,
            request_headers_timeout: self.request_headers_timeout.0,
            idle_timeout: self.idle_timeout.0,
            stream_idle_timeout: self.stream_idle_timeout.0,
            max_concurrent_streams: self.max_concurrent_streams,
            buffer_limit_kb: self.buffer_limit_kb,
            memory_limit: self.memory_limit,
            http2_server: match self.http2_server {
                Some(server) => server,
                None => crate::proxy::Http2Server::from_env()?,
            },
            ..crate::proxy::DownstreamLimits::default()
        };
        limits.validate()?;
        Ok(limits)
    }
}

/// What was loaded and what was skipped, and why: said at start (issue
/// #14: a directory of Deployments must not start silently as an empty proxy).
pub fn loaded_summary(config: &ConfigSet) -> String {
    let counts = [
        (config.virtual_services.len(), "VirtualService"),
        (config.destination_rules.len(), "DestinationRule"),
        (config.service_entries.len(), "ServiceEntry"),
        (config.workload_entries.len(), "WorkloadEntry"),
        (config.gateways.len(), "Gateway"),
        (config.sidecars.len(), "Sidecar"),
        (config.services.len(), "Service"),
        (config.pods.len(), "Pod/Deployment"),
        (config.namespaces.len(), "Namespace"),
        (config.secrets.len(), "Secret"),
        (config.nodes.len(), "Node"),
        (config.endpoint_slices.len(), "EndpointSlice"),
        (
            config.kubernetes_gateways.len(),
            "Gateway (gateway.networking.k8s.io)",
        ),
        (
            config.request_authentications.len(),
            "RequestAuthentication",
        ),
    ];
    let loaded: Vec<String> = counts
        .iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, k)| format!("{n} {k}"))
        .collect();
    let mut out = format!(
        "loaded {} from {} file{}",
        if loaded.is_empty() {
            "nothing".to_string()
        } else {
            loaded.join(", ")
        },
        config.files.len(),
        if config.files.len() == 1 { "" } else { "s" }
    );
    if !config.skipped.is_empty() {
        let skipped: Vec<String> = config
            .skipped
            .iter()
            .map(|(k, n)| format!("{n} {k}"))
            .collect();
        out.push_str(&format!(
            "; ignored {} (kinds strait does not use)",
            skipped.join(", ")
        ));
    }
    if !config.replaced.is_empty() {
        out.push_str(&format!(
            "; {} replaced by a later resource with the same name",
            config.replaced.len()
        ));
    }
    out
}

/// `strait run` start-up in order: the first build, what it loaded, the
/// runtime, then [`serve`] until a signal.
pub fn run(args: RunArgs) -> i32 {
    let mut stderr = std::io::stderr();
    let workers = match args.workers {
        Some(0) => {
            let _ = writeln!(
                stderr,
                "Error: --workers 0: give at least 1 (default: one per CPU)"
            );
            return exit::USAGE;
        }
        Some(n) => n,
        None => std::thread::available_parallelism().map_or(1, |n| n.get()),
    };
    let identity = ProxyIdentity::new(
        &args.namespace,
        &args.labels,
        args.gateway.is_some(),
        &args.domain_suffix,
        &args.locality,
    );
    if args.kube.kubernetes && !cfg!(feature = "kubernetes") {
        let _ = writeln!(
            stderr,
            "Error: --kubernetes: this strait was built without the `kubernetes` feature; build it with the default features (cargo build)"
        );
        return exit::USAGE;
    }
    let source = FileSource::new(args.config.clone());
    let built = match first_build(&args, &source, &identity) {
        Ok(b) => b,
        Err(code) => return code,
    };
    say_what_was_loaded(&args, &built);
    // The main thread's runtime: with one worker it serves everything (no
    // work-stealing scheduler, no cross-thread wake-ups per request); with
    // more, each worker thread runs its own (proxy::workers) and this one
    // keeps admin, reloads and signals.
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            let _ = writeln!(stderr, "Error: cannot start the runtime: {e}");
            return exit::FAILURE;
        }
    };
    rt.block_on(serve(args, source, built, identity, workers))
}

/// Load the files and build the first snapshot, Istio's other analyzers
/// said (refused: the rejection printed, its exit code back).
fn first_build(
    args: &RunArgs,
    source: &FileSource,
    identity: &ProxyIdentity,
) -> Result<pipeline::Built, i32> {
    // With --kubernetes the files alone are served until the cluster has
    // synced (and /ready says 503 until then).
    let loaded = if args.config.is_empty() {
        ConfigSet::default()
    } else {
        source.load(&pipeline::load_options(&args.namespace))
    };
    let mut stderr = std::io::stderr();
    match pipeline::build_advised(loaded, identity) {
        Ok(built) => {
            for w in &built.warnings {
                let _ = writeln!(stderr, "{w}");
            }
            Ok(built)
        }
        Err(rejection) => {
            let _ = writeln!(stderr, "{rejection}");
            Err(exit::rejected(&rejection))
        }
    }
}

/// What the first build loaded and ignored, and warnings when nothing is
/// routable or no Gateway selects the gateway's labels (issue #14: no
/// silent empty proxy).
fn say_what_was_loaded(args: &RunArgs, built: &pipeline::Built) {
    let mut stderr = std::io::stderr();
    let snapshot = &built.snapshot;
    let _ = writeln!(stderr, "strait: {}", loaded_summary(&built.config));
    let no_endpoints = snapshot.clusters.values().all(|c| c.endpoints.is_empty());
    if !args.kube.kubernetes && (snapshot.services.is_empty() || no_endpoints) {
        let _ = writeln!(
            stderr,
            "strait: warning: {}: strait routes to the hosts of ServiceEntries (endpoints inline or from WorkloadEntries) and of Kubernetes Services with their EndpointSlices; a Deployment gives no endpoint addresses (README: \"Put your own services behind strait\")",
            if snapshot.services.is_empty() {
                "no service to route to, so every request gets 404 NR"
            } else {
                "no service has an endpoint, so every routed request gets 503 UH"
            }
        );
    }
    if args.gateway.is_some() && snapshot.gateway.ports.is_empty() {
        let _ = writeln!(
            stderr,
            "warning: no Gateway selects labels {:?}: the gateway has no listeners (set --labels to the Gateway's selector)",
            args.labels
        );
    }
}

/// Listen, start the reloader, serve until Ctrl-C or SIGTERM, drain.
async fn serve(
    args: RunArgs,
    files: FileSource,
    built: pipeline::Built,
    identity: ProxyIdentity,
    workers: usize,
) -> i32 {
    let mut limits = args.limits.clone();
    limits.start_unready = args.kube.kubernetes;
    // The cluster's client first: a kubeconfig that does not work is said
    // before anything listens.
    let source: Box<dyn Source> = if args.kube.kubernetes {
        // A gateway reads `credentialName` Secrets, in its own namespace.
        let secrets = args.gateway.is_some().then_some(args.namespace.as_str());
        match kube_source(&args.kube, files, secrets).await {
            Ok(s) => s,
            Err(e) => return failed(&format!("--kubernetes: {e}")),
        }
    } else {
        Box::new(files)
    };
    let access_log = match &args.access_log {
        None => AccessLog::off(),
        Some(p) => match AccessLog::to_path(p, args.access_log_format) {
            Ok(l) => l,
            Err(e) => return failed(&format!("cannot open access log {p}: {e}")),
        },
    };
    if !args.reuse_port
        && let Err(e) = crate::proxy::workers::refuse_foreign_holder(args.listen)
    {
        return failed(&format!("cannot listen: {e}"));
    }
    let pipeline::Built {
        config, snapshot, ..
    } = built;
    let services = snapshot.services.len();
    let vhosts = snapshot.routes.vhosts.len();
    let workers = match crate::proxy::workers::start_workers(
        snapshot,
        args.listen,
        args.admin,
        access_log,
        limits,
        workers,
    )
    .await
    {
        Ok(r) => r,
        Err(e) => return failed(&format!("cannot listen: {e}")),
    };
    let running = &workers.running;
    if let Some(bind) = &args.gateway
        && let Err(e) = start_gateway(running, bind)
    {
        return failed(&format!("cannot listen: {e}"));
    }
    let stop = start_reloader(&args, source, running, config, identity);
    tracing::info!(listen = %running.listen, admin = %running.admin, services, vhosts, "strait is serving");
    let _ = writeln!(
        std::io::stderr(),
        "strait: listening on {} (admin {}), {services} services, {vhosts} virtual hosts, {} worker{}",
        running.listen,
        running.admin,
        workers.threads().max(1),
        if workers.threads() > 1 { "s" } else { "" }
    );
    wait_for_signal().await;
    let _ = stop.send(true);
    let left = workers.drain(args.drain_timeout).await;
    if left > 0 {
        tracing::warn!(
            connections = left,
            "drain timeout: closing connections with requests in flight"
        );
    }
    exit::OK
}

/// `Error: {e}` on stderr; exit code 1.
fn failed(e: &str) -> i32 {
    let _ = writeln!(std::io::stderr(), "Error: {e}");
    exit::FAILURE
}

/// The gateway's listeners, each said on stderr.
fn start_gateway(
    running: &crate::proxy::Running,
    bind: &crate::proxy::gateway::Bind,
) -> std::io::Result<()> {
    let listeners = crate::proxy::gateway::start(&running.shared, bind, running.shutdown_signal())?;
    for l in listeners {
        let _ = writeln!(
            std::io::stderr(),
            "strait: gateway port {} ({}) listening on {} for {}",
            l.server_port,
            l.protocol,
            l.address,
            l.gateways.join(", ")
        );
    }
    Ok(())
}

/// Record the served configuration as version 1 and start reloading from
/// `source`; the sender stops the reloader.
fn start_reloader(
    args: &RunArgs,
    source: Box<dyn Source>,
    running: &crate::proxy::Running,
    config: ConfigSet,
    identity: ProxyIdentity,
) -> tokio::sync::watch::Sender<bool> {
    let sources = source.describe();
    let mut reloader = crate::reload::Reloader::shared_source(
        source.into(),
        &args.namespace,
        args.labels.clone(),
        running.shared.clone(),
    );
    if args.kube.kubernetes {
        reloader = reloader.for_kubernetes();
    }
    if let Some(state) = reloader.source_state() {
        let _ = running.shared.source_state.set(state);
    }
    let reloader = std::sync::Arc::new(reloader);
    {
        let mut st = running
            .shared
            .status
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        st.options = identity;
    }
    // The snapshot being served is version 1; the watcher rebuilds from the files.
    let now = crate::proxy::access_log::format_time(std::time::SystemTime::now());
    running
        .shared
        .record_config(std::sync::Arc::new(config), now, sources);
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    reloader.spawn(stop_rx);
    stop_tx
}

/// The Kubernetes source, with the files layered over it.
#[cfg(feature = "kubernetes")]
async fn kube_source(
    args: &KubeArgs,
    files: FileSource,
    secrets_namespace: Option<&str>,
) -> Result<Box<dyn Source>, String> {
    use crate::source::kube;
    let (client, server) = kube::client(&kube::Connect {
        kubeconfig: args.kubeconfig.clone(),
        context: args.context.clone(),
    })
    .await?;
    tracing::info!(server = %server, "watching the Kubernetes API");
    Ok(Box::new(kube::KubeSource::with_secrets(
        client,
        server,
        &args.watch_namespaces,
        secrets_namespace,
        files,
    )))
}

#[cfg(not(feature = "kubernetes"))]
async fn kube_source(
    _: &KubeArgs,
    _: FileSource,
    _: Option<&str>,
) -> Result<Box<dyn Source>, String> {
    Err("this strait was built without the `kubernetes` feature".into())
}

/// Until Ctrl-C or SIGTERM.
pub(crate) async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        limits: LimitArgs,
    }

    #[test]
    fn flag_defaults_are_the_library_defaults() {
        let mut got = Cli::parse_from(["strait"]).limits.into_limits().unwrap();
        let want = crate::proxy::DownstreamLimits::default();
        // The connection cap may be lowered to fit the open-file limit.
        assert!(got.max_connections <= want.max_connections);
        got.max_connections = want.max_connections;
        assert_eq!(got, want);
    }

    #[test]
    fn zero_turns_a_timeout_off_and_bad_values_name_the_flag() {
        let l = Cli::parse_from([
            "strait",
            "--idle-timeout",
            "0",
            "--stream-idle-timeout",
            "0s",
        ])
        .limits
        .into_limits()
        .unwrap();
        assert_eq!(l.idle_timeout, None);
        assert_eq!(l.stream_idle_timeout, None);
        let e = Cli::parse_from(["strait", "--max-concurrent-streams", "0"])
            .limits
            .into_limits()
            .unwrap_err();
        assert!(e.contains("--max-concurrent-streams"), "{e}");
        let l = Cli::parse_from(["strait", "--memory-limit", "512M", "--max-connections", "7"])
            .limits
            .into_limits()
            .unwrap();
        assert_eq!(l.memory_limit, Some(512 << 20));
        assert_eq!(l.max_connections, 7);
    }

    #[test]
    fn the_http2_server_is_chosen_by_a_hidden_flag() {
        let l = Cli::parse_from(["strait", "--http2-server", "codec"])
            .limits
            .into_limits()
            .unwrap();
        assert_eq!(l.http2_server, crate::proxy::Http2Server::Codec);
        let l = Cli::parse_from(["strait", "--http2-server", "h2"])
            .limits
            .into_limits()
            .unwrap();
        assert_eq!(l.http2_server, crate::proxy::Http2Server::H2);
        assert_eq!(
            crate::proxy::DownstreamLimits::default().http2_server,
            crate::proxy::Http2Server::Codec,
            "strait's codec is the default"
        );
        assert!(Cli::try_parse_from(["strait", "--http2-server", "nghttp2"]).is_err());
    }
}
