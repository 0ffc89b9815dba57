//! Structured logs via `tracing` (`RUST_LOG`, `--log-format text|json`), with
//! the level changeable at runtime (admin `POST /logging?level=`).

use std::io::IsTerminal;
use std::sync::OnceLock;

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Registry, reload};

static HANDLE: OnceLock<reload::Handle<EnvFilter, Registry>> = OnceLock::new();
static CURRENT: OnceLock<std::sync::Mutex<String>> = OnceLock::new();

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Install the global subscriber (once; later calls do nothing).
pub fn init(format: LogFormat) {
    let spec = std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".to_string());
    let filter = EnvFilter::try_new(&spec).unwrap_or_else(|_| EnvFilter::new("warn"));
    let (filter, handle) = reload::Layer::new(filter);
    let registry = tracing_subscriber::registry().with(filter);
    let ok = match format {
        // Colour only on a terminal: a log file must not hold escape codes.
        LogFormat::Text => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .with_ansi(std::io::stderr().is_terminal())
                    .with_writer(std::io::stderr),
            )
            .try_init()
            .is_ok(),
        LogFormat::Json => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .with_writer(std::io::stderr),
            )
            .try_init()
            .is_ok(),
    };
    if ok {
        let _ = HANDLE.set(handle);
        let _ = CURRENT.set(std::sync::Mutex::new(spec));
    }
}

/// Change the filter (`debug`, `strait=debug,warn`, …). Release builds
/// carry no `trace` level (compiled out: h2's per-frame spans cost every
/// request).
pub fn set_level(spec: &str) -> Result<(), String> {
    let filter =
        EnvFilter::try_new(spec).map_err(|e| format!("invalid log level {spec:?}: {e}"))?;
    let handle = HANDLE.get().ok_or("logging is not initialised")?;
    handle.reload(filter).map_err(|e| e.to_string())?;
    if let Some(c) = CURRENT.get() {
        *c.lock().unwrap_or_else(|p| p.into_inner()) = spec.to_string();
    }
    Ok(())
}

/// The current filter.
pub fn level() -> String {
    CURRENT
        .get()
        .map(|c| c.lock().unwrap_or_else(|p| p.into_inner()).clone())
        .unwrap_or_else(|| "warn".into())
}
