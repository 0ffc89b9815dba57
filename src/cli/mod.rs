//! Command implementations.
pub mod check;
pub mod demo;
pub mod explain;
pub mod run;
