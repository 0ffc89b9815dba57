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
use crate::source::{EndpointUpdate, Source};

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
    /// The source's generations the live snapshot was built from: an
    /// endpoint-only change since is applied without validating or
    /// recompiling routes, to the changed Services' clusters only.
    built: std::sync::Mutex<Built>,
    advisor: Advisor,
}

/// Istio's analyzers other than schema validation, said on every reload
/// as at start: they never block a change, so they run once it is live,
/// on a thread of their own, and a reload never waits for them (at 10,000
/// Services they take as long as the build). Only the latest configuration
/// is analyzed: one that a newer one replaced while waiting is skipped.
#[derive(Default)]
struct Advisor {
    state: Arc<(std::sync::Mutex<AdvisorState>, std::sync::Condvar)>,
}

#[derive(Default)]
struct AdvisorState {
    running: bool,
    next: Option<Advice>,
}

/// How long the analysis thread waits for more work before it ends. A
/// thread that ends makes the allocator return what was freed more than a
/// second before (mimalloc's purge delay) to the system; at rest nothing
/// else would, and a reload at 10,000 Services frees 100 MiB.
const ADVISOR_LINGER: Duration = Duration::from_millis(1500);
/// One configuration to analyze.
struct Advice {
    source: Arc<dyn Source>,
    config: Arc<crate::config::ConfigSet>,
    /// The pipeline's own non-blocking messages, said with the rest.
    warnings: Vec<crate::analyze::Message>,
}

impl Advice {
    fn say(self) {
        let started = Instant::now();
        let analyzed = self.source.for_analysis(&self.config);
        let advice = pipeline::advise(analyzed.as_ref().unwrap_or(&self.config));
        drop(analyzed);
        tracing::debug!(target: "strait::reload", ms = started.elapsed().as_millis() as u64, "analyzed");
        for m in self
            .warnings
            .iter()
            .chain(&advice)
            .filter(|m| m.level() == crate::analyze::Level::Error)
        {
            tracing::warn!(target: "strait::reload", "{m}");
        }
    }
}

impl Advisor {
    fn advise(&self, advice: Advice) {
        let (lock, wake) = &*self.state;
        let mut st = lock.lock().unwrap_or_else(|p| p.into_inner());
        st.next = Some(advice);
        if st.running {
            wake.notify_one();
            return;
        }
        st.running = true;
        drop(st);
        let state = self.state.clone();
        let spawned = std::thread::Builder::new()
            .name("strait-analyze".into())
            .spawn(move || Self::run(&state));
        if spawned.is_err() {
            // No thread to be had: say nothing rather than block the reload.
            let mut st = lock.lock().unwrap_or_else(|p| p.into_inner());
            st.running = false;
            st.next = None;
        }
    }

    fn run(state: &(std::sync::Mutex<AdvisorState>, std::sync::Condvar)) {
        let (lock, wake) = state;
        loop {
            let next = {
                let mut st = lock.lock().unwrap_or_else(|p| p.into_inner());
                if st.next.is_none() {
                    st = wake
                        .wait_timeout_while(st, ADVISOR_LINGER, |s| s.next.is_none())
                        .map_or_else(|p| p.into_inner().0, |(g, _)| g);
                }
                let next = st.next.take();
                st.running = next.is_some();
                next
            };
            match next {
                Some(a) => a.say(),
                None => break,
            }
        }
    }
}

/// When a configuration goes live (or is rejected), as the admin API shows it.
fn now() -> String {
    crate::proxy::access_log::format_time(SystemTime::now())
}

#[derive(Default)]
struct Built {
    generations: Option<(u64, u64)>,
    /// The source's index generation the live snapshot's Kubernetes
    /// endpoints reflect ([`Source::registry`]).
    index_generation: Option<u64>,
    /// The configuration generation last rejected: built again only when
    /// it changes (or on SIGHUP); endpoint changes meanwhile are applied
    /// to the live configuration.
    rejected: Option<u64>,
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
            advisor: Advisor::default(),
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
        self.rebuild(true)
    }

    /// [`Reloader::reload`] on a source's change signal: a configuration
    /// already rejected is not built again until it changes (SIGHUP
    /// builds it again: certificate files are not watched).
    fn reload_on_change(&self) -> Result<u64, Vec<String>> {
        self.rebuild(false)
    }

    fn rebuild(&self, forced: bool) -> Result<u64, Vec<String>> {
        let started = Instant::now();
        if !self.source.ready() {
            // SIGHUP before the first sync: nothing to build from yet.
            tracing::warn!(
                "reload asked before the configuration source has synced: nothing is served until it has, then it loads"
            );
            return Ok(self.version());
        }
        let identity = self.identity();
        let generations = self.source.generations();
        let (endpoints_only, still_rejected) = {
            let b = self.built.lock().unwrap_or_else(|p| p.into_inner());
            (
                matches!((generations, b.generations), (Some(now), Some(then)) if now.0 == then.0),
                !forced && matches!((generations, b.rejected), (Some(now), Some(r)) if now.0 == r),
            )
        };
        if endpoints_only && let Some(v) = self.apply_endpoints(&identity, started, generations) {
            return Ok(v);
        }
        if still_rejected && let Some(v) = self.apply_endpoints(&identity, started, None) {
            // The pending change is the one rejected: building it again
            // would reject it again (and log it again).
            return Ok(v);
        }
        let config = self.source.load(&pipeline::load_options(&self.namespace));
        let registry = self.source.registry(&identity.domain);
        let kube = registry.as_ref().map(|(kube, _)| kube.as_slice());
        let built = pipeline::build_from(config, kube, &identity, self.reject_alone);
        let index_generation = registry.map(|(kube, g)| {
            drop(kube);
            g
        });
        match built {
            Ok((built, left_out)) => {
                Ok(self.install_built(built, &left_out, started, (generations, index_generation)))
            }
            Err(rejection) => {
                let errors = self.reject(&rejection, now());
                // The change stays pending (built again when the
                // configuration changes again), but the live
                // configuration's endpoints keep following the cluster
                // meanwhile: a Gateway strait cannot serve must not freeze
                // every Pod's address.
                self.built
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .rejected = generations.map(|g| g.0);
                let _ = self.apply_endpoints(&identity, started, None);
                Err(errors)
            }
        }
    }

    /// The live configuration's version.
    fn version(&self) -> u64 {
        self.shared
            .status
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .version
    }

    /// The proxy identity to compile for: the locality, gateway mode and
    /// domain are fixed for the proxy's life, so the running snapshot's.
    fn identity(&self) -> crate::compile::ProxyIdentity {
        let live = self.shared.snapshot.load();
        crate::compile::ProxyIdentity::new(
            &self.namespace,
            &self.labels,
            live.identity.gateway,
            &live.identity.domain,
            &live.identity.locality,
        )
    }

    /// Install a configuration that passed the pipeline; its version.
    fn install_built(
        &self,
        built: pipeline::Built,
        left_out: &[crate::analyze::Message],
        started: Instant,
        (generations, index_generation): (Option<(u64, u64)>, Option<u64>),
    ) -> u64 {
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
            now(),
            self.source.describe(),
        );
        self.shared.set_rejected_resources(rejected);
        *self.built.lock().unwrap_or_else(|p| p.into_inner()) = Built {
            generations,
            index_generation,
            rejected: None,
        };
        tracing::info!(
            version,
            build_ms = built_in.as_millis() as u64,
            install_ms = (started.elapsed() - built_in).as_millis() as u64,
            "configuration applied"
        );
        drop(previous);
        self.advisor.advise(Advice {
            source: self.source.clone(),
            config,
            warnings: built.warnings,
        });
        version
    }

    /// Only endpoints changed since the live snapshot was built: rebuild
    /// the clusters of the Services whose endpoints changed (or every
    /// cluster, when the source cannot tell which), keep its route tables
    /// (no validation: no resource it validates changed). `None` when the
    /// source keeps no live registry: a full reload instead. `generations`:
    /// the source's, recorded as built (`None`: a configuration change is
    /// still pending, recorded as it was).
    fn apply_endpoints(
        &self,
        identity: &crate::compile::ProxyIdentity,
        started: Instant,
        generations: Option<(u64, u64)>,
    ) -> Option<u64> {
        let mut built = self.built.lock().unwrap_or_else(|p| p.into_inner());
        let since = built.index_generation?;
        let (update, index_generation) = self.source.endpoint_update(since, &identity.domain)?;
        let live = self.shared.snapshot.load_full();
        // The configuration the live snapshot was compiled from (its
        // DestinationRules split clusters into subsets); unchanged.
        let config = self
            .shared
            .status
            .lock()
            .map(|s| s.config.clone())
            .unwrap_or_else(|p| p.into_inner().config.clone());
        let (snapshot, services) = match &update {
            EndpointUpdate::Services(changed) if changed.is_empty() => {
                // Nothing served changed (a slice of an unknown Service).
                if generations.is_some() {
                    built.generations = generations;
                }
                built.index_generation = Some(index_generation);
                return Some(self.version());
            }
            EndpointUpdate::Services(changed) => (
                crate::compile::update_endpoints(&config, changed, identity, &live),
                changed.len(),
            ),
            EndpointUpdate::All(all) => (
                crate::compile::compile_endpoints_with(&config, all, identity, &live),
                all.len(),
            ),
        };
        drop(update);
        let built_in = started.elapsed();
        let version = self
            .shared
            .install_config(snapshot, config, now(), self.source.describe());
        self.shared.count_endpoint_update();
        if generations.is_some() {
            built.generations = generations;
        }
        built.index_generation = Some(index_generation);
        tracing::info!(
            version,
            services,
            build_ms = built_in.as_millis() as u64,
            install_ms = (started.elapsed() - built_in).as_millis() as u64,
            "endpoints applied (routes kept)"
        );
        drop(live);
        Some(version)
    }

    /// Log and record a rejected change; its lines.
    fn reject(&self, rejection: &Rejection, at: String) -> Vec<String> {
        let errors = rejection.recorded();
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
            let _ = tokio::task::spawn_blocking(move || {
                if debounce {
                    me.reload_on_change()
                } else {
                    me.reload()
                }
            })
            .await;
        }
        drop(watcher);
    }
}
