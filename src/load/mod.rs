//! Loading YAML into a ConfigSet.
