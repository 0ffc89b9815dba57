//! Loading: YAML text → typed resources in a [`crate::config::ConfigSet`].
//! Pure parsing and decoding that every source (`crate::source`) shares.
//!
//! `yaml` turns text into JSON values with line numbers (bounded against
//! hostile input), `decode` turns values into the typed model leniently,
//! `loader` dispatches on `apiVersion`/`kind` and assembles the set.

pub mod decode;
pub mod loader;
pub mod yaml;

pub use loader::{LoadOptions, Loader, load_str};
pub use yaml::InputLimits;
