//! Placeholder.
pub struct Duration;
