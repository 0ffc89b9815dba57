//! Command implementations: each parses its arguments, calls the layers
//! below and prints. Exit codes are in `exit`.
pub mod check;
pub mod demo;
pub mod exit;
pub mod explain;
pub mod run;
