//! Placeholder validation.
use super::Finding;
use crate::config::Resource;
use crate::model::VirtualService;

pub fn validate(_r: &Resource<VirtualService>) -> Vec<Finding> {
    Vec::new()
}
