//! Placeholder validation.
use super::Finding;
use crate::config::Resource;
use crate::model::Gateway;

pub fn validate(_r: &Resource<Gateway>) -> Vec<Finding> {
    Vec::new()
}
