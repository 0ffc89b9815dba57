use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use strait::analyze::Level;

use strait::cli::check::{self, CheckArgs, OutputFormat};
use strait::cli::{demo, exit, explain, run};
use strait::proxy::access_log;

/// strait: Istio's traffic management in one binary.
///
/// A VirtualService picks the destination; a DestinationRule configures it.
/// strait reads the same YAML you give Istio.
#[derive(Parser)]
#[command(name = "strait", version, about, long_about = None)]
struct Cli {
    /// Log format on stderr (level from RUST_LOG, default warn).
    #[arg(long, global = true, value_enum, default_value = "text")]
    log_format: strait::logging::LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
// Parsed once at start: the size of the biggest variant costs nothing.
#[allow(clippy::large_enum_variant)]
enum Command {
    /// Analyze Istio config files, as `istioctl analyze` does, offline.
    ///
    /// Exit codes: 0 clean, 79 findings at or above --failure-threshold,
    /// 65 unparsable input, 64 usage error.
    Check(CheckCommand),
    /// Run the proxy: route HTTP/1.1, HTTP/2 (h2c) and gRPC as an Istio
    /// sidecar in --namespace would.
    Run(RunCommand),
    /// Show which VirtualService, route, subset and policy a request gets, and why.
    Explain(ExplainCommand),
    /// Run the bundled example on real loopback traffic and show where the
    /// requests went.
    Demo(DemoCommand),
}

// `strait check`'s arguments (its help text is the variant's).
#[derive(clap::Args)]
struct CheckCommand {
    /// Files or directories (.yaml, .yml, .json, recursively); `-` reads
    /// stdin. With --use-kube, layered over the cluster's resources.
    #[arg(required_unless_present_any = ["list_analyzers", "use_kube"])]
    paths: Vec<PathBuf>,
    /// Analyze the live cluster's resources (the kubeconfig's current
    /// context; its namespace unless -n or -A), as istioctl analyze does.
    #[arg(long)]
    use_kube: bool,
    /// The kubeconfig for --use-kube (default: KUBECONFIG, ~/.kube/config,
    /// else in-cluster).
    #[arg(long, value_name = "PATH", requires = "use_kube")]
    kubeconfig: Option<PathBuf>,
    /// The kubeconfig context for --use-kube.
    #[arg(long, value_name = "NAME", requires = "use_kube")]
    context: Option<String>,
    /// Namespace for resources without one (default `default`). When given,
    /// only messages on that namespace's resources are shown (unless -A).
    #[arg(short, long)]
    namespace: Option<String>,
    /// Show messages for every namespace.
    #[arg(short = 'A', long)]
    all_namespaces: bool,
    /// Output format.
    #[arg(short, long, value_enum, default_value = "log")]
    output: OutputFormat,
    /// Lowest level that makes the exit code 79: Info, Warning or Error.
    #[arg(long, default_value = "Error", value_parser = parse_level)]
    failure_threshold: Level,
    /// Lowest level printed: Info, Warning or Error.
    #[arg(long, default_value = "Info", value_parser = parse_level)]
    output_threshold: Level,
    /// Run only this analyzer (repeatable), by Istio's name.
    #[arg(long = "analyzer", value_name = "NAME")]
    analyzers: Vec<String>,
    /// List the analyzers and exit.
    #[arg(short = 'L', long)]
    list_analyzers: bool,
    /// MeshConfig YAML merged over Istio's defaults.
    #[arg(long, value_name = "FILE")]
    mesh_config: Option<PathBuf>,
    /// Colour the level (default: when stdout is a terminal).
    #[arg(long)]
    color: Option<bool>,
    /// The labels strait runs with (`run --labels`, k=v,k2=v2): a
    /// Gateway whose selector matches them has a workload (no IST0101).
    #[arg(long, value_parser = parse_labels, default_value = "")]
    labels: BTreeMap<String, String>,
}

// `strait run`'s arguments (its help text is the variant's).
#[derive(clap::Args)]
struct RunCommand {
    /// Config files or directories (repeatable); with --kubernetes,
    /// layered over the cluster's resources.
    #[arg(
        short,
        long = "config",
        required_unless_present = "kubernetes",
        value_name = "PATH"
    )]
    config: Vec<PathBuf>,
    #[command(flatten)]
    kube: run::KubeArgs,
    /// The proxy's namespace: default namespace of resources, and the
    /// namespace whose view of the mesh the proxy gets.
    #[arg(short, long, default_value = "default")]
    namespace: String,
    /// The proxy's own workload labels (k=v,k2=v2), for `sourceLabels` matches.
    #[arg(long, value_parser = parse_labels, default_value = "")]
    labels: BTreeMap<String, String>,
    /// The proxy's locality `region/zone/subzone`, for locality load
    /// balancing (`localityLbSetting`; off when empty).
    #[arg(long, default_value = "", value_name = "REGION/ZONE/SUBZONE")]
    locality: String,
    /// DNS suffix of Kubernetes Service hosts (`name.ns.svc.SUFFIX`) and
    /// of short names, as Istio's `--domain` / cluster domain.
    #[arg(long, default_value = "cluster.local", value_parser = parse_domain_suffix, value_name = "SUFFIX")]
    domain_suffix: String,
    /// Outbound listener (HTTP/1.1 and h2c, auto-detected).
    #[arg(long, default_value = "127.0.0.1:15001")]
    listen: SocketAddr,
    /// Admin listener (`/ready`).
    #[arg(long, default_value = "127.0.0.1:15000")]
    admin: SocketAddr,
    /// Access log file, `-` for stdout (off when unset).
    #[arg(long, value_name = "PATH|-")]
    access_log: Option<String>,
    /// Access log format: Istio's default text, or JSON with the same fields.
    #[arg(long, value_enum, default_value = "text")]
    access_log_format: access_log::Format,
    /// On SIGTERM, how long to wait for in-flight requests (Go duration).
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    drain_timeout: std::time::Duration,
    /// Worker threads (default: one per CPU).
    #[arg(long)]
    workers: Option<usize>,
    /// Run as an Istio gateway workload with --labels: every Gateway
    /// whose selector matches them gets its server ports as listeners.
    #[arg(long)]
    gateway: bool,
    /// Address the gateway's server ports listen on (with --gateway).
    #[arg(long, default_value = "127.0.0.1", value_name = "IP")]
    gateway_address: std::net::IpAddr,
    /// Listen for Gateway server port SERVER on local port LOCAL
    /// (repeatable; LOCAL 0 picks a free port, printed at start).
    #[arg(long = "gateway-port", value_name = "SERVER=LOCAL", value_parser = parse_port_map)]
    gateway_ports: Vec<(u16, u16)>,
    /// Listen for unmapped Gateway server ports on port + N (e.g. 8000
    /// turns 80 into 8080, avoiding ports below 1024).
    #[arg(long, default_value_t = 0, value_name = "N")]
    port_offset: u16,
    /// Share --listen with another process already listening on it
    /// (SO_REUSEPORT across processes, as Envoy's reuse_port); without
    /// it an address another process holds is refused.
    #[arg(long)]
    reuse_port: bool,
    #[command(flatten)]
    limits: run::LimitArgs,
}

// `strait explain`'s arguments (its help text is the variant's).
#[derive(clap::Args)]
struct ExplainCommand {
    /// Config files or directories (repeatable); with --use-kube, layered
    /// over the cluster's resources.
    #[arg(
        short,
        long = "config",
        required_unless_present = "use_kube",
        value_name = "PATH"
    )]
    config: Vec<PathBuf>,
    /// Explain on the live cluster's resources (the kubeconfig's current
    /// context), as `run --kubernetes` would serve them.
    #[arg(long)]
    use_kube: bool,
    /// The kubeconfig for --use-kube (default: KUBECONFIG, ~/.kube/config,
    /// else in-cluster).
    #[arg(long, value_name = "PATH", requires = "use_kube")]
    kubeconfig: Option<PathBuf>,
    /// The kubeconfig context for --use-kube.
    #[arg(long, value_name = "NAME", requires = "use_kube")]
    context: Option<String>,
    /// The proxy's namespace.
    #[arg(short, long, default_value = "default")]
    namespace: String,
    /// The proxy's own workload labels (k=v,k2=v2).
    #[arg(long, value_parser = parse_labels, default_value = "")]
    labels: BTreeMap<String, String>,
    /// DNS suffix of Kubernetes Service hosts (`name.ns.svc.SUFFIX`) and
    /// of short names, as Istio's `--domain` / cluster domain.
    #[arg(long, default_value = "cluster.local", value_parser = parse_domain_suffix, value_name = "SUFFIX")]
    domain_suffix: String,
    /// Request method.
    #[arg(short = 'X', long = "request", default_value = "GET")]
    method: String,
    /// Request header `Name: value` (repeatable).
    #[arg(short = 'H', long = "header", value_name = "NAME: VALUE")]
    headers: Vec<String>,
    /// Output format: text or json.
    #[arg(short, long, default_value = "text", value_parser = ["text", "json"])]
    output: String,
    /// Explain for the gateway workload with --labels: the request
    /// arrives on a Gateway server port (an https:// URL: on an HTTPS
    /// server or a PASSTHROUGH route, picked by SNI).
    #[arg(long)]
    gateway: bool,
    /// With --gateway: the server port (default: the URL's port, else
    /// 443 for https, 80 for http).
    #[arg(long, requires = "gateway")]
    port: Option<u16>,
    /// The TLS SNI (default: the host of an https URL): a TLS connection
    /// routed by SNI, on the sidecar listener or (with --gateway) on an
    /// HTTPS or PASSTHROUGH server port.
    #[arg(long)]
    sni: Option<String>,
    /// The request URL, e.g. http://reviews:9080/reviews/1
    /// (tcp://ADDRESS:PORT: a TCP connection to the sidecar listener with
    /// that destination).
    url: String,
}

// `strait demo`'s arguments (its help text is the variant's).
#[derive(clap::Args)]
struct DemoCommand {
    /// A config directory to use instead of the built-in example
    /// (examples/bookinfo, shipped inside the binary).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Anonymous requests to send (and a tenth of that as end-user: jason).
    #[arg(long, default_value_t = 2000)]
    requests: usize,
    /// Host header of the requests.
    #[arg(long, default_value = "reviews:9080")]
    host: String,
    /// Then keep the proxy and upstreams running with a steady trickle
    /// of traffic (20 requests a second; v2 fails one in six) and serve
    /// the live page on --admin, until Ctrl-C or SIGTERM.
    #[arg(long)]
    serve: bool,
    /// The admin listener with the live page, for --serve.
    #[arg(long, default_value = "127.0.0.1:15000")]
    admin: std::net::SocketAddr,
}

fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    strait::model::Duration::parse(s).map(|d| d.as_std())
}

fn parse_labels(s: &str) -> Result<BTreeMap<String, String>, String> {
    s.split(',')
        .map(str::trim)
        .filter(|kv| !kv.is_empty())
        .map(|kv| {
            kv.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .ok_or_else(|| format!("label {kv:?} is not key=value"))
        })
        .collect()
}

fn parse_port_map(s: &str) -> Result<(u16, u16), String> {
    let (a, b) = s
        .split_once('=')
        .ok_or_else(|| format!("{s:?} is not SERVER=LOCAL, e.g. 80=8080"))?;
    let server: u16 = a
        .trim()
        .parse()
        .map_err(|_| format!("server port {a:?} is not a port number"))?;
    let local: u16 = b
        .trim()
        .parse()
        .map_err(|_| format!("local port {b:?} is not a port number (0 picks a free one)"))?;
    Ok((server, local))
}

fn parse_level(s: &str) -> Result<Level, String> {
    Level::parse(s).ok_or_else(|| format!("invalid level {s:?}: use Info, Warning or Error"))
}

/// mimalloc: every request allocates, and glibc's malloc takes its slow
/// path for anything over 1 KiB (hyper's read buffers, task cells).
/// Transparent huge pages off: they would inflate the idle footprint.
/// `strait::allocator` asks it for plain blocks where they are aligned
/// enough (its aligned path over-allocates above 1 KiB).
#[global_allocator]
static ALLOCATOR: strait::allocator::Allocator = strait::allocator::Allocator;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return match e.kind() {
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => {
                    ExitCode::SUCCESS
                }
                _ => ExitCode::from(exit::USAGE as u8),
            };
        }
    };
    strait::logging::init(cli.log_format);
    let code = match cli.command {
        Command::Check(c) => c.run(),
        Command::Run(c) => c.run(),
        Command::Explain(c) => c.run(),
        Command::Demo(c) => c.run(),
    };
    ExitCode::from(code as u8)
}

impl CheckCommand {
    fn run(self) -> i32 {
        if self.list_analyzers {
            check::list_analyzers(&mut std::io::stdout());
            return exit::OK;
        }
        let args = CheckArgs {
            paths: self.paths,
            cluster: self.use_kube.then_some(check::KubeCluster {
                kubeconfig: self.kubeconfig,
                context: self.context,
            }),
            namespace: self.namespace,
            all_namespaces: self.all_namespaces,
            output: self.output,
            failure_threshold: self.failure_threshold,
            output_threshold: self.output_threshold,
            analyzers: self.analyzers,
            mesh_config: self.mesh_config,
            color: self.color,
            labels: self.labels,
        };
        check::run(&args, &mut std::io::stdout(), &mut std::io::stderr())
    }
}

impl RunCommand {
    fn run(self) -> i32 {
        let limits = match self.limits.into_limits() {
            Ok(limits) => limits,
            Err(e) => {
                eprintln!("Error: {e}");
                return exit::USAGE;
            }
        };
        run::run(run::RunArgs {
            config: self.config,
            kube: self.kube,
            namespace: self.namespace,
            labels: self.labels,
            locality: self.locality,
            domain_suffix: self.domain_suffix,
            listen: self.listen,
            admin: self.admin,
            access_log: self.access_log,
            access_log_format: self.access_log_format,
            drain_timeout: self.drain_timeout,
            workers: self.workers,
            gateway: self.gateway.then(|| strait::proxy::gateway::Bind {
                address: self.gateway_address,
                ports: self.gateway_ports.into_iter().collect(),
                offset: self.port_offset,
            }),
            limits,
            reuse_port: self.reuse_port,
        })
    }
}

impl ExplainCommand {
    fn run(self) -> i32 {
        explain::run(explain::ExplainArgs {
            config: self.config,
            namespace: self.namespace,
            labels: self.labels,
            domain_suffix: self.domain_suffix,
            method: self.method,
            headers: self.headers,
            url: self.url,
            gateway: self.gateway,
            port: self.port,
            sni: self.sni,
            json: self.output == "json",
            cluster: self.use_kube.then_some(check::KubeCluster {
                kubeconfig: self.kubeconfig,
                context: self.context,
            }),
        })
    }
}

impl DemoCommand {
    fn run(self) -> i32 {
        demo::run(demo::DemoArgs {
            config: self.config,
            requests: self.requests,
            host: self.host,
            serve: self.serve.then_some(self.admin),
        })
    }
}

/// A DNS suffix such as `cluster.local` (trailing dot dropped).
fn parse_domain_suffix(s: &str) -> Result<String, String> {
    let d = s.trim().trim_end_matches('.').to_ascii_lowercase();
    let ok = !d.is_empty()
        && d.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        });
    if ok {
        Ok(d)
    } else {
        Err(format!("{s:?} is not a DNS suffix such as cluster.local"))
    }
}
