//! Hot reload, the driver of the config flow: sources signal changes,
//! the signals are debounced, the pipeline validates and compiles off the
//! request path, and the snapshot is installed in one atomic store. A change
//! that does not validate is rejected whole; the last good configuration
//! keeps serving.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::{mpsc, watch};

use crate::pipeline::{self, Rejection};
use crate::proxy::Shared;
use crate::proxy::status::Rejected;
use crate::source::Source;

/// How long the files must be quiet before a reload.
pub const DEBOUNCE: Duration = Duration::from_millis(150);

/// How long the Kubernetes source must be quiet before a rebuild, and the
/// longest a rebuild waits for quiet: pilot's `PILOT_DEBOUNCE_AFTER` and
/// `PILOT_DEBOUNCE_MAX` defaults (`pilot/pkg/features/tuning.go`).
pub const KUBE_DEBOUNCE: (Duration, Duration) =
    (Duration::from_millis(100), Duration::from_secs(10));

/// Everything needed to rebuild the snapshot from a source.
pub struct Reloader {
    pub source: Arc<dyn Source>,
    pub namespace: String,
    pub labels: BTreeMap<String, String>,
    pub shared: Arc<Shared>,
    /// Quiet period and longest wait before a reload.
    pub debounce: (Duration, Duration),
    /// Leave out a resource that fails validation and serve the rest (the
    /// Kubernetes source), instead of rejecting the change whole (files).
    pub reject_alone: bool,
    /// The source's generations the live snapshot was built from, and the
    /// resources the last full build left out: an endpoint-only change
    /// since is applied without validating or recompiling routes.
    built: std::sync::Mutex<Built>,
}

#[derive(Default)]
struct Built {
    generations: Option<(u64, u64)>,
    left_out: Vec<crate::config::ResourceRef>,
}

impl Reloader {
    pub fn new(
        source: impl Source + 'static,
        namespace: &str,
        labels: BTreeMap<String, String>,
        shared: Arc<Shared>,
    ) -> Reloader {
        Self::shared_source(Arc::new(source), namespace, labels, shared)
    }

    /// A source chosen at run time (files or Kubernetes).
    pub fn shared_source(
        source: Arc<dyn Source>,
        namespace: &str,
        labels: BTreeMap<String, String>,
        shared: Arc<Shared>,
    ) -> Reloader {
        Reloader {
            source,
            namespace: namespace.to_string(),
            labels,
            shared,
            debounce: (DEBOUNCE, Duration::from_secs(1)),
            reject_alone: false,
            built: std::sync::Mutex::new(Built::default()),
        }
    }

    /// As the Kubernetes source wants it: pilot's debounce, and each
    /// invalid resource rejected alone.
    pub fn for_kubernetes(mut self) -> Reloader {
        self.debounce = KUBE_DEBOUNCE;
        self.reject_alone = true;
        self
    }

    /// Reads the source's live state (for the admin API), if it has one.
    pub fn source_state(&self) -> Option<crate::proxy::SourceState> {
        self.source.state()?;
        let source = self.source.clone();
        Some(Arc::new(move || source.state().unwrap_or_default()))
    }

    /// Load, validate, compile and install. Blocking (I/O): run it off the
    /// async workers. Returns the new version or the errors.
    pub fn reload(&self) -> Result<u64, Vec<String>> {
        let now = crate::proxy::access_log::format_time(SystemTime::now());
        let started = Instant::now();
        // The locality is fixed for the proxy's life: keep the one the
        // running snapshot was compiled for.
        let (locality, gateway, domain) = {
            let live = self.shared.snapshot.load();
            (
                live.identity.locality.clone(),
                live.identity.gateway,
                live.identity.domain.clone(),
            )
        };
        let identity = crate::compile::ProxyIdentity {
            namespace: self.namespace.clone(),
            labels: self.labels.clone(),
            locality,
            gateway,
            domain,
            ..Default::default()
        };
        let generations = self.source.generations();
        let endpoints_only = {
            let b = self.built.lock().unwrap_or_else(|p| p.into_inner());
            matches!((generations, b.generations), (Some(now), Some(then)) if now.0 == then.0)
        };
        let config = self.source.load(&pipeline::load_options(&self.namespace));
        if endpoints_only && config.load_errors.is_empty() {
            return Ok(self.apply_endpoints(config, &identity, now, started, generations));
        }
        let built = if self.reject_alone {
            pipeline::build_each(config, &identity)
        } else {
            pipeline::build(config, &identity).map(|b| (b, Vec::new()))
        };
        match built {
            Ok((built, left_out)) => {
                let mut rejected = self.source.rejected();
                rejected.extend(left_out.iter().map(ToString::to_string));
                for r in &rejected {
                    tracing::warn!(target: "strait::reload", "{r}; the resource is left out, the rest is served");
                }
                let built_in = started.elapsed();
                let config = Arc::new(built.config);
                // The previous configuration and snapshot are freed after the
                // new one is live, not while installing it (freeing 10,000
                // services takes a tenth of a second).
                let previous = (
                    self.shared.snapshot.load_full(),
                    self.shared
                        .status
                        .lock()
                        .map(|s| s.config.clone())
                        .unwrap_or_else(|p| p.into_inner().config.clone()),
                );
                let version = self.shared.install_config(
                    built.snapshot,
                    config.clone(),
                    now,
                    self.source.describe(),
                );
                self.shared.set_rejected_resources(rejected);
                *self.built.lock().unwrap_or_else(|p| p.into_inner()) = Built {
                    generations,
                    left_out: left_out.iter().filter_map(|m| m.resource.clone()).collect(),
                };
                tracing::info!(
                    version,
                    build_ms = built_in.as_millis() as u64,
                    install_ms = (started.elapsed() - built_in).as_millis() as u64,
                    "configuration applied"
                );
                drop(previous);
                // Said on every reload, as at start; they do not block it,
                // so Istio's other analyzers run once the change is live.
                let advice = pipeline::advise(&config);
                for m in built
                    .warnings
                    .iter()
                    .chain(&advice)
                    .filter(|m| m.level() == crate::analyze::Level::Error)
                {
                    tracing::warn!(target: "strait::reload", "{m}");
                }
                Ok(version)
            }
            Err(rejection) => Err(self.reject(&rejection, now)),
        }
    }

    /// Only endpoints changed since the live snapshot was built: rebuild
    /// clusters and endpoints, keep its route tables (no validation: no
    /// resource it validates changed).
    fn apply_endpoints(
        &self,
        mut config: crate::config::ConfigSet,
        identity: &crate::compile::ProxyIdentity,
        now: String,
        started: Instant,
        generations: Option<(u64, u64)>,
    ) -> u64 {
        let mut built = self.built.lock().unwrap_or_else(|p| p.into_inner());
        config.remove(&built.left_out);
        let live = self.shared.snapshot.load_full();
        let snapshot = crate::compile::compile_endpoints(&config, identity, &live);
        let built_in = started.elapsed();
        let previous = self
            .shared
            .status
            .lock()
            .map(|s| s.config.clone())
            .unwrap_or_else(|p| p.into_inner().config.clone());
        let version =
            self.shared
                .install_config(snapshot, Arc::new(config), now, self.source.describe());
        self.shared.count_endpoint_update();
        built.generations = generations;
        tracing::info!(
            version,
            build_ms = built_in.as_millis() as u64,
            "endpoints applied (routes kept)"
        );
        drop((live, previous));
        version
    }

    /// Log and record a rejected change; its lines.
    fn reject(&self, rejection: &Rejection, at: String) -> Vec<String> {
        let errors = match rejection {
            // The gateway's problems alone, as the admin API has shown them.
            Rejection::Gateway(problems) => {
                problems.iter().map(|p| format!("Error: {p}")).collect()
            }
            r => r.lines(),
        };
        for e in &errors {
            tracing::warn!(target: "strait::reload", "{e}");
        }
        tracing::warn!("configuration change rejected; the last good configuration keeps serving");
        self.shared.reject_config(Rejected {
            at,
            errors: errors.clone(),
        });
        errors
    }

    /// Start watching: the source's watch and the SIGHUP handler are in
    /// place when this returns (so no change made right after start is
    /// missed, and an early SIGHUP never takes the default action), then a
    /// task reloads on changes until `shutdown`. Must be called inside a
    /// tokio runtime.
    pub fn spawn(self: Arc<Self>, shutdown: watch::Receiver<bool>) -> tokio::task::JoinHandle<()> {
        let (tx, rx) = mpsc::channel::<()>(64);
        let watcher = match self.source.watch(tx) {
            Ok(w) => Some(w),
            Err(e) => {
                tracing::warn!(error = %e, "cannot watch the config paths; reload with SIGHUP");
                None
            }
        };
        #[cfg(unix)]
        let hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
        #[cfg(not(unix))]
        let hup: Option<()> = None;
        tokio::spawn(self.run(rx, watcher, hup, shutdown))
    }

    async fn run(
        self: Arc<Self>,
        mut rx: mpsc::Receiver<()>,
        watcher: Option<crate::source::Watch>,
        #[cfg(unix)] mut hup: Option<tokio::signal::unix::Signal>,
        #[cfg(not(unix))] _hup: Option<()>,
        mut shutdown: watch::Receiver<bool>,
    ) {
        loop {
            #[cfg(unix)]
            let hup_recv = async {
                match hup.as_mut() {
                    Some(h) => h.recv().await,
                    None => std::future::pending().await,
                }
            };
            #[cfg(not(unix))]
            let hup_recv = std::future::pending::<Option<()>>();
            let debounce = tokio::select! {
                _ = shutdown.changed() => break,
                e = rx.recv() => {
                    if e.is_none() { break; }
                    true
                }
                _ = hup_recv => false,
            };
            if debounce {
                // Wait for the writes to settle: editors and ConfigMap updates
                // come as bursts of events.
                // Bounded, so a file rewritten nonstop still reloads every second.
                let (quiet, max) = self.debounce;
                let until = tokio::time::Instant::now() + max;
                while tokio::time::Instant::now() < until
                    && matches!(tokio::time::timeout(quiet, rx.recv()).await, Ok(Some(())))
                {
                }
            }
            let me = self.clone();
            let _ = tokio::task::spawn_blocking(move || me.reload()).await;
        }
        drop(watcher);
    }
}
