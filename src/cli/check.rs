//! `strait check`: `istioctl analyze` for files, offline.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;

use serde::Serialize;

use super::exit::{
    FINDINGS as EXIT_FINDINGS, OK as EXIT_OK, PARSE as EXIT_PARSE, USAGE as EXIT_USAGE,
};
use crate::analyze::{self, Context, Level, MeshConfig, Message};
use crate::load::LoadOptions;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    Log,
    Json,
    Yaml,
}

#[derive(Clone, Debug)]
pub struct CheckArgs {
    pub paths: Vec<PathBuf>,
    /// `--use-kube`: the live cluster's resources, `paths` layered over them.
    pub cluster: Option<KubeCluster>,
    /// Namespace for resources without one; when set explicitly, only
    /// messages on that namespace's resources are printed (as istioctl).
    pub namespace: Option<String>,
    pub all_namespaces: bool,
    pub output: OutputFormat,
    pub failure_threshold: Level,
    pub output_threshold: Level,
    pub analyzers: Vec<String>,
    pub mesh_config: Option<PathBuf>,
    pub color: Option<bool>,
    /// The workload strait runs as (`run --labels`): analysis counts it as
    /// a pod in the namespace, so a Gateway selecting it has a workload.
    pub labels: std::collections::BTreeMap<String, String>,
}

/// Which cluster `--use-kube` reads.
#[derive(Clone, Debug, Default)]
pub struct KubeCluster {
    pub kubeconfig: Option<PathBuf>,
    pub context: Option<String>,
}

/// How long `--use-kube` waits for every kind to list.
const CLUSTER_SYNC_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// The cluster's resources with the files layered over them, and the
/// kubeconfig context's namespace.
#[cfg(feature = "kubernetes")]
pub(super) fn load_cluster(
    cluster: &KubeCluster,
    paths: &[PathBuf],
    opts: &LoadOptions,
) -> Result<(crate::config::ConfigSet, String), String> {
    use crate::source::Source;
    use crate::source::kube;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    rt.block_on(async {
        let (client, server) = kube::client(&kube::Connect {
            kubeconfig: cluster.kubeconfig.clone(),
            context: cluster.context.clone(),
        })
        .await?;
        let namespace = client.default_namespace().to_string();
        let source = kube::KubeSource::new(
            client,
            server.clone(),
            &[],
            crate::source::file::FileSource::new(paths.to_vec()),
        );
        source.sync(CLUSTER_SYNC_TIMEOUT).await.map_err(|kinds| {
            format!("{server}: not every kind listed within {CLUSTER_SYNC_TIMEOUT:?} ({kinds}); is the API server reachable?")
        })?;
        Ok((source.load(opts), namespace))
    })
}

#[cfg(not(feature = "kubernetes"))]
pub(super) fn load_cluster(
    _: &KubeCluster,
    _: &[PathBuf],
    _: &LoadOptions,
) -> Result<(crate::config::ConfigSet, String), String> {
    Err("this strait was built without the `kubernetes` feature".into())
}

/// Run `check`, writing to the given streams; returns the exit code.
pub fn run(args: &CheckArgs, stdout: &mut dyn Write, stderr: &mut dyn Write) -> i32 {
    let mesh = match mesh_config(args) {
        Ok(m) => m,
        Err(e) => {
            let _ = writeln!(stderr, "Error: {e}");
            return EXIT_USAGE;
        }
    };
    let (config, only_ns) = match load(args) {
        Ok(loaded) => loaded,
        Err(e) => {
            let _ = writeln!(stderr, "Error: {e}");
            return EXIT_USAGE;
        }
    };
    for e in &config.load_errors {
        let _ = writeln!(stderr, "Error: {e}");
    }
    for r in &config.replaced {
        let _ = writeln!(stderr, "Warning: {r}");
    }
    let ctx = Context::new(&config, &mesh).with_files(&read_certificate_file);
    let messages = match analyze::run(&ctx, &args.analyzers) {
        Ok(m) => m,
        Err(e) => {
            let _ = writeln!(stderr, "Error: {e}");
            return EXIT_USAGE;
        }
    };
    let filter_ns = if args.all_namespaces {
        None
    } else {
        only_ns.as_deref()
    };
    let shown = shown(&messages, args, filter_ns);
    print_messages(&shown, args, stdout);
    let failed = shown
        .iter()
        .any(|m| m.level().at_least(args.failure_threshold));
    let target = match (&args.cluster, filter_ns) {
        // istioctl analyze's words for a live cluster.
        (Some(_), None) => "all namespaces".to_string(),
        (Some(_), Some(ns)) => format!("namespace: {ns}"),
        (None, _) => describe_target(args),
    };
    summary(
        config.load_errors.len(),
        shown.is_empty(),
        failed,
        &target,
        stderr,
    )
}

/// Istio's MeshConfig defaults, or `--mesh-config` merged over them.
fn mesh_config(args: &CheckArgs) -> Result<MeshConfig, String> {
    let Some(p) = &args.mesh_config else {
        return Ok(MeshConfig::default());
    };
    std::fs::read_to_string(p)
        .map_err(|e| e.to_string())
        .and_then(|t| MeshConfig::from_yaml(&t))
        .map_err(|e| format!("cannot read mesh config {}: {e}", p.display()))
}

/// The files (or, with `--use-kube`, the cluster with the files layered
/// over it), with `--labels` as a pod; and the namespace whose messages are
/// shown (`-n`, else the kubeconfig context's for a cluster).
fn load(args: &CheckArgs) -> Result<(crate::config::ConfigSet, Option<String>), String> {
    let opts = LoadOptions {
        namespace: Some(args.namespace.clone().unwrap_or_else(|| "default".into())),
        ..LoadOptions::default()
    };
    let (mut config, only_ns) = match &args.cluster {
        None => (
            crate::source::file::load_paths(&args.paths, &opts),
            args.namespace.clone(),
        ),
        Some(cluster) => {
            let (config, context_ns) = load_cluster(cluster, &args.paths, &opts)
                .map_err(|e| format!("--use-kube: {e}"))?;
            // As istioctl: the context's namespace unless -n or -A.
            (config, args.namespace.clone().or(Some(context_ns)))
        }
    };
    if !args.labels.is_empty() {
        config.pods.push(proxy_workload(
            opts.namespace.as_deref().unwrap_or("default"),
            &args.labels,
        ));
    }
    Ok((config, only_ns))
}

/// The messages at or above `--output-threshold`, on `filter_ns` when set.
fn shown<'a>(
    messages: &'a [Message],
    args: &CheckArgs,
    filter_ns: Option<&str>,
) -> Vec<&'a Message> {
    messages
        .iter()
        .filter(|m| m.level().at_least(args.output_threshold))
        .filter(|m| match (filter_ns, &m.resource) {
            (Some(ns), Some(r)) => r.namespace.is_empty() || r.namespace == ns,
            _ => true,
        })
        .collect()
}

/// The messages in the `--output` format.
fn print_messages(shown: &[&Message], args: &CheckArgs, stdout: &mut dyn Write) {
    match args.output {
        OutputFormat::Log => {
            let color = args.color.unwrap_or_else(|| {
                std::io::stdout().is_terminal()
                    && std::env::var("TERM").map_or(true, |t| t != "dumb")
            });
            for m in shown {
                let _ = writeln!(stdout, "{}", render_log(m, color));
            }
        }
        OutputFormat::Json => {
            let items: Vec<JsonMessage> = shown.iter().map(|m| JsonMessage::from(*m)).collect();
            let _ = writeln!(
                stdout,
                "{}",
                serde_json::to_string_pretty(&items).unwrap_or_else(|_| "[]".into())
            );
        }
        OutputFormat::Yaml => {
            let items: Vec<JsonMessage> = shown.iter().map(|m| JsonMessage::from(*m)).collect();
            let _ = write!(stdout, "{}", to_yaml(&items));
        }
    }
}

/// istioctl's closing line on stderr, and the exit code: 65 when
/// something could not be read, 79 for findings at the failure threshold.
fn summary(
    load_errors: usize,
    nothing_shown: bool,
    failed: bool,
    target: &str,
    stderr: &mut dyn Write,
) -> i32 {
    if load_errors > 0 {
        // No tick: what could not be read was not analyzed.
        let _ = writeln!(
            stderr,
            "Error: {load_errors} file(s) or document(s) could not be read when analyzing {target}; fix the errors above and check again."
        );
    }
    if nothing_shown && load_errors == 0 {
        let _ = writeln!(
            stderr,
            "\u{2714} No validation issues found when analyzing {target}."
        );
    } else if failed {
        let _ = writeln!(
            stderr,
            "Error: Analyzers found issues when analyzing {target}.\nSee https://istio.io/latest/docs/reference/config/analysis for more information about causes and resolutions."
        );
    }
    if load_errors > 0 {
        EXIT_PARSE
    } else if failed {
        EXIT_FINDINGS
    } else {
        EXIT_OK
    }
}

/// A certificate file a Gateway names, read as `strait run` reads it
/// (`source::certs`: regular files, bounded), for the file analyzer.
fn read_certificate_file(path: &str) -> std::io::Result<Vec<u8>> {
    std::fs::metadata(path)?;
    crate::source::certs::read(path).map_err(std::io::Error::other)
}

/// The proxy itself as a pod with `--labels` (not from any file).
fn proxy_workload(
    namespace: &str,
    labels: &std::collections::BTreeMap<String, String>,
) -> crate::config::Resource<crate::model::k8s::PodSpec> {
    crate::config::Resource {
        kind: crate::config::Kind::Pod,
        api_version: "v1".into(),
        meta: crate::config::Meta {
            name: "strait".into(),
            namespace: namespace.to_string(),
            labels: labels.clone(),
            ..Default::default()
        },
        spec: Default::default(),
        status: None,
        origin: Default::default(),
        seq: usize::MAX,
    }
}

fn describe_target(args: &CheckArgs) -> String {
    if args.paths.is_empty() {
        return "no files".into();
    }
    let names: Vec<String> = args.paths.iter().map(|p| p.display().to_string()).collect();
    names.join(", ")
}

fn render_log(m: &Message, color: bool) -> String {
    let line = m.to_string();
    if !color {
        return line;
    }
    let prefix = match m.level() {
        Level::Error => "\x1b[1;31m",
        Level::Warning => "\x1b[33m",
        Level::Info => return line,
    };
    let level = m.level().as_str();
    format!("{prefix}{level}\x1b[0m{}", &line[level.len()..])
}

/// istioctl's JSON/YAML message object.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct JsonMessage {
    code: &'static str,
    level: &'static str,
    origin: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    reference: Option<String>,
    message: String,
    documentation_url: String,
}

impl From<&Message> for JsonMessage {
    fn from(m: &Message) -> Self {
        JsonMessage {
            code: m.kind.code,
            level: m.level().as_str(),
            origin: m.origin().unwrap_or_default(),
            reference: m.reference(),
            message: m.text.clone(),
            documentation_url: m.documentation_url(),
        }
    }
}

/// The message list as YAML (strings double-quoted, which YAML reads as JSON strings).
fn to_yaml(items: &[JsonMessage]) -> String {
    if items.is_empty() {
        return "[]\n".into();
    }
    let mut out = String::new();
    for it in items {
        let v = serde_json::to_value(it).unwrap_or_default();
        let mut first = true;
        if let Some(obj) = v.as_object() {
            for (k, val) in obj {
                out.push_str(if first { "- " } else { "  " });
                first = false;
                out.push_str(k);
                out.push_str(": ");
                out.push_str(&val.to_string());
                out.push('\n');
            }
        }
    }
    out
}

/// `--list-analyzers`.
pub fn list_analyzers(stdout: &mut dyn Write) {
    let _ = writeln!(stdout, "Available analyzers:");
    for a in analyze::all() {
        let _ = writeln!(stdout, "* {}:\n    {}", a.name(), a.description());
    }
}
