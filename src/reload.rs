//! Hot reload: watch the config paths, and on a change (debounced) load,
//! validate and compile off the request path, then swap the snapshot in one
//! atomic store. A change that does not validate is rejected whole; the last
//! good configuration keeps serving.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use notify::{RecursiveMode, Watcher};
use serde::Serialize;
use tokio::sync::{mpsc, watch};

use crate::cli::run::load_valid_compiled;
use crate::config::ConfigSet;
use crate::proxy::Shared;

/// How long the files must be quiet before a reload.
pub const DEBOUNCE: Duration = Duration::from_millis(150);

/// A rejected change, as the admin API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct Rejected {
    pub at: String,
    pub errors: Vec<String>,
}

/// What configuration is live.
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    /// Increases with every applied configuration, from 1.
    pub version: u64,
    pub loaded_at: String,
    pub paths: Vec<String>,
    pub last_rejected: Option<Rejected>,
    #[serde(skip)]
    pub config: Arc<ConfigSet>,
    /// The proxy identity the snapshot was compiled for.
    #[serde(skip)]
    pub options: crate::compile::Options,
}

impl Default for Status {
    fn default() -> Self {
        Status {
            version: 0,
            loaded_at: String::new(),
            paths: Vec::new(),
            last_rejected: None,
            config: Arc::new(ConfigSet::default()),
            options: crate::compile::Options::default(),
        }
    }
}

/// Everything needed to rebuild the snapshot from the files.
pub struct Reloader {
    pub paths: Vec<PathBuf>,
    pub namespace: String,
    pub labels: BTreeMap<String, String>,
    pub shared: Arc<Shared>,
}

impl Reloader {
    /// Load, validate, compile and install. Blocking (file I/O): run it off
    /// the async workers. Returns the new version or the errors.
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
        let options = crate::compile::Options {
            namespace: self.namespace.clone(),
            labels: self.labels.clone(),
            locality,
            gateway,
            domain,
            ..Default::default()
        };
        match load_valid_compiled(&self.paths, &self.namespace, &options) {
            Ok((config, warnings, snapshot)) => {
                // Said on every reload, as at start: they do not block it.
                for m in warnings
                    .iter()
                    .filter(|m| m.level() == crate::analyze::Level::Error)
                {
                    tracing::warn!(target: "strait::reload", "{m}");
                }
                let built = started.elapsed();
                if !snapshot.gateway.problems.is_empty() {
                    let errors: Vec<String> = snapshot
                        .gateway
                        .problems
                        .iter()
                        .map(|p| format!("Error: {p}"))
                        .collect();
                    for e in &errors {
                        tracing::warn!(target: "strait::reload", "{e}");
                    }
                    self.shared.reject_config(Rejected {
                        at: now,
                        errors: errors.clone(),
                    });
                    return Err(errors);
                }
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
                let version =
                    self.shared
                        .install_config(snapshot, Arc::new(config), now, &self.paths);
                tracing::info!(
                    version,
                    build_ms = built.as_millis() as u64,
                    install_ms = (started.elapsed() - built).as_millis() as u64,
                    "configuration applied"
                );
                drop(previous);
                Ok(version)
            }
            Err((text, _)) => {
                let errors: Vec<String> = text.lines().map(str::to_string).collect();
                for e in &errors {
                    tracing::warn!(target: "strait::reload", "{e}");
                }
                tracing::warn!(
                    "configuration change rejected; the last good configuration keeps serving"
                );
                self.shared.reject_config(Rejected {
                    at: now,
                    errors: errors.clone(),
                });
                Err(errors)
            }
        }
    }

    /// Start watching: the file watch and the SIGHUP handler are in place
    /// when this returns (so no change made right after start is missed, and
    /// an early SIGHUP never takes the default action), then a task reloads
    /// on changes until `shutdown`. Must be called inside a tokio runtime.
    pub fn spawn(self: Arc<Self>, shutdown: watch::Receiver<bool>) -> tokio::task::JoinHandle<()> {
        let (tx, rx) = mpsc::channel::<()>(64);
        let watcher = match self.start_watcher(tx) {
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
        watcher: Option<notify::RecommendedWatcher>,
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
                let until = tokio::time::Instant::now() + Duration::from_secs(1);
                while tokio::time::Instant::now() < until
                    && matches!(
                        tokio::time::timeout(DEBOUNCE, rx.recv()).await,
                        Ok(Some(()))
                    )
                {}
            }
            let me = self.clone();
            let _ = tokio::task::spawn_blocking(move || me.reload()).await;
        }
        drop(watcher);
    }

    fn start_watcher(&self, tx: mpsc::Sender<()>) -> notify::Result<notify::RecommendedWatcher> {
        let files: Vec<PathBuf> = self.paths.clone();
        let mut w = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
            let Ok(ev) = res else { return };
            if matches!(ev.kind, notify::EventKind::Access(_)) {
                return;
            }
            if ev.paths.iter().any(|p| relevant(p, &files)) {
                let _ = tx.try_send(());
            }
        })?;
        for p in &self.paths {
            if p.is_dir() {
                w.watch(p, RecursiveMode::Recursive)?;
            } else {
                // Watch the directory: editors and ConfigMaps replace files by
                // rename and symlink swaps, which a watch on the file misses.
                let dir = p
                    .parent()
                    .filter(|d| !d.as_os_str().is_empty())
                    .unwrap_or(Path::new("."));
                w.watch(dir, RecursiveMode::NonRecursive)?;
            }
        }
        Ok(w)
    }
}

/// Config files, the watched files themselves, and ConfigMap `..data` swaps.
fn relevant(p: &Path, watched: &[PathBuf]) -> bool {
    p.extension()
        .is_some_and(|x| x == "yaml" || x == "yml" || x == "json")
        || watched
            .iter()
            .any(|w| w == p || p.file_name() == w.file_name())
        || p.to_string_lossy().contains("..data")
}
