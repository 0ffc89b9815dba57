//! Placeholder, replaced by the model.
#[derive(Clone, Debug, Default, serde::Deserialize)]
pub struct WorkloadEntry {}
