pub mod hash;
pub mod locality;
pub mod warmup;
