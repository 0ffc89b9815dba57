//! Loading: YAML files → typed resources in a [`crate::config::ConfigSet`].
//!
//! `yaml` turns text into JSON values with line numbers (bounded against
//! hostile input), `decode` turns values into the typed model leniently,
//! `source` walks files and dispatches on `apiVersion`/`kind`.

pub mod decode;
pub mod source;
pub mod yaml;

pub use source::{LoadOptions, load_paths, load_str};
pub use yaml::Limits;
