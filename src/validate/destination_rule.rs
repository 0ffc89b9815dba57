//! Placeholder validation.
use super::Finding;
use crate::config::Resource;
use crate::model::DestinationRule;

pub fn validate(_r: &Resource<DestinationRule>) -> Vec<Finding> {
    Vec::new()
}
