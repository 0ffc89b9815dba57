//! What configuration is live and what was last rejected, for the admin
//! API (never read on the request path). Written by whoever installs
//! configurations (`reload`, `cli::run`).

use std::sync::Arc;

use serde::Serialize;

use crate::config::ConfigSet;

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
    /// Resources left out of the live configuration (the Kubernetes
    /// source rejects an invalid resource alone), as `strait check` says why.
    pub rejected: Vec<String>,
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
            rejected: Vec::new(),
            config: Arc::new(ConfigSet::default()),
            options: crate::compile::Options::default(),
        }
    }
}
