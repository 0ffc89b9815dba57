//! Exit codes, in one place. `check`'s are istioctl's
//! (`istioctl/cmd/sysexits.go`); every command uses the same ones.

use crate::pipeline::Rejection;

/// Success.
pub const OK: i32 = 0;
/// A failure at run time (cannot listen, cannot start the runtime).
pub const FAILURE: i32 = 1;
/// A bad flag or argument (`EX_USAGE`).
pub const USAGE: i32 = 64;
/// Input that could not be read or parsed (`EX_DATAERR`).
pub const PARSE: i32 = 65;
/// Analysis found issues at or above the failure threshold.
pub const FINDINGS: i32 = 79;

/// The exit code of a configuration the pipeline refused.
pub fn rejected(r: &Rejection) -> i32 {
    match r {
        Rejection::Load(_) => PARSE,
        Rejection::Invalid(_) | Rejection::Gateway(_) => FINDINGS,
    }
}
