//! Placeholder validation.
use super::Finding;
use crate::config::Resource;
use crate::model::Sidecar;

pub fn validate(_r: &Resource<Sidecar>) -> Vec<Finding> {
    Vec::new()
}
