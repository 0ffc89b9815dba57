//! Placeholder validation.
use super::{Finding, Options};
use crate::config::Resource;
use crate::model::{ServiceEntry, WorkloadEntry};

pub fn validate(_r: &Resource<ServiceEntry>, _opts: &Options) -> Vec<Finding> {
    Vec::new()
}

pub fn validate_workload_entry(_r: &Resource<WorkloadEntry>) -> Vec<Finding> {
    Vec::new()
}
