//! Command implementations.
pub mod check;
